// Evoformer block and stack (AF2 supplement, Algorithm 6) and the extra-MSA stack (Algorithm 18,
// whose blocks use global column attention). Parameter scopes (stacked, leading layer axis):
// `evoformer/evoformer_iteration` and `evoformer/extra_msa_stack`.
#pragma once

#include <functional>
#include <vector>

#include "evoformer/msa_attention.h"
#include "evoformer/outer_product_mean.h"
#include "evoformer/transition.h"
#include "evoformer/triangle_attention.h"
#include "evoformer/triangle_multiplication.h"

namespace axfold {

struct EvoformerBlockWeights {
    bool is_extra_msa = false;  // global column attention instead of column attention
    // AF-Multimer: the outer product mean runs first (the row attention's pair bias reads its update) and the
    // triangle multiplications have fused weights (triangle_multiplication.h).
    bool outer_product_mean_first = false;
    MsaRowAttentionWeights msa_row_attention_with_pair_bias;
    MsaColumnAttentionWeights msa_column_attention;                // Evoformer only
    MsaColumnGlobalAttentionWeights msa_column_global_attention;   // extra-MSA only
    TransitionWeights msa_transition;
    OuterProductMeanWeights outer_product_mean;
    TriangleMultiplicationWeights triangle_multiplication_outgoing;
    TriangleMultiplicationWeights triangle_multiplication_incoming;
    TriangleAttentionWeights triangle_attention_starting_node;
    TriangleAttentionWeights triangle_attention_ending_node;
    TransitionWeights pair_transition;
    template <class F> void visit(F&& f) {
        msa_row_attention_with_pair_bias.visit(scoped("msa_row_attention_with_pair_bias", f));
        if (is_extra_msa)
            msa_column_global_attention.visit(scoped("msa_column_global_attention", f));
        else
            msa_column_attention.visit(scoped("msa_column_attention", f));
        msa_transition.visit(scoped("msa_transition", f));
        outer_product_mean.visit(scoped("outer_product_mean", f));
        triangle_multiplication_outgoing.visit(scoped("triangle_multiplication_outgoing", f));
        triangle_multiplication_incoming.visit(scoped("triangle_multiplication_incoming", f));
        triangle_attention_starting_node.visit(scoped("triangle_attention_starting_node", f));
        triangle_attention_ending_node.visit(scoped("triangle_attention_ending_node", f));
        pair_transition.visit(scoped("pair_transition", f));
    }
};

struct EvoformerStackWeights {
    std::vector<EvoformerBlockWeights> blocks;
};

// Loads every block of the stack under `scope`; the block count is the stacked leading axis. multimer: AF-Multimer's
// block (EvoformerBlockWeights::outer_product_mean_first, fused triangle multiplications).
EvoformerStackWeights load_evoformer_stack(const ParamLookup& get, const std::string& scope, bool is_extra_msa,
                                           bool multimer = false);
// One block's weights, unstacked or (layer >= 0) a layer of a stack.
EvoformerBlockWeights load_evoformer_block(const ParamLookup& get, const std::string& scope, bool is_extra_msa,
                                           bool multimer, int layer = -1);

// Called after each sub-module with the names used in the golden intermediates
// ("msa_after_row_attention", ..., "pair_after_triangle_attention_ending_node").
using BlockObserver = std::function<void(const char* name, const Tensor& t)>;

// One block, in place: m [S, N_res, C_m], z [N_res, N_res, C_z], msa_mask [S, N_res], pair_mask [N_res, N_res].
void evoformer_block_forward(const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Tensor& msa_mask,
                             const Tensor& pair_mask, Context& ctx, const TrunkConstants& k = {},
                             const BlockObserver& observe = nullptr);

// The block's backward: m and z are the block's INPUTS (float32), dm and dz hold dL/d(its outputs) and are
// replaced by dL/d(its inputs); the parameter gradients are added into grads (zeros_like_weights(w) to start).
// The forward is run again first, keeping the MSA and pair between sub-modules (4 MSA-sized and 6 pair-sized
// copies: a training crop's block), then each sub-module's backward runs in reverse order.
void evoformer_block_backward(const EvoformerBlockWeights& w, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                              const Tensor& pair_mask, Tensor& dm, Tensor& dz, EvoformerBlockWeights& grads,
                              Context& ctx, const TrunkConstants& k = {});

// The stack's backward: m and z are the stack's inputs, dm and dz hold dL/d(its outputs) and are replaced by
// dL/d(its inputs); grads (one zeros_like_weights per block) accumulate. Each block's input is kept during a
// forward replay (blocks x (S N C_m + N^2 C_z) floats; activation checkpointing per block), then the blocks'
// backward runs in reverse. block_done(b), when given, is called as soon as grads[b] is final (last block
// first), e.g. to start its data-parallel all-reduce while the earlier blocks' backward runs.
using BlockGradientDone = std::function<void(size_t block)>;
void evoformer_stack_backward(const EvoformerStackWeights& w, const Tensor& m, const Tensor& z, const Tensor& msa_mask,
                              const Tensor& pair_mask, Tensor& dm, Tensor& dz, std::vector<EvoformerBlockWeights>& grads,
                              Context& ctx, const TrunkConstants& k = {}, const BlockGradientDone& block_done = nullptr);

// Block `block`'s constants within a stack: its own dropout key (TrunkConstants::dropout_key; 0 stays 0).
TrunkConstants block_constants(const TrunkConstants& k, size_t block);

// All blocks in order, in place.
void evoformer_stack_forward(const EvoformerStackWeights& w, Tensor& m, Tensor& z, const Tensor& msa_mask,
                             const Tensor& pair_mask, Context& ctx, const TrunkConstants& k = {});

}  // namespace axfold
