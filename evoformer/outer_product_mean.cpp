#include "evoformer/outer_product_mean.h"

#include <algorithm>

namespace axfold {

void outer_product_mean_project(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                const Tensor& left, const Tensor& right, Context& ctx, const TrunkConstants& k) {
    Workspace& ws = ctx.ws;
    const int64_t S = m.size(0), N = m.size(1), C = w.left_projection.weights.size(1);
    AXF_CHECK(msa_mask.dim() == 2 && msa_mask.size(0) == S && msa_mask.size(1) == N,
              "outer_product_mean: mask %s for msa %s", msa_mask.desc().c_str(), m.desc().c_str());
    for (const Tensor* t : {&left, &right})
        AXF_CHECK(!t->defined() || (t->is_contiguous() && t->shape() == Shape({S, N, C})),
                  "outer_product_mean: projection %s, expected a contiguous [%lld, %lld, %lld]", t->desc().c_str(),
                  (long long)S, (long long)N, (long long)C);
    // Projections in chunks of MSA rows, so no normalised copy of the whole MSA exists.
    const int64_t sc = ctx.chunk_size > 0 ? std::min(S, ctx.chunk_size) : S;
    for (int64_t s0 = 0; s0 < S; s0 += sc) {
        WorkspaceScope rows(ws);
        const int64_t s1 = std::min(S, s0 + sc);
        Tensor x = layer_norm(m.slice(0, s0, s1), w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
        const Tensor mask3 = msa_mask.slice(0, s0, s1).unsqueeze(2).expand({s1 - s0, N, C});
        if (left.defined()) {
            const Tensor l = left.slice(0, s0, s1);
            linear(x, w.left_projection.weights, w.left_projection.bias, l);
            mul(l, mask3);
        }
        if (right.defined()) {
            const Tensor r = right.slice(0, s0, s1);
            linear(x, w.right_projection.weights, w.right_projection.bias, r);
            mul(r, mask3);
        }
    }
}

void outer_product_mean_combine(const OuterProductMeanWeights& w, const Tensor& left, const Tensor& right,
                                const Tensor& norm, const Tensor& out, bool accumulate, Context& ctx,
                                const TrunkConstants& k, int64_t chunk_rows) {
    Workspace& ws = ctx.ws;
    const int64_t S = left.size(0), Ni = left.size(1), Nj = right.size(1), C = left.size(2), Cz = w.output_b.size(0);
    AXF_CHECK(left.is_contiguous() && right.is_contiguous() && right.size(0) == S && right.size(2) == C,
              "outer_product_mean: projections %s and %s", left.desc().c_str(), right.desc().c_str());
    AXF_CHECK(out.dim() == 3 && out.size(0) == Ni && out.size(1) == Nj && out.size(2) == Cz && norm.dim() == 2 &&
                  norm.size(0) == Ni && norm.size(1) == Nj,
              "outer_product_mean: output %s (norm %s), expected [%lld, %lld, %lld]", out.desc().c_str(),
              norm.desc().c_str(), (long long)Ni, (long long)Nj, (long long)Cz);
    // Residues i per block: the caller's, else ctx.chunk_size, else a block of the [i, j, c, c] outer
    // products of about 32 MB.
    if (chunk_rows <= 0) chunk_rows = ctx.chunk_size;
    if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, (int64_t(1) << 23) / std::max<int64_t>(1, Nj * C * C));
    Tensor l2 = left.view({S, Ni * C}), r2 = right.view({S, Nj * C});
    for (int64_t i0 = 0; i0 < Ni; i0 += chunk_rows) {
        WorkspaceScope chunk(ws);
        const int64_t ni = std::min(chunk_rows, Ni - i0);
        // outer[(i, a), (j, b)] = sum_s left[s, i, a] right[s, j, b]
        Tensor outer = ws.alloc({ni * C, Nj * C});
        matmul(l2.slice(1, i0 * C, (i0 + ni) * C).transpose(0, 1), r2, outer);
        Tensor oijab = ws.alloc({ni, Nj, C, C});
        copy(oijab, outer.view({ni, C, Nj, C}).permute({0, 2, 1, 3}));
        Tensor upd = ws.alloc({ni, Nj, Cz});
        linear(oijab.view({ni, Nj, C * C}), w.output_w, w.output_b, upd);
        div_eps(upd, norm.slice(0, i0, i0 + ni).unsqueeze(2).expand({ni, Nj, Cz}), k.opm_eps);
        Tensor dst = out.slice(0, i0, i0 + ni);
        write_update(dst, upd, accumulate);
    }
}

void outer_product_mean_forward(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                const Tensor& out, bool accumulate, Context& ctx, const TrunkConstants& k,
                                int64_t chunk_rows) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t S = m.size(0), N = m.size(1), C = w.left_projection.weights.size(1), Cz = w.output_b.size(0);
    AXF_CHECK(msa_mask.dim() == 2 && msa_mask.size(0) == S && msa_mask.size(1) == N,
              "outer_product_mean: mask %s for msa %s", msa_mask.desc().c_str(), m.desc().c_str());
    AXF_CHECK(out.dim() == 3 && out.size(0) == N && out.size(1) == N && out.size(2) == Cz,
              "outer_product_mean: output %s, expected [%lld, %lld, %lld]", out.desc().c_str(), (long long)N,
              (long long)N, (long long)Cz);
    Tensor left = ws.alloc({S, N, C}), right = ws.alloc({S, N, C});
    outer_product_mean_project(w, m, msa_mask, left, right, ctx, k);
    // norm[i, j] = number of sequences where both residues are present.
    Tensor norm = ws.alloc({N, N});
    matmul(msa_mask.transpose(0, 1), msa_mask, norm);
    outer_product_mean_combine(w, left, right, norm, out, accumulate, ctx, k, chunk_rows);
}

void outer_product_mean_combine_backward(const OuterProductMeanWeights& w, const Tensor& left, const Tensor& right,
                                         const Tensor& norm, const Tensor& dupdate, const Tensor& dleft,
                                         const Tensor& dright, OuterProductMeanWeights& grads, Context& ctx,
                                         const TrunkConstants& k, int64_t chunk_rows) {
    Workspace& ws = ctx.ws;
    const int64_t S = left.size(0), Ni = left.size(1), Nj = right.size(1), C = left.size(2), Cz = w.output_b.size(0);
    AXF_CHECK(left.is_contiguous() && right.is_contiguous() && right.size(0) == S && right.size(2) == C &&
                  dleft.is_contiguous() && dleft.shape() == left.shape() && dright.is_contiguous() &&
                  dright.shape() == right.shape() && dupdate.is_contiguous() &&
                  dupdate.shape() == Shape({Ni, Nj, Cz}) && norm.dim() == 2 && norm.size(0) == Ni &&
                  norm.size(1) == Nj,
              "outer_product_mean backward: left %s, right %s, dleft %s, dright %s, dupdate %s, norm %s",
              left.desc().c_str(), right.desc().c_str(), dleft.desc().c_str(), dright.desc().c_str(),
              dupdate.desc().c_str(), norm.desc().c_str());
    if (chunk_rows <= 0) chunk_rows = ctx.chunk_size;
    if (chunk_rows <= 0) chunk_rows = std::max<int64_t>(1, (int64_t(1) << 23) / std::max<int64_t>(1, Nj * C * C));
    const Tensor l2 = left.view({S, Ni * C}), r2 = right.view({S, Nj * C}), dr2 = dright.view({S, Nj * C});
    for (int64_t i0 = 0; i0 < Ni; i0 += chunk_rows) {
        WorkspaceScope chunk(ws);
        const int64_t ni = std::min(chunk_rows, Ni - i0);
        const Tensor l_i = l2.slice(1, i0 * C, (i0 + ni) * C);  // [S, ni c]
        Tensor outer = ws.alloc({ni * C, Nj * C});
        matmul(l_i.transpose(0, 1), r2, outer);
        Tensor oijab = ws.alloc({ni, Nj, C, C});
        copy(oijab, outer.view({ni, C, Nj, C}).permute({0, 2, 1, 3}));
        // u = (o W + b) / (eps + norm): d(o W + b) = dupdate / (eps + norm).
        Tensor du = ws.alloc({ni, Nj, Cz});
        copy(du, dupdate.slice(0, i0, i0 + ni));
        div_eps(du, norm.slice(0, i0, i0 + ni).unsqueeze(2).expand({ni, Nj, Cz}), k.opm_eps);
        Tensor doijab = ws.alloc({ni, Nj, C, C});
        linear_backward(oijab.view({ni, Nj, C * C}), w.output_w, du, doijab.view({ni, Nj, C * C}), false,
                        grads.output_w, grads.output_b, ws);
        Tensor douter = ws.alloc({ni * C, Nj * C});
        copy(douter.view({ni, C, Nj, C}), doijab.permute({0, 2, 1, 3}));
        // outer = l_i^T r: d l_i = r douter^T, d r += l_i douter.
        Tensor dl_i = ws.alloc({S, ni * C});
        matmul(r2, douter.transpose(0, 1), dl_i);
        copy(dleft.view({S, Ni * C}).slice(1, i0 * C, (i0 + ni) * C), dl_i);
        matmul(l_i, douter, dr2, 1.f, 1.f);
    }
}

void outer_product_mean_project_backward(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                         const Tensor& dleft, const Tensor& dright, const Tensor& dm,
                                         bool accumulate_dm, OuterProductMeanWeights& grads, Context& ctx,
                                         const TrunkConstants& k, const std::function<void()>& right_ready) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t S = m.size(0), N = m.size(1), C = w.left_projection.weights.size(1);
    AXF_CHECK(m.is_contiguous() && dm.is_contiguous() && dm.shape() == m.shape() && dleft.is_contiguous() &&
                  dright.is_contiguous() && dleft.shape() == Shape({S, N, C}) && dright.shape() == dleft.shape(),
              "outer_product_mean backward: m %s, dm %s, dleft %s, dright %s (contiguous; [S, N, c] projections)",
              m.desc().c_str(), dm.desc().c_str(), dleft.desc().c_str(), dright.desc().c_str());
    // left = (x Wl + bl) * mask (right alike), x = LN(m): back through the mask, the projections and the norm,
    // in chunks of MSA rows as the forward projects. With right_ready, the left side runs over every chunk
    // first (into a whole-MSA dx) and the right side after it.
    const int64_t sc = ctx.chunk_size > 0 ? std::min(S, ctx.chunk_size) : S;
    Tensor dx_all = right_ready ? ws.alloc(m.shape()) : Tensor();
    for (int pass = right_ready ? 0 : 1; pass < 2; ++pass) {
        if (pass == 1 && right_ready) right_ready();
        for (int64_t s0 = 0; s0 < S; s0 += sc) {
            WorkspaceScope rows(ws);
            const int64_t s1 = std::min(S, s0 + sc);
            const Tensor ms = m.slice(0, s0, s1);
            Tensor x = layer_norm(ms, w.layer_norm_input.scale, w.layer_norm_input.offset, k.eps, ws);
            const Tensor mask3 = msa_mask.slice(0, s0, s1).unsqueeze(2).expand({s1 - s0, N, C});
            Tensor dx = right_ready ? dx_all.slice(0, s0, s1) : ws.alloc(x.shape());
            const Tensor dl = dleft.slice(0, s0, s1), dr = dright.slice(0, s0, s1);
            if (pass == 0 || !right_ready) {
                mul(dl, mask3);
                linear_backward(x, w.left_projection.weights, dl, dx, false, grads.left_projection.weights,
                                grads.left_projection.bias, ws);
            }
            if (pass == 1) {
                mul(dr, mask3);
                linear_backward(x, w.right_projection.weights, dr, dx, true, grads.right_projection.weights,
                                grads.right_projection.bias, ws);
                layer_norm_backward(ms, w.layer_norm_input.scale, k.eps, dx, dm.slice(0, s0, s1), accumulate_dm,
                                    grads.layer_norm_input.scale, grads.layer_norm_input.offset, ws);
            }
        }
    }
}

void outer_product_mean_backward(const OuterProductMeanWeights& w, const Tensor& m, const Tensor& msa_mask,
                                 const Tensor& dupdate, const Tensor& dm, bool accumulate_dm,
                                 OuterProductMeanWeights& grads, Context& ctx, const TrunkConstants& k,
                                 int64_t chunk_rows) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t S = m.size(0), N = m.size(1), C = w.left_projection.weights.size(1), Cz = w.output_b.size(0);
    AXF_CHECK(m.is_contiguous() && dm.is_contiguous() && dm.shape() == m.shape() && dupdate.is_contiguous() &&
                  dupdate.shape() == Shape({N, N, Cz}),
              "outer_product_mean backward: m %s, dm %s, dupdate %s (contiguous; dupdate [%lld, %lld, %lld])",
              m.desc().c_str(), dm.desc().c_str(), dupdate.desc().c_str(), (long long)N, (long long)N, (long long)Cz);
    // The forward's projections and normaliser.
    Tensor left = ws.alloc({S, N, C}), right = ws.alloc({S, N, C});
    outer_product_mean_project(w, m, msa_mask, left, right, ctx, k);
    Tensor norm = ws.alloc({N, N});
    matmul(msa_mask.transpose(0, 1), msa_mask, norm);
    // d(left) and d(right) [S, N, c], through the outer products block by block of residues i.
    Tensor dleft = ws.alloc({S, N, C}), dright = ws.alloc({S, N, C});
    fill(dright, 0.f);
    outer_product_mean_combine_backward(w, left, right, norm, dupdate, dleft, dright, grads, ctx, k, chunk_rows);
    outer_product_mean_project_backward(w, m, msa_mask, dleft, dright, dm, accumulate_dm, grads, ctx, k);
}

}  // namespace axfold
