// The raw -> processed template features (pipeline/template_features.h) against the golden `templates_seed5`
// set (its features.h5 made from raw_features.h5). The set lives in ../shared/golden (AXFOLD_GOLDEN_DIR).
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "golden_util.h"
#include "pipeline/template_features.h"

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
