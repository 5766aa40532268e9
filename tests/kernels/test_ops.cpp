// Every CPU op against a naive float64 reference on random, non-trivial inputs: the float64 runner over the op
// table (op_cases.h; one ctest entry per case, Ops/OpFloat64.MatchesReference/<case>), plus the rounding helpers,
// which are not ops on tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "kernels/ops.h"
#include "op_cases.h"
#include "test_util.h"

using namespace axfold;

namespace {

class OpFloat64 : public ::testing::TestWithParam<test::OpCase> {};

}  // namespace

// Draws the case's inputs from its seed (printed with any failure), runs it on the CPU, and holds the outputs to
// its float64 reference and its checks.
TEST_P(OpFloat64, MatchesReference) {
    const test::OpCase& c = GetParam();
    test::SeededRng rng(c.seed);
    const test::Tensors in = c.draw(rng);
    const test::Tensors out = c.run(test::copies_on(in, Device::CPU), Device::CPU);
    if (c.reference) {
        const std::vector<test::Expected> expected = c.reference(in, out);
        EXPECT_FALSE(expected.empty()) << "a reference that expects nothing";
        for (const test::Expected& e : expected) {
            const Tensor& got = out[e.output];
            test::expect_close(e.view ? e.view(got) : got, e.want, e.atol, e.rtol, e.what.empty() ? e.output : e.what);
        }
    }
    if (c.check) c.check(in, out);
}

INSTANTIATE_TEST_SUITE_P(Ops, OpFloat64, ::testing::ValuesIn(test::float64_cases()), test::case_name);

// Every case can be run and named: a draw and a run, a unique name of letters, digits and '_' (a gtest parameter
// name), and something the float64 runner or the CUDA runner compares.
TEST(Ops, OpTableIsWellFormed) {
    std::set<std::string> names;
    for (const test::OpCase& c : test::op_cases()) {
        EXPECT_TRUE(c.draw && c.run) << c.name;
        EXPECT_FALSE(c.name.empty());
        for (char ch : c.name) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '_') << c.name;
        EXPECT_TRUE(names.insert(c.name).second) << "duplicate case " << c.name;
        EXPECT_GE(c.gpu_rtol, 0) << c.name;
    }
    EXPECT_FALSE(test::float64_cases().empty());
}

TEST(Ops, RoundMantissaIsNearestEven) {
    const float u = std::ldexp(1.f, -7);                         // bfloat16 ulp at 1
    EXPECT_EQ(round_mantissa(1.f + u / 2, 7), 1.f);              // tie, to even
    EXPECT_EQ(round_mantissa(1.f + 3 * u / 2, 7), 1.f + 2 * u);  // tie, to even
    EXPECT_EQ(round_mantissa(1.f + u / 2 + std::ldexp(1.f, -20), 7), 1.f + u);
    EXPECT_EQ(round_mantissa(-1.f - u / 4, 7), -1.f);
    EXPECT_EQ(round_mantissa(1.f + std::ldexp(1.f, -11), 10), 1.f);  // TF32 tie to even
    EXPECT_EQ(round_mantissa(3.1415926f, 23), 3.1415926f);
    EXPECT_TRUE(std::isinf(round_mantissa(INFINITY, 7)));
    EXPECT_EQ(parse_precision("bf16"), MatmulPrecision::Bf16);
    EXPECT_THROW(parse_precision("fp16"), Error);
}

// bfloat16 storage: rounding to nearest-even (the same rounding round_mantissa(x, 7) gives, which the GEMM
// emulation uses), exact widening, NaN and infinities kept.
TEST(Ops, Bf16RoundsToNearestEvenAndWidensExactly) {
    test::SeededRng rng(21);
    std::normal_distribution<float> d(0.f, 3.f);
    for (int i = 0; i < 100000; ++i) {
        const float x = d(rng) * std::ldexp(1.f, static_cast<int>(rng() % 40) - 20);
        const float r = bf16_to_float(bf16_from_float(x));
        ASSERT_EQ(r, round_mantissa(x, 7)) << x;
        ASSERT_LE(std::fabs(r - x), std::ldexp(std::fabs(x), -8)) << x;  // half an ulp of 7 mantissa bits
    }
    // Ties go to the even neighbour: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7.
    EXPECT_EQ(bf16_to_float(bf16_from_float(1.f + std::ldexp(1.f, -8))), 1.f);
    EXPECT_EQ(bf16_to_float(bf16_from_float(1.f + 3 * std::ldexp(1.f, -8))), 1.f + 2 * std::ldexp(1.f, -7));
    EXPECT_TRUE(std::isnan(bf16_to_float(bf16_from_float(std::nanf("")))));
    EXPECT_EQ(bf16_to_float(bf16_from_float(INFINITY)), INFINITY);
    EXPECT_EQ(bf16_to_float(bf16_from_float(-INFINITY)), -INFINITY);
    EXPECT_EQ(bf16_to_float(bf16_from_float(3.4e38f)), INFINITY);  // past bfloat16's largest finite value
    EXPECT_EQ(dtype_size(DType::BF16), 2u);
}

// --precision bf16 on the CPU: where this CPU has bfloat16 dot products (oneDNN's AVX512_BF16/AMX kernels), the
// native GEMMs are the emulation's arithmetic (operands rounded to bfloat16, fp32 products and sums) up to fp32
// summation order, over every layout, alpha/beta, batches and more rows than one conversion block.
TEST(Ops, NativeBf16GemmMatchesTheEmulation) {
    const std::string detected = cpu_bf16_gemm_backend();
    ASSERT_TRUE(detected == "onednn" || detected == "emulated") << detected;
    ASSERT_TRUE(set_cpu_bf16_gemm_backend("emulated"));
    EXPECT_STREQ(cpu_bf16_gemm_backend(), "emulated");
    ASSERT_TRUE(set_cpu_bf16_gemm_backend(""));
    EXPECT_EQ(cpu_bf16_gemm_backend(), detected);
    if (!set_cpu_bf16_gemm_backend("onednn"))
        GTEST_SKIP() << "this CPU (or this build) has no native bfloat16 GEMM: --precision bf16 is emulated here";
    ASSERT_TRUE(set_cpu_bf16_gemm_backend(""));
    test::SeededRng rng(33);
    test::PrecisionScope bf16(MatmulPrecision::Bf16);
    struct Case {
        int64_t batch, m, n, k;
        bool at, bt;
        float alpha, beta;
    };
    for (const Case& c : {Case{1, 4100, 40, 72, false, false, 1.f, 0.f}, Case{1, 33, 17, 300, true, false, 0.5f, 1.f},
                          Case{3, 20, 24, 16, false, true, 1.f, 0.f}, Case{2, 9, 31, 5, true, true, 2.f, -0.5f}}) {
        SCOPED_TRACE(testing::Message() << c.batch << "x" << c.m << "x" << c.n << "x" << c.k);
        const Tensor a = c.at ? test::randn({c.batch, c.k, c.m}, rng, 1.f).transpose(1, 2)
                              : test::randn({c.batch, c.m, c.k}, rng, 1.f);
        const Tensor b = c.bt ? test::randn({c.batch, c.n, c.k}, rng, 1.f).transpose(1, 2)
                              : test::randn({c.batch, c.k, c.n}, rng, 1.f);
        const Tensor c0 = test::randn({c.batch, c.m, c.n}, rng, 1.f);
        Tensor native = c0.clone(), emulated = c0.clone();
        matmul(a, b, native, c.alpha, c.beta);
        ASSERT_TRUE(set_cpu_bf16_gemm_backend("emulated"));
        matmul(a, b, emulated, c.alpha, c.beta);
        ASSERT_TRUE(set_cpu_bf16_gemm_backend(""));
        double worst = 0;
        for (int64_t i = 0; i < native.numel(); ++i) {
            // fp32 summation-order noise: a few ulps of the sum of |products|.
            const int64_t bi = i / (c.m * c.n), mi = i / c.n % c.m, ni = i % c.n;
            double mag = std::fabs(c.beta * c0.f32()[i]);
            for (int64_t k = 0; k < c.k; ++k) mag += std::fabs(c.alpha * a.at({bi, mi, k}) * b.at({bi, k, ni}));
            worst = std::max(worst, std::fabs(native.f32()[i] - emulated.f32()[i]) / (mag * 1e-6 + 1e-30));
        }
        EXPECT_LE(worst, 1.0) << "native bf16 differs from the emulation beyond fp32 summation order";
    }
    // And bf16 is not fp32: the same product in fp32 differs by about bfloat16's rounding.
    const Tensor a = test::randn({64, 64}, rng, 1.f), b = test::randn({64, 64}, rng, 1.f);
    Tensor c16 = Tensor::empty({64, 64}), c32 = Tensor::empty({64, 64});
    matmul(a, b, c16);
    {
        test::PrecisionScope fp32(MatmulPrecision::Fp32);
        matmul(a, b, c32);
    }
    double diff = 0;
    for (int64_t i = 0; i < c16.numel(); ++i) diff = std::max(diff, (double)std::fabs(c16.f32()[i] - c32.f32()[i]));
    EXPECT_GT(diff, 1e-3);
}

// The CPU half of every case, those without a float64 reference included (the CUDA runner's cases aimed at kernel
// paths): it runs, and every output is finite. A case broken on the CPU fails here, without a GPU.
TEST(Ops, EveryOpCaseRunsOnTheCpu) {
    for (const test::OpCase& c : test::op_cases()) {
        SCOPED_TRACE(c.name + " (" + test::seed_message(c.seed) + ")");
        std::mt19937 rng(c.seed);
        test::Tensors out;
        ASSERT_NO_THROW(out = c.run(test::copies_on(c.draw(rng), Device::CPU), Device::CPU));
        EXPECT_GT(out.size(), 0u);
        for (const auto& [name, t] : out) {
            EXPECT_EQ(t.device(), Device::CPU) << name;
            const std::vector<double> v = test::to_f64(t);
            EXPECT_TRUE(std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); })) << name;
        }
    }
}
