#!/usr/bin/env bash
# Runs every fuzz target for a few seconds; exits non-zero on the first crash.
# Usage: fuzz/run.sh [SECONDS_PER_TARGET]   (default 10)
set -euo pipefail
seconds=${1:-10}
cd "$(dirname "$0")"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cargo +nightly install cargo-fuzz --locked
fi
for target in $(cargo +nightly fuzz list); do
  echo "== $target (${seconds}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=4096
done
echo "all fuzz targets ran ${seconds}s without a crash"
