#!/usr/bin/env bash
# Audit log throughput on SQLite with the hash chain: concurrent appenders (one event per
# call, as request handlers append), then `verify` over the whole chain. Goals from the
# issue: ≥ 20,000 appended events/s sustained, ≥ 500,000 verified events/s. No peer does
# this job in one program, so the script prints the figures against those goals.
#
# Usage: bench/audit.sh [EVENTS] [WRITERS] [RUNS]   (defaults: 200000 32 3)
set -euo pipefail
events=${1:-200000}
writers=${2:-32}
runs=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
echo "building the benchmark (release)..." >&2
cargo build --release -q -p rampart-store --example audit_bench --manifest-path "$root/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/examples/audit_bench
append=() verify=()
for i in $(seq 1 "$runs"); do
  out=$("$bin" "$events" "$writers")
  echo "$out" | sed "s/^/run $i: /" >&2
  append+=("$(echo "$out" | awk '/^append:/ {print $8}')")
  verify+=("$(echo "$out" | awk '/^verify:/ {print $8}')")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
a=$(median "${append[@]}") v=$(median "${verify[@]}")
printf '\n%-8s %14s %12s %8s\n' what "events/s" goal ratio
printf '%-8s %14.0f %12d %7.2fx\n' append "$a" 20000 "$(echo "$a / 20000" | bc -l)"
printf '%-8s %14.0f %12d %7.2fx\n' verify "$v" 500000 "$(echo "$v / 500000" | bc -l)"
echo "(medians of $runs runs, $events events, $writers concurrent writers, SQLite WAL on $(df -h /tmp | awk 'NR==2 {print $1}'))"
