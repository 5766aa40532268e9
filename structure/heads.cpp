#include "structure/heads.h"

#include <algorithm>
#include <cmath>

namespace axfold {

namespace {
// Bin centres of breaks linspace(0, max_bin, B - 1): breaks + step/2, plus one more step for the last bin.
std::vector<float> pae_bin_centres(int64_t B, float max_bin) {
    const float step = max_bin / static_cast<float>(B - 2);
    std::vector<float> c(B);
    for (int64_t b = 0; b < B - 1; ++b) c[b] = static_cast<float>(b) * step + step / 2;
    c[B - 1] = c[B - 2] + step;
    return c;
}
}  // namespace

Tensor compute_plddt(const Tensor& logits) {
    Tensor p = logits.clone();
    softmax(p, 1.f, Tensor(), Tensor(), 0.f);
    const int64_t N = p.size(0), B = p.size(1);
    Tensor out = Tensor::empty({N});
    for (int64_t i = 0; i < N; ++i) {
        float s = 0.f;
        for (int64_t b = 0; b < B; ++b)
            s += p.f32()[i * B + b] * (static_cast<float>(b) + 0.5f) / static_cast<float>(B);
        out.f32()[i] = 100.f * s;
    }
    return out;
}

float compute_ptm(const Tensor& pae_logits, float max_bin) {
    Tensor p = pae_logits.clone();
    softmax(p, 1.f, Tensor(), Tensor(), 0.f);
    return ptm_from_probs(p, max_bin);
}

namespace {
// pTM's per-bin weights for N residues (AF2 predicted_tm_score: d0 from max(N, 19)).
std::vector<float> tm_per_bin(int64_t N, int64_t B, float max_bin) {
    const std::vector<float> centres = pae_bin_centres(B, max_bin);
    const float n_clip = static_cast<float>(std::max<int64_t>(N, 19));
    const float d0 = 1.24f * std::cbrt(n_clip - 15.f) - 1.8f;
    std::vector<float> t(B);
    for (int64_t b = 0; b < B; ++b) t[b] = 1.f / (1.f + centres[b] * centres[b] / (d0 * d0));
    return t;
}

// pTM's reduction weights on a device: the per-bin TM weights [B, 1] and the per-residue 1 / N [N, 1].
struct TmWeights {
    Tensor per_bin, per_residue;
};
TmWeights tm_weights(int64_t N, int64_t B, float max_bin, Device dev) {
    return {Tensor::from_vector({B, 1}, tm_per_bin(N, B, max_bin)).to(dev),
            Tensor::full({N, 1}, 1.f / (1e-8f + static_cast<float>(N))).to(dev)};
}

// Each pair's predicted TM over rows of probs [rows, N, B] (row-major rows, on tm's device): sum_b p[i, j, b] tm[b]
// [rows, N, 1], one GEMM in float32.
Tensor per_pair_tm(const Tensor& probs, const TmWeights& tm) {
    MatmulPrecisionScope fp32(MatmulPrecision::Fp32);  // reductions of probabilities, not trunk arithmetic
    Tensor per_pair = Tensor::empty({probs.size(0), probs.size(1), 1}, DType::F32, probs.device());
    matmul(probs, tm.per_bin, per_pair);
    return per_pair;
}

// The best alignment row's predicted TM from per_pair_tm: sum_j norm * per_pair[i, j] by a GEMM, the maximum on
// the host.
float best_tm_row(const Tensor& per_pair, const TmWeights& tm) {
    const int64_t rows = per_pair.size(0), N = per_pair.size(1);
    MatmulPrecisionScope fp32(MatmulPrecision::Fp32);
    Tensor per_row = Tensor::empty({rows, 1}, DType::F32, per_pair.device());
    matmul(per_pair.view({rows, N}), tm.per_residue, per_row);
    const Tensor r = per_row.to(Device::CPU);
    float best = -1.f;
    for (int64_t i = 0; i < rows; ++i) best = std::max(best, r.f32()[i]);
    return best;
}

// The best alignment row's interface TM from per_pair_tm of rows [i0, i0 + rows): row i sums the per-pair TM of
// the residues j of other chains (asym_j != asym_i) and divides by 1e-8 + their count; -1 when no row has one (a
// single chain).
float best_interface_tm_row(const Tensor& per_pair, const std::vector<int64_t>& asym, int64_t i0) {
    const int64_t rows = per_pair.size(0), N = per_pair.size(1);
    const Tensor pp = per_pair.to(Device::CPU);
    float best = -1.f;
    for (int64_t r = 0; r < rows; ++r) {
        float sum = 0.f, count = 0.f;
        for (int64_t j = 0; j < N; ++j)
            if (asym[static_cast<size_t>(j)] != asym[static_cast<size_t>(i0 + r)]) {
                sum += pp.f32()[r * N + j];
                count += 1.f;
            }
        if (count > 0.f) best = std::max(best, sum / (1e-8f + count));
    }
    return best;
}

// out[rows, N, B] = pair[rows] @ lin, the pair read in row blocks (float32, or a bfloat16 activation widened
// block by block).
void pair_rows_linear(const Tensor& pair, const LinearWeights& lin, int64_t i0, int64_t i1, const Tensor& out,
                      Workspace& ws) {
    WorkspaceScope scope(ws);
    const Tensor rows = pair.slice(0, i0, i1);
    const Tensor x = rows.dtype() == DType::F32 ? rows : ws.alloc(rows.shape());
    if (rows.dtype() != DType::F32) copy(x, rows);
    linear(x, lin.weights, lin.bias, out);
}

}  // namespace

int64_t head_block_rows(int64_t chunk_size, int64_t N) {
    if (chunk_size > 0) return std::min(N, chunk_size);
    return std::clamp<int64_t>((int64_t(1) << 18) / std::max<int64_t>(N, 1), 1, N);
}

float ptm_from_probs(const Tensor& probs, float max_bin) {
    const Tensor p = probs.contiguous();
    const TmWeights tm = tm_weights(p.size(0), p.size(2), max_bin, p.device());
    return best_tm_row(per_pair_tm(p, tm), tm);
}

HeadsOutputs heads_forward(const HeadsWeights& w, const Tensor& msa, const Tensor& pair, const Tensor& single,
                           const Tensor& sm_act, Context& ctx, bool keep_pair_logits, const Tensor& asym_id) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = pair.size(0);
    const Device dev = pair.device();
    // Every [N, N, .] tensor and GEMM on the pair's device; the outputs come back to the host.
    HeadsOutputs o;
    // pLDDT
    Tensor a = layer_norm(sm_act, w.lddt_input_layer_norm.scale, w.lddt_input_layer_norm.offset, 1e-5f, ws);
    Tensor h0 = linear(a, w.lddt_act_0.weights, w.lddt_act_0.bias, ws);
    relu(h0);
    Tensor h1 = linear(h0, w.lddt_act_1.weights, w.lddt_act_1.bias, ws);
    relu(h1);
    o.predicted_lddt_logits = host_copy(linear(h1, w.lddt_logits.weights, w.lddt_logits.bias, ws));
    o.plddt = compute_plddt(o.predicted_lddt_logits);
    const int64_t hr = head_block_rows(ctx.chunk_size, N);
    // Distogram: symmetric logits (only when the [N, N, 64] logits are kept: nothing else reads them).
    const int64_t Bd = w.distogram_half_logits.weights.size(1);
    if (keep_pair_logits) {
        // logits = half + half^T, symmetrised in place (no second [N, N, Bd] buffer; the same sums as AF2's).
        const Tensor logits = Tensor::empty({N, N, Bd}, DType::F32, dev);
        for (int64_t i0 = 0; i0 < N; i0 += hr)
            pair_rows_linear(pair, w.distogram_half_logits, i0, std::min(N, i0 + hr),
                             logits.slice(0, i0, std::min(N, i0 + hr)), ws);
        add_transpose(logits);
        o.distogram_logits = logits.to(Device::CPU);
    }
    o.distogram_bin_edges = Tensor::empty({Bd - 1});
    for (int64_t b = 0; b < Bd - 1; ++b)
        o.distogram_bin_edges.f32()[b] =
            2.3125f + (21.6875f - 2.3125f) * static_cast<float>(b) / static_cast<float>(Bd - 2);
    // Masked MSA, experimentally resolved.
    o.masked_msa_logits = Tensor::empty({msa.size(0), msa.size(1), w.masked_msa.weights.size(1)}, DType::F32, dev);
    linear(msa, w.masked_msa.weights, w.masked_msa.bias, o.masked_msa_logits);
    o.masked_msa_logits = o.masked_msa_logits.to(Device::CPU);
    o.experimentally_resolved_logits =
        host_copy(linear(single, w.experimentally_resolved.weights, w.experimentally_resolved.bias, ws));
    // Predicted aligned error and pTM.
    if (w.has_pae) {
        o.has_pae = true;
        const int64_t B = w.predicted_aligned_error.weights.size(1);
        const std::vector<float> centres = pae_bin_centres(B, 31.f);
        const TmWeights tm = tm_weights(N, B, 31.f, dev);  // sent up once for every row block
        const Tensor centres_col = Tensor::from_vector({B, 1}, centres).to(dev);
        const Tensor pae = Tensor::empty({N, N}, DType::F32, dev);
        Tensor logits_all, probs_all;
        if (keep_pair_logits) {
            logits_all = Tensor::empty({N, N, B}, DType::F32, dev);
            probs_all = Tensor::empty({N, N, B}, DType::F32, dev);
        }
        // Row blocks: logits, probabilities, the expected error and each row's predicted TM; the [N, N, B]
        // tensors exist only when they are kept.
        float best = -1.f, best_interface = -1.f;
        const std::vector<int64_t> asym = asym_id.defined() ? host_int64(asym_id) : std::vector<int64_t>{};
        AXF_CHECK(asym.empty() || static_cast<int64_t>(asym.size()) == N, "heads: asym_id %s for %lld residues",
                  asym_id.desc().c_str(), (long long)N);
        for (int64_t i0 = 0; i0 < N; i0 += hr) {
            WorkspaceScope block(ws);
            const int64_t i1 = std::min(N, i0 + hr), ci = i1 - i0;
            const Tensor logits = keep_pair_logits ? logits_all.slice(0, i0, i1) : ws.alloc({ci, N, B});
            pair_rows_linear(pair, w.predicted_aligned_error, i0, i1, logits, ws);
            const Tensor probs = keep_pair_logits ? probs_all.slice(0, i0, i1) : logits;
            if (keep_pair_logits) copy(probs, logits);
            softmax(probs, 1.f, Tensor(), Tensor(), 0.f);
            {
                MatmulPrecisionScope fp32(MatmulPrecision::Fp32);  // an expectation, not trunk arithmetic
                matmul(probs, centres_col, pae.slice(0, i0, i1).view({ci, N, 1}));
            }
            const Tensor per_pair = per_pair_tm(probs, tm);
            best = std::max(best, best_tm_row(per_pair, tm));
            if (!asym.empty()) best_interface = std::max(best_interface, best_interface_tm_row(per_pair, asym, i0));
        }
        o.predicted_aligned_error = pae.to(Device::CPU);
        if (keep_pair_logits) {
            o.predicted_aligned_error_logits = logits_all.to(Device::CPU);
            o.aligned_confidence_probs = probs_all.to(Device::CPU);
        }
        o.max_predicted_aligned_error = centres[B - 1];
        o.ptm = best;
        if (!asym.empty()) {
            o.has_iptm = true;
            o.iptm = std::max(best_interface, 0.f);  // one chain: no interface
            o.weighted_ptm_score = 0.8f * o.iptm + 0.2f * o.ptm;
        }
    }
    return o;
}

void heads_backward(const HeadsWeights& w, const Tensor& msa, const Tensor& pair, const Tensor& single,
                    const Tensor& sm_act, const HeadsCotangents& d, const Tensor& dmsa, const Tensor& dpair,
                    const Tensor& dsingle, const Tensor& dsm_act, HeadsWeights& grads, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = pair.size(0);
    const Device dev = pair.device();
    auto zeros = [&](const Shape& shape) {
        Tensor t = ws.alloc(shape);
        fill(t, 0.f);
        return t;
    };
    auto on_dev = [&](const Tensor& t) { return t.to(dev).contiguous(); };
    // d(sum_b p_b v_b) / d(logits) for p = softmax(logits) [rows, B], v [B]: p (v - p.v) times the cotangent
    // [rows]: the outer product cotangent x v, through the softmax's backward; added into dlogits.
    auto expectation_backward = [&](const Tensor& probs, const Tensor& cot, const std::vector<float>& v,
                                    const Tensor& dlogits) {
        const int64_t rows = probs.numel() / static_cast<int64_t>(v.size()), B = static_cast<int64_t>(v.size());
        Tensor dp = ws.alloc({rows, B});
        matmul(cot.contiguous().view({rows, 1}), Tensor::from_vector({1, B}, v).to(dev), dp);
        softmax_backward(probs.view({rows, B}), dp, 1.f, dp);
        add(dlogits.view({rows, B}), dp);
    };

    // pLDDT: logits = W2 relu(W1 relu(W0 LN(sm_act))), plddt = 100 sum softmax(logits) (b + 0.5) / B.
    {
        Tensor a = layer_norm(sm_act, w.lddt_input_layer_norm.scale, w.lddt_input_layer_norm.offset, 1e-5f, ws);
        Tensor h0 = linear(a, w.lddt_act_0.weights, w.lddt_act_0.bias, ws);
        relu(h0);
        Tensor h1 = linear(h0, w.lddt_act_1.weights, w.lddt_act_1.bias, ws);
        relu(h1);
        Tensor logits = linear(h1, w.lddt_logits.weights, w.lddt_logits.bias, ws);
        const int64_t B = logits.size(1);
        Tensor dl = d.predicted_lddt_logits.defined() ? ws.alloc(logits.shape()) : zeros(logits.shape());
        if (d.predicted_lddt_logits.defined()) copy(dl, on_dev(d.predicted_lddt_logits));
        if (d.plddt.defined()) {
            std::vector<float> centres(B);
            for (int64_t b = 0; b < B; ++b) centres[b] = 100.f * (static_cast<float>(b) + 0.5f) / static_cast<float>(B);
            softmax(logits, 1.f, Tensor(), Tensor(), 0.f);
            expectation_backward(logits, on_dev(d.plddt), centres, dl);
        }
        Tensor dh1 = ws.alloc(h1.shape()), dh0 = ws.alloc(h0.shape()), da = ws.alloc(a.shape());
        linear_backward(h1, w.lddt_logits.weights, dl, dh1, false, grads.lddt_logits.weights, grads.lddt_logits.bias,
                        ws);
        relu_backward(h1, dh1, dh1);
        linear_backward(h0, w.lddt_act_1.weights, dh1, dh0, false, grads.lddt_act_1.weights, grads.lddt_act_1.bias, ws);
        relu_backward(h0, dh0, dh0);
        linear_backward(a, w.lddt_act_0.weights, dh0, da, false, grads.lddt_act_0.weights, grads.lddt_act_0.bias, ws);
        Tensor dsm = dsm_act.defined() ? dsm_act : ws.alloc(sm_act.shape());
        layer_norm_backward(sm_act.contiguous(), w.lddt_input_layer_norm.scale, 1e-5f, da, dsm,
                            grads.lddt_input_layer_norm.scale, grads.lddt_input_layer_norm.offset);
    }
    // Masked MSA and experimentally resolved: one linear each.
    Tensor dm = dmsa.defined() ? dmsa : ws.alloc(msa.shape());
    if (d.masked_msa_logits.defined())
        linear_backward(msa.contiguous(), w.masked_msa.weights, on_dev(d.masked_msa_logits), dm, false,
                        grads.masked_msa.weights, grads.masked_msa.bias, ws);
    else
        fill(dm, 0.f);
    Tensor ds = dsingle.defined() ? dsingle : ws.alloc(single.shape());
    if (d.experimentally_resolved_logits.defined())
        linear_backward(single.contiguous(), w.experimentally_resolved.weights,
                        on_dev(d.experimentally_resolved_logits), ds, false, grads.experimentally_resolved.weights,
                        grads.experimentally_resolved.bias, ws);
    else
        fill(ds, 0.f);
    // Distogram: logits = half + half^T, so d(half) = d + d^T.
    Tensor dz = dpair.defined() ? dpair : ws.alloc(pair.shape());
    fill(dz, 0.f);
    const Tensor z = pair.contiguous();
    if (d.distogram_logits.defined()) {
        const Tensor dd = on_dev(d.distogram_logits);
        Tensor dhalf = ws.alloc(dd.shape());
        copy(dhalf, dd);
        add(dhalf, dd.permute({1, 0, 2}));
        linear_backward(z, w.distogram_half_logits.weights, dhalf, dz, true, grads.distogram_half_logits.weights,
                        grads.distogram_half_logits.bias, ws);
    }
    // PAE logits, the PAE map (an expectation over the bin centres) and pTM (the best row's mean TM weight).
    if (w.has_pae &&
        (d.predicted_aligned_error_logits.defined() || d.predicted_aligned_error.defined() || d.ptm != 0)) {
        const int64_t B = w.predicted_aligned_error.weights.size(1);
        Tensor logits = linear(z, w.predicted_aligned_error.weights, w.predicted_aligned_error.bias, ws);  // [N, N, B]
        Tensor dl = d.predicted_aligned_error_logits.defined() ? ws.alloc(logits.shape()) : zeros(logits.shape());
        if (d.predicted_aligned_error_logits.defined()) copy(dl, on_dev(d.predicted_aligned_error_logits));
        Tensor probs = ws.alloc(logits.shape());
        copy(probs, logits);
        softmax(probs, 1.f, Tensor(), Tensor(), 0.f);
        if (d.predicted_aligned_error.defined())
            expectation_backward(probs, on_dev(d.predicted_aligned_error), pae_bin_centres(B, 31.f), dl);
        if (d.ptm != 0) {
            // The best alignment row i: ptm = sum_j sum_b p[i, j, b] tm[b] / (1e-8 + N).
            const TmWeights tm = tm_weights(N, B, 31.f, dev);
            Tensor per_pair = ws.alloc({N, N, 1}), per_row = ws.alloc({N, 1});
            matmul(probs, tm.per_bin, per_pair);
            matmul(per_pair.view({N, N}), tm.per_residue, per_row);
            const Tensor r = per_row.to(Device::CPU);
            int64_t best = 0;
            for (int64_t i = 1; i < N; ++i)
                if (r.f32()[i] > r.f32()[best]) best = i;
            std::vector<float> weights = tm_per_bin(N, B, 31.f);
            for (float& v : weights) v /= 1e-8f + static_cast<float>(N);
            expectation_backward(probs.select(0, best), Tensor::full({N}, d.ptm).to(dev), weights, dl.select(0, best));
        }
        linear_backward(z, w.predicted_aligned_error.weights, dl, dz, true, grads.predicted_aligned_error.weights,
                        grads.predicted_aligned_error.bias, ws);
    }
}

}  // namespace axfold
