#include "evoformer/msa_attention.h"

#include <algorithm>
#include <cmath>

#include "evoformer/gated_attention.h"

namespace axfold {

namespace {

// The global column attention's query for columns n of x [E, n, C_in] (mask_t [n, E]): the masked mean over the
// sequences, projected and scaled by 1/sqrt(c); the mean [n, C_in] and the mask counts [n, 1] are kept for the
// backward. From the workspace.
struct GlobalQuery {
    Tensor mean, count, q;
};
GlobalQuery global_query(const GlobalAttentionWeights& a, const Tensor& x, const Tensor& mask_t, float eps,
                         Workspace& ws) {
    const int64_t E = x.size(0), n = x.size(1), Cin = x.size(2);
    GlobalQuery g;
    Tensor sum = ws.alloc({n, 1, Cin});
    matmul(mask_t.unsqueeze(1), x.permute({1, 0, 2}), sum);
    Tensor ones = ws.alloc({E, 1});
    fill(ones, 1.f);
    g.count = ws.alloc({n, 1});
    matmul(mask_t, ones, g.count);
    g.mean = sum.view({n, Cin});
    div_eps(g.mean, g.count.expand({n, Cin}), eps);
    g.q = linear(g.mean, a.query_w, Tensor(), ws);  // [n, H*C]
    scale(g.q, 1.f / std::sqrt(static_cast<float>(a.c_hidden())));
    return g;
}

}  // namespace

// Pair bias [H, N, N] = LN(z) @ feat_2d_weights, permuted to the attending frame; computed in row chunks
// of z so no pair-sized normalised copy exists. `ending` gives bias[h, q, k] from z[k, q].
Tensor pair_bias(const LayerNormWeights& norm, const Tensor& feat_2d_weights, const Tensor& z, bool ending, float eps,
                 Context& ctx) {
    const int64_t N = z.size(0), H = feat_2d_weights.size(1);
    Tensor bias = ctx.ws.alloc({H, N, N});
    const int64_t cs = chunk_rows(ctx, N);
    for (int64_t i0 = 0; i0 < N; i0 += cs) {
        WorkspaceScope scope(ctx.ws);
        const int64_t i1 = std::min(N, i0 + cs);
        Tensor zn = layer_norm(z.slice(0, i0, i1), norm.scale, norm.offset, eps, ctx.ws);
        Tensor b = linear(zn, feat_2d_weights, Tensor(), ctx.ws);  // [ci, N, H]
        if (ending)
            copy(bias.slice(2, i0, i1), b.permute({2, 1, 0}));
        else
            copy(bias.slice(1, i0, i1), b.permute({2, 0, 1}));
    }
    return bias;
}

void msa_row_attention_forward(const MsaRowAttentionWeights& w, const Tensor& m, const Tensor& z,
                               const Tensor& msa_mask, const Tensor& out, bool accumulate, Context& ctx,
                               const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    AXF_CHECK(z.dim() == 3 && m.dim() == 3 && z.size(0) == m.size(1) && z.size(1) == m.size(1),
              "msa_row_attention: msa %s and pair %s disagree on N_res", m.desc().c_str(), z.desc().c_str());
    Tensor bias = pair_bias(w.feat_2d_norm, w.feat_2d_weights, z, false, k.eps, ctx);
    gated_self_attention(w.attention, w.query_norm, m, false, msa_mask, bias, k.inf, k.eps, out, accumulate, ctx);
}

void msa_column_attention_forward(const MsaColumnAttentionWeights& w, const Tensor& m, const Tensor& msa_mask,
                                  const Tensor& out, bool accumulate, Context& ctx, const TrunkConstants& k) {
    gated_self_attention(w.attention, w.query_norm, m, true, msa_mask, Tensor(), k.inf, k.eps, out, accumulate, ctx);
}

void msa_column_global_attention_forward(const MsaColumnGlobalAttentionWeights& w, const Tensor& m,
                                         const Tensor& msa_mask, const Tensor& out, bool accumulate, Context& ctx,
                                         const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    const GlobalAttentionWeights& a = w.attention;
    const int64_t E = m.size(0), N = m.size(1), Cin = m.size(2), H = a.no_heads(), C = a.c_hidden();
    AXF_CHECK(msa_mask.dim() == 2 && msa_mask.size(0) == E && msa_mask.size(1) == N,
              "msa_column_global_attention: mask %s for msa %s", msa_mask.desc().c_str(), m.desc().c_str());
    const int64_t cs = chunk_rows(ctx, N);
    for (int64_t n0 = 0; n0 < N; n0 += cs) {  // columns are independent: chunk over them
        WorkspaceScope scope(ws);
        const int64_t n1 = std::min(N, n0 + cs), n = n1 - n0;
        Tensor x = ws.alloc({E, n, Cin});
        layer_norm(m.slice(1, n0, n1), w.query_norm.scale, w.query_norm.offset, k.eps, x);
        const Tensor mask_t = msa_mask.slice(1, n0, n1).transpose(0, 1);  // [n, E]
        const Tensor q = global_query(a, x, mask_t, k.global_eps, ws).q;  // [n, H*C]
        Tensor kk = linear(x, a.key_w, Tensor(), ws);  // [E, n, C]
        Tensor v = linear(x, a.value_w, Tensor(), ws);  // [E, n, C]
        Tensor logits = ws.alloc({n, H, E});
        matmul(q.view({n, H, C}), kk.permute({1, 2, 0}), logits);
        softmax(logits, 1.f, mask_t.unsqueeze(1).expand({n, H, E}), Tensor(), k.inf);
        Tensor wavg = ws.alloc({n, H, C});
        matmul(logits, v.permute({1, 0, 2}), wavg);
        Tensor g = linear(x, a.gating_w, a.gating_b, ws);  // [E, n, H*C]
        sigmoid(g);
        mul(g, wavg.view({1, n, H * C}).expand({E, n, H * C}));
        // Through x (dead by now) for a strided chunk of columns or bfloat16 activations.
        const int64_t Cout = a.output_b.size(0);
        linear_update(g, a.output_w, a.output_b, out.slice(1, n0, n1), accumulate,
                      Cout == Cin ? x : ws.alloc({E, n, Cout}));
    }
}

void msa_column_global_attention_backward(const MsaColumnGlobalAttentionWeights& w, const Tensor& m,
                                          const Tensor& msa_mask, const Tensor& dupdate, const Tensor& dm,
                                          bool accumulate_dm, MsaColumnGlobalAttentionWeights& grads, Context& ctx,
                                          const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    const GlobalAttentionWeights& a = w.attention;
    GlobalAttentionWeights& ga = grads.attention;
    const int64_t E = m.size(0), N = m.size(1), Cin = m.size(2), H = a.no_heads(), C = a.c_hidden();
    const int64_t Cout = a.output_b.size(0), HC = H * C;
    AXF_CHECK(msa_mask.dim() == 2 && msa_mask.size(0) == E && msa_mask.size(1) == N && dm.shape() == m.shape() &&
                  dupdate.dim() == 3 && dupdate.size(0) == E && dupdate.size(1) == N && dupdate.size(2) == Cout,
              "msa_column_global_attention backward: msa %s, mask %s, dupdate %s, dm %s", m.desc().c_str(),
              msa_mask.desc().c_str(), dupdate.desc().c_str(), dm.desc().c_str());
    const float qscale = 1.f / std::sqrt(static_cast<float>(C));
    const int64_t cs = chunk_rows(ctx, N);
    for (int64_t n0 = 0; n0 < N; n0 += cs) {
        WorkspaceScope scope(ws);
        const int64_t n1 = std::min(N, n0 + cs), n = n1 - n0;
        // The forward, as msa_column_global_attention_forward forms it (x contiguous for the norm's backward).
        Tensor mc = ws.alloc({E, n, Cin});
        copy(mc, m.slice(1, n0, n1));
        Tensor x = layer_norm(mc, w.query_norm.scale, w.query_norm.offset, k.eps, ws);
        const Tensor mask_t = msa_mask.slice(1, n0, n1).transpose(0, 1);  // [n, E]
        const GlobalQuery gq = global_query(a, x, mask_t, k.global_eps, ws);
        const Tensor &q_avg2 = gq.mean, &msum = gq.count, &q = gq.q;
        Tensor kk = linear(x, a.key_w, Tensor(), ws);  // [E, n, C]
        Tensor v = linear(x, a.value_w, Tensor(), ws);  // [E, n, C]
        Tensor p = ws.alloc({n, H, E});
        matmul(q.view({n, H, C}), kk.permute({1, 2, 0}), p);
        softmax(p, 1.f, mask_t.unsqueeze(1).expand({n, H, E}), Tensor(), k.inf);
        Tensor wavg = ws.alloc({n, H, C});
        matmul(p, v.permute({1, 0, 2}), wavg);
        Tensor gpre = linear(x, a.gating_w, a.gating_b, ws);  // [E, n, H*C], before the sigmoid
        Tensor wb = ws.alloc({E, n, HC});                     // wavg for every sequence
        copy(wb, wavg.view({1, n, HC}).expand({E, n, HC}));
        Tensor y = ws.alloc({E, n, HC});
        copy(y, wb);
        sigmoid_mul(y, gpre);

        // out = y Wo + bo, y = wavg sigmoid(gpre).
        Tensor dout = ws.alloc({E, n, Cout});
        copy(dout, dupdate.slice(1, n0, n1));
        Tensor dy = ws.alloc({E, n, HC}), dwb = ws.alloc({E, n, HC}), dgpre = ws.alloc({E, n, HC});
        linear_backward(y, a.output_w, dout, dy, false, ga.output_w, ga.output_b, ws);
        sigmoid_mul_backward(wb, gpre, dy, dwb, dgpre);
        Tensor dx = ws.alloc({E, n, Cin});
        linear_backward(x, a.gating_w, dgpre, dx, false, ga.gating_w, ga.gating_b, ws);
        Tensor dwavg = ws.alloc({n, H, C});  // sum over the sequences
        Tensor ones_row = ws.alloc({1, E});
        fill(ones_row, 1.f);
        matmul(ones_row, dwb.view({E, n * HC}), dwavg.view({1, n * HC}));
        // wavg[n] = p[n] v[n]: dp = dwavg v^T, dv = p^T dwavg; the softmax; logits[n] = q[n] kk[n]^T.
        Tensor dp = ws.alloc({n, H, E});
        matmul(dwavg, v.permute({1, 2, 0}), dp);
        Tensor dv = ws.alloc({E, n, C});
        matmul(p.transpose(1, 2), dwavg, dv.permute({1, 0, 2}));
        softmax_backward(p, dp, 1.f, dp);
        Tensor dq = ws.alloc({n, H, C}), dkk = ws.alloc({E, n, C});
        matmul(dp, kk.permute({1, 0, 2}), dq);
        matmul(dp.transpose(1, 2), q.view({n, H, C}), dkk.permute({1, 0, 2}));
        linear_backward(x, a.key_w, dkk, dx, true, ga.key_w, Tensor(), ws);
        linear_backward(x, a.value_w, dv, dx, true, ga.value_w, Tensor(), ws);
        // q = qscale (q_avg Wq); q_avg = masked mean of x over the sequences.
        scale(dq, qscale);
        Tensor dq_avg = ws.alloc({n, Cin});
        linear_backward(q_avg2, a.query_w, dq.view({n, HC}), dq_avg, false, ga.query_w, Tensor(), ws);
        div_eps(dq_avg, msum.expand({n, Cin}), k.global_eps);
        Tensor dxm = ws.alloc({E, n, Cin});
        copy(dxm, dq_avg.view({1, n, Cin}).expand({E, n, Cin}));
        mul(dxm, msa_mask.slice(1, n0, n1).unsqueeze(2).expand({E, n, Cin}));
        add(dx, dxm);
        Tensor dmc = ws.alloc({E, n, Cin});
        layer_norm_backward(mc, w.query_norm.scale, k.eps, dx, dmc, grads.query_norm.scale, grads.query_norm.offset);
        const Tensor dst = dm.slice(1, n0, n1);
        if (accumulate_dm)
            add(dst, dmc);
        else
            copy(dst, dmc);
    }
}

void pair_bias_backward(const LayerNormWeights& norm, const Tensor& feat_2d_weights, const Tensor& z, bool ending,
                        float eps, const Tensor& dbias, const Tensor& dz, bool accumulate_dz, LayerNormWeights& grads_norm,
                        Tensor& grads_feat_2d_weights, Context& ctx) {
    const int64_t N = z.size(0), N1 = z.size(1), H = feat_2d_weights.size(1);
    AXF_CHECK(dbias.shape() == (ending ? Shape({H, N1, N}) : Shape({H, N, N1})) && dz.shape() == z.shape() &&
                  z.is_contiguous() && dz.is_contiguous(),
              "pair bias backward: dbias %s, z %s, dz %s", dbias.desc().c_str(), z.desc().c_str(), dz.desc().c_str());
    const int64_t cs = chunk_rows(ctx, N);
    for (int64_t i0 = 0; i0 < N; i0 += cs) {
        WorkspaceScope scope(ctx.ws);
        const int64_t i1 = std::min(N, i0 + cs), ni = i1 - i0;
        const Tensor zi = z.slice(0, i0, i1);
        Tensor zn = layer_norm(zi, norm.scale, norm.offset, eps, ctx.ws);
        Tensor db = ctx.ws.alloc({ni, N1, H});  // d(LN(z) W) rows i0..i1, as pair_bias laid them out
        copy(db, ending ? dbias.slice(2, i0, i1).permute({2, 1, 0}) : dbias.slice(1, i0, i1).permute({1, 2, 0}));
        Tensor dzn = ctx.ws.alloc(zn.shape());
        linear_backward(zn, feat_2d_weights, db, dzn, false, grads_feat_2d_weights, Tensor(), ctx.ws);
        layer_norm_backward(zi, norm.scale, eps, dzn, dz.slice(0, i0, i1), accumulate_dz, grads_norm.scale,
                            grads_norm.offset, ctx.ws);
    }
}

void msa_row_attention_backward(const MsaRowAttentionWeights& w, const Tensor& m, const Tensor& z,
                                const Tensor& msa_mask, const Tensor& dupdate, const Tensor& dm, bool accumulate_dm,
                                const Tensor& dz, bool accumulate_dz, MsaRowAttentionWeights& grads, Context& ctx,
                                const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    Tensor bias = pair_bias(w.feat_2d_norm, w.feat_2d_weights, z, false, k.eps, ctx);
    Tensor dbias = ctx.ws.alloc(bias.shape());
    fill(dbias, 0.f);
    gated_self_attention_backward(w.attention, w.query_norm, m, false, msa_mask, bias, k.inf, k.eps, dupdate, dm,
                                  accumulate_dm, grads.attention, grads.query_norm, dbias, ctx);
    pair_bias_backward(w.feat_2d_norm, w.feat_2d_weights, z, false, k.eps, dbias, dz, accumulate_dz, grads.feat_2d_norm,
                       grads.feat_2d_weights, ctx);
}

void msa_column_attention_backward(const MsaColumnAttentionWeights& w, const Tensor& m, const Tensor& msa_mask,
                                   const Tensor& dupdate, const Tensor& dm, bool accumulate_dm,
                                   MsaColumnAttentionWeights& grads, Context& ctx, const TrunkConstants& k) {
    gated_self_attention_backward(w.attention, w.query_norm, m, true, msa_mask, Tensor(), k.inf, k.eps, dupdate, dm,
                                  accumulate_dm, grads.attention, grads.query_norm, Tensor(), ctx);
}

}  // namespace axfold
