// The whole model on the GPU (`axfold predict --device cuda`) against every golden set, with
// the CPU golden test's tolerances; bf16 GEMMs on the GPU within a pLDDT point of fp32; the MSA offload; a
// template model against the CPU; AlphaFold-Multimer against its golden sets (label gpu; skips without a device).
#include <filesystem>

#include "io/features.h"
#include "kernels/device.h"
#include "model/model.h"
#include "model_golden_util.h"
#include "template_model_util.h"

using namespace axfold;

TEST(ModelGpu, golden_full_model_matches_on_cuda) {
    AXF_SKIP_WITHOUT_DEVICE();
    const int ran = test::for_each_golden_model(
        [](const std::string& name, const io::Hdf5File& golden, const test::GoldenModel& g) {
            Context gpu(Device::CUDA);
            const Prediction p = g.model.predict(g.features, {}, gpu);
            EXPECT_GT(test::expect_matches_golden(prediction_output_tensors(p), golden, name, "cuda"), 40) << name;
        });
    ASSERT_GT(ran, 0);
}

TEST(ModelGpu, golden_bf16_keeps_plddt_within_one_point_on_cuda) {
    AXF_SKIP_WITHOUT_DEVICE();
    const int ran =
        test::for_each_golden_model([](const std::string& name, const io::Hdf5File&, const test::GoldenModel& g) {
            Context gpu(Device::CUDA);
            const Prediction p = g.model.predict(g.features, {}, gpu);
            Prediction b;
            {
                test::PrecisionScope scope(MatmulPrecision::Bf16);
                Context gpu_bf16(Device::CUDA);
                gpu_bf16.activation_dtype = DType::BF16;  // what --precision bf16 runs
                b = g.model.predict(g.features, {}, gpu_bf16);
            }
            auto d = test::compare(test::to_f64(b.heads.plddt), test::to_f64(p.heads.plddt), 0, 0, "plddt", 0);
            std::printf("golden %-16s cuda bf16 vs fp32: pLDDT max |diff| %.4f\n", name.c_str(), d.max_abs);
            EXPECT_LE(d.max_abs, 1.0) << name;
            EXPECT_GT(d.max_abs, 0.0) << name << ": bf16 changed nothing";
        });
    ASSERT_GT(ran, 0);
}

// Offload on the GPU: the MSA parked in pinned host memory during the extra-MSA stack (copies on the side stream)
// gives the same prediction to the bit.
TEST(ModelGpu, offload_msa_changes_nothing_on_cuda) {
    AXF_SKIP_WITHOUT_DEVICE();
    const int ran =
        test::for_each_golden_model([](const std::string& name, const io::Hdf5File&, const test::GoldenModel& g) {
            Context c1(Device::CUDA), c2(Device::CUDA);
            PredictOptions parked;
            parked.offload_msa = true;
            const Prediction a = g.model.predict(g.features, {}, c1);
            const Prediction b = g.model.predict(g.features, parked, c2);
            const auto oa = prediction_output_tensors(a), ob = prediction_output_tensors(b);
            for (const auto& [key, t] : oa) {
                const auto d = test::compare(test::to_f64(ob.at(key)), test::to_f64(t), 0, 0, key, 0);
                EXPECT_EQ(d.max_abs, 0.0) << name << ": " << key;
            }
        });
    ASSERT_GT(ran, 0);
}

// A template model (reduced widths, random parameters, three random templates on the bundled features) on the
// GPU against the CPU: the template pair features sent up a block of rows at a time, the pointwise attention
// in row blocks into the pair, the angle rows; unchunked and with 5-row blocks, with the MSA parked.
TEST(ModelGpu, template_model_matches_cpu_on_cuda) {
    AXF_SKIP_WITHOUT_DEVICE();
    const std::string feat_path = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/features.h5";
    if (!std::filesystem::exists(feat_path)) GTEST_SKIP() << feat_path << " missing";
    const FeatureDict base = io::read_features_h5(feat_path);
    std::mt19937 rng(29);
    const FeatureDict f = test::with_templates(base, test::random_raw_templates(3, base.at("aatype").size(1), rng));
    const Model model = test::tiny_template_model(7);
    const auto cpu = prediction_output_tensors(model.predict(f));
    for (int64_t chunk : {0, 5}) {
        Context gpu(Device::CUDA);
        gpu.chunk_size = chunk;
        PredictOptions o;
        o.offload_msa = chunk > 0;
        const auto out = prediction_output_tensors(model.predict(f, o, gpu));
        for (const char* key : {"representations/pair", "representations/msa", "recycles/0/template_pair_embedding",
                                "recycles/0/template_angle_embedding", "final_atom_positions", "plddt"}) {
            const auto d = test::compare(test::to_f64(out.at(key)), test::to_f64(cpu.at(key)), 0, 0, key, 0);
            std::printf("template model, chunk %lld, %-38s cuda vs cpu: rel %.2e\n", (long long)chunk, key, d.rel());
            EXPECT_LE(d.rel(), 1e-3) << key << " chunk " << chunk;  // the golden full-model tolerance
        }
    }
}

// AlphaFold-Multimer on the GPU: every multimer golden set's outputs with the CPU golden test's tolerances (its
// template embedding, fused triangle multiplications, multimer IPA and ipTM run on the device).
TEST(ModelGpu, golden_multimer_matches_on_cuda) {
    AXF_SKIP_WITHOUT_DEVICE();
    int ran = 0;
    for (const std::string& set : test::multimer_golden_sets("outputs.h5")) {
        const std::string name = std::filesystem::path(set).filename().string();
        const io::Hdf5File golden(set + "/outputs.h5");
        const test::GoldenModel g = test::load_golden_model(set, golden);
        Context gpu(Device::CUDA);
        const Prediction p = g.model.predict(g.features, {}, gpu);
        EXPECT_GT(test::expect_matches_golden(prediction_output_tensors(p), golden, name, "cuda"), 60) << name;
        ++ran;
    }
    ASSERT_GT(ran, 0);
}
