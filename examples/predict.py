#!/usr/bin/env python3
"""Predict a structure from Python, as `axfold predict` does on the bundled example.

    scripts/run-example.sh                      # builds axfold and writes out/example/random_model_3_ptm.npz
    PYTHONPATH=build/python /usr/bin/python3 examples/predict.py [features.h5] [params.npz] [model_name] [out.pdb]

Features are AlphaFold's FeatureDict: here read from HDF5 with h5py; a features.pkl from AlphaFold's pipeline
(`pickle.load`) or `axfold.make_features("query.fasta", msas=[...])` work the same way. Random parameters give a
meaningless structure: the example shows the API, not a prediction.
"""
import sys
import time

import h5py

import axfold

features_path = sys.argv[1] if len(sys.argv) > 1 else "data/example/features.h5"
params_path = sys.argv[2] if len(sys.argv) > 2 else "out/example/random_model_3_ptm.npz"
model_name = sys.argv[3] if len(sys.argv) > 3 else "model_3_ptm"
out_path = sys.argv[4] if len(sys.argv) > 4 else "out/example/python_model.pdb"

model = axfold.Model.load(params_path, model_name)
with h5py.File(features_path, "r") as f:
    features = {k: f[k][()] for k in f}
start = time.perf_counter()
result = model.predict(features)  # raw features would be sampled here with seed=0
seconds = time.perf_counter() - start
with open(out_path, "w") as out:
    out.write(axfold.to_pdb(result))
print(f"{model.name}: {len(result['plddt'])} residues, mean pLDDT {result['plddt'].mean():.2f}, "
      f"pTM {float(result['ptm']):.4f}, {result['num_recycles']} recycles, predict {seconds:.2f} s -> {out_path}")
