#!/usr/bin/env bash
# Issue #8's GPU checks on a lent `device` machine (docs/GPU.md). One call does everything that fits:
#   run(command="bash scripts/gpu-check.sh all", carry=[".device"], timeout_s=600)
# (`test` or `bench` alone; `bench` reuses the build while the machine is warm.) Needs .device/ from
# scripts/device-prepare.sh. Summaries on stdout; every log packed into $OUT/logs.tgz (or gpu-results/).
#   test:  build for sm_90; ctest -L gpu; the op parity tests (every CUDA op equals the CPU op, backward kernels, TF32/bf16
#          GEMMs, bf16 activation storage, fused and flash attention, geometry ops, offload); the golden sets with the
#          model on the GPU (fp32, also with the MSA offloaded; bf16 within a pLDDT point; fused and flash attention);
#          a template model against the CPU.
#   bench: kernel bandwidth against a device copy; Evoformer block fp32/TF32/bf16, fused and flash at R=256 and
#          1024, and the host CPU for comparison; the full model at R=256 and R=1024 (fp32, bf16), and at R=512
#          with 4 templates. host_bf16 (issue #21): the native bf16 GEMM test and `bench gemm` on the host CPU.
#   training (issue #23, in test and all): the training step on the GPU against the host, 20 updates on both, and
#          one update at AF2 widths timed (fp32, bf16). `bash scripts/gpu-check.sh ops,training` checks #23 alone.
# BUDGET (seconds, default 540) bounds the whole run: a step that would pass it is skipped.
# CONFIGURE_ONLY=1 stops after CMake (to check the dependency set-up on any machine).
set -uo pipefail
cd "$(dirname "$0")/.."
stage=${1:-test}
out=${OUT:-gpu-results}
mkdir -p "$out"
deps=/tmp/axfold-deps
build=build-gpu
[ -d .device/debs ] || { echo "gpu-check: .device/ is missing: run scripts/device-prepare.sh and carry .device" >&2; exit 2; }
t0=$(date +%s)

# --- dependencies: Debian 12 packages unpacked beside the image, never over it ---------------------------
rm -rf "$deps" && mkdir -p "$deps/runtime" "$deps/fallback"
for f in .device/debs/*.deb; do dpkg -x "$f" "$deps"; done
for f in .device/runtime/*.deb; do [ -e "$f" ] && dpkg -x "$f" "$deps/runtime"; done
# A package's absolute links (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) go to the image's own copy.
find "$deps" -xtype l | while read -r l; do
  so=$(basename "$(readlink "$l")" | sed -E 's/(\.so\.[0-9]+).*/\1/')
  sys=$(ldconfig -p | awk -v n="$so" '$1 == n {print $NF; exit}')
  [ -n "$sys" ] && ln -sf "$sys" "$l"
done
# Runtime libraries the image lacks (by soname) come from the carried copies; the image's own win otherwise.
ldconfig -p | awk 'NR > 1 {print $1}' | sort -u >"$deps/system-sonames.txt"
for so in "$deps"/runtime/usr/lib/x86_64-linux-gnu/*.so.[0-9]* "$deps"/runtime/lib/x86_64-linux-gnu/*.so.[0-9]*; do
  [ -e "$so" ] || continue
  name=$(basename "$so")
  [[ "$name" =~ \.so\.[0-9]+$ ]] || continue
  grep -qxF "$name" "$deps/system-sonames.txt" || ln -sf "$so" "$deps/fallback/$name"
done
echo "runtime libraries taken from the carried Debian packages: $(ls "$deps/fallback" | tr '\n' ' ')" | tee "$out/deps.txt"
lib=$deps/usr/lib/x86_64-linux-gnu  # the build packages (HDF5, Boost, GoogleTest), which the image lacks
export LD_LIBRARY_PATH=$lib:$lib/hdf5/serial/lib:$deps/fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; \
  g++ --version | head -1; cmake --version | head -1; } 2>&1 | tee "$out/machine.txt"

# --- build (skipped when a warm machine still has it) ------------------------------------------------------
if [ "$stage" != bench ] || [ ! -x "$build/apps/axfold" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAXFOLD_BUILD_TESTS=ON -DAXFOLD_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$deps/usr;$lib/cmake" \
    -DEigen3_DIR="$deps/usr/share/eigen3/cmake" -DHDF5_ROOT="$lib/hdf5/serial" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON \
    -DHDF5_C_COMPILER_EXECUTABLE=/nonexistent -DBoost_DIR="$lib/cmake/Boost-1.74.0" -DGTest_DIR="$lib/cmake/GTest" \
    -DZLIB_ROOT="$deps/usr" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  [ "${CONFIGURE_ONLY:-0}" = 1 ] && { grep -E "^-- axfold" "$out/build.log"; exit 0; }
  targets=(axfold test_kernels test_kernels_gpu test_model_gpu test_training_gpu)
  grep -q "NCCL ON" "$out/build.log" && targets+=(test_nccl_gpu)  # the one-rank NCCL tests, where NCCL is found
  cmake --build "$build" -j"$(nproc)" --target "${targets[@]}" >>"$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
  echo "build: $(( $(date +%s) - t0 )) s"
fi

# Every step has its own timeout and is skipped when it would run past the deadline (BUDGET seconds from
# the start, default 540, under the tool's 600-second limit), so that what ran always comes back. Logs go
# to /tmp/gpu-logs and are packed into $out/logs.tgz after each step (the tool returns at most 8 files).
budget=${BUDGET:-540}
logs=/tmp/gpu-logs; rm -rf "$logs"; mkdir -p "$logs"
cp "$out/build.log" "$out/machine.txt" "$out/deps.txt" "$logs/" 2>/dev/null; rm -f "$out/build.log"
pack() { tar -czf "$out/logs.tgz" -C "$logs" . 2>/dev/null; }
step() {  # $1: seconds the step may take, $2: log name, then the command
  local secs=$1 name=$2; shift 2
  local left=$(( budget - ($(date +%s) - t0) ))
  if [ "$left" -lt "$secs" ]; then echo "SKIP $name (${left} s left, needs $secs)"; return 0; fi
  local s0=$(date +%s)
  timeout "$secs" "$@" >"$logs/$name.log" 2>&1
  local rc=$?
  echo "== $name: rc=$rc, $(( $(date +%s) - s0 )) s"
  grep -E "tests passed|tests failed|FAILED|Failure|Expected|Which is|actual|max \|diff|bf16 vs fp32|PASSED|SKIPPED|error|Error|training update|gradient arrays|cosine|\{\"" \
    "$logs/$name.log" | head -${LINES_PER_STEP:-25}
  pack
}
ax=$build/apps/axfold
kt=$build/tests/kernels/test_kernels_gpu
st=$build/tests/model/test_model_gpu
# timeout runs programs, not shell functions: hence env in front of the golden and fused runs.
gold=(env AXFOLD_GOLDEN_DIR="$PWD/.device/golden")
fused=(env AXFOLD_FUSED_ATTENTION=1)
c=(--device cuda --json)
ops() { step 120 ops "$kt"; }
nccl() {  # the NCCL communicator and DAP's device shards on one GPU (a one-rank communicator)
  if [ -x "$build/tests/parallel/test_nccl_gpu" ]; then step 120 nccl "$build/tests/parallel/test_nccl_gpu"
  else echo "SKIP nccl (not built: no NCCL found at configure time)"; fi
}
ctest_gpu() {  # the issue's acceptance command: every gpu-labelled test through ctest (golden sets from .device)
  step 200 ctest-gpu "${gold[@]}" ctest --test-dir "$build" -L gpu --output-on-failure
}
golden() { golden_fp32; golden_bf16; golden_fused; }
golden_fp32() { step 150 golden-cuda "${gold[@]}" "$st" --gtest_filter='*matches_on_cuda:*offload*:*template*'; }
golden_bf16() { step 150 golden-cuda-bf16 "${gold[@]}" "$st" --gtest_filter='*bf16*'; }
golden_fused() {  # fp32: the CUDA-core fused kernel; bf16: the tensor-core flash kernel
  step 150 golden-cuda-fused "${gold[@]}" AXFOLD_FUSED_ATTENTION=1 "$st" --gtest_filter='*matches_on_cuda'
  step 150 golden-cuda-flash-bf16 "${gold[@]}" AXFOLD_FUSED_ATTENTION=1 "$st" --gtest_filter='*bf16*'
}
flash() {  # the tensor-core flash attention (TF32) against the unfused TF32 block, at 256 and 1024 residues
  for n in 256 1024; do
    block tf32 $n
    step 120 evo$n-flash-tf32 "${fused[@]}" "$ax" bench evoformer --precision tf32 --n-seq 128 --n-res $n \
      --blocks $(( n > 256 ? 3 : 5 )) --breakdown "${c[@]}"
  done
}
memcheck() {  # out-of-bounds accesses and launch errors the parity tests could miss
  step 150 memcheck "$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)" --tool memcheck --print-limit 20 "$kt" --gtest_brief=1
}
racecheck() {  # shared-memory races and uninitialised reads in the fused and flash attention kernels
  local cs; cs="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"
  step 120 racecheck "$cs" --tool racecheck --error-exitcode 1 --print-limit 20 "$kt" --gtest_filter='*FlashAttention*:*FusedAttention*' --gtest_brief=1
  step 120 initcheck "$cs" --tool initcheck --error-exitcode 1 --print-limit 20 "$kt" --gtest_filter='*FlashAttention*:*FusedAttention*' --gtest_brief=1
}
kernels() {
  step 40 kernels-128 "$ax" bench kernels --rows 1048576 --cols 128 "${c[@]}"
  step 40 kernels-1024 "$ax" bench kernels --rows 131072 --cols 1024 "${c[@]}"
  step 40 kernels-2048 "$ax" bench kernels --rows 65536 --cols 2048 "${c[@]}"
}
block256() { for p in fp32 tf32 bf16; do block $p 256; done
  step 60 evo256-fused "${fused[@]}" "$ax" bench evoformer --n-seq 128 --n-res 256 --blocks 5 "${c[@]}"
}
block1024() { for p in fp32 bf16; do block $p 1024; done
  step 120 evo1024-fused "${fused[@]}" "$ax" bench evoformer --n-seq 128 --n-res 1024 --blocks 3 "${c[@]}"
}
block() {  # $1 precision, $2 residues: Evoformer block with the per-module breakdown
  step $(( $2 > 256 ? 120 : 60 )) evo$2-$1 "$ax" bench evoformer --precision $1 --n-seq 128 --n-res $2 \
    --blocks $(( $2 > 256 ? 3 : 5 )) --breakdown "${c[@]}"
}
models() { for p in fp32 bf16; do model $p 256; done; for p in fp32 bf16; do model $p 1024; done; }
model() {  # $1 precision, $2 residues[, more options]: one full-model iteration
  local p=$1 n=$2; shift 2
  step $(( n > 256 ? 150 : 90 )) model$n-$p${1:+-offload} "$ax" bench model --precision $p --n-res $n --n-seq 128 --n-extra 1024 "${c[@]}" "$@"
}
offload() { model fp32 1024 --offload on; }  # the MSA parked during the extra-MSA stack: time and device peak
templates() {  # model_1_ptm with 4 random templates: the template stage on the device, its time and device peak
  step 150 model512-fp32-templates "$ax" bench model --n-res 512 --n-seq 128 --n-extra 1024 --templates 4 "${c[@]}"
}
bf16() { golden_bf16; block bf16 256; block bf16 1024; model bf16 256; model bf16 1024; }
cpu_and_gpu() {  # $1 step name, $2 directory, then a command: on the CPU, on the GPU, on the GPU in bf16
  local name=$1 d=$2; shift 2
  step 120 $name-cpu "$@" --out-dir $d/cpu
  step 60 $name-cuda "$@" --device cuda --out-dir $d/cuda
  step 60 $name-cuda-bf16 "$@" --device cuda --precision bf16 --out-dir $d/bf16
}
cli() {  # the user's command on the bundled example (full depth, random weights): CPU against the GPU trunk
  local d=/tmp/axfold-cli f=data/example/features.h5
  rm -rf $d && mkdir -p $d
  step 60 cli-params "$ax" init-params --model-name model_3_ptm --out $d/params.npz --seed 1
  local run=("$ax" predict --features $f --params $d/params.npz --model-name model_3_ptm --save-outputs)
  cpu_and_gpu cli $d "${run[@]}"
  step 20 cli-compare python3 - $d <<'PY'
import json, sys
d = sys.argv[1]
def load(r):
    c = json.load(open(f"{d}/{r}/confidence_model_3_ptm.json"))["confidenceScore"]
    t = json.load(open(f"{d}/{r}/timings.json"))["predict_model_3_ptm"]
    return c, t
cpu, tc = load("cpu")
for r in ("cuda", "bf16"):
    c, t = load(r)
    print(json.dumps({"cli": r, "plddt_max_abs_diff_vs_cpu": max(abs(a - b) for a, b in zip(c, cpu)),
                      "predict_seconds": t, "cpu_predict_seconds": tc}))
PY
}
training() {  # issue #23: the training step on the GPU against the host (fp32, dropout, a template model, bf16),
  # 20 updates on the CPU and the GPU, and one update at AF2 widths (crop 256, S=128, 1024 extra rows, 48 blocks)
  step 150 training-gpu "$build/tests/training/test_training_gpu"
  local d=/tmp/axfold-train s=tests/data/golden/small
  rm -rf $d
  local run=("$ax" train --params $s/params.npz --model-name model_3_ptm --examples $s/loss_cases.h5
             --structure-module-layers 2 --warmup-steps 0 --learning-rate 3e-4 --steps 20)
  cpu_and_gpu train20 $d "${run[@]}"
  step 20 train20-compare python3 - $d <<'PY'
import json, sys
d = sys.argv[1]
def losses(r):
    return [json.loads(line)["loss"] for line in open(f"{d}/{r}/training_log.jsonl")]
cpu = losses("cpu")
for r in ("cuda", "bf16"):
    l = losses(r)
    print(json.dumps({"train20": r, "first": l[0], "last": l[-1], "cpu_first": cpu[0], "cpu_last": cpu[-1],
                      "max_rel_diff_vs_cpu": max(abs(a - b) / abs(b) for a, b in zip(l, cpu))}))
PY
  for p in fp32 bf16; do
    step 150 train256-$p "$ax" bench model --training --precision $p --n-res 256 --n-seq 128 --n-extra 1024 "${c[@]}"
  done
}
host_bf16() {  # issue #21: native bf16 GEMMs (oneDNN on AVX512_BF16/AMX) on the host CPU, where it has them
  grep -o -w -E 'avx512_bf16|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; lscpu | grep -m1 'Model name'
  step 60 host-bf16-gemm-test "$build/tests/kernels/test_kernels" --gtest_filter='Ops.NativeBf16*:*attention*'
  step 90 host-gemm "$ax" bench gemm --threads 2
  for p in fp32 bf16; do
    step 60 host-evo256-2threads-$p "$ax" bench evoformer --n-seq 128 --n-res 256 --blocks 3 --threads 2 --precision $p
  done
}
host() { step 90 evo256-host-cpu "$ax" bench evoformer --n-seq 128 --n-res 256 --blocks 2 --threads "$(nproc)" --json; }
profile() {  # time per kernel of one Evoformer block (R=512; PROFILE_PRECISIONS, default fp32) under Nsight Compute
  local ncu; ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  for p in ${PROFILE_PRECISIONS:-fp32}; do
    LINES_PER_STEP=0 step 120 profile-$p "$ncu" --metrics gpu__time_duration.sum --print-summary per-kernel \
      "$ax" bench evoformer --precision $p --n-seq 128 --n-res 512 --blocks 1 "${c[@]}"
  done
}
# A stage is test, bench, all, or a comma-separated list of the functions above (e.g. ops,memcheck,profile).
case $stage in
  test) ops; nccl; golden; training; memcheck; racecheck; ctest_gpu ;;
  bench) host_bf16; kernels; block256; block1024; flash; models; templates; host ;;
  # the order of `all` puts what a fix would need first, and the longest benchmarks last
  all) ops; training; host_bf16; nccl; golden_fp32; kernels; block256; golden_bf16; golden_fused; memcheck; block1024; flash; models; offload; templates; host ;;
  *) for f in ${stage//,/ }; do
       declare -F "$f" >/dev/null || { echo "gpu-check: '$f': expected test, bench, all or a step function" >&2; exit 2; }
       "$f"
     done ;;
esac
pack
echo "gpu-check $stage done in $(( $(date +%s) - t0 )) s; results in $out"
