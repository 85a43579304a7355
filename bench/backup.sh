#!/usr/bin/env bash
# rampart's backup of a PostgreSQL database beside the shell pipeline a user would otherwise
# write, on the same machine, in one run:
#
#   pipeline: pg_dump -Fc -Z0 | zstd | age -r KEY > file
#   rampart:  rampart backup run   (pg_dump -Fc -Z0 at an exported snapshot + per-table row
#             counts in that snapshot, zstd, age, SHA-256, object written through
#             object_store, catalog row and audit record committed)
#
# then the restore of each into a fresh database (age -d | zstd -d | pg_restore, and
# `rampart backup restore`, which also checks the SHA-256 while streaming), taking turns
# up to 3 times, each after a CHECKPOINT.
#
# Usage: bench/backup.sh [SCALE] [RUNS]   (defaults: 70 ≈ 1 GB of pgbench data, 3 runs)
# Prints each time, the median of each, and the rampart/pipeline ratio. The two take turns
# in each run, the first one changing from run to run, so load from elsewhere falls on both.
# Loopback only.
# RAMPART_BIN=path uses that binary instead of building one (release).
set -euo pipefail
scale=${1:-70}
runs=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
for tool in "$pgbin/initdb" "$pgbin/pgbench" zstd age age-keygen psql curl oathtool; do
  command -v "$tool" >/dev/null || { echo "bench/backup.sh: $tool missing: apt-get install -y postgresql zstd age curl oathtool" >&2; exit 1; }
done
work=$(mktemp -d)
chmod 755 "$work"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bin=$(rampart_bin "$root")

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/pg"
[[ $(id -u) == 0 ]] && chown postgres "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1" \
  -l "$work/pg/log" -w start >/dev/null
url="postgres://postgres@127.0.0.1:$port"
psql -qX "$url/postgres" -c "CREATE DATABASE bench"
echo "pgbench -i -s $scale ..." >&2
"$pgbin/pgbench" -q -i -s "$scale" "$url/bench" 2>/dev/null
# The tables' pages on disk before the first run, so no run shares the disk with the
# checkpointer writing them.
psql -qX "$url/postgres" -c "CHECKPOINT"
size=$(psql -AtX "$url/bench" -c "SELECT pg_size_pretty(pg_database_size('bench'))")

age-keygen -o "$work/key" 2>/dev/null
key=$(age-keygen -y "$work/key")
enroll=$("$bin" --data-dir "$work/r" init 2>/dev/null | grep -o 'https://[^ ]*/enroll/[^ ]*')

# A restore needs a person with a recent second factor (BAK-5): enroll the first admin
# through the web UI (password + TOTP), as a person would, then stop the server.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
hp=$(free_port) pp=$(free_port) mp=$(free_port)
cat > "$work/r/rampart.toml" <<TOML
[web]
public_host = "bench.test"
https_listen = "127.0.0.1:$hp"
http_listen = "127.0.0.1:$pp"
metrics_listen = "127.0.0.1:$mp"
TOML
RAMPART_LOG=error "$bin" --data-dir "$work/r" serve >/dev/null 2>"$work/serve.log" &
serve_pid=$!
up=
for _ in $(seq 1 100); do curl -sk --resolve "bench.test:$hp:127.0.0.1" "https://bench.test:$hp/healthz" >/dev/null && up=1 && break; sleep 0.1; done
[[ -n $up ]] || { echo "bench/backup.sh: rampart did not start to enroll the operator:" >&2; cat "$work/serve.log" >&2; exit 1; }
web() { curl -sSk --max-time 30 -b "$work/jar" -c "$work/jar" --resolve "bench.test:$hp:127.0.0.1" "$@"; }
path=/enroll/${enroll##*/enroll/}
web -o /dev/null "https://bench.test:$hp$path"
web -o /dev/null --data-urlencode "password=bench-otter-canyon-42-lamp" --data-urlencode "confirm=bench-otter-canyon-42-lamp" "https://bench.test:$hp$path"
page=$(web "https://bench.test:$hp/mfa/enroll")
secret=$(sed -n 's/.*<code id="totp-secret">\([^<]*\)<\/code>.*/\1/p' <<<"$page")
sealed=$(sed -n 's/.*name="sealed" value="\([^"]*\)".*/\1/p' <<<"$page")
web -o /dev/null --data-urlencode "sealed=$sealed" --data-urlencode "code=$(oathtool --totp -b "$secret")" "https://bench.test:$hp/mfa/enroll"
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
[[ -n $secret ]] || { echo "bench/backup.sh: enrolling the operator failed" >&2; exit 1; }

cat > "$work/r/rampart.toml" <<TOML
[backup]
own_database = false
recipients = ["$key"]

[[backup.sources]]
name = "bench"
kind = "postgres"
url = "$url/bench"
TOML

now() { date +%s.%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
pipeline_times=() rampart_times=()
pipeline() {
  local t0
  t0=$(now)
  "$pgbin/pg_dump" -Fc -Z0 -d "$url/bench" | zstd -q | age -r "$key" > "$work/pipeline.age"
  pipeline_times+=("$(echo "$(now) - $t0" | bc)")
}
rampart() {
  local t0
  t0=$(now)
  RAMPART_LOG=error "$bin" --data-dir "$work/r" backup run >/dev/null
  rampart_times+=("$(echo "$(now) - $t0" | bc)")
}
# The two take turns, the first one changing from run to run.
for i in $(seq 1 "$runs"); do
  if (( i % 2 )); then pipeline; rampart; else rampart; pipeline; fi
  echo "run $i: pipeline ${pipeline_times[-1]} s, rampart ${rampart_times[-1]} s" >&2
done
p=$(median "${pipeline_times[@]}") r=$(median "${rampart_times[@]}")
id=$("$bin" --data-dir "$work/r" backup list --json | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
rsize=$("$bin" --data-dir "$work/r" backup list --json | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["size_bytes"])')
psize=$(stat -c %s "$work/pipeline.age")

# Restores, taking turns as the backups do, each into a new database after a CHECKPOINT:
# a restore writes about 1.5 GB, and the server's checkpoint of one restore must not fall
# into the next one's time.
restore_runs=$(( runs < 3 ? runs : 3 ))
# Each restore needs its own second-factor code (a code is taken once): the step after the
# last one used, once the clock allows it (the server accepts one step either way).
last_step=$(( $(date +%s) / 30 ))
fresh_code() { # sets $code
  local use=$(( last_step + 1 ))
  while (( use > $(date +%s) / 30 + 1 )); do sleep 1; done
  last_step=$use
  code=$(oathtool --totp -b -N "@$(( use * 30 ))" "$secret")
}
restore_pipeline=() restore_rampart=()
restore() { # pipeline|rampart
  local db="r_$1_$i" t0
  psql -qX "$url/postgres" -c "CREATE DATABASE $db" -c "CHECKPOINT"
  if [[ $1 == rampart ]]; then fresh_code; fi
  t0=$(now)
  if [[ $1 == pipeline ]]; then
    age -d -i "$work/key" "$work/pipeline.age" | zstd -dq | "$pgbin/pg_restore" --no-owner -d "$url/$db"
    restore_pipeline+=("$(echo "$(now) - $t0" | bc)")
  else
    RAMPART_LOG=error "$bin" --data-dir "$work/r" backup restore "$id" --as admin --code "$code" --identity "$work/key" --to "$url/$db" 2>/dev/null
    restore_rampart+=("$(echo "$(now) - $t0" | bc)")
  fi
  n=$(psql -AtX "$url/$db" -c "SELECT count(*) FROM pgbench_accounts")
  [[ $n == $((scale * 100000)) ]] || { echo "restore into $db has $n accounts" >&2; exit 1; }
  psql -qX "$url/postgres" -c "DROP DATABASE $db"
}
for i in $(seq 1 "$restore_runs"); do
  if (( i % 2 )); then restore pipeline; restore rampart; else restore rampart; restore pipeline; fi
  echo "restore $i: pipeline ${restore_pipeline[-1]} s, rampart ${restore_rampart[-1]} s" >&2
done
rp=$(median "${restore_pipeline[@]}") rr=$(median "${restore_rampart[@]}")

printf '\ndatabase: pgbench scale %s (%s), %s run(s), median of each (restores: %s runs), %s cores\n' "$scale" "$size" "$runs" "$restore_runs" "$(nproc)"
printf '%-34s %10s %14s\n' "" "seconds" "object bytes"
printf '%-34s %10.2f %14s\n' "pg_dump | zstd | age" "$p" "$psize"
printf '%-34s %10.2f %14s\n' "rampart backup run (+sha,catalog)" "$r" "$rsize"
printf 'backup ratio rampart/pipeline: %.2f (goal <= 1.00)\n' "$(echo "$r / $p" | bc -l)"
printf '%-34s %10.2f\n' "age -d | zstd -d | pg_restore" "$rp"
printf '%-34s %10.2f\n' "rampart backup restore (+sha)" "$rr"
printf 'restore ratio rampart/pipeline: %.2f\n' "$(echo "$rr / $rp" | bc -l)"
