// The op test table (op_cases.h): every op of kernels/ops.h as cases that draw host inputs, run on a given device
// and may carry a float64 reference and CPU checks. test_ops.cpp runs the cases with a reference or checks on the
// CPU; test_ops_gpu.cpp runs every case on the CPU and on CUDA and compares.
//
// The table is built by the add_*_cases functions below, one per family of ops; a case that ran as a hand-written
// test before keeps its seed and the order of its draws, so it sees the same values.
#include "op_cases.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "kernels/error.h"
#include "kernels/ops.h"
#include "test_util.h"

namespace axfold::test {

const Tensor& Tensors::operator[](std::string_view name) const {
    for (const auto& [n, t] : items_)
        if (n == name) return t;
    AXF_FAIL("op case: no tensor named '%s'", std::string(name).c_str());
}

Tensors copies_on(const Tensors& in, Device device) {
    Tensors out;
    for (const auto& [name, t] : in) out.add(name, !t.defined() ? t : device == Device::CPU ? t.clone() : t.to(device));
    return out;
}

std::string case_name(const ::testing::TestParamInfo<OpCase>& info) {
    return info.param.name;
}

void PrintTo(const OpCase& c, std::ostream* os) {
    *os << c.name << " (seed " << c.seed << ")";
}

namespace {

// Helpers of the cases: float64 references and inputs of a particular kind.

std::string str(int64_t v) {
    return std::to_string(v);
}

Tensor f32_on(const Shape& shape, Device d) {
    return Tensor::empty(shape, DType::F32, d);
}

// |randn| + 0.25: divisors and weights away from zero.
Tensor positive(const Shape& shape, std::mt19937& rng) {
    Tensor t = randn(shape, rng);
    for (int64_t i = 0; i < t.numel(); ++i) t.f32()[i] = std::fabs(t.f32()[i]) + 0.25f;
    return t;
}

// t's values with their mantissas rounded to `bits` bits (what a reduced-precision GEMM reads).
Tensor rounded(const Tensor& t, int bits) {
    Tensor r = t.contiguous().clone();
    for (int64_t i = 0; i < r.numel(); ++i) r.f32()[i] = round_mantissa(r.f32()[i], bits);
    return r;
}

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

// float64 layer norm over the last dim of xv [rows, C] (any strides, any float dtype).
std::vector<double> ref_layer_norm(const Tensor& xv, const Tensor& g, const Tensor& b, double eps) {
    const std::vector<double> xs = to_f64(xv);
    const int64_t C = xv.size(-1), rows = C > 0 ? static_cast<int64_t>(xs.size()) / C : 0;
    std::vector<double> r(xs.size());
    for (int64_t i = 0; i < rows; ++i) {
        double m = 0, v = 0;
        for (int64_t c = 0; c < C; ++c) m += xs[i * C + c];
        m /= C;
        for (int64_t c = 0; c < C; ++c) v += (xs[i * C + c] - m) * (xs[i * C + c] - m);
        v /= C;
        for (int64_t c = 0; c < C; ++c)
            r[i * C + c] = (xs[i * C + c] - m) / std::sqrt(v + eps) * g.f32()[c] + b.f32()[c];
    }
    return r;
}

// ---------------------------------------------------------------------------------------------------------------
// GEMMs: matmul and linear.

void add_matmul_cases(std::vector<OpCase>& t) {
    // Every operand layout (row- and column-major a and b), alpha/beta accumulation, a 2-D right operand shared
    // over the batch; a mismatched output is an error.
    {
        const int64_t B = 3, M = 17, K = 23, N = 19;
        static const auto va = [](int layout, const Tensor& x) { return (layout & 1) ? x.transpose(1, 2) : x; };
        static const auto vb = [](int layout, const Tensor& x) { return (layout & 2) ? x.transpose(1, 2) : x; };
        t.push_back({
            .name = "matmul_layouts_alpha_beta_broadcast",
            .seed = 2,
            .draw =
                [=](std::mt19937& rng) {
                    Tensors in;
                    for (int l = 0; l < 4; ++l) {
                        in.add("a" + str(l), (l & 1) ? randn({B, K, M}, rng) : randn({B, M, K}, rng));
                        in.add("b" + str(l), (l & 2) ? randn({B, N, K}, rng) : randn({B, K, N}, rng));
                        in.add("c0_" + str(l), randn({B, M, N}, rng));
                    }
                    return in.add("a", randn({4, 5, 6}, rng)).add("w", randn({6, 7}, rng));
                },
            .run =
                [=](const Tensors& in, Device d) {
                    Tensors out;
                    for (int l = 0; l < 4; ++l) {
                        const Tensor a = va(l, in["a" + str(l)]), b = vb(l, in["b" + str(l)]);
                        Tensor c = f32_on({B, M, N}, d);
                        matmul(a, b, c);
                        const Tensor c1 = in["c0_" + str(l)];  // the runner's copy: accumulated into
                        matmul(a, b, c1, 0.5f, 2.f);
                        out.add("c" + str(l), c).add("c1_" + str(l), c1);
                    }
                    Tensor c = f32_on({4, 5, 7}, d);
                    matmul(in["a"], in["w"], c);
                    return out.add("c_broadcast", c);
                },
            .reference =
                [=](const Tensors& in, const Tensors&) {
                    std::vector<Expected> e;
                    for (int l = 0; l < 4; ++l) {
                        std::vector<double> r = ref_matmul(va(l, in["a" + str(l)]), vb(l, in["b" + str(l)]));
                        e.push_back({"c" + str(l), r, 1e-4, 1e-4, "matmul layout " + str(l)});
                        const Tensor& c0 = in["c0_" + str(l)];
                        for (size_t i = 0; i < r.size(); ++i) r[i] = 0.5 * r[i] + 2.0 * c0.f32()[i];
                        e.push_back({"c1_" + str(l), r, 1e-4, 1e-4, "matmul alpha/beta"});
                    }
                    e.push_back(
                        {"c_broadcast", ref_matmul(in["a"], in["w"].unsqueeze(0)), 1e-4, 1e-4, "matmul broadcast"});
                    return e;
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    Tensor bad = Tensor::empty({4, 5, 8});
                    EXPECT_THROW(matmul(in["a"], in["w"], bad), Error);
                },
        });
    }
    // More rows than one GEMM block (16384), with row-major and transposed (column-major) left operands.
    {
        const int64_t M = 40000, K = 7, N = 5;
        static const auto va = [](int tr, const Tensor& x) { return tr ? x.transpose(0, 1) : x; };
        t.push_back({
            .name = "matmul_tall_row_blocks",
            .seed = 12,
            .draw =
                [=](std::mt19937& rng) {
                    Tensors in;
                    for (int tr = 0; tr < 2; ++tr) {
                        in.add("a" + str(tr), tr ? randn({K, M}, rng) : randn({M, K}, rng));
                        in.add("b" + str(tr), randn({K, N}, rng));
                    }
                    return in;
                },
            .run =
                [=](const Tensors& in, Device d) {
                    Tensors out;
                    for (int tr = 0; tr < 2; ++tr) {
                        Tensor c = f32_on({M, N}, d);
                        matmul(va(tr, in["a" + str(tr)]), in["b" + str(tr)], c);
                        out.add("c" + str(tr), c);
                    }
                    return out;
                },
            .reference =
                [=](const Tensors& in, const Tensors&) {
                    std::vector<Expected> e;
                    for (int tr = 0; tr < 2; ++tr)
                        e.push_back({"c" + str(tr),
                                     ref_matmul(va(tr, in["a" + str(tr)]).unsqueeze(0), in["b" + str(tr)].unsqueeze(0)),
                                     1e-4, 1e-4, "tall matmul"});
                    return e;
                },
        });
    }
    // TF32 and BF16 GEMMs: exactly the fp32-accumulated product of the rounded operands (what tensor cores
    // compute), for every operand layout, tall products (rounded in blocks of rows) and wide ones (blocks of
    // columns, of a column-major B); and measurably not the fp32 product.
    {
        static const std::pair<MatmulPrecision, int> precisions[] = {{MatmulPrecision::Bf16, 7},
                                                                     {MatmulPrecision::Tf32, 10}};
        static const auto dims = [](int l) {
            return std::array<int64_t, 4>{2, l == 3 ? 9000 : 17, 64, l == 2 ? 9000 : 19};
        };
        static const auto va = [](int l, const Tensor& x) { return (l & 1) ? x.transpose(1, 2) : x; };
        static const auto vb = [](int l, const Tensor& x) { return (l & 2) ? x.transpose(1, 2) : x; };
        static const auto key = [](const char* prefix, MatmulPrecision p, int l) {
            std::string k = prefix;  // (appended, not "a" + string: g++ 12 warns falsely about that -Wrestrict)
            return k.append(precision_name(p)).append(str(l));
        };
        t.push_back({
            .name = "matmul_reduced_precision_rounds_operands",
            .seed = 21,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in;
                    for (auto [p, bits] : precisions)
                        for (int l = 0; l < 4; ++l) {
                            const auto [B, M, K, N] = dims(l);
                            in.add(key("a", p, l), (l & 1) ? randn({B, K, M}, rng) : randn({B, M, K}, rng));
                            in.add(key("b", p, l), (l & 2) ? randn({B, N, K}, rng) : randn({B, K, N}, rng));
                        }
                    return in;
                },
            .run =
                [](const Tensors& in, Device d) {
                    Tensors out;
                    for (auto [p, bits] : precisions)
                        for (int l = 0; l < 4; ++l) {
                            const auto [B, M, K, N] = dims(l);
                            Tensor c = f32_on({B, M, N}, d);
                            PrecisionScope scope(p);
                            matmul(va(l, in[key("a", p, l)]), vb(l, in[key("b", p, l)]), c);
                            out.add(key("c", p, l), c);
                        }
                    return out;
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    std::vector<Expected> e;
                    for (auto [p, bits] : precisions)
                        for (int l = 0; l < 4; ++l) {
                            const Tensor a = va(l, in[key("a", p, l)]), b = vb(l, in[key("b", p, l)]);
                            e.push_back({key("c", p, l), ref_matmul(rounded(a, bits), rounded(b, bits)), 1e-5, 1e-5,
                                         std::string(precision_name(p)) + " layout " + str(l)});
                        }
                    return e;
                },
            .check =
                [](const Tensors& in, const Tensors& out) {
                    for (auto [p, bits] : precisions)
                        for (int l = 0; l < 4; ++l) {  // the rounding is really applied
                            const std::vector<double> exact =
                                ref_matmul(va(l, in[key("a", p, l)]), vb(l, in[key("b", p, l)]));
                            const Tensor& c = out[key("c", p, l)];
                            double worst = 0;
                            for (size_t i = 0; i < exact.size(); ++i)
                                worst = std::max(worst, std::abs(c.f32()[i] - exact[i]));
                            EXPECT_GT(worst, bits == 7 ? 1e-2 : 1e-3)
                                << precision_name(p) << " layout " << l << " equals the fp32 product";
                        }
                },
            .gpu_rtol = 1e-4,
        });
    }
}

void add_linear_cases(std::vector<OpCase>& t) {
    // AF2 attention weight layout [c_in, H, c]; rows that merge and rows that need a copy; accumulation into an
    // existing output (a residual update); a wrong weight is an error.
    const int64_t S = 5, N = 7, Cin = 12, H = 3, C = 4;
    static const auto xin = [](int strided, const Tensors& in) {
        return strided ? in["x_t"].transpose(0, 1) : in["x"];  // non-mergeable rows -> copy path
    };
    t.push_back({
        .name = "linear_af2_layout_accumulate",
        .seed = 3,
        .draw =
            [=](std::mt19937& rng) {
                Tensors in{{"x", randn({S, N, Cin}, rng)}, {"w", randn({Cin, H, C}, rng)}, {"b", randn({H, C}, rng)}};
                return in.add("x_t", randn({N, S, Cin}, rng)).add("wrong", randn({Cin + 1, 4}, rng));
            },
        .run =
            [](const Tensors& in, Device d) {
                Tensors out;
                Context ctx(d);
                for (int s = 0; s < 2; ++s) {
                    const Tensor y = linear(xin(s, in), in["w"], in["b"], ctx.ws).clone();
                    const Tensor y2 = y.clone();
                    linear(xin(s, in), in["w"], in["b"], y2, 1.f);
                    out.add("y" + str(s), y).add("y2_" + str(s), y2);
                }
                return out;
            },
        .reference =
            [=](const Tensors& in, const Tensors&) {
                std::vector<Expected> e;
                const Tensor &w = in["w"], &b = in["b"];
                for (int s = 0; s < 2; ++s) {
                    const Tensor x = xin(s, in);
                    std::vector<double> r(S * N * H * C);
                    for (int64_t si = 0; si < S; ++si)
                        for (int64_t n = 0; n < N; ++n)
                            for (int64_t o = 0; o < H * C; ++o) {
                                double acc = b.f32()[o];
                                for (int64_t i = 0; i < Cin; ++i)
                                    acc += (double)x.at({si, n, i}) * w.f32()[i * H * C + o];
                                r[(si * N + n) * H * C + o] = acc;
                            }
                    e.push_back({"y" + str(s), r, 1e-4, 1e-4, "linear"});
                    for (auto& v : r) v *= 2;
                    e.push_back({"y2_" + str(s), r, 2e-4, 1e-4, "linear accumulate"});
                }
                return e;
            },
        .check =
            [=](const Tensors& in, const Tensors& out) {
                for (int s = 0; s < 2; ++s) ASSERT_EQ(out["y" + str(s)].shape(), (Shape{S, N, H * C}));
                Workspace ws;
                EXPECT_THROW(linear(in["x"], in["wrong"], Tensor(), ws), Error);
            },
    });
    // Shapes the CPU splits across threads, the tall one into row blocks with the bias added block by block
    // (5000 rows: the blocks end in a partial one), the wide one by columns; set, accumulated, and with ReLU.
    struct Dims {
        int64_t rows, cin, cout;
    };
    for (const Dims dims : {Dims{5000, 24, 40}, Dims{16, 8, 4200}}) {
        const int64_t rows = dims.rows, cin = dims.cin, cout = dims.cout;  // (clang 14 cannot capture bindings)
        t.push_back({
            .name = rows > cout ? "linear_tall_row_blocks_bias" : "linear_wide_column_split_bias",
            .seed = rows > cout ? 11u : 12u,
            .draw =
                [=](std::mt19937& rng) {
                    return Tensors{
                        {"x", randn({rows, cin}, rng)}, {"w", randn({cin, cout}, rng)}, {"b", randn({cout}, rng)}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    Context ctx(d);
                    const Tensor y = linear(in["x"], in["w"], in["b"], ctx.ws).clone();
                    const Tensor y2 = y.clone();
                    linear(in["x"], in["w"], in["b"], y2, 1.f);
                    const Tensor yr = linear_relu(in["x"], in["w"], in["b"], ctx.ws).clone();
                    return Tensors{{"y", y}, {"y2", y2}, {"relu", yr}};
                },
            .reference =
                [=](const Tensors& in, const Tensors&) {
                    std::vector<double> r(rows * cout);
                    for (int64_t i = 0; i < rows; ++i)
                        for (int64_t o = 0; o < cout; ++o) {
                            double acc = in["b"].f32()[o];
                            for (int64_t c = 0; c < cin; ++c)
                                acc += (double)in["x"].f32()[i * cin + c] * in["w"].f32()[c * cout + o];
                            r[i * cout + o] = acc;
                        }
                    std::vector<double> rr(r.size());
                    for (size_t i = 0; i < r.size(); ++i) rr[i] = std::max(r[i], 0.0);
                    std::vector<Expected> e{{"y", r, 1e-4, 1e-4, "linear"}, {"relu", rr, 1e-4, 1e-4, "linear_relu"}};
                    for (auto& v : r) v *= 2;
                    e.push_back({"y2", r, 2e-4, 1e-4, "linear accumulate"});
                    return e;
                },
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Layer norm and softmax.

void add_layer_norm_softmax_cases(std::vector<OpCase>& t) {
    // Rows with a non-zero mean; in place on a strided (sliced) view; channel-major memory [C][R] seen as an
    // [R, C] view (stride(0) == 1), normalised in place, and a linear reading that view directly.
    {
        const int64_t R = 37, C = 96;
        static const View v_wide = [](const Tensor& x) { return x.slice(1, 4, 4 + C); };
        static const View v_cm = [](const Tensor& x) { return x.transpose(0, 1); };  // [C, R] memory as [R, C]
        t.push_back({
            .name = "layer_norm_strided_in_place_channel_major",
            .seed = 4,
            .draw =
                [](std::mt19937& rng) {
                    Tensor x = randn({R, C}, rng, 3.f);
                    for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] += 5.f;  // non-zero mean
                    Tensors in{{"x", x}, {"g", randn({C}, rng)}, {"b", randn({C}, rng)}};
                    return in.add("wide", randn({R, C + 8}, rng)).add("w", randn({C, 5}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor &x = in["x"], &g = in["g"], &b = in["b"];
                    Tensor y = f32_on({R, C}, d);
                    layer_norm(x, g, b, 1e-5f, y);
                    const Tensor v = v_wide(in["wide"]);
                    Tensor ref_in = v.contiguous(), ref_out = f32_on({R, C}, d);
                    layer_norm(ref_in, g, b, 1e-5f, ref_out);
                    layer_norm(v, g, b, 1e-5f, v);
                    const Tensor cm_mem = x.transpose(0, 1).contiguous(), cm = v_cm(cm_mem);
                    layer_norm(cm, g, b, 1e-5f, cm);
                    Context ctx(d);
                    const Tensor y1 = linear(cm, in["w"], Tensor(), ctx.ws).clone();
                    const Tensor y2 = linear(cm.contiguous(), in["w"], Tensor(), ctx.ws).clone();
                    return Tensors{{"y", y},       {"wide", in["wide"]}, {"ref_out", ref_out},
                                   {"cm", cm_mem}, {"linear_cm", y1},    {"linear_cm_contiguous", y2}};
                },
            .reference =
                [](const Tensors& in, const Tensors& out) {
                    const std::vector<double> r = ref_layer_norm(in["x"], in["g"], in["b"], 1e-5);
                    return std::vector<Expected>{
                        {"y", r, 1e-4, 1e-4, "layer_norm"},
                        {"wide", to_f64(out["ref_out"]), 0, 0, "layer_norm in place strided", v_wide},
                        {"cm", r, 1e-4, 1e-4, "layer_norm channel-major", v_cm},
                        {"linear_cm", to_f64(out["linear_cm_contiguous"]), 1e-5, 1e-5, "linear column-major input"},
                    };
                },
            .check = [](const Tensors&, const Tensors& out) { ASSERT_EQ(v_cm(out["cm"]).stride(0), 1); },
        });
    }
    // Scale, a broadcast mask (one batch element's key 0 kept) and a broadcast bias; masked keys get exactly zero
    // weight when any key is unmasked.
    {
        const int64_t B = 3, H = 2, Q = 5, K = 11;
        t.push_back({
            .name = "softmax_mask_bias_scale",
            .seed = 5,
            .draw =
                [](std::mt19937& rng) {
                    Tensor x = randn({B, H, Q, K}, rng, 2.f), mask = random_mask({B, 1, 1, K}, rng, 0.3f);
                    mask.at({0, 0, 0, 0}) = 1.f;
                    return Tensors{{"x", x}, {"mask", mask}, {"bias", randn({1, H, Q, K}, rng)}};
                },
            .run =
                [](const Tensors& in, Device) {
                    softmax(in["x"], 0.7f, in["mask"].expand({B, H, Q, K}), in["bias"].expand({B, H, Q, K}), 1e9f);
                    return Tensors{{"x", in["x"]}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &x = in["x"], &mask = in["mask"], &bias = in["bias"];
                    std::vector<double> r(B * H * Q * K);
                    for (int64_t b = 0; b < B; ++b)
                        for (int64_t h = 0; h < H; ++h)
                            for (int64_t q = 0; q < Q; ++q) {
                                std::vector<double> l(K);
                                double mx = -1e300, s = 0;
                                for (int64_t k = 0; k < K; ++k) {
                                    l[k] = 0.7 * x.at({b, h, q, k}) + bias.at({0, h, q, k}) +
                                           1e9 * (mask.at({b, 0, 0, k}) - 1);
                                    mx = std::max(mx, l[k]);
                                }
                                for (int64_t k = 0; k < K; ++k) s += std::exp(l[k] - mx);
                                for (int64_t k = 0; k < K; ++k)
                                    r[((b * H + h) * Q + q) * K + k] = std::exp(l[k] - mx) / s;
                            }
                    return std::vector<Expected>{{"x", r, 1e-6, 1e-5, "softmax"}};
                },
            .check =
                [](const Tensors& in, const Tensors& out) {
                    for (int64_t k = 0; k < K; ++k)
                        if (in["mask"].at({1, 0, 0, k}) == 0.f) {
                            EXPECT_EQ(out["x"].at({1, 1, 2, k}), 0.f) << k;
                        }
                },
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The attention core.

// q, k, v [B, Q|K, H, C], a mask [B, K] with keys masked at random (key 0 kept in every batch element) and a
// bias [H, Q, K].
Tensors draw_masked_attention(std::mt19937& rng, int64_t B, int64_t Q, int64_t K, int64_t H, int64_t C) {
    Tensors in{{"q", randn({B, Q, H, C}, rng)}, {"k", randn({B, K, H, C}, rng)}, {"v", randn({B, K, H, C}, rng)}};
    Tensor mask = random_mask({B, K}, rng, 0.3f);
    for (int64_t b = 0; b < B; ++b) mask.at({b, 0}) = 1.f;
    return in.add("mask", mask).add("bias", randn({H, Q, K}, rng));
}

void add_attention_cases(std::vector<OpCase>& t) {
    // Masked keys (every batch element keeps key 0) and a bias; transposed (column) views give the same answer as
    // materialised inputs.
    {
        const int64_t B = 4, Q = 9, K = 13, H = 3, C = 8;
        static const View v_q = [](const Tensor& x) { return x.permute({1, 0, 2, 3}); };
        static const float scale = 1.f / std::sqrt(8.f);
        t.push_back({
            .name = "attention_mask_bias_strided",
            .seed = 6,
            .draw = [](std::mt19937& rng) { return draw_masked_attention(rng, B, Q, K, H, C); },
            .run =
                [](const Tensors& in, Device d) {
                    Context ctx(d);
                    Tensor out = f32_on({B, Q, H, C}, d);
                    attention(in["q"], in["k"], in["v"], in["mask"], in["bias"], scale, 1e9f, out, ctx.ws);
                    const Tensor qt = v_q(v_q(in["q"]).contiguous());
                    Tensor out2 = f32_on({Q, B, H, C}, d);
                    attention(qt, in["k"], in["v"], in["mask"], in["bias"], scale, 1e9f, v_q(out2), ctx.ws);
                    return Tensors{{"out", out}, {"out2", out2}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const std::vector<double> r =
                        ref_attention(in["q"], in["k"], in["v"], in["mask"], in["bias"], scale);
                    return std::vector<Expected>{{"out", r, 1e-5, 1e-4, "attention"},
                                                 {"out2", r, 1e-5, 1e-4, "attention strided", v_q}};
                },
        });
    }
    // The CPU's fused kernel at its widest head (C = 64: eight vectors a row) with query and key counts that
    // leave partial row blocks and padded key vectors, and a head width it leaves to the BLAS path (C = 12).
    for (const int64_t C : {64, 12}) {
        const int64_t B = 2, Q = 14, K = 37, H = 2;
        t.push_back({
            .name = C == 64 ? "attention_head_width_64" : "attention_head_width_12",
            .seed = static_cast<uint32_t>(40 + C),
            .draw = [C](std::mt19937& rng) { return draw_masked_attention(rng, B, Q, K, H, C); },
            .run =
                [C](const Tensors& in, Device d) {
                    Context ctx(d);
                    Tensor out = f32_on({B, Q, H, C}, d);
                    attention(in["q"], in["k"], in["v"], in["mask"], in["bias"], 0.2f, 1e9f, out, ctx.ws);
                    return Tensors{{"out", out}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    return std::vector<Expected>{{"out",
                                                  ref_attention(in["q"], in["k"], in["v"], in["mask"], in["bias"], 0.2),
                                                  1e-5, 1e-4, "attention"}};
                },
        });
    }
    // A mask and a bias whose key axis is strided (as views of transposed memory), with a key count that ends
    // in a partial vector.
    {
        const int64_t B = 2, Q = 10, K = 37, H = 2, C = 16;
        t.push_back({
            .name = "attention_strided_mask_and_bias",
            .seed = 47,
            .draw = [](std::mt19937& rng) { return draw_masked_attention(rng, B, Q, K, H, C); },
            .run =
                [](const Tensors& in, Device d) {
                    Context ctx(d);
                    const Tensor mask = in["mask"].transpose(0, 1).contiguous().transpose(0, 1);
                    const Tensor bias = in["bias"].permute({0, 2, 1}).contiguous().permute({0, 2, 1});
                    Tensor out = f32_on({B, Q, H, C}, d);
                    attention(in["q"], in["k"], in["v"], mask, bias, 0.25f, 1e9f, out, ctx.ws);
                    return Tensors{{"out", out}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    return std::vector<Expected>{
                        {"out", ref_attention(in["q"], in["k"], in["v"], in["mask"], in["bias"], 0.25), 1e-5, 1e-4,
                         "attention, strided mask and bias"}};
                },
        });
    }
    // Attention in bf16: q, k, the probabilities and v enter their GEMMs rounded; and the result is not fp32's.
    {
        const int64_t B = 2, Q = 5, K = 7, H = 2, C = 16;
        t.push_back({
            .name = "attention_bf16_rounds_operands",
            .seed = 27,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{{"q", randn({B, Q, H, C}, rng)},
                                   {"k", randn({B, K, H, C}, rng)},
                                   {"v", randn({B, K, H, C}, rng)}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    Context ctx(d);
                    Tensor out = f32_on({B, Q, H, C}, d), out32 = f32_on({B, Q, H, C}, d);
                    attention(in["q"], in["k"], in["v"], Tensor(), Tensor(), 0.25f, 1e9f, out32, ctx.ws);
                    {
                        PrecisionScope scope(MatmulPrecision::Bf16);
                        attention(in["q"], in["k"], in["v"], Tensor(), Tensor(), 0.25f, 1e9f, out, ctx.ws);
                    }
                    return Tensors{{"out", out}, {"out_fp32", out32}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    return std::vector<Expected>{{"out",
                                                  ref_attention(rounded(in["q"], 7), rounded(in["k"], 7),
                                                                rounded(in["v"], 7), Tensor(), Tensor(), 0.25, 7),
                                                  1e-5, 1e-4, "bf16 attention"}};
                },
            .check =
                [](const Tensors&, const Tensors& out) {
                    const Tensor &o = out["out"], &o32 = out["out_fp32"];
                    double diff = 0;
                    for (int64_t i = 0; i < o.numel(); ++i)
                        diff = std::max(diff, (double)std::abs(o.f32()[i] - o32.f32()[i]));
                    EXPECT_GT(diff, 1e-4) << "bf16 attention equals fp32";
                },
            // The probabilities are rounded to bfloat16 after a softmax whose last bit differs between backends: a
            // probability may round to its neighbour (2^-8 relative), as in the flash kernel's bf16 check.
            .gpu_rtol = 1e-2,
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Elementwise ops.

void add_elementwise_cases(std::vector<OpCase>& t) {
    // add with a broadcast row, sigmoid_mul, relu, div_eps and sigmoid against float64.
    t.push_back({
        .name = "elementwise_float64",
        .seed = 7,
        .draw =
            [](std::mt19937& rng) {
                return Tensors{{"x", randn({6, 10}, rng)}, {"y", randn({6, 10}, rng)}, {"row", randn({1, 10}, rng)}};
            },
        .run =
            [](const Tensors& in, Device) {
                const Tensor &x = in["x"], &y = in["y"];
                Tensor a = x.clone(), g = x.clone(), re = x.clone(), d = x.clone(), s = x.clone();
                add(a, in["row"].expand({6, 10}), 0.5f);
                sigmoid_mul(g, y);
                relu(re);
                div_eps(d, y, 1e-3f);
                sigmoid(s);
                return Tensors{{"add", a}, {"sigmoid_mul", g}, {"relu", re}, {"div_eps", d}, {"sigmoid", s}};
            },
        .reference =
            [](const Tensors& in, const Tensors&) {
                const std::vector<double> xs = to_f64(in["x"]), ys = to_f64(in["y"]), rs = to_f64(in["row"]);
                std::vector<Expected> e;
                std::vector<double> r(60);
                for (int i = 0; i < 60; ++i) r[i] = xs[i] + 0.5 * rs[i % 10];
                e.push_back({"add", r, 1e-6, 1e-6, "add broadcast"});
                for (int i = 0; i < 60; ++i) r[i] = xs[i] / (1 + std::exp(-ys[i]));
                e.push_back({"sigmoid_mul", r, 1e-6, 1e-5, "sigmoid_mul"});
                for (int i = 0; i < 60; ++i) r[i] = xs[i] > 0 ? xs[i] : 0;
                e.push_back({"relu", r, 0, 0, "relu"});
                for (int i = 0; i < 60; ++i) r[i] = xs[i] / (ys[i] + 1e-3);
                e.push_back({"div_eps", r, 1e-5, 1e-4, "div_eps"});
                for (int i = 0; i < 60; ++i) r[i] = 1 / (1 + std::exp(-xs[i]));
                e.push_back({"sigmoid", r, 1e-6, 1e-5, "sigmoid"});
                return e;
            },
    });
}

// The optimizer's steps (training/optimizer.h): Adam with a clipping scale, the moving average and the squared
// norm, on more elements than one CPU block (65536) and than one CUDA grid pass.
void add_optimizer_cases(std::vector<OpCase>& t) {
    constexpr int64_t n = 300007;
    static const AdamCoefficients c{1e-3, 0.9, 0.999, 1e-6, 1 - 0.9 * 0.9 * 0.9, 1 - 0.999 * 0.999 * 0.999, 0.5};
    t.push_back({
        .name = "optimizer_steps_float64",
        .seed = 71,
        .draw =
            [](std::mt19937& rng) {
                Tensor v = randn({n}, rng);
                mul(v, v.clone());  // a second moment is >= 0
                return Tensors{{"p", randn({n}, rng)}, {"g", randn({n}, rng)}, {"m", randn({n}, rng, 0.1f)}, {"v", v}};
            },
        .run =
            [](const Tensors& in, Device) {
                const Tensor ema = in["m"].clone();
                moving_average_update(ema, in["p"], 0.999);
                Tensor sum = Tensor::empty({1}, DType::F64);
                sum.data<double>()[0] = sum_of_squares(in["g"]);
                adam_update(in["p"], in["g"], in["m"], in["v"], c);
                return Tensors{{"p", in["p"]}, {"m", in["m"]}, {"v", in["v"]}, {"ema", ema}, {"sum", sum}};
            },
        .reference =
            [](const Tensors& in, const Tensors&) {
                const std::vector<double> p = to_f64(in["p"]), g = to_f64(in["g"]), m = to_f64(in["m"]),
                                          v = to_f64(in["v"]);
                std::vector<double> rp(n), rm(n), rv(n), re(n), sum(1, 0.0);
                for (int64_t i = 0; i < n; ++i) {
                    const double ge = c.grad_scale * g[i];
                    rm[i] = c.beta1 * m[i] + (1 - c.beta1) * ge;
                    rv[i] = c.beta2 * v[i] + (1 - c.beta2) * ge * ge;
                    rp[i] = p[i] - c.lr * (rm[i] / c.bias1) / (std::sqrt(rv[i] / c.bias2) + c.eps);
                    re[i] = 0.999 * m[i] + 0.001 * p[i];
                    sum[0] += g[i] * g[i];
                }
                return std::vector<Expected>{{"p", rp, 1e-7, 1e-6, "adam parameter"},
                                             {"m", rm, 1e-8, 1e-6, "adam first moment"},
                                             {"v", rv, 1e-8, 1e-6, "adam second moment"},
                                             {"ema", re, 1e-8, 1e-6, "moving average"},
                                             {"sum", sum, 0, 1e-12, "sum of squares"}};
            },
        .check =
            [](const Tensors& in, const Tensors&) {
                EXPECT_THROW(adam_update(in["p"], in["g"].slice(0, 0, 5), in["m"], in["v"], c), Error);
                EXPECT_THROW(moving_average_update(in["p"], in["g"].view({n, 1}).expand({n, 2}), 0.9), Error);
            },
        .gpu_rtol = 1e-6,
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Backward passes (training), against float64 derivatives of the forward ops and, where cheap, central differences
// of the float64 forward (so a wrong formula in both places would still be caught).

void add_backward_cases(std::vector<OpCase>& t) {
    {
        const int64_t rows = 7, n = 37;
        constexpr float scale = 0.7f;
        t.push_back({
            .name = "softmax_backward_in_place",
            .seed = 31,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{{"x", randn({rows, n}, rng)}, {"dy", randn({rows, n}, rng)}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor y = in["x"].clone(), dx = f32_on({rows, n}, d);
                    softmax(y, scale, Tensor(), Tensor(), 1e9f);
                    softmax_backward(y, in["dy"], scale, dx);
                    softmax_backward(y, in["dy"], scale, in["dy"]);  // in place over dy
                    return Tensors{{"y", y}, {"dx", dx}, {"dy", in["dy"]}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &x = in["x"], &dy = in["dy"];
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
                            double dd = 0;
                            for (int64_t j = 0; j < n; ++j) dd += (pa[j] - pb[j]) / (2 * h) * dy.at({r, j});
                            fd[r * n + k] = dd;
                        }
                    }
                    return std::vector<Expected>{{"dx", ref, 1e-6, 1e-5, "softmax backward"},
                                                 {"dx", fd, 1e-5, 1e-4, "softmax backward vs differences"},
                                                 {"dy", ref, 1e-6, 1e-5, "softmax backward in place"}};
                },
        });
    }
    // Layer norm backward for a short row, a threaded one (C = 128 over 300 rows) and a long one: dx, the
    // parameter gradients accumulated into non-zero buffers, dx aliasing dy, and one central difference.
    {
        static const int64_t Cs[] = {7, 128, 1500};
        const int64_t rows = 300;
        constexpr float eps = 1e-5f;
        t.push_back({
            .name = "layer_norm_backward_accumulate_in_place",
            .seed = 32,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in;
                    for (int64_t C : Cs) {
                        const std::string c = str(C);
                        in.add("x" + c, randn({rows, C}, rng, 2.f)).add("g" + c, randn({C}, rng));
                        in.add("b" + c, randn({C}, rng)).add("dy" + c, randn({rows, C}, rng));
                        in.add("dg0_" + c, Tensor::full({C}, 0.5f)).add("db0_" + c, Tensor::full({C}, -0.25f));
                    }
                    return in;
                },
            .run =
                [](const Tensors& in, Device d) {
                    Tensors out;
                    for (int64_t C : Cs) {
                        const std::string c = str(C);
                        const Tensor &x = in["x" + c], &g = in["g" + c], &dy = in["dy" + c];
                        const Tensor dx = f32_on({rows, C}, d), dg = in["dg0_" + c].clone(),
                                     db = in["db0_" + c].clone();
                        layer_norm_backward(x, g, eps, dy, dx, dg, db);
                        // dx aliasing dy: same results, parameter sums from the original dy.
                        const Tensor dy2 = dy.clone(), dg2 = in["dg0_" + c].clone(), db2 = in["db0_" + c].clone();
                        layer_norm_backward(x, g, eps, dy2, dy2, dg2, db2);
                        out.add("dx" + c, dx).add("dg" + c, dg).add("db" + c, db);
                        out.add("dx_in_place" + c, dy2).add("dg_in_place" + c, dg2).add("db_in_place" + c, db2);
                    }
                    return out;
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    std::vector<Expected> e;
                    for (int64_t C : Cs) {
                        const std::string c = str(C);
                        const Tensor &x = in["x" + c], &g = in["g" + c], &dy = in["dy" + c];
                        std::vector<double> rdx(rows * C), rdg(C, 0.5), rdb(C, -0.25);
                        for (int64_t r = 0; r < rows; ++r) {
                            double mean = 0, var = 0;
                            for (int64_t k = 0; k < C; ++k) mean += x.at({r, k});
                            mean /= C;
                            for (int64_t k = 0; k < C; ++k) var += (x.at({r, k}) - mean) * (x.at({r, k}) - mean);
                            const double inv = 1 / std::sqrt(var / C + eps);
                            double sg = 0, sgx = 0;
                            for (int64_t k = 0; k < C; ++k) {
                                const double xh = (x.at({r, k}) - mean) * inv, gc = (double)dy.at({r, k}) * g.at({k});
                                sg += gc;
                                sgx += gc * xh;
                                rdg[k] += dy.at({r, k}) * xh;
                                rdb[k] += dy.at({r, k});
                            }
                            for (int64_t k = 0; k < C; ++k) {
                                const double xh = (x.at({r, k}) - mean) * inv;
                                rdx[r * C + k] = inv * ((double)dy.at({r, k}) * g.at({k}) - sg / C - xh * sgx / C);
                            }
                        }
                        const std::string what = "layer norm backward C=" + c;
                        e.push_back({"dx" + c, rdx, 1e-5, 1e-4, what + " dx"});
                        e.push_back({"dg" + c, rdg, 1e-4, 1e-4, what + " dscale (accumulated)"});
                        e.push_back({"db" + c, rdb, 1e-4, 1e-4, what + " doffset (accumulated)"});
                        e.push_back({"dx_in_place" + c, rdx, 1e-5, 1e-4, what + " dx in place"});
                        e.push_back({"dg_in_place" + c, rdg, 1e-4, 1e-4, what + " dscale in place"});
                    }
                    return e;
                },
            .check =
                [](const Tensors& in, const Tensors& out) {
                    for (int64_t C : Cs) {  // central difference of sum(dy * layer_norm(x)) in one coordinate
                        const std::string c = str(C);
                        const Tensor &x = in["x" + c], &g = in["g" + c], &b = in["b" + c], &dy = in["dy" + c];
                        const int64_t r0 = 3, c0 = C / 2;
                        auto loss = [&](double delta) {
                            double mean = 0, var = 0, l = 0;
                            std::vector<double> row(C);
                            for (int64_t k = 0; k < C; ++k) row[k] = x.at({r0, k}) + (k == c0 ? delta : 0);
                            for (double v : row) mean += v;
                            mean /= C;
                            for (double v : row) var += (v - mean) * (v - mean);
                            const double inv = 1 / std::sqrt(var / C + eps);
                            for (int64_t k = 0; k < C; ++k)
                                l += dy.at({r0, k}) * ((row[k] - mean) * inv * g.at({k}) + b.at({k}));
                            return l;
                        };
                        EXPECT_NEAR(out["dx" + c].at({r0, c0}), (loss(1e-5) - loss(-1e-5)) / 2e-5, 1e-3)
                            << "layer norm backward C=" << C;
                    }
                },
            .gpu_rtol = 1e-4,
        });
    }
    {
        const int64_t R = 5, N = 40000;
        t.push_back({
            .name = "sigmoid_mul_backward",
            .seed = 33,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{
                        {"x", randn({R, N}, rng)}, {"g", randn({R, N}, rng, 3.f)}, {"dy", randn({R, N}, rng)}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor dx = f32_on({R, N}, d), dg = f32_on({R, N}, d);
                    sigmoid_mul_backward(in["x"], in["g"], in["dy"], dx, dg);
                    return Tensors{{"dx", dx}, {"dg", dg}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &x = in["x"], &g = in["g"], &dy = in["dy"];
                    std::vector<double> rdx(x.numel()), rdg(x.numel());
                    for (int64_t i = 0; i < x.numel(); ++i) {
                        const double s = 1 / (1 + std::exp(-(double)g.f32()[i]));
                        rdx[i] = dy.f32()[i] * s;
                        rdg[i] = dy.f32()[i] * x.f32()[i] * s * (1 - s);
                    }
                    return std::vector<Expected>{{"dx", rdx, 1e-6, 1e-5, "sigmoid_mul backward dx"},
                                                 {"dg", rdg, 1e-6, 1e-5, "sigmoid_mul backward dgate"}};
                },
        });
    }
    // relu backward passes where the output is positive (about half the elements); in place over dy too.
    {
        const int64_t R = 3, N = 50000;
        t.push_back({
            .name = "relu_backward_in_place",
            .seed = 34,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{{"y", randn({R, N}, rng)}, {"dy", randn({R, N}, rng)}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor &y = in["y"], &dy = in["dy"], dx = f32_on({R, N}, d);
                    relu(y);
                    relu_backward(y, dy, dx);
                    relu_backward(y, dy, dy);  // in place
                    return Tensors{{"y", y}, {"dx", dx}, {"dy", dy}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &y = in["y"], &dy = in["dy"];
                    std::vector<double> r(y.numel());
                    for (int64_t i = 0; i < y.numel(); ++i) r[i] = y.f32()[i] > 0 ? dy.f32()[i] : 0.0;
                    return std::vector<Expected>{{"dx", r, 0, 0, "relu backward"},
                                                 {"dy", r, 0, 0, "relu backward in place"}};
                },
            .check =
                [](const Tensors&, const Tensors& out) {
                    const Tensor& y = out["y"];
                    int64_t passed = 0;
                    for (int64_t i = 0; i < y.numel(); ++i) passed += y.f32()[i] > 0;
                    EXPECT_GT(passed, y.numel() / 4);
                    EXPECT_LT(passed, 3 * y.numel() / 4);
                },
        });
    }
    // linear_backward: dx assigned or accumulated, dw and dbias accumulated, an AF2 weight of more than two dims
    // ([c_in, H, c] viewed as [c_in, H * c]), rows from leading dims; a mismatched dy is an error.
    {
        const int64_t B = 3, R = 7, Ci = 5, H = 2, C = 3, Co = H * C;
        t.push_back({
            .name = "linear_backward_assign_accumulate",
            .seed = 35,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{
                        {"x", randn({B, R, Ci}, rng)}, {"w", randn({Ci, H, C}, rng)}, {"dy", randn({B, R, H, C}, rng)}};
                    in.add("dx0", randn({B, R, Ci}, rng))
                        .add("dw0", randn({Ci, H, C}, rng))
                        .add("db0", randn({H, C}, rng));
                    return in.add("bad_dy", randn({B, R, 5}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    Tensors out;
                    for (bool accumulate : {false, true}) {
                        const std::string a = accumulate ? "_accumulate" : "";
                        const Tensor dx = in["dx0"].clone(), dw = in["dw0"].clone(), db = in["db0"].clone();
                        Context ctx(d);
                        linear_backward(in["x"], in["w"], in["dy"], dx, accumulate, dw, db, ctx.ws);
                        out.add("dx" + a, dx).add("dw" + a, dw).add("db" + a, db);
                    }
                    return out;
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &x = in["x"], &w = in["w"], &dy = in["dy"];
                    const Tensor &dx0 = in["dx0"], &dw0 = in["dw0"], &db0 = in["db0"];
                    std::vector<Expected> e;
                    for (bool accumulate : {false, true}) {
                        const std::string a = accumulate ? "_accumulate" : "";
                        std::vector<double> rdx(x.numel()), rdw(w.numel()), rdb(db0.numel());
                        for (int64_t r = 0; r < B * R; ++r)
                            for (int64_t i = 0; i < Ci; ++i) {
                                double v = accumulate ? dx0.f32()[r * Ci + i] : 0.0;
                                for (int64_t o = 0; o < Co; ++o)
                                    v += (double)dy.f32()[r * Co + o] * w.f32()[i * Co + o];
                                rdx[r * Ci + i] = v;
                            }
                        for (int64_t i = 0; i < Ci; ++i)
                            for (int64_t o = 0; o < Co; ++o) {
                                double v = dw0.f32()[i * Co + o];
                                for (int64_t r = 0; r < B * R; ++r)
                                    v += (double)x.f32()[r * Ci + i] * dy.f32()[r * Co + o];
                                rdw[i * Co + o] = v;
                            }
                        for (int64_t o = 0; o < Co; ++o) {
                            double v = db0.f32()[o];
                            for (int64_t r = 0; r < B * R; ++r) v += dy.f32()[r * Co + o];
                            rdb[o] = v;
                        }
                        e.push_back({"dx" + a, rdx, 1e-5, 1e-5, "linear backward dx"});
                        e.push_back({"dw" + a, rdw, 1e-5, 1e-5, "linear backward dw"});
                        e.push_back({"db" + a, rdb, 1e-5, 1e-5, "linear backward dbias"});
                    }
                    return e;
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    Workspace ws;
                    EXPECT_THROW(
                        linear_backward(in["x"], in["w"], in["bad_dy"], Tensor(), false, Tensor(), Tensor(), ws),
                        Error);
                },
            .gpu_rtol = 1e-4,
        });
    }
    // attention_backward: masked keys, a permuted bias, q/k/v read out of fused projections (strided rows), dbias
    // accumulated over batch elements. (A fully masked row has logits near -1e9, whose float32 rounding decides its
    // softmax: a float64 reference would not see the same row.)
    {
        const int64_t B = 3, Q = 5, K = 7, H = 2, C = 4;
        constexpr float scale = 0.5f, inf = 1e9f;
        static const View v_bias = [](const Tensor& x) { return x.permute({1, 0, 2}); };  // [Q, H, K] -> [H, Q, K]
        t.push_back({
            .name = "attention_backward_masked_strided",
            .seed = 36,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"qkv", randn({B, Q, 3, H, C}, rng)}, {"kv", randn({B, K, 2, H, C}, rng)}};
                    Tensor mask = random_mask({B, K}, rng, 0.3f);
                    mask.at({2, 0}) = 1.f;  // every batch element keeps a key
                    in.add("mask", mask).add("bias", randn({Q, H, K}, rng)).add("dout", randn({B, Q, H, C}, rng));
                    return in.add("dbias", randn({H, Q, K}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor dq = f32_on({B, Q, H, C}, d), dk = f32_on({B, K, H, C}, d),
                                 dv = f32_on({B, K, H, C}, d);
                    Context ctx(d);
                    attention_backward(in["qkv"].select(2, 0), in["kv"].select(2, 0), in["kv"].select(2, 1), in["mask"],
                                       v_bias(in["bias"]), scale, inf, in["dout"], dq, dk, dv, in["dbias"], ctx.ws);
                    return Tensors{{"dq", dq}, {"dk", dk}, {"dv", dv}, {"dbias", in["dbias"]}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor q = in["qkv"].select(2, 0), k = in["kv"].select(2, 0), v = in["kv"].select(2, 1);
                    const Tensor &mask = in["mask"], bias = v_bias(in["bias"]), &dout = in["dout"];
                    std::vector<double> rq(B * Q * H * C, 0), rk(B * K * H * C, 0), rv(B * K * H * C, 0);
                    std::vector<double> rb = to_f64(in["dbias"]);
                    auto at = [](const Tensor& x, std::initializer_list<int64_t> i) { return (double)x.at(i); };
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
                                    for (int64_t c = 0; c < C; ++c)
                                        dp[j] += at(dout, {b, i, h, c}) * at(v, {b, j, h, c});
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
                    return std::vector<Expected>{{"dq", rq, 1e-5, 1e-4, "attention backward dq"},
                                                 {"dk", rk, 1e-5, 1e-4, "attention backward dk"},
                                                 {"dv", rv, 1e-5, 1e-4, "attention backward dv"},
                                                 {"dbias", rb, 1e-5, 1e-4, "attention backward dbias"}};
                },
            .gpu_rtol = 1e-4,
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// fill, and bfloat16 storage: conversions, the residual add into a bfloat16 activation, layer norm reading one.

void add_fill_bf16_cases(std::vector<OpCase>& t) {
    // fill writes only the view: columns 1..3 of a [4, 6] buffer seen through a transposed slice.
    t.push_back({
        .name = "fill_writes_only_the_view",
        .seed = 0,  // nothing random: a zero buffer
        .draw =
            [](std::mt19937&) {
                return Tensors{{"t", Tensor::zeros({4, 6})}};
            },
        .run =
            [](const Tensors& in, Device) {
                fill(in["t"].slice(1, 1, 4).transpose(0, 1), 2.5f);
                return Tensors{{"t", in["t"]}};
            },
        .reference =
            [](const Tensors&, const Tensors&) {
                std::vector<double> want(24);
                for (int64_t i = 0; i < 4; ++i)
                    for (int64_t j = 0; j < 6; ++j) want[i * 6 + j] = (j >= 1 && j < 4) ? 2.5 : 0.0;
                return std::vector<Expected>{{"t", want, 0, 0, "fill strided view"}};
            },
        .gpu_rtol = 0,
    });
    // copy converts float32 <-> bfloat16 through any strides (rounding to nearest-even); widening back is exact;
    // to_dtype and host_cast agree, a same-dtype to_dtype is the tensor itself; strided same-dtype bfloat16 copies
    // move 2-byte elements; an integer destination is an error.
    {
        static const View v_h = [](const Tensor& x) { return x.permute({1, 2, 0}); };  // [6, 5, 7] -> [5, 7, 6]
        static const auto want_of = [](const Tensor& x) {
            std::vector<double> want(static_cast<size_t>(x.numel()));
            for (int64_t i = 0; i < x.numel(); ++i) want[i] = round_mantissa(x.f32()[i], 7);
            return want;
        };
        t.push_back({
            .name = "copy_float32_bf16_strided",
            .seed = 22,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{{"x", randn({5, 7, 6}, rng, 10.f)}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor& x = in["x"];
                    Tensor h = Tensor::empty({6, 5, 7}, DType::BF16, d);
                    copy(v_h(h), x);  // strided destination
                    Tensor back = f32_on({5, 7, 6}, d);
                    copy(back, v_h(h));  // strided source
                    Tensor h2 = Tensor::empty({5, 7, 6}, DType::BF16, d);
                    h2.copy_from(v_h(h));
                    return Tensors{{"back", back}, {"h", h}, {"to_dtype", to_dtype(x, DType::BF16)}, {"h2", h2}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const std::vector<double> want = want_of(in["x"]);
                    return std::vector<Expected>{{"back", want, 0, 0, "f32 -> bf16 -> f32"},
                                                 {"h", want, 0, 0, "bf16 view read as float64", v_h},
                                                 {"to_dtype", want, 0, 0, "to_dtype"},
                                                 {"h2", want, 0, 0, "bf16 strided copy"}};
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    const Tensor& x = in["x"];
                    expect_close(host_cast(x, DType::BF16), want_of(x), 0, 0, "host_cast");
                    EXPECT_EQ(to_dtype(x, DType::F32).raw(), x.raw());
                    EXPECT_THROW(copy(Tensor::empty({5, 7, 6}, DType::I64), x), Error);
                },
            .gpu_rtol = 0,
        });
    }
    // add into a bfloat16 activation: each element is widened, the float32 sum is formed, then rounded once; then
    // broadcast updates into a transposed view, as the trunk's modules make them, and an assignment. Only add takes
    // a bfloat16 destination, and only as the destination.
    {
        t.push_back({
            .name = "add_into_bf16_rounds_each_sum_once",
            .seed = 23,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{{"x32", randn({4, 9, 8}, rng, 2.f)},
                                   {"y", randn({4, 9, 8}, rng, 0.5f)},
                                   {"bias", randn({8}, rng)}};
                },
            .run =
                [](const Tensors& in, Device) {
                    const Tensor x = to_dtype(in["x32"], DType::BF16), &y = in["y"];
                    add(x, y, 0.75f);
                    const Tensor x_add = x.clone();
                    write_update(x.permute({1, 0, 2}), in["bias"].view({1, 1, 8}).expand({9, 4, 8}), true);
                    const Tensor x_bias = x.clone();
                    write_update(x, y, false);
                    return Tensors{{"x_add", x_add}, {"x_bias", x_bias}, {"x_assign", x}};
                },
            .reference =
                [](const Tensors& in, const Tensors& out) {
                    const Tensor &y = in["y"], &bias = in["bias"];
                    std::vector<double> base = to_f64(to_dtype(in["x32"], DType::BF16)), want(base.size());
                    std::vector<Expected> e;
                    for (size_t i = 0; i < want.size(); ++i)
                        want[i] = round_mantissa(static_cast<float>(base[i]) + 0.75f * y.f32()[i], 7);
                    e.push_back({"x_add", want, 0, 0, "bf16 += f32"});
                    base = to_f64(out["x_add"]);  // the next step starts from what this one left
                    for (size_t i = 0; i < want.size(); ++i)
                        want[i] = round_mantissa(static_cast<float>(base[i]) + bias.f32()[i % 8], 7);
                    e.push_back({"x_bias", want, 0, 0, "bf16 += broadcast bias"});
                    for (size_t i = 0; i < want.size(); ++i) want[i] = round_mantissa(y.f32()[i], 7);
                    e.push_back({"x_assign", want, 0, 0, "bf16 = f32"});
                    return e;
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    const Tensor x = to_dtype(in["x32"], DType::BF16), &y = in["y"];
                    EXPECT_THROW(mul(x, y), Error);  // only add takes a bfloat16 destination
                    EXPECT_THROW(add(y, x), Error);  // and only as the destination
                },
            .gpu_rtol = 0,
        });
    }
    // Layer norm reads bfloat16 activations (rows, rows of stride 2C as DAP's padded shards are, and a
    // channel-major [M, C] view of [C, M] memory as triangle multiplication's) and matches float64 on the widened
    // values; y must be float32.
    {
        const int64_t R = 37, C = 24;
        static const View v_xs = [](const Tensor& x) { return x.slice(1, 0, C); };
        static const View v_cm = [](const Tensor& x) { return x.transpose(0, 1); };
        t.push_back({
            .name = "layer_norm_reads_bf16",
            .seed = 24,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"x", to_dtype(randn({R, C}, rng, 3.f), DType::BF16)}, {"g", randn({C}, rng)}};
                    in.add("b", randn({C}, rng)).add("wide", to_dtype(randn({R, 2 * C}, rng, 3.f), DType::BF16));
                    return in.add("cm", to_dtype(randn({C, R}, rng, 2.f), DType::BF16));
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor &g = in["g"], &b = in["b"];
                    const Tensor y = f32_on({R, C}, d), ys = f32_on({R, C}, d), ycm = f32_on({C, R}, d);
                    layer_norm(in["x"], g, b, 1e-5f, y);
                    layer_norm(v_xs(in["wide"]), g, b, 1e-5f, ys);
                    layer_norm(v_cm(in["cm"]), g, b, 1e-5f, v_cm(ycm));
                    return Tensors{{"y", y}, {"ys", ys}, {"ycm", ycm}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &g = in["g"], &b = in["b"];
                    return std::vector<Expected>{
                        {"y", ref_layer_norm(in["x"], g, b, 1e-5), 1e-5, 1e-5, "bf16 rows"},
                        {"ys", ref_layer_norm(v_xs(in["wide"]), g, b, 1e-5), 1e-5, 1e-5, "bf16 strided rows"},
                        {"ycm", ref_layer_norm(v_cm(in["cm"]), g, b, 1e-5), 1e-5, 1e-5, "bf16 channel-major", v_cm}};
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    EXPECT_THROW(layer_norm(in["x"], in["g"], in["b"], 1e-5f, Tensor::empty({R, C}, DType::BF16)),
                                 Error);  // y is float32
                },
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Structure-module, embedding and head ops.

void add_structure_cases(std::vector<OpCase>& t) {
    // Embedding lookup as a one-hot product: negative indices add nothing (zero rows when not accumulating), one
    // rounding per element, the columns outside a strided out untouched; an index past the table is an error.
    {
        static const int64_t idx[6] = {3, -1, 0, 6, 3, -2};
        static const View v_out = [](const Tensor& x) { return x.slice(1, 2, 7); };  // row stride 9
        t.push_back({
            .name = "gather_rows_one_hot_product",
            .seed = 31,
            .draw =
                [](std::mt19937& rng) {
                    const Tensor table = randn({7, 5}, rng);
                    Tensor index = Tensor::empty({6}, DType::I64);
                    for (int m = 0; m < 6; ++m) index.data<int64_t>()[m] = idx[m];
                    return Tensors{{"table", table}, {"index", index}, {"wide", randn({6, 9}, rng)}};
                },
            .run =
                [](const Tensors& in, Device) {
                    gather_rows(in["table"], in["index"], v_out(in["wide"]), true);
                    const Tensor accumulated = in["wide"].clone();
                    gather_rows(in["table"], in["index"], v_out(in["wide"]), false);
                    return Tensors{{"wide_accumulate", accumulated}, {"wide", in["wide"]}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor &table = in["table"], &before = in["wide"];
                    std::vector<double> acc(6 * 9), set(6 * 5);
                    for (int m = 0; m < 6; ++m)
                        for (int c = 0; c < 9; ++c) {
                            float want = before.at({m, c});
                            if (c >= 2 && c < 7 && idx[m] >= 0) want += table.at({idx[m], c - 2});
                            acc[m * 9 + c] = want;
                        }
                    for (int m = 0; m < 6; ++m)
                        for (int c = 0; c < 5; ++c) set[m * 5 + c] = idx[m] >= 0 ? table.at({idx[m], c}) : 0.f;
                    return std::vector<Expected>{{"wide_accumulate", acc, 0, 0, "gather_rows accumulate"},
                                                 {"wide", set, 0, 0, "gather_rows", v_out}};
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    Tensor index = in["index"].clone();
                    index.data<int64_t>()[2] = 7;
                    EXPECT_THROW(gather_rows(in["table"], index, v_out(Tensor::empty({6, 9})), false), Error);
                },
            .gpu_rtol = 0,
        });
    }
    // Rotations from random quaternions applied to points in IPA's x | y | z layout (coordinate stride K), then
    // back to the local frame into a strided block with the norms beside it (IPA's output features); a wrong
    // output shape is an error.
    {
        const int64_t N = 5, K = 4;
        static const View v_x = [](const Tensor& local) { return local.permute({0, 2, 1}); };  // [N, K, 3]
        static const View v_y = [](const Tensor& feat) {
            return feat.slice(1, 1, 1 + 3 * K).unflatten(1, {3, K}).permute({0, 2, 1});
        };
        static const View v_norms = [](const Tensor& feat) { return feat.slice(1, 1 + 3 * K, 1 + 4 * K); };
        t.push_back({
            .name = "apply_frames_and_inverse",
            .seed = 32,
            .draw =
                [](std::mt19937& rng) {
                    Tensor rot = Tensor::empty({N, 3, 3}), trans = randn({N, 3}, rng, 3.f);
                    for (int64_t n = 0; n < N; ++n) {
                        Tensor q = randn({4}, rng);
                        double w = q.at({0}), x = q.at({1}), y = q.at({2}), z = q.at({3});
                        const double s = std::sqrt(w * w + x * x + y * y + z * z);
                        w /= s, x /= s, y /= s, z /= s;
                        const double r[9] = {1 - 2 * (y * y + z * z), 2 * (x * y - w * z),     2 * (x * z + w * y),
                                             2 * (x * y + w * z),     1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                                             2 * (x * z - w * y),     2 * (y * z + w * x),     1 - 2 * (x * x + y * y)};
                        for (int i = 0; i < 9; ++i) rot.f32()[n * 9 + i] = static_cast<float>(r[i]);
                    }
                    return Tensors{{"rot", rot},
                                   {"trans", trans},
                                   {"local", randn({N, 3, K}, rng)},
                                   {"feat", Tensor::zeros({N, 4 * K + 2})}};
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor &rot = in["rot"], &trans = in["trans"], &feat = in["feat"];
                    Tensor g = f32_on({N, K, 3}, d);
                    apply_frames(rot, trans, v_x(in["local"]), g, false);
                    apply_frames(rot, trans, g, v_y(feat), true, v_norms(feat), 1e-8f);
                    return Tensors{{"g", g}, {"feat", feat}};
                },
            .reference =
                [](const Tensors& in, const Tensors& out) {
                    const Tensor &rot = in["rot"], &trans = in["trans"], x = v_x(in["local"]);
                    std::vector<double> g(N * K * 3), norms(N * K);
                    for (int64_t n = 0; n < N; ++n)
                        for (int64_t k = 0; k < K; ++k)
                            for (int d = 0; d < 3; ++d) {
                                double want = trans.at({n, d});
                                for (int e = 0; e < 3; ++e) want += (double)rot.at({n, d, e}) * x.at({n, k, e});
                                g[(n * K + k) * 3 + d] = want;
                            }
                    const Tensor y = v_y(out["feat"]);  // the norms are those of the points written
                    for (int64_t n = 0; n < N; ++n)
                        for (int64_t k = 0; k < K; ++k) {
                            double n2 = 0;
                            for (int d = 0; d < 3; ++d) n2 += (double)y.at({n, k, d}) * y.at({n, k, d});
                            norms[n * K + k] = std::sqrt(1e-8 + n2);
                        }
                    const std::vector<double> zeros(N, 0.0);
                    return std::vector<Expected>{
                        {"g", g, 1e-5, 1e-5, "apply_frames"},
                        {"feat", to_f64(x), 1e-5, 1e-5, "apply_frames inverse", v_y},
                        {"feat", norms, 1e-6, 0, "apply_frames norms", v_norms},
                        // the columns outside the views untouched
                        {"feat", zeros, 0, 0, "column 0", [](const Tensor& f) { return f.slice(1, 0, 1); }},
                        {"feat", zeros, 0, 0, "last column",
                         [](const Tensor& f) { return f.slice(1, 4 * K + 1, 4 * K + 2); }},
                    };
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    EXPECT_THROW(
                        apply_frames(in["rot"], in["trans"], v_x(in["local"]), Tensor::empty({N, K + 1, 3}), false),
                        Error);
                },
        });
    }
    // IPA's point logits: a and c per head out of [I, B, D] memory (batch stride D); a wrong weight is an error.
    {
        const int64_t B = 3, I = 6, J = 9, D = 12;
        static const View v_p = [](const Tensor& x) { return x.permute({1, 0, 2}); };
        t.push_back({
            .name = "weighted_sq_distances_float64",
            .seed = 33,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"a", randn({I, B, D}, rng, 4.f)}, {"c", randn({J, B, D}, rng, 4.f)}};
                    return in.add("w", randn({B}, rng)).add("bad_w", randn({B + 1}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    Tensor out = f32_on({B, I, J}, d);
                    weighted_sq_distances(v_p(in["a"]), v_p(in["c"]), in["w"], out);
                    return Tensors{{"out", out}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor a = v_p(in["a"]), c = v_p(in["c"]), &w = in["w"];
                    std::vector<double> r(B * I * J);
                    for (int64_t b = 0; b < B; ++b)
                        for (int64_t i = 0; i < I; ++i)
                            for (int64_t j = 0; j < J; ++j) {
                                double d2 = 0;
                                for (int64_t d = 0; d < D; ++d) {
                                    const double e = (double)a.at({b, i, d}) - c.at({b, j, d});
                                    d2 += e * e;
                                }
                                r[(b * I + i) * J + j] = w.at({b}) * d2;
                            }
                    return std::vector<Expected>{{"out", r, 1e-6, 1e-5, "weighted_sq_distances"}};
                },
            .check =
                [](const Tensors& in, const Tensors&) {
                    EXPECT_THROW(
                        weighted_sq_distances(v_p(in["a"]), v_p(in["c"]), in["bad_w"], Tensor::empty({B, I, J})),
                        Error);
                },
        });
    }
    // Symmetrisation in place: x[i, j] = x[j, i] = x[i, j] + x[j, i], one float sum each; x must be square.
    {
        const int64_t N = 7, C = 3;
        t.push_back({
            .name = "add_transpose_symmetrises",
            .seed = 34,
            .draw =
                [](std::mt19937& rng) {
                    return Tensors{{"x", randn({N, N, C}, rng)}};
                },
            .run =
                [](const Tensors& in, Device) {
                    add_transpose(in["x"]);
                    return Tensors{{"x", in["x"]}};
                },
            .reference =
                [](const Tensors& in, const Tensors&) {
                    const Tensor& x0 = in["x"];
                    std::vector<double> r(N * N * C);
                    for (int64_t i = 0; i < N; ++i)
                        for (int64_t j = 0; j < N; ++j)
                            for (int64_t c = 0; c < C; ++c)
                                r[(i * N + j) * C + c] = x0.at({i, j, c}) + x0.at({j, i, c});
                    return std::vector<Expected>{{"x", r, 0, 0, "add_transpose"}};
                },
            .check =
                [](const Tensors&, const Tensors&) {
                    EXPECT_THROW(add_transpose(Tensor::zeros({3, 4, 2})), Error);
                },
            .gpu_rtol = 0,
        });
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Cases aimed at the CUDA kernels' paths (warp or block per row, 16-byte chunks, tiles, row blocks, batch
// chunking): sizes and layouts at and around each path's bounds. Compared on the CUDA runner with the CPU op.

void add_gemm_path_cases(std::vector<OpCase>& t) {
    // 2-D matmul for every (a, b) transposition, alpha and beta.
    {
        const int64_t M = 37, K = 29, N = 53;
        static const auto key = [](const char* prefix, int ta, int tb) {
            return std::string(prefix).append("_ta").append(str(ta)).append("_tb").append(str(tb));
        };
        t.push_back({
            .name = "matmul_2d_layouts_alpha_beta",
            .seed = 1,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in;
                    for (int ta = 0; ta < 2; ++ta)
                        for (int tb = 0; tb < 2; ++tb) {
                            in.add(key("a", ta, tb), ta ? randn({K, M}, rng) : randn({M, K}, rng));
                            in.add(key("b", ta, tb), tb ? randn({N, K}, rng) : randn({K, N}, rng));
                            in.add(key("c", ta, tb), randn({M, N}, rng));
                        }
                    return in;
                },
            .run =
                [](const Tensors& in, Device) {
                    Tensors out;
                    for (int ta = 0; ta < 2; ++ta)
                        for (int tb = 0; tb < 2; ++tb) {
                            const Tensor &a = in[key("a", ta, tb)], &b = in[key("b", ta, tb)],
                                         &c = in[key("c", ta, tb)];
                            matmul(ta ? a.transpose(0, 1) : a, tb ? b.transpose(0, 1) : b, c, 0.7f, 0.3f);
                            out.add(key("matmul", ta, tb), c);
                        }
                    return out;
                },
        });
    }
    // Batched: a [2, 3, M, K] with non-uniform batch strides, b [3, K, N] transposed and broadcast over dim 0, c
    // rows padded to N + 3; a broadcast with expand (batch stride 0) and b with a size-1 batch dim; a rank-2 b
    // against a rank-3 a (the linear layout); a single row times a single column. In fp32, and in bf16, where the
    // operands are converted over their memory spans (stride-0 batch dims included) and read with their own
    // strides, against the CPU's emulation.
    for (MatmulPrecision p : {MatmulPrecision::Fp32, MatmulPrecision::Bf16}) {
        const int64_t M = 9, K = 13, N = 11;
        t.push_back({
            .name = std::string("matmul_batched_strided_broadcast_") + precision_name(p),
            .seed = p == MatmulPrecision::Fp32 ? 2u : 202u,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"a", randn({2, M, 3, K}, rng)}, {"b", randn({3, N, K}, rng)}};
                    in.add("c", randn({2, 3, M, N + 3}, rng)).add("a1", randn({1, 3, M, K}, rng));
                    in.add("b1", randn({1, 3, K, N}, rng)).add("c1", randn({4, 3, M, N}, rng));
                    in.add("a2", randn({5, M, K}, rng)).add("b2", randn({K, N}, rng));
                    return in.add("row", randn({1, K}, rng)).add("col", randn({K, 1}, rng));
                },
            .run =
                [p](const Tensors& in, Device d) {
                    PrecisionScope scope(p);
                    matmul(in["a"].permute({0, 2, 1, 3}), in["b"].transpose(1, 2), in["c"].slice(3, 0, N), 1.f, 0.5f);
                    matmul(in["a1"].expand({4, 3, M, K}), in["b1"], in["c1"]);
                    Tensor c2 = f32_on({5, M, N}, d), o = f32_on({1, 1}, d);
                    matmul(in["a2"], in["b2"], c2);
                    matmul(in["row"], in["col"], o);
                    return Tensors{
                        {"batched_strided", in["c"]}, {"broadcast_batch", in["c1"]}, {"rank2_b", c2}, {"1x1", o}};
                },
            .gpu_rtol = p == MatmulPrecision::Fp32 ? 1e-5 : 1e-4,
        });
    }
    // bfloat16 operands of other layouts: a permuted a with b column-major (each converted over its span), with beta
    // accumulating into a strided c; then a sparse column slice of a (converted compactly).
    {
        static const View v_a = [](const Tensor& x) { return x.permute({1, 2, 0}); };  // [3, 200, 256], column-major
        static const View v_b = [](const Tensor& x) { return x.transpose(0, 1); };     // [256, 96], column-major
        static const View v_s = [](const Tensor& x) { return x.slice(2, 10, 266); };   // [3, 200, 256] of 700 columns
        static const View v_c = [](const Tensor& x) { return x.slice(2, 2, 98); };
        t.push_back({
            .name = "matmul_bf16_permuted_column_major_sliced",
            .seed = 4201,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"ap", randn({256, 3, 200}, rng)}, {"bt", randn({96, 256}, rng)}};
                    return in.add("wide", randn({3, 200, 700}, rng)).add("c", randn({3, 200, 100}, rng));
                },
            .run =
                [](const Tensors& in, Device) {
                    PrecisionScope bf16(MatmulPrecision::Bf16);
                    matmul(v_a(in["ap"]), v_b(in["bt"]), v_c(in["c"]), 0.5f, 1.f);
                    const Tensor accumulated = in["c"].clone();
                    matmul(v_s(in["wide"]), v_b(in["bt"]), v_c(in["c"]), 1.f, 0.f);
                    return Tensors{{"permuted_a_column_major_b_accumulate", accumulated},
                                   {"sparse_slice_of_a", in["c"]}};
                },
            .gpu_rtol = 1e-4,
        });
    }
    // linear: strided, permuted and contiguous rows, with and without bias, assigning and accumulating; a
    // column-major x (a transposed view) with an output-projection weight [H, c, c_out]; the workspace overload.
    {
        const int64_t c_in = 24;
        struct Layout {
            const char* name;
            Shape base;
            View view;  // -> [5, 7, c_in]
        };
        static const Layout layouts[] = {
            {"strided_rows", {5, 7, 30}, [](const Tensor& x) { return x.slice(2, 3, 3 + 24); }},
            {"permuted",
             {7, 5, 24},
             [](const Tensor& x) {
                 return x.permute({1, 0, 2});
             }},
            {"contiguous", {5, 7, 24}, [](const Tensor& x) { return x; }},
        };
        static const auto key = [](const Layout& l, float beta, bool with_bias) {
            return std::string(l.name) + (with_bias ? "_bias" : "") + (beta != 0.f ? "_accumulate" : "");
        };
        t.push_back({
            .name = "linear_layouts_bias_accumulate",
            .seed = 3,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"w", randn({c_in, 4, 8}, rng, 0.3f)}, {"bias", randn({4, 8}, rng)}};
                    for (const Layout& l : layouts) {
                        in.add(std::string("x_") + l.name, randn(l.base, rng));
                        for (float beta : {0.f, 1.f})
                            for (bool with_bias : {true, false})
                                in.add("y_" + key(l, beta, with_bias), randn({5, 7, 4, 8}, rng));
                    }
                    in.add("xt", randn({c_in, 35}, rng)).add("wo", randn({4, 6, 10}, rng)).add("bo", randn({10}, rng));
                    return in.add("x", randn({3, 11, c_in}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    Tensors out;
                    for (const Layout& l : layouts)
                        for (float beta : {0.f, 1.f})
                            for (bool with_bias : {true, false}) {
                                const Tensor& y = in["y_" + key(l, beta, with_bias)];
                                linear(l.view(in[std::string("x_") + l.name]), in["w"],
                                       with_bias ? in["bias"] : Tensor(), y, beta);
                                out.add(key(l, beta, with_bias), y);
                            }
                    Tensor y = f32_on({35, 10}, d);
                    linear(in["xt"].transpose(0, 1), in["wo"], in["bo"], y);
                    Context ctx(d);
                    return out.add("column_major_x", y)
                        .add("workspace_overload", linear(in["x"], in["w"], in["bias"], ctx.ws).clone());
                },
        });
    }
}

void add_norm_softmax_path_cases(std::vector<OpCase>& t) {
    // Layer norm rows in registers (a warp up to 1024, a block of 256 up to 8192), the block loop beyond: contiguous
    // rows (16-byte chunks when C % 4 == 0), strided rows [6, 10, C] inside [6, 10, C + 4], in place over the
    // strided view (the padding columns must stay untouched), broadcast input rows (stride 0).
    static const int64_t Cs[] = {1, 3, 96, 128, 1000, 1024, 1025, 1500, 5000, 8192, 8196};
    for (size_t i = 0; i < std::size(Cs); ++i) {
        const int64_t C = Cs[i];
        t.push_back({
            .name = "layer_norm_rows_C" + str(C),
            .seed = static_cast<uint32_t>(400 + i),
            .draw =
                [C](std::mt19937& rng) {
                    Tensors in{{"g", randn({C}, rng)}, {"b", randn({C}, rng)}, {"xc", randn({6, 10, C}, rng, 2.f)}};
                    in.add("x", randn({6, 10, C + 4}, rng, 2.f)).add("y", randn({6, 10, C}, rng));
                    return in.add("x1", randn({1, 4, C}, rng));
                },
            .run =
                [C](const Tensors& in, Device d) {
                    const Tensor &g = in["g"], &b = in["b"], v = in["x"].slice(2, 1, 1 + C);
                    Tensor yc = f32_on({6, 10, C}, d), y1 = f32_on({3, 4, C}, d);
                    layer_norm(in["xc"], g, b, 1e-5f, yc);
                    layer_norm(v, g, b, 1e-5f, in["y"]);
                    layer_norm(v, g, b, 1e-5f, v);
                    layer_norm(in["x1"].expand({3, 4, C}), g, b, 1e-5f, y1);
                    return Tensors{
                        {"contiguous", yc}, {"strided", in["y"]}, {"in_place", in["x"]}, {"broadcast_rows", y1}};
                },
        });
    }
    // Channel-major [M, C] views (stride(0) == 1) of [C, M] memory, into a transposed view of padded rows.
    {
        const int64_t M = 300, C = 64;
        t.push_back({
            .name = "layer_norm_channels_major",
            .seed = 4,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"g", randn({C}, rng)}, {"b", randn({C}, rng)}, {"x", randn({C, M}, rng, 3.f)}};
                    return in.add("y", randn({C, M + 5}, rng));
                },
            .run =
                [](const Tensors& in, Device) {
                    layer_norm(in["x"].transpose(0, 1), in["g"], in["b"], 1e-5f,
                               in["y"].slice(1, 0, M).transpose(0, 1));
                    return Tensors{{"y", in["y"]}};
                },
        });
    }
    // Softmax rows in registers (a warp up to 1024, a block up to 8192; 16-byte chunks where aligned), the loop
    // beyond: contiguous x with a broadcast mask (one row fully masked) and bias; misaligned strided rows with the
    // mask broadcast along the last dim (stride 0) and no bias; plain, no mask or bias.
    static const int64_t ns[] = {1, 17, 32, 33, 300, 1024, 1025, 1100, 2000, 4104, 5000, 8192, 8193, 8200};
    for (size_t i = 0; i < std::size(ns); ++i) {
        const int64_t n = ns[i];
        t.push_back({
            .name = "softmax_rows_n" + str(n),
            .seed = static_cast<uint32_t>(500 + i),
            .draw =
                [n](std::mt19937& rng) {
                    Tensor mask = random_mask({3, 1, n}, rng), bias = randn({1, 5, n}, rng);
                    for (int j = 0; j < n; ++j) mask.f32()[j] = 0.f;  // a fully masked row
                    Tensors in{{"mask", mask}, {"bias", bias}, {"x", randn({3, 5, n}, rng, 3.f)}};
                    in.add("x2", randn({3, 5, n + 4}, rng, 3.f)).add("m2", random_mask({3, 5, 1}, rng, 0.3f));
                    return in.add("x3", randn({7, n}, rng));
                },
            .run =
                [n](const Tensors& in, Device) {
                    softmax(in["x"], 0.5f, in["mask"].expand({3, 5, n}), in["bias"].expand({3, 5, n}), 1e9f);
                    softmax(in["x2"].slice(2, 1, 1 + n), 1.f, in["m2"].expand({3, 5, n}), Tensor(), 1e9f);
                    softmax(in["x3"], 1.f, Tensor(), Tensor(), 1e9f);
                    return Tensors{{"contiguous", in["x"]}, {"strided", in["x2"]}, {"plain", in["x3"]}};
                },
        });
    }
}

// The attention op (not the fused kernels, test_ops_gpu.cpp's own tests): q out of a fused [B, Q, 3, H, C]
// projection, k and v out of [B, K, 2, H, C] (strided rows and batches), a permuted bias [H, Q, K], out a slice of
// rows padded to C + 3. Options: a transposed mask (as the attentions along the other axis pass it), and a -inf
// bias on the first 32 keys of one query row (each lane's first logit there is -inf).
OpCase attention_path_case(const std::string& name, int64_t B, int64_t Q, int64_t K, int64_t H, int64_t C, bool masked,
                           uint32_t seed, bool transposed_mask = false, bool neg_inf_bias = false) {
    return {
        .name = name,
        .seed = seed,
        .draw =
            [=](std::mt19937& rng) {
                Tensors in{{"qkv", randn({B, Q, 3, H, C}, rng)}, {"kv", randn({B, K, 2, H, C}, rng)}};
                in.add("mask", transposed_mask ? random_mask({K, B}, rng) : random_mask({B, K}, rng));
                Tensor bias = randn({Q, H, K}, rng);
                if (neg_inf_bias)
                    for (int64_t j = 0; j < std::min<int64_t>(K - 1, 32); ++j) bias.at({0, 0, j}) = -INFINITY;
                return in.add("bias", bias).add("out", randn({B, Q, H, C + 3}, rng));
            },
        .run =
            [=](const Tensors& in, Device d) {
                const Tensor mask = transposed_mask ? in["mask"].transpose(0, 1) : in["mask"];
                Context ctx(d);
                attention(in["qkv"].select(2, 0), in["kv"].select(2, 0), in["kv"].select(2, 1),
                          masked ? mask : Tensor(), masked ? in["bias"].permute({1, 0, 2}) : Tensor(),
                          1.f / std::sqrt(static_cast<float>(C)), 1e9f, in["out"].slice(3, 0, C), ctx.ws);
                return Tensors{{"out", in["out"]}};
            },
    };
}

void add_attention_path_cases(std::vector<OpCase>& t) {
    t.push_back(attention_path_case("attention_B3_Q17_K23_H4_C16_masked", 3, 17, 23, 4, 16, true, 6));
    t.push_back(attention_path_case("attention_B3_Q17_K23_H4_C16", 3, 17, 23, 4, 16, false, 7));
    t.push_back(attention_path_case("attention_B2_Q1_K40_H8_C8_masked", 2, 1, 40, 8, 8, true, 8));
    // Rows of 24 (16-byte softmax chunks).
    t.push_back(
        attention_path_case("attention_B3_Q17_K24_H4_C16_transposed_mask", 3, 17, 24, 4, 16, true, 9, true, false));
    t.push_back(attention_path_case("attention_B2_Q9_K70_H4_C16_neg_inf_bias", 2, 9, 70, 4, 16, true, 10, false, true));
    // 8 * 1000 * 1100 logits per batch element: the 64 Mi-float budget holds 7, so 10 runs as 7 + 3, and rows of
    // 1100 take the block-per-row softmax.
    t.push_back(
        attention_path_case("attention_chunked_long_rows_B10_Q1000_K1100_H8_C8", 10, 1000, 1100, 8, 8, true, 9));
}

void add_elementwise_path_cases(std::vector<OpCase>& t) {
    // Each elementwise op on [4, 33, 65]: contiguous (aligned and misaligned by one element), x permuted with y
    // broadcast (stride 0), and seven dims that collapse to three with x aliasing y (on the CPU, where the original
    // comparison ran, y is a copy of x's values).
    using Op = void (*)(const Tensor& x, const Tensor& y);
    static const std::pair<const char*, Op> ops[] = {
        {"add", [](const Tensor& x, const Tensor& y) { add(x, y, 0.3f); }},
        {"mul", [](const Tensor& x, const Tensor& y) { mul(x, y); }},
        {"sigmoid_mul", [](const Tensor& x, const Tensor& y) { sigmoid_mul(x, y); }},
        {"div_eps", [](const Tensor& x, const Tensor& y) { div_eps(x, y, 1e-3f); }},
        {"scale", [](const Tensor& x, const Tensor&) { scale(x, 1.7f); }},
        {"sigmoid", [](const Tensor& x, const Tensor&) { sigmoid(x); }},
        {"relu", [](const Tensor& x, const Tensor&) { relu(x); }},
    };
    static const Shape s = {4, 33, 65};
    static const View v_perm = [](const Tensor& x) { return x.permute({1, 2, 0}); };
    static const View v_7d = [](const Tensor& x) { return x.permute({0, 1, 2, 3, 4, 6, 5}); };
    for (size_t i = 0; i < std::size(ops); ++i) {
        const Op op = ops[i].second;
        t.push_back({
            .name = std::string("elementwise_") + ops[i].first,
            .seed = static_cast<uint32_t>(1000 + i),
            .draw =
                [](std::mt19937& rng) {
                    const int64_t n = shape_numel(s);
                    Tensors in;
                    for (int64_t shift : {0, 1})
                        in.add("xb" + str(shift), randn({n + 1}, rng)).add("yb" + str(shift), positive({n + 1}, rng));
                    in.add("xp", randn({65, 4, 33}, rng)).add("yp", positive({1, 33, 1}, rng));
                    return in.add("x7", randn({2, 3, 2, 3, 2, 3, 4}, rng));
                },
            .run =
                [op](const Tensors& in, Device d) {
                    const int64_t n = shape_numel(s);
                    Tensors out;
                    for (int64_t shift : {0, 1}) {
                        const View v = [&](const Tensor& x) { return x.slice(0, shift, shift + n).view(s); };
                        op(v(in["xb" + str(shift)]), v(in["yb" + str(shift)]));
                        out.add("contiguous_shift" + str(shift), in["xb" + str(shift)]);
                    }
                    op(v_perm(in["xp"]), in["yp"].expand(s));
                    const Tensor& x7 = in["x7"];
                    op(v_7d(x7), d == Device::CPU ? v_7d(x7.clone()) : v_7d(x7));
                    return out.add("permuted_broadcast", in["xp"]).add("7d_aliased", x7);
                },
        });
    }
}

void add_copy_path_cases(std::vector<OpCase>& t) {
    // Strided copies on one device: a permuted view materialised; a permuted source into a strided destination
    // (the rest untouched); a broadcast source; permutes large enough for the tiled transpose (both sides
    // coalesced), with edge tiles, with and without a batch dim, and two the gather takes ({3, 1, 2, 0}: only 4
    // rows of the source's contiguous dim; {0, 2, 1, 3}: the last dim contiguous on both sides); a transpose into
    // a strided destination.
    {
        static const View v_d = [](const Tensor& x) { return x.slice(2, 1, 8); };
        static const std::vector<int> perms[] = {{0, 3, 1, 2}, {3, 0, 1, 2}, {3, 1, 2, 0}, {0, 2, 1, 3}};
        t.push_back({
            .name = "copy_strided_broadcast_permutes",
            .seed = 12,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"base", randn({5, 7, 12}, rng)},
                               {"dst", randn({12, 5, 9}, rng)},
                               {"row", randn({1, 12}, rng)}};
                    return in.add("big", randn({4, 37, 45, 70}, rng)).add("wide", randn({70, 4, 37, 50}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor& base = in["base"];
                    Tensors out{{"permuted_to_contiguous", base.permute({2, 0, 1}).contiguous()}};
                    copy(v_d(in["dst"]), base.permute({2, 0, 1}).slice(2, 0, 7));
                    Tensor e = f32_on({6, 12}, d);
                    copy(e, in["row"].expand({6, 12}));
                    out.add("strided_to_strided", in["dst"]).add("broadcast", e);
                    for (size_t i = 0; i < std::size(perms); ++i)
                        out.add("permute" + str(static_cast<int64_t>(i)), in["big"].permute(perms[i]).contiguous());
                    copy(in["wide"].slice(3, 2, 47), in["big"].permute({3, 0, 1, 2}));
                    return out.add("transpose_into_strided", in["wide"]);
                },
        });
    }
    // bfloat16 (2-byte elements) through the tiled transpose.
    t.push_back({
        .name = "copy_bf16_transpose_tiled",
        .seed = 1201,
        .draw =
            [](std::mt19937& rng) {
                return Tensors{{"half", to_dtype(randn({33, 40, 19}, rng), DType::BF16)}};
            },
        .run =
            [](const Tensors& in, Device) {
                return Tensors{{"transposed", in["half"].permute({2, 0, 1}).contiguous()}};
            },
        .gpu_rtol = 0,
    });
    // Integer dtypes of 8 and 1 bytes transposed.
    t.push_back({
        .name = "copy_integer_transpose",
        .seed = 0,  // nothing random: values that use all 8 and all 1 bytes
        .draw =
            [](std::mt19937&) {
                Tensor i64 = Tensor::empty({4, 6}, DType::I64), u8 = Tensor::empty({4, 6}, DType::U8);
                for (int64_t i = 0; i < 24; ++i) {
                    i64.data<int64_t>()[i] = (int64_t(1) << 40) + i * 7919;
                    u8.data<uint8_t>()[i] = static_cast<uint8_t>(i * 37);
                }
                return Tensors{{"i64", i64}, {"u8", u8}};
            },
        .run =
            [](const Tensors& in, Device) {
                return Tensors{{"i64", in["i64"].transpose(0, 1).contiguous()},
                               {"u8", in["u8"].transpose(0, 1).contiguous()}};
            },
        .check =
            [](const Tensors& in, const Tensors& out) {
                for (int64_t r = 0; r < 6; ++r)
                    for (int64_t c = 0; c < 4; ++c) {
                        EXPECT_EQ(out["i64"].at<int64_t>({r, c}), in["i64"].at<int64_t>({c, r}));
                        EXPECT_EQ(out["u8"].at<uint8_t>({r, c}), in["u8"].at<uint8_t>({c, r}));
                    }
            },
        .gpu_rtol = 0,
    });
}

void add_backward_path_cases(std::vector<OpCase>& t) {
    // softmax backward: rows in registers (warp, block; 16-byte chunks when n % 4 == 0), the loop beyond 8192;
    // layer norm backward: one fused pass up to 1024 channels (single elements, 16-byte chunks), three kernels
    // beyond, over 700 rows (several row slices), the parameter gradients summed into zeros; and dx aliasing dy
    // (allowed by ops.h): same dx, and the parameter sums still see the original dy. The in-place outputs are
    // compared with the CPU's out-of-place ones, as the original check did.
    static const int64_t ns[] = {5, 128, 1001, 1024, 3000, 3001, 9000};
    for (size_t i = 0; i < std::size(ns); ++i) {
        const int64_t n = ns[i];
        t.push_back({
            .name = "softmax_backward_n" + str(n),
            .seed = static_cast<uint32_t>(4100 + i),
            .draw =
                [n](std::mt19937& rng) {
                    return Tensors{{"x", randn({33, n}, rng)}, {"dy", randn({33, n}, rng)}};
                },
            .run =
                [n](const Tensors& in, Device d) {
                    const Tensor y = in["x"].clone(), dx = f32_on({33, n}, d);
                    softmax(y, 0.5f, Tensor(), Tensor(), 1e9f);
                    softmax_backward(y, in["dy"], 0.5f, dx);
                    return Tensors{{"dx", dx}};
                },
        });
        t.push_back({
            .name = "layer_norm_backward_C" + str(n),
            .seed = static_cast<uint32_t>(4150 + i),
            .draw =
                [n](std::mt19937& rng) {
                    Tensors in{{"g", randn({n}, rng)}, {"x", randn({700, n}, rng)}, {"dy", randn({700, n}, rng)}};
                    return in.add("zeros", Tensor::zeros({n}));
                },
            .run =
                [n](const Tensors& in, Device d) {
                    const Tensor &x = in["x"], &g = in["g"], &dy = in["dy"];
                    const Tensor dx = f32_on({700, n}, d), dg = in["zeros"].clone(), db = in["zeros"].clone();
                    layer_norm_backward(x, g, 1e-5f, dy, dx, dg, db);
                    Tensors out{{"dx", dx}, {"dscale", dg}, {"doffset", db}};
                    if (d == Device::CPU) return out.add("in_place_dx", dx).add("in_place_dscale", dg);
                    const Tensor dy2 = dy.clone(), dg2 = in["zeros"].clone(), db2 = in["zeros"].clone();
                    layer_norm_backward(x, g, 1e-5f, dy2, dy2, dg2, db2);
                    return out.add("in_place_dx", dy2).add("in_place_dscale", dg2);
                },
            .gpu_rtol = 1e-4,
        });
    }
    // Enough rows that every warp of the fused layer-norm backward walks several (its grid is capped).
    {
        const int64_t rows = 20000, C = 128;
        t.push_back({
            .name = "layer_norm_backward_20000_rows",
            .seed = 4199,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"x", randn({rows, C}, rng)}, {"dy", randn({rows, C}, rng)}, {"g", randn({C}, rng)}};
                    return in.add("zeros", Tensor::zeros({C}));
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor dx = f32_on({rows, C}, d), dg = in["zeros"].clone(), db = in["zeros"].clone();
                    layer_norm_backward(in["x"], in["g"], 1e-5f, in["dy"], dx, dg, db);
                    return Tensors{{"dx", dx}, {"dscale", dg}, {"doffset", db}};
                },
            .gpu_rtol = 1e-4,
        });
    }
    t.push_back({
        .name = "relu_backward_1001",
        .seed = 44,
        .draw =
            [](std::mt19937& rng) {
                return Tensors{{"y", randn({3, 1001}, rng)}, {"dy", randn({3, 1001}, rng)}};
            },
        .run =
            [](const Tensors& in, Device d) {
                const Tensor dx = f32_on({3, 1001}, d);
                relu(in["y"]);
                relu_backward(in["y"], in["dy"], dx);
                return Tensors{{"dx", dx}};
            },
    });
    // The composite linear_backward: cuBLAS GEMMs with transposed views, a ones-row GEMM for the bias.
    t.push_back({
        .name = "linear_backward_composite",
        .seed = 4401,
        .draw =
            [](std::mt19937& rng) {
                Tensors in{
                    {"x", randn({4, 37, 24}, rng)}, {"w", randn({24, 4, 8}, rng)}, {"dy", randn({4, 37, 4, 8}, rng)}};
                in.add("dx", randn({4, 37, 24}, rng)).add("dw", randn({24, 4, 8}, rng));
                return in.add("dbias", randn({4, 8}, rng));
            },
        .run =
            [](const Tensors& in, Device d) {
                Context ctx(d);
                linear_backward(in["x"], in["w"], in["dy"], in["dx"], true, in["dw"], in["dbias"], ctx.ws);
                return Tensors{{"dx", in["dx"]}, {"dw", in["dw"]}, {"dbias", in["dbias"]}};
            },
        .gpu_rtol = 1e-4,
    });
    // The composite attention backward (batched cuBLAS GEMMs on permuted views, the CUDA softmax and its backward,
    // a ones-row GEMM for the bias gradient); a transposed mask as column attention passes it. (The CUDA side gets
    // the bias materialised, as the original comparison gave it.)
    {
        const int64_t B = 5, Q = 33, K = 40, H = 4, C = 16;
        t.push_back({
            .name = "attention_backward_transposed_mask",
            .seed = 45,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"qkv", randn({B, Q, 3, H, C}, rng)}, {"kv", randn({B, K, 2, H, C}, rng)}};
                    in.add("mask", random_mask({K, B}, rng)).add("bias", randn({Q, H, K}, rng));
                    return in.add("dout", randn({B, Q, H, C}, rng)).add("dbias", randn({H, Q, K}, rng));
                },
            .run =
                [](const Tensors& in, Device d) {
                    const Tensor dq = f32_on({B, Q, H, C}, d), dk = f32_on({B, K, H, C}, d),
                                 dv = f32_on({B, K, H, C}, d);
                    const Tensor bias = in["bias"].permute({1, 0, 2});
                    Context ctx(d);
                    attention_backward(in["qkv"].select(2, 0), in["kv"].select(2, 0), in["kv"].select(2, 1),
                                       in["mask"].transpose(0, 1), d == Device::CPU ? bias : bias.contiguous(), 0.25f,
                                       1e9f, in["dout"], dq, dk, dv, in["dbias"], ctx.ws);
                    return Tensors{{"dq", dq}, {"dk", dk}, {"dv", dv}, {"dbias", in["dbias"]}};
                },
            .gpu_rtol = 1e-4,
        });
    }
    t.push_back({
        .name = "sigmoid_mul_backward_1001",
        .seed = 43,
        .draw =
            [](std::mt19937& rng) {
                return Tensors{
                    {"x", randn({3, 1001}, rng)}, {"g", randn({3, 1001}, rng, 3.f)}, {"dy", randn({3, 1001}, rng)}};
            },
        .run =
            [](const Tensors& in, Device d) {
                const Tensor dx = f32_on({3, 1001}, d), dg = f32_on({3, 1001}, d);
                sigmoid_mul_backward(in["x"], in["g"], in["dy"], dx, dg);
                return Tensors{{"dx", dx}, {"dgate", dg}};
            },
    });
}

void add_fill_bf16_path_cases(std::vector<OpCase>& t) {
    t.push_back({
        .name = "fill_strided_view",
        .seed = 44,
        .draw =
            [](std::mt19937& rng) {
                return Tensors{{"h", randn({5, 70}, rng)}};
            },
        .run =
            [](const Tensors& in, Device) {
                fill(in["h"].slice(1, 3, 60).transpose(0, 1), -1.5f);
                return Tensors{{"h", in["h"]}};
            },
    });
    // bfloat16 activations: conversions both ways through strided views and a same-dtype strided copy of 2-byte
    // elements, bit for bit.
    static const View v_h = [](const Tensor& x) { return x.permute({1, 2, 0}); };  // [40, 6, 9] -> [6, 9, 40]
    t.push_back({
        .name = "bf16_convert_and_copy_strided",
        .seed = 31,
        .draw =
            [](std::mt19937& rng) {
                return Tensors{{"x", randn({6, 9, 40}, rng, 4.f)}};
            },
        .run =
            [](const Tensors& in, Device d) {
                const Tensor h = Tensor::empty({40, 6, 9}, DType::BF16, d), back = f32_on({6, 9, 40}, d);
                const Tensor hs = Tensor::empty({6, 9, 40}, DType::BF16, d);
                copy(v_h(h), in["x"]);
                copy(back, v_h(h));
                copy(hs, v_h(h));
                return Tensors{{"f32_to_bf16_strided", h}, {"bf16_to_f32_strided", back}, {"bf16_strided_copy", hs}};
            },
        .gpu_rtol = 0,
    });
    // The residual add into bfloat16 (each sum rounded once) through a transposed view, then a broadcast bias.
    t.push_back({
        .name = "bf16_add_write_update",
        .seed = 3101,
        .draw =
            [](std::mt19937& rng) {
                Tensors in{{"a", to_dtype(randn({9, 6, 40}, rng, 2.f), DType::BF16)}, {"y", randn({6, 9, 40}, rng)}};
                return in.add("b", randn({40}, rng));
            },
        .run =
            [](const Tensors& in, Device) {
                add(in["a"].permute({1, 0, 2}), in["y"], 0.5f);
                write_update(in["a"], in["b"].view({1, 1, 40}).expand({9, 6, 40}), true);
                return Tensors{{"a", in["a"]}};
            },
        .gpu_rtol = 0,
    });
    // Layer norm reading bfloat16: a warp per row (16-byte chunks; single elements), a block per row in registers,
    // the loop beyond 8192; the channel-major path.
    {
        static const int64_t Cs[] = {40, 42, 1500, 9000};
        t.push_back({
            .name = "layer_norm_bf16_rows_channel_major",
            .seed = 3102,
            .draw =
                [](std::mt19937& rng) {
                    Tensors in{{"g", randn({40}, rng)}, {"o", randn({40}, rng)}};
                    for (int64_t C : Cs) {
                        in.add("x" + str(C), to_dtype(randn({7, 2 * C}, rng, 3.f), DType::BF16));
                        in.add("g" + str(C), randn({C}, rng)).add("o" + str(C), randn({C}, rng));
                    }
                    return in.add("cm", to_dtype(randn({40, 300}, rng), DType::BF16));
                },
            .run =
                [](const Tensors& in, Device d) {
                    Tensors out;
                    for (int64_t C : Cs) {
                        const Tensor y = f32_on({7, C}, d);
                        // (append, not "x" + str(C): GCC 12 warns falsely of an overlapping memcpy once inlined)
                        const std::string c = str(C);
                        layer_norm(in[std::string("x").append(c)].slice(1, 0, C), in[std::string("g").append(c)],
                                   in[std::string("o").append(c)], 1e-5f, y);
                        out.add(std::string("C").append(c), y);
                    }
                    const Tensor ycm = f32_on({40, 300}, d);
                    layer_norm(in["cm"].transpose(0, 1), in["g"], in["o"], 1e-5f, ycm.transpose(0, 1));
                    return out.add("channel_major", ycm);
                },
        });
    }
}

void add_structure_path_cases(std::vector<OpCase>& t) {
    // Embedding lookup over 1001 rows: negative indices (rows left alone when accumulating, zeroed otherwise), into
    // a strided out (a column slice of a wider tensor, so writes outside the view are caught) and a contiguous one.
    // One float add per element on either side: exact.
    static const int64_t gather_Cs[] = {1, 37, 128};
    for (size_t i = 0; i < std::size(gather_Cs); ++i) {
        const int64_t C = gather_Cs[i], V = 21, M = 1001;
        t.push_back({
            .name = "gather_rows_C" + str(C),
            .seed = static_cast<uint32_t>(5100 + i),
            .draw =
                [C](std::mt19937& rng) {
                    Tensor table = randn({V, C}, rng), index = Tensor::empty({M}, DType::I64);
                    std::uniform_int_distribution<int64_t> pick(-3, V - 1);
                    for (int64_t m = 0; m < M; ++m) index.data<int64_t>()[m] = pick(rng);
                    index.data<int64_t>()[0] = -1, index.data<int64_t>()[1] = V - 1, index.data<int64_t>()[2] = 0;
                    Tensors in{{"table", table}, {"index", index}};
                    for (const char* a : {"", "_accumulate"})
                        in.add(std::string("wide") + a, randn({M, C + 5}, rng))
                            .add(std::string("out") + a, randn({M, C}, rng));
                    return in;
                },
            .run =
                [C](const Tensors& in, Device) {
                    Tensors out;
                    for (bool accumulate : {false, true}) {
                        const std::string a = accumulate ? "_accumulate" : "";
                        gather_rows(in["table"], in["index"], in["wide" + a].slice(1, 2, 2 + C), accumulate);
                        gather_rows(in["table"], in["index"], in["out" + a], accumulate);
                        out.add("strided_out" + a, in["wide" + a]).add("contiguous" + a, in["out" + a]);
                    }
                    return out;
                },
            .gpu_rtol = 0,
        });
    }
    // Frames applied forward and inverse to permuted / strided point views, with and without norms (a transposed
    // column slice); y and norms compared over their whole buffers. Then coordinate-major output (y.stride(2) = K,
    // as IPA's inverse writes its [N, H * P, 3] points), and contiguous points.
    static const int64_t frame_Ns[] = {1, 23, 300};
    for (size_t i = 0; i < std::size(frame_Ns); ++i) {
        const int64_t N = frame_Ns[i], K = 17;
        static const auto key = [](bool inverse, bool with_norms) {
            return std::string(inverse ? "_inverse" : "_forward") + (with_norms ? "_norms" : "");
        };
        t.push_back({
            .name = "apply_frames_N" + str(N),
            .seed = static_cast<uint32_t>(5200 + i),
            .draw =
                [N](std::mt19937& rng) {
                    Tensors in{{"rot", randn({N, 3, 3}, rng)},
                               {"trans", randn({N, 3}, rng, 5.f)},
                               {"xm", randn({N * 3 * K}, rng, 3.f)}};
                    for (bool inverse : {false, true})
                        for (bool with_norms : {false, true})
                            in.add("y" + key(inverse, with_norms), randn({K, N, 5}, rng))
                                .add("n" + key(inverse, with_norms), randn({K, N + 4}, rng));
                    for (bool inverse : {false, true}) in.add("yc" + key(inverse, false), randn({N, 3, K}, rng));
                    return in.add("x", randn({N, K, 3}, rng));
                },
            .run =
                [N](const Tensors& in, Device d) {
                    const Tensor &rot = in["rot"], &trans = in["trans"];
                    const Tensor x = in["xm"].view({N, 3, K}).permute({0, 2, 1});  // [N, K, 3], stride(2) = K
                    Tensors out;
                    for (bool inverse : {false, true})
                        for (bool with_norms : {false, true}) {
                            const std::string k = key(inverse, with_norms);
                            const Tensor &y = in["y" + k], &nm = in["n" + k];
                            apply_frames(rot, trans, x, y.permute({1, 0, 2}).slice(2, 1, 4), inverse,
                                         with_norms ? nm.slice(1, 2, 2 + N).transpose(0, 1) : Tensor(), 1e-3f);
                            out.add("y" + k, y).add("norms" + k, nm);
                        }
                    for (bool inverse : {false, true}) {
                        const Tensor& y = in["yc" + key(inverse, false)];
                        apply_frames(rot, trans, x, y.permute({0, 2, 1}), inverse, Tensor(), 1e-3f);
                        out.add("coordinate_major_y" + key(inverse, false), y);
                    }
                    const Tensor y = f32_on({N, K, 3}, d), n = f32_on({N, K}, d);
                    apply_frames(rot, trans, in["x"], y, false, n, 1e-8f);
                    return out.add("contiguous_y", y).add("contiguous_norms", n);
                },
        });
    }
    // IPA's point logits: a and c per head out of [N, H, D] memory (permuted to [H, N, D]), D = 12, into a contiguous
    // and a row-padded, permuted out (a contiguous); then sizes that are multiples of no block size, D = 1 and a
    // long D.
    struct Dist {
        int64_t B, I, J, D;
    };
    static const Dist dists[] = {
        {12, 37, 45, 12}, {12, 300, 300, 12}, {3, 261, 1001, 5}, {2, 9, 33, 1}, {2, 19, 70, 300}};
    for (size_t i = 0; i < std::size(dists); ++i) {
        const Dist cs = dists[i];
        static const View v_p = [](const Tensor& x) { return x.permute({1, 0, 2}); };
        t.push_back({
            .name = "weighted_sq_distances_B" + str(cs.B) + "_I" + str(cs.I) + "_J" + str(cs.J) + "_D" + str(cs.D),
            .seed = static_cast<uint32_t>(5300 + i),
            .draw =
                [cs](std::mt19937& rng) {
                    Tensors in{{"a", randn({cs.I, cs.B, cs.D}, rng, 4.f)}, {"c", randn({cs.J, cs.B, cs.D}, rng, 4.f)}};
                    return in.add("w", positive({cs.B}, rng)).add("po", randn({cs.I, cs.B, cs.J + 3}, rng));
                },
            .run =
                [cs](const Tensors& in, Device d) {
                    const Tensor out = f32_on({cs.B, cs.I, cs.J}, d);
                    weighted_sq_distances(v_p(in["a"]), v_p(in["c"]), in["w"], out);
                    weighted_sq_distances(v_p(in["a"]).contiguous(), v_p(in["c"]), in["w"],
                                          in["po"].slice(2, 1, 1 + cs.J).permute({1, 0, 2}));
                    return Tensors{{"out", out}, {"strided_out", in["po"]}};
                },
        });
    }
    // Symmetrisation in place: odd sizes, a single residue, one channel, and rows long enough that each block loops.
    static const std::pair<int64_t, int64_t> sym[] = {{37, 5}, {1, 3}, {40, 1}, {300, 64}, {1100, 7}};
    for (size_t i = 0; i < std::size(sym); ++i) {
        const int64_t N = sym[i].first, C = sym[i].second;
        t.push_back({
            .name = "add_transpose_N" + str(N) + "_C" + str(C),
            .seed = static_cast<uint32_t>(5400 + i),
            .draw =
                [N, C](std::mt19937& rng) {
                    return Tensors{{"x", randn({N, N, C}, rng)}};
                },
            .run =
                [](const Tensors& in, Device) {
                    add_transpose(in["x"]);
                    return Tensors{{"x", in["x"]}};
                },
            .gpu_rtol = 0,
        });
    }
}

}  // namespace

const std::vector<OpCase>& op_cases() {
    static const std::vector<OpCase> table = [] {
        std::vector<OpCase> t;
        add_matmul_cases(t);
        add_linear_cases(t);
        add_layer_norm_softmax_cases(t);
        add_attention_cases(t);
        add_elementwise_cases(t);
        add_optimizer_cases(t);
        add_backward_cases(t);
        add_fill_bf16_cases(t);
        add_structure_cases(t);
        add_gemm_path_cases(t);
        add_norm_softmax_path_cases(t);
        add_attention_path_cases(t);
        add_elementwise_path_cases(t);
        add_copy_path_cases(t);
        add_backward_path_cases(t);
        add_fill_bf16_path_cases(t);
        add_structure_path_cases(t);
        return t;
    }();
    return table;
}

std::vector<OpCase> float64_cases() {
    std::vector<OpCase> cases;
    for (const OpCase& c : op_cases())
        if (c.reference || c.check) cases.push_back(c);
    return cases;
}

}  // namespace axfold::test
