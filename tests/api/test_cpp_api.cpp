// The C++ API (include/axfold/axfold.hpp) against the library it wraps: the same prediction to the bit as
// Model::predict under the same settings, raw and FASTA features through the same transforms, the settings'
// errors as `axfold predict` words them, every failure an axf::Error.
#include <gtest/gtest.h>

#include <axfold/axfold.hpp>
#include <cstring>
#include <filesystem>

#include "io/features.h"
#include "model/model.h"
#include "pipeline/raw_features.h"
#include "pipeline/transforms.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {
const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

template <class F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const axf::Error& e) {
        return e.what();
    }
    ADD_FAILURE() << "no axf::Error thrown";
    return "";
}
}  // namespace

TEST(CppApi, PredictionEqualsTheLibrary) {
    const axf::Model model = axf::Model::load(kSmall + "/params.npz", "model_3_ptm");
    axf::PredictOptions o;
    o.num_recycle = 1;
    const axf::Prediction p = model.predict(axf::Features::load(kSmall + "/features.h5", "model_3_ptm"), o);

    axfold::PredictOptions ref_options;
    ref_options.num_recycle = 1;
    ref_options.keep_recycles = ref_options.keep_pair_logits = false;
    const axfold::Prediction ref = axfold::Model::load(kSmall + "/params.npz", "model_3_ptm")
                                       .predict(axfold::io::read_features_h5(kSmall + "/features.h5"), ref_options);
    const int64_t N = ref.heads.plddt.numel();
    ASSERT_EQ(p.num_residues(), N);
    EXPECT_EQ(p.iterations(), 2);
    EXPECT_EQ(p.model_name(), "model_3_ptm");
    EXPECT_EQ(std::memcmp(p.plddt().data(), ref.heads.plddt.f32(), sizeof(float) * N), 0);
    EXPECT_EQ(std::memcmp(p.atom37().data(), ref.structure_module.final_atom_positions.f32(), sizeof(float) * N * 111),
              0);
    EXPECT_EQ(std::memcmp(p.atom37_mask().data(), ref.structure_module.final_atom_mask.f32(), sizeof(float) * N * 37),
              0);
    EXPECT_EQ(std::memcmp(p.pae().data(), ref.heads.predicted_aligned_error.f32(), sizeof(float) * N * N), 0);
    EXPECT_EQ(p.ptm(), ref.heads.ptm);
    EXPECT_EQ(p.max_pae(), ref.heads.max_predicted_aligned_error);
    EXPECT_EQ(p.mean_plddt(), axfold::mean_plddt(ref));
    ASSERT_EQ(p.timings().size(), ref.timings.size());
}

TEST(CppApi, RawAndFastaFeaturesGoThroughTheTransforms) {
    const std::string raw_path = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/alphafold_raw_features.h5";
    const axf::Features f = axf::Features::load(raw_path, "model_3_ptm", 5, 1);
    axfold::pipeline::TransformConfig c = axfold::pipeline::TransformConfig::for_model("model_3_ptm");
    c.num_iterations = 2;
    c.seed = 5;
    const axfold::FeatureDict want =
        axfold::pipeline::process_features(axfold::pipeline::read_raw_features_h5(raw_path), c);
    EXPECT_EQ(f.num_residues(), want.at("aatype").size(1));
    const axf::Features g =
        axf::Features::from_fasta(std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/short.fasta", {}, "model_3_ptm");
    EXPECT_GT(g.num_residues(), 0);
}

// Errors: each an axf::Error naming the file or the setting as the command line does.
TEST(CppApi, ErrorsNameTheFileOrTheSetting) {
    EXPECT_NE(
        error_of([] { axf::Model::load("/nonexistent/params.npz", "model_3_ptm"); }).find("/nonexistent/params.npz"),
        std::string::npos);
    EXPECT_NE(error_of([] { axf::Model::load(kSmall + "/params.npz", "model_3"); }).find("params.npz"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  axf::Features::from_fasta(std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/short.fasta",
                                            {"/nonexistent/hits.a3m"}, "model_3_ptm");
              }).find("/nonexistent/hits.a3m"),
              std::string::npos);
    const axf::Model model = axf::Model::load(kSmall + "/params.npz", "model_3_ptm");
    const axf::Features f = axf::Features::load(kSmall + "/features.h5", "model_3_ptm");
    axf::PredictOptions o;
    o.device = "tpu";
    EXPECT_NE(error_of([&] { model.predict(f, o); }).find("--device tpu: expected cpu or cuda"), std::string::npos);
    o.device = "cpu";
    o.precision = "fp16";
    EXPECT_NE(error_of([&] { model.predict(f, o); }).find("expected fp32, tf32 or bf16"), std::string::npos);
    o.precision = "fp32";
    o.activations = "fp16";
    EXPECT_NE(error_of([&] { model.predict(f, o); }).find("--activations fp16: expected fp32 or bf16"),
              std::string::npos);
    o.activations = "";
    o.max_memory = "1M";
    EXPECT_NE(error_of([&] { model.predict(f, o); }).find("memory budget 1.0M is too small"), std::string::npos);
}

// Moved-from objects hand over their state; a model without a PAE head says so.
TEST(CppApi, MovesAndMissingPaeHead) {
    axf::Model a = axf::Model::load(kSmall + "/params.npz", "model_3_ptm");
    axf::Model b = std::move(a);
    EXPECT_EQ(b.name(), "model_3_ptm");
    axfold::test::TempDir dir;
    axf::PredictOptions o;
    o.num_recycle = 0;
    axf::Prediction p = b.predict(axf::Features::load(kSmall + "/features.h5", "model_3_ptm"), o);
    axf::Prediction q = std::move(p);
    q.write_mmcif((dir / "q.cif").string());
    EXPECT_TRUE(fs::file_size(dir / "q.cif") > 1000);
}

// The early stop through the API: AlphaFold-Multimer models stop at the preset's 0.5 A unless told otherwise (as
// `axfold predict`): with random weights no change falls below 0.5 A (three iterations), while a tolerance above
// any change (1000 A) makes the second iteration the last.
TEST(CppApi, MultimerEarlyStopAsThePredictCommand) {
    const std::string mm = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small";
    const axf::Model model = axf::Model::load(mm + "/params.npz", "model_1_multimer_v3");
    const axf::Features f = axf::Features::load(mm + "/features.h5", model.name());
    axf::PredictOptions o;
    EXPECT_EQ(model.predict(f, o).iterations(), 3);
    o.recycle_early_stop_tolerance = 1000;
    const axf::Prediction p = model.predict(f, o);
    EXPECT_EQ(p.iterations(), 2);
    EXPECT_TRUE(p.has_iptm());
    EXPECT_DOUBLE_EQ(p.ranking_confidence(),
                     static_cast<float>(0.8f * static_cast<float>(p.iptm()) + 0.2f * static_cast<float>(p.ptm())));
    EXPECT_NE(error_of([&] {
                  axf::Features::from_fasta(std::string(AXFOLD_TEST_DATA_DIR) + "/realdata/short.fasta", {},
                                            "model_1_multimer_v3");
              }).find("is one chain, but model_1_multimer_v3 is an AlphaFold-Multimer model"),
              std::string::npos);
}
