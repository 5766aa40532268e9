// AF2's model-side transforms: msa_feat against a float64 reference when nothing is sampled; with sampling,
// the masked fraction within binomial bounds, each extra row at its nearest centre, profiles summing to one,
// determinism per seed; AlphaFold's real feature dict gives the golden features.h5 shapes and masks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "pipeline/raw_features.h"
#include "pipeline/transforms.h"
#include "model/model.h"

using namespace axfold;
using namespace axfold::io;
using namespace axfold::pipeline;

namespace {

const std::string kReal = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata";

// A random raw feature dict: S rows over N residues, gaps and deletions included, rows distinct.
RawFeatures random_raw(int64_t S, int64_t N, uint32_t seed) {
    std::mt19937 rng(seed);
    RawFeatures raw;
    raw.source = "random";
    Tensor aatype = Tensor::zeros({N, 21}, DType::I32), msa = Tensor::zeros({S, N}, DType::I32),
           del = Tensor::zeros({S, N}, DType::I32), ri = Tensor::zeros({N}, DType::I32);
    std::uniform_int_distribution<int> aa(0, 19), gap(0, 5), d(0, 9);
    for (int64_t j = 0; j < N; ++j) {
        const int hh = aa(rng);  // HHblits index of the query residue
        msa.data<int32_t>()[j] = hh;
        aatype.data<int32_t>()[j * 21 + hhblits_to_af(hh)] = 1;
        ri.data<int32_t>()[j] = static_cast<int32_t>(j);
    }
    for (int64_t s = 1; s < S; ++s)
        for (int64_t j = 0; j < N; ++j) {
            // Rows related to the query (so clusters mean something), with gaps, X and deletions.
            const int r = gap(rng);
            msa.data<int32_t>()[s * N + j] = r == 0 ? 21 : r == 1 ? aa(rng) : r == 2 && j % 7 == 0 ? 20 : msa.data<int32_t>()[j];
            const int k = d(rng);
            del.data<int32_t>()[s * N + j] = k < 7 ? 0 : k * 3;
        }
    raw.arrays = {{"aatype", aatype}, {"msa", msa}, {"deletion_matrix_int", del}, {"residue_index", ri}};
    return raw;
}

int64_t i64(const Tensor& t, int64_t i) { return t.data<int64_t>()[i]; }

}  // namespace

TEST(Transforms, MsaFeatEqualsFloat64ReferenceWithoutSampling) {
    const int64_t S = 9, N = 13;
    const RawFeatures raw = random_raw(S, N, 3);
    TransformConfig cfg;
    cfg.max_msa_clusters = 64;  // >= depth: every row a centre, no extra rows
    cfg.max_extra_msa = 16;
    cfg.masked_msa_replace_fraction = 0.0;
    cfg.num_iterations = 2;
    cfg.pad_to_fixed_size = false;
    const ProcessedFeatures f = process_features(raw, cfg);
    const Tensor& mf = f.at("msa_feat");
    ASSERT_EQ(mf.shape(), (Shape{2, S, N, 49}));
    ASSERT_EQ(f.at("extra_msa_row_mask").shape(), (Shape{2, 1}));  // one padding row when nothing is extra
    EXPECT_EQ(f.at("extra_msa_row_mask").f32()[0], 0.f);
    const Tensor& msa = raw.at("msa");
    const Tensor& del = raw.at("deletion_matrix_int");
    double worst = 0;
    for (int64_t r = 0; r < 2; ++r) {
        std::vector<bool> used(S, false);
        for (int64_t c = 0; c < S; ++c) {
            // Which raw row is centre c: its true_msa row (rows are distinct).
            int64_t src = -1;
            for (int64_t s = 0; s < S && src < 0; ++s) {
                bool same = !used[s];
                for (int64_t j = 0; j < N && same; ++j)
                    same = i64(f.at("true_msa"), (r * S + c) * N + j) == hhblits_to_af(msa.data<int32_t>()[s * N + j]) &&
                           std::fabs(mf.f32()[((r * S + c) * N + j) * 49 + 24] -
                                     std::atan(del.data<int32_t>()[s * N + j] / 3.0) * 2 / M_PI) < 1e-6;
                if (same) src = s;
            }
            ASSERT_GE(src, 0) << "centre " << c << " matches no raw row";
            if (c == 0) {
                EXPECT_EQ(src, 0) << "row 0 must stay the query";
            }
            used[src] = true;
            for (int64_t j = 0; j < N; ++j) {
                double ref[49] = {0};
                const int a = hhblits_to_af(msa.data<int32_t>()[src * N + j]);
                const double d = del.data<int32_t>()[src * N + j], cnt = 1.0 + 1e-6;
                ref[a] = 1;
                ref[23] = std::min(std::max(d, 0.0), 1.0);
                ref[24] = std::atan(d / 3.0) * 2.0 / M_PI;
                ref[25 + a] = 1.0 / cnt;
                ref[48] = std::atan(d / cnt / 3.0) * 2.0 / M_PI;
                for (int k = 0; k < 49; ++k) {
                    const double got = mf.f32()[((r * S + c) * N + j) * 49 + k];
                    worst = std::max(worst, std::fabs(got - ref[k]));
                    ASSERT_LE(std::fabs(got - ref[k]), 1e-6 + 1e-6 * std::fabs(ref[k]))
                        << "iteration " << r << " row " << c << " residue " << j << " channel " << k;
                }
            }
        }
    }
    std::printf("msa_feat vs float64 reference: max |diff| %.3g\n", worst);
    EXPECT_EQ(f.at("bert_mask").f32()[0], 0.f);
}

TEST(Transforms, SamplingMaskingClustersAndDeterminism) {
    const int64_t S = 400, N = 48, C = 32, E = 200;
    const RawFeatures raw = random_raw(S, N, 11);
    TransformConfig cfg;
    cfg.max_msa_clusters = C;
    cfg.max_extra_msa = E;
    cfg.num_iterations = 3;
    cfg.seed = 42;
    cfg.keep_intermediates = true;
    const ProcessedFeatures f = process_features(raw, cfg);
    const int R = 3;
    ASSERT_EQ(f.at("msa_feat").shape(), (Shape{R, C, N, 49}));
    ASSERT_EQ(f.at("extra_msa").shape(), (Shape{R, E, N}));

    // Masked fraction: Binomial(R*C*N, 0.15) within 5 sigma; mask token share of the masked ~ Binomial(., 0.7).
    const Tensor& bert = f.at("bert_mask");
    const Tensor& mf = f.at("msa_feat");
    double masked = 0, mask_token = 0, changed = 0;
    for (int64_t i = 0; i < bert.numel(); ++i) {
        if (bert.f32()[i] == 0) continue;
        masked += 1;
        mask_token += mf.f32()[i * 49 + 22];
        changed += mf.f32()[i * 49 + i64(f.at("true_msa"), i)] == 0;
    }
    const double n = static_cast<double>(bert.numel()), p = 0.15;
    EXPECT_NEAR(masked, n * p, 5 * std::sqrt(n * p * (1 - p)));
    EXPECT_NEAR(mask_token, masked * 0.7, 5 * std::sqrt(masked * 0.21));
    EXPECT_GT(changed, mask_token);  // uniform and profile replacements change some residues too

    // Every real extra row sits at a centre of maximal agreement (identical residues, centre gaps and mask
    // tokens excluded); profiles sum to one.
    const Tensor& assign = f.at("extra_cluster_assignment");
    for (int r = 0; r < R; ++r) {
        for (int64_t e = 0; e < E; ++e) {
            ASSERT_EQ(f.at("extra_msa_row_mask").f32()[r * E + e], 1.f);
            std::vector<int> score(C, 0);
            for (int64_t c = 0; c < C; ++c)
                for (int64_t j = 0; j < N; ++j) {
                    const int64_t x = i64(f.at("extra_msa"), (r * E + e) * N + j);
                    if (x < 21) score[c] += mf.f32()[((r * C + c) * N + j) * 49 + x] == 1.f;
                }
            const int64_t a = i64(assign, r * E + e);
            ASSERT_GE(a, 0);
            ASSERT_EQ(score[a], *std::max_element(score.begin(), score.end())) << "iteration " << r << " extra row " << e;
        }
        for (int64_t c = 0; c < C; ++c)
            for (int64_t j = 0; j < N; ++j) {
                double sum = 0;
                for (int k = 25; k < 48; ++k) sum += mf.f32()[((r * C + c) * N + j) * 49 + k];
                ASSERT_NEAR(sum, 1.0, 1e-5);
            }
    }
    // Row 0 is the query in every iteration; iterations differ (resampled); the same seed repeats exactly.
    for (int r = 0; r < R; ++r)
        for (int64_t j = 0; j < N; ++j)
            ASSERT_EQ(i64(f.at("true_msa"), r * C * N + j), i64(f.at("aatype"), r * N + j));
    const ProcessedFeatures g = process_features(raw, cfg);
    for (const auto& [k, t] : f) {
        ASSERT_EQ(std::memcmp(t.raw(), g.at(k).raw(), t.numel() * dtype_size(t.dtype())), 0) << k;
    }
    EXPECT_NE(std::memcmp(mf.raw(), mf.select(0, 1).raw(), mf.select(0, 0).numel() * 4), 0);
    cfg.seed = 43;
    EXPECT_NE(std::memcmp(mf.raw(), process_features(raw, cfg).at("msa_feat").raw(), mf.numel() * 4), 0);
}

TEST(Transforms, AlphaFoldFeatureDictGivesGoldenLayout) {
    const RawFeatures raw = read_raw_features_h5(kReal + "/alphafold_raw_features.h5");
    // The golden templates_seed5 settings: model_1_ptm, 32 - 4 cluster rows, 64 extra rows, 3 iterations.
    TransformConfig cfg = TransformConfig::for_model("model_1_ptm");
    EXPECT_EQ(cfg.max_msa_clusters, 508);
    EXPECT_EQ(cfg.max_extra_msa, 5120);
    cfg.max_msa_clusters = 28;
    cfg.max_extra_msa = 64;
    cfg.num_iterations = 3;
    cfg.seed = 5;
    const ProcessedFeatures f = process_features(raw, cfg);
    const std::map<std::string, Shape> golden = {
        {"aatype", {3, 73}}, {"atom14_atom_exists", {3, 73, 14}}, {"atom37_atom_exists", {3, 73, 37}},
        {"bert_mask", {3, 28, 73}}, {"extra_deletion_value", {3, 64, 73}}, {"extra_has_deletion", {3, 64, 73}},
        {"extra_msa", {3, 64, 73}}, {"extra_msa_mask", {3, 64, 73}}, {"extra_msa_row_mask", {3, 64}},
        {"msa_feat", {3, 28, 73, 49}}, {"msa_mask", {3, 28, 73}}, {"msa_row_mask", {3, 28}},
        {"residue_index", {3, 73}}, {"residx_atom14_to_atom37", {3, 73, 14}}, {"residx_atom37_to_atom14", {3, 73, 37}},
        {"seq_length", {3}}, {"seq_mask", {3, 73}}, {"target_feat", {3, 73, 22}}, {"true_msa", {3, 28, 73}},
        {"template_aatype", {3, 4, 73}}, {"template_all_atom_mask", {3, 4, 73, 37}},
        {"template_all_atom_positions", {3, 4, 73, 37, 3}}, {"template_mask", {3, 4}},
        {"template_pseudo_beta", {3, 4, 73, 3}}, {"template_pseudo_beta_mask", {3, 4, 73}},
        {"template_sum_probs", {3, 4, 1}}, {"template_torsion_angles_sin_cos", {3, 4, 73, 7, 2}},
        {"template_alt_torsion_angles_sin_cos", {3, 4, 73, 7, 2}}, {"template_torsion_angles_mask", {3, 4, 73, 7}}};
    for (const auto& [k, shape] : golden) {
        ASSERT_TRUE(f.count(k)) << k;
        EXPECT_EQ(f.at(k).shape(), shape) << k;
    }
    // Masks: all rows real here (1136 rows > 28 + 64).
    for (const char* k : {"msa_mask", "msa_row_mask", "extra_msa_mask", "extra_msa_row_mask", "seq_mask", "template_mask"})
        for (int64_t i = 0; i < f.at(k).numel(); ++i) ASSERT_EQ(f.at(k).f32()[i], 1.f) << k;
    ModelConfig mc;
    validate_features(f, mc, "alphafold_raw_features.h5");
    // Padding: with the preset's sizes the rows beyond the MSA are zero-mask padding.
    cfg.max_msa_clusters = 508;
    cfg.max_extra_msa = 1024;
    cfg.num_iterations = 1;
    const ProcessedFeatures p = process_features(raw, cfg);
    EXPECT_EQ(p.at("msa_feat").shape(), (Shape{1, 508, 73, 49}));
    EXPECT_EQ(p.at("extra_msa").shape(), (Shape{1, 1024, 73}));
    double real_extra = 0;
    for (int64_t e = 0; e < 1024; ++e) real_extra += p.at("extra_msa_row_mask").f32()[e];
    EXPECT_EQ(real_extra, 1136 - 508);
}

TEST(Transforms, TemplateHookSeesTheFeatures) {
    const RawFeatures raw = read_raw_features_h5(kReal + "/alphafold_raw_features.h5");
    TransformConfig cfg = TransformConfig::for_model("model_1");
    cfg.max_msa_clusters = 8;
    cfg.max_extra_msa = 8;
    cfg.num_iterations = 1;
    bool called = false;
    cfg.template_hook = [&](const RawFeatures& r, ProcessedFeatures& f, const TransformConfig& c) {
        called = true;
        EXPECT_EQ(r.at("template_aatype").size(0), 8);
        EXPECT_EQ(f.at("template_mask").shape(), (Shape{1, c.max_templates}));
        f["template_torsion_angles_mask"] = Tensor::zeros({1, 4, 73, 7});
    };
    const ProcessedFeatures f = process_features(raw, cfg);
    EXPECT_TRUE(called);
    EXPECT_TRUE(f.count("template_torsion_angles_mask"));
    cfg = TransformConfig::for_model("model_3");  // no templates: none passed on
    cfg.num_iterations = 1;
    EXPECT_FALSE(process_features(raw, cfg).count("template_aatype"));
}
