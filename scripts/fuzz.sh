#!/usr/bin/env bash
# Fuzzes axfold's input parsers with libFuzzer under AddressSanitizer + UBSan (clang from Debian).
#   scripts/fuzz.sh [SECONDS] [FORMAT...]     SECONDS per harness (default 600); FORMATs from the list below
# Builds build-sanitize (the build scripts/sanitize.sh uses) when needed, replays every regression input in
# tests/fuzz/regressions/<format>/, then fuzzes each format from a corpus seeded with tests/data's files of that
# format (kept in build-sanitize/fuzz/<format>/corpus, so later runs go on from there). A finding (crash, sanitizer
# report, leak, timeout, out of memory) stops that harness and is written to build-sanitize/fuzz/<format>/;
# fix it, then copy the input to tests/fuzz/regressions/<format>/. Exits non-zero when anything was found.
# AXFOLD_FUZZ_SEED fixes libFuzzer's random seed (CI sets 1, so a landing is not failed by chance; 0: random).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${1:-600}
shift || true
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(fasta a3m stockholm mmcif npz features params)

build=build-sanitize
bash scripts/sanitize.sh --build-only

seeds() {  # the seed files of one format
  local d=tests/data
  case "$1" in
    fasta) ls "$d"/realdata/*.fasta "$d"/golden/multimer_small/data/chains.fasta ;;
    a3m) find "$d" -name '*.a3m' -size -20k ;;
    stockholm) find "$d" -name '*.sto' -size -20k ;;
    mmcif) ls tests/fuzz/seeds/mmcif/* ;;
    npz) ls tests/fuzz/seeds/npz/* ;;
    features) ls "$d"/golden/small/features.h5 "$d"/golden/multimer_small/data/*.h5 "$d"/realdata/*.h5 ;;
    params) ls "$d"/golden/small/params.h5 "$d"/golden/small/params.npz ;;
    *) echo "fuzz.sh: unknown format '$1' (fasta a3m stockholm mmcif npz features params)" >&2; exit 2 ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp
failed=()
for f in "${formats[@]}"; do
  exe=$build/tests/fuzz/fuzz_$f
  work=$build/fuzz/$f
  mkdir -p "$work/corpus"
  # shellcheck disable=SC2046
  cp -n $(seeds "$f") "$work/corpus/"
  regressions=(tests/fuzz/regressions/"$f"/*)
  if [ -e "${regressions[0]}" ]; then
    echo "== fuzz $f: ${#regressions[@]} regression inputs"
    if ! "$exe" "${regressions[@]}" > "$work/regressions.log" 2>&1; then
      tail -n 40 "$work/regressions.log"
      failed+=("$f (a regression input fails again: $work/regressions.log)")
      continue
    fi
  fi
  echo "== fuzz $f: ${seconds} s"
  if "$exe" -max_total_time="$seconds" -seed="${AXFOLD_FUZZ_SEED:-0}" -timeout=20 -rss_limit_mb=4096 \
       -max_len=1048576 -print_final_stats=1 \
       -artifact_prefix="$work/" "$work/corpus" > "$work/fuzz.log" 2>&1; then
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/fuzz.log" | tr '\n' ' '
    echo
  else
    tail -n 60 "$work/fuzz.log"
    failed+=("$f (see $work/fuzz.log; the input is $(ls -t "$work"/crash-* "$work"/leak-* "$work"/timeout-* \
             "$work"/oom-* 2>/dev/null | head -n 1))")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'fuzz.sh: finding in %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz.sh: no findings (${formats[*]}, ${seconds} s each)"
