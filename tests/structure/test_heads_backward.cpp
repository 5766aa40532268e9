// The heads' backward against the golden gradient case (small/grad_cases.h5 "heads"): cotangents on every
// output (the logits, pLDDT, the PAE map and pTM), gradients into the MSA, the pair, the single representation
// and the structure module's activation, and every head parameter.
#include <gtest/gtest.h>

#include "grad_golden_util.h"
#include "structure/heads.h"

using namespace axfold;

TEST(Backward, golden_heads) {
    int ran = 0;
    for (const std::string& set : test::golden_sets("grad_cases.h5")) {
        const test::GradCase c(set, "heads");
        if (!c.file.has(c.name)) continue;
        std::printf("golden %s heads\n", std::filesystem::path(set).filename().c_str());
        HeadsWeights w;
        w.has_pae = c.params.has("alphafold/alphafold_iteration/predicted_aligned_error_head/logits//weights");
        ASSERT_TRUE(w.has_pae);
        bind_params(w, "alphafold/alphafold_iteration", c.lookup());
        const Tensor msa = c.read("inputs/msa"), pair = c.read("inputs/pair"), single = c.read("inputs/single"),
                     sm = c.read("inputs/structure_module");
        HeadsCotangents d;
        d.predicted_lddt_logits = c.read("cotangents/predicted_lddt_logits");
        d.plddt = c.read("cotangents/plddt");
        d.distogram_logits = c.read("cotangents/distogram_logits");
        d.masked_msa_logits = c.read("cotangents/masked_msa_logits");
        d.experimentally_resolved_logits = c.read("cotangents/experimentally_resolved_logits");
        d.predicted_aligned_error_logits = c.read("cotangents/predicted_aligned_error_logits");
        d.predicted_aligned_error = c.read("cotangents/predicted_aligned_error");
        d.ptm = host_float64(c.read("cotangents/ptm"))[0];
        HeadsWeights g = zeros_like_weights(w);
        Tensor dmsa = Tensor::empty(msa.shape()), dpair = Tensor::empty(pair.shape()),
               dsingle = Tensor::empty(single.shape()), dsm = Tensor::empty(sm.shape());
        Context ctx;
        heads_backward(w, msa, pair, single, sm, d, dmsa, dpair, dsingle, dsm, g, ctx);
        test::expect_grad(dmsa, c.read("grad_inputs/msa"), "heads dmsa");
        test::expect_grad(dpair, c.read("grad_inputs/pair"), "heads dpair");
        test::expect_grad(dsingle, c.read("grad_inputs/single"), "heads dsingle");
        test::expect_grad(dsm, c.read("grad_inputs/structure_module"), "heads dstructure_module");
        test::expect_param_grads(g, c);
        // Without the pTM cotangent the pair's gradient changes: the pTM path is exercised.
        HeadsWeights g2 = zeros_like_weights(w);
        Tensor dpair2 = Tensor::empty(pair.shape());
        d.ptm = 0.f;
        heads_backward(w, msa, pair, single, sm, d, Tensor(), dpair2, Tensor(), Tensor(), g2, ctx);
        EXPECT_GT(test::compare(host_float64(dpair2), host_float64(dpair), 0, 0, "", 0).max_abs, 1e-7);
        ++ran;
    }
    if (ran == 0) GTEST_SKIP() << "no grad_cases.h5 under " << test::golden_dir();
}
