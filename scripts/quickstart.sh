#!/usr/bin/env bash
# The main job: install ironsafe (and torch) into the project's virtual
# environment, then run the tutorial in target/quickstart/, and look at the
# files it wrote with the `ironsafe` command that the package installs.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh examples/requirements.txt

out=target/quickstart
mkdir -p "$out"
(cd "$out" && "$PY" ../../examples/quickstart.py)
echo "quickstart: files written to $out/"

ironsafe="$(dirname "$PY")/ironsafe"
(cd "$out" && for file in *.safetensors; do "$ironsafe" inspect "$file"; echo; done)
(cd "$out" && "$ironsafe" verify ./*.safetensors)
