#!/usr/bin/env bash
# An internal tool behind rampart's front door beside nginx doing the same job, in one run:
# wrk over keep-alive TLS against a small static page served by an nginx upstream (plain
# HTTP on loopback), once through rampart (app on the prefix /app: bearer token of a
# service account with a grant, identity headers and a signed assertion added, every
# request audited) and once through nginx as a TLS reverse proxy to the same upstream
# (pooled upstream connections, no authentication, no audit). Both front servers use the
# same certificate (rampart's self-signed ECDSA P-256) and TLS 1.2/1.3.
#
# wrk authenticates to rampart with `Authorization: Bearer <app token>` (a service account
# with a grant on the app); nginx gets the same header and ignores it.
#
# Usage: bench/apps.sh [SECONDS] [CONNECTIONS] [RUNS]   (defaults: 10 64 5)
# RAMPART_BIN=path uses that binary instead of building one (release).
# Prints requests/s, p99 latency and the proxy's CPU per request for each run (the two
# proxies take turns), the medians, and rampart/nginx ratios.
# Loopback only.
set -euo pipefail
seconds=${1:-10}
conns=${2:-64}
runs=${3:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
for tool in wrk nginx curl python3 bc; do
  command -v "$tool" >/dev/null || { echo "bench/apps.sh: $tool missing: apt-get install -y wrk nginx curl python3 bc" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { [[ -n ${BENCH_DEBUG:-} ]] && "$bin" --data-dir "$work/r" audit search --action access.authorize --json | tail -3 >&2; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

bin=$(rampart_bin "$root")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
r_https=$(port) r_http=$(port) r_metrics=$(port) n_https=$(port) up=$(port)

# The upstream: nginx serving one small static page.
mkdir -p "$work/up/logs" "$work/up/html"
printf '<!doctype html><title>tool</title><p>hello from the internal tool</p>\n' > "$work/up/html/index.html"
# nginx workers run as nobody: the page must be readable by them (mktemp -d is 0700).
chmod 755 "$work" && chmod -R a+rX "$work/up"
cat > "$work/up/nginx.conf" <<NGINX
worker_processes 1;
pid $work/up/nginx.pid;
error_log $work/up/logs/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$up;
    root $work/up/html;
    location / { index index.html; }
  }
}
NGINX
nginx -c "$work/up/nginx.conf" -p "$work/up" -g 'daemon off;' &
pids+=($!)

# rampart with the app, a service account, a grant and an app token.
"$bin" --data-dir "$work/r" init >/dev/null 2>&1
cat > "$work/r/rampart.toml" <<TOML
[web]
public_host = "localhost"
https_listen = "127.0.0.1:$r_https"
http_listen = "127.0.0.1:$r_http"
metrics_listen = "127.0.0.1:$r_metrics"

[[apps]]
name = "app"
prefix = "/app"
upstream = "http://127.0.0.1:$up"
TOML
r() { "$bin" --data-dir "$work/r" "$@"; }
RAMPART_LOG=error "$bin" --data-dir "$work/r" serve 2>"$work/rampart.log" &
pids+=($!)
secret=$(enroll_admin "$bin" "$work/r" "$r_https")
r user add svc-bench --kind service --owner admin --email svc-bench@rampart.localhost >/dev/null
r role add bench --grant "app *" --as admin --code "$(next_code "$secret")" >/dev/null
r grant add svc-bench bench --as admin >/dev/null
token=$(r apps token create app --account svc-bench 2>/dev/null)

# nginx as the TLS reverse proxy to the same upstream, pooled.
mkdir -p "$work/n/logs"
cat > "$work/n/nginx.conf" <<NGINX
worker_processes auto;
pid $work/n/nginx.pid;
error_log $work/n/logs/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  upstream tool { server 127.0.0.1:$up; keepalive 128; }
  server {
    listen 127.0.0.1:$n_https ssl http2;
    ssl_certificate $work/r/tls/self-signed.pem;
    ssl_certificate_key $work/r/tls/self-signed.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /app/ {
      proxy_pass http://tool/;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
    }
  }
}
NGINX
nginx -c "$work/n/nginx.conf" -p "$work/n" -g 'daemon off;' &
pids+=($!)

wait_port() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
for p in "$up" "$r_https" "$n_https"; do wait_port "$p"; done
# The listener opens before the apps are ready: wait for the app to answer.
for _ in $(seq 1 300); do
  code=$(curl -sk -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "https://127.0.0.1:$r_https/app/" || true)
  [[ $code == 200 ]] && break
  sleep 0.1
done

# Same answers first: otherwise the comparison means nothing.
curl -sk -H "Authorization: Bearer $token" "https://127.0.0.1:$r_https/app/" | tee "$work/first.html" | grep -q "hello from the internal tool" || { echo "rampart did not serve the app:" >&2; cat "$work/first.html" "$work/rampart.log" >&2; exit 1; }
curl -sk "https://127.0.0.1:$n_https/app/" | grep -q "hello from the internal tool"
[[ $(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$r_https/app/") == 303 ]]

# One wrk run: "requests/s p99-ms proxy-CPU-µs-per-request" (the proxy's processes after
# the URL). The CPU figure is what each request cost the proxy, beside the rate.
measure() {
  local url=$1 out
  shift
  out=$(wrk_cpu "$*" -t2 -c"$conns" -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$url")
  awk -v cpu="$(tail -n 1 <<<"$out")" '
    /Requests\/sec/ {rps=$2}
    $1=="99%" {v=$2; u=v; gsub(/[0-9.]/,"",u); gsub(/[a-z]/,"",v);
      if (u=="us") v=v/1000; else if (u=="s") v=v*1000; p99=v}
    END {print rps, p99, cpu}' <<<"$out"
}

rampart_pids=("${pids[1]}")
mapfile -t nginx_pids < <(pgrep -P "${pids[2]}"; echo "${pids[2]}")

# The two proxies take turns, the first one changing from run to run, so that load from
# elsewhere on this shared machine (and rampart's growing audit log) falls on both alike.
declare -A rps p99 cpu
for i in $(seq 1 "$runs"); do
  order=(rampart nginx)
  (( i % 2 )) || order=(nginx rampart)
  for server in "${order[@]}"; do
    if [[ $server == rampart ]]; then
      read -r v p c < <(measure "https://127.0.0.1:$r_https/app/" "${rampart_pids[@]}")
    else
      read -r v p c < <(measure "https://127.0.0.1:$n_https/app/" "${nginx_pids[@]}")
    fi
    rps[$server]+="$v " p99[$server]+="$p " cpu[$server]+="$c "
    printf '%s run %s: %s req/s, p99 %s ms, %.2f µs proxy CPU per request\n' "$server" "$i" "$v" "$p" "$c" >&2
  done
done

# shellcheck disable=SC2086
{
  rr=$(median ${rps[rampart]}) nr=$(median ${rps[nginx]})
  rp=$(median ${p99[rampart]}) np=$(median ${p99[nginx]})
  rc=$(median ${cpu[rampart]}) nc=$(median ${cpu[nginx]})
}
printf '\n%-8s %12s %12s %8s\n' "" rampart nginx ratio
printf '%-8s %12.0f %12.0f %7.2fx\n' "req/s" "$rr" "$nr" "$(echo "$rr / $nr" | bc -l)"
printf '%-8s %10.2fms %10.2fms %7.2fx\n' "p99" "$rp" "$np" "$(echo "$rp / $np" | bc -l)"
printf '%-8s %10.2fµs %10.2fµs %7.2fx\n' "CPU/req" "$rc" "$nc" "$(echo "$rc / $nc" | bc -l)"
echo "(medians of $runs runs of ${seconds}s, taking turns; wrk -t2 -c$conns, loopback, $(nproc) cores shared by client, proxies and upstream; goal: req/s ratio >= 1.0, p99 ratio <= 1.5)"
