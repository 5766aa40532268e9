// Every CPU op against a naive float64 reference on random, non-trivial inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/ops.h"
#include "test_util.h"

using namespace axfold;
using test::randn;

namespace {

std::vector<double> ref_matmul(const Tensor& a, const Tensor& b) {  // 3-D, batch broadcast via size 1
    int64_t B = std::max(a.size(0), b.size(0)), M = a.size(1), K = a.size(2), N = b.size(2);
    std::vector<double> c(B * M * N, 0.0);
    for (int64_t bi = 0; bi < B; ++bi)
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double s = 0;
                for (int64_t k = 0; k < K; ++k)
                    s += (double)a.at({a.size(0) == 1 ? 0 : bi, i, k}) * b.at({b.size(0) == 1 ? 0 : bi, k, j});
                c[(bi * M + i) * N + j] = s;
            }
    return c;
}

// float64 attention core (ops.h's formula). bits > 0 models reduced-precision GEMMs on already rounded
// q, k, v: the logits come out of their GEMM as floats and the probabilities enter theirs rounded.
std::vector<double> ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                  const Tensor& bias, double scale, int bits = 0) {
    const int64_t B = q.size(0), Q = q.size(1), H = q.size(2), C = q.size(3), K = k.size(1);
    std::vector<double> r(B * Q * H * C, 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < Q; ++i) {
                std::vector<double> l(K);
                double mx = -1e300, s = 0;
                for (int64_t j = 0; j < K; ++j) {
                    double d = 0;
                    for (int64_t c = 0; c < C; ++c) d += (double)q.at({b, i, h, c}) * k.at({b, j, h, c});
                    if (bits > 0) d = static_cast<float>(d);
                    l[j] = scale * d;
                    if (bias.defined()) l[j] += bias.at({h, i, j});
                    if (mask.defined()) l[j] += 1e9 * (mask.at({b, j}) - 1);
                    mx = std::max(mx, l[j]);
                }
                for (int64_t j = 0; j < K; ++j) s += std::exp(l[j] - mx);
                for (int64_t j = 0; j < K; ++j) {
                    double p = std::exp(l[j] - mx) / s;
                    if (bits > 0) p = round_mantissa(static_cast<float>(p), bits);
                    for (int64_t c = 0; c < C; ++c) r[((b * Q + i) * H + h) * C + c] += p * v.at({b, j, h, c});
                }
            }
    return r;
}

}  // namespace

TEST(Ops, MatmulAllLayoutsAndBroadcast) {
    std::mt19937 rng(2);
    for (int layout = 0; layout < 4; ++layout) {
        const int64_t B = 3, M = 17, K = 23, N = 19;
        Tensor a = (layout & 1) ? randn({B, K, M}, rng).transpose(1, 2) : randn({B, M, K}, rng);
        Tensor b = (layout & 2) ? randn({B, N, K}, rng).transpose(1, 2) : randn({B, K, N}, rng);
        Tensor c = Tensor::empty({B, M, N});
        matmul(a, b, c);
        test::expect_close(c, ref_matmul(a, b), 1e-4, 1e-4, "matmul layout " + std::to_string(layout));
        // alpha/beta accumulate
        Tensor c0 = randn({B, M, N}, rng);
        Tensor c1 = c0.clone();
        matmul(a, b, c1, 0.5f, 2.f);
        auto r = ref_matmul(a, b);
        for (size_t i = 0; i < r.size(); ++i) r[i] = 0.5 * r[i] + 2.0 * c0.f32()[i];
        test::expect_close(c1, r, 1e-4, 1e-4, "matmul alpha/beta");
    }
    // Broadcast a shared 2-D right operand over the batch.
    Tensor a = randn({4, 5, 6}, rng), w = randn({6, 7}, rng);
    Tensor c = Tensor::empty({4, 5, 7});
    matmul(a, w, c);
    test::expect_close(c, ref_matmul(a, w.unsqueeze(0)), 1e-4, 1e-4, "matmul broadcast");
    Tensor bad = Tensor::empty({4, 5, 8});
    EXPECT_THROW(matmul(a, w, bad), Error);
}

TEST(Ops, TallMatmulRunsInRowBlocks) {
    // More rows than one GEMM block (16384), with row-major and transposed (column-major) left operands.
    std::mt19937 rng(12);
    const int64_t M = 40000, K = 7, N = 5;
    for (int transposed = 0; transposed < 2; ++transposed) {
        Tensor a = transposed ? randn({K, M}, rng).transpose(0, 1) : randn({M, K}, rng);
        Tensor b = randn({K, N}, rng);
        Tensor c = Tensor::empty({M, N});
        matmul(a, b, c);
        test::expect_close(c, ref_matmul(a.unsqueeze(0), b.unsqueeze(0)), 1e-4, 1e-4, "tall matmul");
    }
}

TEST(Ops, LinearWithAf2AttentionLayout) {
    std::mt19937 rng(3);
    const int64_t S = 5, N = 7, Cin = 12, H = 3, C = 4;
    Tensor x = randn({S, N, Cin}, rng);
    Tensor w = randn({Cin, H, C}, rng);  // AF2 query_w layout
    Tensor b = randn({H, C}, rng);
    Workspace ws;
    for (int strided = 0; strided < 2; ++strided) {
        Tensor xin = strided ? randn({N, S, Cin}, rng).transpose(0, 1) : x;  // non-mergeable rows → copy path
        Tensor y = linear(xin, w, b, ws);
        ASSERT_EQ(y.shape(), (Shape{S, N, H * C}));
        std::vector<double> r(S * N * H * C);
        for (int64_t s = 0; s < S; ++s)
            for (int64_t n = 0; n < N; ++n)
                for (int64_t o = 0; o < H * C; ++o) {
                    double acc = b.f32()[o];
                    for (int64_t i = 0; i < Cin; ++i) acc += (double)xin.at({s, n, i}) * w.f32()[i * H * C + o];
                    r[(s * N + n) * H * C + o] = acc;
                }
        test::expect_close(y, r, 1e-4, 1e-4, "linear");
        // Accumulate into an existing output (residual update).
        Tensor y2 = y.clone();
        linear(xin, w, b, y2, 1.f);
        for (auto& v : r) v *= 2;
        test::expect_close(y2, r, 2e-4, 1e-4, "linear accumulate");
    }
    Tensor wrong = randn({Cin + 1, 4}, rng);
    EXPECT_THROW(linear(x, wrong, Tensor(), ws), Error);
}

TEST(Ops, LayerNormMatchesFloat64) {
    std::mt19937 rng(4);
    const int64_t R = 37, C = 96;
    Tensor x = randn({R, C}, rng, 3.f);
    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += 5.f;  // non-zero mean
    Tensor g = randn({C}, rng), b = randn({C}, rng);
    Tensor y = Tensor::empty({R, C});
    layer_norm(x, g, b, 1e-5f, y);
    std::vector<double> r(R * C);
    for (int64_t i = 0; i < R; ++i) {
        double mean = 0, var = 0;
        for (int64_t c = 0; c < C; ++c) mean += x.at({i, c});
        mean /= C;
        for (int64_t c = 0; c < C; ++c) var += (x.at({i, c}) - mean) * (x.at({i, c}) - mean);
        var /= C;
        for (int64_t c = 0; c < C; ++c)
            r[i * C + c] = (x.at({i, c}) - mean) / std::sqrt(var + 1e-5) * g.f32()[c] + b.f32()[c];
    }
    test::expect_close(y, r, 1e-4, 1e-4, "layer_norm");
    // In place on a strided (sliced) view.
    Tensor wide = randn({R, C + 8}, rng);
    Tensor v = wide.slice(1, 4, 4 + C);
    Tensor ref_in = v.contiguous();
    Tensor ref_out = Tensor::empty({R, C});
    layer_norm(ref_in, g, b, 1e-5f, ref_out);
    layer_norm(v, g, b, 1e-5f, v);
    test::expect_close(v, test::to_f64(ref_out), 0, 0, "layer_norm in place strided");
    // Channel-major memory [C][R] seen as an [R, C] view (stride(0) == 1), normalised in place.
    Tensor cm = x.transpose(0, 1).contiguous().transpose(0, 1);
    ASSERT_EQ(cm.stride(0), 1);
    layer_norm(cm, g, b, 1e-5f, cm);
    test::expect_close(cm, r, 1e-4, 1e-4, "layer_norm channel-major");
    // ... and a linear reading that column-major view directly.
    Workspace ws;
    Tensor w = randn({C, 5}, rng);
    Tensor y1 = linear(cm, w, Tensor(), ws), y2 = linear(cm.contiguous(), w, Tensor(), ws);
    test::expect_close(y1, test::to_f64(y2), 1e-5, 1e-5, "linear column-major input");
}

TEST(Ops, SoftmaxWithMaskBiasScale) {
    std::mt19937 rng(5);
    const int64_t B = 3, H = 2, Q = 5, K = 11;
    Tensor x = randn({B, H, Q, K}, rng, 2.f);
    Tensor mask = test::random_mask({B, 1, 1, K}, rng, 0.3f);
    mask.at({0, 0, 0, 0}) = 1.f;
    Tensor bias = randn({1, H, Q, K}, rng);
    Tensor ref_x = x.clone();
    softmax(x, 0.7f, mask.expand({B, H, Q, K}), bias.expand({B, H, Q, K}), 1e9f);
    std::vector<double> r(B * H * Q * K);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t q = 0; q < Q; ++q) {
                std::vector<double> l(K);
                double mx = -1e300, s = 0;
                for (int64_t k = 0; k < K; ++k) {
                    l[k] = 0.7 * ref_x.at({b, h, q, k}) + bias.at({0, h, q, k}) + 1e9 * (mask.at({b, 0, 0, k}) - 1);
                    mx = std::max(mx, l[k]);
                }
                for (int64_t k = 0; k < K; ++k) s += std::exp(l[k] - mx);
                for (int64_t k = 0; k < K; ++k) r[((b * H + h) * Q + q) * K + k] = std::exp(l[k] - mx) / s;
            }
    test::expect_close(x, r, 1e-6, 1e-5, "softmax");
    // Masked keys get exactly zero weight when any key is unmasked.
    for (int64_t k = 0; k < K; ++k) {
        if (mask.at({1, 0, 0, k}) == 0.f) {
            EXPECT_EQ(x.at({1, 1, 2, k}), 0.f);
        }
    }
}

TEST(Ops, AttentionCoreMatchesFloat64) {
    std::mt19937 rng(6);
    const int64_t B = 4, Q = 9, K = 13, H = 3, C = 8;
    Tensor q = randn({B, Q, H, C}, rng), k = randn({B, K, H, C}, rng), v = randn({B, K, H, C}, rng);
    Tensor mask = test::random_mask({B, K}, rng, 0.3f);
    for (int64_t b = 0; b < B; ++b) mask.at({b, 0}) = 1.f;
    Tensor bias = randn({H, Q, K}, rng);
    Tensor out = Tensor::empty({B, Q, H, C});
    Workspace ws;
    const float scale = 1.f / std::sqrt(8.f);
    attention(q, k, v, mask, bias, scale, 1e9f, out, ws);
    const std::vector<double> r = ref_attention(q, k, v, mask, bias, scale);
    test::expect_close(out, r, 1e-5, 1e-4, "attention");
    // Transposed (column) views give the same answer as materialised inputs.
    Tensor qt = q.permute({1, 0, 2, 3}).contiguous().permute({1, 0, 2, 3});
    Tensor out2 = Tensor::empty({Q, B, H, C}).permute({1, 0, 2, 3});
    attention(qt, k, v, mask, bias, scale, 1e9f, out2, ws);
    test::expect_close(out2, r, 1e-5, 1e-4, "attention strided");
}

TEST(Ops, ElementwiseOps) {
    std::mt19937 rng(7);
    Tensor x = randn({6, 10}, rng), y = randn({6, 10}, rng), row = randn({1, 10}, rng);
    std::vector<double> xs = test::to_f64(x), ys = test::to_f64(y), rs = test::to_f64(row);
    Tensor a = x.clone();
    add(a, row.expand({6, 10}), 0.5f);
    std::vector<double> r(60);
    for (int i = 0; i < 60; ++i) r[i] = xs[i] + 0.5 * rs[i % 10];
    test::expect_close(a, r, 1e-6, 1e-6, "add broadcast");
    Tensor g = x.clone();
    sigmoid_mul(g, y);
    for (int i = 0; i < 60; ++i) r[i] = xs[i] / (1 + std::exp(-ys[i]));
    test::expect_close(g, r, 1e-6, 1e-5, "sigmoid_mul");
    Tensor re = x.clone();
    relu(re);
    for (int i = 0; i < 60; ++i) r[i] = xs[i] > 0 ? xs[i] : 0;
    test::expect_close(re, r, 0, 0, "relu");
    Tensor d = x.clone();
    div_eps(d, y, 1e-3f);
    for (int i = 0; i < 60; ++i) r[i] = xs[i] / (ys[i] + 1e-3);
    test::expect_close(d, r, 1e-5, 1e-4, "div_eps");
    Tensor s = x.clone();
    sigmoid(s);
    for (int i = 0; i < 60; ++i) r[i] = 1 / (1 + std::exp(-xs[i]));
    test::expect_close(s, r, 1e-6, 1e-5, "sigmoid");
}

namespace {
Tensor rounded(const Tensor& t, int bits) {
    Tensor r = t.contiguous().clone();
    for (int64_t i = 0; i < r.numel(); ++i) r.f32()[i] = round_mantissa(r.f32()[i], bits);
    return r;
}
}  // namespace

TEST(Ops, RoundMantissaIsNearestEven) {
    const float u = std::ldexp(1.f, -7);  // bfloat16 ulp at 1
    EXPECT_EQ(round_mantissa(1.f + u / 2, 7), 1.f);                       // tie, to even
    EXPECT_EQ(round_mantissa(1.f + 3 * u / 2, 7), 1.f + 2 * u);           // tie, to even
    EXPECT_EQ(round_mantissa(1.f + u / 2 + std::ldexp(1.f, -20), 7), 1.f + u);
    EXPECT_EQ(round_mantissa(-1.f - u / 4, 7), -1.f);
    EXPECT_EQ(round_mantissa(1.f + std::ldexp(1.f, -11), 10), 1.f);       // TF32 tie to even
    EXPECT_EQ(round_mantissa(3.1415926f, 23), 3.1415926f);
    EXPECT_TRUE(std::isinf(round_mantissa(INFINITY, 7)));
    EXPECT_EQ(parse_precision("bf16"), MatmulPrecision::Bf16);
    EXPECT_THROW(parse_precision("fp16"), Error);
}

// TF32 and BF16 GEMMs: exactly the fp32-accumulated product of the rounded operands (what tensor cores
// compute), for every operand layout, tall row-blocked products and the attention core's two GEMMs.
TEST(Ops, ReducedPrecisionMatmulRoundsOperands) {
    std::mt19937 rng(21);
    for (auto [p, bits] : {std::pair{MatmulPrecision::Bf16, 7}, std::pair{MatmulPrecision::Tf32, 10}}) {
        for (int layout = 0; layout < 4; ++layout) {
            const int64_t B = 2, M = (layout == 3 ? 9000 : 17), K = 64, N = 19;
            Tensor a = (layout & 1) ? randn({B, K, M}, rng).transpose(1, 2) : randn({B, M, K}, rng);
            Tensor b = (layout & 2) ? randn({B, N, K}, rng).transpose(1, 2) : randn({B, K, N}, rng);
            Tensor c = Tensor::empty({B, M, N});
            {
                test::PrecisionScope scope(p);
                matmul(a, b, c);
            }
            const std::string what = std::string(precision_name(p)) + " layout " + std::to_string(layout);
            test::expect_close(c, ref_matmul(rounded(a, bits), rounded(b, bits)), 1e-5, 1e-5, what);
            // ... and measurably not the fp32 product (the rounding is really applied).
            const std::vector<double> exact = ref_matmul(a, b);
            double worst = 0;
            for (size_t i = 0; i < exact.size(); ++i) worst = std::max(worst, std::abs(c.f32()[i] - exact[i]));
            EXPECT_GT(worst, bits == 7 ? 1e-2 : 1e-3) << what;
        }
    }
    // Attention in bf16: q, k, the probabilities and v enter their GEMMs rounded.
    const int64_t B = 2, Q = 5, K = 7, H = 2, C = 16;
    Tensor q = randn({B, Q, H, C}, rng), k = randn({B, K, H, C}, rng), v = randn({B, K, H, C}, rng);
    Tensor out = Tensor::empty({B, Q, H, C}), out32 = Tensor::empty({B, Q, H, C});
    Workspace ws;
    attention(q, k, v, Tensor(), Tensor(), 0.25f, 1e9f, out32, ws);
    {
        test::PrecisionScope scope(MatmulPrecision::Bf16);
        attention(q, k, v, Tensor(), Tensor(), 0.25f, 1e9f, out, ws);
    }
    const std::vector<double> r =
        ref_attention(rounded(q, 7), rounded(k, 7), rounded(v, 7), Tensor(), Tensor(), 0.25, 7);
    test::expect_close(out, r, 1e-5, 1e-4, "bf16 attention");
    double diff = 0;
    for (int64_t i = 0; i < out.numel(); ++i) diff = std::max(diff, (double)std::abs(out.f32()[i] - out32.f32()[i]));
    EXPECT_GT(diff, 1e-4) << "bf16 attention equals fp32";
}

// Backward passes against float64 derivatives of the forward ops, and against central differences of the
// float64 forward (so a wrong formula in both places would still be caught).
TEST(Ops, SoftmaxBackwardMatchesFloat64) {
    std::mt19937 rng(31);
    const int64_t rows = 7, n = 37;
    const float scale = 0.7f;
    Tensor x = randn({rows, n}, rng), dy = randn({rows, n}, rng);
    Tensor y = x.clone();
    softmax(y, scale, Tensor(), Tensor(), 1e9f);
    Tensor dx = Tensor::empty({rows, n});
    softmax_backward(y, dy, scale, dx);
    auto fwd = [&](const std::vector<double>& row) {  // float64 softmax(scale * row)
        double mx = -1e300, s = 0;
        for (double v : row) mx = std::max(mx, scale * v);
        std::vector<double> o(row.size());
        for (size_t k = 0; k < row.size(); ++k) s += o[k] = std::exp(scale * row[k] - mx);
        for (double& v : o) v /= s;
        return o;
    };
    std::vector<double> ref(rows * n), fd(rows * n);
    for (int64_t r = 0; r < rows; ++r) {
        std::vector<double> row(n);
        for (int64_t k = 0; k < n; ++k) row[k] = x.at({r, k});
        const std::vector<double> p = fwd(row);
        double dot = 0;
        for (int64_t k = 0; k < n; ++k) dot += p[k] * dy.at({r, k});
        for (int64_t k = 0; k < n; ++k) {
            ref[r * n + k] = scale * p[k] * (dy.at({r, k}) - dot);
            const double h = 1e-6;
            std::vector<double> a = row, b = row;
            a[k] += h;
            b[k] -= h;
            const std::vector<double> pa = fwd(a), pb = fwd(b);
            double d = 0;
            for (int64_t j = 0; j < n; ++j) d += (pa[j] - pb[j]) / (2 * h) * dy.at({r, j});
            fd[r * n + k] = d;
        }
    }
    test::expect_close(dx, ref, 1e-6, 1e-5, "softmax backward");
    test::expect_close(dx, fd, 1e-5, 1e-4, "softmax backward vs differences");
    softmax_backward(y, dy, scale, dy);  // in place over dy
    test::expect_close(dy, ref, 1e-6, 1e-5, "softmax backward in place");
}

TEST(Ops, LayerNormBackwardMatchesFloat64) {
    std::mt19937 rng(32);
    for (int64_t C : {7, 128, 1500}) {
        const int64_t rows = 300;  // enough rows for the threaded path with C=128
        const float eps = 1e-5f;
        Tensor x = randn({rows, C}, rng, 2.f), g = randn({C}, rng), b = randn({C}, rng), dy = randn({rows, C}, rng);
        Tensor dx = Tensor::empty({rows, C}), dg = Tensor::full({C}, 0.5f), db = Tensor::full({C}, -0.25f);
        layer_norm_backward(x, g, eps, dy, dx, dg, db);
        std::vector<double> rdx(rows * C), rdg(C, 0.5), rdb(C, -0.25);
        for (int64_t r = 0; r < rows; ++r) {
            double mean = 0, var = 0;
            for (int64_t c = 0; c < C; ++c) mean += x.at({r, c});
            mean /= C;
            for (int64_t c = 0; c < C; ++c) var += (x.at({r, c}) - mean) * (x.at({r, c}) - mean);
            const double inv = 1 / std::sqrt(var / C + eps);
            double sg = 0, sgx = 0;
            for (int64_t c = 0; c < C; ++c) {
                const double xh = (x.at({r, c}) - mean) * inv, gc = (double)dy.at({r, c}) * g.at({c});
                sg += gc;
                sgx += gc * xh;
                rdg[c] += dy.at({r, c}) * xh;
                rdb[c] += dy.at({r, c});
            }
            for (int64_t c = 0; c < C; ++c) {
                const double xh = (x.at({r, c}) - mean) * inv;
                rdx[r * C + c] = inv * ((double)dy.at({r, c}) * g.at({c}) - sg / C - xh * sgx / C);
            }
        }
        const std::string what = "layer norm backward C=" + std::to_string(C);
        test::expect_close(dx, rdx, 1e-5, 1e-4, what + " dx");
        test::expect_close(dg, rdg, 1e-4, 1e-4, what + " dscale (accumulated)");
        test::expect_close(db, rdb, 1e-4, 1e-4, what + " doffset (accumulated)");
        // Central difference of sum(dy * layer_norm(x)) in one coordinate, in float64.
        const int64_t r0 = 3, c0 = C / 2;
        auto loss = [&](double delta) {
            double mean = 0, var = 0, l = 0;
            std::vector<double> row(C);
            for (int64_t c = 0; c < C; ++c) row[c] = x.at({r0, c}) + (c == c0 ? delta : 0);
            for (double v : row) mean += v;
            mean /= C;
            for (double v : row) var += (v - mean) * (v - mean);
            const double inv = 1 / std::sqrt(var / C + eps);
            for (int64_t c = 0; c < C; ++c) l += dy.at({r0, c}) * ((row[c] - mean) * inv * g.at({c}) + b.at({c}));
            return l;
        };
        EXPECT_NEAR(dx.at({r0, c0}), (loss(1e-5) - loss(-1e-5)) / 2e-5, 1e-3) << what;
        // dx aliasing dy: same results, parameter sums from the original dy.
        Tensor dy2 = dy.clone(), dg2 = Tensor::full({C}, 0.5f), db2 = Tensor::full({C}, -0.25f);
        layer_norm_backward(x, g, eps, dy2, dy2, dg2, db2);
        test::expect_close(dy2, rdx, 1e-5, 1e-4, what + " dx in place");
        test::expect_close(dg2, rdg, 1e-4, 1e-4, what + " dscale in place");
    }
}

TEST(Ops, SigmoidMulBackwardMatchesFloat64) {
    std::mt19937 rng(33);
    Tensor x = randn({5, 40000}, rng), g = randn({5, 40000}, rng, 3.f), dy = randn({5, 40000}, rng);
    Tensor dx = Tensor::empty({5, 40000}), dg = Tensor::empty({5, 40000});
    sigmoid_mul_backward(x, g, dy, dx, dg);
    std::vector<double> rdx(x.numel()), rdg(x.numel());
    for (int64_t i = 0; i < x.numel(); ++i) {
        const double s = 1 / (1 + std::exp(-(double)g.f32()[i]));
        rdx[i] = dy.f32()[i] * s;
        rdg[i] = dy.f32()[i] * x.f32()[i] * s * (1 - s);
    }
    test::expect_close(dx, rdx, 1e-6, 1e-5, "sigmoid_mul backward dx");
    test::expect_close(dg, rdg, 1e-6, 1e-5, "sigmoid_mul backward dgate");
}

TEST(Ops, ReluBackwardPassesWhereTheOutputIsPositive) {
    std::mt19937 rng(34);
    Tensor y = randn({3, 50000}, rng), dy = randn({3, 50000}, rng), dx = Tensor::empty({3, 50000});
    relu(y);
    relu_backward(y, dy, dx);
    std::vector<double> r(y.numel());
    int64_t passed = 0;
    for (int64_t i = 0; i < y.numel(); ++i) {
        r[i] = y.f32()[i] > 0 ? dy.f32()[i] : 0.0;
        passed += y.f32()[i] > 0;
    }
    EXPECT_GT(passed, y.numel() / 4);
    EXPECT_LT(passed, 3 * y.numel() / 4);
    test::expect_close(dx, r, 0, 0, "relu backward");
    relu_backward(y, dy, dy);  // in place
    test::expect_close(dy, r, 0, 0, "relu backward in place");
}

// linear_backward against float64 loops: dx assigned or accumulated, dw and dbias accumulated, an AF2 weight of
// more than two dims ([c_in, H, c] viewed as [c_in, H * c]), rows from leading dims.
TEST(Ops, LinearBackwardMatchesFloat64) {
    std::mt19937 rng(35);
    const int64_t B = 3, R = 7, Ci = 5, H = 2, C = 3, Co = H * C;
    Tensor x = randn({B, R, Ci}, rng), w = randn({Ci, H, C}, rng), dy = randn({B, R, H, C}, rng);
    Tensor dx0 = randn({B, R, Ci}, rng), dw0 = randn({Ci, H, C}, rng), db0 = randn({H, C}, rng);
    for (bool accumulate : {false, true}) {
        Tensor dx = dx0.clone(), dw = dw0.clone(), db = db0.clone();
        Workspace ws;
        linear_backward(x, w, dy, dx, accumulate, dw, db, ws);
        std::vector<double> rdx(x.numel()), rdw(w.numel()), rdb(db.numel());
        for (int64_t r = 0; r < B * R; ++r)
            for (int64_t i = 0; i < Ci; ++i) {
                double v = accumulate ? dx0.f32()[r * Ci + i] : 0.0;
                for (int64_t o = 0; o < Co; ++o) v += (double)dy.f32()[r * Co + o] * w.f32()[i * Co + o];
                rdx[r * Ci + i] = v;
            }
        for (int64_t i = 0; i < Ci; ++i)
            for (int64_t o = 0; o < Co; ++o) {
                double v = dw0.f32()[i * Co + o];
                for (int64_t r = 0; r < B * R; ++r) v += (double)x.f32()[r * Ci + i] * dy.f32()[r * Co + o];
                rdw[i * Co + o] = v;
            }
        for (int64_t o = 0; o < Co; ++o) {
            double v = db0.f32()[o];
            for (int64_t r = 0; r < B * R; ++r) v += dy.f32()[r * Co + o];
            rdb[o] = v;
        }
        test::expect_close(dx, rdx, 1e-5, 1e-5, "linear backward dx");
        test::expect_close(dw, rdw, 1e-5, 1e-5, "linear backward dw");
        test::expect_close(db, rdb, 1e-5, 1e-5, "linear backward dbias");
    }
    Workspace ws;
    EXPECT_THROW(linear_backward(x, w, randn({B, R, 5}, rng), Tensor(), false, Tensor(), Tensor(), ws), Error);
}

// attention_backward against float64 loops: masked keys, a permuted bias, q/k/v read out of fused projections
// (strided rows), dbias accumulated over batch elements. (A fully masked row has logits near -1e9, whose float32
// rounding decides its softmax: a float64 reference would not see the same row.)
TEST(Ops, AttentionBackwardMatchesFloat64) {
    std::mt19937 rng(36);
    const int64_t B = 3, Q = 5, K = 7, H = 2, C = 4;
    const float scale = 0.5f, inf = 1e9f;
    Tensor qkv = randn({B, Q, 3, H, C}, rng), kv = randn({B, K, 2, H, C}, rng);
    const Tensor q = qkv.select(2, 0), k = kv.select(2, 0), v = kv.select(2, 1);
    Tensor mask = test::random_mask({B, K}, rng, 0.3f);
    mask.at({2, 0}) = 1.f;  // every batch element keeps a key
    const Tensor bias = randn({Q, H, K}, rng).permute({1, 0, 2});
    const Tensor dout = randn({B, Q, H, C}, rng);
    Tensor dq = Tensor::empty({B, Q, H, C}), dk = Tensor::empty({B, K, H, C}), dv = Tensor::empty({B, K, H, C});
    Tensor dbias0 = randn({H, Q, K}, rng), dbias = dbias0.clone();
    Workspace ws;
    attention_backward(q, k, v, mask, bias, scale, inf, dout, dq, dk, dv, dbias, ws);
    std::vector<double> rq(dq.numel(), 0), rk(dk.numel(), 0), rv(dv.numel(), 0), rb = test::to_f64(dbias0);
    auto at = [](const Tensor& t, std::initializer_list<int64_t> i) { return (double)t.at(i); };
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < Q; ++i) {
                std::vector<double> l(K), p(K), dp(K);
                double mx = -1e300, z = 0;
                for (int64_t j = 0; j < K; ++j) {
                    double dot = 0;
                    for (int64_t c = 0; c < C; ++c) dot += at(q, {b, i, h, c}) * at(k, {b, j, h, c});
                    l[j] = scale * dot + at(bias, {h, i, j}) + inf * (at(mask, {b, j}) - 1);
                    mx = std::max(mx, l[j]);
                }
                for (int64_t j = 0; j < K; ++j) z += p[j] = std::exp(l[j] - mx);
                double s = 0;
                for (int64_t j = 0; j < K; ++j) {
                    p[j] /= z;
                    dp[j] = 0;
                    for (int64_t c = 0; c < C; ++c) dp[j] += at(dout, {b, i, h, c}) * at(v, {b, j, h, c});
                    s += dp[j] * p[j];
                }
                for (int64_t j = 0; j < K; ++j) {
                    const double dl = p[j] * (dp[j] - s);  // d/d(logit)
                    rb[(h * Q + i) * K + j] += dl;
                    for (int64_t c = 0; c < C; ++c) {
                        rv[((b * K + j) * H + h) * C + c] += p[j] * at(dout, {b, i, h, c});
                        rq[((b * Q + i) * H + h) * C + c] += scale * dl * at(k, {b, j, h, c});
                        rk[((b * K + j) * H + h) * C + c] += scale * dl * at(q, {b, i, h, c});
                    }
                }
            }
    test::expect_close(dq, rq, 1e-5, 1e-4, "attention backward dq");
    test::expect_close(dk, rk, 1e-5, 1e-4, "attention backward dk");
    test::expect_close(dv, rv, 1e-5, 1e-4, "attention backward dv");
    test::expect_close(dbias, rb, 1e-5, 1e-4, "attention backward dbias");
}

TEST(Ops, FillWritesOnlyTheView) {
    Tensor t = Tensor::zeros({4, 6});
    fill(t.slice(1, 1, 4).transpose(0, 1), 2.5f);  // strided view: columns 1..3
    for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 6; ++j) EXPECT_EQ(t.at({i, j}), (j >= 1 && j < 4) ? 2.5f : 0.f) << i << "," << j;
}

// bfloat16 storage: rounding to nearest-even (the same rounding round_mantissa(x, 7) gives, which the GEMM
// emulation uses), exact widening, NaN and infinities kept.
TEST(Ops, Bf16RoundsToNearestEvenAndWidensExactly) {
    std::mt19937 rng(21);
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

// copy converts float32 <-> bfloat16 through any strides; widening back is exact.
TEST(Ops, CopyConvertsBetweenFloat32AndBf16) {
    std::mt19937 rng(22);
    Tensor x = randn({5, 7, 6}, rng, 10.f);
    Tensor h = Tensor::empty({6, 5, 7}, DType::BF16);
    copy(h.permute({1, 2, 0}), x);  // strided destination
    Tensor back = Tensor::empty({5, 7, 6});
    copy(back, h.permute({1, 2, 0}));  // strided source
    std::vector<double> want(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) want[i] = round_mantissa(x.f32()[i], 7);
    test::expect_close(back, want, 0, 0, "f32 -> bf16 -> f32");
    test::expect_close(h.permute({1, 2, 0}), want, 0, 0, "bf16 view read as float64");
    // to_dtype and host_cast agree, and a same-dtype to_dtype is the tensor itself.
    test::expect_close(to_dtype(x, DType::BF16), want, 0, 0, "to_dtype");
    test::expect_close(host_cast(x, DType::BF16), want, 0, 0, "host_cast");
    EXPECT_EQ(to_dtype(x, DType::F32).raw(), x.raw());
    // Strided same-dtype bfloat16 copies move 2-byte elements.
    Tensor h2 = Tensor::empty({5, 7, 6}, DType::BF16);
    h2.copy_from(h.permute({1, 2, 0}));
    test::expect_close(h2, want, 0, 0, "bf16 strided copy");
    EXPECT_THROW(copy(Tensor::empty({5, 7, 6}, DType::I64), x), Error);
}

// add into a bfloat16 activation: each element is widened, the float32 sum is formed, then rounded once.
TEST(Ops, AddIntoBf16RoundsEachSumOnce) {
    std::mt19937 rng(23);
    Tensor x32 = randn({4, 9, 8}, rng, 2.f), y = randn({4, 9, 8}, rng, 0.5f), bias = randn({8}, rng);
    Tensor x = to_dtype(x32, DType::BF16);
    std::vector<double> base = test::to_f64(x), want(base.size());
    add(x, y, 0.75f);
    for (size_t i = 0; i < want.size(); ++i)
        want[i] = round_mantissa(static_cast<float>(base[i]) + 0.75f * y.f32()[i], 7);
    test::expect_close(x, want, 0, 0, "bf16 += f32");
    // Broadcast updates and strided (transposed) activations, as the trunk's modules make them.
    base = test::to_f64(x);
    const Tensor xt = x.permute({1, 0, 2});
    write_update(xt, bias.view({1, 1, 8}).expand({9, 4, 8}), true);
    for (size_t i = 0; i < want.size(); ++i) want[i] = round_mantissa(static_cast<float>(base[i]) + bias.f32()[i % 8], 7);
    test::expect_close(x, want, 0, 0, "bf16 += broadcast bias");
    write_update(x, y, false);
    for (size_t i = 0; i < want.size(); ++i) want[i] = round_mantissa(y.f32()[i], 7);
    test::expect_close(x, want, 0, 0, "bf16 = f32");
    EXPECT_THROW(mul(x, y), Error);  // only add takes a bfloat16 destination
    EXPECT_THROW(add(y, x), Error);  // and only as the destination
}

// Layer norm reads bfloat16 activations (rows, strided rows, channel-major) and matches float64 on the
// widened values.
TEST(Ops, LayerNormReadsBf16Activations) {
    std::mt19937 rng(24);
    const int64_t R = 37, C = 24;
    Tensor x = to_dtype(randn({R, C}, rng, 3.f), DType::BF16), g = randn({C}, rng), b = randn({C}, rng);
    auto ref = [&](const Tensor& xv) {  // xv [rows, C] (any strides)
        std::vector<double> xs = test::to_f64(xv), r(xs.size());
        const int64_t rows = xv.size(0);
        for (int64_t i = 0; i < rows; ++i) {
            double m = 0, v = 0;
            for (int64_t c = 0; c < C; ++c) m += xs[i * C + c];
            m /= C;
            for (int64_t c = 0; c < C; ++c) v += (xs[i * C + c] - m) * (xs[i * C + c] - m);
            v /= C;
            for (int64_t c = 0; c < C; ++c)
                r[i * C + c] = (xs[i * C + c] - m) / std::sqrt(v + 1e-5) * g.f32()[c] + b.f32()[c];
        }
        return r;
    };
    Tensor y = Tensor::empty({R, C});
    layer_norm(x, g, b, 1e-5f, y);
    test::expect_close(y, ref(x), 1e-5, 1e-5, "bf16 rows");
    // Rows of stride 2C (a column slice of a wider activation, as DAP's padded shards are).
    const Tensor wide = to_dtype(randn({R, 2 * C}, rng, 3.f), DType::BF16), xs = wide.slice(1, 0, C);
    Tensor ys = Tensor::empty({R, C});
    layer_norm(xs, g, b, 1e-5f, ys);
    test::expect_close(ys, ref(xs), 1e-5, 1e-5, "bf16 strided rows");
    // Channel-major [M, C] view of [C, M] memory (triangle multiplication's layout).
    Tensor cm = to_dtype(randn({C, R}, rng, 2.f), DType::BF16);
    Tensor ycm = Tensor::empty({C, R});
    layer_norm(cm.transpose(0, 1), g, b, 1e-5f, ycm.transpose(0, 1));
    test::expect_close(ycm.transpose(0, 1), ref(cm.transpose(0, 1)), 1e-5, 1e-5, "bf16 channel-major");
    EXPECT_THROW(layer_norm(x, g, b, 1e-5f, Tensor::empty({R, C}, DType::BF16)), Error);  // y is float32
}

TEST(Ops, GatherRowsIsAOneHotProduct) {
    std::mt19937 rng(31);
    const Tensor table = randn({7, 5}, rng);
    Tensor index = Tensor::empty({6}, DType::I64);
    const int64_t idx[6] = {3, -1, 0, 6, 3, -2};
    for (int m = 0; m < 6; ++m) index.data<int64_t>()[m] = idx[m];
    Tensor wide = randn({6, 9}, rng);
    const Tensor before = wide.clone();
    const Tensor out = wide.slice(1, 2, 7);  // row stride 9
    gather_rows(table, index, out, true);
    for (int m = 0; m < 6; ++m)
        for (int c = 0; c < 9; ++c) {
            float want = before.at({m, c});
            if (c >= 2 && c < 7 && idx[m] >= 0) want += table.at({idx[m], c - 2});
            EXPECT_EQ(wide.at({m, c}), want) << m << "," << c;  // one rounding, the columns outside untouched
        }
    gather_rows(table, index, out, false);
    for (int m = 0; m < 6; ++m)
        for (int c = 0; c < 5; ++c) EXPECT_EQ(out.at({m, c}), idx[m] >= 0 ? table.at({idx[m], c}) : 0.f);
    index.data<int64_t>()[2] = 7;
    EXPECT_THROW(gather_rows(table, index, out, false), Error);
}

TEST(Ops, ApplyFramesAndInverseMatchFloat64) {
    std::mt19937 rng(32);
    const int64_t N = 5, K = 4;
    // Rotations from random quaternions.
    Tensor rot = Tensor::empty({N, 3, 3}), trans = randn({N, 3}, rng, 3.f);
    for (int64_t n = 0; n < N; ++n) {
        Tensor q = randn({4}, rng);
        double w = q.at({0}), x = q.at({1}), y = q.at({2}), z = q.at({3});
        const double s = std::sqrt(w * w + x * x + y * y + z * z);
        w /= s, x /= s, y /= s, z /= s;
        const double r[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                             2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                             2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)};
        for (int i = 0; i < 9; ++i) rot.f32()[n * 9 + i] = static_cast<float>(r[i]);
    }
    const Tensor local = randn({N, 3, K}, rng);  // the x | y | z layout of IPA's point projections
    const Tensor x = local.permute({0, 2, 1});   // [N, K, 3], coordinate stride K
    Tensor g = Tensor::empty({N, K, 3});
    apply_frames(rot, trans, x, g, false);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k)
            for (int d = 0; d < 3; ++d) {
                double want = trans.at({n, d});
                for (int e = 0; e < 3; ++e) want += (double)rot.at({n, d, e}) * x.at({n, k, e});
                EXPECT_NEAR(g.at({n, k, d}), want, 1e-5 * (1 + std::abs(want)));
            }
    // Back to the local frame, into a strided block with the norms beside it (IPA's output features).
    Tensor feat = Tensor::zeros({N, 4 * K + 2});
    const Tensor y = feat.slice(1, 1, 1 + 3 * K).unflatten(1, {3, K}).permute({0, 2, 1});
    const Tensor norms = feat.slice(1, 1 + 3 * K, 1 + 4 * K);
    apply_frames(rot, trans, g, y, true, norms, 1e-8f);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) {
            double n2 = 0;
            for (int d = 0; d < 3; ++d) {
                EXPECT_NEAR(y.at({n, k, d}), x.at({n, k, d}), 1e-5 * (1 + std::abs(x.at({n, k, d}))));
                n2 += (double)y.at({n, k, d}) * y.at({n, k, d});
            }
            EXPECT_NEAR(norms.at({n, k}), std::sqrt(1e-8 + n2), 1e-6);
        }
    for (int64_t n = 0; n < N; ++n) {
        EXPECT_EQ(feat.at({n, 0}), 0.f);  // the columns outside the views untouched
        EXPECT_EQ(feat.at({n, 4 * K + 1}), 0.f);
    }
    EXPECT_THROW(apply_frames(rot, trans, x, Tensor::empty({N, K + 1, 3}), false), Error);
}

TEST(Ops, WeightedSqDistancesMatchFloat64) {
    std::mt19937 rng(33);
    const int64_t B = 3, I = 6, J = 9, D = 12;
    const Tensor a = randn({I, B, D}, rng, 4.f).permute({1, 0, 2});  // [B, I, D], batch stride D
    const Tensor c = randn({J, B, D}, rng, 4.f).permute({1, 0, 2});
    const Tensor w = randn({B}, rng);
    Tensor out = Tensor::empty({B, I, J});
    weighted_sq_distances(a, c, w, out);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < I; ++i)
            for (int64_t j = 0; j < J; ++j) {
                double d2 = 0;
                for (int64_t d = 0; d < D; ++d) {
                    const double e = (double)a.at({b, i, d}) - c.at({b, j, d});
                    d2 += e * e;
                }
                const double want = w.at({b}) * d2;
                EXPECT_NEAR(out.at({b, i, j}), want, 1e-5 * std::abs(want) + 1e-6);
            }
    EXPECT_THROW(weighted_sq_distances(a, c, randn({B + 1}, rng), out), Error);
}

TEST(Ops, AddTransposeSymmetrises) {
    std::mt19937 rng(34);
    const int64_t N = 7, C = 3;
    Tensor x = randn({N, N, C}, rng);
    const Tensor x0 = x.clone();
    add_transpose(x);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t j = 0; j < N; ++j)
            for (int64_t c = 0; c < C; ++c) EXPECT_EQ(x.at({i, j, c}), x0.at({i, j, c}) + x0.at({j, i, c}));
    EXPECT_THROW(add_transpose(Tensor::zeros({3, 4, 2})), Error);
}
