#!/usr/bin/env bash
# Builds axfold and runs the main job on the bundled example. Until `axfold predict` lands (issue #3),
# the main job is the Evoformer benchmark at a small size.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target axfold
./build/apps/axfold bench evoformer --n-seq 32 --n-res 64 --blocks 2
