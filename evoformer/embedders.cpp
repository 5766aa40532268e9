#include "evoformer/embedders.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "evoformer/gated_attention.h"

namespace axfold {

namespace {

// dst (float32, or a bfloat16 activation) = or += the float32 block computed by fill(target): straight into
// dst when it is float32, else into a workspace block and then rounded into dst once.
template <class Fill>
void write_block(const Tensor& dst, bool accumulate, Workspace& ws, Fill&& fill) {
    if (dst.dtype() == DType::F32) {
        fill(dst, accumulate);
        return;
    }
    WorkspaceScope scope(ws);
    const Tensor tmp = ws.alloc(dst.shape());
    fill(tmp, false);
    write_update(dst, tmp, accumulate);
}

// [n, classes] one-hot rows of a host int64 index (no 1 where the index is negative).
Tensor one_hot(const Tensor& index, int64_t classes) {
    const int64_t n = index.numel();
    Tensor oh = Tensor::zeros({n, classes});
    for (int64_t i = 0; i < n; ++i) {
        const int64_t c = index.data<int64_t>()[i];
        if (c >= 0) oh.f32()[i * classes + c] = 1.f;
    }
    return oh;
}

// A Linear of a one-hot feature as a row lookup: dst [M, C] = (accumulate ? dst : 0) + bias + W[index] (rows
// with a negative index get the bias only), the same roundings as the one-hot GEMM (bias first, then W[bin]).
void lookup_linear(const Tensor& W, const Tensor& bias, const Tensor& index, const Tensor& dst, bool accumulate) {
    const Tensor b = bias.unsqueeze(0).expand(dst.shape());
    if (accumulate)
        add(dst, b);
    else
        copy(dst, b);
    gather_rows(W, index, dst, true);
}

}  // namespace

int64_t embed_block_rows(int64_t chunk_size, int64_t n, int64_t row_floats) {
    if (chunk_size > 0) return std::min(n, chunk_size);
    return std::clamp<int64_t>((int64_t(1) << 24) / std::max<int64_t>(1, row_floats), 1, std::max<int64_t>(n, 1));
}

Tensor relpos_index(const Tensor& residue_index, int64_t max_rel, int64_t row_begin, int64_t row_end) {
    std::vector<int64_t> ri = host_int64(residue_index);
    const int64_t N = static_cast<int64_t>(ri.size());
    if (row_end < 0) row_end = N;
    AXF_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= N, "relpos rows [%lld, %lld) of %lld residues",
              (long long)row_begin, (long long)row_end, (long long)N);
    Tensor idx = Tensor::empty({(row_end - row_begin) * N}, DType::I64);
    int64_t* p = idx.data<int64_t>();
    for (int64_t i = row_begin; i < row_end; ++i)
        for (int64_t j = 0; j < N; ++j)
            p[(i - row_begin) * N + j] = std::clamp<int64_t>(ri[i] - ri[j], -max_rel, max_rel) + max_rel;
    return idx;
}

Tensor relpos_one_hot(const Tensor& residue_index, int64_t max_rel, int64_t row_begin, int64_t row_end) {
    const Tensor idx = relpos_index(residue_index, max_rel, row_begin, row_end);
    const int64_t N = residue_index.numel();
    return one_hot(idx, 2 * max_rel + 1).view({idx.numel() / std::max<int64_t>(N, 1), N, 2 * max_rel + 1});
}

Tensor multimer_relpos_features(const Tensor& residue_index, const ChainIds& chains, int64_t row_begin,
                                int64_t row_end) {
    const std::vector<int64_t> ri = host_int64(residue_index), asym = host_int64(chains.asym_id),
                               entity = host_int64(chains.entity_id), sym = host_int64(chains.sym_id);
    const int64_t N = static_cast<int64_t>(ri.size());
    AXF_CHECK(static_cast<int64_t>(asym.size()) == N && static_cast<int64_t>(entity.size()) == N &&
                  static_cast<int64_t>(sym.size()) == N,
              "multimer relative encoding: residue_index %s, asym_id %s, entity_id %s, sym_id %s (one per residue)",
              residue_index.desc().c_str(), chains.asym_id.desc().c_str(), chains.entity_id.desc().c_str(),
              chains.sym_id.desc().c_str());
    if (row_end < 0) row_end = N;
    AXF_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= N, "multimer relative encoding rows [%lld, %lld) of %lld",
              (long long)row_begin, (long long)row_end, (long long)N);
    constexpr int64_t kMaxRel = 32, kMaxChain = 2, kPos = 2 * kMaxRel + 2, kChain = 2 * kMaxChain + 2;
    static_assert(kPos + 1 + kChain == kMultimerRelposChannels);
    Tensor f = Tensor::zeros({row_end - row_begin, N, kMultimerRelposChannels});
    float* o = f.f32();
    for (int64_t i = row_begin; i < row_end; ++i)
        for (int64_t j = 0; j < N; ++j, o += kMultimerRelposChannels) {
            const bool same_chain = asym[i] == asym[j], same_entity = entity[i] == entity[j];
            o[same_chain ? std::clamp<int64_t>(ri[i] - ri[j] + kMaxRel, 0, 2 * kMaxRel) : kPos - 1] = 1.f;
            o[kPos] = same_entity ? 1.f : 0.f;
            o[kPos + 1 + (same_entity ? std::clamp<int64_t>(sym[i] - sym[j] + kMaxChain, 0, 2 * kMaxChain) : kChain - 1)] =
                1.f;
        }
    return f;
}

void input_embedder_forward(const InputEmbedderWeights& w, const Tensor& target_feat, const Tensor& residue_index,
                            const Tensor& msa_feat, Tensor& msa, Tensor& pair, Context& ctx, const ChainIds* chains) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = target_feat.size(0), S = msa_feat.size(0);
    AXF_CHECK(msa_feat.dim() == 3 && msa_feat.size(1) == N, "input_embedder: msa_feat %s for target_feat %s",
              msa_feat.desc().c_str(), target_feat.desc().c_str());
    AXF_CHECK(residue_index.numel() == N, "input_embedder: residue_index %s for %lld residues",
              residue_index.desc().c_str(), (long long)N);
    const int64_t Cm = msa.size(-1), Cz = pair.size(-1);
    // msa = preprocess_msa(msa_feat) + preprocess_1d(target_feat)[None]
    Tensor tf1 = linear(target_feat, w.preprocess_1d.weights, w.preprocess_1d.bias, ws);  // [N, C_m]
    copy(msa, tf1.unsqueeze(0).expand({S, N, Cm}));
    linear(msa_feat, w.preprocess_msa.weights, w.preprocess_msa.bias, msa, 1.f);
    // pair = relpos + left[:, None] + right[None, :], in blocks of rows i: the relative-position bins
    // [rows, N] and, for a bfloat16 pair, the float32 rows before they are rounded.
    Tensor left = linear(target_feat, w.left_single.weights, w.left_single.bias, ws);
    Tensor right = linear(target_feat, w.right_single.weights, w.right_single.bias, ws);
    AXF_CHECK(!w.multimer || chains, "input_embedder: AlphaFold-Multimer's relative encoding needs asym_id, entity_id "
                                    "and sym_id");
    const int64_t max_rel = w.multimer ? 0 : w.max_relative_feature();
    const int64_t B = w.multimer ? kMultimerRelposChannels : 2 * max_rel + 1;
    const int64_t cs = embed_block_rows(ctx.chunk_size, N, N * B);
    for (int64_t i0 = 0; i0 < N; i0 += cs) {
        const int64_t i1 = std::min(N, i0 + cs), n = i1 - i0;
        write_block(pair.slice(0, i0, i1), false, ws, [&](const Tensor& rows, bool) {
            if (w.multimer) {
                const Tensor feat = multimer_relpos_features(residue_index, *chains, i0, i1).to(rows.device());
                linear(feat, w.position_activations.weights, w.position_activations.bias, rows);
            } else {
                const Tensor rel = relpos_index(residue_index, max_rel, i0, i1).to(rows.device());
                lookup_linear(w.pair_activiations.weights, w.pair_activiations.bias, rel, rows.view({n * N, Cz}), false);
            }
            add(rows, left.slice(0, i0, i1).unsqueeze(1).expand({n, N, Cz}));
            add(rows, right.unsqueeze(0).expand({n, N, Cz}));
        });
    }
}

Tensor recycling_dgram_index(const Tensor& positions, int64_t num_bins, float min_bin, float max_bin,
                             int64_t row_begin, int64_t row_end) {
    Tensor pos = host_cast(positions, DType::F32);
    const int64_t N = pos.size(0);
    if (row_end < 0) row_end = N;
    AXF_CHECK(0 <= row_begin && row_begin <= row_end && row_end <= N, "recycling dgram rows [%lld, %lld) of %lld",
              (long long)row_begin, (long long)row_end, (long long)N);
    std::vector<float> lower(num_bins), upper(num_bins);
    for (int64_t b = 0; b < num_bins; ++b) {
        float e = min_bin + (max_bin - min_bin) * static_cast<float>(b) / static_cast<float>(num_bins - 1);
        lower[b] = e * e;
    }
    for (int64_t b = 0; b < num_bins; ++b) upper[b] = b + 1 < num_bins ? lower[b + 1] : 1e8f;
    Tensor idx = Tensor::empty({(row_end - row_begin) * N}, DType::I64);
    const float* p = pos.f32();
    int64_t* o = idx.data<int64_t>();
    for (int64_t i = row_begin; i < row_end; ++i)
        for (int64_t j = 0; j < N; ++j) {
            float d2 = 0.f;
            for (int c = 0; c < 3; ++c) {
                float diff = p[i * 3 + c] - p[j * 3 + c];
                d2 += diff * diff;
            }
            int64_t bin = -1;
            for (int64_t b = 0; b < num_bins; ++b)
                if (d2 > lower[b] && d2 < upper[b]) bin = b;
            o[(i - row_begin) * N + j] = bin;
        }
    return idx;
}

Tensor recycling_dgram(const Tensor& positions, int64_t num_bins, float min_bin, float max_bin, int64_t row_begin,
                       int64_t row_end) {
    const Tensor idx = recycling_dgram_index(positions, num_bins, min_bin, max_bin, row_begin, row_end);
    const int64_t N = positions.size(0);
    return one_hot(idx, num_bins).view({idx.numel() / std::max<int64_t>(N, 1), N, num_bins});
}

void recycling_embedder_forward(const RecyclingEmbedderWeights& w, const Tensor& prev_msa_first_row,
                                const Tensor& prev_pair, const Tensor& prev_pseudo_beta, Tensor& msa_first_row,
                                Tensor& pair, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t bins = w.prev_pos_linear.weights.size(0);
    Tensor m = layer_norm(prev_msa_first_row, w.prev_msa_first_row_norm.scale, w.prev_msa_first_row_norm.offset,
                          1e-5f, ws);
    add(msa_first_row, m);
    // pair += prev_pos_linear(dgram) + LN(prev_pair), in blocks of rows: no pair-sized distogram, normalised
    // copy or float32 copy of a bfloat16 pair exists.
    const int64_t N = pair.size(0), Cz = pair.size(2), rows = embed_block_rows(ctx.chunk_size, N, N * Cz);
    for (int64_t i0 = 0; i0 < N; i0 += rows) {
        WorkspaceScope block(ws);
        const int64_t i1 = std::min(N, i0 + rows);
        write_block(pair.slice(0, i0, i1), true, ws, [&](const Tensor& dst, bool accumulate) {
            const Tensor bin = recycling_dgram_index(prev_pseudo_beta, bins, 3.25f, 20.75f, i0, i1).to(dst.device());
            lookup_linear(w.prev_pos_linear.weights, w.prev_pos_linear.bias, bin, dst.view({(i1 - i0) * N, Cz}),
                          accumulate);
            Tensor z = layer_norm(prev_pair.slice(0, i0, i1), w.prev_pair_norm.scale, w.prev_pair_norm.offset, 1e-5f, ws);
            add(dst, z);
        });
    }
}

Tensor extra_msa_feat(const Tensor& extra_msa, const Tensor& extra_has_deletion, const Tensor& extra_deletion_value) {
    std::vector<int64_t> tok = host_int64(extra_msa);
    const int64_t E = extra_msa.size(0), N = extra_msa.size(1);
    AXF_CHECK(extra_has_deletion.shape() == extra_msa.shape() && extra_deletion_value.shape() == extra_msa.shape(),
              "extra_msa %s, extra_has_deletion %s, extra_deletion_value %s must have the same shape",
              shape_str(extra_msa.shape()).c_str(), shape_str(extra_has_deletion.shape()).c_str(),
              shape_str(extra_deletion_value.shape()).c_str());
    Tensor hd = extra_has_deletion.contiguous(), dv = extra_deletion_value.contiguous();
    Tensor f = Tensor::zeros({E, N, 25});
    float* p = f.f32();
    for (int64_t i = 0; i < E * N; ++i) {
        AXF_CHECK(tok[i] >= 0 && tok[i] < 23, "extra_msa token %lld at [%lld, %lld] is outside 0..22",
                  (long long)tok[i], (long long)(i / N), (long long)(i % N));
        p[i * 25 + tok[i]] = 1.f;
        p[i * 25 + 23] = hd.f32()[i];
        p[i * 25 + 24] = dv.f32()[i];
    }
    return f;
}

void extra_msa_embedder_forward(const ExtraMsaEmbedderWeights& w, const Tensor& extra_msa,
                                const Tensor& extra_has_deletion, const Tensor& extra_deletion_value,
                                Tensor& extra_msa_act, Context& ctx) {
    const int64_t E = extra_msa.size(0), N = extra_msa.dim() > 1 ? extra_msa.size(1) : 0;
    AXF_CHECK(extra_msa_act.dim() == 3 && extra_msa_act.size(0) == E && extra_msa_act.size(1) == N,
              "extra_msa_embedder: output %s for extra_msa %s", extra_msa_act.desc().c_str(), extra_msa.desc().c_str());
    // In blocks of rows: the feature as tokens and the two deletion values (and, for bfloat16 activations, the
    // float32 rows). extra_msa_activations(feat) = bias + W[token] + (has_deletion, deletion_value) @ W[23:25]:
    // the one-hot part is a row lookup, the two values a K = 2 GEMM, all on the activations' device.
    const Device dev = extra_msa_act.device();
    const Tensor& W = w.extra_msa_activations.weights;  // [25, C_e]
    const int64_t Ce = W.size(1);
    const std::vector<int64_t> tok = host_int64(extra_msa);
    const Tensor hd = host_cast(extra_has_deletion, DType::F32), dv = host_cast(extra_deletion_value, DType::F32);
    const int64_t rows = embed_block_rows(ctx.chunk_size, E, N * 25);
    for (int64_t e0 = 0; e0 < E; e0 += rows) {
        const int64_t e1 = std::min(E, e0 + rows), M = (e1 - e0) * N;
        Tensor index = Tensor::empty({M}, DType::I64), values = Tensor::empty({M, 2});
        for (int64_t m = 0; m < M; ++m) {
            const int64_t i = e0 * N + m;
            AXF_CHECK(tok[i] >= 0 && tok[i] < 23, "extra_msa token %lld at [%lld, %lld] is outside 0..22",
                      (long long)tok[i], (long long)(i / N), (long long)(i % N));
            index.data<int64_t>()[m] = tok[i];
            values.f32()[m * 2] = hd.f32()[i];
            values.f32()[m * 2 + 1] = dv.f32()[i];
        }
        index = index.to(dev);
        values = values.to(dev);
        write_block(extra_msa_act.slice(0, e0, e1), false, ctx.ws, [&](const Tensor& dst, bool) {
            const Tensor d = dst.view({M, Ce});
            lookup_linear(W.slice(0, 0, 23), w.extra_msa_activations.bias, index, d, false);
            matmul(values, W.slice(0, 23, 25), d, 1.f, 1.f);
        });
    }
}

void input_embedder_backward(const InputEmbedderWeights& w, const Tensor& target_feat, const Tensor& residue_index,
                             const Tensor& msa_feat, const Tensor& dmsa, const Tensor& dpair, const Tensor& dtarget_feat,
                             const Tensor& dmsa_feat, InputEmbedderWeights& grads, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t N = target_feat.size(0), S = msa_feat.size(0), Cm = dmsa.size(-1), Cz = dpair.size(-1);
    AXF_CHECK(dmsa.is_contiguous() && dpair.is_contiguous() && dmsa.dim() == 3 && dmsa.size(0) == S &&
                  dmsa.size(1) == N && dpair.shape() == Shape({N, N, Cz}),
              "input_embedder backward: dmsa %s, dpair %s for msa_feat %s", dmsa.desc().c_str(), dpair.desc().c_str(),
              msa_feat.desc().c_str());
    const Device dev = dmsa.device();
    auto sum_rows = [&](const Tensor& x, int64_t rows, int64_t cols, const Tensor& out) {  // out [cols] = sum of rows
        Tensor ones = ws.alloc({1, rows});
        fill(ones, 1.f);
        matmul(ones, x.view({rows, cols}), out.view({1, cols}));
    };
    // msa = preprocess_msa(msa_feat) + preprocess_1d(target_feat)[None].
    const Tensor tf = target_feat.contiguous(), mf = msa_feat.contiguous();
    linear_backward(mf, w.preprocess_msa.weights, dmsa, dmsa_feat, false, grads.preprocess_msa.weights,
                    grads.preprocess_msa.bias, ws);
    Tensor d1 = ws.alloc({N, Cm});  // the sum over the MSA rows
    sum_rows(dmsa, S, N * Cm, d1);
    Tensor dtf = dtarget_feat.defined() ? dtarget_feat : ws.alloc(tf.shape());
    linear_backward(tf, w.preprocess_1d.weights, d1, dtf, false, grads.preprocess_1d.weights, grads.preprocess_1d.bias,
                    ws);
    // pair = relpos + left[:, None] + right[None, :]: dleft sums over j, dright over i.
    Tensor dleft = ws.alloc({N, Cz}), dright = ws.alloc({N, Cz});
    Tensor ones = ws.alloc({1, 1, N});
    fill(ones, 1.f);
    matmul(ones, dpair, dleft.view({N, 1, Cz}));  // per i: ones [1, N] @ dpair[i] [N, C_z]
    sum_rows(dpair, N, N * Cz, dright);
    linear_backward(tf, w.left_single.weights, dleft, dtf, true, grads.left_single.weights, grads.left_single.bias, ws);
    linear_backward(tf, w.right_single.weights, dright, dtf, true, grads.right_single.weights, grads.right_single.bias,
                    ws);
    // The relative-position one-hot's linear: parameter gradients only.
    const Tensor onehot = relpos_one_hot(residue_index, w.max_relative_feature()).to(dev);
    linear_backward(onehot, w.pair_activiations.weights, dpair, Tensor(), false, grads.pair_activiations.weights,
                    grads.pair_activiations.bias, ws);
}

void recycling_embedder_backward(const RecyclingEmbedderWeights& w, const Tensor& prev_msa_first_row,
                                 const Tensor& prev_pair, const Tensor& prev_pseudo_beta,
                                 const Tensor& dmsa_first_row_update, const Tensor& dpair_update,
                                 const Tensor& dprev_msa_first_row, const Tensor& dprev_pair,
                                 RecyclingEmbedderWeights& grads, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const int64_t bins = w.prev_pos_linear.weights.size(0);
    Tensor drow = dprev_msa_first_row.defined() ? dprev_msa_first_row : ws.alloc(prev_msa_first_row.shape());
    layer_norm_backward(prev_msa_first_row.contiguous(), w.prev_msa_first_row_norm.scale, 1e-5f, dmsa_first_row_update,
                        drow, grads.prev_msa_first_row_norm.scale, grads.prev_msa_first_row_norm.offset);
    Tensor dz = dprev_pair.defined() ? dprev_pair : ws.alloc(prev_pair.shape());
    layer_norm_backward(prev_pair.contiguous(), w.prev_pair_norm.scale, 1e-5f, dpair_update, dz,
                        grads.prev_pair_norm.scale, grads.prev_pair_norm.offset);
    const Tensor dgram = recycling_dgram(prev_pseudo_beta, bins, 3.25f, 20.75f).to(dpair_update.device());
    linear_backward(dgram, w.prev_pos_linear.weights, dpair_update, Tensor(), false, grads.prev_pos_linear.weights,
                    grads.prev_pos_linear.bias, ws);
}

void extra_msa_embedder_backward(const ExtraMsaEmbedderWeights& w, const Tensor& extra_msa,
                                 const Tensor& extra_has_deletion, const Tensor& extra_deletion_value,
                                 const Tensor& dextra_msa_act, const Tensor& dextra_has_deletion,
                                 const Tensor& dextra_deletion_value, ExtraMsaEmbedderWeights& grads, Context& ctx) {
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const Tensor feat = extra_msa_feat(extra_msa, extra_has_deletion, extra_deletion_value).to(dextra_msa_act.device());
    Tensor dfeat = ws.alloc(feat.shape());
    linear_backward(feat, w.extra_msa_activations.weights, dextra_msa_act.contiguous(), dfeat, false,
                    grads.extra_msa_activations.weights, grads.extra_msa_activations.bias, ws);
    if (dextra_has_deletion.defined()) copy(dextra_has_deletion, dfeat.select(2, 23));
    if (dextra_deletion_value.defined()) copy(dextra_deletion_value, dfeat.select(2, 24));
}

}  // namespace axfold
