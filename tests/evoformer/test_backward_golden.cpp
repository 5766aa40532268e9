// Backward passes of the trunk modules against the golden gradient cases (small/grad_cases.h5: vector-Jacobian
// products of each module case's outputs with random cotangents, computed in float64): the gradients with
// respect to the differentiable inputs and every parameter, within the golden README's 1e-3 of the largest
// golden value per tensor (float32 backward against float64). Also: the backward in chunks equals the
// unchunked one, and accumulating into dact adds to what is there.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "evoformer/embedders.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/msa_attention.h"
#include "evoformer/outer_product_mean.h"
#include "evoformer/triangle_attention.h"
#include "evoformer/transition.h"
#include "evoformer/triangle_multiplication.h"
#include "grad_golden_util.h"
#include "stack_probe.h"

using namespace axfold;
using test::GradCase;
using test::expect_grad;
using test::expect_param_grads;


TEST(Backward, golden_transitions) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        for (const auto& [case_name, input] : {std::pair<std::string, std::string>{"msa_transition", "msa_act"},
                                              {"pair_transition", "pair_act"}}) {
            const GradCase c(set, case_name);
            if (!c.file.has(case_name)) continue;
            std::printf("golden %s %s\n", std::filesystem::path(set).filename().c_str(), case_name.c_str());
            TransitionWeights w;
            bind_params(w, c.scope, c.lookup(), 0);
            const Tensor act = c.read("inputs/" + input), dupdate = c.read("cotangents/update");
            TransitionWeights grads = zeros_like_weights(w);
            Tensor dact = Tensor::empty(act.shape());
            Context ctx;
            transition_backward(w, act, dupdate, dact, false, grads, ctx);
            expect_grad(dact, c.read("grad_inputs/" + input), case_name + " d" + input);
            expect_param_grads(grads, c);

            // In chunks of 2 leading rows: the same gradients; accumulating into dact adds.
            TransitionWeights chunked = zeros_like_weights(w);
            Tensor dact2 = dact.clone();
            Context cc;
            cc.chunk_size = 2;
            transition_backward(w, act, dupdate, dact2, true, chunked, cc);
            std::vector<double> twice = host_float64(dact);
            for (double& v : twice) v *= 2;
            EXPECT_EQ(test::compare(host_float64(dact2), twice, 1e-6, 1e-5, "accumulated dact").bad, 0);
            EXPECT_EQ(test::compare(host_float64(chunked.transition1.weights), host_float64(grads.transition1.weights),
                                    1e-6, 1e-5, "chunked dW1")
                          .bad,
                      0);
            ++ran;
        }
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

TEST(Backward, golden_outer_product_mean) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const GradCase c(set, "outer_product_mean");
        if (!c.file.has("outer_product_mean")) continue;
        std::printf("golden %s outer_product_mean\n", std::filesystem::path(set).filename().c_str());
        OuterProductMeanWeights w;
        bind_params(w, c.scope, c.lookup(), 0);
        const Tensor m = c.read("inputs/msa_act"), mask = c.read("inputs/msa_mask"), dupdate = c.read("cotangents/update");
        OuterProductMeanWeights grads = zeros_like_weights(w);
        Tensor dm = Tensor::empty(m.shape());
        Context ctx;
        outer_product_mean_backward(w, m, mask, dupdate, dm, false, grads, ctx);
        expect_grad(dm, c.read("grad_inputs/msa_act"), "outer_product_mean dmsa_act");
        expect_param_grads(grads, c);
        // Blocks of 1 residue and 2 MSA rows: the same gradients.
        OuterProductMeanWeights chunked = zeros_like_weights(w);
        Tensor dm2 = Tensor::empty(m.shape());
        Context cc;
        cc.chunk_size = 2;
        outer_product_mean_backward(w, m, mask, dupdate, dm2, false, chunked, cc, {}, 1);
        // (Parameter gradients sum over the blocks in another order: compared relative to their largest value.)
        EXPECT_EQ(test::compare(host_float64(dm2), host_float64(dm), 1e-6, 1e-5, "chunked dm").bad, 0);
        EXPECT_LE(test::compare(host_float64(chunked.output_w), host_float64(grads.output_w), 0, 0, "", 0).rel(), 1e-5);
        EXPECT_LE(test::compare(host_float64(chunked.left_projection.weights),
                                host_float64(grads.left_projection.weights), 0, 0, "", 0)
                      .rel(),
                  1e-5);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

TEST(Backward, golden_triangle_multiplications) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        for (bool incoming : {false, true}) {
            const std::string name = incoming ? "triangle_multiplication_incoming" : "triangle_multiplication_outgoing";
            const GradCase c(set, name);
            if (!c.file.has(name)) continue;
            std::printf("golden %s %s\n", std::filesystem::path(set).filename().c_str(), name.c_str());
            TriangleMultiplicationWeights w;
            bind_params(w, c.scope, c.lookup(), 0);
            const Tensor z = c.read("inputs/pair_act"), mask = c.read("inputs/pair_mask");
            TriangleMultiplicationWeights grads = zeros_like_weights(w);
            Tensor dz = Tensor::empty(z.shape());
            Context ctx;
            triangle_multiplication_backward(w, incoming, z, mask, c.read("cotangents/update"), dz, false, grads, ctx);
            expect_grad(dz, c.read("grad_inputs/pair_act"), name + " dpair_act");
            expect_param_grads(grads, c);
            ++ran;
        }
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// The gated attentions: MSA row attention with pair bias (gradients into the MSA and, through the bias, the
// pair), MSA column attention (attending along the other axis), triangle attention around the starting and
// the ending node (into the pair through both the attention and its bias). Chunked (2 batch elements) equals
// unchunked.
TEST(Backward, golden_attentions) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const std::string tag = std::filesystem::path(set).filename().string();
        for (int64_t chunk : {0, 2}) {
            Context ctx;
            ctx.chunk_size = chunk;
            const std::string suffix = chunk ? " (chunk 2)" : "";
            {
                const GradCase c(set, "msa_row_attention_with_pair_bias");
                if (!c.file.has(c.name)) continue;
                std::printf("golden %s %s%s\n", tag.c_str(), c.name.c_str(), suffix.c_str());
                MsaRowAttentionWeights w;
                bind_params(w, c.scope, c.lookup(), 0);
                const Tensor m = c.read("inputs/msa_act"), z = c.read("inputs/pair_act");
                MsaRowAttentionWeights g = zeros_like_weights(w);
                Tensor dm = Tensor::empty(m.shape()), dz = Tensor::empty(z.shape());
                msa_row_attention_backward(w, m, z, c.read("inputs/msa_mask"), c.read("cotangents/update"), dm, false,
                                           dz, false, g, ctx);
                expect_grad(dm, c.read("grad_inputs/msa_act"), c.name + " dmsa_act" + suffix);
                expect_grad(dz, c.read("grad_inputs/pair_act"), c.name + " dpair_act" + suffix);
                expect_param_grads(g, c);
            }
            {
                const GradCase c(set, "msa_column_attention");
                std::printf("golden %s %s%s\n", tag.c_str(), c.name.c_str(), suffix.c_str());
                MsaColumnAttentionWeights w;
                bind_params(w, c.scope, c.lookup(), 0);
                const Tensor m = c.read("inputs/msa_act");
                MsaColumnAttentionWeights g = zeros_like_weights(w);
                Tensor dm = Tensor::empty(m.shape());
                msa_column_attention_backward(w, m, c.read("inputs/msa_mask"), c.read("cotangents/update"), dm, false,
                                              g, ctx);
                expect_grad(dm, c.read("grad_inputs/msa_act"), c.name + " dmsa_act" + suffix);
                expect_param_grads(g, c);
            }
            for (bool ending : {false, true}) {
                const GradCase c(set, ending ? "triangle_attention_ending_node" : "triangle_attention_starting_node");
                std::printf("golden %s %s%s\n", tag.c_str(), c.name.c_str(), suffix.c_str());
                TriangleAttentionWeights w;
                bind_params(w, c.scope, c.lookup(), 0);
                const Tensor z = c.read("inputs/pair_act");
                TriangleAttentionWeights g = zeros_like_weights(w);
                Tensor dz = Tensor::empty(z.shape());
                triangle_attention_backward(w, ending, z, c.read("inputs/pair_mask"), c.read("cotangents/update"), dz,
                                            false, g, ctx);
                expect_grad(dz, c.read("grad_inputs/pair_act"), c.name + " dpair_act" + suffix);
                expect_param_grads(g, c);
            }
            ++ran;
        }
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// The extra-MSA stack's global column attention: one key and value head shared by every query head, queries
// from the masked mean over the sequences.
TEST(Backward, golden_msa_column_global_attention) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        for (int64_t chunk : {0, 5}) {
            const GradCase c(set, "msa_column_global_attention");
            if (!c.file.has(c.name)) continue;
            std::printf("golden %s %s chunk %lld\n", std::filesystem::path(set).filename().c_str(), c.name.c_str(),
                        (long long)chunk);
            MsaColumnGlobalAttentionWeights w;
            bind_params(w, c.scope, c.lookup(), 0);
            const Tensor m = c.read("inputs/msa_act");
            MsaColumnGlobalAttentionWeights g = zeros_like_weights(w);
            Tensor dm = Tensor::empty(m.shape());
            Context ctx;
            ctx.chunk_size = chunk;
            msa_column_global_attention_backward(w, m, c.read("inputs/msa_mask"), c.read("cotangents/update"), dm,
                                                 false, g, ctx);
            expect_grad(dm, c.read("grad_inputs/msa_act"), c.name + " dmsa_act");
            expect_param_grads(g, c);
            ++ran;
        }
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// Whole blocks: the Evoformer block and the extra-MSA block (global column attention), gradients into the MSA
// and the pair through every sub-module and residual, and every parameter of the block.
TEST(Backward, golden_blocks) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        for (bool extra : {false, true}) {
            const GradCase c(set, extra ? "extra_msa_block" : "evoformer_block");
            if (!c.file.has(c.name)) continue;
            std::printf("golden %s %s\n", std::filesystem::path(set).filename().c_str(), c.name.c_str());
            EvoformerBlockWeights w;
            w.is_extra_msa = extra;
            bind_params(w, c.scope, c.lookup(), 0);  // the gradients are the layer-0 slice's (golden README)
            const Tensor m = c.read("inputs/msa_act"), z = c.read("inputs/pair_act");
            EvoformerBlockWeights g = zeros_like_weights(w);
            Tensor dm = c.read("cotangents/msa_act").clone(), dz = c.read("cotangents/pair_act").clone();
            Context ctx;
            evoformer_block_backward(w, m, z, c.read("inputs/msa_mask"), c.read("inputs/pair_mask"), dm, dz, g, ctx);
            expect_grad(dm, c.read("grad_inputs/msa_act"), c.name + " dmsa_act");
            expect_grad(dz, c.read("grad_inputs/pair_act"), c.name + " dpair_act");
            expect_param_grads(g, c);
            ++ran;
        }
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// The embedders: gradients into the float features (target_feat, msa_feat; the recycled first row and pair;
// has_deletion and deletion_value) and every parameter, the one-hot linears (relative positions, recycling
// distogram, extra-MSA tokens) included.
TEST(Backward, golden_embedders) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        Context ctx;
        {
            const GradCase c(set, "input_embedder");
            if (!c.file.has(c.name)) continue;
            std::printf("golden %s\n", c.name.c_str());
            InputEmbedderWeights w;
            bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
            const Tensor tf = c.read("inputs/target_feat"), mf = c.read("inputs/msa_feat");
            InputEmbedderWeights g = zeros_like_weights(w);
            Tensor dtf = Tensor::empty(tf.shape()), dmf = Tensor::empty(mf.shape());
            input_embedder_backward(w, tf, c.file.read(c.name + "/inputs/residue_index"), mf, c.read("cotangents/msa_act"),
                                    c.read("cotangents/pair_act"), dtf, dmf, g, ctx);
            expect_grad(dtf, c.read("grad_inputs/target_feat"), c.name + " dtarget_feat");
            expect_grad(dmf, c.read("grad_inputs/msa_feat"), c.name + " dmsa_feat");
            expect_param_grads(g, c);
        }
        {
            const GradCase c(set, "recycling_embedder");
            std::printf("golden %s\n", c.name.c_str());
            RecyclingEmbedderWeights w;
            bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
            const Tensor row = c.read("inputs/prev_msa_first_row"), pair = c.read("inputs/prev_pair");
            RecyclingEmbedderWeights g = zeros_like_weights(w);
            Tensor drow = Tensor::empty(row.shape()), dpair = Tensor::empty(pair.shape());
            // The pseudo-beta of the previous positions (CB, CA for glycine), as the model forms it.
            const Tensor aatype = c.file.read(c.name + "/inputs/aatype"), pos = c.read("inputs/prev_pos");
            const int64_t N = row.size(0);
            Tensor pb = Tensor::empty({N, 3});
            for (int64_t i = 0; i < N; ++i)
                for (int64_t d = 0; d < 3; ++d) pb.at({i, d}) = pos.at({i, aatype.at<int64_t>({i}) == 7 ? 1 : 3, d});
            recycling_embedder_backward(w, row, pair, pb, c.read("cotangents/msa_first_row_update"),
                                        c.read("cotangents/pair_update"), drow, dpair, g, ctx);
            expect_grad(drow, c.read("grad_inputs/prev_msa_first_row"), c.name + " dprev_msa_first_row");
            expect_grad(dpair, c.read("grad_inputs/prev_pair"), c.name + " dprev_pair");
            expect_param_grads(g, c);
        }
        {
            const GradCase c(set, "extra_msa_embedder");
            std::printf("golden %s\n", c.name.c_str());
            ExtraMsaEmbedderWeights w;
            bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
            const Tensor hd = c.read("inputs/extra_has_deletion"), dv = c.read("inputs/extra_deletion_value");
            ExtraMsaEmbedderWeights g = zeros_like_weights(w);
            Tensor dhd = Tensor::empty(hd.shape()), ddv = Tensor::empty(dv.shape());
            extra_msa_embedder_backward(w, c.file.read(c.name + "/inputs/extra_msa"), hd, dv,
                                        c.read("cotangents/extra_msa_act"), dhd, ddv, g, ctx);
            expect_grad(dhd, c.read("grad_inputs/extra_has_deletion"), c.name + " dextra_has_deletion");
            expect_grad(ddv, c.read("grad_inputs/extra_deletion_value"), c.name + " dextra_deletion_value");
            expect_param_grads(g.extra_msa_activations, c);  // the case's parameters are the one linear's
        }
        {  // the single representation: one linear of the first MSA row
            const GradCase c(set, "single_activations");
            std::printf("golden %s\n", c.name.c_str());
            SingleActivationsWeights w;
            bind_params(w, "alphafold/alphafold_iteration/evoformer", c.lookup());
            const Tensor row = c.read("inputs/msa_first_row");
            SingleActivationsWeights g = zeros_like_weights(w);
            Tensor drow = Tensor::empty(row.shape());
            linear_backward(row, w.single_activations.weights, c.read("cotangents/single"), drow, false,
                            g.single_activations.weights, g.single_activations.bias, ctx.ws);
            expect_grad(drow, c.read("grad_inputs/msa_first_row"), c.name + " dmsa_first_row");
            expect_param_grads(g.single_activations, c);
        }
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}

// A stack of blocks: the first block of the small golden stack twice. The stack's backward equals the blocks'
// backward chained by hand (the second block's input is the first's output), and along a random direction of
// the inputs its gradient predicts the change of <cotangent, output> (central differences in float32, step 1e-3:
// within 0.2 % here, the ReLUs' kinks making the difference converge only linearly; a check of the wiring).
TEST(Backward, stack_chains_its_blocks) {
    const std::string set = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
    const GradCase c(set, "evoformer_block");
    EvoformerStackWeights w;
    w.blocks.resize(2);
    for (auto& b : w.blocks) bind_params(b, c.scope, c.lookup(), 0);
    const Tensor m = c.read("inputs/msa_act"), z = c.read("inputs/pair_act"), mm = c.read("inputs/msa_mask"),
                 pm = c.read("inputs/pair_mask"), cm = c.read("cotangents/msa_act"), cz = c.read("cotangents/pair_act");
    Context ctx;
    std::vector<EvoformerBlockWeights> g{zeros_like_weights(w.blocks[0]), zeros_like_weights(w.blocks[1])};
    Tensor dm = cm.clone(), dz = cz.clone();
    evoformer_stack_backward(w, m, z, mm, pm, dm, dz, g, ctx);
    // By hand.
    Tensor m1 = m.clone(), z1 = z.clone();
    evoformer_block_forward(w.blocks[0], m1, z1, mm, pm, ctx);
    std::vector<EvoformerBlockWeights> h{zeros_like_weights(w.blocks[0]), zeros_like_weights(w.blocks[1])};
    Tensor hm = cm.clone(), hz = cz.clone();
    evoformer_block_backward(w.blocks[1], m1, z1, mm, pm, hm, hz, h[1], ctx);
    evoformer_block_backward(w.blocks[0], m, z, mm, pm, hm, hz, h[0], ctx);
    EXPECT_EQ(test::compare(host_float64(dm), host_float64(hm), 0, 0, "stack dm").max_abs, 0.0);
    EXPECT_EQ(test::compare(host_float64(dz), host_float64(hz), 0, 0, "stack dz").max_abs, 0.0);
    EXPECT_EQ(test::compare(host_float64(g[0].pair_transition.transition1.weights),
                            host_float64(h[0].pair_transition.transition1.weights), 0, 0, "stack dW")
                  .max_abs,
              0.0);
    // Directional derivative along the inputs: <dm, v_m> + <dz, v_z> against central differences.
    std::mt19937 rng(5);
    const Tensor vm = test::randn(m.shape(), rng), vz = test::randn(z.shape(), rng);
    auto objective = [&](double step) { return test::stack_objective(w, m, z, vm, vz, step, mm, pm, cm, cz, ctx); };
    const double eps = 1e-3, fd = (objective(eps) - objective(-eps)) / (2 * eps);
    const double analytic = test::dot2(dm, vm, dz, vz);
    std::printf("  directional derivative: analytic %.6g, central difference %.6g\n", analytic, fd);
    EXPECT_NEAR(fd, analytic, 1e-2 * std::fabs(analytic));
    EXPECT_GT(std::fabs(analytic), 1.0);
}
