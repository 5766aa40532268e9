// The Evoformer and extra-MSA blocks under Dynamic Axial Parallelism (FastFold's DAP; see
// parallel/dap.h): one protein across the ranks of a Comm. Only activations are sharded, never weights:
//
//   MSA  m [S, N, C_m]: "rows" layout m_row [S/P, N, C_m] (sequences split), "cols" layout
//        m_col [S, N/P, C_m] (residues split);
//   pair z [N, N, C_z]: "rows" layout z_row [N/P, N, C_z] (i split), "cols" layout z_col [N, N/P, C_z]
//        (j split).
//
// One block (AF2 Algorithm 6), with its communication (6 all-to-all, 6 all-gathers):
//   row attention with pair bias   m rows, z rows   gather the bias [N, N, H]
//   m rows -> cols                                  all-to-all
//   column attention, transition   m cols
//   outer product mean             m cols, z rows   gather the right projection [N, S, c], overlapped
//                                                   with the left projection
//   m cols -> rows                                  all-to-all started here, waited for by the next
//                                                   block's row attention (it overlaps the pair stack)
//   triangle mult. outgoing        z rows           gather the right projection [c, N, N/P] chunks,
//                                                   overlapped with the left projection
//   z rows -> cols                                  all-to-all
//   triangle mult. incoming        z cols           gather the right projection, overlapped likewise
//   z cols -> rows                                  all-to-all
//   triangle attention, starting   z rows           gather the bias
//   z rows -> cols                                  all-to-all
//   triangle attention, ending     z cols           gather the bias (of the transposed pair)
//   pair transition                z cols
//   z cols -> rows                                  all-to-all
//
// Sizes P does not divide: S and N are padded to multiples of P with zero activations and zero masks;
// every module runs on the real rows and columns only (attention keys and contraction indices are cut to
// the real sizes), and the padding stays zero, so the result equals the single-rank block up to rounding.
// On one rank (P = 1) the same code runs with no-op collectives.
#pragma once

#include "evoformer/evoformer_stack.h"
#include "parallel/dap.h"

namespace axfold {

// The sharded activations of one stack run, and the re-sharding that may be in flight.
struct DapActivations {
    Comm* comm = nullptr;
    int P = 1, rank = 0;
    DapAxis s, r;                // MSA rows S; residues N
    Tensor m_row, m_col;         // [S_l, N_pad, C_m], [S_pad, N_l, C_m]
    Tensor z_row, z_col;         // [N_l, N_pad, C_z], [N_pad, N_l, C_z]
    Tensor msa_mask, pair_mask;  // replicated, unpadded: [S, N], [N, N]
    Tensor pair_mask_pad;        // [N_pad, N_pad], zero padding
    bool m_rows = true, z_rows = true;  // which layout is current
    DapPending m_pending;               // m cols -> rows in flight (m_rows is already true then)
    Tensor m_scratch, z_scratch;        // all-to-all buffers
};

// Shards the full (replicated) m [S, N, C_m], z [N, N, C_z] and masks; m and z rows layout. The shards live
// on `device` (default: m's), which must be the communicator's (CPU for MPI, CUDA for NCCL); m, z and the
// masks may be on the host either way, so a GPU holds only the shards, not the full activations.
DapActivations dap_scatter(Comm& comm, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                           const Tensor& pair_mask);
DapActivations dap_scatter(Comm& comm, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                           const Tensor& pair_mask, Device device);
// Completes pending work and all-gathers the activations into m [S, N, C_m] and z [N, N, C_z] (on any
// device).
void dap_gather(DapActivations& a, const Tensor& m, const Tensor& z);

// Layout changes (synchronous; the block starts m's return asynchronously itself).
void dap_m_to_rows(DapActivations& a);
void dap_m_to_cols(DapActivations& a);
void dap_z_to_rows(DapActivations& a);
void dap_z_to_cols(DapActivations& a);

// The distributed modules, each updating the residual stream in place. Each puts the activations in the
// layout it needs first.
void dap_msa_row_attention(const MsaRowAttentionWeights& w, DapActivations& a, Context& ctx,
                           const TrunkConstants& k = {});
void dap_msa_column_attention(const EvoformerBlockWeights& w, DapActivations& a, Context& ctx,
                              const TrunkConstants& k = {});  // global for extra-MSA blocks
void dap_msa_transition(const TransitionWeights& w, DapActivations& a, Context& ctx, const TrunkConstants& k = {});
void dap_outer_product_mean(const OuterProductMeanWeights& w, DapActivations& a, Context& ctx,
                            const TrunkConstants& k = {});
void dap_triangle_multiplication(const TriangleMultiplicationWeights& w, bool incoming, DapActivations& a,
                                 Context& ctx, const TrunkConstants& k = {});
void dap_triangle_attention(const TriangleAttentionWeights& w, bool ending_node, DapActivations& a, Context& ctx,
                            const TrunkConstants& k = {});
void dap_pair_transition(const TransitionWeights& w, DapActivations& a, Context& ctx, const TrunkConstants& k = {});

// One block on the sharded activations (same observer names as evoformer_block_forward; it sees this
// rank's shard).
void dap_evoformer_block_forward(const EvoformerBlockWeights& w, DapActivations& a, Context& ctx,
                                 const TrunkConstants& k = {}, const BlockObserver& observe = nullptr);

// The whole stack on full replicated tensors, in place: scatter, every block, gather. Every rank ends
// with the same m and z.
void dap_evoformer_stack_forward(const EvoformerStackWeights& w, Comm& comm, Tensor& m, Tensor& z,
                                 const Tensor& msa_mask, const Tensor& pair_mask, Context& ctx,
                                 const TrunkConstants& k = {});

// ---- Backward (training) ----
//
// The gradients of the activations are sharded like the activations themselves, in a second DapActivations
// (`g`: g.m_row is dL/dm in the rows layout, ...), and move between layouts by the adjoint re-sharding (the
// inverse all-to-all, which is the same function: a re-sharding is a permutation). Each module's backward
// runs on this rank's shard with the single-rank backward twin; where the forward all-gathered a tensor that
// every rank then consumed (the three pair biases, the outer product mean's and both triangle
// multiplications' right projections), the backward reduce-scatters its gradient: FastFold only splits it,
// which drops the other ranks' contributions. Parameter gradients are each rank's share; the stack sums them
// over ranks.
//
// Duality async in the backward: the forward's asynchronous m cols -> rows (overlapping the pair stack) has
// its adjoint, dm rows -> cols, started at the top of the block's backward and waited for by the outer
// product mean's backward, so it overlaps the whole pair stack's backward; the right projections' gradient
// reduce-scatters overlap the left projections' backward (the forward overlaps the gathers with the left
// projections); each block's parameter-gradient all-reduce overlaps the backward of the block before it.

// A deep copy of sharded activations (nothing in flight): the layout, shards and masks.
DapActivations dap_copy(const DapActivations& a);
// Frees the layouts not current (and the scratch buffers), for activations kept only to be copied again
// (the stack backward's block inputs): dap_copy makes them again.
void dap_keep_current_layout(DapActivations& a);

// One block's backward. `input`: the block's input activations (any layouts, unchanged); `g`: dL/d(the
// block's output) on entry, dL/d(its input) on return (sharded alike, any layouts). The block's forward is
// replayed first, keeping each sub-module's input shard. This rank's share of the parameter gradients is
// added into grads (zeros_like_weights(w) to start); summing them over ranks gives the block's gradient.
void dap_evoformer_block_backward(const EvoformerBlockWeights& w, const DapActivations& input, DapActivations& g,
                                  EvoformerBlockWeights& grads, Context& ctx, const TrunkConstants& k = {});

// The stack's backward on full replicated tensors, the twin of dap_evoformer_stack_forward and of
// evoformer_stack_backward: m and z are the stack's inputs; dm and dz hold dL/d(its outputs), the same on
// every rank (the replicated structure module's and heads' gradient: each rank takes its block), and are
// replaced by dL/d(its inputs) on every rank (all-gathered). grads (one per block, as evoformer_stack_backward)
// receive the parameter gradients summed over ranks, the same on every rank. Memory per rank: the blocks'
// input shards in one layout (1/P of what the single-rank stack keeps) and one block's internals. block_done(b)
// (evoformer_stack.h), when given, is called once grads[b] holds the sum over ranks: block b's sum is waited for
// after the next block's backward has started its own, so a caller's collective on it still overlaps the rest.
void dap_evoformer_stack_backward(const EvoformerStackWeights& w, Comm& comm, const Tensor& m, const Tensor& z,
                                  const Tensor& msa_mask, const Tensor& pair_mask, Tensor& dm, Tensor& dz,
                                  std::vector<EvoformerBlockWeights>& grads, Context& ctx, const TrunkConstants& k = {},
                                  const BlockGradientDone& block_done = nullptr);

}  // namespace axfold
