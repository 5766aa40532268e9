#!/usr/bin/python3
"""Compares the gradients of training runs written by `axfold train --save-gradients` (gradients-<update>.h5).

    scripts/compare-gradients.py REFERENCE.h5 OTHER.h5 [OTHER.h5 ...] [--top 8]

For each OTHER: the total loss's and the global norm's relative differences from REFERENCE, then per parameter
array the relative difference |g - g_ref| / |g_ref| (L2 norms): its median and maximum over the arrays, the
arrays of each module group (first two name components) summarised the same way, and the --top arrays that
differ most. Used to tell a defect from float32 noise (docs/TRAINING.md, "DAP against one rank"): compare a
DAP run with one rank, and one rank with itself under a perturbation of its input.
"""
import argparse
import collections

import h5py
import numpy as np


def read(path):
    with h5py.File(path, "r") as f:
        grads = {}
        f["gradients"].visititems(
            lambda name, obj: grads.__setitem__(name, obj[...].astype(np.float64))
            if isinstance(obj, h5py.Dataset) else None)
        loss = {k: float(f["loss"][k][0]) for k in f["loss"]}
    return grads, loss


def group_of(name):
    parts = name.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else parts[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference")
    ap.add_argument("others", nargs="+")
    ap.add_argument("--top", type=int, default=8)
    a = ap.parse_args()
    ref, ref_loss = read(a.reference)
    ref_norm = np.sqrt(sum(float(np.sum(g * g)) for g in ref.values()))
    for path in a.others:
        got, loss = read(path)
        if set(got) != set(ref):
            raise SystemExit(f"{path}: its parameter arrays differ from {a.reference}'s "
                             f"({len(set(got) ^ set(ref))} names in one only)")
        norm = np.sqrt(sum(float(np.sum(g * g)) for g in got.values()))
        rel = {}
        for n, g in ref.items():
            scale = np.linalg.norm(g)
            rel[n] = np.linalg.norm(got[n] - g) / scale if scale > 0 else float(np.linalg.norm(got[n]) > 0)
        whole = np.sqrt(sum(float(np.sum((got[n] - g) ** 2)) for n, g in ref.items())) / ref_norm
        print(f"{path} against {a.reference}")
        print(f"  loss {loss['total']:.10g} vs {ref_loss['total']:.10g}: "
              f"{abs(loss['total'] - ref_loss['total']) / abs(ref_loss['total']):.2e} relative")
        for term in sorted(ref_loss):
            if term != "total" and ref_loss[term] != 0:
                print(f"    {term:24s} {abs(loss[term] - ref_loss[term]) / abs(ref_loss[term]):.2e}")
        print(f"  global norm {norm:.6g} vs {ref_norm:.6g}: {abs(norm - ref_norm) / ref_norm:.2e} relative; "
              f"|g - g_ref| / |g_ref| over all arrays {whole:.2e}")
        values = np.array(list(rel.values()))
        print(f"  per array ({len(values)}): median {np.median(values):.2e}, max {values.max():.2e}")
        groups = collections.defaultdict(list)
        for n, r in rel.items():
            groups[group_of(n)].append(r)
        for gname, rs in sorted(groups.items()):
            print(f"    {gname:48s} {len(rs):4d} arrays  median {np.median(rs):.2e}  max {max(rs):.2e}")
        print(f"  the {a.top} arrays that differ most:")
        for n in sorted(rel, key=rel.get, reverse=True)[:a.top]:
            print(f"    {rel[n]:.2e}  {n}  (|g_ref| {np.linalg.norm(ref[n]):.3g})")


if __name__ == "__main__":
    main()
