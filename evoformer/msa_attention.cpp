#include "evoformer/msa_attention.h"

#include <cmath>

#include "evoformer/gated_attention.h"

namespace axfold {

void msa_row_attention_forward(const MsaRowAttentionWeights& w, const Tensor& m, const Tensor& z,
                               const Tensor& msa_mask, Tensor& out, bool accumulate, Context& ctx,
                               const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    AXF_CHECK(z.dim() == 3 && m.dim() == 3 && z.size(0) == m.size(1) && z.size(1) == m.size(1),
              "msa_row_attention: msa %s and pair %s disagree on N_res", m.desc().c_str(), z.desc().c_str());
    Tensor x = layer_norm(m, w.query_norm.scale, w.query_norm.offset, k.eps, ctx.ws);
    Tensor zn = layer_norm(z, w.feat_2d_norm.scale, w.feat_2d_norm.offset, k.eps, ctx.ws);
    Tensor b = linear(zn, w.feat_2d_weights, Tensor(), ctx.ws);  // [N, N, H]
    Tensor bias = ctx.ws.alloc({b.size(2), b.size(0), b.size(1)});
    copy(bias, b.permute({2, 0, 1}));
    gated_self_attention(w.attention, x, false, msa_mask, bias, k.inf, out, accumulate, ctx);
}

void msa_column_attention_forward(const MsaColumnAttentionWeights& w, const Tensor& m, const Tensor& msa_mask,
                                  Tensor& out, bool accumulate, Context& ctx, const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    Tensor x = layer_norm(m, w.query_norm.scale, w.query_norm.offset, k.eps, ctx.ws);
    gated_self_attention(w.attention, x, true, msa_mask, Tensor(), k.inf, out, accumulate, ctx);
}

void msa_column_global_attention_forward(const MsaColumnGlobalAttentionWeights& w, const Tensor& m,
                                         const Tensor& msa_mask, Tensor& out, bool accumulate, Context& ctx,
                                         const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const GlobalAttentionWeights& a = w.attention;
    const int64_t E = m.size(0), N = m.size(1), Cin = m.size(2), H = a.no_heads(), C = a.c_hidden();
    AXF_CHECK(msa_mask.dim() == 2 && msa_mask.size(0) == E && msa_mask.size(1) == N,
              "msa_column_global_attention: mask %s for msa %s", msa_mask.desc().c_str(), m.desc().c_str());
    Tensor x = layer_norm(m, w.query_norm.scale, w.query_norm.offset, k.eps, ws);  // [E, N, Cin]
    Tensor mask_t = msa_mask.transpose(0, 1);                                      // [N, E]
    // Masked mean of the normalised activations over the sequences of each column.
    Tensor q_avg = ws.alloc({N, 1, Cin});
    matmul(mask_t.unsqueeze(1), x.permute({1, 0, 2}), q_avg);
    Tensor ones = ws.alloc({E, 1});
    ones.fill(1.f);
    Tensor msum = ws.alloc({N, 1});
    matmul(mask_t, ones, msum);
    Tensor q_avg2 = q_avg.view({N, Cin});
    div_eps(q_avg2, msum.expand({N, Cin}), k.global_eps);
    Tensor q = linear(q_avg2, a.query_w, Tensor(), ws);  // [N, H*C]
    scale(q, 1.f / std::sqrt(static_cast<float>(C)));
    Tensor kk = linear(x, a.key_w, Tensor(), ws);  // [E, N, C]
    Tensor v = linear(x, a.value_w, Tensor(), ws);  // [E, N, C]
    Tensor logits = ws.alloc({N, H, E});
    matmul(q.view({N, H, C}), kk.permute({1, 2, 0}), logits);
    softmax(logits, 1.f, mask_t.unsqueeze(1).expand({N, H, E}), Tensor(), k.inf);
    Tensor wavg = ws.alloc({N, H, C});
    matmul(logits, v.permute({1, 0, 2}), wavg);
    Tensor g = linear(x, a.gating_w, a.gating_b, ws);  // [E, N, H*C]
    sigmoid(g);
    mul(g, wavg.view({1, N, H * C}).expand({E, N, H * C}));
    linear(g, a.output_w, a.output_b, out, accumulate ? 1.f : 0.f);
}

}  // namespace axfold
