// Template models train (AF2 model_1, model_2): the template embedding's backward and the angle rows' backward
// predict central differences along every parameter tensor and the pair, and the whole training step of a
// template model carries gradients into them (directional derivatives of the total loss). A tiny model_1_ptm
// with random parameters on the golden loss case's features plus random templates: float32 throughout, so the
// checks compare against central differences, whose noise the tolerances below allow for.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "evoformer/template_embedding.h"
#include "golden_util.h"
#include "template_model_util.h"
#include "training/training.h"

using namespace axfold;

namespace {

const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

double dot(const Tensor& a, const Tensor& b) {
    const std::vector<double> x = host_float64(a), y = host_float64(b);
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
    return s;
}

// For every parameter tensor of w: the objective's central difference along a random direction against
// <gradient, direction>, within 3 % plus the noise. The step, 1e-4 of the tensor's root mean square (at least
// 1e-4), trades float32's rounding in the objective (noise about 1e-6 of its scale, the same at any step)
// against the truncation, which grows as the step squared: these random templates' stacks are curved enough
// that the features' embedding is 2 % off at 1e-4 and within 0.5 % at 3e-5, where other tensors drown in the
// noise. At least half of the tensors' derivatives must stand 10x above the noise.
template <class W>
void expect_directional_derivatives(const W& w, const W& grads, const std::function<double(const W&)>& objective,
                                    double objective_scale, std::mt19937& rng, const std::string& what) {
    std::vector<std::pair<std::string, Tensor>> params, gs;
    W wc = w, gc = grads;
    wc.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) params.emplace_back(n, t);
    });
    gc.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) gs.emplace_back(n, t);
    });
    ASSERT_EQ(params.size(), gs.size());
    ASSERT_GT(params.size(), 0u);
    const double noise = 2e-6 * objective_scale;
    int checked = 0;
    for (size_t p = 0; p < params.size(); ++p) {
        const std::string& name = params[p].first;  // (named: clang 14 cannot capture a structured binding)
        const Tensor& param = params[p].second;
        const Tensor v = test::randn(param.shape(), rng);
        const std::vector<double> pv = host_float64(param);
        double rms = 0;
        for (double x : pv) rms += x * x;
        rms = std::sqrt(rms / static_cast<double>(std::max<size_t>(pv.size(), 1)));
        const double eps = 1e-4 * std::max(rms, 1.0);
        const double analytic = eps * dot(gs[p].second, v);
        auto at = [&](double sign) {
            W moved = w;
            moved.visit([&](const std::string& n, Tensor& t) {
                if (n != name) return;
                Tensor m = t.clone();
                const std::vector<double> vv = host_float64(v);
                for (int64_t i = 0; i < m.numel(); ++i) m.f32()[i] = static_cast<float>(pv[i] + sign * eps * vv[i]);
                t = m;
            });
            return objective(moved);
        };
        const double fd = (at(1) - at(-1)) / 2;
        EXPECT_NEAR(fd, analytic, 0.03 * std::fabs(analytic) + noise) << what << ": " << name;
        if (std::fabs(analytic) > 10 * noise) ++checked;
    }
    // Most directions are well above the noise (a gradient chained to the wrong tensor would fail them).
    EXPECT_GE(2 * checked, static_cast<int>(params.size())) << what;
}

// w with N(0, 0.2) added to every tensor: init-params' zero biases and unit scales make the embedded features of
// absent residues (all zero) constant vectors, which the stack's layer norms then divide by sqrt(eps), too
// curved for a central difference.
template <class W>
W generic(const W& w, std::mt19937& rng) {
    W g = w;
    g.visit([&](const std::string&, Tensor& t) {
        if (!t.defined()) return;
        Tensor m = t.clone();
        add(m, test::randn(t.shape(), rng, 0.2f));
        t = m;
    });
    return g;
}

struct Templates {
    TemplatePairInputs pair;
    Tensor angle_feat;  // [T, N, 57]
};

Templates random_templates(int64_t T0, int64_t N, std::mt19937& rng) {
    const auto f = pipeline::make_template_features(test::random_raw_templates(T0, N, rng), N, 4);
    Templates t;
    t.pair = {to_int64(f.at("template_aatype")), f.at("template_all_atom_mask"), f.at("template_pseudo_beta"),
              f.at("template_pseudo_beta_mask"), f.at("template_mask")};
    t.angle_feat =
        template_angle_feat(t.pair.template_aatype, f.at("template_torsion_angles_sin_cos"),
                            f.at("template_alt_torsion_angles_sin_cos"), f.at("template_torsion_angles_mask"));
    return t;
}

}  // namespace

// L = <template embedding(pair), c>: the pair stack blocks, the output layer norm, the pointwise attention and
// the feature embedding, along every parameter tensor and along the pair (the attention's queries); without
// and with AF2's training dropout in the pair stacks.
class TemplateBackward : public ::testing::TestWithParam<uint64_t> {};

TEST_P(TemplateBackward, EmbeddingPredictsCentralDifferences) {
    auto rng = test::seeded_rng(31);
    TrunkConstants k;
    k.dropout_key = GetParam();
    const Model model = test::tiny_template_model(5);
    const TemplateEmbeddingWeights w = generic(model.weights().template_embedding, rng);
    ASSERT_GE(w.template_pair_stack.size(), 1u);
    const int64_t N = 9, Cz = model.config().c_z;
    const Templates tp = random_templates(3, N, rng);
    const Tensor pair = test::randn({N, N, Cz}, rng), pair_mask = test::random_mask({N, N}, rng, 0.1f);
    const Tensor c = test::randn({N, N, Cz}, rng);
    auto objective_at = [&](const TemplateEmbeddingWeights& ww, const Tensor& p) {
        Tensor out = Tensor::empty({N, N, Cz});
        Context ctx;
        template_embedding_forward(ww, tp.pair, p, pair_mask, out, false, ctx, k);
        return dot(out, c);
    };
    if (k.dropout_key) {  // the masks are on
        Tensor plain = Tensor::empty({N, N, Cz}), dropped = Tensor::empty({N, N, Cz});
        Context cx;
        template_embedding_forward(w, tp.pair, pair, pair_mask, plain, false, cx);
        template_embedding_forward(w, tp.pair, pair, pair_mask, dropped, false, cx, k);
        EXPECT_GT(test::rel_diff(dropped, plain), 1e-3);
    }
    TemplateEmbeddingWeights grads = zeros_like_weights(w);
    Tensor dpair = test::randn({N, N, Cz}, rng);
    const Tensor dpair0 = dpair.clone();
    Context ctx;
    template_embedding_backward(w, tp.pair, pair, pair_mask, c, dpair, grads, ctx, k);
    const double scale = std::sqrt(static_cast<double>(N * N * Cz));
    expect_directional_derivatives<TemplateEmbeddingWeights>(
        w, grads, [&](const TemplateEmbeddingWeights& ww) { return objective_at(ww, pair); }, scale, rng,
        "template embedding");
    // Along the pair: dL/dpair was added to what dpair held.
    const Tensor v = test::randn(pair.shape(), rng);
    const double eps = 1e-3;
    Tensor plus = pair.clone(), minus = pair.clone();
    add(plus, v, static_cast<float>(eps));
    add(minus, v, static_cast<float>(-eps));
    const double fd = (objective_at(w, plus) - objective_at(w, minus)) / 2;
    const double analytic = eps * (dot(dpair, v) - dot(dpair0, v));
    EXPECT_NEAR(fd, analytic, 0.01 * std::fabs(analytic) + 2e-6 * scale);
    EXPECT_GT(std::fabs(analytic), 1e-4 * scale);
    // No template present: the embedding is zero and so is every gradient.
    TemplatePairInputs none = tp.pair;
    none.template_mask = Tensor::zeros(tp.pair.template_mask.shape());
    TemplateEmbeddingWeights g0 = zeros_like_weights(w);
    Tensor d0 = Tensor::zeros(pair.shape());
    template_embedding_backward(w, none, pair, pair_mask, c, d0, g0, ctx, k);
    double sum = test::max_abs(d0);
    g0.visit([&](const std::string&, Tensor& t) { sum += test::max_abs(t); });
    EXPECT_EQ(sum, 0.0);
}

INSTANTIATE_TEST_SUITE_P(Dropout, TemplateBackward, ::testing::Values(uint64_t(0), uint64_t(0x5eed)),
                         [](const auto& info) { return info.param ? "dropout" : "plain"; });

// The template angle rows: L = <template_projection(relu(template_single_embedding(feat))), c>.
TEST(TemplateAngleBackward, AngleEmbedderPredictsCentralDifferences) {
    auto rng = test::seeded_rng(32);
    const Model model = test::tiny_template_model(6);
    const TemplateAngleEmbedderWeights w = generic(model.weights().template_angle_embedder, rng);
    const int64_t N = 11, Cm = model.config().c_m;
    const Templates tp = random_templates(4, N, rng);
    const Tensor c = test::randn({4, N, Cm}, rng);
    TemplateAngleEmbedderWeights grads = zeros_like_weights(w);
    Context ctx;
    template_angle_embedder_backward(w, tp.angle_feat, c, grads, ctx);
    expect_directional_derivatives<TemplateAngleEmbedderWeights>(
        w, grads,
        [&](const TemplateAngleEmbedderWeights& ww) {
            Tensor act = Tensor::empty({4, N, Cm});
            Context cx;
            template_angle_embedder_forward(ww, tp.angle_feat, act, cx);
            return dot(act, c);
        },
        std::sqrt(static_cast<double>(c.numel())), rng, "template angle embedder");
}

// A template model's whole training step (the golden loss case's features with random templates): its last
// iteration is the prediction's, and the template parameters' gradients predict the total loss's central
// differences. The trunk's terms only (distogram, masked MSA, experimentally resolved), as in
// Training.golden_loss_case_step: AF2's gradient stops at the structure module's rotations and the pLDDT and TM
// targets, which a finite difference would see. Within 10 %: this random tiny model's loss is rough (at steps of
// 3e-4 to 3e-3 of the parameters the differences move by several %, and the angle rows' weight directions,
// whose derivatives are small, by more than their size: their biases are probed instead); a gradient chained to
// the wrong tensor is off by far more. The modules themselves are checked at 3 % above.
TEST(Training, template_model_step) {
    auto rng = test::seeded_rng(33);
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const Model model = test::tiny_template_model(7);
    const FeatureDict base = test::read_group(cases, "features"), batch = test::read_group(cases, "batch");
    const int64_t N = base.at("aatype").size(1);
    const FeatureDict features = test::with_templates(base, test::random_raw_templates(3, N, rng));
    // Every parameter made generic (see `generic`), in place (the model's weights view its store): with
    // init-params' zero biases this tiny network's loss is too rough for central differences.
    ModelWeights mw = model.weights();
    mw.visit([&](const std::string&, Tensor& t) { add(t, test::randn(t.shape(), rng, 0.2f)); });
    LossConfig trunk_terms;
    trunk_terms.fape.weight = trunk_terms.plddt_loss.weight = trunk_terms.supervised_chi.weight = 0;
    trunk_terms.tm.weight = trunk_terms.violation.weight = 0;
    Context ctx;
    const RecycledInputs recycled = recycled_inputs(model, features, ctx);
    const TrainingStep step = training_step(model, features, batch, trunk_terms, ctx, &recycled);
    EXPECT_TRUE(std::isfinite(step.loss.total));
    // The last iteration's outputs are the prediction's (the same forward, templates included).
    PredictOptions po;
    const Prediction p = model.predict(features, po, ctx);
    EXPECT_LE(test::rel_diff(step.outputs.at("distogram_logits"), p.heads.distogram_logits), 1e-5);
    EXPECT_LE(test::rel_diff(step.outputs.at("masked_msa_logits"), p.heads.masked_msa_logits), 1e-5);

    struct Probe {
        std::string name;  // ModelWeights::visit's
        Tensor param, grad;
    };
    std::vector<Probe> probes;
    ModelWeights pw = model.weights(), gw = step.grads;
    std::map<std::string, Tensor> by_name;
    gw.visit([&](const std::string& n, Tensor& t) { by_name[n] = t; });
    pw.visit([&](const std::string& n, Tensor& t) {
        for (const char* key : {"template_embedding/embedding2d//weights",
                                "template_embedding/template_pair_stack/0/triangle_multiplication_outgoing/"
                                "left_projection//weights",
                                "template_embedding/template_pair_stack/0/triangle_attention_starting_node/"
                                "attention//query_w",
                                "template_embedding/output_layer_norm//scale", "template_embedding/attention//output_w",
                                "template_angle_embedder/template_single_embedding//bias",
                                "template_angle_embedder/template_projection//bias"})
            if (n == key) probes.push_back({n, t, by_name.at(n)});
    });
    ASSERT_EQ(probes.size(), 7u) << "template parameter names changed";
    for (const Probe& pr : probes) {
        const Tensor v = test::randn(pr.param.shape(), rng);
        const std::vector<double> pv = host_float64(pr.param), vv = host_float64(v);
        double rms = 0;
        for (double x : pv) rms += x * x;
        rms = std::sqrt(rms / static_cast<double>(pv.size()));
        const double eps = 1e-3 * std::max(rms, 1e-1);
        const double analytic = eps * dot(pr.grad, v);
        auto total_at = [&](double sign) {
            for (size_t i = 0; i < vv.size(); ++i) pr.param.f32()[i] = static_cast<float>(pv[i] + sign * eps * vv[i]);
            Context c;
            const double t = training_step(model, features, batch, trunk_terms, c, &recycled).loss.total;
            for (size_t i = 0; i < vv.size(); ++i) pr.param.f32()[i] = static_cast<float>(pv[i]);
            return t;
        };
        const double fd = (total_at(1) - total_at(-1)) / 2;
        std::printf("  d total along %-100s analytic %+.4e, central difference %+.4e\n", pr.name.c_str(), analytic, fd);
        EXPECT_NEAR(fd, analytic, 0.1 * std::fabs(analytic)) << pr.name;
        EXPECT_GT(std::fabs(analytic), 1e-6) << pr.name << ": too small a probe";
    }
}
