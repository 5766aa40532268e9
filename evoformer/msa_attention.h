// MSA attention modules of the Evoformer and extra-MSA stacks (AF2 supplement 1.6):
//   MSA row-wise gated self-attention with pair bias (Algorithm 7),
//   MSA column-wise gated self-attention (Algorithm 8),
//   MSA column-wise global attention (Algorithm 19, extra-MSA stack).
// Parameter scopes: `msa_row_attention_with_pair_bias`, `msa_column_attention`,
// `msa_column_global_attention`.
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct MsaRowAttentionWeights {
    LayerNormWeights query_norm;    // [C_m]
    LayerNormWeights feat_2d_norm;  // [C_z]
    Tensor feat_2d_weights;         // [C_z, H]
    AttentionWeights attention;     // query_w [C_m, H, c] ... output_w [H, c, C_m]
    template <class F> void visit(F&& f) {
        query_norm.visit(scoped("query_norm", f));
        feat_2d_norm.visit(scoped("feat_2d_norm", f));
        f("//feat_2d_weights", feat_2d_weights);
        attention.visit(scoped("attention", f));
    }
};

struct MsaColumnAttentionWeights {
    LayerNormWeights query_norm;  // [C_m]
    AttentionWeights attention;
    template <class F> void visit(F&& f) {
        query_norm.visit(scoped("query_norm", f));
        attention.visit(scoped("attention", f));
    }
};

struct MsaColumnGlobalAttentionWeights {
    LayerNormWeights query_norm;  // [C_e]
    GlobalAttentionWeights attention;
    template <class F> void visit(F&& f) {
        query_norm.visit(scoped("query_norm", f));
        attention.visit(scoped("attention", f));
    }
};

// m [S, N_res, C_m], z [N_res, N_res, C_z], msa_mask [S, N_res].
// out [S, N_res, C_m] = (accumulate ? out : 0) + update; out may be m itself (residual in place).
void msa_row_attention_forward(const MsaRowAttentionWeights& w, const Tensor& m, const Tensor& z,
                               const Tensor& msa_mask, const Tensor& out, bool accumulate, Context& ctx,
                               const TrunkConstants& k = {});
// The pair bias of row attention and triangle attention: [H, N, N] = LN(z) @ feat_2d_weights in the
// attending frame (ending: bias[h, q, k] from z[k, q]), from the workspace.
Tensor pair_bias(const LayerNormWeights& norm, const Tensor& feat_2d_weights, const Tensor& z, bool ending, float eps,
                 Context& ctx);
void msa_column_attention_forward(const MsaColumnAttentionWeights& w, const Tensor& m, const Tensor& msa_mask,
                                  const Tensor& out, bool accumulate, Context& ctx, const TrunkConstants& k = {});

// Backward twins (gated_attention.h's conventions): dupdate = dL/d(update); dm (and dz for the row attention's
// pair bias) = or, with accumulate_*, += dL/d(input); parameter gradients added into grads.
void msa_row_attention_backward(const MsaRowAttentionWeights& w, const Tensor& m, const Tensor& z,
                                const Tensor& msa_mask, const Tensor& dupdate, const Tensor& dm, bool accumulate_dm,
                                const Tensor& dz, bool accumulate_dz, MsaRowAttentionWeights& grads, Context& ctx,
                                const TrunkConstants& k = {});
void msa_column_attention_backward(const MsaColumnAttentionWeights& w, const Tensor& m, const Tensor& msa_mask,
                                   const Tensor& dupdate, const Tensor& dm, bool accumulate_dm,
                                   MsaColumnAttentionWeights& grads, Context& ctx, const TrunkConstants& k = {});
void msa_column_global_attention_backward(const MsaColumnGlobalAttentionWeights& w, const Tensor& m,
                                          const Tensor& msa_mask, const Tensor& dupdate, const Tensor& dm,
                                          bool accumulate_dm, MsaColumnGlobalAttentionWeights& grads, Context& ctx,
                                          const TrunkConstants& k = {});
// The pair bias's backward: dbias (attending frame) into dz (= or +=) and the norm's and feat_2d_weights'
// gradients. z may be a block of rows of the pair, [N0, N1, C_z]: dbias is then [H, N0, N1], or [H, N1, N0]
// when ending (DAP's shards).
void pair_bias_backward(const LayerNormWeights& norm, const Tensor& feat_2d_weights, const Tensor& z, bool ending,
                        float eps, const Tensor& dbias, const Tensor& dz, bool accumulate_dz, LayerNormWeights& grads_norm,
                        Tensor& grads_feat_2d_weights, Context& ctx);
void msa_column_global_attention_forward(const MsaColumnGlobalAttentionWeights& w, const Tensor& m,
                                         const Tensor& msa_mask, const Tensor& out, bool accumulate, Context& ctx,
                                         const TrunkConstants& k = {});

}  // namespace axfold
