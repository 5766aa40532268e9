#!/usr/bin/env bash
# Issue #8's GPU checks in one run on a lent `device` machine (docs/GPU.md). Needs .device/ from
# scripts/device-prepare.sh, carried with the working tree:
#   run(command="bash scripts/gpu-check.sh", carry=[".device"], timeout_s=600)
# Steps, most important first, each logged under $OUT (or gpu-results/ elsewhere): build with CUDA for
# sm_90; the gpu-labelled tests (every CUDA op equals the CPU op, backward kernels, bf16/TF32 GEMMs, the
# fused attention); the golden sets with the trunk on the GPU in fp32 and bf16, and with the fused
# attention; the benchmarks (kernel bandwidth against a device copy, Evoformer block fp32/TF32/bf16 and
# fused at R=256 and 1024, full model at R=256 and 1024).
# CONFIGURE_ONLY=1 stops after CMake (to check the dependency set-up on any machine).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
deps=/tmp/axfold-deps
[ -d .device/debs ] || { echo "gpu-check: .device/ is missing: run scripts/device-prepare.sh and carry .device" >&2; exit 2; }

# --- dependencies: Debian 12 packages unpacked beside the image, never over it ---------------------------
rm -rf "$deps" && mkdir -p "$deps/runtime" "$deps/fallback"
for f in .device/debs/*.deb; do dpkg -x "$f" "$deps"; done
for f in .device/runtime/*.deb; do dpkg -x "$f" "$deps/runtime"; done
# A package's absolute links (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) go to the image's own copy.
find "$deps" -xtype l | while read -r l; do
  so=$(basename "$(readlink "$l")" | sed -E 's/(\.so\.[0-9]+).*/\1/')
  sys=$(ldconfig -p | awk -v n="$so" '$1 == n {print $NF; exit}')
  [ -n "$sys" ] && ln -sf "$sys" "$l"
done
# Runtime libraries the image lacks (by soname) come from the carried copies; the image's win otherwise.
ldconfig -p | awk 'NR > 1 {print $1}' | sort -u >"$deps/system-sonames.txt"
for so in "$deps"/runtime/usr/lib/x86_64-linux-gnu/*.so.[0-9]* "$deps"/runtime/lib/x86_64-linux-gnu/*.so.[0-9]*; do
  [ -e "$so" ] || continue
  name=$(basename "$so")
  [[ "$name" =~ \.so\.[0-9]+$ ]] || continue
  grep -qx "$name" "$deps/system-sonames.txt" || ln -sf "$so" "$deps/fallback/$name"
done
echo "runtime libraries taken from the carried Debian packages: $(ls "$deps/fallback" | tr '\n' ' ')" | tee "$out/deps.txt"
lib=$deps/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$lib:$lib/hdf5/serial/lib:$deps/fallback${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; \
  g++ --version | head -1; cmake --version | head -1; } 2>&1 | tee "$out/machine.txt"

# --- build -------------------------------------------------------------------------------------------------
build=build-gpu
t0=$(date +%s)
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DAXFOLD_BUILD_TESTS=ON -DAXFOLD_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 -DCMAKE_PREFIX_PATH="$deps/usr;$lib/cmake" \
  -DEigen3_DIR="$deps/usr/share/eigen3/cmake" -DHDF5_ROOT="$lib/hdf5/serial" -DHDF5_NO_FIND_PACKAGE_CONFIG_FILE=ON \
  -DHDF5_C_COMPILER_EXECUTABLE=/nonexistent -DBoost_DIR="$lib/cmake/Boost-1.74.0" -DGTest_DIR="$lib/cmake/GTest" \
  -DZLIB_ROOT="$deps/usr" >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
[ "${CONFIGURE_ONLY:-0}" = 1 ] && { grep -E "^-- axfold" "$out/build.log"; exit 0; }
cmake --build "$build" -j"$(nproc)" >>"$out/build.log" 2>&1 || { grep -E "error|Error" "$out/build.log" | head -40; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"

# --- tests -------------------------------------------------------------------------------------------------
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
timeout 300 ctest --test-dir "$build" -L gpu -E golden --output-on-failure >"$out/ctest-gpu.log" 2>&1
echo "ctest -L gpu (ops): rc=$?"; grep -E "tests passed|FAILED|Failed|\*\*\*" "$out/ctest-gpu.log" | head -20
AXFOLD_GOLDEN_DIR=$PWD/.device/golden timeout 300 "$build/tests/structure/test_structure_gpu" >"$out/golden-gpu.log" 2>&1
echo "golden on cuda: rc=$?"; grep -E "FAIL|cuda bf16|PASSED|SKIPPED" "$out/golden-gpu.log" | head -20
AXFOLD_FUSED_ATTENTION=1 AXFOLD_GOLDEN_DIR=$PWD/.device/golden timeout 300 "$build/tests/structure/test_structure_gpu" \
  >"$out/golden-gpu-fused.log" 2>&1
echo "golden on cuda, fused attention: rc=$?"; grep -E "FAIL|PASSED" "$out/golden-gpu-fused.log" | head -10

# --- benchmarks (one JSON object a line) -------------------------------------------------------------------
ax=$build/apps/axfold
bench() { timeout 240 "$ax" bench "$@" --json 2>>"$out/bench.err" | tee -a "$out/bench.jsonl"; }
bench kernels --device cuda --rows 1048576 --cols 128
bench kernels --device cuda --rows 131072 --cols 1024
bench kernels --device cuda --rows 65536 --cols 2048
for p in fp32 tf32 bf16; do bench evoformer --device cuda --precision $p --n-seq 128 --n-res 256 --blocks 5; done
for p in fp32 bf16; do bench evoformer --device cuda --precision $p --n-seq 128 --n-res 1024 --blocks 3; done
for r in 256 1024; do AXFOLD_FUSED_ATTENTION=1 bench evoformer --device cuda --n-seq 128 --n-res $r --blocks 3; done
bench evoformer --n-seq 128 --n-res 256 --blocks 2 --threads "$(nproc)"   # the host CPU, same machine
bench model --device cuda --n-res 256 --n-seq 128 --n-extra 1024
bench model --device cuda --precision bf16 --n-res 256 --n-seq 128 --n-extra 1024
bench model --device cuda --n-res 1024 --n-seq 128 --n-extra 1024
echo "gpu-check done in $(( $(date +%s) - t0 )) s; results in $out"
