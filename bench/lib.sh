# Steps the benchmarks share. Source it: . "$(dirname "$0")/lib.sh"

# The rampart binary to measure: RAMPART_BIN when set (to compare two builds, or to skip
# the build), else a release build of this checkout in CARGO_TARGET_DIR.
# Usage: bin=$(rampart_bin ROOT)
rampart_bin() {
  if [[ -n ${RAMPART_BIN:-} ]]; then
    echo "$RAMPART_BIN"
    return
  fi
  echo "building rampart (release)..." >&2
  cargo build --release -q -p rampart --manifest-path "$1/Cargo.toml" >&2 || return 1
  echo "${CARGO_TARGET_DIR:-$1/target}/release/rampart"
}

# Enrolls the first administrator (`admin`) of a serving rampart as a person would: a fresh
# enrollment link, then password and TOTP through the web UI. Prints the TOTP secret.
# Changing roles and grants needs a person holding roles.manage with a second-factor check
# within 5 minutes (ACC-2), so the scripts run those commands with
# `--as admin --code "$(next_code "$secret")"` (the first) and `--as admin` (the rest).
# Usage: secret=$(enroll_admin BIN DATA_DIR HTTPS_PORT)
enroll_admin() {
  local bin=$1 dir=$2 port=$3 link host path jar page secret sealed
  for tool in curl oathtool; do
    command -v "$tool" >/dev/null || { echo "$tool missing: apt-get install -y $tool" >&2; return 1; }
  done
  link=$("$bin" --data-dir "$dir" admin enroll-link admin | grep -o 'https://[^ ]*/enroll/[^ ]*')
  host=${link#https://}
  host=${host%%[:/]*}
  path=/enroll/${link##*/enroll/}
  jar=$(mktemp)
  web() { curl -sSk --max-time 30 -b "$jar" -c "$jar" --resolve "$host:$port:127.0.0.1" "$@"; }
  for _ in $(seq 1 100); do web -o /dev/null "https://$host:$port/healthz" 2>/dev/null && break; sleep 0.1; done
  web -o /dev/null "https://$host:$port$path"
  web -o /dev/null --data-urlencode "password=bench-otter-canyon-42-lamp" \
    --data-urlencode "confirm=bench-otter-canyon-42-lamp" "https://$host:$port$path"
  page=$(web "https://$host:$port/mfa/enroll")
  secret=$(sed -n 's/.*<code id="totp-secret">\([^<]*\)<\/code>.*/\1/p' <<<"$page")
  sealed=$(sed -n 's/.*name="sealed" value="\([^"]*\)".*/\1/p' <<<"$page")
  web -o /dev/null --data-urlencode "sealed=$sealed" \
    --data-urlencode "code=$(oathtool --totp -b "$secret")" "https://$host:$port/mfa/enroll"
  rm -f "$jar"
  [[ -n $secret ]] || { echo "enrolling the first admin failed" >&2; return 1; }
  echo "$secret"
}

# The TOTP code of the next 30-second step (the current one was taken by the enrollment).
next_code() { oathtool --totp -b -N "@$(($(date +%s) + 30))" "$1"; }

# CPU ticks (user + system, 1/100 s) of every thread of the given processes.
# Usage: before=$(ticks PID...)
ticks() {
  local t=0 f fields
  for p in "$@"; do
    for f in /proc/"$p"/task/*/stat; do
      read -ra fields < <(sed 's/.*) //' "$f" 2>/dev/null) || continue
      t=$((t + ${fields[11]:-0} + ${fields[12]:-0}))
    done
  done
  echo "$t"
}

# One wrk run while the CPU time of the given processes is counted. Prints wrk's report,
# then one last line: those processes' CPU µs per request. Contention on the shared cores
# moves that figure too (by up to a fifth between runs here).
# Usage: out=$(wrk_cpu "PID..." WRK-ARGUMENTS...)
wrk_cpu() {
  local pids=$1 before after out n
  shift
  # shellcheck disable=SC2086
  before=$(ticks $pids)
  out=$(wrk "$@" 2>/dev/null)
  # shellcheck disable=SC2086
  after=$(ticks $pids)
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  printf '%s\n%s\n' "$out" "$(echo "($after - $before) * 10000 / $n" | bc -l)"
}

# The middle value of the arguments (the lower one of two middles).
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
