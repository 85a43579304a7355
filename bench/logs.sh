#!/usr/bin/env bash
# Application logs: end-to-end ingest beside the raw SQLite floor, then search latency.
#
# 1. Ingest: rampart (release) serving /ingest/ndjson; bench/logs_client.py posts LINES
#    ~200-byte NDJSON lines (3% with an email, a card or a token) in BATCH-line requests over
#    CLIENTS HTTPS connections: parsing, limits, scrubbing, FTS5 index and the day file's
#    transaction included. Beside it, the same lines inserted as they are into a plain
#    SQLite table (no scrub, no parse, no index; WAL, NORMAL sync, 1000-line transactions):
#    the floor. Goal: >= 100,000 lines/s and >= 0.5x the floor.
# 2. Search: a log store filled with SEARCH_LINES lines in one UTC day; one-term queries
#    bounded to that day (one-hour slices and the whole day). Goal: p95 < 200 ms.
#
# Usage: bench/logs.sh [LINES] [CLIENTS] [BATCH] [SEARCH_LINES]
#        (defaults: 1000000 8 1000 10000000). Loopback only.
# RAMPART_BIN=path uses that rampart binary instead of building one (release); the helper
# that sends the lines is still built.
set -euo pipefail
lines=${1:-1000000}
clients=${2:-8}
batch=${3:-1000}
search_lines=${4:-10000000}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

bin=$(rampart_bin "$root")
echo "building the helper (release)..." >&2
cargo build --release -q -p rampart-logs --example logs_bench --manifest-path "$root/Cargo.toml"
helper=$CARGO_TARGET_DIR/release/examples/logs_bench

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
https=$(port) http=$(port) metrics=$(port)
"$bin" --data-dir "$work/r" init >/dev/null 2>&1
cat > "$work/r/rampart.toml" <<TOML
[web]
public_host = "localhost"
https_listen = "127.0.0.1:$https"
http_listen = "127.0.0.1:$http"
metrics_listen = "127.0.0.1:$metrics"

[logs]
rate_lines_per_second = 10000000
rate_burst_lines = 100000000
TOML
"$bin" --data-dir "$work/r" user add bench-svc --kind service --owner admin --email bench@rampart.localhost >/dev/null
token=$("$bin" --data-dir "$work/r" logs token create bench --account bench-svc 2>/dev/null)
RAMPART_LOG=error "$bin" --data-dir "$work/r" serve 2>"$work/rampart.log" &
pids+=($!)
for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$https") 2>/dev/null && break; sleep 0.1; done

echo "generating $lines lines..." >&2
python3 "$root/bench/logs_client.py" gen "$work/lines.ndjson" "$lines"
echo "bytes per line: $(( $(stat -c %s "$work/lines.ndjson") / lines ))" >&2

ingest=$(python3 "$root/bench/logs_client.py" send localhost "$https" "$work/r/tls/self-signed.pem" "$token" "$work/lines.ndjson" "$clients" "$batch")
echo "$ingest" >&2
stored=$("$bin" --data-dir "$work/r" logs search --since 1d --source bench --limit 1 --json | wc -l)
[[ $stored -ge 1 ]] || { echo "nothing was stored: $(cat "$work/rampart.log")" >&2; exit 1; }
if "$bin" --data-dir "$work/r" logs search "alice" --since 1d --json | grep -q '@example.com'; then
  echo "an email was stored unscrubbed" >&2; exit 1
fi
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

raw=$("$helper" raw "$work/lines.ndjson" "sqlite://$work/raw.db")
echo "$raw" >&2
rm -f "$work/raw.db"*

e=$(echo "$ingest" | awk '{print $8}')
r=$(echo "$raw" | awk '{print $8}')
printf '\n%-28s %14s\n' what "lines/s"
printf '%-28s %14.0f\n' "rampart ingest (end to end)" "$e"
printf '%-28s %14.0f\n' "raw SQLite insert (floor)" "$r"
printf '%-28s %13.2fx   (goals: >= 100000 lines/s, >= 0.5x)\n' "ratio" "$(echo "$e / $r" | bc -l)"

# About 450 bytes a line on disk (row, time index, FTS5). SEARCH_DIR puts the store elsewhere
# (a tmpfs, when the disk is short: the 10M-line figures in the closing note were taken so).
search_dir=${SEARCH_DIR:-$work/search}
mkdir -p "$search_dir"
need=$(( search_lines * 450 / 1024 ))
free=$(df -k --output=avail "$search_dir" | tail -1)
if (( free < need )); then
  echo "bench/logs.sh: the search test needs about $((need / 1024)) MiB free in $search_dir, $((free / 1024)) MiB are; set SEARCH_DIR or pass fewer lines" >&2
  exit 1
fi
echo "filling $search_lines lines for the search test (once per run)..." >&2
search=$("$helper" search "$search_dir" "$search_lines" 200)
echo "$search"
echo "(goal: p95 < 200 ms; $(nproc) cores, SQLite WAL on $(df -h "$work" | awk 'NR==2 {print $1}'))"
