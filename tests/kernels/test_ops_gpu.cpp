// CUDA ops equal the CPU ops (label gpu; every test skips itself without a GPU).
//
// Each test draws random inputs on the host, builds the same views (strided rows, transposes, permutes,
// broadcasts) over a host tensor and its device copy, runs the op on both backends and compares; for
// in-place ops the whole underlying buffer is compared, so writes outside the view are caught too.
// Tolerance: |gpu - cpu| <= 1e-5 * (|cpu| + max|cpu|), fp32 with different summation orders.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "kernels/device.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/offload.h"
#include "kernels/ops.h"
#include "test_util.h"

using namespace axfold;

namespace {

#define REQUIRE_GPU() \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

using View = std::function<Tensor(const Tensor&)>;

Tensor dev(const Tensor& h) { return h.to(Device::CUDA); }

void expect_match(const Tensor& gpu, const Tensor& cpu, const std::string& what, double rtol = 1e-5) {
    ASSERT_EQ(gpu.device(), Device::CUDA) << what;
    std::vector<double> r = test::to_f64(cpu);
    double mx = 0;
    for (double v : r) mx = std::max(mx, std::fabs(v));
    test::expect_close(gpu.to(Device::CPU), r, rtol * mx, rtol, what);
}

Tensor positive(const Shape& shape, std::mt19937& rng) {
    Tensor t = test::randn(shape, rng);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = std::fabs(t.f32()[i]) + 0.25f;
    return t;
}

}  // namespace

TEST(GpuOps, MatmulAllLayoutsAlphaBeta) {
    REQUIRE_GPU();
    std::mt19937 rng(1);
    const int64_t M = 37, K = 29, N = 53;
    for (int ta = 0; ta < 2; ++ta) {
        for (int tb = 0; tb < 2; ++tb) {
            Tensor a = ta ? test::randn({K, M}, rng) : test::randn({M, K}, rng);
            Tensor b = tb ? test::randn({N, K}, rng) : test::randn({K, N}, rng);
            View va = [&](const Tensor& t) { return ta ? t.transpose(0, 1) : t; };
            View vb = [&](const Tensor& t) { return tb ? t.transpose(0, 1) : t; };
            Tensor c = test::randn({M, N}, rng), cd = dev(c);
            matmul(va(a), vb(b), c, 0.7f, 0.3f);
            matmul(va(dev(a)), vb(dev(b)), cd, 0.7f, 0.3f);
            expect_match(cd, c, "matmul ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
        }
    }
}

TEST(GpuOps, MatmulBatchedStridedAndBroadcast) {
    REQUIRE_GPU();
    std::mt19937 rng(2);
    const int64_t M = 9, K = 13, N = 11;
    // fp32, and bf16: there the operands are converted over their memory spans (stride-0 batch dims included)
    // and read with their own strides, against the CPU's emulation.
    for (MatmulPrecision p : {MatmulPrecision::Fp32, MatmulPrecision::Bf16}) {
        MatmulPrecisionScope scope(p);
        const double tol = p == MatmulPrecision::Fp32 ? 1e-5 : 1e-4;
        const std::string tag = std::string(" ") + precision_name(p);
        // a [2, 3, M, K] with non-uniform batch strides; b [3, K, N] transposed, broadcast over dim 0;
        // c [2, 3, M, N] rows padded to N + 3.
        Tensor a = test::randn({2, M, 3, K}, rng), b = test::randn({3, N, K}, rng);
        Tensor c = test::randn({2, 3, M, N + 3}, rng), cd = dev(c);
        View va = [](const Tensor& t) { return t.permute({0, 2, 1, 3}); };
        View vb = [](const Tensor& t) { return t.transpose(1, 2); };
        View vc = [&](const Tensor& t) { return t.slice(3, 0, N); };
        matmul(va(a), vb(b), vc(c), 1.f, 0.5f);
        matmul(va(dev(a)), vb(dev(b)), vc(cd), 1.f, 0.5f);
        expect_match(cd, c, "matmul batched strided" + tag, tol);

        // a broadcast with expand (batch stride 0), b with a size-1 batch dim; uniform batch strides in c.
        Tensor a1 = test::randn({1, 3, M, K}, rng), b1 = test::randn({1, 3, K, N}, rng);
        Tensor c1 = test::randn({4, 3, M, N}, rng), c1d = dev(c1);
        matmul(a1.expand({4, 3, M, K}), b1, c1);
        matmul(dev(a1).expand({4, 3, M, K}), dev(b1), c1d);
        expect_match(c1d, c1, "matmul broadcast batch" + tag, tol);

        // Rank-2 b against a rank-3 a (the linear layout), plus a single-row and single-column case.
        Tensor a2 = test::randn({5, M, K}, rng), b2 = test::randn({K, N}, rng), c2 = Tensor::empty({5, M, N});
        Tensor c2d = Tensor::empty({5, M, N}, DType::F32, Device::CUDA);
        matmul(a2, b2, c2);
        matmul(dev(a2), dev(b2), c2d);
        expect_match(c2d, c2, "matmul rank-2 b" + tag, tol);
        Tensor r = test::randn({1, K}, rng), col = test::randn({K, 1}, rng), o = Tensor::empty({1, 1});
        Tensor od = Tensor::empty({1, 1}, DType::F32, Device::CUDA);
        matmul(r, col, o);
        matmul(dev(r), dev(col), od);
        expect_match(od, o, "matmul 1x1" + tag, tol);
    }
}

TEST(GpuOps, LinearLayoutsBiasAndAccumulate) {
    REQUIRE_GPU();
    std::mt19937 rng(3);
    const int64_t c_in = 24;
    Tensor w = test::randn({c_in, 4, 8}, rng, 0.3f), bias = test::randn({4, 8}, rng);
    Tensor wd = dev(w), bd = dev(bias);
    struct Case {
        const char* name;
        Shape base;
        View view;  // -> [5, 7, c_in]
    };
    const Case cases[] = {
        {"strided rows", {5, 7, 30}, [](const Tensor& t) { return t.slice(2, 3, 3 + 24); }},
        {"permuted", {7, 5, 24}, [](const Tensor& t) { return t.permute({1, 0, 2}); }},
        {"contiguous", {5, 7, 24}, [](const Tensor& t) { return t; }},
    };
    for (const Case& cs : cases) {
        Tensor x = test::randn(cs.base, rng), xd = dev(x);
        for (float beta : {0.f, 1.f}) {
            for (bool with_bias : {true, false}) {
                Tensor y = test::randn({5, 7, 4, 8}, rng), yd = dev(y);
                linear(cs.view(x), w, with_bias ? bias : Tensor(), y, beta);
                linear(cs.view(xd), wd, with_bias ? bd : Tensor(), yd, beta);
                expect_match(yd, y, std::string("linear ") + cs.name + (with_bias ? " bias" : "") + " beta=" +
                                        std::to_string(beta));
            }
        }
    }
    // Column-major input (a transposed view) and an output-projection weight [H, c, c_out].
    Tensor xt = test::randn({c_in, 35}, rng), wo = test::randn({4, 6, 10}, rng), bo = test::randn({10}, rng);
    Tensor y = Tensor::empty({35, 10}), yd = Tensor::empty({35, 10}, DType::F32, Device::CUDA);
    linear(xt.transpose(0, 1), wo, bo, y);
    linear(dev(xt).transpose(0, 1), dev(wo), dev(bo), yd);
    expect_match(yd, y, "linear column-major x");
    // Workspace-allocating overload on a CUDA context.
    Context cpu_ctx, gpu_ctx(Device::CUDA);
    Tensor x = test::randn({3, 11, c_in}, rng);
    Tensor ya = linear(x, w, bias, cpu_ctx.ws), yad = linear(dev(x), wd, bd, gpu_ctx.ws);
    expect_match(yad, ya, "linear workspace overload");
}

TEST(GpuOps, LayerNormRowsBlockInPlaceChannelsMajor) {
    REQUIRE_GPU();
    std::mt19937 rng(4);
    // Rows in registers (a warp up to 1024, a block of 256 up to 8192), the block loop beyond.
    for (int64_t C : {1, 3, 96, 128, 1000, 1024, 1025, 1500, 5000, 8192, 8196}) {
        Tensor g = test::randn({C}, rng), b = test::randn({C}, rng), gd = dev(g), bd = dev(b);
        // Contiguous rows: 16-byte chunks when C % 4 == 0.
        Tensor xc = test::randn({6, 10, C}, rng, 2.f), yc = Tensor::empty({6, 10, C});
        Tensor ycd = Tensor::empty({6, 10, C}, DType::F32, Device::CUDA);
        layer_norm(xc, g, b, 1e-5f, yc);
        layer_norm(dev(xc), gd, bd, 1e-5f, ycd);
        expect_match(ycd, yc, "layer_norm contiguous C=" + std::to_string(C));
        // Strided rows: [6, 10, C] inside [6, 10, C + 4].
        Tensor x = test::randn({6, 10, C + 4}, rng, 2.f), xd = dev(x);
        View v = [&](const Tensor& t) { return t.slice(2, 1, 1 + C); };
        Tensor y = test::randn({6, 10, C}, rng), yd = dev(y);
        layer_norm(v(x), g, b, 1e-5f, y);
        layer_norm(v(xd), gd, bd, 1e-5f, yd);
        expect_match(yd, y, "layer_norm C=" + std::to_string(C));
        // In place over the strided view (y aliases x); the padding columns must stay untouched.
        layer_norm(v(x), g, b, 1e-5f, v(x));
        layer_norm(v(xd), gd, bd, 1e-5f, v(xd));
        expect_match(xd, x, "layer_norm in place C=" + std::to_string(C));
        // Broadcast input rows (stride 0).
        Tensor x1 = test::randn({1, 4, C}, rng), y1 = Tensor::empty({3, 4, C});
        Tensor y1d = Tensor::empty({3, 4, C}, DType::F32, Device::CUDA);
        layer_norm(x1.expand({3, 4, C}), g, b, 1e-5f, y1);
        layer_norm(dev(x1).expand({3, 4, C}), gd, bd, 1e-5f, y1d);
        expect_match(y1d, y1, "layer_norm broadcast rows C=" + std::to_string(C));
    }
    // Channel-major [M, C] views (stride(0) == 1) of [C, M] memory.
    const int64_t M = 300, C = 64;
    Tensor g = test::randn({C}, rng), b = test::randn({C}, rng);
    Tensor x = test::randn({C, M}, rng, 3.f), y = test::randn({C, M + 5}, rng), yd = dev(y);
    View vx = [](const Tensor& t) { return t.transpose(0, 1); };
    View vy = [&](const Tensor& t) { return t.slice(1, 0, M).transpose(0, 1); };
    layer_norm(vx(x), g, b, 1e-5f, vy(y));
    layer_norm(vx(dev(x)), dev(g), dev(b), 1e-5f, vy(yd));
    expect_match(yd, y, "layer_norm channels-major");
}

TEST(GpuOps, SoftmaxWarpAndBlockWithMaskBias) {
    REQUIRE_GPU();
    std::mt19937 rng(5);
    // Rows in registers (a warp up to 1024, a block up to 8192; 16-byte chunks where aligned), the loop beyond.
    for (int64_t n : {1, 17, 32, 33, 300, 1024, 1025, 1100, 2000, 4104, 5000, 8192, 8193, 8200}) {
        const std::string tag = " n=" + std::to_string(n);
        Tensor mask = test::random_mask({3, 1, n}, rng), bias = test::randn({1, 5, n}, rng);
        for (int i = 0; i < n; ++i) mask.f32()[i] = 0.f;  // a fully masked row
        Tensor md = dev(mask), bd = dev(bias);
        // Contiguous x with broadcast mask and bias.
        Tensor x = test::randn({3, 5, n}, rng, 3.f), xd = dev(x);
        softmax(x, 0.5f, mask.expand({3, 5, n}), bias.expand({3, 5, n}), 1e9f);
        softmax(xd, 0.5f, md.expand({3, 5, n}), bd.expand({3, 5, n}), 1e9f);
        expect_match(xd, x, "softmax contiguous" + tag);
        // Misaligned strided rows, mask broadcast along the last dim (stride 0), no bias.
        Tensor x2 = test::randn({3, 5, n + 4}, rng, 3.f), x2d = dev(x2);
        Tensor m2 = test::random_mask({3, 5, 1}, rng, 0.3f);
        View v = [&](const Tensor& t) { return t.slice(2, 1, 1 + n); };
        softmax(v(x2), 1.f, m2.expand({3, 5, n}), Tensor(), 1e9f);
        softmax(v(x2d), 1.f, dev(m2).expand({3, 5, n}), Tensor(), 1e9f);
        expect_match(x2d, x2, "softmax strided" + tag);
        // Plain, no mask or bias.
        Tensor x3 = test::randn({7, n}, rng), x3d = dev(x3);
        softmax(x3, 1.f, Tensor(), Tensor(), 1e9f);
        softmax(x3d, 1.f, Tensor(), Tensor(), 1e9f);
        expect_match(x3d, x3, "softmax plain" + tag);
    }
}

namespace {
void attention_case(int64_t B, int64_t Q, int64_t K, int64_t H, int64_t C, bool masked, uint32_t seed,
                    bool fused = false, bool transposed_mask = false, bool neg_inf_bias = false) {
    std::mt19937 rng(seed);
    // q from a fused [B, Q, 3, H, C] projection, k and v from [B, K, 2, H, C]: strided rows and batches.
    Tensor qkv = test::randn({B, Q, 3, H, C}, rng), kv = test::randn({B, K, 2, H, C}, rng);
    Tensor qkvd = dev(qkv), kvd = dev(kv);
    // A transposed mask (as the attentions along the other axis pass it): the CUDA op copies it contiguous.
    Tensor mask = transposed_mask ? test::random_mask({K, B}, rng).transpose(0, 1) : test::random_mask({B, K}, rng);
    Tensor bias_mem = test::randn({Q, H, K}, rng);
    // A -inf bias on the first 32 keys of one query row: each lane's first logit there is -inf.
    if (neg_inf_bias)
        for (int64_t j = 0; j < std::min<int64_t>(K - 1, 32); ++j) bias_mem.at({0, 0, j}) = -INFINITY;
    View vbias = [](const Tensor& t) { return t.permute({1, 0, 2}); };  // [H, Q, K], non-contiguous
    Tensor out = test::randn({B, Q, H, C + 3}, rng), outd = dev(out);
    View vout = [&](const Tensor& t) { return t.slice(3, 0, C); };
    const float scale = 1.f / std::sqrt(static_cast<float>(C));
    Context cpu_ctx, gpu_ctx(Device::CUDA);
    attention(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), masked ? mask : Tensor(),
              masked ? vbias(bias_mem) : Tensor(), scale, 1e9f, vout(out), cpu_ctx.ws);
    if (fused) {
        if (masked) {  // one batch element fully masked: every logit near -1e9, softmax still uniform-ish
            Tensor m0 = mask.select(0, 0);
            for (int64_t j = 0; j < K; ++j) m0.at({j}) = 0.f;
            attention(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), mask, vbias(bias_mem), scale, 1e9f,
                      vout(out), cpu_ctx.ws);
        }
        cuda::attention_fused(qkvd.select(2, 0), kvd.select(2, 0), kvd.select(2, 1), masked ? dev(mask) : Tensor(),
                              masked ? vbias(dev(bias_mem)) : Tensor(), scale, 1e9f, vout(outd));
    } else {
        const Tensor mask_d = transposed_mask ? dev(mask.transpose(0, 1).contiguous()).transpose(0, 1) : dev(mask);
        attention(qkvd.select(2, 0), kvd.select(2, 0), kvd.select(2, 1), masked ? mask_d : Tensor(),
                  masked ? vbias(dev(bias_mem)) : Tensor(), scale, 1e9f, vout(outd), gpu_ctx.ws);
    }
    expect_match(outd, out,
                 std::string(fused ? "fused " : "") + "attention B=" + std::to_string(B) + " Q=" + std::to_string(Q) +
                     " K=" + std::to_string(K) + " C=" + std::to_string(C) + (masked ? " masked" : "") +
                     (transposed_mask ? " (transposed mask)" : "") + (neg_inf_bias ? " (-inf bias)" : ""));
}
}  // namespace

TEST(GpuOps, AttentionMatchesCpu) {
    REQUIRE_GPU();
    attention_case(3, 17, 23, 4, 16, true, 6);
    attention_case(3, 17, 23, 4, 16, false, 7);
    attention_case(2, 1, 40, 8, 8, true, 8);
    attention_case(3, 17, 24, 4, 16, true, 9, false, true);  // transposed mask, rows of 24 (16-byte softmax)
    attention_case(2, 9, 70, 4, 16, true, 10, false, false, true);
}

// The flash-style kernel (AXFOLD_FUSED_ATTENTION=1) against the CPU op: every head width template (8, 16,
// 32, 64, and 20 and 48 between them), fewer keys than a warp's lanes, long rows, masks and biases.
TEST(GpuOps, FusedAttentionMatchesCpu) {
    REQUIRE_GPU();
    uint32_t seed = 20;
    for (int64_t C : {8, 16, 20, 32, 48, 64})
        for (bool masked : {true, false}) attention_case(3, 17, 23, 4, C, masked, ++seed, true);
    attention_case(2, 5, 7, 2, 32, true, ++seed, true);
    attention_case(2, 64, 1100, 4, 32, true, ++seed, true);
    attention_case(1, 300, 3000, 4, 32, true, ++seed, true);
    attention_case(2, 9, 70, 4, 16, true, ++seed, true, false, true);  // lanes whose first logits are -inf
    attention_case(2, 9, 20, 4, 16, true, ++seed, true, false, true);  // K < 32: every lane's first logit but one
}

// The tensor-core flash kernel (AXFOLD_FUSED_ATTENTION=1 under --precision tf32/bf16) against the CPU op with
// TF32 GEMMs (operands and probabilities rounded to TF32, as the kernel rounds them, though its probabilities
// are unnormalised and its sums run in another order): head widths padded to 16, 32 and 64, key counts that are
// not multiples of the 32-key tile, query counts not multiples of the 32-row block, masks (one batch element
// fully masked) and permuted biases.
namespace {
// The flash kernel against the CPU op under `p` (TF32 or bf16: the CPU emulates that precision's rounding of
// the GEMM operands, attention probabilities included), within tol of the largest output.
void flash_attention_cases(MatmulPrecision p, double tol) {
    test::PrecisionScope scope(p);
    uint32_t seed = 40;
    struct Case { int64_t B, Q, K, H, C; };
    for (const Case& t : {Case{3, 17, 23, 4, 16}, Case{2, 33, 70, 4, 32}, Case{2, 64, 96, 2, 64}, Case{1, 5, 7, 3, 8},
                          Case{2, 40, 300, 4, 20}, Case{1, 130, 1100, 4, 32}}) {
        std::mt19937 rng(++seed);
        Tensor qkv = test::randn({t.B, t.Q, 3, t.H, t.C}, rng), kv = test::randn({t.B, t.K, 2, t.H, t.C}, rng);
        Tensor mask = test::random_mask({t.B, t.K}, rng), bias = test::randn({t.Q, t.H, t.K}, rng).permute({1, 0, 2});
        for (int64_t j = 0; j < t.K; ++j) mask.at({0, j}) = 0.f;  // a fully masked batch element
        // A -inf bias over the first 32-key tile of one query row (a row whose first tile has no finite logit).
        if (t.K > 40)
            for (int64_t j = 0; j < 32; ++j) bias.at({0, 0, j}) = -INFINITY;
        Tensor out = Tensor::empty({t.B, t.Q, t.H, t.C}), outd = Tensor::empty({t.B, t.Q, t.H, t.C}, DType::F32, Device::CUDA);
        const float scale = 1.f / std::sqrt(static_cast<float>(t.C));
        Context cpu_ctx;
        attention(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), mask, bias, scale, 1e9f, out, cpu_ctx.ws);
        const Tensor qkvd = dev(qkv), kvd = dev(kv);
        cuda::attention_flash_tc(qkvd.select(2, 0), kvd.select(2, 0), kvd.select(2, 1), dev(mask),
                                 dev(bias.contiguous()), scale, 1e9f, outd);
        expect_match(outd, out,
                     std::string("flash tc ") + precision_name(p) + " B=" + std::to_string(t.B) + " Q=" +
                         std::to_string(t.Q) + " K=" + std::to_string(t.K) + " C=" + std::to_string(t.C),
                     tol);
    }
}
}  // namespace

// The tensor-core flash kernel (AXFOLD_FUSED_ATTENTION=1 under --precision tf32/bf16) against the CPU op with
// TF32 GEMMs (operands and probabilities rounded to TF32, as the kernel rounds them, though its probabilities
// are unnormalised and its sums run in another order): head widths padded to 16, 32 and 64, key counts that are
// not multiples of the 32-key tile, query counts not multiples of the 32-row block, masks (one batch element
// fully masked) and permuted biases.
TEST(GpuOps, FlashAttentionTensorCoresMatchCpuTf32) {
    REQUIRE_GPU();
    flash_attention_cases(MatmulPrecision::Tf32, 5e-3);
}

// The same under bf16 GEMMs: q, K, V and the probabilities rounded to bfloat16 as the CPU's emulation rounds
// them (the bf16 tolerance; the kernel's probabilities are rounded before normalising).
TEST(GpuOps, FlashAttentionTensorCoresMatchCpuBf16) {
    REQUIRE_GPU();
    flash_attention_cases(MatmulPrecision::Bf16, 1e-2);
}

TEST(GpuOps, AttentionChunkedLongRows) {
    REQUIRE_GPU();
    // 8 * 1000 * 1100 logits per batch element: the 64 Mi-float budget holds 7, so 10 runs as 7 + 3,
    // and rows of 1100 take the block-per-row softmax.
    attention_case(10, 1000, 1100, 8, 8, true, 9);
}

namespace {
using Op = std::function<void(const Tensor& x, const Tensor& y)>;

void elementwise_case(const std::string& name, const Op& op, std::mt19937& rng) {
    const Shape s = {4, 33, 65};
    // Contiguous (aligned and misaligned by one element).
    for (int64_t shift : {0, 1}) {
        const int64_t n = shape_numel(s);
        Tensor xb = test::randn({n + 1}, rng), yb = positive({n + 1}, rng), xbd = dev(xb);
        View v = [&](const Tensor& t) { return t.slice(0, shift, shift + n).view(s); };
        op(v(xb), v(yb));
        op(v(xbd), v(dev(yb)));
        expect_match(xbd, xb, name + " contiguous shift=" + std::to_string(shift));
    }
    // Permuted x, y broadcast with stride 0.
    {
        Tensor x = test::randn({65, 4, 33}, rng), y = positive({1, 33, 1}, rng), xd = dev(x);
        View vx = [](const Tensor& t) { return t.permute({1, 2, 0}); };
        op(vx(x), y.expand(s));
        op(vx(xd), dev(y).expand(s));
        expect_match(xd, x, name + " permuted/broadcast");
    }
    // Seven dims that collapse to three; on the device x aliases y (the CPU reference reads a clone).
    {
        Tensor x = test::randn({2, 3, 2, 3, 2, 3, 4}, rng), xd = dev(x);
        View vx = [](const Tensor& t) { return t.permute({0, 1, 2, 3, 4, 6, 5}); };
        op(vx(x), vx(x.clone()));
        op(vx(xd), vx(xd));
        expect_match(xd, x, name + " 7-d aliased");
    }
}
}  // namespace

TEST(GpuOps, ElementwiseMatchCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(10);
    elementwise_case("add", [](const Tensor& x, const Tensor& y) { add(x, y, 0.3f); }, rng);
    elementwise_case("mul", [](const Tensor& x, const Tensor& y) { mul(x, y); }, rng);
    elementwise_case("sigmoid_mul", [](const Tensor& x, const Tensor& y) { sigmoid_mul(x, y); }, rng);
    elementwise_case("div_eps", [](const Tensor& x, const Tensor& y) { div_eps(x, y, 1e-3f); }, rng);
    elementwise_case("scale", [](const Tensor& x, const Tensor&) { scale(x, 1.7f); }, rng);
    elementwise_case("sigmoid", [](const Tensor& x, const Tensor&) { sigmoid(x); }, rng);
    elementwise_case("relu", [](const Tensor& x, const Tensor&) { relu(x); }, rng);
}

TEST(GpuOps, ElementwiseTooManyDimsIsAnError) {
    REQUIRE_GPU();
    std::mt19937 rng(11);
    // Fully reversed 7-d strides cannot be merged below 7 dims.
    Tensor x = dev(test::randn({2, 3, 2, 3, 2, 3, 4}, rng)).permute({6, 5, 4, 3, 2, 1, 0});
    EXPECT_THROW(scale(x, 2.f), Error);
}

TEST(GpuOps, CopyStridedAndAcrossDevices) {
    REQUIRE_GPU();
    std::mt19937 rng(12);
    Tensor base = test::randn({5, 7, 12}, rng), based = dev(base);
    // Materialise a permuted view on the device.
    Tensor p = based.permute({2, 0, 1}).contiguous();
    ASSERT_EQ(p.device(), Device::CUDA);
    expect_match(p, base.permute({2, 0, 1}).contiguous(), "copy permuted -> contiguous");
    // Permuted source into a strided destination; the rest of the destination is untouched.
    Tensor dst = test::randn({12, 5, 9}, rng), dstd = dev(dst);
    View vd = [](const Tensor& t) { return t.slice(2, 1, 8); };
    copy(vd(dst), base.permute({2, 0, 1}).slice(2, 0, 7));
    copy(vd(dstd), based.permute({2, 0, 1}).slice(2, 0, 7));
    expect_match(dstd, dst, "copy strided -> strided");
    // Broadcast source.
    Tensor row = test::randn({1, 12}, rng), e = Tensor::empty({6, 12});
    Tensor ed = Tensor::empty({6, 12}, DType::F32, Device::CUDA);
    copy(e, row.expand({6, 12}));
    copy(ed, dev(row).expand({6, 12}));
    expect_match(ed, e, "copy broadcast");
    // Host strided -> device strided and device strided -> host strided.
    Tensor d2 = Tensor::zeros({12, 5, 9}, DType::F32, Device::CUDA), h2 = Tensor::zeros({12, 5, 9});
    copy(vd(d2), base.permute({2, 0, 1}).slice(2, 0, 7));
    copy(vd(h2), base.permute({2, 0, 1}).slice(2, 0, 7));
    expect_match(d2, h2, "copy host -> device strided");
    Tensor h3 = Tensor::zeros({12, 5, 9});
    copy(vd(h3), based.permute({2, 0, 1}).slice(2, 0, 7));
    test::expect_close(h3, test::to_f64(h2), 0, 0, "copy device -> host strided");
    // Permutes large enough for the tiled transpose (both sides coalesced), with edge tiles, with and without
    // a batch dim, a strided destination and 2-byte elements; and two the gather takes ({3, 1, 2, 0}: only 4
    // rows of the source's contiguous dim; {0, 2, 1, 3}: the last dim contiguous on both sides).
    Tensor big = test::randn({4, 37, 45, 70}, rng), bigd = dev(big);
    for (const std::vector<int>& perm : {std::vector<int>{0, 3, 1, 2}, std::vector<int>{3, 0, 1, 2},
                                         std::vector<int>{3, 1, 2, 0}, std::vector<int>{0, 2, 1, 3}}) {
        expect_match(bigd.permute(perm).contiguous(), big.permute(perm).contiguous(), "copy permute");
    }
    Tensor wide = test::randn({70, 4, 37, 50}, rng), wided = dev(wide);
    View vw = [](const Tensor& t) { return t.slice(3, 2, 47); };
    copy(vw(wide), big.permute({3, 0, 1, 2}));
    copy(vw(wided), bigd.permute({3, 0, 1, 2}));
    expect_match(wided, wide, "copy transpose into a strided destination");
    Tensor half = to_dtype(test::randn({33, 40, 19}, rng), DType::BF16);
    Tensor halft = half.to(Device::CUDA).permute({2, 0, 1}).contiguous().to(Device::CPU);
    test::expect_close(halft, test::to_f64(half.permute({2, 0, 1})), 0, 0, "bf16 copy transpose (tiled)");
    // Integer dtypes of 8 and 1 bytes.
    Tensor i64 = Tensor::empty({4, 6}, DType::I64);
    Tensor u8 = Tensor::empty({4, 6}, DType::U8);
    for (int64_t i = 0; i < 24; ++i) {
        i64.data<int64_t>()[i] = (int64_t(1) << 40) + i * 7919;
        u8.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37);
    }
    Tensor i64t = i64.to(Device::CUDA).transpose(0, 1).contiguous().to(Device::CPU);
    Tensor u8t = u8.to(Device::CUDA).transpose(0, 1).contiguous().to(Device::CPU);
    for (int64_t r = 0; r < 6; ++r)
        for (int64_t c = 0; c < 4; ++c) {
            EXPECT_EQ(i64t.at<int64_t>({r, c}), i64.at<int64_t>({c, r}));
            EXPECT_EQ(u8t.at<uint8_t>({r, c}), u8.at<uint8_t>({c, r}));
        }
}

TEST(GpuOps, DeviceWorkspaceReusesItsChunks) {
    REQUIRE_GPU();
    Workspace ws(Device::CUDA);
    void* first = nullptr;
    size_t capacity = 0;
    for (int round = 0; round < 3; ++round) {
        WorkspaceScope scope(ws);
        Tensor a = ws.alloc({1000, 100});
        Tensor z = ws.zeros({333, 7});
        EXPECT_EQ(a.device(), Device::CUDA);
        test::expect_close(z.to(Device::CPU), std::vector<double>(333 * 7, 0.0), 0, 0, "workspace zeros");
        if (round == 0) {
            first = a.raw();
            capacity = ws.capacity_bytes();
        } else {
            EXPECT_EQ(a.raw(), first);
            EXPECT_EQ(ws.capacity_bytes(), capacity);
        }
    }
}

TEST(GpuOps, MixedDevicesAreAnError) {
    REQUIRE_GPU();
    std::mt19937 rng(13);
    Tensor a = test::randn({4, 5}, rng), b = test::randn({5, 3}, rng);
    Tensor c = Tensor::empty({4, 3}, DType::F32, Device::CUDA);
    EXPECT_THROW(matmul(a, dev(b), c), Error);
    EXPECT_THROW(add(c, Tensor::empty({4, 3})), Error);
    EXPECT_THROW(linear(dev(a), b, Tensor(), c), Error);
}

TEST(GpuOps, SoftmaxAndLayerNormBackward) {
    REQUIRE_GPU();
    std::mt19937 rng(41);
    // softmax: rows in registers (warp, block; 16-byte chunks when n % 4 == 0), the loop beyond 8192;
    // layer norm: one fused pass up to 1024 channels (single elements, 16-byte chunks), three kernels beyond.
    for (int64_t n : {5, 128, 1001, 1024, 3000, 3001, 9000}) {
        Tensor x = test::randn({33, n}, rng), dy = test::randn({33, n}, rng);
        Tensor y = x.clone();
        softmax(y, 0.5f, Tensor(), Tensor(), 1e9f);
        Tensor dx = Tensor::empty({33, n}), dxd = dev(dx);
        softmax_backward(y, dy, 0.5f, dx);
        softmax_backward(dev(y), dev(dy), 0.5f, dxd);
        expect_match(dxd, dx, "softmax_backward n=" + std::to_string(n));

        Tensor g = test::randn({n}, rng), dg = Tensor::zeros({n}), db = Tensor::zeros({n});
        Tensor dgd = dev(dg), dbd = dev(db);
        Tensor big = test::randn({700, n}, rng), dbig = test::randn({700, n}, rng);  // several row slices
        Tensor lx = Tensor::empty({700, n}), lxd = dev(lx);
        layer_norm_backward(big, g, 1e-5f, dbig, lx, dg, db);
        layer_norm_backward(dev(big), dev(g), 1e-5f, dev(dbig), lxd, dgd, dbd);
        expect_match(lxd, lx, "layer_norm_backward dx C=" + std::to_string(n), 1e-4);
        expect_match(dgd, dg, "layer_norm_backward dscale C=" + std::to_string(n), 1e-4);
        expect_match(dbd, db, "layer_norm_backward doffset C=" + std::to_string(n), 1e-4);
        // dx aliasing dy (allowed by ops.h): same dx, and the parameter sums still see the original dy.
        Tensor dyd = dev(dbig), dg2 = Tensor::zeros({n}).to(Device::CUDA), db2 = Tensor::zeros({n}).to(Device::CUDA);
        layer_norm_backward(dev(big), dev(g), 1e-5f, dyd, dyd, dg2, db2);
        expect_match(dyd, lx, "layer_norm_backward in place dx C=" + std::to_string(n), 1e-4);
        expect_match(dg2, dg, "layer_norm_backward in place dscale C=" + std::to_string(n), 1e-4);
    }
    // Enough rows that every warp of the fused layer-norm backward walks several (its grid is capped).
    const int64_t rows = 20000, C = 128;
    Tensor x = test::randn({rows, C}, rng), dy = test::randn({rows, C}, rng), g = test::randn({C}, rng);
    Tensor dx = Tensor::empty({rows, C}), dg = Tensor::zeros({C}), db = Tensor::zeros({C});
    Tensor dxd = dev(dx), dgd = dev(dg), dbd = dev(db);
    layer_norm_backward(x, g, 1e-5f, dy, dx, dg, db);
    layer_norm_backward(dev(x), dev(g), 1e-5f, dev(dy), dxd, dgd, dbd);
    expect_match(dxd, dx, "layer_norm_backward dx, 20000 rows", 1e-4);
    expect_match(dgd, dg, "layer_norm_backward dscale, 20000 rows", 1e-4);
    expect_match(dbd, db, "layer_norm_backward doffset, 20000 rows", 1e-4);
}

namespace {
// max over elements of |got - ref| / (|ref| + max|ref|): expect_match's measure, as a number.
double rel_distance(const Tensor& got, const Tensor& ref) {
    Tensor g = got.to(Device::CPU);
    double mx = 0, d = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) mx = std::max(mx, (double)std::fabs(ref.f32()[i]));
    for (int64_t i = 0; i < ref.numel(); ++i)
        d = std::max(d, std::fabs((double)g.f32()[i] - ref.f32()[i]) / (std::fabs((double)ref.f32()[i]) + mx));
    return d;
}
// fp32 product of the operands with their mantissas cut to `bits` bits toward zero (truncation).
Tensor truncated_product(const Tensor& a, const Tensor& b, int bits, const Shape& out) {
    auto cut = [bits](const Tensor& t) {
        Tensor c = t.clone();
        for (int64_t i = 0; i < c.numel(); ++i) {
            uint32_t u;
            std::memcpy(&u, c.f32() + i, 4);
            u &= ~((1u << (23 - bits)) - 1u);
            std::memcpy(c.f32() + i, &u, 4);
        }
        return c;
    };
    Tensor c = Tensor::empty(out);
    matmul(cut(a), cut(b), c);
    return c;
}
}  // namespace

// TF32 and bfloat16 GEMMs equal the CPU emulation (operands rounded to nearest-even, fp32 accumulation) up to
// summation order, and differ from fp32. The distances to the emulation, to truncated operands and to fp32
// are printed: this is the test that showed cuBLAS's _FAST_16BF on fp32 operands computing at TF32 accuracy
// on an H200 (2.7e-4 from fp32, as TF32), hence the explicit bfloat16 operands in kernels/cuda/blas.cu.
TEST(GpuOps, ReducedPrecisionMatmulMatchesCpuEmulation) {
    REQUIRE_GPU();
    std::mt19937 rng(42);
    Tensor a = test::randn({3, 200, 256}, rng), b = test::randn({256, 96}, rng);
    Tensor exact = Tensor::empty({3, 200, 96});
    matmul(a, b, exact);
    for (MatmulPrecision p : {MatmulPrecision::Tf32, MatmulPrecision::Bf16}) {
        set_matmul_precision(p);
        Tensor cpu = Tensor::empty({3, 200, 96}), gpu = dev(cpu);
        matmul(a, b, cpu);
        matmul(dev(a), dev(b), gpu);
        set_matmul_precision(MatmulPrecision::Fp32);
        const int bits = p == MatmulPrecision::Bf16 ? 7 : 10;
        const double d_rn = rel_distance(gpu, cpu), d_exact = rel_distance(gpu, exact),
                     d_rz = rel_distance(gpu, truncated_product(a, b, bits, {3, 200, 96}));
        std::printf("matmul %s: relative distance to the CPU emulation (nearest) %.3g, truncated operands %.3g, "
                    "fp32 %.3g\n", precision_name(p), d_rn, d_rz, d_exact);
        expect_match(gpu, cpu, std::string("matmul ") + precision_name(p), 1e-4);
        EXPECT_GT(d_exact, p == MatmulPrecision::Bf16 ? 1e-3 : 1e-5) << precision_name(p) << " as close to fp32 as that";
    }
    // bfloat16 operands of other layouts: a permuted a with b column-major (each converted over its span),
    // and a sparse column slice of a (converted compactly), with beta accumulating into a strided c.
    MatmulPrecisionScope bf16(MatmulPrecision::Bf16);
    Tensor ap = test::randn({256, 3, 200}, rng), bt = test::randn({96, 256}, rng), wide = test::randn({3, 200, 700}, rng);
    View va = [](const Tensor& t) { return t.permute({1, 2, 0}); };  // [3, 200, 256], column-major matrices
    View vb = [](const Tensor& t) { return t.transpose(0, 1); };     // [256, 96], column-major
    View vs = [](const Tensor& t) { return t.slice(2, 10, 266); };   // [3, 200, 256] out of 700 columns
    Tensor c = test::randn({3, 200, 100}, rng), cd = dev(c);
    View vc = [](const Tensor& t) { return t.slice(2, 2, 98); };
    matmul(va(ap), vb(bt), vc(c), 0.5f, 1.f);
    matmul(va(dev(ap)), vb(dev(bt)), vc(cd), 0.5f, 1.f);
    expect_match(cd, c, "matmul bf16 permuted a, column-major b, accumulate", 1e-4);
    matmul(vs(wide), vb(bt), vc(c), 1.f, 0.f);
    matmul(vs(dev(wide)), vb(dev(bt)), vc(cd), 1.f, 0.f);
    expect_match(cd, c, "matmul bf16 sparse slice of a", 1e-4);
}

// relu_backward and the composite linear_backward (cuBLAS GEMMs with transposed views, a ones-row GEMM for the
// bias) against the CPU.
TEST(GpuOps, ReluAndLinearBackward) {
    REQUIRE_GPU();
    std::mt19937 rng(44);
    Tensor y = test::randn({3, 1001}, rng), dy = test::randn({3, 1001}, rng);
    relu(y);
    Tensor dx = Tensor::empty({3, 1001}), dxd = dev(dx);
    relu_backward(y, dy, dx);
    relu_backward(dev(y), dev(dy), dxd);
    expect_match(dxd, dx, "relu_backward");
    Tensor x = test::randn({4, 37, 24}, rng), w = test::randn({24, 4, 8}, rng), g = test::randn({4, 37, 4, 8}, rng);
    Tensor gx = test::randn({4, 37, 24}, rng), gw = test::randn({24, 4, 8}, rng), gb = test::randn({4, 8}, rng);
    Tensor gxd = dev(gx), gwd = dev(gw), gbd = dev(gb);
    Context cpu, gpu(Device::CUDA);
    linear_backward(x, w, g, gx, true, gw, gb, cpu.ws);
    linear_backward(dev(x), dev(w), dev(g), gxd, true, gwd, gbd, gpu.ws);
    expect_match(gxd, gx, "linear_backward dx", 1e-4);
    expect_match(gwd, gw, "linear_backward dw", 1e-4);
    expect_match(gbd, gb, "linear_backward dbias", 1e-4);
}

// The composite attention backward on the device (batched cuBLAS GEMMs on permuted views, the CUDA softmax and
// its backward, a ones-row GEMM for the bias gradient) against the CPU; a transposed mask as column attention
// passes it.
TEST(GpuOps, AttentionBackwardMatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(45);
    const int64_t B = 5, Q = 33, K = 40, H = 4, C = 16;
    Tensor qkv = test::randn({B, Q, 3, H, C}, rng), kv = test::randn({B, K, 2, H, C}, rng);
    Tensor mask = test::random_mask({K, B}, rng).transpose(0, 1), bias = test::randn({Q, H, K}, rng).permute({1, 0, 2});
    Tensor dout = test::randn({B, Q, H, C}, rng);
    Tensor dq = Tensor::empty({B, Q, H, C}), dk = Tensor::empty({B, K, H, C}), dv = Tensor::empty({B, K, H, C});
    Tensor db = test::randn({H, Q, K}, rng);
    Tensor dqd = dev(dq), dkd = dev(dk), dvd = dev(dv), dbd = dev(db);
    Context cpu, gpu(Device::CUDA);
    attention_backward(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), mask, bias, 0.25f, 1e9f, dout, dq, dk, dv, db,
                       cpu.ws);
    const Tensor qkvd = dev(qkv), kvd = dev(kv);
    attention_backward(qkvd.select(2, 0), kvd.select(2, 0), kvd.select(2, 1),
                       dev(mask.transpose(0, 1).contiguous()).transpose(0, 1), dev(bias.contiguous()), 0.25f, 1e9f,
                       dev(dout), dqd, dkd, dvd, dbd, gpu.ws);
    expect_match(dqd, dq, "attention_backward dq", 1e-4);
    expect_match(dkd, dk, "attention_backward dk", 1e-4);
    expect_match(dvd, dv, "attention_backward dv", 1e-4);
    expect_match(dbd, db, "attention_backward dbias", 1e-4);
}

TEST(GpuOps, SigmoidMulBackward) {
    REQUIRE_GPU();
    std::mt19937 rng(43);
    Tensor x = test::randn({3, 1001}, rng), g = test::randn({3, 1001}, rng, 3.f), dy = test::randn({3, 1001}, rng);
    Tensor dx = Tensor::empty({3, 1001}), dg = Tensor::empty({3, 1001}), dxd = dev(dx), dgd = dev(dg);
    sigmoid_mul_backward(x, g, dy, dx, dg);
    sigmoid_mul_backward(dev(x), dev(g), dev(dy), dxd, dgd);
    expect_match(dxd, dx, "sigmoid_mul_backward dx");
    expect_match(dgd, dg, "sigmoid_mul_backward dgate");
}

TEST(GpuOps, FillWritesOnlyTheView) {
    REQUIRE_GPU();
    std::mt19937 rng(44);
    Tensor h = test::randn({5, 70}, rng), d = dev(h);
    fill(h.slice(1, 3, 60).transpose(0, 1), -1.5f);
    fill(d.slice(1, 3, 60).transpose(0, 1), -1.5f);
    expect_match(d, h, "fill strided view");
}

// bfloat16 activations on the device: conversions both ways (strided), the residual add (each sum rounded
// once, with broadcast and transposed views) and layer norm reading bfloat16 (warp, block and
// channel-major paths) equal the CPU ops bit for bit, or to fp32 rounding for layer norm.
TEST(GpuOps, Bf16StorageOpsMatchCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(31);
    Tensor x = test::randn({6, 9, 40}, rng, 4.f);
    Tensor h = Tensor::empty({40, 6, 9}, DType::BF16), hd = Tensor::empty({40, 6, 9}, DType::BF16, Device::CUDA);
    copy(h.permute({1, 2, 0}), x);
    copy(hd.permute({1, 2, 0}), dev(x));
    test::expect_close(hd.to(Device::CPU), test::to_f64(h), 0, 0, "f32 -> bf16 (strided)");
    Tensor back = Tensor::empty({6, 9, 40}, DType::F32, Device::CUDA);
    copy(back, hd.permute({1, 2, 0}));
    test::expect_close(back.to(Device::CPU), test::to_f64(h.permute({1, 2, 0})), 0, 0, "bf16 -> f32 (strided)");
    Tensor hs = Tensor::empty({6, 9, 40}, DType::BF16, Device::CUDA);
    copy(hs, hd.permute({1, 2, 0}));  // same-dtype strided copy of 2-byte elements
    test::expect_close(hs.to(Device::CPU), test::to_f64(h.permute({1, 2, 0})), 0, 0, "bf16 strided copy");

    Tensor a = to_dtype(test::randn({9, 6, 40}, rng, 2.f), DType::BF16), ad = a.to(Device::CUDA);
    Tensor y = test::randn({6, 9, 40}, rng), b = test::randn({40}, rng);
    add(a.permute({1, 0, 2}), y, 0.5f);
    add(ad.permute({1, 0, 2}), dev(y), 0.5f);
    write_update(a, b.view({1, 1, 40}).expand({9, 6, 40}), true);
    write_update(ad, dev(b).view({1, 1, 40}).expand({9, 6, 40}), true);
    test::expect_close(ad.to(Device::CPU), test::to_f64(a), 0, 0, "bf16 += f32");

    Tensor g = test::randn({40}, rng), o = test::randn({40}, rng);
    // Warp per row (16-byte chunks; single elements), a block per row in registers, the loop beyond 8192.
    for (int64_t C : {40, 42, 1500, 9000}) {
        Tensor xb = to_dtype(test::randn({7, 2 * C}, rng, 3.f), DType::BF16), xbd = xb.to(Device::CUDA);
        Tensor gc = test::randn({C}, rng), oc = test::randn({C}, rng);
        Tensor yc = Tensor::empty({7, C}), ycd = Tensor::empty({7, C}, DType::F32, Device::CUDA);
        layer_norm(xb.slice(1, 0, C), gc, oc, 1e-5f, yc);
        layer_norm(xbd.slice(1, 0, C), dev(gc), dev(oc), 1e-5f, ycd);
        expect_match(ycd, yc, "layer_norm bf16 C=" + std::to_string(C));
    }
    Tensor cm = to_dtype(test::randn({40, 300}, rng), DType::BF16), ycm = Tensor::empty({40, 300});
    Tensor ycmd = Tensor::empty({40, 300}, DType::F32, Device::CUDA);
    layer_norm(cm.transpose(0, 1), g, o, 1e-5f, ycm.transpose(0, 1));
    layer_norm(cm.to(Device::CUDA).transpose(0, 1), dev(g), dev(o), 1e-5f, ycmd.transpose(0, 1));
    expect_match(ycmd, ycm, "layer_norm bf16 channel-major");
}

// Embedding lookup: negative indices (rows left alone when accumulating, zeroed otherwise), into a strided out
// (a column slice of a wider tensor, so writes outside the view are caught) and a contiguous one. One float add
// per element on either side: exact.
TEST(GpuOps, GatherRowsMatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(51);
    for (int64_t C : {1, 37, 128}) {
        const int64_t V = 21, M = 1001;
        Tensor table = test::randn({V, C}, rng), index = Tensor::empty({M}, DType::I64);
        std::uniform_int_distribution<int64_t> pick(-3, V - 1);
        for (int64_t m = 0; m < M; ++m) index.data<int64_t>()[m] = pick(rng);
        index.data<int64_t>()[0] = -1, index.data<int64_t>()[1] = V - 1, index.data<int64_t>()[2] = 0;
        Tensor tabled = dev(table), indexd = index.to(Device::CUDA);
        for (bool accumulate : {false, true}) {
            const std::string tag = " C=" + std::to_string(C) + (accumulate ? " accumulate" : "");
            Tensor wide = test::randn({M, C + 5}, rng), wided = dev(wide);
            View v = [&](const Tensor& t) { return t.slice(1, 2, 2 + C); };
            gather_rows(table, index, v(wide), accumulate);
            gather_rows(tabled, indexd, v(wided), accumulate);
            expect_match(wided, wide, "gather_rows strided out" + tag, 0.0);
            Tensor out = test::randn({M, C}, rng), outd = dev(out);
            gather_rows(table, index, out, accumulate);
            gather_rows(tabled, indexd, outd, accumulate);
            expect_match(outd, out, "gather_rows contiguous" + tag, 0.0);
        }
    }
}

// Frames applied forward and inverse to permuted / strided point views, with and without norms (a transposed
// column slice); y and norms are compared over their whole buffers.
TEST(GpuOps, ApplyFramesMatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(52);
    for (int64_t N : {1, 23, 300}) {
        const int64_t K = 17;
        Tensor rot = test::randn({N, 3, 3}, rng), trans = test::randn({N, 3}, rng, 5.f);
        Tensor rotd = dev(rot), transd = dev(trans);
        Tensor xm = test::randn({N * 3 * K}, rng, 3.f), xmd = dev(xm);
        View vx = [&](const Tensor& t) { return t.view({N, 3, K}).permute({0, 2, 1}); };  // [N, K, 3], stride(2) = K
        View vy = [&](const Tensor& t) { return t.permute({1, 0, 2}).slice(2, 1, 4); };   // [N, K, 3] of [K, N, 5]
        View vn = [&](const Tensor& t) { return t.slice(1, 2, 2 + N).transpose(0, 1); };  // [N, K] of [K, N + 4]
        for (bool inverse : {false, true}) {
            for (bool with_norms : {false, true}) {
                const std::string tag =
                    " N=" + std::to_string(N) + (inverse ? " inverse" : " forward") + (with_norms ? " norms" : "");
                Tensor y = test::randn({K, N, 5}, rng), yd = dev(y);
                Tensor nm = test::randn({K, N + 4}, rng), nmd = dev(nm);
                apply_frames(rot, trans, vx(xm), vy(y), inverse, with_norms ? vn(nm) : Tensor(), 1e-3f);
                apply_frames(rotd, transd, vx(xmd), vy(yd), inverse, with_norms ? vn(nmd) : Tensor(), 1e-3f);
                expect_match(yd, y, "apply_frames y" + tag);
                expect_match(nmd, nm, "apply_frames norms" + tag);
            }
        }
        // Coordinate-major output (y.stride(2) = K, as IPA's inverse writes its [N, H * P, 3] points).
        for (bool inverse : {false, true}) {
            Tensor y = test::randn({N, 3, K}, rng), yd = dev(y);
            View vyc = [](const Tensor& t) { return t.permute({0, 2, 1}); };
            apply_frames(rot, trans, vx(xm), vyc(y), inverse, Tensor(), 1e-3f);
            apply_frames(rotd, transd, vx(xmd), vyc(yd), inverse, Tensor(), 1e-3f);
            expect_match(yd, y, std::string("apply_frames coordinate-major y N=") + std::to_string(N) +
                                    (inverse ? " inverse" : " forward"));
        }
        // Contiguous points.
        Tensor x = test::randn({N, K, 3}, rng), y = Tensor::empty({N, K, 3}), n = Tensor::empty({N, K});
        Tensor yd = Tensor::empty({N, K, 3}, DType::F32, Device::CUDA),
               nd = Tensor::empty({N, K}, DType::F32, Device::CUDA);
        apply_frames(rot, trans, x, y, false, n, 1e-8f);
        apply_frames(rotd, transd, dev(x), yd, false, nd, 1e-8f);
        expect_match(yd, y, "apply_frames contiguous y N=" + std::to_string(N));
        expect_match(nd, n, "apply_frames contiguous norms N=" + std::to_string(N));
    }
}

// IPA's point logits: a and c per head out of [N, H, D] memory (permuted to [H, N, D]), D = 12, into a contiguous
// and a row-padded out; then sizes that are multiples of no block size, D = 1 and a long D.
TEST(GpuOps, WeightedSqDistancesMatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(53);
    struct Case {
        int64_t B, I, J, D;
    };
    for (const Case& cs : {Case{12, 37, 45, 12}, Case{12, 300, 300, 12}, Case{3, 261, 1001, 5}, Case{2, 9, 33, 1},
                           Case{2, 19, 70, 300}}) {
        const std::string tag = " B=" + std::to_string(cs.B) + " I=" + std::to_string(cs.I) +
                                " J=" + std::to_string(cs.J) + " D=" + std::to_string(cs.D);
        Tensor am = test::randn({cs.I, cs.B, cs.D}, rng, 4.f), cm = test::randn({cs.J, cs.B, cs.D}, rng, 4.f);
        Tensor w = positive({cs.B}, rng), amd = dev(am), cmd = dev(cm), wd = dev(w);
        View vp = [](const Tensor& t) { return t.permute({1, 0, 2}); };
        Tensor out = Tensor::empty({cs.B, cs.I, cs.J}),
               outd = Tensor::empty({cs.B, cs.I, cs.J}, DType::F32, Device::CUDA);
        weighted_sq_distances(vp(am), vp(cm), w, out);
        weighted_sq_distances(vp(amd), vp(cmd), wd, outd);
        expect_match(outd, out, "weighted_sq_distances" + tag);
        // out as [B, I, J] inside [I, B, J + 3] (permuted and padded), a contiguous.
        Tensor ac = vp(am).contiguous();
        Tensor po = test::randn({cs.I, cs.B, cs.J + 3}, rng), pod = dev(po);
        View vo = [&](const Tensor& t) { return t.slice(2, 1, 1 + cs.J).permute({1, 0, 2}); };
        weighted_sq_distances(ac, vp(cm), w, vo(po));
        weighted_sq_distances(dev(ac), vp(cmd), wd, vo(pod));
        expect_match(pod, po, "weighted_sq_distances strided out" + tag);
    }
}

// Symmetrisation in place: odd sizes, a single residue, one channel, and rows long enough that each block loops.
TEST(GpuOps, AddTransposeMatchesCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(54);
    for (const std::pair<int64_t, int64_t>& nc :
         {std::pair<int64_t, int64_t>{37, 5}, {1, 3}, {40, 1}, {300, 64}, {1100, 7}}) {
        const int64_t N = nc.first, C = nc.second;
        Tensor x = test::randn({N, N, C}, rng), xd = dev(x);
        add_transpose(x);
        add_transpose(xd);
        expect_match(xd, x, "add_transpose N=" + std::to_string(N) + " C=" + std::to_string(C), 0.0);
    }
}

// Offload on the device: pinned host memory, the copy out on the side stream ordered after the kernels that wrote
// the tensor, the device memory released and reused, the copy in ordered before the kernels that read it.
TEST(GpuOps, ParkedTensorRoundTripsThroughPinnedMemory) {
    REQUIRE_GPU();
    std::mt19937 rng(71);
    const Tensor h = test::randn({1 << 20}, rng);
    Tensor d = dev(h);
    scale(d, 2.f);  // queued on the default stream just before the park: the copy out must see it
    ParkedTensor p(d);
    d = Tensor();
    p.release();
    Tensor other = Tensor::empty({1 << 20}, DType::F32, Device::CUDA);  // may reuse the released memory
    fill(other, -1.f);
    Tensor back = p.restore();
    scale(back, 0.5f);  // must run after the copy in
    const Tensor r = back.to(Device::CPU);
    for (int64_t i = 0; i < h.numel(); ++i) ASSERT_EQ(r.f32()[i], h.f32()[i]) << i;
    const Tensor o = other.to(Device::CPU);
    EXPECT_EQ(o.f32()[0], -1.f);
}
