#!/usr/bin/env python3
"""Communication volume and parallel efficiency of axfold's DAP Evoformer block (issue #6).

Per block and rank (fp32, P ranks, S MSA rows, R residues, both padded to multiples of P):

  all-to-all (2 of m, 4 of z), each rank sends (P-1)/P of its shard:
      A(P) = 4 * (P-1)/P^2 * (2*S*R*C_m + 4*R^2*C_z)
  all-gathers (row-attention bias, OPM right projection, 2 triangle-multiplication right projections,
  2 triangle-attention biases), ring algorithm, each rank sends (P-1) shards:
      G(P) = 4 * (P-1)/P * (R^2*H_msa + S*R*c_opm + 2*R^2*c_tri + 2*R^2*H_tri)

Overlap (as implemented in evoformer/evoformer_dap.cpp): the m cols->rows all-to-all is hidden behind the
pair stack; the OPM and triangle-multiplication gathers behind one projection each; the other collectives
(m rows->cols, 4 z all-to-all, 3 bias gathers) are exposed. Compute time per block on one device, T1, comes
from a measured throughput (`axfold bench evoformer --json`: gflop_per_s) and the bench's FLOP count;
T(P) = T1/P + exposed(P); efficiency E = T1 / (P * T(P)).

Usage:
  scripts/dap_model.py                                 # tables for the stated links, CPU-measured throughput
  scripts/dap_model.py --gflops 60000 --n-res 1024     # another device throughput (GFLOP/s) and size
  scripts/dap_model.py --bench-json out.json           # throughput from a bench run
"""
import argparse
import json

C_M, C_Z, H_MSA, H_TRI, C_OPM, C_TRI = 256, 128, 8, 4, 32, 128

# Stated links: (name, ranks, GPUs per node, intra-node GB/s per GPU per direction, inter-node GB/s per
# GPU per direction, latency per collective step in seconds).
LINKS = [
    ("8 GPUs, NVLink/NVSwitch (A100: 300 GB/s per GPU per direction)", 8, 8, 300.0, 300.0, 5e-6),
    ("64 GPUs, 8 nodes x 8, NVLink inside, InfiniBand HDR 200 Gb/s per GPU (25 GB/s)", 64, 8, 300.0, 25.0, 10e-6),
    ("64 GPUs, 8 nodes x 8, NVLink inside, InfiniBand NDR 400 Gb/s per GPU (50 GB/s)", 64, 8, 300.0, 50.0, 10e-6),
]


def flops(s, r):  # the FLOP count `axfold bench evoformer` uses
    return 2.39e6 * s * r + 3072 * s * r * r + 1024 * s * s * r + 1.25e6 * r * r + 1536 * r ** 3


def pad(n, p):
    return -(-n // p) * p


def volumes(s, r, p):
    s, r = pad(s, p), pad(r, p)
    a2a_m = 4 * (p - 1) / p ** 2 * s * r * C_M
    a2a_z = 4 * (p - 1) / p ** 2 * r * r * C_Z
    g = {
        "row_bias": 4 * (p - 1) / p * r * r * H_MSA,
        "opm": 4 * (p - 1) / p * s * r * C_OPM,
        "tri_mul": 4 * (p - 1) / p * r * r * C_TRI,
        "tri_bias": 4 * (p - 1) / p * r * r * H_TRI,
    }
    return a2a_m, a2a_z, g


def per_block(s, r, p, gflops, per_node, bw_in, bw_out, lat):
    a2a_m, a2a_z, g = volumes(s, r, p)
    t1 = flops(s, r) / (gflops * 1e9)
    if p == 1:
        return dict(bytes=0.0, t1=t1, tp=t1, exposed=0.0, eff=1.0)
    # Share of a rank's peers on other nodes, and the bandwidth a byte sees on average.
    off = max(0, p - per_node) / (p - 1)

    def xfer(nbytes, steps):
        return steps * lat + nbytes * (off / (bw_out * 1e9) + (1 - off) / (bw_in * 1e9))

    def ring(nbytes):  # a ring all-gather crosses the slowest link on every step
        bw = bw_out if p > per_node else bw_in
        return (p - 1) * lat + nbytes / (bw * 1e9)

    t_a2a_m, t_a2a_z = xfer(a2a_m, p - 1), xfer(a2a_z, p - 1)
    t_g = {k: ring(v) for k, v in g.items()}
    tput = gflops * 1e9
    sp, rp = pad(s, p), pad(r, p)
    t_pair_stack = (1.25e6 * rp * rp + 1536 * rp ** 3) / p / tput
    t_opm_proj = 2 * sp * rp * C_M * C_OPM / p / tput
    t_tri_proj = 2 * 2 * rp * rp * C_Z * C_TRI / p / tput  # projection + gate of one operand
    exposed = (t_a2a_m + 4 * t_a2a_z + t_g["row_bias"] + 2 * t_g["tri_bias"] + max(0.0, t_a2a_m - t_pair_stack) +
               max(0.0, t_g["opm"] - t_opm_proj) + 2 * max(0.0, t_g["tri_mul"] - t_tri_proj))
    tp = t1 / p + exposed
    total = 2 * a2a_m + 4 * a2a_z + g["row_bias"] + g["opm"] + 2 * g["tri_mul"] + 2 * g["tri_bias"]
    return dict(bytes=total, t1=t1, tp=tp, exposed=exposed, eff=t1 / (p * tp))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-seq", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--n-res", type=int, nargs="+", default=[256, 1024, 2048])
    ap.add_argument("--gflops", type=float, default=None,
                    help="sustained fp32 GFLOP/s of one device on the Evoformer block (default: --bench-json, "
                         "else the stated GPU figure)")
    ap.add_argument("--bench-json", help="output of `axfold bench evoformer --json` (single rank): its gflop_per_s")
    args = ap.parse_args()
    measured = None
    if args.bench_json:
        with open(args.bench_json) as f:
            measured = json.loads(f.read().strip().splitlines()[-1])["gflop_per_s"]
    gflops = args.gflops or measured or 60000.0
    src = ("--gflops" if args.gflops else "measured (bench json)" if measured else
           "stated: 60 TFLOP/s, about 40% of an H100's dense TF32 peak (no GPU measurement yet)")
    print(f"compute throughput per device: {gflops:.0f} GFLOP/s ({src})")
    for name, p, per_node, bw_in, bw_out, lat in LINKS:
        print(f"\n{name}")
        print(f"{'S':>6} {'R':>6} {'MiB/block/rank':>15} {'T1 s/block':>11} {'T_P s/block':>12} {'exposed s':>10} {'efficiency':>10}")
        for s in args.n_seq:
            for r in args.n_res:
                d = per_block(s, r, p, gflops, per_node, bw_in, bw_out, lat)
                print(f"{s:>6} {r:>6} {d['bytes'] / 2**20:>15.1f} {d['t1']:>11.4f} {d['tp']:>12.5f} {d['exposed']:>10.5f} {d['eff']:>10.1%}")


if __name__ == "__main__":
    main()
