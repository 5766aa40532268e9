// Training dropout of the Evoformer's residual updates (evoformer/dropout.h): the masks' sharing, rates and
// determinism, and the stack's backward with dropout against central differences of the dropped-out forward
// (the masks are a function of the key, so the finite difference sees the same masks).
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "evoformer/dropout.h"
#include "evoformer/evoformer_stack.h"
#include "grad_golden_util.h"
#include "stack_probe.h"

using namespace axfold;

TEST(Dropout, MasksAreSharedAlongOneAxisAtTheirRates) {
    for (DropoutSite site : {DropoutSite::MsaRowAttention, DropoutSite::TriangleMultiplicationOutgoing,
                             DropoutSite::TriangleAttentionEnding}) {
        const DropoutSpec spec = dropout_spec(site);
        const int64_t A = 200, B = 200, C = 64;  // 12,800 independent draws: sd of the kept fraction 0.004
        Tensor u = Tensor::full({A, B, C}, 1.f);
        apply_dropout(u, 12345, site);
        int64_t kept = 0;
        for (int64_t a = 0; a < A; ++a)
            for (int64_t b = 0; b < B; ++b)
                for (int64_t c = 0; c < C; ++c) {
                    const float v = u.f32()[(a * B + b) * C + c];
                    ASSERT_TRUE(v == 0.f || std::fabs(v - 1.f / (1.f - spec.rate)) < 1e-6f) << v;
                    kept += v != 0.f;
                    // Shared along rows (per row: the same for every a) or columns (per column: every b).
                    const float other = spec.per_column ? u.f32()[(a * B + 0) * C + c] : u.f32()[(0 * B + b) * C + c];
                    ASSERT_EQ(v, other);
                }
        const double frac = double(kept) / double(A * B * C);
        EXPECT_NEAR(frac, 1.0 - spec.rate, 0.02) << static_cast<int>(site);
    }
    // Key 0 is off; one key draws one mask; another key another; an offset shifts the indices (a DAP shard).
    Tensor a = Tensor::full({2, 8, 4}, 1.f), b = Tensor::full({2, 8, 4}, 1.f), c = Tensor::full({2, 8, 4}, 1.f);
    apply_dropout(a, 0, DropoutSite::TriangleAttentionStarting);
    EXPECT_EQ(test::max_abs(a), 1.0);
    apply_dropout(a, 7, DropoutSite::TriangleAttentionStarting);
    apply_dropout(b, 7, DropoutSite::TriangleAttentionStarting);
    apply_dropout(c, 8, DropoutSite::TriangleAttentionStarting);
    EXPECT_EQ(test::rel_diff(a, b), 0.0);
    EXPECT_GT(test::rel_diff(a, c), 0.0);
    Tensor whole = Tensor::full({2, 8, 4}, 1.f), part = Tensor::full({2, 5, 4}, 1.f);
    apply_dropout(whole, 7, DropoutSite::TriangleAttentionStarting);
    apply_dropout(part, 7, DropoutSite::TriangleAttentionStarting, 0, 3);
    EXPECT_EQ(test::rel_diff(part, whole.slice(1, 3, 8).contiguous()), 0.0);
}

TEST(Dropout, StackBackwardMatchesCentralDifferences) {
    const std::string set = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
    const test::GradCase c(set, "evoformer_block");
    EvoformerStackWeights w;
    w.blocks.resize(2);
    for (auto& b : w.blocks) bind_params(b, c.scope, c.lookup(), 0);
    // Both blocks view the case's one layer; block 1's row-attention output weights get their own copy, whose
    // gradient is probed below.
    w.blocks[1].msa_row_attention_with_pair_bias.attention.output_w =
        w.blocks[1].msa_row_attention_with_pair_bias.attention.output_w.clone();
    const Tensor m = c.read("inputs/msa_act"), z = c.read("inputs/pair_act"), mm = c.read("inputs/msa_mask"),
                 pm = c.read("inputs/pair_mask"), cm = c.read("cotangents/msa_act"), cz = c.read("cotangents/pair_act");
    Context ctx;
    TrunkConstants k;
    k.dropout_key = 99;
    // Dropout changes the forward.
    Tensor m0 = m.clone(), z0 = z.clone(), m1 = m.clone(), z1 = z.clone();
    evoformer_stack_forward(w, m0, z0, mm, pm, ctx);
    evoformer_stack_forward(w, m1, z1, mm, pm, ctx, k);
    EXPECT_GT(test::rel_diff(z1, z0), 1e-3);
    EXPECT_GT(test::rel_diff(m1, m0), 1e-3);
    std::vector<EvoformerBlockWeights> g{zeros_like_weights(w.blocks[0]), zeros_like_weights(w.blocks[1])};
    Tensor dm = cm.clone(), dz = cz.clone();
    evoformer_stack_backward(w, m, z, mm, pm, dm, dz, g, ctx, k);
    std::mt19937 rng(5);
    const Tensor vm = test::randn(m.shape(), rng), vz = test::randn(z.shape(), rng);
    auto objective = [&](double step) { return test::stack_objective(w, m, z, vm, vz, step, mm, pm, cm, cz, ctx, k); };
    const double eps = 1e-3, fd = (objective(eps) - objective(-eps)) / (2 * eps);
    const double analytic = test::dot2(dm, vm, dz, vz);
    std::printf("  with dropout: analytic %.6g, central difference %.6g\n", analytic, fd);
    EXPECT_NEAR(fd, analytic, 1e-2 * std::fabs(analytic));
    EXPECT_GT(std::fabs(analytic), 1.0);
    // A parameter gradient too: the row attention's output weights (its update is dropped out) along a
    // random direction.
    Tensor& W = w.blocks[1].msa_row_attention_with_pair_bias.attention.output_w;
    const Tensor W0 = W.clone(), vW = test::randn(W.shape(), rng);
    auto param_objective = [&](double step) {
        for (int64_t i = 0; i < W.numel(); ++i) W.f32()[i] = W0.f32()[i] + static_cast<float>(step) * vW.f32()[i];
        return objective(0);
    };
    const double fdW = (param_objective(eps) - param_objective(-eps)) / (2 * eps);
    W.copy_from(W0);
    double anW = 0;
    const std::vector<double> gW = host_float64(g[1].msa_row_attention_with_pair_bias.attention.output_w),
                              dW = host_float64(vW);
    for (size_t i = 0; i < gW.size(); ++i) anW += gW[i] * dW[i];
    std::printf("  row attention output weights: analytic %.6g, central difference %.6g\n", anW, fdW);
    EXPECT_NEAR(fdW, anW, 2e-2 * std::fabs(anW) + 1e-3);
    EXPECT_GT(std::fabs(anW), 1e-2);
}
