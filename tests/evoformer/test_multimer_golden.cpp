// AlphaFold-Multimer's trunk modules against the multimer golden sets' module cases (golden README, "Multimer
// sets"): the relative encoding and input embedder, the fused triangle multiplications and the blocks with the
// outer product mean first.
#include "evoformer/embedders.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/template_embedding_multimer.h"
#include "golden_util.h"
#include "structure/torsion_angles.h"

using namespace axfold;
using test::GoldenCase;

namespace {

const std::string kEvoformer = "alphafold/alphafold_iteration/evoformer/";

std::map<std::string, test::GoldenRunner> multimer_trunk_runners() {
    std::map<std::string, test::GoldenRunner> r;
    for (bool incoming : {false, true}) {
        const std::string name = incoming ? "triangle_multiplication_incoming" : "triangle_multiplication_outgoing";
        r[name] = [incoming, name](const GoldenCase& c, Context& ctx) {
            TriangleMultiplicationWeights w;
            w.fused = true;
            bind_params(w, kEvoformer + "evoformer_iteration/" + name, c.lookup());
            Tensor z = c.input("pair_act"), out = Tensor::empty(z.shape());
            triangle_multiplication_forward(w, incoming, z, c.input("pair_mask"), out, false, ctx);
            return std::map<std::string, Tensor>{{"outputs/update", out}};
        };
    }
    for (bool extra : {false, true}) {
        r[extra ? "extra_msa_block" : "evoformer_block"] = [extra](const GoldenCase& c, Context& ctx) {
            const EvoformerBlockWeights w = load_evoformer_block(
                c.lookup(), kEvoformer + (extra ? "extra_msa_stack" : "evoformer_iteration"), extra, true);
            Tensor m = c.input("msa_act").clone(), z = c.input("pair_act").clone();
            std::map<std::string, Tensor> got;
            evoformer_block_forward(w, m, z, c.input("msa_mask"), c.input("pair_mask"), ctx, {},
                                    [&](const char* name, const Tensor& t) {
                                        const std::string key = std::string("intermediates/") + name;
                                        if (c.file.has_dataset(c.name + "/" + key)) got[key] = t.clone();
                                    });
            got["outputs/msa_act"] = m;
            got["outputs/pair_act"] = z;
            if (extra) {
                // OpenFold v2.2.0's extra-MSA block multiplies the MSA transition's update by the MSA mask, which
                // AF2 (and its Evoformer block, and our both) does not: only masked entries differ, and nothing
                // downstream reads them (every later module masks them out), so they are left out here.
                for (const char* k : {"intermediates/msa_after_transition", "outputs/msa_act"})
                    got[std::string("mask:") + k] = c.input("msa_mask");
            }
            return got;
        };
    }
    auto chains = [](const GoldenCase& c) {
        return ChainIds{c.input_raw("asym_id"), c.input_raw("entity_id"), c.input_raw("sym_id")};
    };
    r["relative_position_encoding"] = [chains](const GoldenCase& c, Context& ctx) {
        LinearWeights w;
        bind_params(w, kEvoformer + "~_relative_encoding/position_activations", c.lookup());
        const Tensor f = multimer_relpos_features(c.input_raw("residue_index"), chains(c));
        return std::map<std::string, Tensor>{{"intermediates/relpos_features", f},
                                             {"outputs/pair_update", linear(f, w.weights, w.bias, ctx.ws).clone()}};
    };
    r["input_embedder"] = [chains](const GoldenCase& c, Context& ctx) {
        InputEmbedderWeights w;
        w.multimer = true;
        bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
        const Tensor tf = c.input("target_feat"), mf = c.input("msa_feat");
        const int64_t N = tf.size(0), S = mf.size(0);
        Tensor msa = Tensor::empty({S, N, w.preprocess_msa.weights.size(1)});
        Tensor pair = Tensor::empty({N, N, w.position_activations.weights.size(1)});
        const ChainIds ids = chains(c);
        input_embedder_forward(w, tf, c.input_raw("residue_index"), mf, msa, pair, ctx, &ids);
        return std::map<std::string, Tensor>{{"outputs/msa_act", msa}, {"outputs/pair_act", pair}};
    };
    // The template rows: chis from the template atoms (structure/torsion_angles.h), their features, the embedder.
    auto template_rows = [](const GoldenCase& c, Context& ctx, std::map<std::string, Tensor>& got,
                            const std::string& rows_name, const std::string& mask_name) {
        TemplateAngleEmbedderWeights w;
        bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
        const Tensor aatype = c.input_raw("template_aatype");
        const TorsionAngles ta =
            atom37_to_torsion_angles(aatype, c.input("template_all_atom_positions"), c.input("template_all_atom_mask"));
        const Tensor feat = multimer_template_single_feat(aatype, ta.sin_cos, ta.mask);
        Tensor rows = Tensor::empty({aatype.size(0), aatype.size(1), w.template_projection.weights.size(1)});
        template_angle_embedder_forward(w, feat, rows, ctx);
        got["outputs/" + rows_name] = rows;
        got["outputs/" + mask_name] = ta.mask.select(2, 3).contiguous();  // the chi1 mask
        if (c.file.has_dataset(c.name + "/intermediates/template_single_features"))
            got["intermediates/template_single_features"] = feat;
    };
    r["template_single_embedding"] = [template_rows](const GoldenCase& c, Context& ctx) {
        std::map<std::string, Tensor> got;
        template_rows(c, ctx, got, "template_single_embedding", "template_msa_mask");
        return got;
    };
    r["template_embedding"] = [template_rows](const GoldenCase& c, Context& ctx) {
        const MultimerTemplateEmbeddingWeights w =
            load_multimer_template_embedding(c.lookup(), kEvoformer + "template_embedding");
        MultimerTemplateInputs in;
        in.template_aatype = c.input_raw("template_aatype");
        in.template_all_atom_positions = c.input("template_all_atom_positions");
        in.template_all_atom_mask = c.input("template_all_atom_mask");
        const PseudoBeta pb =
            pseudo_beta_with_mask(in.template_aatype, in.template_all_atom_positions, in.template_all_atom_mask);
        in.template_pseudo_beta = pb.positions;
        in.template_pseudo_beta_mask = pb.mask;
        in.asym_id = c.input_raw("asym_id");
        const Tensor z = c.input("pair_act");
        Tensor out = Tensor::empty(z.shape());
        std::map<std::string, Tensor> got;
        const int64_t T = in.template_aatype.size(0), N = z.size(0);
        Tensor embedded = Tensor::empty({T, N, N, w.c_t()}), after = Tensor::empty({T, N, N, w.c_t()});
        multimer_template_embedding_forward(w, in, z, c.input("pair_mask"), out, false, ctx, {},
                                            [&](const char* name, int64_t t, const Tensor& x) {
                                                const std::string n = name;
                                                if (n == "template_pair_act_embedded")
                                                    embedded.select(0, t).copy_from(x);
                                                if (n == "template_pair_act_after_stack")
                                                    after.select(0, t).copy_from(x);
                                                if (n == "template_pair_mean_before_relu")
                                                    got["intermediates/" + n] = x.clone();
                                            });
        got["intermediates/template_pair_act_embedded"] = embedded;
        got["intermediates/template_pair_act_after_stack"] = after;
        got["intermediates/template_pseudo_beta_mask"] = pb.mask;
        got["outputs/template_pair_embedding"] = out;
        template_rows(c, ctx, got, "template_single_embedding", "template_mask_rows");
        return got;
    };
    return r;
}

}  // namespace

TEST(Multimer, golden_trunk_module_cases_match) {
    const int ran = test::run_multimer_golden_cases(multimer_trunk_runners());
    if (ran == 0) GTEST_SKIP() << "no multimer golden set under " << test::golden_dir();
    EXPECT_EQ(ran % 8, 0);
}

// The fused weights are the two sides' weights side by side: the same module with them split into
// left_projection/right_projection/left_gate/right_gate gives the same update to the bit.
TEST(Multimer, fused_triangle_multiplication_equals_its_halves) {
    std::mt19937 rng(4);
    const int64_t N = 7, Cz = 6, C = 5;
    TriangleMultiplicationWeights f;
    f.fused = true;
    f.layer_norm_input = {test::randn({Cz}, rng), test::randn({Cz}, rng)};
    f.projection = {test::randn({Cz, 2 * C}, rng), test::randn({2 * C}, rng)};
    f.gate = {test::randn({Cz, 2 * C}, rng), test::randn({2 * C}, rng)};
    f.center_layer_norm = {test::randn({C}, rng), test::randn({C}, rng)};
    f.output_projection = {test::randn({C, Cz}, rng), test::randn({Cz}, rng)};
    f.gating_linear = {test::randn({Cz, Cz}, rng), test::randn({Cz}, rng)};
    TriangleMultiplicationWeights s = f;
    s.fused = false;
    auto half = [](const LinearWeights& w, int side, int64_t c) {
        return LinearWeights{w.weights.slice(1, side * c, (side + 1) * c).contiguous(),
                             w.bias.slice(0, side * c, (side + 1) * c).contiguous()};
    };
    s.left_projection = half(f.projection, 0, C);
    s.right_projection = half(f.projection, 1, C);
    s.left_gate = half(f.gate, 0, C);
    s.right_gate = half(f.gate, 1, C);
    const Tensor z = test::randn({N, N, Cz}, rng), mask = test::random_mask({N, N}, rng);
    for (bool incoming : {false, true})
        for (int64_t chunk : {0, 2}) {
            Context ctx;
            ctx.chunk_size = chunk;
            Tensor a = Tensor::empty(z.shape()), b = Tensor::empty(z.shape());
            triangle_multiplication_forward(f, incoming, z, mask, a, false, ctx);
            triangle_multiplication_forward(s, incoming, z, mask, b, false, ctx);
            EXPECT_EQ(test::compare(test::to_f64(a), test::to_f64(b), 0, 0, "fused vs halves", 3).bad, 0)
                << "incoming " << incoming << ", chunk " << chunk;
        }
}
