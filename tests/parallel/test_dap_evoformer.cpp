// DAP on P ranks equals one rank: every distributed module, the Evoformer and extra-MSA blocks and a
// two-block stack, on the small golden weights and random inputs with odd sizes (S = 7, N = 13, and sizes
// smaller than P) so padding and empty shards are exercised. Tolerance: 1e-5 of the largest reference value.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "evoformer/evoformer_dap.h"
#include "io/params.h"
#include "test_util.h"

using namespace axfold;

namespace {

const ParamStore& small_params() {
    static ParamStore p = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    return p;
}

EvoformerBlockWeights block_weights(bool extra) {
    ParamLookup get = [](const std::string& k) { return small_params().get(k); };
    EvoformerBlockWeights w;
    w.is_extra_msa = extra;
    bind_params(
        w,
        std::string("alphafold/alphafold_iteration/evoformer/") + (extra ? "extra_msa_stack" : "evoformer_iteration"),
        get, 0);
    return w;
}

using test::rel_diff;

struct Inputs {
    Tensor m, z, msa_mask, pair_mask;
};

Inputs make_inputs(int64_t S, int64_t N, int64_t Cm, int64_t Cz, unsigned seed) {
    std::mt19937 rng(seed);  // the same on every rank
    return {test::randn({S, N, Cm}, rng), test::randn({N, N, Cz}, rng), test::random_mask({S, N}, rng),
            test::random_mask({N, N}, rng)};
}

using SingleFn = std::function<void(const EvoformerBlockWeights&, Tensor& m, Tensor& z, const Inputs&, Context&)>;
using DapFn = std::function<void(const EvoformerBlockWeights&, DapActivations&, Context&)>;

void check(const char* what, bool extra, int64_t S, int64_t N, const SingleFn& single, const DapFn& dap) {
    Comm& comm = world_comm();
    const EvoformerBlockWeights w = block_weights(extra);
    const int64_t Cm = w.msa_transition.input_layer_norm.scale.size(0),
                  Cz = w.pair_transition.input_layer_norm.scale.size(0);
    const Inputs in = make_inputs(S, N, Cm, Cz, 1000u + static_cast<unsigned>(S * 31 + N));
    Tensor m_ref = in.m.clone(), z_ref = in.z.clone();
    Context c1;
    single(w, m_ref, z_ref, in, c1);
    for (int64_t chunk : {int64_t(0), int64_t(2)}) {
        Context ctx;
        ctx.chunk_size = chunk;
        DapActivations a = dap_scatter(comm, in.m, in.z, in.msa_mask, in.pair_mask);
        dap(w, a, ctx);
        Tensor m = Tensor::empty(in.m.shape()), z = Tensor::empty(in.z.shape());
        dap_gather(a, m, z);
        EXPECT_LE(rel_diff(m, m_ref), 1e-5) << what << (extra ? " (extra-MSA)" : "") << " msa, S=" << S << " N=" << N
                                            << " chunk " << chunk << " on " << comm.size() << " ranks";
        EXPECT_LE(rel_diff(z, z_ref), 1e-5) << what << (extra ? " (extra-MSA)" : "") << " pair, S=" << S << " N=" << N
                                            << " chunk " << chunk << " on " << comm.size() << " ranks";
    }
}

const std::vector<std::pair<int64_t, int64_t>> kSizes = {{7, 13}, {2, 1}, {5, 6}};

}  // namespace

TEST(Dap, MsaRowAttention) {
    for (auto [S, N] : kSizes)
        check(
            "row attention", false, S, N,
            [](const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Inputs& in, Context& c) {
                msa_row_attention_forward(w.msa_row_attention_with_pair_bias, m, z, in.msa_mask, m, true, c);
            },
            [](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                dap_msa_row_attention(w.msa_row_attention_with_pair_bias, a, c);
            });
}

TEST(Dap, MsaColumnAttentionAndGlobal) {
    for (bool extra : {false, true})
        for (auto [S, N] : kSizes)
            check(
                "column attention", extra, S, N,
                [](const EvoformerBlockWeights& w, Tensor& m, Tensor&, const Inputs& in, Context& c) {
                    if (w.is_extra_msa)
                        msa_column_global_attention_forward(w.msa_column_global_attention, m, in.msa_mask, m, true, c);
                    else
                        msa_column_attention_forward(w.msa_column_attention, m, in.msa_mask, m, true, c);
                },
                [](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                    dap_msa_column_attention(w, a, c);
                });
}

TEST(Dap, Transitions) {
    for (auto [S, N] : kSizes)
        check(
            "transitions", false, S, N,
            [](const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Inputs&, Context& c) {
                transition_forward(w.msa_transition, m, m, true, c);
                transition_forward(w.pair_transition, z, z, true, c);
            },
            [](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                dap_msa_transition(w.msa_transition, a, c);  // rows layout
                dap_m_to_cols(a);
                dap_z_to_cols(a);
                dap_pair_transition(w.pair_transition, a, c);  // cols layout
            });
}

TEST(Dap, OuterProductMean) {
    for (auto [S, N] : kSizes)
        check(
            "outer product mean", false, S, N,
            [](const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Inputs& in, Context& c) {
                outer_product_mean_forward(w.outer_product_mean, m, in.msa_mask, z, true, c);
            },
            [](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                dap_outer_product_mean(w.outer_product_mean, a, c);
            });
}

TEST(Dap, TriangleMultiplication) {
    for (bool incoming : {false, true})
        for (auto [S, N] : kSizes)
            check(
                incoming ? "triangle multiplication incoming" : "triangle multiplication outgoing", false, S, N,
                [incoming](const EvoformerBlockWeights& w, Tensor&, Tensor& z, const Inputs& in, Context& c) {
                    triangle_multiplication_forward(
                        incoming ? w.triangle_multiplication_incoming : w.triangle_multiplication_outgoing, incoming, z,
                        in.pair_mask, z, true, c);
                },
                [incoming](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                    dap_triangle_multiplication(
                        incoming ? w.triangle_multiplication_incoming : w.triangle_multiplication_outgoing, incoming, a,
                        c);
                });
}

TEST(Dap, TriangleAttention) {
    for (bool ending : {false, true})
        for (auto [S, N] : kSizes)
            check(
                ending ? "triangle attention ending" : "triangle attention starting", false, S, N,
                [ending](const EvoformerBlockWeights& w, Tensor&, Tensor& z, const Inputs& in, Context& c) {
                    triangle_attention_forward(
                        ending ? w.triangle_attention_ending_node : w.triangle_attention_starting_node, ending, z,
                        in.pair_mask, z, true, c);
                },
                [ending](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                    dap_triangle_attention(
                        ending ? w.triangle_attention_ending_node : w.triangle_attention_starting_node, ending, a, c);
                });
}

TEST(Dap, EvoformerAndExtraMsaBlocks) {
    for (bool extra : {false, true})
        for (auto [S, N] : kSizes)
            check(
                "block", extra, S, N,
                [](const EvoformerBlockWeights& w, Tensor& m, Tensor& z, const Inputs& in, Context& c) {
                    evoformer_block_forward(w, m, z, in.msa_mask, in.pair_mask, c);
                },
                [](const EvoformerBlockWeights& w, DapActivations& a, Context& c) {
                    dap_evoformer_block_forward(w, a, c);
                });
}

TEST(Dap, StackOfEveryBlock) {
    Comm& comm = world_comm();
    ParamLookup get = [](const std::string& k) { return small_params().get(k); };
    for (bool extra : {false, true}) {
        EvoformerStackWeights st = load_evoformer_stack(get,
                                                        std::string("alphafold/alphafold_iteration/evoformer/") +
                                                            (extra ? "extra_msa_stack" : "evoformer_iteration"),
                                                        extra);
        const auto& w = st.blocks[0];
        const int64_t Cm = w.msa_transition.input_layer_norm.scale.size(0),
                      Cz = w.pair_transition.input_layer_norm.scale.size(0);
        const Inputs in = make_inputs(9, 11, Cm, Cz, 77);
        Tensor m_ref = in.m.clone(), z_ref = in.z.clone(), m = in.m.clone(), z = in.z.clone();
        Context c1, c2;
        evoformer_stack_forward(st, m_ref, z_ref, in.msa_mask, in.pair_mask, c1);
        dap_evoformer_stack_forward(st, comm, m, z, in.msa_mask, in.pair_mask, c2);
        EXPECT_LE(rel_diff(m, m_ref), 1e-5) << (extra ? "extra-MSA" : "Evoformer") << " stack of " << st.blocks.size();
        EXPECT_LE(rel_diff(z, z_ref), 1e-5) << (extra ? "extra-MSA" : "Evoformer") << " stack of " << st.blocks.size();
    }
}

// bfloat16 activations: the shards keep the dtype through every re-sharding, and DAP on P ranks equals one
// rank up to the bfloat16 rounding flips that a different summation order can cause.
TEST(Dap, Bf16ActivationsBlock) {
    Comm& comm = world_comm();
    for (bool extra : {false, true}) {
        const EvoformerBlockWeights w = block_weights(extra);
        const int64_t Cm = w.msa_transition.input_layer_norm.scale.size(0),
                      Cz = w.pair_transition.input_layer_norm.scale.size(0);
        const Inputs in = make_inputs(7, 13, Cm, Cz, 91);
        Tensor m_ref = to_dtype(in.m, DType::BF16), z_ref = to_dtype(in.z, DType::BF16);
        Context c1;
        c1.activation_dtype = DType::BF16;
        evoformer_block_forward(w, m_ref, z_ref, in.msa_mask, in.pair_mask, c1);
        Context c2;
        c2.activation_dtype = DType::BF16;
        DapActivations a =
            dap_scatter(comm, to_dtype(in.m, DType::BF16), to_dtype(in.z, DType::BF16), in.msa_mask, in.pair_mask);
        ASSERT_EQ(a.z_row.dtype(), DType::BF16);
        dap_evoformer_block_forward(w, a, c2);
        Tensor m = Tensor::empty(in.m.shape(), DType::BF16), z = Tensor::empty(in.z.shape(), DType::BF16);
        dap_gather(a, m, z);
        EXPECT_LE(rel_diff(m, m_ref), 1e-2)
            << (extra ? "extra-MSA" : "Evoformer") << " msa on " << comm.size() << " ranks";
        EXPECT_LE(rel_diff(z, z_ref), 1e-2)
            << (extra ? "extra-MSA" : "Evoformer") << " pair on " << comm.size() << " ranks";
        // Not a trivially passing comparison: the block moved the pair.
        EXPECT_GT(rel_diff(z, to_dtype(in.z, DType::BF16)), 1e-2);
    }
}

// AlphaFold-Multimer's blocks (the outer product mean first, fused triangle multiplications; multimer_small's
// weights): DAP on P ranks equals one rank for each stack, with padding and empty shards.
TEST(Dap, MultimerStacks) {
    Comm& comm = world_comm();
    static const ParamStore params =
        ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small/params.npz");
    ParamLookup get = [](const std::string& k) { return params.get(k); };
    for (bool extra : {false, true}) {
        const EvoformerStackWeights st = load_evoformer_stack(get,
                                                              std::string("alphafold/alphafold_iteration/evoformer/") +
                                                                  (extra ? "extra_msa_stack" : "evoformer_iteration"),
                                                              extra, true);
        const auto& w = st.blocks[0];
        ASSERT_TRUE(w.outer_product_mean_first && w.triangle_multiplication_outgoing.fused);
        const int64_t Cm = w.msa_transition.input_layer_norm.scale.size(0),
                      Cz = w.pair_transition.input_layer_norm.scale.size(0);
        for (auto [S, N] : kSizes) {
            const Inputs in = make_inputs(S, N, Cm, Cz, 91);
            Tensor m_ref = in.m.clone(), z_ref = in.z.clone(), m = in.m.clone(), z = in.z.clone();
            Context c1, c2;
            evoformer_stack_forward(st, m_ref, z_ref, in.msa_mask, in.pair_mask, c1);
            dap_evoformer_stack_forward(st, comm, m, z, in.msa_mask, in.pair_mask, c2);
            EXPECT_LE(rel_diff(m, m_ref), 1e-5)
                << (extra ? "extra-MSA" : "Evoformer") << " S=" << S << " N=" << N << " on " << comm.size() << " ranks";
            EXPECT_LE(rel_diff(z, z_ref), 1e-5)
                << (extra ? "extra-MSA" : "Evoformer") << " S=" << S << " N=" << N << " on " << comm.size() << " ranks";
        }
    }
}
