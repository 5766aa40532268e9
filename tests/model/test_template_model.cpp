// Template models (model_1, model_2) end to end at reduced widths with random AF2-layout parameters.
#include <cmath>
#include <random>

#include "golden_util.h"
#include "io/features.h"
#include "model/model.h"
#include "model/model_params.h"
#include "template_model_util.h"

using namespace axfold;

// init-params for model_1_ptm has exactly the keys and shapes of the golden template model's parameters.
TEST(TemplateFeatures, golden_init_params_template_shapes_match) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("params.npz")) {
        ParamStore golden = ParamStore::load(set + "/params.npz");
        if (!golden.has("alphafold/alphafold_iteration/evoformer/template_embedding/attention//query_w")) continue;
        ModelDims d;
        d.evoformer_blocks = golden
                                 .get(
                                     "alphafold/alphafold_iteration/evoformer/evoformer_iteration/"
                                     "msa_transition/input_layer_norm//scale")
                                 .size(0);
        d.extra_msa_blocks = golden
                                 .get(
                                     "alphafold/alphafold_iteration/evoformer/extra_msa_stack/"
                                     "msa_transition/input_layer_norm//scale")
                                 .size(0);
        ParamShapes shapes = model_param_shapes(ModelPreset::from_name("model_1_ptm"), d);
        EXPECT_EQ(shapes.size(), golden.size());
        for (const auto& [key, shape] : shapes) {
            ASSERT_TRUE(golden.has(key)) << key;
            EXPECT_EQ(shape, golden.get(key).shape()) << key;
        }
        std::printf("golden %-16s init-params model_1_ptm: %zu arrays, keys and shapes match\n",
                    std::filesystem::path(set).filename().string().c_str(), shapes.size());
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no golden template-model params under " << test::golden_dir();
}

// A template model end to end on the bundled small features with random AF2-layout parameters: template
// features from raw ones (the template rows are left out of the MSA outputs), and AF2's "no template
// found" input (all-zero templates, template_mask 0) gives the same result as no template features.
TEST(TemplateFeatures, template_model_runs_and_empty_templates_change_nothing) {
    const std::string feat_path = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/features.h5";
    if (!std::filesystem::exists(feat_path)) GTEST_SKIP() << feat_path << " missing";
    FeatureDict f = io::read_features_h5(feat_path);
    const int64_t N = f.at("aatype").size(1), S = f.at("msa_feat").size(1);
    Model model = test::tiny_template_model(3);
    EXPECT_EQ(model.config().template_pair_blocks, 2);
    EXPECT_EQ(model.config().c_t, 8);
    auto with_templates = [&](const std::map<std::string, Tensor>& raw) { return test::with_templates(f, raw); };
    // Two random templates covering part of the chain.
    std::mt19937 rng(17);
    const std::map<std::string, Tensor> raw = test::random_raw_templates(2, N, rng);
    Prediction p = model.predict(with_templates(raw));
    std::map<std::string, Tensor> o = prediction_output_tensors(p);
    EXPECT_EQ(o.at("representations/msa").shape(), Shape({S, N, 32}));
    EXPECT_EQ(o.at("masked_msa_logits").shape(), Shape({S, N, 23}));
    EXPECT_EQ(o.at("recycles/0/template_angle_embedding").shape(), Shape({4, N, 32}));
    EXPECT_EQ(o.at("recycles/0/template_pair_embedding").shape(), Shape({N, N, 16}));
    for (const auto& [k, t] : o)
        for (double v : test::to_f64(t)) ASSERT_TRUE(std::isfinite(v)) << k;
    EXPECT_GT(test::compare(test::to_f64(o.at("recycles/0/template_pair_embedding")),
                            std::vector<double>(N * N * 16, 0.0), 0, 0, "template pair embedding", 0)
                  .max_abs,
              1e-4);

    // Without kept iterations the template update goes into the pair in place: the same numbers.
    PredictOptions lean;
    lean.keep_recycles = false;
    std::map<std::string, Tensor> q = prediction_output_tensors(model.predict(with_templates(raw), lean));
    for (const char* k : {"representations/pair", "final_atom_positions", "plddt"})
        EXPECT_EQ(test::compare(test::to_f64(q.at(k)), test::to_f64(o.at(k)), 0, 0, k, 0).max_abs, 0.0) << k;

    Prediction none = model.predict(f);  // no template features: no template rows
    Prediction empty = model.predict(with_templates({}));
    std::map<std::string, Tensor> a = prediction_output_tensors(none), b = prediction_output_tensors(empty);
    for (const char* k : {"representations/pair", "representations/msa", "final_atom_positions", "masked_msa_logits"}) {
        auto res = test::compare(test::to_f64(b.at(k)), test::to_f64(a.at(k)), 0, 0, k, 0);
        EXPECT_LE(res.rel(), 1e-4) << k;
    }
    EXPECT_EQ(a.count("recycles/0/template_pair_embedding"), 0u);
}

#include "evoformer/template_embedding.h"

// The template embedding builds its pair features and runs its pointwise attention a block of rows at a
// time: every block size gives the unchunked result up to float32 summation order (|d| <= 1e-5 (|r| + max|r|), the
// GPU op tests' bound: the BLAS kernels of AVX2 CPUs sum a block's rows in another order than the whole's, 2e-6 of
// the largest value after the two pair-stack blocks; AVX-512 ones gave equal bits), and the update written into
// the pair itself equals the update written elsewhere and added, bit for bit. Random AF2-layout parameters, three
// templates (one masked out) with partial atom and pseudo-beta masks.
TEST(TemplateFeatures, template_embedding_in_row_blocks_equals_whole) {
    const ModelDims d = test::tiny_template_model_dims();
    ParamStore store;
    for (auto& [k, t] : init_model_params(ModelPreset::from_name("model_1"), d, 5)) store.insert(k, t);
    ParamLookup get = [&](const std::string& k) { return store.get(k); };
    const TemplateEmbeddingWeights w =
        load_template_embedding(get, "alphafold/alphafold_iteration/evoformer/template_embedding");
    ASSERT_EQ(w.template_pair_stack.size(), 2u);

    std::mt19937 rng(23);
    const int64_t T = 3, N = 11, Cz = d.evoformer.c_z;
    TemplatePairInputs in;
    in.template_aatype = Tensor::empty({T, N}, DType::I64);
    for (int64_t e = 0; e < T * N; ++e) in.template_aatype.data<int64_t>()[e] = static_cast<int64_t>(rng() % 22);
    in.template_all_atom_mask = test::random_mask({T, N, 37}, rng, 0.1f);
    in.template_pseudo_beta = test::randn({T, N, 3}, rng, 8.f);
    in.template_pseudo_beta_mask = test::random_mask({T, N}, rng, 0.2f);
    in.template_mask = Tensor::from_vector({T}, {1.f, 0.f, 1.f});
    const Tensor pair = test::randn({N, N, Cz}, rng), pair_mask = test::random_mask({N, N}, rng, 0.1f);

    Context whole;
    Tensor ref = Tensor::empty({N, N, Cz});
    template_embedding_forward(w, in, pair, pair_mask, ref, false, whole);
    for (int64_t chunk : {1, 3, 4, 11, 40}) {
        Context c;
        c.chunk_size = chunk;
        Tensor out = Tensor::empty({N, N, Cz});
        template_embedding_forward(w, in, pair, pair_mask, out, false, c);
        auto res = test::compare(test::to_f64(out), test::to_f64(ref), 1e-5 * test::max_abs(ref), 1e-5,
                                 "template embedding in blocks", 3);
        EXPECT_EQ(res.bad, 0) << "chunk " << chunk;
        // In place, accumulating: pair + update, rounded as `add` rounds it.
        Tensor expect = pair.clone();
        add(expect, out);
        Tensor inplace = pair.clone();
        template_embedding_forward(w, in, inplace, pair_mask, inplace, true, c);
        EXPECT_EQ(test::compare(test::to_f64(inplace), test::to_f64(expect), 0, 0, "in place", 0).max_abs, 0.0)
            << "chunk " << chunk;
    }
    // The masked template's features do not matter; the others' do.
    TemplatePairInputs moved = in;
    moved.template_pseudo_beta = in.template_pseudo_beta.clone();
    moved.template_pseudo_beta.select(0, 1).copy_from(test::randn({N, 3}, rng, 8.f));
    Tensor out = Tensor::empty({N, N, Cz});
    template_embedding_forward(w, moved, pair, pair_mask, out, false, whole);
    EXPECT_EQ(test::compare(test::to_f64(out), test::to_f64(ref), 0, 0, "masked template moved", 0).max_abs, 0.0);
    moved.template_pseudo_beta.select(0, 0).copy_from(test::randn({N, 3}, rng, 8.f));
    template_embedding_forward(w, moved, pair, pair_mask, out, false, whole);
    EXPECT_GT(test::compare(test::to_f64(out), test::to_f64(ref), 0, 0, "template moved", 0).max_abs, 1e-4);
}
