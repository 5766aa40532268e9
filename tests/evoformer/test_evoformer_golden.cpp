// Every Evoformer-trunk module case of every golden set against the independent AF2 implementation.
#include "evoformer/embedders.h"
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
    r["input_embedder"] = [](const GoldenCase& c, Context& ctx) {
        InputEmbedderWeights w;
        bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
        Tensor tf = c.input("target_feat"), mf = c.input("msa_feat"), ri = c.input_raw("residue_index");
        const int64_t N = tf.size(0), S = mf.size(0);
        Tensor msa = Tensor::empty({S, N, w.preprocess_msa.weights.size(1)});
        Tensor pair = Tensor::empty({N, N, w.pair_activiations.weights.size(1)});
        input_embedder_forward(w, tf, ri, mf, msa, pair, ctx);
        return std::map<std::string, Tensor>{{"outputs/msa_act", msa},
                                             {"outputs/pair_act", pair},
                                             {"intermediates/relpos_one_hot", relpos_one_hot(ri, w.max_relative_feature())}};
    };
    r["recycling_embedder"] = [](const GoldenCase& c, Context& ctx) {
        RecyclingEmbedderWeights w;
        bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
        Tensor prev_row = c.input("prev_msa_first_row"), prev_pair = c.input("prev_pair");
        Tensor pos = c.input("prev_pos"), aatype = c.input_raw("aatype");
        const int64_t N = prev_row.size(0);
        Tensor pb = Tensor::empty({N, 3});  // CB, CA for glycine
        for (int64_t i = 0; i < N; ++i)
            for (int64_t d = 0; d < 3; ++d) pb.at({i, d}) = pos.at({i, aatype.at<int64_t>({i}) == 7 ? 1 : 3, d});
        Tensor row = Tensor::zeros(prev_row.shape()), pair = Tensor::zeros(prev_pair.shape());
        recycling_embedder_forward(w, prev_row, prev_pair, pb, row, pair, ctx);
        return std::map<std::string, Tensor>{{"outputs/msa_first_row_update", row},
                                             {"outputs/pair_update", pair},
                                             {"intermediates/prev_pseudo_beta", pb},
                                             {"intermediates/dgram", recycling_dgram(pb, 15, 3.25f, 20.75f)}};
    };
    r["extra_msa_embedder"] = [](const GoldenCase& c, Context& ctx) {
        ExtraMsaEmbedderWeights w;
        bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
        Tensor em = c.input_raw("extra_msa"), hd = c.input("extra_has_deletion"), dv = c.input("extra_deletion_value");
        Tensor act = Tensor::empty({em.size(0), em.size(1), w.extra_msa_activations.weights.size(1)});
        extra_msa_embedder_forward(w, em, hd, dv, act, ctx);
        return std::map<std::string, Tensor>{{"outputs/extra_msa_act", act},
                                             {"intermediates/extra_msa_feat", extra_msa_feat(em, hd, dv)}};
    };
    r["single_activations"] = [](const GoldenCase& c, Context& ctx) {
        SingleActivationsWeights w;
        bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
        Tensor row = c.input("msa_first_row");
        Tensor single = linear(row, w.single_activations.weights, w.single_activations.bias, ctx.ws).clone();
        return std::map<std::string, Tensor>{{"outputs/single", single}};
    };
    return r;
}

}  // namespace

TEST(Evoformer, golden_module_cases_match) {
    int ran = test::run_golden_cases(trunk_runners());
    ASSERT_GT(ran, 0) << "no golden module cases found under " << test::golden_dir();
}
