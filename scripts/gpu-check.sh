#!/usr/bin/env bash
# Issue #8's GPU checks on a lent `device` machine (docs/GPU.md), in two calls that each fit the tool's
# 10-minute limit; the second reuses the first's build while the machine is warm (and rebuilds if not):
#   run(command="bash scripts/gpu-check.sh test",  carry=[".device"], timeout_s=600)
#   run(command="bash scripts/gpu-check.sh bench", carry=[".device"], timeout_s=600)
# Needs .device/ from scripts/device-prepare.sh. Logs and JSON lines go to $OUT (or gpu-results/).
#   test:  build for sm_90; ctest -L gpu (every CUDA op equals the CPU op, backward kernels, TF32/bf16 GEMMs,
#          bf16 activation storage, fused attention); the golden sets with the trunk on the GPU (fp32; bf16 within a pLDDT point;
#          fp32 again with the fused attention).
#   bench: kernel bandwidth against a device copy; Evoformer block fp32/TF32/bf16 and fused at R=256 and
#          1024, and the host CPU for comparison; the full model at R=256 and R=1024 (fp32, bf16).
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
if [ "$stage" = test ] || [ ! -x "$build/apps/axfold" ]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAXFOLD_BUILD_TESTS=ON -DAXFOLD_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$deps/usr;$lib/cmake" \
    -DEigen3_DIR="$deps/usr/share/eigen3/cmake" -DHDF5_ROOT="$lib/hdf5/serial" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON \
    -DHDF5_C_COMPILER_EXECUTABLE=/nonexistent -DBoost_DIR="$lib/cmake/Boost-1.74.0" -DGTest_DIR="$lib/cmake/GTest" \
    -DZLIB_ROOT="$deps/usr" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
  [ "${CONFIGURE_ONLY:-0}" = 1 ] && { grep -E "^-- axfold" "$out/build.log"; exit 0; }
  cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
  echo "build: $(( $(date +%s) - t0 )) s"
fi

if [ "$stage" = test ]; then
  timeout 150 ctest --test-dir "$build" -L gpu -E golden --output-on-failure >"$out/ctest-gpu.log" 2>&1
  echo "ctest -L gpu (ops): rc=$?"; grep -E "tests passed|Failed|\*\*\*|Error" "$out/ctest-gpu.log" | head -20
  golden() {  # $1: log name, then environment and gtest filter
    local name=$1; shift
    env AXFOLD_GOLDEN_DIR="$PWD/.device/golden" "$@" timeout 120 "$build/tests/structure/test_structure_gpu" \
      --gtest_filter="${FILTER:-*}" >"$out/$name.log" 2>&1
    echo "$name: rc=$?"; grep -E "FAIL|bf16 vs fp32|PASSED|SKIPPED" "$out/$name.log" | head -12
  }
  FILTER='*matches_on_cuda' golden golden-cuda
  FILTER='*bf16*' golden golden-cuda-bf16
  FILTER='*matches_on_cuda' golden golden-cuda-fused AXFOLD_FUSED_ATTENTION=1
elif [ "$stage" = bench ]; then
  ax=$build/apps/axfold
  bench() { timeout 120 "$ax" bench "$@" --json 2>>"$out/bench.err" | tee -a "$out/bench.jsonl"; }
  fused() { AXFOLD_FUSED_ATTENTION=1 bench "$@"; }
  bench kernels --device cuda --rows 1048576 --cols 128
  bench kernels --device cuda --rows 131072 --cols 1024
  bench kernels --device cuda --rows 65536 --cols 2048
  for p in fp32 tf32 bf16; do bench evoformer --device cuda --precision $p --n-seq 128 --n-res 256 --blocks 5; done
  fused evoformer --device cuda --n-seq 128 --n-res 256 --blocks 5
  for p in fp32 bf16; do bench evoformer --device cuda --precision $p --n-seq 128 --n-res 1024 --blocks 3; done
  fused evoformer --device cuda --n-seq 128 --n-res 1024 --blocks 3
  bench evoformer --n-seq 128 --n-res 256 --blocks 2 --threads "$(nproc)"  # the host CPU, same machine
  bench model --device cuda --n-res 256 --n-seq 128 --n-extra 1024
  bench model --device cuda --precision bf16 --n-res 256 --n-seq 128 --n-extra 1024
  bench model --device cuda --n-res 1024 --n-seq 128 --n-extra 1024
  bench model --device cuda --precision bf16 --n-res 1024 --n-seq 128 --n-extra 1024  # bf16 GEMMs + storage
else
  echo "gpu-check: stage '$stage': expected test or bench" >&2; exit 2
fi
echo "gpu-check $stage done in $(( $(date +%s) - t0 )) s; results in $out"
