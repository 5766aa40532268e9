#include "evoformer/gated_attention.h"

#include <cmath>

namespace axfold {

void gated_self_attention(const AttentionWeights& w, const Tensor& x, bool along_axis0, const Tensor& mask,
                          const Tensor& bias, float inf, Tensor& out, bool accumulate, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t A0 = x.size(0), A1 = x.size(1), H = w.no_heads(), C = w.c_hidden();
    AXF_CHECK(x.dim() == 3 && x.size(2) == w.query_w.size(0), "attention input %s does not match query_w %s",
              x.desc().c_str(), shape_str(w.query_w.shape()).c_str());
    AXF_CHECK(mask.dim() == 2 && mask.size(0) == A0 && mask.size(1) == A1, "attention mask %s for input %s",
              mask.desc().c_str(), x.desc().c_str());
    Tensor q = linear(x, w.query_w, Tensor(), ws).view({A0, A1, H, C});
    Tensor k = linear(x, w.key_w, Tensor(), ws).view({A0, A1, H, C});
    Tensor v = linear(x, w.value_w, Tensor(), ws).view({A0, A1, H, C});
    Tensor o = ws.alloc({A0, A1, H, C});
    Tensor m = mask;
    if (along_axis0) {
        Tensor qt = q.permute({1, 0, 2, 3}), kt = k.permute({1, 0, 2, 3}), vt = v.permute({1, 0, 2, 3});
        Tensor ot = o.permute({1, 0, 2, 3});
        attention(qt, kt, vt, mask.transpose(0, 1), bias, 1.f / std::sqrt(static_cast<float>(C)), inf, ot, ws);
    } else {
        attention(q, k, v, mask, bias, 1.f / std::sqrt(static_cast<float>(C)), inf, o, ws);
    }
    Tensor o3 = o.view({A0, A1, H * C});
    if (w.gating) {
        Tensor g = linear(x, w.gating_w, w.gating_b, ws);
        sigmoid_mul(o3, g);
    }
    linear(o3, w.output_w, w.output_b, out, accumulate ? 1.f : 0.f);
}

}  // namespace axfold
