#!/usr/bin/env bash
# rampart's front door beside nginx doing the same job on the same machine, in one run:
# wrk against the HTTP→HTTPS redirect (308 with path and query to the configured host) and
# against a small HTTPS page carrying HSTS and the security headers, over keep-alive TLS.
# Both servers use the same certificate (rampart's self-signed ECDSA P-256) and TLS 1.2/1.3.
#
# Usage: bench/https.sh [SECONDS] [CONNECTIONS] [RUNS]   (defaults: 10 64 5)
# Prints requests/s and the server's CPU time per request for each run, the medians, and the
# rampart/nginx ratios. The two servers take turns within each run. Loopback only.
# RAMPART_BIN=path uses that binary instead of building one (release).
set -euo pipefail
seconds=${1:-10}
conns=${2:-64}
runs=${3:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "bench/https.sh: $tool missing: apt-get install -y wrk nginx curl" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

bin=$(rampart_bin "$root")

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
r_https=$(port) r_http=$(port) r_metrics=$(port) n_https=$(port) n_http=$(port)

"$bin" --data-dir "$work/r" init >/dev/null 2>&1
cat > "$work/r/rampart.toml" <<TOML
[web]
public_host = "localhost"
https_listen = "127.0.0.1:$r_https"
http_listen = "127.0.0.1:$r_http"
metrics_listen = "127.0.0.1:$r_metrics"
TOML
RAMPART_LOG=error "$bin" --data-dir "$work/r" serve 2>"$work/rampart.log" &
pids+=($!)

mkdir -p "$work/n/logs"
cat > "$work/n/nginx.conf" <<NGINX
worker_processes auto;
pid $work/n/nginx.pid;
error_log $work/n/logs/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$n_http;
    return 308 https://localhost:$n_https\$request_uri;
  }
  server {
    listen 127.0.0.1:$n_https ssl http2;
    ssl_certificate $work/r/tls/self-signed.pem;
    ssl_certificate_key $work/r/tls/self-signed.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = /healthz {
      add_header Strict-Transport-Security "max-age=63072000; includeSubDomains" always;
      add_header Content-Security-Policy "default-src 'none'; frame-ancestors 'none'" always;
      add_header X-Content-Type-Options nosniff always;
      add_header X-Frame-Options DENY always;
      add_header Referrer-Policy no-referrer always;
      add_header Cache-Control no-store always;
      default_type text/plain;
      return 200 "ok\n";
    }
  }
}
NGINX
nginx -c "$work/n/nginx.conf" -p "$work/n" -g 'daemon off;' &
pids+=($!)

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }
for p in "$r_https" "$r_http" "$n_https" "$n_http"; do wait_port "$p"; done

# Same answers first: otherwise the comparison means nothing.
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$r_http/a?b=1" | grep -q 308
curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$n_http/a?b=1" | grep -q 308
curl -sk -D - -o /dev/null "https://127.0.0.1:$r_https/healthz" | grep -qi strict-transport-security
curl -sk -D - -o /dev/null "https://127.0.0.1:$n_https/healthz" | grep -qi strict-transport-security

# One wrk run: "requests/s server-CPU-µs-per-request" (the server's processes after the URL).
measure() {
  local url=$1 out
  shift
  out=$(wrk_cpu "$*" -t2 -c"$conns" -d"${seconds}s" "$url")
  printf '%s %s\n' "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" "$(tail -n 1 <<<"$out")"
}

rampart_pids=("${pids[0]}")
mapfile -t nginx_pids < <(pgrep -P "${pids[1]}"; echo "${pids[1]}")

# The two servers take turns, the first one changing from run to run, so that load from
# elsewhere on this shared machine falls on both alike.
declare -A rps cpu
for case in redirect https; do
  for i in $(seq 1 "$runs"); do
    order=(rampart nginx)
    (( i % 2 )) || order=(nginx rampart)
    for server in "${order[@]}"; do
      case "$case/$server" in
        redirect/rampart) url="http://127.0.0.1:$r_http/some/path?x=1" ;;
        redirect/nginx) url="http://127.0.0.1:$n_http/some/path?x=1" ;;
        https/rampart) url="https://127.0.0.1:$r_https/healthz" ;;
        https/nginx) url="https://127.0.0.1:$n_https/healthz" ;;
      esac
      if [[ $server == rampart ]]; then
        read -r r c < <(measure "$url" "${rampart_pids[@]}")
      else
        read -r r c < <(measure "$url" "${nginx_pids[@]}")
      fi
      rps[$case/$server]+="$r " cpu[$case/$server]+="$c "
      printf '%s %s run %s: %s req/s, %.2f µs server CPU per request\n' "$case" "$server" "$i" "$r" "$c" >&2
    done
  done
done

printf '\n%-10s %14s %14s %8s %18s\n' case rampart nginx ratio "CPU µs/req r / n"
for case in redirect https; do
  # shellcheck disable=SC2086
  r=$(median ${rps[$case/rampart]}) n=$(median ${rps[$case/nginx]})
  # shellcheck disable=SC2086
  rc=$(median ${cpu[$case/rampart]}) nc=$(median ${cpu[$case/nginx]})
  printf '%-10s %14.0f %14.0f %7.2fx %8.2f / %-8.2f\n' "$case" "$r" "$n" "$(echo "$r / $n" | bc -l)" "$rc" "$nc"
done
echo "(medians of $runs runs of ${seconds}s each, taking turns; wrk -t2 -c$conns, loopback, $(nproc) cores shared by client and servers)"
