#!/usr/bin/env bash
# Builds axfold and runs the main job on the bundled example: `axfold predict` on the features of a real
# 73-residue protein (data/example/features.h5) with RANDOM parameters in the official AlphaFold2 layout
# written by `axfold init-params`. Random weights give meaningless structures; the run shows the pipeline
# and its outputs. Results land in out/example/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j2 --target axfold
mkdir -p out/example
# AF2 widths with 4 Evoformer blocks instead of 48 keep the example to seconds; drop the two block options
# for the full-depth network.
./build/apps/axfold init-params --model-name model_3_ptm --out out/example/random_model_3_ptm.npz \
  --evoformer-blocks 4 --extra-msa-blocks 1 --seed 1
./build/apps/axfold predict --features data/example/features.h5 --params out/example/random_model_3_ptm.npz \
  --model-name model_3_ptm --out-dir out/example --overwrite --save-outputs
echo "NOTE: random parameters -> meaningless structure. Outputs in out/example/:"
ls out/example
