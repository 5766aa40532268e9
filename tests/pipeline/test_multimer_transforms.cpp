// AlphaFold-Multimer's model-side transforms (pipeline/multimer_transforms.h). The clustering and the MSA features
// are deterministic given a sample: on every iteration of multimer_small's features.h5 (OpenFold's sample, whose
// extra rows are the ones it clustered) they reproduce cluster_profile, cluster_deletion_mean and msa_feat. The
// random steps are checked for what AF2 guarantees: the query row first, centres and extra rows partitioning the
// merged MSA, masking only where bert_mask allows at about 15 %, reproducible per seed, new per iteration.
#include <gtest/gtest.h>

#include <set>

#include "io/hdf5_file.h"
#include "pipeline/multimer_transforms.h"
#include "test_util.h"

using namespace axfold;

namespace {

const std::string kSet = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small";

Tensor iteration(const io::Hdf5File& f, const std::string& key, int64_t r) {
    return f.read(key).select(0, r).contiguous();
}

pipeline::MergedFeatures merged_features() {
    const io::Hdf5File f(kSet + "/data/merged_features.h5");
    pipeline::MergedFeatures m;
    for (const std::string& k : f.list("/", false)) m[k] = f.read(k);
    return m;
}

std::vector<int64_t> row(const Tensor& t, int64_t r) {
    const int64_t n = t.size(t.dim() - 1);
    const std::vector<int64_t> v = host_int64(t);
    return std::vector<int64_t>(v.begin() + r * n, v.begin() + r * n + n);
}

}  // namespace

TEST(MultimerTransforms, clusters_and_msa_feat_match_the_golden_sample) {
    const io::Hdf5File f(kSet + "/features.h5");
    for (int64_t r = 0; r < f.read("msa").size(0); ++r) {
        const pipeline::ClusterSummary c = pipeline::nearest_neighbor_clusters(
            iteration(f, "msa", r), iteration(f, "msa_mask", r), iteration(f, "deletion_matrix", r),
            iteration(f, "extra_msa", r), iteration(f, "extra_msa_mask", r), iteration(f, "extra_deletion_matrix", r));
        const std::string it = " (iteration " + std::to_string(r) + ")";
        EXPECT_LT(test::rel_diff(c.cluster_profile, iteration(f, "cluster_profile", r)), 1e-6) << it;
        EXPECT_LT(test::rel_diff(c.cluster_deletion_mean, iteration(f, "cluster_deletion_mean", r)), 1e-6) << it;
        const Tensor feat = pipeline::create_msa_feat(iteration(f, "msa", r), iteration(f, "deletion_matrix", r), c);
        EXPECT_LT(test::rel_diff(feat, iteration(f, "msa_feat", r)), 1e-6) << it;
    }
}

TEST(MultimerTransforms, sampling_keeps_the_query_first_and_partitions_the_msa) {
    const pipeline::MergedFeatures merged = merged_features();
    pipeline::TransformConfig cfg;
    cfg.max_msa_clusters = 64;
    cfg.max_extra_msa = 1000;  // more than there are: every extra row comes out
    cfg.num_iterations = 3;
    cfg.seed = 7;
    const pipeline::ProcessedFeatures p = pipeline::process_multimer_features(merged, cfg);
    const int64_t M = merged.at("msa").size(0), N = merged.at("msa").size(1), S = 64;
    ASSERT_EQ(p.at("msa_feat").shape(), Shape({3, S, N, 49}));
    ASSERT_EQ(p.at("extra_msa").shape(), Shape({3, M - S, N}));
    ASSERT_EQ(p.at("target_feat").shape(), Shape({3, N, 21}));
    ASSERT_EQ(p.at("template_aatype").shape(), Shape({3, 4, N}));

    // Each merged row (tokens and deletions) as a multiset, to find the sampled rows again.
    auto key = [&](const Tensor& msa, const Tensor& del, int64_t r) {
        std::vector<int64_t> k = row(msa, r);
        for (int64_t d : row(del, r)) k.push_back(d);
        return k;
    };
    std::multiset<std::vector<int64_t>> all;
    for (int64_t r = 0; r < M; ++r) all.insert(key(merged.at("msa"), merged.at("deletion_matrix"), r));
    int64_t masked = 0, maskable = 0;
    for (int r = 0; r < 3; ++r) {
        const Tensor true_msa = p.at("true_msa").select(0, r).contiguous(),
                     del = p.at("deletion_matrix").select(0, r).contiguous();
        EXPECT_EQ(row(true_msa, 0), row(merged.at("msa"), 0)) << "the query row (cluster bias) comes first";
        std::multiset<std::vector<int64_t>> seen;
        for (int64_t s = 0; s < S; ++s) seen.insert(key(true_msa, del, s));
        const Tensor extra = p.at("extra_msa").select(0, r).contiguous(),
                     edel = p.at("extra_deletion_matrix").select(0, r).contiguous();
        for (int64_t e = 0; e < M - S; ++e) seen.insert(key(extra, edel, e));
        EXPECT_EQ(seen, all) << "centres and extra rows are the merged rows, each once (iteration " << r << ")";
        // Masking: only where the sampled row's bert_mask allowed it, the unmasked value kept in true_msa.
        const std::vector<int64_t> msa = host_int64(p.at("msa").select(0, r).contiguous()),
                                   truth = host_int64(true_msa);
        const std::vector<double> bert = test::to_f64(p.at("bert_mask").select(0, r).contiguous());
        for (int64_t i = 0; i < S * N; ++i) {
            if (bert[i] == 0) {
                EXPECT_EQ(msa[i], truth[i]) << "unmasked position changed at " << i;
            }
            masked += bert[i] != 0;
        }
        maskable += S * N;
    }
    // bert_mask of the merged rows is 1 on the paired rows and the own-entity block: most of a sample.
    const double fraction = static_cast<double>(masked) / static_cast<double>(maskable);
    EXPECT_GT(fraction, 0.05);
    EXPECT_LT(fraction, 0.15);
    // Reproducible for a seed; a new sample on every iteration.
    const pipeline::ProcessedFeatures again = pipeline::process_multimer_features(merged, cfg);
    EXPECT_EQ(test::rel_diff(again.at("msa_feat"), p.at("msa_feat")), 0.0);
    EXPECT_NE(row(p.at("true_msa").select(0, 0).contiguous(), 1), row(p.at("true_msa").select(0, 1).contiguous(), 1));
}
