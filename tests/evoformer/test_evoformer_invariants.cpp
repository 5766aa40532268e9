// Invariants of the trunk modules on the small golden weights and fresh random inputs:
// masked positions never change unmasked outputs, and incoming triangle multiplication is outgoing
// multiplication of the transposed pair.
#include <gtest/gtest.h>

#include "evoformer/evoformer_stack.h"
#include "io/params.h"
#include "test_util.h"

using namespace axfold;
using test::randn;

namespace {

const std::string kScope = "alphafold/alphafold_iteration/evoformer/evoformer_iteration/";

const ParamStore& small_params() {
    static ParamStore p = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    return p;
}

ParamLookup lookup() {
    return [](const std::string& k) { return small_params().get(k); };
}

// Max |a - b| over the elements where keep(index...) is true.
template <class Keep> double max_diff(const Tensor& a, const Tensor& b, Keep keep) {
    double m = 0;
    const int64_t A = a.size(0), B = a.size(1), C = a.size(2);
    for (int64_t i = 0; i < A; ++i)
        for (int64_t j = 0; j < B; ++j)
            if (keep(i, j))
                for (int64_t c = 0; c < C; ++c) m = std::max(m, (double)std::fabs(a.at({i, j, c}) - b.at({i, j, c})));
    return m;
}

}  // namespace

TEST(EvoformerInvariants, IncomingIsOutgoingOfTransposedPair) {
    std::mt19937 rng(21);
    TriangleMultiplicationWeights w;
    bind_params(w, kScope + "triangle_multiplication_outgoing", lookup(), 1);
    const int64_t N = 11, Cz = w.gating_linear.weights.size(0);
    Tensor z = randn({N, N, Cz}, rng), mask = test::random_mask({N, N}, rng);
    Context ctx;
    Tensor in = Tensor::empty({N, N, Cz});
    triangle_multiplication_forward(w, true, z, mask, in, false, ctx);
    Tensor zt = z.transpose(0, 1).contiguous(), mt = mask.transpose(0, 1).contiguous();
    Tensor out = Tensor::empty({N, N, Cz});
    triangle_multiplication_forward(w, false, zt, mt, out, false, ctx);
    test::expect_close(in, test::to_f64(out.transpose(0, 1)), 1e-5, 1e-4, "incoming vs outgoing^T");
    // And the two differ in general (the test can fail).
    Tensor out_direct = Tensor::empty({N, N, Cz});
    triangle_multiplication_forward(w, false, z, mask, out_direct, false, ctx);
    EXPECT_GT(max_diff(in, out_direct, [](int64_t, int64_t) { return true; }), 1e-3);
}

TEST(EvoformerInvariants, MaskedPositionsDoNotLeak) {
    std::mt19937 rng(22);
    const ParamLookup get = lookup();
    const Tensor& q = small_params().get(kScope + "msa_row_attention_with_pair_bias/attention//query_w");
    const Tensor& tq = small_params().get(kScope + "triangle_attention_starting_node/attention//query_w");
    const int64_t S = 5, N = 9, Cm = q.size(1), Cz = tq.size(1);
    Tensor m = randn({S, N, Cm}, rng), z = randn({N, N, Cz}, rng);
    Tensor msa_mask = test::random_mask({S, N}, rng), pair_mask = test::random_mask({N, N}, rng);
    msa_mask.at({2, 4}) = 0.f;
    pair_mask.at({3, 6}) = 0.f;
    Tensor m2 = m.clone(), z2 = z.clone();
    // Random perturbations (a constant shift would vanish in the layer norms).
    std::normal_distribution<float> noise(0.f, 3.f);
    for (int64_t c = 0; c < Cm; ++c) m2.at({2, 4, c}) += noise(rng);
    for (int64_t c = 0; c < Cz; ++c) z2.at({3, 6, c}) += noise(rng);
    Context ctx;
    auto run_msa = [&](auto fwd, const Tensor& mm) {
        Tensor out = Tensor::empty(mm.shape());
        fwd(mm, out);
        return out;
    };
    {  // Row attention: a masked key changes nothing else in its row.
        MsaRowAttentionWeights w;
        bind_params(w, kScope + "msa_row_attention_with_pair_bias", get, 0);
        auto f = [&](const Tensor& mm, Tensor& out) { msa_row_attention_forward(w, mm, z, msa_mask, out, false, ctx); };
        Tensor a = run_msa(f, m), b = run_msa(f, m2);
        EXPECT_LT(max_diff(a, b, [](int64_t s, int64_t j) { return !(s == 2 && j == 4); }), 1e-6);
        EXPECT_GT(max_diff(a, b, [](int64_t s, int64_t j) { return s == 2 && j == 4; }), 1e-3);
    }
    {  // Column attention: a masked key changes nothing else in its column.
        MsaColumnAttentionWeights w;
        bind_params(w, kScope + "msa_column_attention", get, 0);
        auto f = [&](const Tensor& mm, Tensor& out) { msa_column_attention_forward(w, mm, msa_mask, out, false, ctx); };
        Tensor a = run_msa(f, m), b = run_msa(f, m2);
        EXPECT_LT(max_diff(a, b, [](int64_t s, int64_t j) { return !(s == 2 && j == 4); }), 1e-6);
    }
    {  // Outer product mean: masked MSA entries contribute nothing at all.
        OuterProductMeanWeights w;
        bind_params(w, kScope + "outer_product_mean", get, 0);
        Tensor a = Tensor::empty({N, N, Cz}), b = Tensor::empty({N, N, Cz});
        outer_product_mean_forward(w, m, msa_mask, a, false, ctx);
        outer_product_mean_forward(w, m2, msa_mask, b, false, ctx);
        EXPECT_LT(max_diff(a, b, [](int64_t, int64_t) { return true; }), 1e-6);
    }
    for (bool incoming : {false, true}) {  // Triangle multiplication: only the masked pair's own output moves.
        TriangleMultiplicationWeights w;
        bind_params(w, kScope + (incoming ? "triangle_multiplication_incoming" : "triangle_multiplication_outgoing"),
                    get, 0);
        Tensor a = Tensor::empty(z.shape()), b = Tensor::empty(z.shape());
        triangle_multiplication_forward(w, incoming, z, pair_mask, a, false, ctx);
        triangle_multiplication_forward(w, incoming, z2, pair_mask, b, false, ctx);
        EXPECT_LT(max_diff(a, b, [](int64_t i, int64_t j) { return !(i == 3 && j == 6); }), 1e-6);
    }
    {  // Triangle attention (starting node): in row 3, key 6 is masked, so the rest of row 3 is unchanged.
        TriangleAttentionWeights w;
        bind_params(w, kScope + "triangle_attention_starting_node", get, 0);
        Tensor a = Tensor::empty(z.shape()), b = Tensor::empty(z.shape());
        triangle_attention_forward(w, false, z, pair_mask, a, false, ctx);
        triangle_attention_forward(w, false, z2, pair_mask, b, false, ctx);
        EXPECT_LT(max_diff(a, b, [](int64_t i, int64_t j) { return i == 3 && j != 6; }), 1e-6);
    }
    {  // Ending node: column 6 with key 3 masked.
        TriangleAttentionWeights w;
        bind_params(w, kScope + "triangle_attention_ending_node", get, 0);
        Tensor a = Tensor::empty(z.shape()), b = Tensor::empty(z.shape());
        triangle_attention_forward(w, true, z, pair_mask, a, false, ctx);
        triangle_attention_forward(w, true, z2, pair_mask, b, false, ctx);
        EXPECT_LT(max_diff(a, b, [](int64_t i, int64_t j) { return j == 6 && i != 3; }), 1e-6);
    }
}
