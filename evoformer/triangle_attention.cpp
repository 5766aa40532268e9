#include "evoformer/triangle_attention.h"

#include "evoformer/gated_attention.h"
#include "evoformer/msa_attention.h"

namespace axfold {

void triangle_attention_forward(const TriangleAttentionWeights& w, bool ending_node, const Tensor& z,
                                const Tensor& pair_mask, const Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    AXF_CHECK(z.dim() == 3 && z.size(0) == z.size(1), "triangle_attention: pair %s must be [N, N, C_z]",
              z.desc().c_str());
    // Bias in the attending frame [H, query, key]: b[q, k] (starting) or b[k, q] (ending, transposed pair).
    Tensor bias = pair_bias(w.query_norm, w.feat_2d_weights, z, ending_node, k.eps, ctx);
    gated_self_attention(w.attention, w.query_norm, z, ending_node, pair_mask, bias, k.inf, k.eps, out, accumulate,
                         ctx);
}

void triangle_attention_backward(const TriangleAttentionWeights& w, bool ending_node, const Tensor& z,
                                 const Tensor& pair_mask, const Tensor& dupdate, const Tensor& dz, bool accumulate_dz,
                                 TriangleAttentionWeights& grads, Context& ctx, const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    Tensor bias = pair_bias(w.query_norm, w.feat_2d_weights, z, ending_node, k.eps, ctx);
    Tensor dbias = ctx.ws.alloc(bias.shape());
    fill(dbias, 0.f);
    gated_self_attention_backward(w.attention, w.query_norm, z, ending_node, pair_mask, bias, k.inf, k.eps, dupdate, dz,
                                  accumulate_dz, grads.attention, grads.query_norm, dbias, ctx);
    pair_bias_backward(w.query_norm, w.feat_2d_weights, z, ending_node, k.eps, dbias, dz, true, grads.query_norm,
                       grads.feat_2d_weights, ctx);
}

}  // namespace axfold
