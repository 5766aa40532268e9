// AlphaFold-Multimer's model-side feature transforms; see multimer_transforms.h.
#include "pipeline/multimer_transforms.h"

#include <cmath>
#include <numbers>
#include <numeric>

#include "pipeline/transform_util.h"

namespace axfold::pipeline {

namespace {

// The merged MSA, once.
struct MergedMsa {
    int64_t M = 0, N = 0;
    std::vector<int64_t> msa;                       // [M, N] AF order
    std::vector<float> deletion, mask, bert, bias;  // [M, N] x3, [M]
    std::vector<float> profile;                     // [N, 22]
};

struct Sample {
    Tensor msa, true_msa, bert_mask, msa_mask, deletion_matrix;  // centres [S, N]
    Tensor extra_msa, extra_mask, extra_deletion;                // every extra row [E_all, N]
};

// sample_msa + make_masked_msa.
Sample sample_and_mask(const MergedMsa& in, const TransformConfig& cfg, int r) {
    const int64_t M = in.M, N = in.N;
    std::vector<double> key(static_cast<size_t>(M));
    {
        Rng rng(stream_seed(cfg.seed, r, 0));
        for (int64_t m = 0; m < M; ++m) {
            float valid = 0.f;
            for (int64_t j = 0; j < N; ++j) valid += in.mask[m * N + j];
            const double logit = (std::clamp(valid, 0.f, 1.f) - 1.0) * 1e6 + in.bias[m] * 1e6;
            const double u = std::max(rng.uniform(), 1e-300);
            key[m] = logit - std::log(-std::log(u));  // + Gumbel noise
        }
    }
    std::vector<int64_t> order(static_cast<size_t>(M));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return key[a] > key[b]; });
    const int64_t S = std::min(cfg.max_msa_clusters, M), E = M - S;

    Sample s;
    auto take = [&](int64_t first, int64_t rows, const auto& src, DType dt) {
        Tensor t = Tensor::zeros({rows, N}, dt);
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < N; ++j) {
                const auto v = src[order[first + i] * N + j];
                if (dt == DType::I64) {
                    t.data<int64_t>()[i * N + j] = static_cast<int64_t>(v);
                } else {
                    t.f32()[i * N + j] = static_cast<float>(v);
                }
            }
        return t;
    };
    s.true_msa = take(0, S, in.msa, DType::I64);
    s.msa = take(0, S, in.msa, DType::I64);
    s.msa_mask = take(0, S, in.mask, DType::F32);
    s.bert_mask = take(0, S, in.bert, DType::F32);
    s.deletion_matrix = take(0, S, in.deletion, DType::F32);
    s.extra_msa = take(S, E, in.msa, DType::I64);
    s.extra_mask = take(S, E, in.mask, DType::F32);
    s.extra_deletion = take(S, E, in.deletion, DType::F32);

    const double mask_prob = 1.0 - cfg.uniform_prob - cfg.profile_prob - cfg.same_prob;
    AXF_CHECK(mask_prob >= -1e-12 && cfg.uniform_prob >= 0 && cfg.profile_prob >= 0 && cfg.same_prob >= 0,
              "masked-MSA probabilities must be >= 0 and sum to <= 1 (uniform %g, profile %g, same %g)",
              cfg.uniform_prob, cfg.profile_prob, cfg.same_prob);
    Rng rng(stream_seed(cfg.seed, r, 1));
    double probs[23];
    for (int64_t i = 0; i < S * N; ++i) {
        const int64_t j = i % N, v = s.true_msa.data<int64_t>()[i];
        const bool masked = rng.uniform() < cfg.masked_msa_replace_fraction && s.bert_mask.f32()[i] != 0.f;
        s.bert_mask.f32()[i] *= masked ? 1.f : 0.f;
        int64_t pick = v;
        if (masked) {
            double total = 0;
            for (int k = 0; k < 23; ++k) {
                probs[k] = (k < 20 ? cfg.uniform_prob * 0.05 : 0.0) +
                           (k < 22 ? cfg.profile_prob * in.profile[j * 22 + k] : 0.0) + (k == v ? cfg.same_prob : 0.0) +
                           (k == kMaskToken ? std::max(mask_prob, 0.0) : 0.0) + 1e-6;
                total += probs[k];
            }
            const double u = rng.uniform() * total;
            double acc = 0;
            for (pick = 0; pick < 22; ++pick)
                if (u < (acc += probs[pick])) break;
        }
        s.msa.data<int64_t>()[i] = s.msa_mask.f32()[i] != 0.f ? pick : 0;  // bert_msa *= msa_mask
    }
    return s;
}

}  // namespace

ClusterSummary nearest_neighbor_clusters(const Tensor& msa_t, const Tensor& msa_mask_t, const Tensor& deletion_t,
                                         const Tensor& extra_t, const Tensor& extra_mask_t,
                                         const Tensor& extra_deletion_t) {
    const int64_t S = msa_t.size(0), N = msa_t.size(1), E = extra_t.size(0);
    AXF_CHECK(msa_mask_t.numel() == S * N && deletion_t.numel() == S * N && extra_mask_t.numel() == E * N &&
                  extra_deletion_t.numel() == E * N && (E == 0 || extra_t.size(1) == N),
              "nearest_neighbor_clusters: msa %s, extra_msa %s and their masks/deletions must agree",
              shape_str(msa_t.shape()).c_str(), shape_str(extra_t.shape()).c_str());
    const std::vector<int64_t> msa = host_int64(msa_t), extra = host_int64(extra_t);
    const std::vector<float> mask = f32_values(msa_mask_t), emask = f32_values(extra_mask_t),
                             del = f32_values(deletion_t), edel = f32_values(extra_deletion_t);
    // Each extra row's soft assignment: softmax over the centres of 1e3 · agreement, times Σ_r of both masks.
    std::vector<double> assign(static_cast<size_t>(E * S));
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t e = 0; e < E; ++e) {
        double* a = &assign[e * S];
        for (int64_t c = 0; c < S; ++c) {
            double agree = 0;
            for (int64_t j = 0; j < N; ++j) {
                const int64_t v = msa[c * N + j];
                if (v <= 20 && v == extra[e * N + j]) agree += mask[c * N + j] * emask[e * N + j];
            }
            a[c] = 1e3 * agree;
        }
        const double top = *std::max_element(a, a + S);
        double total = 0;
        for (int64_t c = 0; c < S; ++c) total += (a[c] = std::exp(a[c] - top));
        for (int64_t c = 0; c < S; ++c) {
            double both = 0;
            for (int64_t j = 0; j < N; ++j) both += mask[c * N + j] * emask[e * N + j];
            a[c] = a[c] / total * both;
        }
    }
    std::vector<double> count(static_cast<size_t>(S), 1.0), sum(static_cast<size_t>(S * N * 23), 0.0),
        del_sum(static_cast<size_t>(S * N), 0.0);
    for (int64_t c = 0; c < S; ++c)
        for (int64_t j = 0; j < N; ++j) {
            sum[(c * N + j) * 23 + msa[c * N + j]] += mask[c * N + j];
            del_sum[c * N + j] += del[c * N + j];
        }
    for (int64_t e = 0; e < E; ++e)
        for (int64_t c = 0; c < S; ++c) {
            const double w = assign[e * S + c];
            if (w == 0) continue;
            count[c] += w;
            for (int64_t j = 0; j < N; ++j) {
                sum[(c * N + j) * 23 + extra[e * N + j]] += w * emask[e * N + j];
                del_sum[c * N + j] += w * emask[e * N + j] * edel[e * N + j];
            }
        }
    ClusterSummary out{Tensor::zeros({S, N, 23}), Tensor::zeros({S, N})};
    for (int64_t c = 0; c < S; ++c)
        for (int64_t j = 0; j < N; ++j) {
            for (int k = 0; k < 23; ++k)
                out.cluster_profile.f32()[(c * N + j) * 23 + k] =
                    static_cast<float>(sum[(c * N + j) * 23 + k] / count[c]);
            out.cluster_deletion_mean.f32()[c * N + j] = static_cast<float>(del_sum[c * N + j] / count[c]);
        }
    return out;
}

Tensor create_msa_feat(const Tensor& msa_t, const Tensor& deletion_t, const ClusterSummary& clusters) {
    const int64_t S = msa_t.size(0), N = msa_t.size(1);
    const std::vector<int64_t> msa = host_int64(msa_t);
    const std::vector<float> del = f32_values(deletion_t), prof = f32_values(clusters.cluster_profile),
                             mean = f32_values(clusters.cluster_deletion_mean);
    Tensor f = Tensor::zeros({S, N, kMsaFeat});
    for (int64_t i = 0; i < S * N; ++i) {
        float* x = f.f32() + i * kMsaFeat;
        x[msa[i]] = 1.f;
        x[23] = std::clamp(del[i], 0.f, 1.f);
        x[24] = deletion_value(del[i]);
        std::copy_n(&prof[i * 23], 23, x + 25);
        x[48] = deletion_value(mean[i]);
    }
    return f;
}

ProcessedFeatures process_multimer_features(const MergedFeatures& merged, const TransformConfig& cfg) {
    AXF_CHECK(cfg.num_iterations >= 1 && cfg.max_msa_clusters >= 1 && cfg.max_extra_msa >= 0,
              "bad multimer sampling: %d iterations (>= 1), max_msa_clusters %lld (>= 1), max_extra_msa %lld (>= 0)",
              cfg.num_iterations, (long long)cfg.max_msa_clusters, (long long)cfg.max_extra_msa);
    for (const char* k : {"msa", "deletion_matrix", "msa_mask", "bert_mask", "cluster_bias_mask", "aatype",
                          "residue_index", "asym_id", "entity_id", "sym_id", "seq_mask", "template_aatype",
                          "template_all_atom_positions", "template_all_atom_mask"})
        AXF_CHECK(merged.count(k), "merged multimer features lack '%s'", k);
    const int R = cfg.num_iterations;
    MergedMsa in;
    in.M = merged.at("msa").size(0);
    in.N = merged.at("msa").size(1);
    const int64_t N = in.N;
    in.msa = host_int64(merged.at("msa"));
    for (int64_t v : in.msa)
        AXF_CHECK(v >= 0 && v <= 21, "merged 'msa' holds %lld; expected 0..21 (AF order)", (long long)v);
    in.deletion = f32_values(merged.at("deletion_matrix"));
    in.mask = f32_values(merged.at("msa_mask"));
    in.bert = f32_values(merged.at("bert_mask"));
    in.bias = f32_values(merged.at("cluster_bias_mask"));
    // make_msa_profile (AF2 mask_mean over the rows).
    in.profile.assign(static_cast<size_t>(N * 22), 0.f);
    for (int64_t j = 0; j < N; ++j) {
        double count = 0;
        std::vector<double> sum(22, 0.0);
        for (int64_t m = 0; m < in.M; ++m) {
            count += in.mask[m * N + j];
            sum[static_cast<size_t>(in.msa[m * N + j])] += in.mask[m * N + j];
        }
        for (int k = 0; k < 22; ++k) in.profile[j * 22 + k] = static_cast<float>(sum[k] / (1e-10 + count));
    }

    ProcessedFeatures out;
    const Tensor aatype = host_cast(merged.at("aatype"), DType::I64);
    out["aatype"] = tile(aatype, R);
    for (const char* k : {"residue_index", "asym_id", "entity_id", "sym_id", "template_aatype"})
        out[k] = tile(host_cast(merged.at(k), DType::I64), R);
    for (const char* k : {"seq_mask", "template_all_atom_positions", "template_all_atom_mask"})
        out[k] = tile(host_cast(merged.at(k), DType::F32), R);
    Tensor target_feat = Tensor::zeros({N, 21});
    for (int64_t i = 0; i < N; ++i) target_feat.f32()[i * 21 + aatype.data<int64_t>()[i]] = 1.f;
    out["target_feat"] = tile(target_feat, R);
    out["msa_profile"] = tile(Tensor::from_vector({N, 22}, in.profile), R);
    for (auto& [k, v] : make_atom14_masks(aatype)) out[k] = tile(v, R);
    Tensor seq_length = Tensor::zeros({R}, DType::I64), num_alignments = Tensor::zeros({R}, DType::I64);
    for (int r = 0; r < R; ++r) {
        seq_length.data<int64_t>()[r] = N;
        num_alignments.data<int64_t>()[r] = in.M;
    }
    out["seq_length"] = seq_length;
    out["num_alignments"] = num_alignments;

    std::map<std::string, std::vector<Tensor>> iters;
    for (int r = 0; r < R; ++r) {
        const Sample s = sample_and_mask(in, cfg, r);
        const ClusterSummary c = nearest_neighbor_clusters(s.msa, s.msa_mask, s.deletion_matrix, s.extra_msa,
                                                           s.extra_mask, s.extra_deletion);
        const int64_t E = std::min(cfg.max_extra_msa, s.extra_msa.size(0));
        iters["msa_feat"].push_back(create_msa_feat(s.msa, s.deletion_matrix, c));
        iters["msa"].push_back(s.msa);
        iters["true_msa"].push_back(s.true_msa);
        iters["bert_mask"].push_back(s.bert_mask);
        iters["msa_mask"].push_back(s.msa_mask);
        iters["deletion_matrix"].push_back(s.deletion_matrix);
        iters["cluster_profile"].push_back(c.cluster_profile);
        iters["cluster_deletion_mean"].push_back(c.cluster_deletion_mean);
        iters["extra_msa"].push_back(s.extra_msa.slice(0, 0, E).contiguous());
        iters["extra_msa_mask"].push_back(s.extra_mask.slice(0, 0, E).contiguous());
        iters["extra_deletion_matrix"].push_back(s.extra_deletion.slice(0, 0, E).contiguous());
    }
    for (auto& [k, v] : iters) out[k] = v[0].dtype() == DType::I64 ? stack<int64_t>(v) : stack<float>(v);
    return out;
}

}  // namespace axfold::pipeline
