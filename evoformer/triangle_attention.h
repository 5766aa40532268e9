// Triangle self-attention around the starting node (AF2 supplement, Algorithm 13) and around the
// ending node (Algorithm 14). Parameter scopes `triangle_attention_starting_node` and
// `triangle_attention_ending_node` (also used inside the template pair stack).
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct TriangleAttentionWeights {
    LayerNormWeights query_norm;  // [C_z]
    Tensor feat_2d_weights;       // [C_z, H]
    AttentionWeights attention;   // query_w [C_z, H, c] ... output_w [H, c, C_z]
    template <class F> void visit(F&& f) {
        query_norm.visit(scoped("query_norm", f));
        f("//feat_2d_weights", feat_2d_weights);
        attention.visit(scoped("attention", f));
    }
};

// z [N_res, N_res, C_z], pair_mask [N_res, N_res]; `ending_node` selects Algorithm 14 (AF2 computes it
// on the transposed pair; here the transposition is a view). out as in msa_attention.h.
void triangle_attention_forward(const TriangleAttentionWeights& w, bool ending_node, const Tensor& z,
                                const Tensor& pair_mask, const Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k = {});

// The backward twin: dupdate = dL/d(update); dz = (or, with accumulate_dz, +=) dL/dz through both the attention
// and the pair bias; parameter gradients added into grads.
void triangle_attention_backward(const TriangleAttentionWeights& w, bool ending_node, const Tensor& z,
                                 const Tensor& pair_mask, const Tensor& dupdate, const Tensor& dz, bool accumulate_dz,
                                 TriangleAttentionWeights& grads, Context& ctx, const TrunkConstants& k = {});

}  // namespace axfold
