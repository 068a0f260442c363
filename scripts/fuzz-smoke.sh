#!/usr/bin/env bash
# A short run of every fuzz target (fuzz/README.md): replays its committed
# corpus, then fuzzes for FUZZ_SECONDS (default 10), new inputs going to a
# temporary directory so the checkout stays clean. Installs cargo-fuzz when
# missing. The long runs are done by hand; this catches regressions.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in header slice pickle checkpoint; do
  mkdir -p "$scratch/$target"
  # libFuzzer needs nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain use them.
  if ! RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="${FUZZ_SECONDS:-10}" -rss_limit_mb=2048 >"$scratch/$target.log" 2>&1; then
    tail -n 60 "$scratch/$target.log"
    echo "fuzz target $target failed: its input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  echo "fuzz $target: $(grep -E '^Done' "$scratch/$target.log")"
done
