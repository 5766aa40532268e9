#!/usr/bin/python3
"""Converts AlphaFold's raw feature dict (features.pkl: a Python pickle of numpy arrays) to the HDF5 layout
axfold reads (`axfold predict --features OUT.h5`, `axfold features --features OUT.h5 --processed`).

One dataset per key at the root with the pickle's dtype and shape; object arrays (AlphaFold stores
domain_name, sequence, template_domain_names and template_sequence as arrays of bytes) become
variable-length UTF-8 strings, with the attribute pickle_dtype = "object (bytes)". The output is written to
OUT.h5.tmp and renamed, so an interrupted run leaves no partial file. Needs Debian's python3-numpy and
python3-h5py (scripts/setup-debian.sh installs them).

usage: scripts/features_pkl_to_h5.py IN.pkl OUT.h5
"""
import os
import pickle
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover
    sys.exit(f"features_pkl_to_h5: {e}; install python3-numpy and python3-h5py (apt-get install python3-numpy python3-h5py)")


def to_strings(key, arr):
    out = []
    for x in arr.reshape(-1):
        if isinstance(x, bytes):
            out.append(x.decode("utf-8", errors="replace"))
        elif isinstance(x, str):
            out.append(x)
        else:
            raise ValueError(f"key '{key}': object array holds {type(x).__name__}, expected bytes or str")
    return np.array(out, dtype=object).reshape(arr.shape)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: features_pkl_to_h5.py IN.pkl OUT.h5\n")
        return 2
    src, dst = argv[1], argv[2]
    try:
        with open(src, "rb") as f:
            feats = pickle.load(f)
    except FileNotFoundError:
        sys.stderr.write(f"features_pkl_to_h5: {src}: no such file\n")
        return 1
    except Exception as e:  # truncated or foreign files
        sys.stderr.write(f"features_pkl_to_h5: {src}: not a readable pickle ({type(e).__name__}: {e})\n")
        return 1
    if not isinstance(feats, dict):
        sys.stderr.write(f"features_pkl_to_h5: {src}: holds a {type(feats).__name__}, expected a dict of arrays\n")
        return 1
    missing = [k for k in ("aatype", "msa", "residue_index") if k not in feats]
    if missing or not ("deletion_matrix_int" in feats or "deletion_matrix" in feats):
        sys.stderr.write(f"features_pkl_to_h5: {src}: missing keys {missing or ['deletion_matrix_int']}; "
                         "not an AlphaFold raw feature dict?\n")
        return 1
    tmp = dst + ".tmp"
    try:
        with h5py.File(tmp, "w") as h:
            for key in sorted(feats):
                arr = np.asarray(feats[key])
                if arr.dtype == object or arr.dtype.kind in ("S", "U"):
                    kind = "object (bytes)" if arr.dtype == object else str(arr.dtype)
                    vals = to_strings(key, arr.astype(object))
                    ds = h.create_dataset(key, data=vals, dtype=h5py.string_dtype("utf-8"))
                    ds.attrs["pickle_dtype"] = kind
                else:
                    opts = dict(compression="gzip", compression_opts=4, shuffle=True) if arr.size >= 1024 and arr.ndim else {}
                    h.create_dataset(key, data=arr, **opts)
        os.replace(tmp, dst)
    except Exception as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        sys.stderr.write(f"features_pkl_to_h5: cannot write {dst}: {type(e).__name__}: {e}\n")
        return 1
    print(f"features_pkl_to_h5: {src} -> {dst} ({len(feats)} keys)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
