// Template torsion angles, pseudo-beta and the raw -> processed template features against the golden
// `templates_seed5` set (its module case `template_torsion_angles` and its features.h5 made from
// raw_features.h5), plus invariants on random atoms. The set lives in ../shared/golden
// (AXFOLD_GOLDEN_DIR); with the bundled tests/data/golden only the invariants run.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "golden_util.h"
#include "structure/template_features.h"

using namespace axfold;
using test::GoldenCase;

TEST(TemplateFeatures, golden_template_torsion_angles_match) {
    std::map<std::string, test::GoldenRunner> r;
    r["template_torsion_angles"] = [](const GoldenCase& c, Context&) {
        TorsionAngles t = atom37_to_torsion_angles(c.input_raw("template_aatype"), c.input("template_all_atom_positions"),
                                                   c.input("template_all_atom_mask"));
        return std::map<std::string, Tensor>{{"outputs/torsion_angles_sin_cos", t.sin_cos},
                                             {"outputs/alt_torsion_angles_sin_cos", t.alt_sin_cos},
                                             {"outputs/torsion_angles_mask", t.mask}};
    };
    // float64 evaluation on the same float32 atoms: only the final float32 rounding differs, including
    // at the entries that are ill-conditioned in float32.
    test::GoldenTolerance tol;
    tol.rel_angles = 1e-5;
    if (test::run_golden_cases(r, tol) == 0)
        GTEST_SKIP() << "no template_torsion_angles case under " << test::golden_dir();
}

TEST(TemplateFeatures, golden_raw_to_processed_template_features_match) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("raw_features.h5")) {
        const std::string name = std::filesystem::path(set).filename().string();
        io::Hdf5File raw_file(set + "/raw_features.h5"), feat_file(set + "/features.h5");
        std::map<std::string, Tensor> raw;
        for (const char* k : {"template_aatype", "template_all_atom_masks", "template_all_atom_positions",
                              "template_sum_probs"})
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

// A rigid motion of the atoms leaves every torsion unchanged; pi-periodic chis flip sign in the alt
// angles; the pre-omega and phi of residue 0 are masked; a missing atom masks exactly its torsions.
TEST(TemplateFeatures, torsion_angle_invariants) {
    std::mt19937 rng(5);
    const int64_t N = 9;
    Tensor aatype = Tensor::empty({N}, DType::I64);
    const int64_t types[N] = {0, 3, 4, 13, 19, 7, 1, 6, 18};  // ALA ASP CYS PHE VAL GLY ARG GLU TYR
    for (int64_t i = 0; i < N; ++i) aatype.data<int64_t>()[i] = types[i];
    Tensor pos = test::randn({N, 37, 3}, rng, 3.f);
    Tensor mask = Tensor::full({N, 37}, 1.f);
    TorsionAngles a = atom37_to_torsion_angles(aatype, pos, mask);
    // Rotation about a random axis and a translation.
    const double ang = 0.7, ax[3] = {0.48, -0.6, 0.64};
    double R[3][3];
    const double c = std::cos(ang), s = std::sin(ang), C = 1 - c;
    const double x = ax[0], y = ax[1], z = ax[2];
    const double Rm[3][3] = {{c + x * x * C, x * y * C - z * s, x * z * C + y * s},
                             {y * x * C + z * s, c + y * y * C, y * z * C - x * s},
                             {z * x * C - y * s, z * y * C + x * s, c + z * z * C}};
    std::memcpy(R, Rm, sizeof(R));
    Tensor moved = Tensor::empty(pos.shape());
    for (int64_t k = 0; k < N * 37; ++k)
        for (int i = 0; i < 3; ++i) {
            double v = 5.0 * (i + 1);
            for (int j = 0; j < 3; ++j) v += R[i][j] * pos.f32()[k * 3 + j];
            moved.f32()[k * 3 + i] = static_cast<float>(v);
        }
    TorsionAngles b = atom37_to_torsion_angles(aatype, moved, mask);
    // Residue 0's pre-omega and phi use the absent previous residue's atoms, fixed at the origin.
    for (Tensor* t : {&a.sin_cos, &b.sin_cos})
        for (int k = 0; k < 2; ++k) t->at({0, k, 0}) = t->at({0, k, 1}) = 0.f;
    EXPECT_EQ(test::compare(test::to_f64(b.sin_cos), test::to_f64(a.sin_cos), 1e-5, 0, "rigid motion", 3).bad, 0);
    EXPECT_EQ(a.mask.at({0, 0}), 0.f);
    EXPECT_EQ(a.mask.at({0, 1}), 0.f);
    EXPECT_EQ(a.mask.at({1, 0}), 1.f);
    // ASP chi2 is pi-periodic: alt = -angle; chi1 unchanged.
    EXPECT_FLOAT_EQ(a.alt_sin_cos.at({1, 4, 0}), -a.sin_cos.at({1, 4, 0}));
    EXPECT_FLOAT_EQ(a.alt_sin_cos.at({1, 3, 0}), a.sin_cos.at({1, 3, 0}));
    EXPECT_EQ(a.mask.at({0, 3}), 0.f);  // ALA has no chi
    EXPECT_EQ(a.mask.at({6, 6}), 1.f);  // ARG has chi4
    // Unit length where the frame is well defined.
    for (int64_t i = 1; i < N; ++i)
        for (int k = 0; k < 3; ++k)
            EXPECT_NEAR(std::hypot(a.sin_cos.at({i, k, 0}), a.sin_cos.at({i, k, 1})), 1.0, 1e-5);
    // Dropping O masks psi only.
    Tensor m2 = mask.clone();
    m2.at({4, 4}) = 0.f;
    TorsionAngles d = atom37_to_torsion_angles(aatype, pos, m2);
    EXPECT_EQ(d.mask.at({4, 2}), 0.f);
    EXPECT_EQ(d.mask.at({4, 1}), 1.f);
    // Pseudo-beta: CA for glycine, CB otherwise.
    PseudoBeta pb = pseudo_beta_with_mask(aatype, pos, mask);
    EXPECT_EQ(pb.positions.at({5, 0}), pos.at({5, 1, 0}));
    EXPECT_EQ(pb.positions.at({4, 2}), pos.at({4, 3, 2}));
    EXPECT_EQ(hhblits_to_af2_aatype(1), 4);   // C
    EXPECT_EQ(hhblits_to_af2_aatype(21), 21);  // gap
}

#include "io/features.h"
#include "structure/model.h"
#include "structure/model_params.h"
#include "template_model_util.h"

// init-params for model_1_ptm has exactly the keys and shapes of the golden template model's parameters.
TEST(TemplateFeatures, golden_init_params_template_shapes_match) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("params.npz")) {
        ParamStore golden = ParamStore::load(set + "/params.npz");
        if (!golden.has("alphafold/alphafold_iteration/evoformer/template_embedding/attention//query_w")) continue;
        ModelDims d;
        d.evoformer_blocks = golden.get("alphafold/alphafold_iteration/evoformer/evoformer_iteration/"
                                        "msa_transition/input_layer_norm//scale").size(0);
        d.extra_msa_blocks = golden.get("alphafold/alphafold_iteration/evoformer/extra_msa_stack/"
                                        "msa_transition/input_layer_norm//scale").size(0);
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
// time: every block size gives the unchunked result (1e-6 relative), and the update written into the pair
// itself equals the update written elsewhere and added, bit for bit. Random AF2-layout parameters, three
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
        auto res = test::compare(test::to_f64(out), test::to_f64(ref), 0, 1e-6, "template embedding in blocks", 3);
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
