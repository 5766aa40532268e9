// Chunked equals unchunked (1e-6 relative) for every chunked trunk module, with chunk sizes that do and
// do not divide the axis, including in-place residual updates.
#include <gtest/gtest.h>

#include "evoformer/embedders.h"
#include "evoformer/evoformer_stack.h"
#include "evoformer/memory_plan.h"
#include "io/params.h"
#include "test_util.h"

using namespace axfold;

namespace {

const ParamStore& small_params() {
    static ParamStore p = ParamStore::load(std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small/params.npz");
    return p;
}

using test::rel_diff;

// The first block of the small golden Evoformer (or extra-MSA) stack.
EvoformerBlockWeights first_block(bool extra) {
    ParamLookup get = [](const std::string& k) { return small_params().get(k); };
    EvoformerBlockWeights w;
    w.is_extra_msa = extra;
    bind_params(w, std::string("alphafold/alphafold_iteration/evoformer/") +
                       (extra ? "extra_msa_stack" : "evoformer_iteration"), get, 0);
    return w;
}

}  // namespace

TEST(Chunking, EveryModuleChunkedEqualsUnchunked) {
    std::mt19937 rng(31);
    for (bool extra : {false, true}) {
        const EvoformerBlockWeights w = first_block(extra);
        const int64_t S = 7, N = 13, Cm = w.msa_transition.input_layer_norm.scale.size(0),
                      Cz = w.pair_transition.input_layer_norm.scale.size(0);
        Tensor m0 = test::randn({S, N, Cm}, rng), z0 = test::randn({N, N, Cz}, rng);
        Tensor msa_mask = test::random_mask({S, N}, rng), pair_mask = test::random_mask({N, N}, rng);
        // Reference: unchunked, recording every intermediate.
        std::vector<Tensor> ref;
        Tensor m = m0.clone(), z = z0.clone();
        Context ctx;
        evoformer_block_forward(w, m, z, msa_mask, pair_mask, ctx, {},
                                [&](const char*, const Tensor& t) { ref.push_back(t.clone()); });
        ref.push_back(m.clone());
        ref.push_back(z.clone());
        for (int64_t chunk : {1, 3, 5, 13, 100}) {
            Context c;
            c.chunk_size = chunk;
            Tensor mc = m0.clone(), zc = z0.clone();
            std::vector<Tensor> got;
            evoformer_block_forward(w, mc, zc, msa_mask, pair_mask, c, {},
                                    [&](const char*, const Tensor& t) { got.push_back(t.clone()); });
            got.push_back(mc);
            got.push_back(zc);
            ASSERT_EQ(got.size(), ref.size());
            for (size_t i = 0; i < ref.size(); ++i)
                EXPECT_LE(rel_diff(got[i], ref[i]), 1e-6)
                    << (extra ? "extra" : "evoformer") << " chunk " << chunk << " step " << i;
        }
    }
}

TEST(Chunking, RelativePositionRowsEqualTheWholeOneHot) {
    Tensor ri = Tensor::empty({9}, DType::I64);
    for (int64_t i = 0; i < 9; ++i) ri.data<int64_t>()[i] = i < 5 ? i : i + 40;  // a chain break
    Tensor whole = relpos_one_hot(ri, 32);
    for (int64_t b : {0, 3, 7}) {
        Tensor part = relpos_one_hot(ri, 32, b, 9);
        EXPECT_EQ(test::to_f64(part), test::to_f64(whole.slice(0, b, 9))) << "rows from " << b;
    }
    EXPECT_THROW(relpos_one_hot(ri, 32, 5, 10), Error);
}

TEST(Chunking, RecyclingEmbedderChunkedEqualsUnchunked) {
    std::mt19937 rng(32);
    ParamLookup get = [](const std::string& k) { return small_params().get(k); };
    RecyclingEmbedderWeights w;
    bind_params(w, "alphafold/alphafold_iteration/evoformer", get);
    const int64_t N = 13, Cm = w.prev_msa_first_row_norm.scale.size(0), Cz = w.prev_pair_norm.scale.size(0);
    Tensor prev_row = test::randn({N, Cm}, rng), prev_pair = test::randn({N, N, Cz}, rng);
    Tensor prev_pb = test::randn({N, 3}, rng, 8.f);
    Tensor row0 = test::randn({N, Cm}, rng), pair0 = test::randn({N, N, Cz}, rng);
    Tensor row_ref = row0.clone(), pair_ref = pair0.clone();
    Context ctx;
    recycling_embedder_forward(w, prev_row, prev_pair, prev_pb, row_ref, pair_ref, ctx);
    EXPECT_GT(rel_diff(pair_ref, pair0), 1e-2);  // it did add something
    for (int64_t chunk : {1, 4, 13, 100}) {
        Context c;
        c.chunk_size = chunk;
        Tensor row = row0.clone(), pair = pair0.clone();
        recycling_embedder_forward(w, prev_row, prev_pair, prev_pb, row, pair, c);
        EXPECT_LE(rel_diff(pair, pair_ref), 1e-6) << "chunk " << chunk;
        EXPECT_LE(rel_diff(row, row_ref), 1e-6) << "chunk " << chunk;
    }
}

// bfloat16 activations (--precision bf16): the block keeps its MSA and pair in bfloat16, lands within
// bfloat16 rounding of the float32 block (and does move), and chunking changes it only by rounding flips.
TEST(Chunking, Bf16ActivationsStayWithinRoundingOfFloat32) {
    std::mt19937 rng(32);
    for (bool extra : {false, true}) {
        const EvoformerBlockWeights w = first_block(extra);
        const int64_t S = 7, N = 13, Cm = w.msa_transition.input_layer_norm.scale.size(0),
                      Cz = w.pair_transition.input_layer_norm.scale.size(0);
        // Inputs representable in bfloat16, so both runs start from the same values.
        const Tensor m0 = to_dtype(to_dtype(test::randn({S, N, Cm}, rng), DType::BF16), DType::F32);
        const Tensor z0 = to_dtype(to_dtype(test::randn({N, N, Cz}, rng), DType::BF16), DType::F32);
        Tensor msa_mask = test::random_mask({S, N}, rng), pair_mask = test::random_mask({N, N}, rng);
        Tensor m = m0.clone(), z = z0.clone();
        Context ctx;
        evoformer_block_forward(w, m, z, msa_mask, pair_mask, ctx);
        for (int64_t chunk : {0, 3}) {
            Context c;
            c.chunk_size = chunk;
            c.activation_dtype = DType::BF16;
            Tensor mb = to_dtype(m0, DType::BF16), zb = to_dtype(z0, DType::BF16);
            evoformer_block_forward(w, mb, zb, msa_mask, pair_mask, c);
            ASSERT_EQ(mb.dtype(), DType::BF16);
            ASSERT_EQ(zb.dtype(), DType::BF16);
            const char* what = extra ? "extra" : "evoformer";
            // About 2^-9 per rounding, a few roundings per element across the block's residual updates.
            EXPECT_LE(rel_diff(mb, m), 1e-2) << what << " msa, chunk " << chunk;
            EXPECT_LE(rel_diff(zb, z), 1e-2) << what << " pair, chunk " << chunk;
            EXPECT_GT(rel_diff(zb, z), 0.0) << what << ": bfloat16 storage changed nothing";
        }
    }
}

// The embedders write bfloat16 activations block by block: the input and extra-MSA embedders give exactly
// the float32 results rounded once, at every block size; the recycling embedder's bfloat16 pair (one
// rounding of the summed update) is within one bfloat16 rounding of the float32 result.
TEST(Chunking, EmbeddersWriteBf16Activations) {
    std::mt19937 rng(33);
    ParamLookup get = [](const std::string& k) { return small_params().get(k); };
    const std::string scope = "alphafold/alphafold_iteration/evoformer";
    InputEmbedderWeights in;
    RecyclingEmbedderWeights rec;
    ExtraMsaEmbedderWeights ex;
    bind_params(in, scope, get);
    bind_params(rec, scope, get);
    bind_params(ex, scope, get);
    const int64_t N = 11, S = 3, E = 9, Cm = in.preprocess_1d.weights.size(1), Cz = in.left_single.weights.size(1),
                  Ce = ex.extra_msa_activations.weights.size(1);
    Tensor tf = test::randn({N, 22}, rng), mf = test::randn({S, N, 49}, rng), ri = Tensor::empty({N}, DType::I64);
    for (int64_t i = 0; i < N; ++i) ri.data<int64_t>()[i] = i < 6 ? i : i + 50;
    Tensor em = Tensor::empty({E, N}, DType::I64), hd = test::random_mask({E, N}, rng), dv = test::randn({E, N}, rng);
    for (int64_t i = 0; i < E * N; ++i) em.data<int64_t>()[i] = static_cast<int64_t>(rng() % 23);
    Context ref;
    Tensor msa32 = Tensor::empty({S, N, Cm}), pair32 = Tensor::empty({N, N, Cz}), extra32 = Tensor::empty({E, N, Ce});
    input_embedder_forward(in, tf, ri, mf, msa32, pair32, ref);
    extra_msa_embedder_forward(ex, em, hd, dv, extra32, ref);
    Tensor prev_row = test::randn({N, Cm}, rng), prev_pair = to_dtype(test::randn({N, N, Cz}, rng), DType::BF16);
    Tensor prev_pb = test::randn({N, 3}, rng, 8.f), row32 = test::randn({N, Cm}, rng);
    Tensor rec32 = to_dtype(to_dtype(pair32, DType::BF16), DType::F32), row_ref = row32.clone();
    recycling_embedder_forward(rec, prev_row, prev_pair, prev_pb, row_ref, rec32, ref);
    std::vector<double> pair_rounded = test::to_f64(to_dtype(pair32, DType::BF16));
    for (int64_t chunk : {0, 1, 4}) {
        Context c;
        c.chunk_size = chunk;
        Tensor msa = Tensor::empty({S, N, Cm}), pair = Tensor::empty({N, N, Cz}, DType::BF16);
        Tensor extra = Tensor::empty({E, N, Ce}, DType::BF16);
        input_embedder_forward(in, tf, ri, mf, msa, pair, c);
        extra_msa_embedder_forward(ex, em, hd, dv, extra, c);
        test::expect_close(pair, pair_rounded, 0, 0, "input embedder pair, chunk " + std::to_string(chunk));
        test::expect_close(extra, test::to_f64(to_dtype(extra32, DType::BF16)), 0, 0, "extra-MSA embedder");
        test::expect_close(msa, test::to_f64(msa32), 0, 0, "input embedder msa");
        Tensor row = row32.clone();
        recycling_embedder_forward(rec, prev_row, prev_pair, prev_pb, row, pair, c);
        // One bfloat16 rounding (relative 2^-8) of the float32 sum.
        test::expect_close(pair, test::to_f64(rec32), 1e-6, std::ldexp(1.0, -8), "recycled pair, chunk " + std::to_string(chunk));
        EXPECT_GT(rel_diff(pair, pair32), 1e-2);  // the recycling update did change the pair
        test::expect_close(row, test::to_f64(row_ref), 0, 0, "recycled first row");
    }
}

// The device plan's terms for CUDA: bfloat16 GEMM operand copies sit beside the workspace arena (plan peak
// minus workspace grows by exactly them), and at S=128, N=1024 unchunked the largest is the pair transition's
// hidden rows, [N*N, 4*128] in bfloat16 = 1 GiB, which is what an H200 measured (bf16 GEMMs raised one block's
// device peak by 1 GiB + 128 KiB over bf16 storage alone, docs/GPU.md). The CUDA attention's logits chunk is
// at most 64 Mi floats, where the CPU holds one [N, N] logits matrix per thread.
TEST(Chunking, DevicePlanCountsBf16GemmCopiesAndTheLogitsChunk) {
    BlockSizes b;
    b.n_seq = 128;
    b.n_res = 1024;
    b.threads = 1;
    b.act_bytes = 2;
    b.cuda = true;
    EXPECT_EQ(block_gemm_copy_bytes(b, 0), 0u);
    const ChunkPlan storage = plan_blocks({b}, 0, 0, 0);
    b.bf16_gemm_copies = true;
    EXPECT_EQ(block_gemm_copy_bytes(b, 0), size_t(1) << 30);
    const ChunkPlan gemms = plan_blocks({b}, 0, 0, 0);
    EXPECT_EQ(gemms.predicted_workspace_bytes, storage.predicted_workspace_bytes);
    EXPECT_EQ(gemms.predicted_peak_bytes - storage.predicted_peak_bytes, size_t(1) << 30);
    // Chunked, the copies shrink with the rows (pair transition at 64 rows of N: 64 * 1024 * 512 elements).
    EXPECT_LT(block_gemm_copy_bytes(b, 64), block_gemm_copy_bytes(b, 0) / 4);
    // Triangle attention's workspace: the CPU's per-thread logits rows against the CUDA chunk (N=1024, 4 heads:
    // 4 Mi floats per query row block of 1, all 1024 rows = 4 Gi floats > the 64 Mi cap) and the CUDA
    // attention's contiguous copy of a transposed mask (1024 x 1024 floats).
    auto tri = [](const BlockSizes& s) {
        for (auto& [name, bytes] : block_workspace_bytes(s, 0))
            if (name == "triangle_attention") return bytes;
        return size_t(0);
    };
    BlockSizes cpu = b;
    cpu.cuda = false;
    EXPECT_EQ(tri(b) - tri(cpu), (size_t(64) << 20) * 4 /* logits chunk */ - size_t(1024) * 1024 * 4 /* CPU rows */ +
                                     size_t(1024) * 1024 * 4 /* mask copy */);
}
