#!/usr/bin/env bash
# Throughput of `rampart scrub` on one core, beside the `sed -E` pipeline a user would
# otherwise write with the same patterns (sed cannot check Luhn, mod-97 or address ranges,
# so it does less work and redacts more look-alikes).
#
# Usage: bench/scrub.sh [SIZE_MB] [PII_PERCENT] [RUNS]   (defaults: 100 3 3)
# RAMPART_BIN=path runs that binary instead of building one (to compare two builds).
# Prints MB/s for each run and the median of each tool, and their ratio.
set -euo pipefail

size_mb=${1:-100}
pii_percent=${2:-3}
runs=${3:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/bench/lib.sh"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bin=$(rampart_bin "$root")

corpus=$work/corpus.log
python3 "$root/bench/gen_logs.py" "$corpus" "$size_mb" "$pii_percent"
bytes=$(stat -c %s "$corpus")
pin=(taskset -c 0)
command -v taskset >/dev/null || pin=()

sed_pipeline() {
  sed -E \
    -e 's/-----BEGIN [A-Z ]*PRIVATE KEY-----.*/[PRIVATE_KEY]/' \
    -e 's/eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/[JWT]/g' \
    -e 's/(AKIA|ASIA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,}|(sk|rk)_(live|test)_[A-Za-z0-9]{16,}|xox[abprse]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}/[API_KEY]/g' \
    -e 's#([A-Za-z][A-Za-z0-9+.-]*://)[^ /@:]+:[^ /@]+@#\1[CREDENTIALS]@#g' \
    -e 's/([Aa]uthorization["'"'"']?[ ]*[:=][ ]*["'"'"']?[A-Za-z]+[ ]+)[A-Za-z0-9._~+\/=-]+/\1[SECRET]/g' \
    -e 's/((password|passwd|pwd|secret|token|api_?key)["'"'"']?[ ]*[:=][ ]*)[^ "'"'"'&,;]+/\1[SECRET]/gI' \
    -e 's/[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}/[EMAIL]/g' \
    -e 's/\b[A-Z]{2}[0-9]{2}( ?[A-Z0-9]){11,30}\b/[IBAN]/g' \
    -e 's/\b[0-9]([ -]?[0-9]){11,18}\b/[CARD]/g' \
    -e 's/\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b/[SSN]/g' \
    -e 's/\b[A-Z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]\b/[NINO]/g' \
    -e 's/\b[12] ?[0-9]{2} ?[0-9]{2} ?[0-9AB]{2} ?[0-9]{3} ?[0-9]{3} ?[0-9]{2}\b/[NIR]/g' \
    -e 's/\b([0-9]{1,3}\.){3}[0-9]{1,3}\b/[IP]/g' \
    -e 's/([0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}|([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,6})?::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,6})?/[IP]/g' \
    -e 's/\+[1-9][0-9]{0,2}([ .-]?\(?[0-9]{1,5}\)?){1,6}/[PHONE]/g' \
    -e 's/\(?\b[2-9][0-9]{2}\)?[ .-][2-9][0-9]{2}[ .-][0-9]{4}\b/[PHONE]/g' \
    -e 's/\b0[1-9][0-9]{0,4}([ .\/-]?[0-9]{2,8}){1,4}\b/[PHONE]/g'
}

seconds() { # command... -> elapsed seconds on stdout
  local start end
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run_rampart() { "${pin[@]}" "$bin" scrub <"$corpus" >/dev/null; }
run_sed() { "${pin[@]}" env LC_ALL=C.UTF-8 bash -c "$(declare -f sed_pipeline); sed_pipeline" <"$corpus" >/dev/null; }

printf 'corpus: %s MB, %s%% of lines with PII, %s runs, pinned: %s\n' \
  "$(echo "$bytes / 1000000" | bc)" "$pii_percent" "$runs" "${pin[*]:-no}"
rampart_rates=()
sed_rates=()
for i in $(seq "$runs"); do
  t=$(seconds run_rampart)
  r=$(echo "$bytes / $t / 1000000" | bc -l)
  rampart_rates+=("$r")
  printf 'run %d  rampart scrub %8.1f MB/s (%.2f s)\n' "$i" "$r" "$t"
  t=$(seconds run_sed)
  r=$(echo "$bytes / $t / 1000000" | bc -l)
  sed_rates+=("$r")
  printf 'run %d  sed -E        %8.1f MB/s (%.2f s)\n' "$i" "$r" "$t"
done
rampart_median=$(printf '%s\n' "${rampart_rates[@]}" | median)
sed_median=$(printf '%s\n' "${sed_rates[@]}" | median)
printf 'median  rampart scrub %8.1f MB/s\n' "$rampart_median"
printf 'median  sed -E        %8.1f MB/s\n' "$sed_median"
printf 'ratio   %.1fx\n' "$(echo "$rampart_median / $sed_median" | bc -l)"
