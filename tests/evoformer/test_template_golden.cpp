// The template modules (pair features and embedding, template pair stack block, pointwise attention, the
// whole template embedding and the template angle rows) against the independent AF2 implementation's
// `templates_seed5` module cases. The set lives in ../shared/golden (AXFOLD_GOLDEN_DIR); with the bundled
// tests/data/golden the runners find no template case and the test only checks the invariants below.
#include <random>

#include "evoformer/template_embedding.h"
#include "golden_util.h"

using namespace axfold;
using test::GoldenCase;

namespace {

// Stacks per-template [N, N, C] observations into a [T, N, N, C] tensor.
struct PerTemplate {
    std::map<std::string, Tensor> stacked;
    int64_t T;
    void put(const std::string& key, int64_t t, const Tensor& a) {
        auto it = stacked.find(key);
        if (it == stacked.end()) {
            Shape s = a.shape();
            s.insert(s.begin(), T);
            it = stacked.emplace(key, Tensor::zeros(s)).first;
        }
        it->second.select(0, t).copy_from(a);
    }
};

std::map<std::string, test::GoldenRunner> template_runners() {
    std::map<std::string, test::GoldenRunner> r;
    r["template_pair_embedding"] = [](const GoldenCase& c, Context& ctx) {
        LinearWeights w;
        bind_params(w, c.scope, c.lookup());
        Tensor aa = c.input_raw("template_aatype"), am = c.input("template_all_atom_mask"),
               pb = c.input("template_pseudo_beta"), pbm = c.input("template_pseudo_beta_mask");
        const int64_t T = aa.size(0);
        PerTemplate out{{}, T};
        for (int64_t t = 0; t < T; ++t) {
            Tensor pb2, bb2;
            Tensor feat = template_pair_feat(aa.select(0, t), am.select(0, t), pb.select(0, t), pbm.select(0, t), {},
                                             &pb2, &bb2);
            Tensor act = linear(feat, w.weights, w.bias, ctx.ws).clone();
            out.put("intermediates/template_pair_feat", t, feat);
            out.put("intermediates/pseudo_beta_mask_2d", t, pb2);
            out.put("intermediates/backbone_mask_2d", t, bb2);
            out.put("outputs/template_pair_act", t, act);
        }
        return out.stacked;
    };
    r["template_pair_stack_block"] = [](const GoldenCase& c, Context& ctx) {
        TemplatePairStackBlockWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        Tensor act = c.input("template_pair_act").clone(), mask = c.input("pair_mask");
        const int64_t T = act.size(0);
        PerTemplate out{{}, T};
        for (int64_t t = 0; t < T; ++t) {
            Tensor a = act.select(0, t);
            template_pair_stack_block_forward(w, a, mask, ctx, {}, [&](const char* name, int64_t, const Tensor& x) {
                out.put(std::string("intermediates/") + name, t, x);
            });
        }
        out.stacked["outputs/template_pair_act"] = act;
        return out.stacked;
    };
    r["template_pointwise_attention"] = [](const GoldenCase& c, Context& ctx) {
        AttentionWeights w;
        w.gating = false;
        bind_params(w, c.scope, c.lookup());
        Tensor pair = c.input("pair_act");
        Tensor out = Tensor::empty(pair.shape());
        template_pointwise_attention_forward(w, pair, c.input("template_pair_act"), c.input("template_mask"), out,
                                             false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}};
    };
    r["template_embedding"] = [](const GoldenCase& c, Context& ctx) {
        TemplateEmbeddingWeights w = load_template_embedding(c.lookup(), c.scope);
        TemplatePairInputs in{c.input_raw("template_aatype"), c.input("template_all_atom_mask"),
                              c.input("template_pseudo_beta"), c.input("template_pseudo_beta_mask"),
                              c.input("template_mask")};
        Tensor pair = c.input("pair_act");
        Tensor out = Tensor::empty(pair.shape());
        PerTemplate obs{{}, in.template_aatype.size(0)};
        template_embedding_forward(w, in, pair, c.input("pair_mask"), out, false, ctx, {}, {},
                                   [&](const char* name, int64_t t, const Tensor& x) {
                                       obs.put(std::string("intermediates/") + name, t, x);
                                   });
        obs.stacked["outputs/template_pair_embedding"] = out;
        return obs.stacked;
    };
    r["template_angle_embedder"] = [](const GoldenCase& c, Context& ctx) {
        TemplateAngleEmbedderWeights w;
        bind_params(w, c.scope, c.lookup());
        Tensor mask = c.input("template_torsion_angles_mask");
        Tensor feat = template_angle_feat(c.input_raw("template_aatype"), c.input("template_torsion_angles_sin_cos"),
                                          c.input("template_alt_torsion_angles_sin_cos"), mask);
        Tensor act = Tensor::empty({feat.size(0), feat.size(1), w.template_projection.weights.size(1)});
        template_angle_embedder_forward(w, feat, act, ctx);
        return std::map<std::string, Tensor>{{"outputs/template_angle_act", act},
                                             {"outputs/template_msa_mask", template_msa_mask(mask)},
                                             {"intermediates/template_angle_feat", feat}};
    };
    return r;
}

}  // namespace

TEST(Templates, golden_template_module_cases_match) {
    int ran = test::run_golden_cases(template_runners());
    if (ran == 0) GTEST_SKIP() << "no template module cases under " << test::golden_dir() << " (templates_seed5 lives in "
                               << "../shared/golden: set AXFOLD_GOLDEN_DIR)";
    EXPECT_EQ(ran, 5);
}

// Random weights: a masked template contributes nothing, an all-masked template set gives zero, and the
// update written into the pair itself equals the update written elsewhere and added.
TEST(Templates, pointwise_attention_masking_invariants) {
    std::mt19937 rng(11);
    const int64_t T = 3, N = 5, Ct = 8, Cz = 12, H = 2, C = 4;
    AttentionWeights w;
    w.gating = false;
    w.query_w = test::randn({Cz, H, C}, rng, 0.3f);
    w.key_w = test::randn({Ct, H, C}, rng, 0.3f);
    w.value_w = test::randn({Ct, H, C}, rng, 0.3f);
    w.output_w = test::randn({H, C, Cz}, rng, 0.3f);
    w.output_b = test::randn({Cz}, rng, 0.3f);
    Tensor pair = test::randn({N, N, Cz}, rng), act = test::randn({T, N, N, Ct}, rng);
    Context ctx;
    Tensor mask = Tensor::from_vector({T}, {1.f, 0.f, 1.f});
    Tensor a = Tensor::empty(pair.shape());
    template_pointwise_attention_forward(w, pair, act, mask, a, false, ctx);
    // Changing the masked template changes nothing.
    Tensor act2 = act.clone();
    act2.select(0, 1).copy_from(test::randn({N, N, Ct}, rng));
    Tensor b = Tensor::empty(pair.shape());
    template_pointwise_attention_forward(w, pair, act2, mask, b, false, ctx);
    auto res = test::compare(test::to_f64(b), test::to_f64(a), 1e-6, 1e-5, "masked template", 3);
    EXPECT_EQ(res.bad, 0);
    // But changing an unmasked one does.
    act2.select(0, 0).copy_from(test::randn({N, N, Ct}, rng));
    template_pointwise_attention_forward(w, pair, act2, mask, b, false, ctx);
    EXPECT_GT(test::compare(test::to_f64(b), test::to_f64(a), 0, 0, "unmasked template", 0).max_abs, 1e-3);
    // No template: no update.
    Tensor zero_mask = Tensor::zeros({T});
    Tensor z = test::randn({N, N, Cz}, rng);
    Tensor z0 = z.clone();
    template_pointwise_attention_forward(w, pair, act, zero_mask, z, true, ctx);
    EXPECT_EQ(test::compare(test::to_f64(z), test::to_f64(z0), 0, 0, "no templates", 0).max_abs, 0.0);
}
