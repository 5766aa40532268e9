// AlphaFold2 monomer feature transforms; see transforms.h.
#include "pipeline/transforms.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <vector>

#include "model/model.h"
#include "pipeline/template_features.h"
#include "pipeline/transform_util.h"
#include "structure/residue_constants.h"

namespace axfold::pipeline {

using namespace axfold::io;

namespace {

constexpr int kGap = 21;

// The inputs every iteration shares.
struct MsaInputs {
    int64_t N = 0, S = 0;
    std::vector<uint8_t> msa;     // [S, N] AF order 0..21
    std::vector<float> deletion;  // [S, N]
    std::vector<float> profile;   // [N, 22] hhblits_profile
};

struct IterationOutput {
    Tensor msa_feat, msa_mask, msa_row_mask, bert_mask, true_msa, extra_msa, extra_has_deletion, extra_deletion_value,
        extra_msa_mask, extra_msa_row_mask, extra_cluster_assignment;
};

IterationOutput iteration_features(const MsaInputs& in, const TransformConfig& cfg, int r) {
    const int64_t N = in.N, S0 = in.S;
    // sample_msa: row 0 first, the rest shuffled.
    std::vector<int64_t> order(static_cast<size_t>(S0));
    std::iota(order.begin(), order.end(), 0);
    {
        Rng rng(stream_seed(cfg.seed, r, 0));
        std::vector<int64_t> rest(order.begin() + 1, order.end());
        rng.shuffle(rest);
        std::copy(rest.begin(), rest.end(), order.begin() + 1);
    }
    const int64_t C = std::min(cfg.max_msa_clusters, S0), E0 = S0 - C;
    // make_masked_msa on the centres.
    std::vector<uint8_t> centre(static_cast<size_t>(C * N)), truth(static_cast<size_t>(C * N));
    std::vector<float> bert(static_cast<size_t>(C * N), 0.f);
    {
        Rng rng(stream_seed(cfg.seed, r, 1));
        const double mask_prob = 1.0 - cfg.uniform_prob - cfg.profile_prob - cfg.same_prob;
        AXF_CHECK(mask_prob >= -1e-12 && cfg.uniform_prob >= 0 && cfg.profile_prob >= 0 && cfg.same_prob >= 0,
                  "masked-MSA probabilities must be >= 0 and sum to <= 1 (uniform %g, profile %g, same %g)",
                  cfg.uniform_prob, cfg.profile_prob, cfg.same_prob);
        double probs[23];
        for (int64_t c = 0; c < C; ++c) {
            const uint8_t* row = &in.msa[order[c] * N];
            for (int64_t j = 0; j < N; ++j) {
                const uint8_t v = row[j];
                truth[c * N + j] = v;
                centre[c * N + j] = v;
                if (!(rng.uniform() < cfg.masked_msa_replace_fraction)) continue;
                bert[c * N + j] = 1.f;
                for (int k = 0; k < 22; ++k)
                    probs[k] = (k < 20 ? cfg.uniform_prob * 0.05 : 0.0) + cfg.profile_prob * in.profile[j * 22 + k] +
                               (k == v ? cfg.same_prob : 0.0);
                probs[22] = std::max(mask_prob, 0.0);
                double total = 0;
                for (double p : probs) total += p;
                double u = rng.uniform() * total, acc = 0;
                int pick = 22;
                for (int k = 0; k < 23; ++k) {
                    acc += probs[k];
                    if (u < acc && probs[k] > 0) {
                        pick = k;
                        break;
                    }
                }
                centre[c * N + j] = static_cast<uint8_t>(pick);
            }
        }
    }
    // nearest_neighbor_clusters: gaps and the mask token of a centre weigh 0, so they never match.
    std::vector<uint8_t> key(centre);
    for (uint8_t& k : key)
        if (k >= kGap) k = 0xff;
    std::vector<int64_t> assign(static_cast<size_t>(E0), 0);
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < E0; ++e) {
        const uint8_t* x = &in.msa[order[C + e] * N];
        int64_t best = 0;
        int best_score = -1;
        for (int64_t c = 0; c < C; ++c) {
            const uint8_t* k = &key[c * N];
            int score = 0;
            for (int64_t j = 0; j < N; ++j) score += x[j] == k[j];
            if (score > best_score) {
                best_score = score;
                best = c;
            }
        }
        assign[e] = best;
    }
    // summarize_clusters, in float64 then stored as float32.
    std::vector<double> prof(static_cast<size_t>(C * N * 23), 0.0), del_sum(static_cast<size_t>(C * N), 0.0),
        count(static_cast<size_t>(C * N), 1.0 + 1e-6);
    for (int64_t c = 0; c < C; ++c)
        for (int64_t j = 0; j < N; ++j) {
            prof[(c * N + j) * 23 + centre[c * N + j]] += 1.0;
            del_sum[c * N + j] += in.deletion[order[c] * N + j];
        }
    for (int64_t e = 0; e < E0; ++e) {
        const int64_t c = assign[e], row = order[C + e];
        for (int64_t j = 0; j < N; ++j) {
            prof[(c * N + j) * 23 + in.msa[row * N + j]] += 1.0;
            del_sum[c * N + j] += in.deletion[row * N + j];
            count[c * N + j] += 1.0;
        }
    }
    // crop_extra_msa: a random subset of the extra rows.
    std::vector<int64_t> extra_sel(static_cast<size_t>(E0));
    std::iota(extra_sel.begin(), extra_sel.end(), 0);
    {
        Rng rng(stream_seed(cfg.seed, r, 2));
        rng.shuffle(extra_sel);
    }
    const int64_t E = std::min(cfg.max_extra_msa, E0);
    extra_sel.resize(static_cast<size_t>(E));

    // make_msa_feat + make_fixed_size.
    const int64_t S_out = cfg.pad_to_fixed_size ? std::max(cfg.max_msa_clusters, C) : C;
    const int64_t E_out = std::max<int64_t>(cfg.pad_to_fixed_size ? std::max(cfg.max_extra_msa, E) : E, 1);
    IterationOutput o;
    o.msa_feat = Tensor::zeros({S_out, N, kMsaFeat});
    o.msa_mask = Tensor::zeros({S_out, N});
    o.msa_row_mask = Tensor::zeros({S_out});
    o.bert_mask = Tensor::zeros({S_out, N});
    o.true_msa = Tensor::zeros({S_out, N}, DType::I64);
    for (int64_t c = 0; c < C; ++c) {
        o.msa_row_mask.f32()[c] = 1.f;
        for (int64_t j = 0; j < N; ++j) {
            const int64_t cj = c * N + j;
            float* f = o.msa_feat.f32() + cj * kMsaFeat;
            f[centre[cj]] = 1.f;
            const float d = in.deletion[order[c] * N + j];
            f[23] = std::clamp(d, 0.f, 1.f);
            f[24] = deletion_value(d);
            for (int k = 0; k < 23; ++k) f[25 + k] = static_cast<float>(prof[cj * 23 + k] / count[cj]);
            f[48] = deletion_value(static_cast<float>(del_sum[cj] / count[cj]));
            o.msa_mask.f32()[cj] = 1.f;
            o.bert_mask.f32()[cj] = bert[cj];
            o.true_msa.data<int64_t>()[cj] = truth[cj];
        }
    }
    o.extra_msa = Tensor::zeros({E_out, N}, DType::I64);
    o.extra_has_deletion = Tensor::zeros({E_out, N});
    o.extra_deletion_value = Tensor::zeros({E_out, N});
    o.extra_msa_mask = Tensor::zeros({E_out, N});
    o.extra_msa_row_mask = Tensor::zeros({E_out});
    o.extra_cluster_assignment = Tensor::zeros({E_out}, DType::I64);
    for (int64_t e = 0; e < E_out; ++e) o.extra_cluster_assignment.data<int64_t>()[e] = -1;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t row = order[C + extra_sel[e]];
        o.extra_msa_row_mask.f32()[e] = 1.f;
        o.extra_cluster_assignment.data<int64_t>()[e] = assign[extra_sel[e]];
        for (int64_t j = 0; j < N; ++j) {
            const float d = in.deletion[row * N + j];
            o.extra_msa.data<int64_t>()[e * N + j] = in.msa[row * N + j];
            o.extra_has_deletion.f32()[e * N + j] = std::clamp(d, 0.f, 1.f);
            o.extra_deletion_value.f32()[e * N + j] = deletion_value(d);
            o.extra_msa_mask.f32()[e * N + j] = 1.f;
        }
    }
    return o;
}

}  // namespace

int hhblits_to_af(int h) {
    static constexpr int kMap[22] = {0, 4, 3, 6, 13, 7, 8, 9, 11, 10, 12, 2, 14, 5, 1, 15, 16, 19, 17, 18, 20, 21};
    AXF_CHECK(h >= 0 && h < 22, "HHblits residue index %d out of range 0..21", h);
    return kMap[h];
}

std::map<std::string, Tensor> make_atom14_masks(const Tensor& aatype) {
    const int64_t N = aatype.numel();
    const std::vector<int64_t> aa = host_int64(aatype);
    const rc::AtomIndexTables& idx = rc::atom_index_tables();
    const rc::RigidGroupTables& groups = rc::rigid_group_tables();
    Tensor a14_exists = Tensor::zeros({N, 14}), a37_exists = Tensor::zeros({N, 37}),
           a14_to_37 = Tensor::zeros({N, 14}, DType::I64), a37_to_14 = Tensor::zeros({N, 37}, DType::I64);
    for (int64_t i = 0; i < N; ++i) {
        const int64_t a = aa[i];
        for (int k = 0; k < 14; ++k) {
            a14_exists.f32()[i * 14 + k] = groups.atom14_mask[a][k];
            a14_to_37.data<int64_t>()[i * 14 + k] = idx.atom14_to_atom37[a][k];
        }
        for (int k = 0; k < 37; ++k) {
            a37_exists.f32()[i * 37 + k] = groups.atom37_mask[a][k];
            a37_to_14.data<int64_t>()[i * 37 + k] = idx.atom37_to_atom14[a][k];
        }
    }

    return {{"atom14_atom_exists", a14_exists},
            {"atom37_atom_exists", a37_exists},
            {"residx_atom14_to_atom37", a14_to_37},
            {"residx_atom37_to_atom14", a37_to_14}};
}

TransformConfig TransformConfig::for_model(const std::string& model_name, uint64_t seed, int num_recycle) {
    const ModelPreset p = ModelPreset::from_name(model_name);
    TransformConfig c;
    c.num_iterations = (num_recycle >= 0 ? num_recycle : p.multimer ? 20 : 3) + 1;
    c.seed = seed;
    c.max_msa_clusters = p.max_msa_clusters;
    c.max_extra_msa = p.max_extra_msa;
    c.use_templates = p.templates;
    return c;
}

ProcessedFeatures process_features(const RawFeatures& raw, const TransformConfig& cfg) {
    validate_raw_features(raw);
    AXF_CHECK(cfg.num_iterations >= 1, "num_iterations must be >= 1, got %d", cfg.num_iterations);
    AXF_CHECK(cfg.max_msa_clusters >= 1 && cfg.max_extra_msa >= 0 && cfg.max_templates >= 0,
              "bad MSA sizes: max_msa_clusters %lld (>= 1), max_extra_msa %lld (>= 0), max_templates %lld (>= 0)",
              (long long)cfg.max_msa_clusters, (long long)cfg.max_extra_msa, (long long)cfg.max_templates);
    AXF_CHECK(cfg.masked_msa_replace_fraction >= 0 && cfg.masked_msa_replace_fraction <= 1,
              "masked_msa_replace_fraction %g outside [0, 1]", cfg.masked_msa_replace_fraction);
    const int R = cfg.num_iterations;
    const int64_t N = raw.num_res();

    // Once per protein.
    const std::vector<int64_t> onehot = host_int64(raw.at("aatype"));
    Tensor aatype = Tensor::zeros({N}, DType::I64), residue_index = Tensor::zeros({N}, DType::I64);
    const std::vector<int64_t> ri = host_int64(raw.at("residue_index"));
    std::vector<int64_t> bsr(static_cast<size_t>(N), 0);
    if (raw.has("between_segment_residues")) bsr = host_int64(raw.at("between_segment_residues"));
    Tensor target_feat = Tensor::zeros({N, 22}), seq_mask = Tensor::full({N}, 1.f);
    for (int64_t i = 0; i < N; ++i) {
        int64_t a = 0;
        while (a < 21 && onehot[i * 21 + a] == 0) ++a;
        aatype.data<int64_t>()[i] = a;
        residue_index.data<int64_t>()[i] = ri[i];
        target_feat.f32()[i * 22] = bsr[i] > 0 ? 1.f : 0.f;
        target_feat.f32()[i * 22 + 1 + a] = 1.f;
    }
    MsaInputs in;
    in.N = N;
    in.S = raw.msa_depth();
    const std::vector<int64_t> msa = host_int64(raw.at("msa"));
    in.msa.resize(msa.size());
    for (size_t i = 0; i < msa.size(); ++i) in.msa[i] = static_cast<uint8_t>(hhblits_to_af(static_cast<int>(msa[i])));
    in.deletion = f32_values(raw.at(raw.has("deletion_matrix_int") ? "deletion_matrix_int" : "deletion_matrix"));
    in.profile.assign(static_cast<size_t>(N * 22), 0.f);
    {
        std::vector<double> counts(static_cast<size_t>(N * 22), 0.0);
        for (int64_t s = 0; s < in.S; ++s)
            for (int64_t j = 0; j < N; ++j) counts[j * 22 + in.msa[s * N + j]] += 1.0;
        for (size_t k = 0; k < counts.size(); ++k) in.profile[k] = static_cast<float>(counts[k] / in.S);
    }
    ProcessedFeatures out;
    out["aatype"] = tile(aatype, R);
    out["residue_index"] = tile(residue_index, R);
    out["target_feat"] = tile(target_feat, R);
    out["seq_mask"] = tile(seq_mask, R);
    for (auto& [k, v] : make_atom14_masks(aatype)) out[k] = tile(v, R);
    {
        Tensor sl = Tensor::zeros({R}, DType::I64);
        for (int r = 0; r < R; ++r) sl.data<int64_t>()[r] = N;
        out["seq_length"] = sl;
    }

    std::vector<IterationOutput> iters;
    for (int r = 0; r < R; ++r) iters.push_back(iteration_features(in, cfg, r));
    auto gather = [&](auto member) {
        std::vector<Tensor> v;
        for (const IterationOutput& o : iters) v.push_back(o.*member);
        return v;
    };
    out["msa_feat"] = stack<float>(gather(&IterationOutput::msa_feat));
    out["msa_mask"] = stack<float>(gather(&IterationOutput::msa_mask));
    out["msa_row_mask"] = stack<float>(gather(&IterationOutput::msa_row_mask));
    out["bert_mask"] = stack<float>(gather(&IterationOutput::bert_mask));
    out["true_msa"] = stack<int64_t>(gather(&IterationOutput::true_msa));
    out["extra_msa"] = stack<int64_t>(gather(&IterationOutput::extra_msa));
    out["extra_has_deletion"] = stack<float>(gather(&IterationOutput::extra_has_deletion));
    out["extra_deletion_value"] = stack<float>(gather(&IterationOutput::extra_deletion_value));
    out["extra_msa_mask"] = stack<float>(gather(&IterationOutput::extra_msa_mask));
    out["extra_msa_row_mask"] = stack<float>(gather(&IterationOutput::extra_msa_row_mask));
    if (cfg.keep_intermediates)
        out["extra_cluster_assignment"] = stack<int64_t>(gather(&IterationOutput::extra_cluster_assignment));

    if (cfg.use_templates) {
        // pipeline/template_features.h: selection, padding to max_templates, pseudo-beta, torsions.
        for (auto& [k, v] : make_template_features(raw.arrays, N, cfg.max_templates)) out[k] = tile(v.contiguous(), R);
    }
    if (cfg.template_hook) cfg.template_hook(raw, out, cfg);
    return out;
}

}  // namespace axfold::pipeline
