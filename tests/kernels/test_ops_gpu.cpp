// CUDA ops equal the CPU ops (label gpu; every test skips itself without a GPU).
//
// The op table (op_cases.h) runs here on both backends, one ctest entry per case
// (GpuOps/OpCudaVsCpu.MatchesCpu/<case>): the case draws its inputs on the host from its seed (printed with any
// failure), the CPU run and the CUDA run each get a copy and build the same views (strided rows, transposes,
// permutes, broadcasts) over it, and every output is compared; for in-place ops that is the whole underlying
// buffer, so writes outside the view are caught too. Tolerance: |gpu - cpu| <= rtol * (|cpu| + max|cpu|), rtol the
// case's gpu_rtol (1e-5 unless it says otherwise: fp32 with different summation orders; 0: equal bits).
//
// The tests after the runner are not one op run alike on both backends: the fused and flash attention kernels
// (called directly, against the CPU op), copies across devices, an error only the device raises, mixed devices,
// the device workspace, the distance of reduced-precision GEMMs from fp32, and offload.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "kernels/cuda/ops_cuda.h"
#include "kernels/device.h"
#include "kernels/offload.h"
#include "kernels/ops.h"
#include "op_cases.h"
#include "test_util.h"

using namespace axfold;

namespace {

#define REQUIRE_GPU() \
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

using View = std::function<Tensor(const Tensor&)>;

Tensor dev(const Tensor& h) {
    return h.to(Device::CUDA);
}

void expect_match(const Tensor& gpu, const Tensor& cpu, const std::string& what, double rtol = 1e-5) {
    ASSERT_EQ(gpu.device(), Device::CUDA) << what;
    std::vector<double> r = test::to_f64(cpu);
    double mx = 0;
    for (double v : r) mx = std::max(mx, std::fabs(v));
    test::expect_close(gpu.to(Device::CPU), r, rtol * mx, rtol, what);
}

class OpCudaVsCpu : public ::testing::TestWithParam<test::OpCase> {};

}  // namespace

TEST_P(OpCudaVsCpu, MatchesCpu) {
    REQUIRE_GPU();
    const test::OpCase& c = GetParam();
    test::SeededRng rng(c.seed);
    const test::Tensors in = c.draw(rng);
    const test::Tensors cpu = c.run(test::copies_on(in, Device::CPU), Device::CPU);
    const test::Tensors gpu = c.run(test::copies_on(in, Device::CUDA), Device::CUDA);
    ASSERT_EQ(gpu.size(), cpu.size());
    ASSERT_GT(cpu.size(), 0u);
    for (const auto& [name, t] : cpu) {
        const Tensor& g = gpu[name];
        ASSERT_EQ(g.shape(), t.shape()) << name;
        ASSERT_EQ(g.dtype(), t.dtype()) << name;
        expect_match(g, t, c.name + " " + name, c.gpu_rtol);
    }
}

INSTANTIATE_TEST_SUITE_P(GpuOps, OpCudaVsCpu, ::testing::ValuesIn(test::op_cases()), test::case_name);

namespace {
// The flash-style kernel (cuda::attention_fused) against the CPU op: q out of a fused [B, Q, 3, H, C] projection,
// k and v out of [B, K, 2, H, C] (strided rows and batches), a permuted bias, out a slice of padded rows; masked,
// one batch element is then fully masked (every logit near -1e9, softmax still uniform-ish); optionally a -inf bias
// on the first 32 keys of one query row (each lane's first logit there is -inf).
void fused_attention_case(int64_t B, int64_t Q, int64_t K, int64_t H, int64_t C, bool masked, uint32_t seed,
                          bool neg_inf_bias = false) {
    test::SeededRng rng(seed);
    Tensor qkv = test::randn({B, Q, 3, H, C}, rng), kv = test::randn({B, K, 2, H, C}, rng);
    Tensor qkvd = dev(qkv), kvd = dev(kv);
    Tensor mask = test::random_mask({B, K}, rng);
    Tensor bias_mem = test::randn({Q, H, K}, rng);
    if (neg_inf_bias)
        for (int64_t j = 0; j < std::min<int64_t>(K - 1, 32); ++j) bias_mem.at({0, 0, j}) = -INFINITY;
    View vbias = [](const Tensor& t) { return t.permute({1, 0, 2}); };  // [H, Q, K], non-contiguous
    Tensor out = test::randn({B, Q, H, C + 3}, rng), outd = dev(out);
    View vout = [&](const Tensor& t) { return t.slice(3, 0, C); };
    const float scale = 1.f / std::sqrt(static_cast<float>(C));
    Context cpu_ctx;
    attention(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), masked ? mask : Tensor(),
              masked ? vbias(bias_mem) : Tensor(), scale, 1e9f, vout(out), cpu_ctx.ws);
    if (masked) {  // one batch element fully masked: every logit near -1e9, softmax still uniform-ish
        Tensor m0 = mask.select(0, 0);
        for (int64_t j = 0; j < K; ++j) m0.at({j}) = 0.f;
        attention(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), mask, vbias(bias_mem), scale, 1e9f, vout(out),
                  cpu_ctx.ws);
    }
    cuda::attention_fused(qkvd.select(2, 0), kvd.select(2, 0), kvd.select(2, 1), masked ? dev(mask) : Tensor(),
                          masked ? vbias(dev(bias_mem)) : Tensor(), scale, 1e9f, vout(outd));
    expect_match(outd, out,
                 std::string("fused attention B=") + std::to_string(B) + " Q=" + std::to_string(Q) +
                     " K=" + std::to_string(K) + " C=" + std::to_string(C) + (masked ? " masked" : "") +
                     (neg_inf_bias ? " (-inf bias)" : ""));
}
}  // namespace

// The flash-style kernel (AXFOLD_FUSED_ATTENTION=1) against the CPU op: every head width template (8, 16,
// 32, 64, and 20 and 48 between them), fewer keys than a warp's lanes, long rows, masks and biases.
TEST(GpuOps, FusedAttentionMatchesCpu) {
    REQUIRE_GPU();
    uint32_t seed = 20;
    for (int64_t C : {8, 16, 20, 32, 48, 64})
        for (bool masked : {true, false}) fused_attention_case(3, 17, 23, 4, C, masked, ++seed);
    fused_attention_case(2, 5, 7, 2, 32, true, ++seed);
    fused_attention_case(2, 64, 1100, 4, 32, true, ++seed);
    fused_attention_case(1, 300, 3000, 4, 32, true, ++seed);
    fused_attention_case(2, 9, 70, 4, 16, true, ++seed, true);  // lanes whose first logits are -inf
    fused_attention_case(2, 9, 20, 4, 16, true, ++seed, true);  // K < 32: every lane's first logit but one
}

namespace {
// The flash kernel against the CPU op under `p` (TF32 or bf16: the CPU emulates that precision's rounding of
// the GEMM operands, attention probabilities included), within tol of the largest output.
void flash_attention_cases(MatmulPrecision p, double tol) {
    test::PrecisionScope scope(p);
    uint32_t seed = 40;
    struct Case {
        int64_t B, Q, K, H, C;
    };
    for (const Case& t : {Case{3, 17, 23, 4, 16}, Case{2, 33, 70, 4, 32}, Case{2, 64, 96, 2, 64}, Case{1, 5, 7, 3, 8},
                          Case{2, 40, 300, 4, 20}, Case{1, 130, 1100, 4, 32}}) {
        test::SeededRng rng(++seed);
        Tensor qkv = test::randn({t.B, t.Q, 3, t.H, t.C}, rng), kv = test::randn({t.B, t.K, 2, t.H, t.C}, rng);
        Tensor mask = test::random_mask({t.B, t.K}, rng), bias = test::randn({t.Q, t.H, t.K}, rng).permute({1, 0, 2});
        for (int64_t j = 0; j < t.K; ++j) mask.at({0, j}) = 0.f;  // a fully masked batch element
        // A -inf bias over the first 32-key tile of one query row (a row whose first tile has no finite logit).
        if (t.K > 40)
            for (int64_t j = 0; j < 32; ++j) bias.at({0, 0, j}) = -INFINITY;
        Tensor out = Tensor::empty({t.B, t.Q, t.H, t.C}),
               outd = Tensor::empty({t.B, t.Q, t.H, t.C}, DType::F32, Device::CUDA);
        const float scale = 1.f / std::sqrt(static_cast<float>(t.C));
        Context cpu_ctx;
        attention(qkv.select(2, 0), kv.select(2, 0), kv.select(2, 1), mask, bias, scale, 1e9f, out, cpu_ctx.ws);
        const Tensor qkvd = dev(qkv), kvd = dev(kv);
        cuda::attention_flash_tc(qkvd.select(2, 0), kvd.select(2, 0), kvd.select(2, 1), dev(mask),
                                 dev(bias.contiguous()), scale, 1e9f, outd);
        expect_match(outd, out,
                     std::string("flash tc ") + precision_name(p) + " B=" + std::to_string(t.B) +
                         " Q=" + std::to_string(t.Q) + " K=" + std::to_string(t.K) + " C=" + std::to_string(t.C),
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

TEST(GpuOps, ElementwiseTooManyDimsIsAnError) {
    REQUIRE_GPU();
    test::SeededRng rng(11);
    // Fully reversed 7-d strides cannot be merged below 7 dims.
    Tensor x = dev(test::randn({2, 3, 2, 3, 2, 3, 4}, rng)).permute({6, 5, 4, 3, 2, 1, 0});
    EXPECT_THROW(scale(x, 2.f), Error);
}

// Strided copies between the host and the device, both ways (the same-device strided copies are table cases).
TEST(GpuOps, CopyStridedAcrossDevices) {
    REQUIRE_GPU();
    test::SeededRng rng(12);
    Tensor base = test::randn({5, 7, 12}, rng), based = dev(base);
    View vd = [](const Tensor& t) { return t.slice(2, 1, 8); };
    // Host strided -> device strided and device strided -> host strided.
    Tensor d2 = Tensor::zeros({12, 5, 9}, DType::F32, Device::CUDA), h2 = Tensor::zeros({12, 5, 9});
    copy(vd(d2), base.permute({2, 0, 1}).slice(2, 0, 7));
    copy(vd(h2), base.permute({2, 0, 1}).slice(2, 0, 7));
    expect_match(d2, h2, "copy host -> device strided");
    Tensor h3 = Tensor::zeros({12, 5, 9});
    copy(vd(h3), based.permute({2, 0, 1}).slice(2, 0, 7));
    test::expect_close(h3, test::to_f64(h2), 0, 0, "copy device -> host strided");
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
    test::SeededRng rng(13);
    Tensor a = test::randn({4, 5}, rng), b = test::randn({5, 3}, rng);
    Tensor c = Tensor::empty({4, 3}, DType::F32, Device::CUDA);
    EXPECT_THROW(matmul(a, dev(b), c), Error);
    EXPECT_THROW(add(c, Tensor::empty({4, 3})), Error);
    EXPECT_THROW(linear(dev(a), b, Tensor(), c), Error);
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
    test::SeededRng rng(42);
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
        std::printf(
            "matmul %s: relative distance to the CPU emulation (nearest) %.3g, truncated operands %.3g, "
            "fp32 %.3g\n",
            precision_name(p), d_rn, d_rz, d_exact);
        expect_match(gpu, cpu, std::string("matmul ") + precision_name(p), 1e-4);
        EXPECT_GT(d_exact, p == MatmulPrecision::Bf16 ? 1e-3 : 1e-5)
            << precision_name(p) << " as close to fp32 as that";
    }
    // (bfloat16 operands of other layouts: the table's matmul_bf16_permuted_column_major_sliced.)
}

// Offload on the device: pinned host memory, the copy out on the side stream ordered after the kernels that wrote
// the tensor, the device memory released and reused, the copy in ordered before the kernels that read it.
TEST(GpuOps, ParkedTensorRoundTripsThroughPinnedMemory) {
    REQUIRE_GPU();
    test::SeededRng rng(71);
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
