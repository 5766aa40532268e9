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

}  // namespace axfold
