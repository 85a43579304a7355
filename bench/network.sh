#!/usr/bin/env bash
# Benchmark of `rampart net check` on a generated inventory: 1,000 VPCs, 10,000 security
# groups with 100,000 rules, 50,000 interfaces. Target: < 5 s wall and < 1 GiB peak RSS.
# Prints each run and the median of three. Needs GNU time (`apt-get install time`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
DIR="${BENCH_DIR:-${TMPDIR:-/tmp}/rampart-net-bench}"
RUNS="${RUNS:-3}"

cargo build --release -q -p rampart
cargo build --release -q -p rampart-network --example gen_inventory
if [ ! -f "$DIR/vpcs.json" ]; then
    echo "generating inventory in $DIR"
    "$CARGO_TARGET_DIR/release/examples/gen_inventory" "$DIR" 1000
fi
du -sh "$DIR" | awk '{print "inventory size: " $1}'

walls=(); rss=()
for i in $(seq 1 "$RUNS"); do
    log="$(mktemp)"
    status=0
    /usr/bin/time -v "$CARGO_TARGET_DIR/release/rampart" net check "$DIR" --format json >"$DIR.out.json" 2>"$log" || status=$?
    # Exit 1 is expected: the inventory holds deliberate violations.
    if [ "$status" -gt 1 ]; then cat "$log"; exit "$status"; fi
    wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')"
    kb="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log")"
    rm -f "$log"
    printf 'run %d: %6.2f s wall, %6.1f MiB peak RSS\n' "$i" "$wall" "$(echo "$kb / 1024" | bc -l)"
    walls+=("$wall"); rss+=("$kb")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mw="$(median "${walls[@]}")"; mr="$(median "${rss[@]}")"
printf 'median of %d: %.2f s wall, %.1f MiB peak RSS\n' "$RUNS" "$mw" "$(echo "$mr / 1024" | bc -l)"
python3 - "$DIR.out.json" <<'PY' 2>/dev/null || true
import json, sys, collections
r = json.load(open(sys.argv[1]))
print("stats:", r["stats"])
print("findings by rule:", dict(collections.Counter(f["rule"]["id"] for f in r["findings"])))
PY
