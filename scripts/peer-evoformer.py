"""OpenFold's EvoformerBlock on the CPU, fp32 or bf16 (torch.autocast), beside `axfold bench evoformer`.

The peer of issue #21's block figures: ../shared/peer/openfold_evoformer.py (its README) times fp32 only; this
runs the same block (OpenFold v1.0.1 from that folder, same widths, weights and inputs) in either precision,
so both of the peer's figures come from one harness in one run.
Usage: /usr/bin/python3 scripts/peer-evoformer.py N_SEQ N_RES THREADS REPS fp32|bf16 [PEER_DIR]
(Debian's python3-torch, python3-scipy; /usr/bin/python3, which sees Debian's packages.)"""
import os, sys, time, resource

n_seq, n_res, threads, reps = (int(a) for a in sys.argv[1:5])
precision = sys.argv[5]
peer = sys.argv[6] if len(sys.argv) > 6 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peer")
if precision not in ("fp32", "bf16"):
    sys.exit(f"peer-evoformer.py: precision '{precision}': expected fp32 or bf16")
if not os.path.isdir(os.path.join(peer, "openfold")):
    sys.exit(f"peer-evoformer.py: {peer}: no openfold/ there (the peer folder, ../shared/peer)")
sys.path.insert(0, os.path.join(peer, "shims"))
sys.path.insert(0, peer)
import torch
from openfold.model.evoformer import EvoformerBlock

torch.set_num_threads(threads)
torch.manual_seed(0)
blk = EvoformerBlock(c_m=256, c_z=128, c_hidden_msa_att=32, c_hidden_opm=32, c_hidden_mul=128,
                     c_hidden_pair_att=32, no_heads_msa=8, no_heads_pair=4, transition_n=4,
                     msa_dropout=0.0, pair_dropout=0.0, inf=1e9, eps=1e-8).eval()
with torch.no_grad():
    for p in blk.parameters():
        p.normal_(0, 0.02)
m = torch.randn(n_seq, n_res, 256)
z = torch.randn(n_res, n_res, 128)
mm = torch.ones(n_seq, n_res)
pm = torch.ones(n_res, n_res)
times = []
with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
    for r in range(reps + 1):
        t = time.perf_counter()
        out = blk(m, z, mm, pm, chunk_size=None)
        times.append(time.perf_counter() - t)
times = sorted(times[1:])
med = times[len(times) // 2]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(f"openfold evoformer_block {precision} n_seq={n_seq} n_res={n_res} threads={threads}: "
      f"median {med*1e3:.1f} ms (min {times[0]*1e3:.1f}, max {times[-1]*1e3:.1f}) peak_rss {rss:.2f} GB")
