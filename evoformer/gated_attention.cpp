#include "evoformer/gated_attention.h"

#include <algorithm>
#include <cmath>

namespace axfold {

void gated_self_attention(const AttentionWeights& w, const LayerNormWeights& norm, const Tensor& act,
                          bool along_axis0, const Tensor& mask, const Tensor& bias, float inf, float eps,
                          const Tensor& out, bool accumulate, Context& ctx) {
    Workspace& ws = ctx.ws;
    const int64_t A0 = act.size(0), A1 = act.size(1), H = w.no_heads(), C = w.c_hidden();
    const int64_t Cout = w.output_b.size(0);
    AXF_CHECK(act.dim() == 3 && act.size(2) == w.query_w.size(0), "attention input %s does not match query_w %s",
              act.desc().c_str(), shape_str(w.query_w.shape()).c_str());
    AXF_CHECK(mask.dim() == 2 && mask.size(0) == A0 && mask.size(1) == A1, "attention mask %s for input %s",
              mask.desc().c_str(), act.desc().c_str());
    AXF_CHECK(out.dim() == 3 && out.size(0) == A0 && out.size(1) == A1 && out.size(2) == Cout,
              "attention output %s for input %s", out.desc().c_str(), act.desc().c_str());
    const int bdim = along_axis0 ? 1 : 0;  // the batch axis in act's layout
    const int64_t nb = act.size(bdim), cs = chunk_rows(ctx, nb);
    const float scale = 1.f / std::sqrt(static_cast<float>(C));
    for (int64_t b0 = 0; b0 < nb; b0 += cs) {
        WorkspaceScope scope(ws);
        const int64_t b1 = std::min(nb, b0 + cs);
        // The chunk is normalised straight into the attending layout [batch, query, c_in] (a transposed
        // read when attending along axis 0), so every GEMM below works on contiguous rows.
        const Tensor a = along_axis0 ? act.slice(1, b0, b1).permute({1, 0, 2}) : act.slice(0, b0, b1);
        const int64_t R0 = a.size(0), R1 = a.size(1);
        Tensor x = ws.alloc({R0, R1, act.size(2)});
        layer_norm(a, norm.scale, norm.offset, eps, x);
        Tensor q = linear(x, w.query_w, Tensor(), ws).view({R0, R1, H, C});
        Tensor k = linear(x, w.key_w, Tensor(), ws).view({R0, R1, H, C});
        Tensor v = linear(x, w.value_w, Tensor(), ws).view({R0, R1, H, C});
        Tensor o = ws.alloc({R0, R1, H, C});
        const Tensor m = along_axis0 ? mask.slice(1, b0, b1).transpose(0, 1) : mask.slice(0, b0, b1);
        attention(q, k, v, m, bias, scale, inf, o, ws);
        Tensor o3 = o.view({R0, R1, H * C});
        if (w.gating) {
            Tensor g = linear(x, w.gating_w, w.gating_b, ws);
            sigmoid_mul(o3, g);
        }
        // The output projection goes through x (dead once q, k, v and the gate exist) where it cannot be
        // written straight into the output: bfloat16 activations, DAP's strided views, column attention.
        const Tensor dst = along_axis0 ? out.slice(1, b0, b1).permute({1, 0, 2}) : out.slice(0, b0, b1);
        linear_update(o3, w.output_w, w.output_b, dst, accumulate, Cout == act.size(2) ? x : ws.alloc({R0, R1, Cout}));
    }
}

}  // namespace axfold
