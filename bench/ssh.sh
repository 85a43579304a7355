#!/usr/bin/env bash
# The SSH bastion against its peer, an OpenSSH jump host (`ssh -J`, sshd as the jump), and
# against a direct connection, all in one run on loopback:
#   1. throughput: SIZE MiB through `cat > /dev/null` on the target (goal: rampart >= 1.0x
#      the jump host);
#   2. connection setup: `ssh ... true` N times, median (goal: <= 1.2x the jump host);
#   3. IDLE concurrent idle sessions: rampart's resident memory per session (goal: <= 1 MiB).
# The person's MFA is not asked here (policy optional, no TOTP enrolled): this measures the
# path a remembered MFA takes (scp loops, Ansible), which is what repeated connections see.
#
# Usage: bench/ssh.sh [SIZE_MIB] [N] [IDLE]   (defaults: 1024 50 200)
# RAMPART_BIN=path uses that binary instead of building a release one.
set -euo pipefail
size_mib=${1:-1024}
n=${2:-50}
idle=${3:-200}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
bin=$(rampart_bin "$root")

tmp=$(mktemp -d /tmp/rampart-bench-ssh.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}
mkdir -p /run/sshd
ssh-keygen -q -t ed25519 -N '' -C bench -f "$tmp/client"

# rampart with the bastion on, one account with the client's key and a grant to the target.
R=$(port) W=$(port)
"$bin" --data-dir "$tmp/r" init >/dev/null 2>&1
cat >"$tmp/r/rampart.toml" <<EOF
[web]
https_listen = "127.0.0.1:$W"
http_listen = "127.0.0.1:$(port)"
metrics_listen = "127.0.0.1:$(port)"

[ssh]
listen = "127.0.0.1:$R"
EOF
"$bin" --data-dir "$tmp/r" check-config >/dev/null
ca=$("$bin" --data-dir "$tmp/r" ssh ca | grep '^ssh-ed25519')

# The target (trusts rampart's CA and, for the jump and direct runs, the client key) and the jump.
start_sshd() { # name port extra-config
  local d=$tmp/$1
  mkdir -p "$d"
  ssh-keygen -q -t ed25519 -N '' -f "$d/host"
  echo "$ca" >"$d/ca.pub"
  cp "$tmp/client.pub" "$d/authorized_keys"
  cat >"$d/sshd_config" <<EOF
Port $2
ListenAddress 127.0.0.1
HostKey $d/host
PidFile $d/pid
TrustedUserCAKeys $d/ca.pub
AuthorizedKeysFile $d/authorized_keys
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding yes
MaxStartups 1000:30:1000
MaxSessions 1000
$3
EOF
  /usr/sbin/sshd -D -f "$d/sshd_config" -E "$d/log" &
  pids+=($!)
  wait_port "$2"
}
T=$(port) J=$(port)
start_sshd target "$T" ""
start_sshd jump "$J" ""

# The admin who grants enrolls TOTP first (MFA required); then the policy is made optional
# for the measured person and rampart serves again.
"$bin" --data-dir "$tmp/r" serve 2>"$tmp/serve.log" &
rpid=$!
wait_port "$R"
secret=$(enroll_admin "$bin" "$tmp/r" "$W") || { kill "$rpid"; exit 1; }
cli() { "$bin" --data-dir "$tmp/r" "$@" >/dev/null; }
cli user add bench --email bench@example.com
cli ssh key add bench "$tmp/client.pub"
cli target add t1 --kind ssh --address "127.0.0.1:$T" --env production
cli role add bench --grant "t1 production $(id -un)" --as admin --code "$(next_code "$secret")"
cli grant add bench bench --as admin
kill "$rpid"
wait "$rpid" 2>/dev/null || true
printf '\n[policy]\nmfa = "optional"\n' >>"$tmp/r/rampart.toml"
"$bin" --data-dir "$tmp/r" serve 2>"$tmp/serve.log" &
rpid=$!
pids+=("$rpid")
wait_port "$R"

opts=(-F /dev/null -i "$tmp/client" -o IdentitiesOnly=yes -o IdentityAgent=none
  -o UserKnownHostsFile="$tmp/known_hosts" -o StrictHostKeyChecking=accept-new -o BatchMode=yes
  -o LogLevel=ERROR)
login=$(id -un)
via_rampart=(ssh "${opts[@]}" -p "$R" "bench:t1@127.0.0.1")
direct=(ssh "${opts[@]}" -p "$T" "$login@127.0.0.1")
# -J starts a second ssh that must see the same options.
cat >"$tmp/ssh_config" <<EOF
Host *
  IdentityFile $tmp/client
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $tmp/known_hosts
  StrictHostKeyChecking accept-new
  BatchMode yes
  LogLevel ERROR
EOF
via_jump=(ssh -F "$tmp/ssh_config" -J "$login@127.0.0.1:$J" -p "$T" "$login@127.0.0.1")
for c in via_rampart via_jump direct; do
  declare -n cmd=$c
  "${cmd[@]}" true || { echo "$c does not work; log:" >&2; cat "$tmp/serve.log" >&2; exit 1; }
done

now() { date +%s.%N; }
throughput() { # prints MiB/s
  declare -n cmd=$1
  local t0 t1
  t0=$(now)
  head -c "$((size_mib * 1024 * 1024))" /dev/zero | "${cmd[@]}" 'cat > /dev/null'
  t1=$(now)
  echo "$size_mib / ($t1 - $t0)" | bc -l
}
setup() { # prints the median seconds of `ssh … true`
  declare -n cmd=$1
  local times=() t0 t1
  for _ in $(seq 1 "$n"); do
    t0=$(now)
    "${cmd[@]}" true
    t1=$(now)
    times+=("$(echo "$t1 - $t0" | bc -l)")
  done
  printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
echo "throughput: $size_mib MiB each way..." >&2
tr=$(throughput via_rampart) tj=$(throughput via_jump) td=$(throughput direct)
echo "connection setup: $n connections each..." >&2
sr=$(setup via_rampart) sj=$(setup via_jump) sd=$(setup direct)

echo "idle sessions: $idle..." >&2
rss() { awk '/^VmRSS/ {print $2}' "/proc/$rpid/status"; }
before=$(rss)
idle_pids=()
for _ in $(seq 1 "$idle"); do
  "${via_rampart[@]}" 'sleep 600' </dev/null >/dev/null 2>&1 &
  idle_pids+=($!)
done
for _ in $(seq 1 600); do
  live=$("$bin" --data-dir "$tmp/r" sessions list | grep -c 'bench' || true)
  [[ $live -ge $idle ]] && break
  sleep 0.1
done
sleep 1
after=$(rss)
for p in "${idle_pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${idle_pids[@]}" 2>/dev/null || true
per_kib=$(echo "($after - $before) / $idle" | bc -l)

printf '\n%-22s %12s %12s %12s %10s %8s\n' what rampart "jump host" direct goal ratio
printf '%-22s %12.1f %12.1f %12.1f %10s %7.2fx\n' "throughput MiB/s" "$tr" "$tj" "$td" ">= 1.0x" "$(echo "$tr / $tj" | bc -l)"
printf '%-22s %12.3f %12.3f %12.3f %10s %7.2fx\n' "setup median s" "$sr" "$sj" "$sd" "<= 1.2x" "$(echo "$sr / $sj" | bc -l)"
printf '%-22s %12.0f %12s %12s %10s %7.2fx\n' "idle KiB/session" "$per_kib" - - "<= 1024" "$(echo "$per_kib / 1024" | bc -l)"
echo "($size_mib MiB through cat > /dev/null; median of $n connection setups; $live of $idle idle sessions live when measured; $(nproc) cores)"
