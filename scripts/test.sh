#!/usr/bin/env bash
# Installs what is missing, builds axfold (Release, -j2) and runs the whole test suite.
# When ../shared/golden exists, the golden tests also run on those sets (full AlphaFold2 widths).
# The log ends with ctest's summary line.
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
