// AlphaFold-Multimer's template embedding; see template_embedding_multimer.h.
#include "evoformer/template_embedding_multimer.h"

#include <algorithm>
#include <cmath>

#include "evoformer/embedders.h"

namespace axfold {

namespace {

constexpr int64_t kDgramBins = 39, kAatypes = 22, kFeatures = kDgramBins + 1 + 2 * kAatypes + 3 + 1;  // 88
constexpr float kDgramMin = 3.25f, kDgramMax = 50.75f;
constexpr int kAtomN = 0, kAtomCA = 1, kAtomC = 2;

struct V3 {
    double x, y, z;
};
V3 sub(V3 a, V3 b) {
    return {a.x - b.x, a.y - b.y, a.z - b.z};
}
double dot(V3 a, V3 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
// v / sqrt(max(|v|^2, 1e-12)) (AF2 geometry's normalized(): never NaN for a zero vector).
V3 normalized(V3 v) {
    const double n = std::sqrt(std::max(dot(v, v), 1e-12));
    return {v.x / n, v.y / n, v.z / n};
}

// One template's pair-feature sources on the host.
struct Source {
    int64_t N;
    std::vector<int64_t> aatype, asym;
    std::vector<V3> ca, e0, e1, e2;       // CA and the backbone frame's axes of each residue
    std::vector<float> pb_mask, bb_mask;  // per residue
};

Source source_of(const MultimerTemplateInputs& in, int64_t t) {
    Source s;
    s.aatype = host_int64(in.template_aatype.select(0, t));
    s.asym = host_int64(in.asym_id);
    s.N = static_cast<int64_t>(s.aatype.size());
    const std::vector<double> pos = host_float64(in.template_all_atom_positions.select(0, t)),
                              mask = host_float64(in.template_all_atom_mask.select(0, t)),
                              pbm = host_float64(in.template_pseudo_beta_mask.select(0, t));
    AXF_CHECK(static_cast<int64_t>(s.asym.size()) == s.N && static_cast<int64_t>(pos.size()) == s.N * 111 &&
                  static_cast<int64_t>(mask.size()) == s.N * 37 &&
                  in.template_pseudo_beta.select(0, t).numel() == s.N * 3 && static_cast<int64_t>(pbm.size()) == s.N,
              "multimer template %lld: features for %lld residues disagree (asym_id %s, positions %s, mask %s)",
              (long long)t, (long long)s.N, in.asym_id.desc().c_str(), in.template_all_atom_positions.desc().c_str(),
              in.template_all_atom_mask.desc().c_str());
    auto atom = [&](int64_t i, int a) {
        const double* p = &pos[static_cast<size_t>((i * 37 + a) * 3)];
        return V3{p[0], p[1], p[2]};
    };
    for (int64_t i = 0; i < s.N; ++i) {
        s.pb_mask.push_back(static_cast<float>(pbm[i]));
        s.bb_mask.push_back(static_cast<float>(mask[i * 37 + kAtomN] * mask[i * 37 + kAtomCA] * mask[i * 37 + kAtomC]));
        // Rot3Array.from_two_vectors(C - CA, N - CA): e0 along C - CA, e1 the rest of N - CA, e2 = e0 x e1.
        const V3 ca = atom(i, kAtomCA), e0 = normalized(sub(atom(i, kAtomC), ca)), n = sub(atom(i, kAtomN), ca);
        const double c = dot(n, e0);
        const V3 e1 = normalized({n.x - c * e0.x, n.y - c * e0.y, n.z - c * e0.z});
        s.ca.push_back(ca);
        s.e0.push_back(e0);
        s.e1.push_back(e1);
        s.e2.push_back({e0.y * e1.z - e0.z * e1.y, e0.z * e1.x - e0.x * e1.z, e0.x * e1.y - e0.y * e1.x});
    }
    return s;
}

// Features [rows i0..i1, N, 88]: dgram (39; the recycling embedder's bins on squared distances) and pseudo-beta
// mask, aatype of j, aatype of i, unit vector and backbone mask, each pair term zero across chains (golden README
// "Template embedder").
void write_features(const Source& s, const Tensor& pseudo_beta, int64_t i0, int64_t i1, float* out) {
    const Tensor bins = recycling_dgram_index(pseudo_beta, kDgramBins, kDgramMin, kDgramMax, i0, i1);
    const int64_t N = s.N;
    for (int64_t i = i0; i < i1; ++i)
        for (int64_t j = 0; j < N; ++j) {
            float* f = out + ((i - i0) * N + j) * kFeatures;
            std::fill(f, f + kFeatures, 0.f);
            const float chain = s.asym[i] == s.asym[j] ? 1.f : 0.f;
            const float pbm = s.pb_mask[i] * s.pb_mask[j] * chain, bbm = s.bb_mask[i] * s.bb_mask[j] * chain;
            const int64_t bin = bins.data<int64_t>()[(i - i0) * N + j];
            if (bin >= 0) f[bin] = pbm;
            f[kDgramBins] = pbm;
            f[kDgramBins + 1 + s.aatype[j]] = 1.f;
            f[kDgramBins + 1 + kAatypes + s.aatype[i]] = 1.f;
            const V3 v = sub(s.ca[j], s.ca[i]);
            const V3 u = normalized({dot(s.e0[i], v), dot(s.e1[i], v), dot(s.e2[i], v)});
            float* uv = f + kDgramBins + 1 + 2 * kAatypes;
            uv[0] = static_cast<float>(u.x) * bbm;
            uv[1] = static_cast<float>(u.y) * bbm;
            uv[2] = static_cast<float>(u.z) * bbm;
            uv[3] = bbm;
        }
}

}  // namespace

MultimerTemplateEmbeddingWeights load_multimer_template_embedding(const ParamLookup& get, const std::string& scope) {
    MultimerTemplateEmbeddingWeights w;
    const std::string single = scope + "/single_template_embedding";
    auto embedding = [&](int k) {
        LinearWeights l;
        bind_params(l, single + "/template_pair_embedding_" + std::to_string(k), get);
        return l;
    };
    const LinearWeights e0 = embedding(0);
    const int64_t Ct = e0.weights.size(1);
    // Rows of the stacked weight: dgram (39), pseudo-beta mask (1), aatype j (22), aatype i (22), x, y, z, backbone
    // mask (1 each); the 1-channel embeddings' weights are [c_t] vectors.
    const int64_t rows[8] = {kDgramBins, 1, kAatypes, kAatypes, 1, 1, 1, 1};
    Tensor W = Tensor::empty({kFeatures, Ct}), b = Tensor::zeros({Ct});
    int64_t r0 = 0;
    for (int k = 0; k < 8; ++k) {
        const LinearWeights e = k == 0 ? e0 : embedding(k);
        AXF_CHECK(e.weights.numel() == rows[k] * Ct && e.bias.numel() == Ct,
                  "%s/template_pair_embedding_%d: weights %s, bias %s; expected %lld x %lld and %lld", single.c_str(),
                  k, shape_str(e.weights.shape()).c_str(), shape_str(e.bias.shape()).c_str(), (long long)rows[k],
                  (long long)Ct, (long long)Ct);
        W.slice(0, r0, r0 + rows[k]).copy_from(e.weights.to(Device::CPU).contiguous().view({rows[k], Ct}));
        add(b, e.bias.to(Device::CPU).contiguous());
        r0 += rows[k];
    }
    const LinearWeights e8 = embedding(8);
    add(b, e8.bias.to(Device::CPU).contiguous());
    w.pair_features = {W, b};
    w.query_embedding = {e8.weights, Tensor(), false};
    bind_params(w.query_embedding_norm, single + "/query_embedding_norm", get);
    bind_params(w.output_layer_norm, single + "/output_layer_norm", get);
    bind_params(w.output_linear, scope + "/output_linear", get);
    const std::string stack = single + "/template_embedding_iteration";
    const Tensor p = get(stack + "/pair_transition/input_layer_norm//scale");
    AXF_CHECK(p.dim() == 2,
              "parameter %s/pair_transition/input_layer_norm//scale has shape %s: expected a stacked "
              "[blocks, c_t] array",
              stack.c_str(), shape_str(p.shape()).c_str());
    for (int64_t l = 0; l < p.size(0); ++l) {
        TemplatePairStackBlockWeights blk;
        blk.multimer = true;
        blk.triangle_multiplication_outgoing.fused = blk.triangle_multiplication_incoming.fused = true;
        bind_params(blk, stack, get, static_cast<int>(l));
        w.template_pair_stack.push_back(blk);
    }
    return w;
}

void multimer_template_embedding_forward(const MultimerTemplateEmbeddingWeights& w, const MultimerTemplateInputs& in,
                                         const Tensor& pair, const Tensor& pair_mask, Tensor& out, bool accumulate,
                                         Context& ctx, const TrunkConstants& k, const TemplateObserver& observe) {
    AXF_CHECK(pair.dim() == 3 && pair.size(0) == pair.size(1) && pair.dtype() == DType::F32,
              "multimer template embedding: pair %s must be a float32 [N, N, c_z]", pair.desc().c_str());
    AXF_CHECK(in.template_aatype.dim() == 2 && in.template_aatype.size(1) == pair.size(0),
              "multimer template embedding: template_aatype %s for a pair of %lld residues",
              in.template_aatype.desc().c_str(), (long long)pair.size(0));
    const int64_t N = pair.size(0), T = in.template_aatype.size(0), Ct = w.c_t(), Cz = pair.size(2);
    Workspace& ws = ctx.ws;
    WorkspaceScope scope(ws);
    const Device dev = pair.device();
    Tensor sum = ws.alloc({N, N, Ct});
    fill(sum, 0.f);
    Tensor act = ws.alloc({N, N, Ct});
    const int64_t rows = embed_block_rows(ctx.chunk_size, N, N * kFeatures);
    for (int64_t t = 0; t < T; ++t) {
        const Source src = source_of(in, t);
        {
            WorkspaceScope feat_scope(ws);
            Tensor host_block = Tensor::empty({rows, N, kFeatures});
            Tensor dev_block = dev == Device::CPU ? host_block : ws.alloc({rows, N, kFeatures});
            for (int64_t i0 = 0; i0 < N; i0 += rows) {
                WorkspaceScope block(ws);
                const int64_t nb = std::min(rows, N - i0);
                write_features(src, in.template_pseudo_beta.select(0, t), i0, i0 + nb, host_block.f32());
                Tensor feat = dev_block.slice(0, 0, nb);
                if (dev != Device::CPU) feat.copy_from(host_block.slice(0, 0, nb));
                Tensor a = act.slice(0, i0, i0 + nb);
                linear(feat, w.pair_features.weights, w.pair_features.bias, a);
                const Tensor q = layer_norm(pair.slice(0, i0, i0 + nb), w.query_embedding_norm.scale,
                                            w.query_embedding_norm.offset, k.eps, ws);
                linear(q, w.query_embedding.weights, Tensor(), a, 1.f);
            }
        }
        if (observe) observe("template_pair_act_embedded", t, act);
        for (const TemplatePairStackBlockWeights& b : w.template_pair_stack)
            template_pair_stack_block_forward(b, act, pair_mask, ctx, k);
        layer_norm(act, w.output_layer_norm.scale, w.output_layer_norm.offset, k.eps, act);
        if (observe) observe("template_pair_act_after_stack", t, act);
        add(sum, act);
    }
    // The mean over every slot, empty ones included (AF-Multimer ignores template_mask here).
    scale(sum, 1.f / static_cast<float>(std::max<int64_t>(T, 1)));
    if (observe) observe("template_pair_mean_before_relu", -1, sum);
    relu(sum);
    Tensor upd = ws.alloc({N, N, Cz});
    linear(sum, w.output_linear.weights, w.output_linear.bias, upd);
    write_update(out, upd, accumulate);
}

Tensor multimer_template_single_feat(const Tensor& template_aatype, const Tensor& torsion_sin_cos,
                                     const Tensor& torsion_mask) {
    const std::vector<int64_t> aa = host_int64(template_aatype);
    AXF_CHECK(template_aatype.dim() == 2, "template_aatype %s, expected [T, N]", template_aatype.desc().c_str());
    const int64_t T = template_aatype.size(0), N = template_aatype.size(1), TN = T * N;
    AXF_CHECK(torsion_sin_cos.shape() == Shape({T, N, 7, 2}) && torsion_mask.shape() == Shape({T, N, 7}),
              "template torsions %s and mask %s for template_aatype %s (expected [T, N, 7, 2] and [T, N, 7])",
              torsion_sin_cos.desc().c_str(), torsion_mask.desc().c_str(), template_aatype.desc().c_str());
    const std::vector<double> sc = host_float64(torsion_sin_cos), m = host_float64(torsion_mask);
    constexpr int64_t C = kAatypes + 12;
    Tensor feat = Tensor::zeros({T, N, C});
    for (int64_t r = 0; r < TN; ++r) {
        AXF_CHECK(aa[r] >= 0 && aa[r] < kAatypes, "template_aatype %lld at [%lld, %lld] is outside 0..21",
                  (long long)aa[r], (long long)(r / N), (long long)(r % N));
        float* f = feat.f32() + r * C;
        f[aa[r]] = 1.f;
        for (int64_t c = 0; c < 4; ++c) {
            const double mask = m[r * 7 + 3 + c];
            f[kAatypes + c] = static_cast<float>(sc[(r * 7 + 3 + c) * 2] * mask);
            f[kAatypes + 4 + c] = static_cast<float>(sc[(r * 7 + 3 + c) * 2 + 1] * mask);
            f[kAatypes + 8 + c] = static_cast<float>(mask);
        }
    }
    return feat;
}

}  // namespace axfold
