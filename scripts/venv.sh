# Sourced by the other scripts: the project's Python environment, kept outside
# the clone and created when missing. Installs the requirement files given as
# arguments, then ironsafe itself from this checkout; sets PY.
venv="${IRONSAFE_VENV:-$HOME/.cache/ironsafe/venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
PY="$venv/bin/python"
for requirements in "$@"; do
  "$PY" -m pip install --quiet --disable-pip-version-check -r "$requirements"
done
"$PY" -m pip install --quiet --disable-pip-version-check .
