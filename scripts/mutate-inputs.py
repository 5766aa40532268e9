#!/usr/bin/env python3
"""Feeds deterministic mutations of axfold's bundled inputs to the CLI and counts how each run ends.

    scripts/mutate-inputs.py [--axfold build/apps/axfold] [--cases 300] [--format FORMAT ...] [--jobs 2]

For each format (fasta a3m stockholm mmcif npz features raw-features params-h5) it writes CASES mutations of a
seed from tests/data (bit flips, overwritten bytes and fields, truncations, and for text also deleted, repeated
and swapped lines) and runs the command a user would run on that file. A run may succeed (the mutation was
harmless) or fail with an error that names the mutated file; a run killed by a signal (a crash), one that
outlives --timeout (a hang), one that prints a sanitizer report, or an error that does not name the file are
findings: they are listed, their inputs kept under --out, and the script exits 1. The same seed gives the same
mutations, so a finding is rerun by its case number. Run it on the release build and on build-sanitize's
axfold (scripts/sanitize.sh --build-only) to count sanitizer reports; docs/RELIABILITY.md records the results.
"""
import argparse
import concurrent.futures
import os
import random
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
SMALL = os.path.join(DATA, "golden", "small")
REAL = os.path.join(DATA, "realdata")
PREDICT = ["--model-name", "model_3_ptm", "--structure-module-layers", "2", "--num-recycle", "0", "--threads", "1",
           "--quiet", "--overwrite"]

# format -> (seed file, text?, command given the mutated file F and a scratch directory D)
FORMATS = {
    "fasta": (os.path.join(REAL, "P54025.fasta"), True, lambda f, d: ["features", "--fasta", f, "-o", d + "/o.h5"]),
    "a3m": (os.path.join(REAL, "alignments", "2q2k_A", "bfd_uniclust_hits.a3m"), True,
            lambda f, d: ["features", "--fasta", d + "/query.fasta", "--msa", f, "-o", d + "/o.h5"]),
    "stockholm": (os.path.join(REAL, "alignments", "2q2k_A", "uniref90_hits.sto"), True,
                  lambda f, d: ["features", "--fasta", d + "/query.fasta", "--msa", f, "-o", d + "/o.h5"]),
    "mmcif": (os.path.join(ROOT, "tests", "fuzz", "seeds", "mmcif", "2q2k_first_atoms.cif"), True,
              lambda f, d: ["training-example", "--mmcif", f, "--chain", "A", "-o", d + "/o.h5"]),
    "npz": (os.path.join(SMALL, "params.npz"), False,
            lambda f, d: ["predict", "--features", SMALL + "/features.h5", "--params", f, "--out-dir", d] + PREDICT),
    "features": (os.path.join(SMALL, "features.h5"), False,
                 lambda f, d: ["predict", "--features", f, "--params", SMALL + "/params.npz", "--out-dir", d] + PREDICT),
    "raw-features": (os.path.join(REAL, "alphafold_raw_features.h5"), False,
                     lambda f, d: ["features", "--features", f, "--processed", "--model-name", "model_3_ptm", "-o", d + "/o.h5"]),
    "params-h5": (os.path.join(SMALL, "params.h5"), False,
                  lambda f, d: ["predict", "--features", SMALL + "/features.h5", "--params", f, "--out-dir", d] + PREDICT),
}
QUERY_2Q2K = "MGSSHHHHHHSSGLVPGSHMDKKETKHLLKIKKEDYPQIFDFLENVPRGTKTAHIREALRRYIEEIGENP"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def mutate(data, text, rng):
    """One mutation of data (bytes), chosen and placed by rng."""
    b = bytearray(data)
    kinds = ["flip", "flip", "flips", "byte", "field", "truncate"] + (["line"] * 3 if text else [])
    kind = rng.choice(kinds)
    if kind == "flip" and b:
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    elif kind == "flips" and b:
        for _ in range(rng.randint(2, 16)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "byte" and b:
        b[rng.randrange(len(b))] = rng.choice([0x00, 0xFF, 0x7F, 0x80, 0x0A, 0x3E, 0x2D, rng.randrange(256)])
    elif kind == "field" and len(b) >= 8:  # a length, offset or count overwritten with an extreme value
        i = rng.randrange(len(b) - 8)
        value = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 1 << 40])
        width = rng.choice([2, 4, 8])
        b[i:i + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    elif kind == "truncate":
        b = b[:rng.randrange(len(b) + 1)]
    elif kind == "line":
        lines = bytes(b).split(b"\n")
        op = rng.choice(["delete", "repeat", "swap", "garble"])
        i = rng.randrange(len(lines))
        if op == "delete":
            del lines[i]
        elif op == "repeat":
            lines[i:i] = [lines[i]] * rng.randint(1, 50)
        elif op == "swap":
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        else:
            line = bytearray(lines[i])
            for _ in range(rng.randint(1, 4)):
                pos = rng.randrange(len(line) + 1)
                line[pos:pos] = bytes([rng.choice([0x00, 0x09, 0x22, 0x27, 0x3E, 0x80, 0xC3, 0xFF])])
            lines[i] = bytes(line)
        b = bytearray(b"\n".join(lines))
    return bytes(b), kind


def run_case(axfold, fmt, case, seed_bytes, text, work, timeout, env):
    rng = random.Random(f"{fmt}:{case}")
    data, kind = mutate(seed_bytes, text, rng)
    d = tempfile.mkdtemp(prefix=f"{fmt}-{case}-", dir=work)
    ext = os.path.splitext(FORMATS[fmt][0])[1]
    f = os.path.join(d, f"case{case}{ext}")
    with open(f, "wb") as out:
        out.write(data)
    with open(os.path.join(d, "query.fasta"), "w") as q:
        q.write(">query\n" + QUERY_2Q2K + "\n")
    cmd = [axfold] + FORMATS[fmt][2](f, d)
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, env=env)
        out, rc = p.stdout.decode("utf-8", "replace"), p.returncode
    except subprocess.TimeoutExpired:
        return fmt, case, kind, "hang", f, ""
    if any(m in out for m in SANITIZER_MARKS):
        verdict = "sanitizer"
    elif rc < 0 or rc >= 128:
        verdict = "crash"
    elif rc == 0:
        verdict = "accepted"
    elif f in out:
        verdict = "error naming the file"
    else:
        verdict = "unclear error"
    if verdict in ("accepted", "error naming the file"):
        shutil.rmtree(d)
    return fmt, case, kind, verdict, f, out.strip().splitlines()[-1] if out.strip() else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--axfold", default=os.path.join(ROOT, "build", "apps", "axfold"))
    ap.add_argument("--cases", type=int, default=300)
    ap.add_argument("--format", action="append", choices=sorted(FORMATS), help="default: all")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "axfold-mutations"))
    args = ap.parse_args()
    formats = args.format or list(FORMATS)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)
    env = dict(os.environ, LSAN_OPTIONS="suppressions=" + os.path.join(ROOT, "tests", "fuzz", "lsan.supp"))
    findings = []
    print(f"| format | cases | accepted | error naming the file | unclear error | crash | hang | sanitizer |")
    print(f"|---|---|---|---|---|---|---|---|")
    for fmt in formats:
        seed, text = FORMATS[fmt][0], FORMATS[fmt][1]
        with open(seed, "rb") as s:
            seed_bytes = s.read()
        counts = dict.fromkeys(["accepted", "error naming the file", "unclear error", "crash", "hang", "sanitizer"], 0)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            jobs = [pool.submit(run_case, args.axfold, fmt, c, seed_bytes, text, args.out, args.timeout, env)
                    for c in range(args.cases)]
            for j in jobs:
                _, case, kind, verdict, f, last = j.result()
                counts[verdict] += 1
                if verdict not in ("accepted", "error naming the file"):
                    findings.append(f"{fmt} case {case} ({kind}): {verdict}: {f}: {last}")
        print(f"| {fmt} | {args.cases} | " + " | ".join(str(counts[k]) for k in counts) + " |", flush=True)
    for line in findings:
        print(line)
    print(f"{len(findings)} findings; inputs of findings kept under {args.out}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
