#include "evoformer/gated_attention.h"

#include <algorithm>
#include <cmath>

namespace axfold {

namespace {

// The query, key and value weights (and the gate's, `with_gate`) side by side, [c_in, parts * H * c], with
// the matching bias (zero but the gate's): one GEMM reads the normalised input once for all of them.
struct Projections {
    Tensor w, b;
    int64_t parts;
};
Projections fused_projections(const AttentionWeights& w, bool with_gate, Workspace& ws) {
    const int64_t Cin = w.query_w.size(0), HC = w.no_heads() * w.c_hidden();
    Projections p{Tensor(), Tensor(), with_gate && w.gating ? 4 : 3};
    p.w = ws.alloc({Cin, p.parts, HC});
    const Tensor* parts[] = {&w.query_w, &w.key_w, &w.value_w, &w.gating_w};
    for (int64_t i = 0; i < p.parts; ++i) copy(p.w.select(1, i), parts[i]->view({Cin, HC}));
    if (p.parts == 4) {
        p.b = ws.alloc({p.parts, HC});
        fill(p.b.slice(0, 0, 3), 0.f);
        copy(p.b.select(0, 3), w.gating_b.view({HC}));
    }
    return p;
}

// One chunk's attention in the attending layout a [R0, R1, c_in] (a view): x = LN(a), q, k, v (and g, the gate's
// pre-activation, when p carries it) as [R0, R1, H, c] views of one projection, and the attention output o
// [R0, R1, H, c] (before the gate), all from the workspace.
struct AttentionChunk {
    Tensor x, q, k, v, g, o;
};
AttentionChunk attend(const AttentionWeights& w, const Projections& p, const LayerNormWeights& norm, const Tensor& a,
                      const Tensor& m, const Tensor& bias, float inf, float eps, Workspace& ws) {
    const int64_t R0 = a.size(0), R1 = a.size(1), H = w.no_heads(), C = w.c_hidden();
    AttentionChunk t;
    t.x = ws.alloc({R0, R1, a.size(2)});
    layer_norm(a, norm.scale, norm.offset, eps, t.x);
    const Tensor qkv = linear(t.x, p.w, p.b, ws).view({R0, R1, p.parts, H, C});
    t.q = qkv.select(2, 0);
    t.k = qkv.select(2, 1);
    t.v = qkv.select(2, 2);
    if (p.parts == 4) t.g = qkv.select(2, 3);
    t.o = ws.alloc({R0, R1, H, C});
    attention(t.q, t.k, t.v, m, bias, 1.f / std::sqrt(static_cast<float>(C)), inf, t.o, ws);
    return t;
}

}  // namespace

void gated_self_attention(const AttentionWeights& w, const LayerNormWeights& norm, const Tensor& act, bool along_axis0,
                          const Tensor& mask, const Tensor& bias, float inf, float eps, const Tensor& out,
                          bool accumulate, Context& ctx) {
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
    WorkspaceScope outer(ws);
    const Projections p = fused_projections(w, true, ws);
    for (int64_t b0 = 0; b0 < nb; b0 += cs) {
        WorkspaceScope scope(ws);
        const int64_t b1 = std::min(nb, b0 + cs);
        // The chunk is normalised straight into the attending layout [batch, query, c_in] (a transposed
        // read when attending along axis 0), so every GEMM below works on contiguous rows.
        const Tensor a = along_axis0 ? act.slice(1, b0, b1).permute({1, 0, 2}) : act.slice(0, b0, b1);
        const int64_t R0 = a.size(0), R1 = a.size(1);
        const Tensor m = along_axis0 ? mask.slice(1, b0, b1).transpose(0, 1) : mask.slice(0, b0, b1);
        const AttentionChunk t = attend(w, p, norm, a, m, bias, inf, eps, ws);
        const Tensor& x = t.x;
        Tensor o3 = t.o.view({R0, R1, H * C});
        if (w.gating) sigmoid_mul(t.o, t.g);
        // The output projection goes through x (dead once q, k, v and the gate exist) where it cannot be
        // written straight into the output: bfloat16 activations, DAP's strided views, column attention.
        const Tensor dst = along_axis0 ? out.slice(1, b0, b1).permute({1, 0, 2}) : out.slice(0, b0, b1);
        linear_update(o3, w.output_w, w.output_b, dst, accumulate, Cout == act.size(2) ? x : ws.alloc({R0, R1, Cout}));
    }
}

void gated_self_attention_backward(const AttentionWeights& w, const LayerNormWeights& norm, const Tensor& act,
                                   bool along_axis0, const Tensor& mask, const Tensor& bias, float inf, float eps,
                                   const Tensor& dout, const Tensor& dact, bool accumulate_dact,
                                   AttentionWeights& grads, LayerNormWeights& grads_norm, const Tensor& dbias,
                                   Context& ctx) {
    Workspace& ws = ctx.ws;
    const int64_t H = w.no_heads(), C = w.c_hidden(), Cin = act.size(2), Cout = w.output_b.size(0);
    AXF_CHECK(act.dim() == 3 && Cin == w.query_w.size(0) && dact.shape() == act.shape() && dout.dim() == 3 &&
                  dout.size(0) == act.size(0) && dout.size(1) == act.size(1) && dout.size(2) == Cout,
              "attention backward: input %s, dact %s, dout %s for query_w %s", act.desc().c_str(), dact.desc().c_str(),
              dout.desc().c_str(), shape_str(w.query_w.shape()).c_str());
    const int bdim = along_axis0 ? 1 : 0;
    const int64_t nb = act.size(bdim), cs = chunk_rows(ctx, nb);
    const float scale = 1.f / std::sqrt(static_cast<float>(C));
    WorkspaceScope outer(ws);
    const Projections p = fused_projections(w, false, ws);
    auto attending = [&](const Tensor& t, int64_t b0, int64_t b1) {
        return along_axis0 ? t.slice(1, b0, b1).permute({1, 0, 2}) : t.slice(0, b0, b1);
    };
    for (int64_t b0 = 0; b0 < nb; b0 += cs) {
        WorkspaceScope scope(ws);
        const int64_t b1 = std::min(nb, b0 + cs);
        const Tensor av = attending(act, b0, b1);
        const int64_t R0 = av.size(0), R1 = av.size(1);
        Tensor a = ws.alloc({R0, R1, Cin});  // contiguous: the layer-norm backward reads rows
        copy(a, av);
        // The forward: x = LN(a); q, k, v; o = attention; og = o * sigmoid(g) (gated); out = og Wo + bo.
        const Tensor m = along_axis0 ? mask.slice(1, b0, b1).transpose(0, 1) : mask.slice(0, b0, b1);
        const AttentionChunk t = attend(w, p, norm, a, m, bias, inf, eps, ws);
        const Tensor &x = t.x, &q = t.q, &k = t.k, &v = t.v;
        const Tensor o3 = t.o.view({R0, R1, H * C});
        Tensor g, og = o3;
        if (w.gating) {
            g = linear(x, w.gating_w, w.gating_b, ws);
            og = ws.alloc({R0, R1, H * C});
            copy(og, o3);
            sigmoid_mul(og, g);
        }
        Tensor dy = ws.alloc({R0, R1, Cout});
        copy(dy, attending(dout, b0, b1));
        Tensor dog = ws.alloc({R0, R1, H * C}), dx = ws.alloc({R0, R1, Cin});
        linear_backward(og, w.output_w, dy, dog, false, grads.output_w, grads.output_b, ws);
        Tensor do3 = dog;
        if (w.gating) {
            do3 = ws.alloc({R0, R1, H * C});
            Tensor dg = ws.alloc({R0, R1, H * C});
            sigmoid_mul_backward(o3, g, dog, do3, dg);
            linear_backward(x, w.gating_w, dg, dx, false, grads.gating_w, grads.gating_b, ws);
        }
        Tensor dq = ws.alloc({R0, R1, H, C}), dk = ws.alloc({R0, R1, H, C}), dv = ws.alloc({R0, R1, H, C});
        attention_backward(q, k, v, m, bias, scale, inf, do3.view({R0, R1, H, C}), dq, dk, dv, dbias, ws);
        linear_backward(x, w.query_w, dq, dx, w.gating, grads.query_w, Tensor(), ws);
        linear_backward(x, w.key_w, dk, dx, true, grads.key_w, Tensor(), ws);
        linear_backward(x, w.value_w, dv, dx, true, grads.value_w, Tensor(), ws);
        Tensor da = ws.alloc({R0, R1, Cin});
        layer_norm_backward(a, norm.scale, eps, dx, da, grads_norm.scale, grads_norm.offset);
        const Tensor dst = attending(dact, b0, b1);
        if (accumulate_dact)
            add(dst, da);
        else
            copy(dst, da);
    }
}

}  // namespace axfold
