#include "evoformer/triangle_attention.h"

#include "evoformer/gated_attention.h"

namespace axfold {

void triangle_attention_forward(const TriangleAttentionWeights& w, bool ending_node, const Tensor& z,
                                const Tensor& pair_mask, Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    AXF_CHECK(z.dim() == 3 && z.size(0) == z.size(1), "triangle_attention: pair %s must be [N, N, C_z]",
              z.desc().c_str());
    Tensor x = layer_norm(z, w.query_norm.scale, w.query_norm.offset, k.eps, ctx.ws);
    Tensor b = linear(x, w.feat_2d_weights, Tensor(), ctx.ws);  // [N, N, H], b[i, j] from x[i, j]
    // Bias in the attending frame [H, query, key]: b[q, k] (starting) or b[k, q] (ending, transposed pair).
    Tensor bias = ctx.ws.alloc({b.size(2), b.size(0), b.size(1)});
    copy(bias, ending_node ? b.permute({2, 1, 0}) : b.permute({2, 0, 1}));
    gated_self_attention(w.attention, x, ending_node, pair_mask, bias, k.inf, out, accumulate, ctx);
}

}  // namespace axfold
