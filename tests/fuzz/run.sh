#!/usr/bin/env bash
# run.sh: `make fuzz` runs this after building the targets. Each target runs
# for FUZZ_SECONDS under nice -n 19 (the cores are shared), starting from its
# seeds (tests/fuzz/corpus/<target>) and kept inputs (tests/fuzz/regressions/
# <target>), growing its own corpus in build/fuzz/corpus/<target>. Limits: an
# input that runs over 1 s of CPU time is a hang (fuzz_util.c; libFuzzer's own
# -timeout counts wall time, so it is only a 10 s backstop on these shared
# cores), one that needs over 1 GB an out-of-memory (-rss_limit_mb,
# -malloc_limit_mb). An input
# that crashes, hangs or runs out of memory lands in build/fuzz/findings/
# <target>/; fix the code, then keep the input in tests/fuzz/regressions/
# <target>/ so `make test` replays it. Prints one line per target and a table
# (also in build/fuzz/summary.md); exits 1 when anything was found.
#   FUZZ_SECONDS=600 FUZZ_TARGETS="ckpt npy" tests/fuzz/run.sh
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"jpeg png ckpt shard labels classes index_cache npy"}
out=build/fuzz
mkdir -p "$out"
rows=()
found=0
for t in $targets; do
  bin=$out/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $bin is missing; run make fuzz"; exit 2; }
  mkdir -p "$out/corpus/$t" "$out/findings/$t" "$out/tmp/$t"
  dirs=("$out/corpus/$t" "tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && dirs+=("tests/fuzz/regressions/$t")
  before=$(ls "$out/findings/$t" | wc -l)
  log=$out/$t.log
  start=$(date +%s)
  TMPDIR=$PWD/$out/tmp/$t UBSAN_OPTIONS=print_stacktrace=1 nice -n 19 "$bin" -max_total_time="$secs" -timeout=10 \
    -rss_limit_mb=1024 -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$out/findings/$t/" \
    "${dirs[@]}" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  execs=$(stat number_of_executed_units); rate=$(stat average_exec_per_sec); rss=$(stat peak_rss_mb)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  units=$(ls "$out/corpus/$t" | wc -l)
  new=$(( $(ls "$out/findings/$t" | wc -l) - before ))
  what=none
  if [ $new -gt 0 ] || [ $rc -ne 0 ]; then
    found=1
    what="$(ls -t "$out/findings/$t" | head -n "$new" | sed 's/-.*//' | sort | uniq -c | awk '{ s = s (NR > 1 ? ", " : "") $1 " " $2 } END { print s }')"
    [ -n "$what" ] || what="exit $rc (see $log)"
    what="$what: $(grep -m1 -E '^==[0-9]+==ERROR|runtime error|property violated|ERROR: libFuzzer' "$log" | cut -c1-100)"
  fi
  printf 'fuzz %-12s %5ss %10s execs %7s/s  cov %6s  corpus %5s  rss %4s MB  found: %s\n' \
    "$t" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$units" "${rss:-?}" "$what"
  rows+=("| $t | $took | ${execs:-?} | ${rate:-?} | ${cov:-?} | $units | $what |")
  rm -rf "${out:?}/tmp/$t"
done
{
  echo "Fuzzing, $(date -u '+%Y-%m-%d %H:%M UTC'), FUZZ_SECONDS=$secs, nice -n 19, $(getconf _NPROCESSORS_ONLN) cores"
  echo
  echo "| target | seconds | executions | exec/s | coverage (edges) | corpus | findings |"
  echo "|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$out/summary.md"
echo "summary: $out/summary.md"
exit $found
