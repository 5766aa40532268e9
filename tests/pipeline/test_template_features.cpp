// The raw -> processed template features (pipeline/template_features.h) against the golden `templates_seed5`
// set (its features.h5 made from raw_features.h5). The set lives in ../shared/golden (AXFOLD_GOLDEN_DIR).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "golden_util.h"
#include "pipeline/template_features.h"
#include "pipeline/training_sample.h"

using namespace axfold;
using namespace axfold::pipeline;
using test::GoldenCase;

TEST(TemplateFeatures, golden_raw_to_processed_template_features_match) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("raw_features.h5")) {
        const std::string name = std::filesystem::path(set).filename().string();
        io::Hdf5File raw_file(set + "/raw_features.h5"), feat_file(set + "/features.h5");
        std::map<std::string, Tensor> raw;
        for (const char* k :
             {"template_aatype", "template_all_atom_masks", "template_all_atom_positions", "template_sum_probs"})
            raw[k] = raw_file.read_f32(k);
        const int64_t N = feat_file.shape("aatype")[1], T = feat_file.shape("template_aatype")[1];
        std::map<std::string, Tensor> got = make_template_features(raw, N, T);
        int compared = 0;
        for (const auto& [key, t] : got) {
            ASSERT_TRUE(feat_file.has_dataset(key)) << key;
            Tensor g = feat_file.read_f32(key).select(0, 0);
            ASSERT_EQ(t.shape(), g.shape()) << name << "/" << key;
            auto res = test::compare(test::to_f64(t), test::to_f64(g), 0, 0, key, 0);
            std::printf("golden %-16s raw->processed %-40s rel %.3e  max abs %.3e\n", name.c_str(), key.c_str(),
                        res.rel(), res.max_abs);
            EXPECT_LE(res.rel(), 1e-6) << name << "/" << key;
            ++compared;
        }
        EXPECT_EQ(compared, 10);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no golden set with raw_features.h5 under " << test::golden_dir();
}

TEST(TemplateFeatures, hhblits_to_af2_aatype) {
    EXPECT_EQ(hhblits_to_af2_aatype(1), 4);    // C
    EXPECT_EQ(hhblits_to_af2_aatype(21), 21);  // gap
}

// A training crop cuts the raw templates' residue axis with the MSA's columns, so that the cropped example's
// template features are those of the whole example's residues [begin, begin + n).
TEST(TemplateFeatures, training_crop_cuts_the_templates_residues) {
    auto rng = test::seeded_rng(41);
    const int64_t N = 12, begin = 3, n = 6;
    RawFeatures raw;
    raw.source = "random";
    raw.arrays["aatype"] = Tensor::zeros({N, 21});
    raw.arrays["msa"] = Tensor::zeros({2, N}, DType::I32);
    raw.arrays["deletion_matrix_int"] = Tensor::zeros({2, N}, DType::I32);
    raw.arrays["template_aatype"] = test::randn({2, N, 22}, rng);
    raw.arrays["template_all_atom_positions"] = test::randn({2, N, 37, 3}, rng);
    raw.arrays["template_sum_probs"] = test::randn({2, 1}, rng);
    const RawFeatures c = pipeline::crop_raw_features(raw, begin, n);
    EXPECT_EQ(c.at("msa").shape(), Shape({2, n}));
    EXPECT_EQ(c.at("template_aatype").shape(), Shape({2, n, 22}));
    EXPECT_EQ(c.at("template_sum_probs").shape(), Shape({2, 1}));
    const Tensor& pos = c.at("template_all_atom_positions");
    ASSERT_EQ(pos.shape(), Shape({2, n, 37, 3}));
    EXPECT_EQ(pos.at({1, 2, 5, 1}), raw.arrays.at("template_all_atom_positions").at({1, begin + 2, 5, 1}));
}
