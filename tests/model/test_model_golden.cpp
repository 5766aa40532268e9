// The whole network on every golden set's features and parameters, through the same calls as
// `axfold predict` (read_features_h5, Model::load, predict, prediction_output_tensors), against the
// independent AF2 implementation's outputs.h5: every output and every recycling iteration.
#include <filesystem>
#include <fstream>
#include <regex>

#include "golden_util.h"
#include "model_golden_util.h"
#include "io/features.h"
#include "io/params.h"
#include "model/model.h"

using namespace axfold;
using test::preset_of;

TEST(Model, golden_full_model_matches) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("outputs.h5")) {
        const std::string name = std::filesystem::path(set).filename().string();
        const std::string preset = preset_of(set);
        ASSERT_FALSE(preset.empty()) << set << "/config.json names no preset";
        io::Hdf5File golden(set + "/outputs.h5");
        const test::GoldenModel g = test::load_golden_model(set, golden);
        const Prediction p = g.model.predict(g.features);
        const int compared = test::expect_matches_golden(prediction_output_tensors(p), golden, name, "model");
        EXPECT_GT(compared, 40) << name;
        ++ran;
    }
    ASSERT_GT(ran, 0) << "no full-model golden set under " << test::golden_dir();
}

// PredictOptions::run_blocks (the depth-truncated runs of `axfold bench model --run-blocks`) runs exactly
// the first blocks of each stack: it equals a model whose stacked parameters hold only those blocks.
TEST(Model, run_blocks_runs_the_first_blocks_of_each_stack) {
    const std::string set = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
    auto full = std::make_shared<ParamStore>(ParamStore::load(set + "/params.npz"));
    auto cut = std::make_shared<ParamStore>();
    int64_t stacked = 0;
    for (const std::string& k : full->keys()) {
        const Tensor& t = full->get(k);
        const bool in_stack = k.find("/evoformer_iteration/") != std::string::npos ||
                              k.find("/extra_msa_stack/") != std::string::npos;
        if (in_stack && t.size(0) > 1) ++stacked;
        cut->insert(k, in_stack ? t.slice(0, 0, 1).contiguous() : t);
    }
    ASSERT_GT(stacked, 0) << "the small set needs a stack of two or more blocks for this test";
    const std::string preset = preset_of(set);
    FeatureDict f = io::read_features_h5(set + "/features.h5");
    PredictOptions one;
    one.num_recycle = 0;
    one.run_blocks = 1;
    PredictOptions all = one;
    all.run_blocks = -1;
    const Prediction a = Model::from_store(full, preset).predict(f, one);
    const Prediction b = Model::from_store(cut, preset).predict(f, all);
    const Prediction c = Model::from_store(full, preset).predict(f, all);
    auto rel = [](const Tensor& x, const Tensor& y) { return test::compare(test::to_f64(x), test::to_f64(y), 0, 0, "pair", 0); };
    EXPECT_EQ(rel(a.pair, b.pair).max_abs, 0.0);
    EXPECT_EQ(rel(a.heads.plddt, b.heads.plddt).max_abs, 0.0);
    EXPECT_GT(rel(a.pair, c.pair).max_abs, 1e-3);  // the second blocks did run in the full model
}

// `--precision bf16` (bf16 GEMMs and the trunk's MSA and pair stored in bfloat16) moves the full model's
// pLDDT by less than one point against fp32 on every golden set (issue #8's bf16 criterion); so do each of
// its halves alone, and each moves it at all.
TEST(Model, golden_bf16_keeps_plddt_within_one_point) {
    const int ran = test::for_each_golden_model([](const std::string& name, const io::Hdf5File&,
                                                   const test::GoldenModel& g) {
        const Prediction fp32 = g.model.predict(g.features);
        struct Variant {
            const char* label;
            MatmulPrecision gemm;
            DType storage;
        };
        for (const Variant v : {Variant{"bf16 GEMMs", MatmulPrecision::Bf16, DType::F32},
                                Variant{"bf16 storage", MatmulPrecision::Fp32, DType::BF16},
                                Variant{"--precision bf16", MatmulPrecision::Bf16, DType::BF16}}) {
            test::PrecisionScope scope(v.gemm);
            Context ctx;
            ctx.activation_dtype = v.storage;
            const Prediction bf16 = g.model.predict(g.features, PredictOptions{}, ctx);
            auto d = test::compare(test::to_f64(bf16.heads.plddt), test::to_f64(fp32.heads.plddt), 0, 0, "plddt", 0);
            auto x = test::compare(test::to_f64(bf16.structure_module.final_atom_positions),
                                   test::to_f64(fp32.structure_module.final_atom_positions), 0, 0, "positions", 0);
            std::printf("golden %-16s %-17s vs fp32: pLDDT max |diff| %.4f, positions max |diff| %.4f A\n",
                        name.c_str(), v.label, d.max_abs, x.max_abs);
            EXPECT_LE(d.max_abs, 1.0) << name << ", " << v.label;
            EXPECT_GT(d.max_abs + x.max_abs, 0.0) << name << ", " << v.label << ": changed nothing";
            EXPECT_EQ(bf16.pair.dtype(), v.storage) << "the pair representation is returned as the trunk stored it";
        }
    });
    ASSERT_GT(ran, 0);
}

// Without keep_pair_logits (`axfold predict` unless --save-outputs) the heads run in row blocks and drop the
// [N, N, 64] tensors: the PAE map, its maximum and pTM equal the kept run's, nothing else changes, and the
// dropped tensors are left out of the outputs. Row blocks of 3 residues exercise the blocking; a bfloat16
// pair (--precision bf16) goes through the same blocks.
TEST(Model, lean_heads_match_kept_heads) {
    const std::string set = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
    const Model model = Model::load(set + "/params.npz", preset_of(set));
    const FeatureDict f = io::read_features_h5(set + "/features.h5");
    for (DType storage : {DType::F32, DType::BF16}) {
        Context c1, c2;
        c1.activation_dtype = c2.activation_dtype = storage;
        c2.chunk_size = 3;  // also chunks the trunk: compared within the chunking tolerance below
        PredictOptions lean;
        lean.keep_pair_logits = false;
        lean.keep_recycles = false;
        const Prediction kept = model.predict(f, PredictOptions{}, c1);
        const Prediction p = model.predict(f, lean, c2);
        ASSERT_TRUE(kept.heads.has_pae && p.heads.has_pae);
        EXPECT_FALSE(p.heads.distogram_logits.defined());
        EXPECT_FALSE(p.heads.predicted_aligned_error_logits.defined());
        EXPECT_FALSE(p.heads.aligned_confidence_probs.defined());
        const double tol = storage == DType::F32 ? 1e-4 : 5e-2;  // chunking flips bfloat16 roundings
        const auto pae = test::compare(test::to_f64(p.heads.predicted_aligned_error),
                                       test::to_f64(kept.heads.predicted_aligned_error), tol, 0, "pae");
        EXPECT_EQ(pae.bad, 0) << dtype_name(storage) << ": max |diff| " << pae.max_abs;
        EXPECT_NEAR(p.heads.ptm, kept.heads.ptm, tol * 1e-2) << dtype_name(storage);
        EXPECT_EQ(p.heads.max_predicted_aligned_error, kept.heads.max_predicted_aligned_error);
        const auto plddt = test::compare(test::to_f64(p.heads.plddt), test::to_f64(kept.heads.plddt), tol, 0, "plddt");
        EXPECT_EQ(plddt.bad, 0) << dtype_name(storage);
        // pTM from the kept probabilities is the blocked computation's, row for row.
        EXPECT_NEAR(ptm_from_probs(kept.heads.aligned_confidence_probs), kept.heads.ptm, 1e-7);
        const auto out = prediction_output_tensors(p);
        EXPECT_EQ(out.count("distogram_logits"), 0u);
        EXPECT_EQ(out.count("aligned_confidence_probs"), 0u);
        EXPECT_EQ(out.count("predicted_aligned_error"), 1u);
        EXPECT_EQ(p.pair.dtype(), storage);
    }
}

// PredictOptions::offload_msa parks the MSA in host memory during the extra-MSA stack and brings it back: the
// prediction is the same to the bit (on the CPU the parking is a host copy, so this checks the model's side:
// what is parked, released and restored, and that no view outlives the release), with and without templates
// (templates_seed5 under ../shared) and with bfloat16 activations.
TEST(Model, offload_msa_changes_nothing) {
    const int ran = test::for_each_golden_model([](const std::string& name, const io::Hdf5File&,
                                                   const test::GoldenModel& g) {
        for (DType storage : {DType::F32, DType::BF16}) {
            Context c1, c2;
            c1.activation_dtype = c2.activation_dtype = storage;
            PredictOptions parked;
            parked.offload_msa = true;
            const Prediction a = g.model.predict(g.features, PredictOptions{}, c1);
            const Prediction b = g.model.predict(g.features, parked, c2);
            const auto oa = prediction_output_tensors(a), ob = prediction_output_tensors(b);
            ASSERT_EQ(oa.size(), ob.size()) << name;
            for (const auto& [key, t] : oa) {
                const auto d = test::compare(test::to_f64(ob.at(key)), test::to_f64(t), 0, 0, key, 0);
                EXPECT_EQ(d.max_abs, 0.0) << name << " " << dtype_name(storage) << ": " << key;
            }
        }
    });
    ASSERT_GT(ran, 0);
}
