#!/usr/bin/env bash
# Issue #21's CPU figures in one run, so that every ratio compares runs of the same machine and hour:
# the GEMM and kernel ceilings, the Evoformer block (S=128, R=256) in fp32 and bf16 against OpenFold's block
# (scripts/peer-evoformer.py over ../shared/peer) in fp32 and bf16 autocast, interleaved, then one full-model
# iteration at R=256 (48+4 blocks) in fp32 and bf16. Needs a release build in build/.
# Usage: scripts/cpu-bench.sh [THREADS=2] [ROUNDS=2] [--no-peer-bf16] [--no-model]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
threads="${1:-2}"
rounds="${2:-2}"
peer_bf16=1
model=1
for a in "${@:3}"; do
  case "$a" in
    --no-peer-bf16) peer_bf16=0 ;;
    --no-model) model=0 ;;
    *) echo "cpu-bench.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
axfold="$root/build/apps/axfold"
peer=(/usr/bin/python3 "$root/scripts/peer-evoformer.py" 128 256 "$threads")
echo "== $(date -u +%FT%TZ), commit $(git -C "$root" rev-parse --short HEAD), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo "== CPU flags: $(grep -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"$axfold" bench gemm --threads "$threads"
"$axfold" bench kernels --threads "$threads"
"$axfold" bench evoformer --threads "$threads" --blocks 3 --breakdown 2>&1 | tail -11
"$axfold" bench evoformer --threads "$threads" --blocks 3 --breakdown --precision bf16 2>&1 | tail -11
for r in $(seq "$rounds"); do
  echo "== round $r"
  "$axfold" bench evoformer --threads "$threads" --blocks 5 | tail -1
  "$axfold" bench evoformer --threads "$threads" --blocks 5 --precision bf16 | tail -1
  "${peer[@]}" 3 fp32
done
if [ "$peer_bf16" = 1 ]; then "${peer[@]}" 1 bf16; fi
if [ "$model" = 1 ]; then
  "$axfold" bench model --n-res 256 --threads "$threads" --json
  "$axfold" bench model --n-res 256 --threads "$threads" --precision bf16 --json
fi
