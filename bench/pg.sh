#!/usr/bin/env bash
# rampart's PostgreSQL gateway beside PgBouncer (session pooling) and a direct connection,
# in one run on one machine: `pgbench -i -s 10`, then `pgbench -S -c 16 -j 2 -T SECONDS` in
# simple and in prepared mode against each, then one client for the p50 latency overhead.
# Both gateways terminate TLS from pgbench with the same certificate (rampart's self-signed
# one); the direct runs use no TLS. Through rampart every statement is audited: after each
# run the script compares the audit records written with the transactions pgbench counted
# (pgbench -S runs one statement per transaction). It also prints each gateway's CPU time
# per transaction (all its threads, from /proc), rampart's with its background work over
# the audit records.
#
# Usage: bench/pg.sh [SECONDS]   (default 30; RAMPART_BIN=path skips the release build)
# Loopback only; everything lives in a temporary folder and stops on exit.
set -euo pipefail
seconds=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
for tool in pgbouncer python3 "$pgbin/pgbench" "$pgbin/initdb"; do
  command -v "$tool" >/dev/null || { echo "bench/pg.sh: $tool missing: apt-get install -y postgresql pgbouncer python3" >&2; exit 1; }
done
bin=$(rampart_bin "$root")
work=$(mktemp -d)
chmod 755 "$work"
pids=()
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $work/bouncer.pid ]] && kill "$(cat "$work/bouncer.pid")" 2>/dev/null || true
  as_pg "$pgbin/pg_ctl" -D "$work/pg" -m fast stop >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pg_port=$(port) b_port=$(port) r_port=$(port) r_https=$(port) r_http=$(port) r_metrics=$(port)

# PostgreSQL (trust on loopback: the bench measures the relays, not password hashing).
mkdir -p "$work/pg" && [[ $(id -u) == 0 ]] && chown postgres "$work" "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg" -U postgres --auth=trust >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg" -l "$work/pg.log" -w start \
  -o "-p $pg_port -k $work -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" >/dev/null
as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres bench
"$pgbin/pgbench" -h 127.0.0.1 -p "$pg_port" -U postgres -i -s 10 -q bench 2>&1 | tail -1

# rampart, with a person allowed to use the database as role postgres.
"$bin" --data-dir "$work/r" init >/dev/null 2>&1
cat > "$work/r/rampart.toml" <<TOML
[web]
public_host = "localhost"
https_listen = "127.0.0.1:$r_https"
http_listen = "127.0.0.1:$r_http"
metrics_listen = "127.0.0.1:$r_metrics"

[postgres]
listen = "127.0.0.1:$r_port"
TOML
r() { "$bin" --data-dir "$work/r" "$@"; }
RAMPART_LOG=error "$bin" --data-dir "$work/r" serve 2>"$work/rampart.log" &
pids+=($!)
rampart_pid=$!
secret=$(enroll_admin "$bin" "$work/r" "$r_https")
r user add bencher --email bencher@example.com >/dev/null
r target add bench-db --kind postgres --address "127.0.0.1:$pg_port" --env test >/dev/null
r role add bench --grant "bench-db test postgres" --as admin --code "$(next_code "$secret")" >/dev/null
r grant add bencher bench --as admin >/dev/null
echo "unused-with-trust" | r db credential set bench-db postgres >/dev/null
token=$(r db token issue bencher bench-db --role postgres --hours 2 | sed -n 2p)

# PgBouncer, session pooling, TLS required from clients with rampart's certificate.
cp "$work/r/tls/self-signed.pem" "$work/r/tls/self-signed.key" "$work/"
[[ $(id -u) == 0 ]] && chown postgres "$work/self-signed.pem" "$work/self-signed.key"
cat > "$work/bouncer.ini" <<INI
[databases]
bench = host=127.0.0.1 port=$pg_port dbname=bench user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $b_port
unix_socket_dir =
auth_type = trust
auth_file = $work/users.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 40
client_tls_sslmode = require
client_tls_cert_file = $work/self-signed.pem
client_tls_key_file = $work/self-signed.key
logfile = $work/bouncer.log
pidfile = $work/bouncer.pid
INI
echo '"postgres" ""' > "$work/users.txt"
[[ $(id -u) == 0 ]] && chown postgres "$work/bouncer.ini" "$work/users.txt"
as_pg pgbouncer -d "$work/bouncer.ini"

wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
wait_port "$r_port"; wait_port "$b_port"

# Statements audited so far: all of them, and pgbench's -S statement alone (pgbench also
# runs two catalog queries at start: scale and partitioning).
audited() {
  python3 - "$work/r/rampart.db" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
q = "SELECT count(*) FROM audit_log WHERE action IN ('db.statement', 'db.change')"
print(c.execute(q).fetchone()[0], c.execute(q + " AND details LIKE '%SELECT abalance FROM pgbench_accounts WHERE aid = $1%'").fetchone()[0])
PY
}
# run NAME MODE PID ARGS… : prints tps, transactions, and the CPU µs per transaction of
# process PID (the gateway; none for the direct runs) during the run. rampart's figure
# includes its background work over the audit records (anomaly rules, hourly counts).
run() {
  local name=$1 mode=$2 pid=$3; shift 3
  local out before after
  before=$( [[ -n $pid ]] && ticks "$pid" || echo 0)
  out=$("$pgbin/pgbench" -n -S -c 16 -j 2 -T "$seconds" -M "$mode" "$@" bench 2>&1) || { echo "$out" >&2; exit 1; }
  after=$( [[ -n $pid ]] && ticks "$pid" || echo 0)
  local tps tx
  tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
  tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
  echo "$name $mode $tps $tx $(( (after - before) * 10000000 / (tx > 0 ? tx : 1) ))"
}
direct=(-h 127.0.0.1 -p "$pg_port" -U postgres)
bouncer=(-h 127.0.0.1 -p "$b_port" -U postgres)
bouncer_pid=$(cat "$work/bouncer.pid")
declare -A tps cpu
for mode in simple prepared; do
  read -r _ _ t _ _ < <(PGSSLMODE=disable run direct "$mode" "" "${direct[@]}"); tps[direct-$mode]=$t
  read -r _ _ t _ c < <(PGSSLMODE=require run pgbouncer "$mode" "$bouncer_pid" "${bouncer[@]}")
  tps[pgbouncer-$mode]=$t cpu[pgbouncer-$mode]=$c
  read -r all_before sel_before < <(audited)
  read -r _ _ t tx c < <(PGSSLMODE=require PGPASSWORD=$token PGUSER='bencher#bench-db' run rampart "$mode" "$rampart_pid" -h 127.0.0.1 -p "$r_port")
  tps[rampart-$mode]=$t cpu[rampart-$mode]=$c
  read -r all_after sel_after < <(audited)
  echo "rampart $mode: pgbench counted $tx transactions; audited: $((sel_after - sel_before)) of its SELECT, $((all_after - all_before)) statements in all"
done

# p50 latency of one client, direct and through rampart (per-transaction log).
p50() {
  local dir=$1; shift
  (cd "$dir" && "$pgbin/pgbench" -n -S -c 1 -j 1 -T 10 -l "$@" bench >/dev/null 2>&1)
  cat "$dir"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
mkdir -p "$work/lat-direct" "$work/lat-rampart"
lat_direct=$(PGSSLMODE=disable p50 "$work/lat-direct" "${direct[@]}")
lat_rampart=$(PGSSLMODE=require PGPASSWORD=$token PGUSER='bencher#bench-db' p50 "$work/lat-rampart" -h 127.0.0.1 -p "$r_port")

echo
# pgbouncer/direct: what a relay that audits nothing reaches against the direct
# connection on the same machine, beside rampart/direct.
printf '%-10s %14s %14s %14s %18s %16s %18s\n' mode direct pgbouncer rampart rampart/pgbouncer rampart/direct pgbouncer/direct
for mode in simple prepared; do
  d=${tps[direct-$mode]} b=${tps[pgbouncer-$mode]} r=${tps[rampart-$mode]}
  printf '%-10s %14.0f %14.0f %14.0f %18.2f %16.2f %18.2f\n' "$mode" "$d" "$b" "$r" \
    "$(python3 -c "print($r/$b)")" "$(python3 -c "print($r/$d)")" "$(python3 -c "print($b/$d)")"
done
echo "p50 latency, 1 client: direct ${lat_direct} µs, rampart ${lat_rampart} µs (overhead $((lat_rampart - lat_direct)) µs)"
for mode in simple prepared; do
  printf 'gateway CPU per transaction, %s: pgbouncer %d ns, rampart %d ns\n' "$mode" "${cpu[pgbouncer-$mode]}" "${cpu[rampart-$mode]}"
done
