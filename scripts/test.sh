#!/usr/bin/env bash
# Installs what is missing, builds axfold (Release, -j2) and runs the whole test suite.
# When ../shared/golden exists, the golden tests also run on those sets (full AlphaFold2 widths).
# Then the unit tests under ASan + UBSan and 20 s of fuzzing per input format (scripts/sanitize.sh, fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAXFOLD_BUILD_TESTS=ON
cmake --build build -j2

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ -d "$root/../shared/golden" ]; then
  echo "== golden tests on $root/../shared/golden"
  AXFOLD_GOLDEN_DIR="$root/../shared/golden" ctest --test-dir build -R golden --output-on-failure
fi
echo "== full test suite"
ctest --test-dir build --output-on-failure

# Sanitizers and fuzzing (docs/RELIABILITY.md): the unit tests under ASan + UBSan (a clang build in build-sanitize),
# then every input parser's fuzzer for 20 s from its seeds and regression inputs.
bash scripts/sanitize.sh
echo "== fuzzing, 20 s per input format"
AXFOLD_FUZZ_SEED=1 bash scripts/fuzz.sh 20
