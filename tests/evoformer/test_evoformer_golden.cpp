// Every Evoformer-trunk module case of every golden set against the independent AF2 implementation.
#include "evoformer/evoformer_stack.h"
#include "golden_util.h"

using namespace axfold;
using test::GoldenCase;

namespace {

std::map<std::string, test::GoldenRunner> trunk_runners() {
    std::map<std::string, test::GoldenRunner> r;
    auto pair_mask_case = [](auto forward) {
        return [forward](const GoldenCase& c, Context& ctx) {
            Tensor z = c.input("pair_act"), mask = c.input("pair_mask");
            Tensor out = Tensor::empty(z.shape());
            forward(c, z, mask, out, ctx);
            return std::map<std::string, Tensor>{{"outputs/update", out}};
        };
    };
    r["msa_row_attention_with_pair_bias"] = [](const GoldenCase& c, Context& ctx) {
        MsaRowAttentionWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        Tensor m = c.input("msa_act");
        Tensor out = Tensor::empty(m.shape());
        msa_row_attention_forward(w, m, c.input("pair_act"), c.input("msa_mask"), out, false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}};
    };
    r["msa_column_attention"] = [](const GoldenCase& c, Context& ctx) {
        MsaColumnAttentionWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        Tensor m = c.input("msa_act");
        Tensor out = Tensor::empty(m.shape());
        msa_column_attention_forward(w, m, c.input("msa_mask"), out, false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}};
    };
    r["msa_column_global_attention"] = [](const GoldenCase& c, Context& ctx) {
        MsaColumnGlobalAttentionWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        Tensor m = c.input("msa_act");
        Tensor out = Tensor::empty(m.shape());
        msa_column_global_attention_forward(w, m, c.input("msa_mask"), out, false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}};
    };
    r["msa_transition"] = [](const GoldenCase& c, Context& ctx) {
        TransitionWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        Tensor m = c.input("msa_act");
        Tensor out = Tensor::empty(m.shape());
        transition_forward(w, m, out, false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}};
    };
    r["outer_product_mean"] = [](const GoldenCase& c, Context& ctx) {
        OuterProductMeanWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        Tensor m = c.input("msa_act");
        Tensor out = Tensor::empty({m.size(1), m.size(1), w.output_b.size(0)});
        outer_product_mean_forward(w, m, c.input("msa_mask"), out, false, ctx);
        return std::map<std::string, Tensor>{{"outputs/update", out}};
    };
    for (bool incoming : {false, true}) {
        r[incoming ? "triangle_multiplication_incoming" : "triangle_multiplication_outgoing"] =
            pair_mask_case([incoming](const GoldenCase& c, Tensor& z, Tensor& mask, Tensor& out, Context& ctx) {
                TriangleMultiplicationWeights w;
                bind_params(w, c.scope, c.lookup(), 0);
                triangle_multiplication_forward(w, incoming, z, mask, out, false, ctx);
            });
    }
    for (bool ending : {false, true}) {
        r[ending ? "triangle_attention_ending_node" : "triangle_attention_starting_node"] =
            pair_mask_case([ending](const GoldenCase& c, Tensor& z, Tensor& mask, Tensor& out, Context& ctx) {
                TriangleAttentionWeights w;
                bind_params(w, c.scope, c.lookup(), 0);
                triangle_attention_forward(w, ending, z, mask, out, false, ctx);
            });
    }
    r["pair_transition"] = pair_mask_case([](const GoldenCase& c, Tensor& z, Tensor&, Tensor& out, Context& ctx) {
        TransitionWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        transition_forward(w, z, out, false, ctx);
    });
    for (bool extra : {false, true}) {
        r[extra ? "extra_msa_block" : "evoformer_block"] = [extra](const GoldenCase& c, Context& ctx) {
            EvoformerBlockWeights w;
            w.is_extra_msa = extra;
            bind_params(w, c.scope, c.lookup(), 0);
            Tensor m = c.input("msa_act").clone(), z = c.input("pair_act").clone();
            std::map<std::string, Tensor> got;
            evoformer_block_forward(w, m, z, c.input("msa_mask"), c.input("pair_mask"), ctx, {},
                                    [&](const char* name, const Tensor& t) {
                                        std::string key = std::string("intermediates/") + name;
                                        if (c.file.has_dataset(c.name + "/" + key)) got[key] = t.clone();
                                    });
            got["outputs/msa_act"] = m;
            got["outputs/pair_act"] = z;
            return got;
        };
    }
    return r;
}

}  // namespace

TEST(Evoformer, golden_module_cases_match) {
    int ran = test::run_golden_cases(trunk_runners());
    ASSERT_GT(ran, 0) << "no golden module cases found under " << test::golden_dir();
}
