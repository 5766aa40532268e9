// DAP's backward on P ranks equals the single-rank backward (itself checked against the golden gradient
// cases): the input gradients of a two-block Evoformer and extra-MSA stack and every parameter gradient, on
// the small golden weights with odd sizes (S = 7, N = 13; N = 1 and S = 2, smaller than P, so padding and
// empty shards are exercised), unchunked and chunked. Tolerance: 2e-5 of the largest reference value per
// tensor (float32 sums in another order).
#include <gtest/gtest.h>

#include <cmath>

#include "evoformer/evoformer_dap.h"
#include "io/params.h"
#include "test_util.h"

using namespace axfold;

namespace {

const ParamStore& small_params() {
    static ParamStore p = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    return p;
}

using test::max_abs;
using test::rel_diff;

void check_stack(bool extra, int64_t S, int64_t N, int64_t chunk, uint64_t dropout_key = 0) {
    Comm& comm = world_comm();
    ParamLookup get = [](const std::string& k) { return small_params().get(k); };
    const std::string scope =
        std::string("alphafold/alphafold_iteration/evoformer/") + (extra ? "extra_msa_stack" : "evoformer_iteration");
    EvoformerStackWeights st = load_evoformer_stack(get, scope, extra);
    ASSERT_GE(st.blocks.size(), 1u);
    if (st.blocks.size() == 1) st.blocks.push_back(st.blocks[0]);
    const auto& w0 = st.blocks[0];
    const int64_t Cm = w0.msa_transition.input_layer_norm.scale.size(0),
                  Cz = w0.pair_transition.input_layer_norm.scale.size(0);
    std::mt19937 rng(static_cast<unsigned>(500 + S * 31 + N));  // the same on every rank
    const Tensor m = test::randn({S, N, Cm}, rng), z = test::randn({N, N, Cz}, rng);
    const Tensor msa_mask = test::random_mask({S, N}, rng), pair_mask = test::random_mask({N, N}, rng);
    const Tensor dm_out = test::randn({S, N, Cm}, rng), dz_out = test::randn({N, N, Cz}, rng);

    TrunkConstants k;
    k.dropout_key = dropout_key;
    Context c1;
    c1.chunk_size = chunk;
    Tensor dm_ref = dm_out.clone(), dz_ref = dz_out.clone();
    std::vector<EvoformerBlockWeights> g_ref;
    for (const auto& b : st.blocks) g_ref.push_back(zeros_like_weights(b));
    evoformer_stack_backward(st, m, z, msa_mask, pair_mask, dm_ref, dz_ref, g_ref, c1, k);

    Context c2;
    c2.chunk_size = chunk;
    Tensor dm = dm_out.clone(), dz = dz_out.clone();
    std::vector<EvoformerBlockWeights> g;
    for (const auto& b : st.blocks) g.push_back(zeros_like_weights(b));
    dap_evoformer_stack_backward(st, comm, m, z, msa_mask, pair_mask, dm, dz, g, c2, k);

    const std::string what = std::string(extra ? "extra-MSA" : "Evoformer") + " stack, S=" + std::to_string(S) +
                             " N=" + std::to_string(N) + " chunk " + std::to_string(chunk) +
                             (dropout_key ? " with dropout" : "") + " on " + std::to_string(comm.size()) + " ranks: ";
    if (dropout_key) {
        // The forward too: DAP's shards draw the masks one rank draws.
        Tensor m1 = m.clone(), z1 = z.clone(), m2 = m.clone(), z2 = z.clone();
        evoformer_stack_forward(st, m1, z1, msa_mask, pair_mask, c1, k);
        dap_evoformer_stack_forward(st, comm, m2, z2, msa_mask, pair_mask, c2, k);
        EXPECT_LE(rel_diff(m2, m1), 1e-5) << what << "forward msa";
        EXPECT_LE(rel_diff(z2, z1), 1e-5) << what << "forward pair";
        Tensor m0 = m.clone(), z0 = z.clone();
        evoformer_stack_forward(st, m0, z0, msa_mask, pair_mask, c1);
        EXPECT_GT(rel_diff(z1, z0), 1e-3) << what << "dropout changes nothing";
    }
    EXPECT_LE(rel_diff(dm, dm_ref), 2e-5) << what << "dL/dm";
    EXPECT_LE(rel_diff(dz, dz_ref), 2e-5) << what << "dL/dz";
    // Not a trivially passing comparison: the stack changed the gradients on their way through.
    EXPECT_GT(rel_diff(dz_ref, dz_out), 1e-3) << what;
    int checked = 0;
    for (size_t b = 0; b < st.blocks.size(); ++b) {
        std::vector<std::pair<std::string, Tensor>> mine, ref;
        g[b].visit([&](const std::string& n, Tensor& t) {
            if (t.defined()) mine.emplace_back(n, t);
        });
        g_ref[b].visit([&](const std::string& n, Tensor& t) {
            if (t.defined()) ref.emplace_back(n, t);
        });
        ASSERT_EQ(mine.size(), ref.size());
        double block_max = 0;
        for (const auto& [n, t] : ref) block_max = std::max(block_max, max_abs(t));
        for (size_t i = 0; i < ref.size(); ++i) {
            // A gradient zero in exact arithmetic (the row attention's pair-bias norm offset shifts every
            // logit of a softmax row alike) is float32 round-off on both sides: compared with the block's scale.
            if (max_abs(ref[i].second) < 1e-6 * block_max)
                EXPECT_LE(max_abs(mine[i].second), 1e-5 * block_max)
                    << what << "block " << b << " " << ref[i].first << " (zero in exact arithmetic)";
            else
                EXPECT_LE(rel_diff(mine[i].second, ref[i].second), 2e-5)
                    << what << "block " << b << " " << ref[i].first;
            ++checked;
        }
    }
    EXPECT_GT(checked, 30);
}

}  // namespace

TEST(DapBackward, EvoformerStackMatchesOneRank) {
    for (auto [S, N] : std::vector<std::pair<int64_t, int64_t>>{{7, 13}, {2, 1}, {5, 6}})
        for (int64_t chunk : {int64_t(0), int64_t(3)}) check_stack(false, S, N, chunk);
}

TEST(DapBackward, ExtraMsaStackMatchesOneRank) {
    for (auto [S, N] : std::vector<std::pair<int64_t, int64_t>>{{7, 13}, {2, 1}})
        for (int64_t chunk : {int64_t(0), int64_t(3)}) check_stack(true, S, N, chunk);
}

// With training dropout: the shards draw the masks one rank draws (a hash of the global indices).
TEST(DapBackward, WithDropoutMatchesOneRank) {
    for (auto [S, N] : std::vector<std::pair<int64_t, int64_t>>{{7, 13}, {2, 1}, {5, 6}}) {
        check_stack(false, S, N, 0, 77);
        check_stack(true, S, N, 3, 78);
    }
}
