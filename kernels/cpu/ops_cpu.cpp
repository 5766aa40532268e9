// CPU ops: Eigen maps over our strided tensors for GEMMs, OpenMP loops for the rest.
#include "kernels/cpu/ops_cpu.h"

#include <omp.h>

#include <Eigen/Core>

#ifdef AXFOLD_WITH_OPENBLAS
#include <cblas.h>
#endif
#ifdef AXFOLD_WITH_ONEDNN
#include <map>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#endif
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace axfold::cpu {

namespace {

using Eigen::Dynamic;
using Eigen::OuterStride;
using RowMat = Eigen::Matrix<float, Dynamic, Dynamic, Eigen::RowMajor>;
using ColMat = Eigen::Matrix<float, Dynamic, Dynamic, Eigen::ColMajor>;
template <class M>
using CMap = Eigen::Map<const M, 0, OuterStride<>>;
template <class M>
using MMap = Eigen::Map<M, 0, OuterStride<>>;

// Offsets of every element of a multi-index over `shape` with `strides` (leading dims only).
void offsets_rec(const int64_t* shape, const int64_t* strides, int nd, int64_t base, std::vector<int64_t>& out) {
    if (nd == 0) {
        out.push_back(base);
        return;
    }
    for (int64_t i = 0; i < shape[0]; ++i) offsets_rec(shape + 1, strides + 1, nd - 1, base + i * strides[0], out);
}

std::vector<int64_t> batch_offsets(const Shape& shape, const Shape& strides, int nd) {
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(shape_numel(Shape(shape.begin(), shape.begin() + nd))));
    offsets_rec(shape.data(), strides.data(), nd, 0, out);
    return out;
}

struct MatLayout {
    bool row_major;
    int64_t ld;
};

MatLayout layout_of(const Tensor& t) {
    int64_t rows = t.size(-2), cols = t.size(-1);
    int64_t s0 = t.stride(-2), s1 = t.stride(-1);
    if (s1 == 1 || cols == 1) return {true, std::max<int64_t>(rows == 1 ? cols : s0, cols)};
    if (s0 == 1 || rows == 1) return {false, std::max<int64_t>(cols == 1 ? rows : s1, rows)};
    AXF_FAIL("matmul operand %s has strides %s: neither rows nor columns are contiguous", t.desc().c_str(),
             shape_str(t.strides()).c_str());
}

template <class MA, class MB>
void gemm_one(const float* a, MatLayout la, const float* b, MatLayout lb, float* c, int64_t ldc, int64_t M, int64_t N,
              int64_t K, float alpha, float beta) {
    CMap<MA> A(a, M, K, OuterStride<>(la.ld));
    CMap<MB> B(b, K, N, OuterStride<>(lb.ld));
    MMap<RowMat> C(c, M, N, OuterStride<>(ldc));
    if (beta == 0.f) {
        if (alpha == 1.f)
            C.noalias() = A * B;
        else
            C.noalias() = alpha * (A * B);
    } else {
        if (beta != 1.f) C *= beta;
        C.noalias() += alpha * (A * B);
    }
}

// c[r, :] = relu?(c[r, :] + bias) for rows [0, M): the epilogue a linear layer fuses into its GEMM.
void apply_epilogue(float* c, int64_t ldc, int64_t M, int64_t N, const GemmEpilogue& e) {
    for (int64_t r = 0; r < M; ++r) {
        float* __restrict cr = c + r * ldc;
        if (e.bias) {
#pragma omp simd
            for (int64_t n = 0; n < N; ++n) cr[n] += e.bias[n];
        }
        if (e.relu) {
#pragma omp simd
            for (int64_t n = 0; n < N; ++n) cr[n] = cr[n] > 0.f ? cr[n] : 0.f;
        }
    }
}

// c = alpha a b + beta c, then the epilogue (bias, ReLU).
void gemm_fp32(const float* a, MatLayout la, const float* b, MatLayout lb, float* c, int64_t ldc, int64_t M, int64_t N,
               int64_t K, float alpha, float beta, const GemmEpilogue& ep = {}) {
#ifdef AXFOLD_WITH_OPENBLAS
    // OpenBLAS's working memory grows with the row count (~0.5 KB per row measured for K=256: +156 MB at
    // 524288 rows), so tall products run in blocks of rows; each block is still a large GEMM. With an epilogue
    // the blocks are 512 rows, so that it runs while the block's output is still in cache (a separate pass over
    // a linear layer's whole output cost 3 % of the Evoformer block).
    const int64_t row_block = ep.any() ? 512 : 16384;
    // A tall or wide product (the block's projections: tens of thousands of rows, at most a thousand columns,
    // or the transpose) is split into one GEMM per thread over its long side, each run single-threaded by the
    // OpenMP OpenBLAS inside our parallel region: 5-20 % faster than OpenBLAS's own split at these shapes
    // (`axfold bench gemm`), each thread packing its own copy of the small operand.
    const int nt = omp_get_max_threads();
    const bool tall = M >= 2048 * nt && N <= 1024, wide = N >= 2048 * nt && M <= 1024;
    if (!omp_in_parallel() && nt > 1 && (tall || wide)) {
        const int64_t len = tall ? M : N, per = (len + nt - 1) / nt;
#pragma omp parallel for schedule(static)
        for (int t = 0; t < nt; ++t) {
            const int64_t s0 = t * per, n = std::min(per, len - s0);
            if (n <= 0) continue;
            if (tall)
                gemm_fp32(a + (la.row_major ? s0 * la.ld : s0), la, b, lb, c + s0 * ldc, ldc, n, N, K, alpha, beta, ep);
            else
                gemm_fp32(a, la, b + (lb.row_major ? s0 : s0 * lb.ld), lb, c + s0, ldc, M, n, K, alpha, beta,
                          ep.from_column(s0));
        }
        return;
    }
    for (int64_t m0 = 0; m0 < M; m0 += row_block) {
        const int64_t mb = std::min(row_block, M - m0);
        const float* ab = a + (la.row_major ? m0 * la.ld : m0);
        cblas_sgemm(CblasRowMajor, la.row_major ? CblasNoTrans : CblasTrans, lb.row_major ? CblasNoTrans : CblasTrans,
                    static_cast<int>(mb), static_cast<int>(N), static_cast<int>(K), alpha, ab, static_cast<int>(la.ld),
                    b, static_cast<int>(lb.ld), beta, c + m0 * ldc, static_cast<int>(ldc));
        if (ep.any()) apply_epilogue(c + m0 * ldc, ldc, mb, N, ep);
    }
#else
    if (la.row_major && lb.row_major)
        gemm_one<RowMat, RowMat>(a, la, b, lb, c, ldc, M, N, K, alpha, beta);
    else if (la.row_major)
        gemm_one<RowMat, ColMat>(a, la, b, lb, c, ldc, M, N, K, alpha, beta);
    else if (lb.row_major)
        gemm_one<ColMat, RowMat>(a, la, b, lb, c, ldc, M, N, K, alpha, beta);
    else
        gemm_one<ColMat, ColMat>(a, la, b, lb, c, ldc, M, N, K, alpha, beta);
    if (ep.any()) apply_epilogue(c, ldc, M, N, ep);
#endif
}

// The rows x cols operand (row- or column-major, leading dimension ld) copied densely in the same layout, each
// element through `convert`; returns the copy's layout. Large operands use every thread (outside a parallel
// region: the GEMM after it does too).
template <class T, class F>
MatLayout dense_copy(const float* src, MatLayout l, int64_t rows, int64_t cols, std::vector<T>& dst, F convert) {
    const int64_t outer = l.row_major ? rows : cols, inner = l.row_major ? cols : rows;
    dst.resize(static_cast<size_t>(outer * inner));
    T* d = dst.data();
#pragma omp parallel for schedule(static) if (outer * inner > 65536 && !omp_in_parallel())
    for (int64_t o = 0; o < outer; ++o) {
        const float* s = src + o * l.ld;
        T* dr = d + o * inner;
#pragma omp simd
        for (int64_t i = 0; i < inner; ++i) dr[i] = convert(s[i]);
    }
    return {l.row_major, std::max<int64_t>(inner, 1)};
}

// The operand with every element rounded to `bits` mantissa bits (the emulation of bf16/tf32 GEMMs).
MatLayout round_operand(const float* src, MatLayout l, int64_t rows, int64_t cols, int bits, std::vector<float>& dst) {
    return dense_copy(src, l, rows, cols, dst, [bits](float x) { return round_mantissa(x, bits); });
}

// bfloat16 GEMMs (bf16 operands, fp32 products and sums) in oneDNN's kernels, where the CPU has bfloat16 dot
// products: AVX512_BF16 (vdpbf16ps) or AMX. Each operand is converted once per call (rounded to nearest even,
// as round_mantissa(x, 7) rounds it), A in blocks of rows; primitives are cached by shape and layout.
#ifdef AXFOLD_WITH_ONEDNN
namespace onednn {

bool cpu_has_bf16_dot() {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
    const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
    return (isa & bf16) == bf16;  // oneDNN's ISA values are nested bit masks (AMX includes AVX512_BF16)
}

dnnl::engine& engine() {
    static dnnl::engine e(dnnl::engine::kind::cpu, 0);
    return e;
}

// A dense rows x cols bfloat16 operand, row- or column-major.
dnnl::memory::desc operand_desc(int64_t rows, int64_t cols, bool row_major) {
    return {{rows, cols},
            dnnl::memory::data_type::bf16,
            row_major ? dnnl::memory::format_tag::ab : dnnl::memory::format_tag::ba};
}

using Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, int64_t, float, float>;

const dnnl::matmul& primitive(int64_t M, int64_t N, int64_t K, bool a_row_major, bool b_row_major, int64_t ldc,
                              float alpha, float beta) {
    static std::mutex mu;
    static std::map<Key, dnnl::matmul> cache;
    const Key key{M, N, K, a_row_major, b_row_major, ldc, alpha, beta};
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    const dnnl::memory::desc c({M, N}, dnnl::memory::data_type::f32, dnnl::memory::dims{ldc, 1});
    dnnl::primitive_attr attr;
    if (alpha != 1.f) attr.set_output_scales(0, {alpha});
    if (beta != 0.f) {
        dnnl::post_ops po;
        po.append_sum(beta);
        attr.set_post_ops(po);
    }
    const dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(operand_desc(M, K, a_row_major), operand_desc(K, N, b_row_major), c), attr, engine());
    return cache.emplace(key, dnnl::matmul(pd)).first->second;
}

void gemm_bf16(const float* a, MatLayout la, const float* b, MatLayout lb, float* c, int64_t ldc, int64_t M, int64_t N,
               int64_t K, float alpha, float beta) {
    thread_local std::vector<uint16_t> ab, bb;
    thread_local dnnl::stream stream(engine());
    dense_copy(b, lb, K, N, bb, bf16_from_float);
    dnnl::memory mb(operand_desc(K, N, lb.row_major), engine(), bb.data());
    constexpr int64_t kRows = 4096;
    for (int64_t m0 = 0; m0 < M; m0 += kRows) {
        const int64_t mr = std::min(kRows, M - m0);
        dense_copy(a + (la.row_major ? m0 * la.ld : m0), la, mr, K, ab, bf16_from_float);
        const dnnl::matmul& p = primitive(mr, N, K, la.row_major, lb.row_major, ldc, alpha, beta);
        dnnl::memory ma(operand_desc(mr, K, la.row_major), engine(), ab.data());
        dnnl::memory mc({{mr, N}, dnnl::memory::data_type::f32, dnnl::memory::dims{ldc, 1}}, engine(), c + m0 * ldc);
        p.execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    }
    stream.wait();
}

}  // namespace onednn
#endif

// Where bf16 GEMMs run: decided once per process from the CPU (and AXFOLD_BF16_GEMM=emulated, which keeps
// the emulation for comparisons), unless a test overrides it.
enum class Bf16Gemm { Emulated, OneDnn };
Bf16Gemm detect_bf16_gemm() {
#ifdef AXFOLD_WITH_ONEDNN
    const char* env = std::getenv("AXFOLD_BF16_GEMM");
    if (env && std::string(env) == "emulated") return Bf16Gemm::Emulated;
    try {
        if (onednn::cpu_has_bf16_dot()) {
            onednn::primitive(64, 64, 64, true, true, 64, 1.f, 0.f);  // the CPU's oneDNN builds bf16 matmuls
            return Bf16Gemm::OneDnn;
        }
    } catch (const dnnl::error&) {
    }
#endif
    return Bf16Gemm::Emulated;
}
int bf16_gemm_override = -1;  // -1: detect; else a Bf16Gemm
Bf16Gemm bf16_gemm() {
    static const Bf16Gemm detected = detect_bf16_gemm();
    return bf16_gemm_override < 0 ? detected : static_cast<Bf16Gemm>(bf16_gemm_override);
}

// One GEMM under the process's matmul precision. BF16 runs natively where bf16_gemm() says so; otherwise
// TF32 and BF16 emulate tensor-core arithmetic by rounding both operands, then multiplying in fp32
// (products of such numbers are exact in fp32, as on the GPU).
void gemm_dispatch(const float* a, MatLayout la, const float* b, MatLayout lb, float* c, int64_t ldc, int64_t M,
                   int64_t N, int64_t K, float alpha, float beta, const GemmEpilogue& ep = {}) {
    const MatmulPrecision p = matmul_precision();
    if (p == MatmulPrecision::Fp32 || M == 0 || N == 0 || K == 0) {
        gemm_fp32(a, la, b, lb, c, ldc, M, N, K, alpha, beta, ep);
        return;
    }
#ifdef AXFOLD_WITH_ONEDNN
    if (p == MatmulPrecision::Bf16 && bf16_gemm() == Bf16Gemm::OneDnn) {
        onednn::gemm_bf16(a, la, b, lb, c, ldc, M, N, K, alpha, beta);
        if (ep.any()) apply_epilogue(c, ldc, M, N, ep);
        return;
    }
#endif
    const int bits = p == MatmulPrecision::Bf16 ? 7 : 10;
    std::vector<float> ra, rb;
    // The long side's operand in blocks (of A's rows, or of B's columns for a wide product), so that its
    // rounded copy stays small; a block of either layout starts at its first row or column.
    constexpr int64_t kBlock = 4096;
    if (N > M) {
        const MatLayout lra = round_operand(a, la, M, K, bits, ra);
        for (int64_t n0 = 0; n0 < N; n0 += kBlock) {
            const int64_t nb = std::min(kBlock, N - n0);
            const MatLayout lrb = round_operand(b + (lb.row_major ? n0 : n0 * lb.ld), lb, K, nb, bits, rb);
            gemm_fp32(ra.data(), lra, rb.data(), lrb, c + n0, ldc, M, nb, K, alpha, beta, ep.from_column(n0));
        }
        return;
    }
    const MatLayout lrb = round_operand(b, lb, K, N, bits, rb);
    for (int64_t m0 = 0; m0 < M; m0 += kBlock) {
        const int64_t mb = std::min(kBlock, M - m0);
        const MatLayout lra = round_operand(a + (la.row_major ? m0 * la.ld : m0), la, mb, K, bits, ra);
        gemm_fp32(ra.data(), lra, rb.data(), lrb, c + m0 * ldc, ldc, mb, N, K, alpha, beta, ep);
    }
}

// fast_exp's polynomial, for float and for eight lanes alike: x (already clamped to float's range) =
// n ln2 + r, exp(r) by its Cephes polynomial; n is returned for the caller to put into an exponent.
template <class V>
inline V exp_polynomial(V x, V& n) {
    const V round = V{} + 12582912.f;
    n = (x * 1.44269504088896341f + round) - round;  // round to nearest
    const V r = x - n * 0.693359375f + n * 2.12194440e-4f;
    const V r2 = r * r;
    V p = V{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return p * r2 + r + 1.f;
}

// exp for float with ~2 ulp error, written so that loops over it vectorise (no floorf, no std::min/max
// references: either stops GCC's vectoriser); exact 0 below the float range, which masked logits (-1e9) reach.
inline float fast_exp(float x) {
    const float xl = x < -87.3f ? -87.3f : x;
    const float xc = xl > 88.7f ? 88.7f : xl;
    float n;
    const float p = exp_polynomial(xc, n);
    const float scale = __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
    return x < -87.3f ? 0.f : p * scale;
}

inline float fast_sigmoid(float x) {
    return 1.f / (1.f + fast_exp(-x));
}

// Eight floats in GCC vector extensions: AVX2 or AVX-512 code, as the build allows. Hand-vectorised loops
// use them where GCC's own vectoriser leaves throughput behind (it reloads fast_exp's constants every
// iteration and keeps one iteration in flight).
using vf = float __attribute__((vector_size(32)));
using vi = int32_t __attribute__((vector_size(32)));
constexpr int64_t kLanes = 8;

inline vf load(const float* p) {
    vf v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(float* p, vf v) {
    std::memcpy(p, &v, sizeof v);
}
// p[0:n] for n < kLanes, zeros after.
inline vf load_partial(const float* p, int64_t n) {
    float t[kLanes] = {};
    for (int64_t i = 0; i < n; ++i) t[i] = p[i];
    return load(t);
}
inline float hsum(vf v) {
    float s = 0.f;
    for (int64_t i = 0; i < kLanes; ++i) s += v[i];
    return s;
}
inline float hmax(vf v) {
    float m = v[0];
    for (int64_t i = 1; i < kLanes; ++i) m = v[i] > m ? v[i] : m;
    return m;
}

// fast_exp on eight lanes: the same arithmetic.
inline vf fast_exp(vf x) {
    const vf lo = vf{} - 87.3f, hi = vf{} + 88.7f;
    const vf xl = x < lo ? lo : x;
    const vf xc = xl > hi ? hi : xl;
    vf n;
    const vf p = exp_polynomial(xc, n);
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    vf scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return x < lo ? vf{} : p * scale;
}

// x[k] = exp(x[k] - mx) over a row in place; returns the sum. Two vectors per iteration, so that two
// exponentials' dependency chains overlap.
inline float exp_sum_row(float* __restrict x, int64_t n, float mx) {
    vf s0 = {}, s1 = {};
    int64_t k = 0;
    for (; k + 2 * kLanes <= n; k += 2 * kLanes) {
        const vf e0 = fast_exp(load(x + k) - mx), e1 = fast_exp(load(x + k + kLanes) - mx);
        store(x + k, e0);
        store(x + k + kLanes, e1);
        s0 += e0;
        s1 += e1;
    }
    float sum = hsum(s0 + s1);
    for (; k < n; ++k) {
        const float e = fast_exp(x[k] - mx);
        x[k] = e;
        sum += e;
    }
    return sum;
}

// The logits pass of a softmax row, x = scale * x + bias + inf * (mask - 1), where both rows are contiguous
// (HB, HM: bias, mask present); returns the row's maximum, found in the same pass.
template <bool HB, bool HM>
inline float softmax_logits(float* __restrict x, int64_t n, float scale, const float* mask, const float* bias,
                            float inf) {
    float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
    for (int64_t k = 0; k < n; ++k) {
        float t = x[k] * scale;
        if constexpr (HB) t += bias[k];
        if constexpr (HM) t += inf * (mask[k] - 1.f);
        x[k] = t;
        mx = t > mx ? t : mx;
    }
    return mx;
}

// A softmax row's numerators in place, exp(logit - max), with the optional mask/bias rows (strides ms, bs;
// 0 = broadcast); returns their sum.
inline float softmax_exp_row(float* __restrict x, int64_t n, float scale, const float* mask, int64_t ms,
                             const float* bias, int64_t bs, float inf) {
    const bool cb = !bias || bs == 1, cm = !mask || ms == 1;
    float mx = -std::numeric_limits<float>::infinity();
    if (cb && cm) {
        if (bias && mask)
            mx = softmax_logits<true, true>(x, n, scale, mask, bias, inf);
        else if (bias)
            mx = softmax_logits<true, false>(x, n, scale, mask, bias, inf);
        else if (mask)
            mx = softmax_logits<false, true>(x, n, scale, mask, bias, inf);
        else
            mx = softmax_logits<false, false>(x, n, scale, mask, bias, inf);
    } else {
        for (int64_t k = 0; k < n; ++k) {
            float t = x[k] * scale;
            if (bias) t += bias[k * bs];
            if (mask) t += inf * (mask[k * ms] - 1.f);
            x[k] = t;
            mx = t > mx ? t : mx;
        }
    }
    return exp_sum_row(x, n, mx);
}

// Softmax of one row in place (see softmax_exp_row).
inline void softmax_row(float* __restrict x, int64_t n, float scale, const float* mask, int64_t ms, const float* bias,
                        int64_t bs, float inf) {
    const float inv = 1.f / softmax_exp_row(x, n, scale, mask, ms, bias, bs, inf);
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) x[k] *= inv;
}

}  // namespace

const char* bf16_gemm_backend() {
    return bf16_gemm() == Bf16Gemm::OneDnn ? "onednn" : "emulated";
}

bool set_bf16_gemm_backend(const std::string& name) {
    if (name.empty()) {
        bf16_gemm_override = -1;
        return true;
    }
    if (name == "emulated") {
        bf16_gemm_override = static_cast<int>(Bf16Gemm::Emulated);
        return true;
    }
    if (name == "onednn" && detect_bf16_gemm() == Bf16Gemm::OneDnn) {
        bf16_gemm_override = static_cast<int>(Bf16Gemm::OneDnn);
        return true;
    }
    return false;
}

RowOffsets::RowOffsets(const Tensor& t) {
    rows_ = 1;
    nd_ = 0;
    for (int d = 0; d + 1 < t.dim(); ++d) {
        const int64_t n = t.size(d), st = t.stride(d);
        rows_ *= n;
        if (n == 1) continue;
        if (nd_ > 0 && stride_[nd_ - 1] == st * n) {  // merges into the dimension before it
            shape_[nd_ - 1] *= n;
            stride_[nd_ - 1] = st;
            continue;
        }
        AXF_CHECK(nd_ < kMaxDims, "tensor %s has more than %d leading dimensions that do not merge", t.desc().c_str(),
                  kMaxDims);
        shape_[nd_] = n;
        stride_[nd_++] = st;
    }
    if (nd_ == 0) {
        shape_[0] = 1;
        stride_[0] = 0;
        nd_ = 1;
    }
}

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, float alpha, float beta, const Tensor& bias, bool relu) {
    const int nd = c.dim();
    const int64_t M = c.size(-2), N = c.size(-1), K = a.size(-1);
    MatLayout la = layout_of(a), lb = layout_of(b);
    AXF_CHECK(c.stride(-1) == 1 || N == 1, "matmul output %s must have contiguous rows", c.desc().c_str());
    const int64_t ldc = std::max<int64_t>(M == 1 ? N : c.stride(-2), N);
    // Broadcast a and b to c's batch dims (missing leading dims and size-1 dims get stride 0).
    auto batch_strides = [&](const Tensor& t) {
        Shape st(nd - 2, 0);
        int off = nd - t.dim();
        for (int i = 0; i < t.dim() - 2; ++i) st[off + i] = (t.size(i) == 1 && c.size(off + i) != 1) ? 0 : t.stride(i);
        return st;
    };
    Shape bshape(c.shape().begin(), c.shape().end() - 2);
    std::vector<int64_t> oa = batch_offsets(bshape, batch_strides(a), nd - 2);
    std::vector<int64_t> ob = batch_offsets(bshape, batch_strides(b), nd - 2);
    std::vector<int64_t> oc = batch_offsets(bshape, Shape(c.strides().begin(), c.strides().end() - 2), nd - 2);
    const float* pa = a.f32();
    const float* pb = b.f32();
    float* pc = c.f32();
    const GemmEpilogue ep{bias.defined() ? bias.f32() : nullptr, relu};
    const int64_t nb = static_cast<int64_t>(oc.size());
    if (nb >= 2 && nb >= omp_get_max_threads()) {
#pragma omp parallel for schedule(dynamic)
        for (int64_t i = 0; i < nb; ++i)
            gemm_dispatch(pa + oa[i], la, pb + ob[i], lb, pc + oc[i], ldc, M, N, K, alpha, beta, ep);
    } else {
        for (int64_t i = 0; i < nb; ++i)
            gemm_dispatch(pa + oa[i], la, pb + ob[i], lb, pc + oc[i], ldc, M, N, K, alpha, beta, ep);
    }
}

namespace {
// Elements of x as float: float32 as is, bfloat16 widened. Stored activations may be either (the residual
// streams under --precision bf16); everything computed from them is float32.
inline float ld(const float* p, int64_t i) {
    return p[i];
}
inline float ld(const bf16_t* p, int64_t i) {
    return bf16_to_float(p[i].bits);
}

// Layer norm of a [M, C] view whose channels are the slow axis (memory [C][M], stride(0) == 1): the
// reductions run across channels with the M axis vectorised.
template <class T>
void layer_norm_channels_major(const T* px, const Tensor& x, const Tensor& scale, const Tensor& offset, float eps,
                               const Tensor& y) {
    const int64_t M = x.size(0), C = x.size(1), xs = x.stride(1), ys = y.stride(1);
    float* py = y.f32();
    const float* g = scale.f32();
    const float* bb = offset.f32();
    const int64_t block = 256;
#pragma omp parallel for schedule(static) if (M * C > 32768)
    for (int64_t m0 = 0; m0 < M; m0 += block) {
        const int64_t n = std::min(block, M - m0);
        float mean[block], var[block];
        for (int64_t i = 0; i < n; ++i) mean[i] = var[i] = 0.f;
        for (int64_t c = 0; c < C; ++c) {
            const T* xr = px + c * xs + m0;
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) mean[i] += ld(xr, i);
        }
        for (int64_t i = 0; i < n; ++i) mean[i] /= static_cast<float>(C);
        for (int64_t c = 0; c < C; ++c) {
            const T* xr = px + c * xs + m0;
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) var[i] += (ld(xr, i) - mean[i]) * (ld(xr, i) - mean[i]);
        }
        for (int64_t i = 0; i < n; ++i) var[i] = 1.f / std::sqrt(var[i] / static_cast<float>(C) + eps);
        for (int64_t c = 0; c < C; ++c) {
            const T* xr = px + c * xs + m0;
            float* yr = py + c * ys + m0;
            const float gc = g[c], bc = bb[c];
#pragma omp simd
            for (int64_t i = 0; i < n; ++i) yr[i] = (ld(xr, i) - mean[i]) * var[i] * gc + bc;
        }
    }
}

template <class T>
void layer_norm_rows(const T* px, const Tensor& x, const Tensor& scale, const Tensor& offset, float eps,
                     const Tensor& y) {
    const int64_t C = x.size(-1);
    const RowOffsets ox = row_offsets(x), oy = row_offsets(y);
    float* py = y.f32();
    const float* g = scale.f32();
    const float* bb = offset.f32();
    const int64_t rows = ox.size();
#pragma omp parallel for schedule(static) if (rows * C > 32768)
    for (int64_t r = 0; r < rows; ++r) {
        const T* xr = px + ox[r];
        float* yr = py + oy[r];
        float mean = 0.f;
#pragma omp simd reduction(+ : mean)
        for (int64_t c = 0; c < C; ++c) mean += ld(xr, c);
        mean /= static_cast<float>(C);
        float var = 0.f;
#pragma omp simd reduction(+ : var)
        for (int64_t c = 0; c < C; ++c) {
            float d = ld(xr, c) - mean;
            var += d * d;
        }
        var /= static_cast<float>(C);
        float inv = 1.f / std::sqrt(var + eps);
#pragma omp simd
        for (int64_t c = 0; c < C; ++c) yr[c] = (ld(xr, c) - mean) * inv * g[c] + bb[c];
    }
}
}  // namespace

void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y) {
    const bool channels_major = x.dim() == 2 && x.stride(0) == 1 && y.stride(0) == 1 && x.size(1) > 1;
    if (x.dtype() == DType::BF16) {
        if (channels_major)
            layer_norm_channels_major(x.data<bf16_t>(), x, scale, offset, eps, y);
        else
            layer_norm_rows(x.data<bf16_t>(), x, scale, offset, eps, y);
    } else if (channels_major) {
        layer_norm_channels_major(x.f32(), x, scale, offset, eps, y);
    } else {
        layer_norm_rows(x.f32(), x, scale, offset, eps, y);
    }
}

void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf) {
    const int64_t n = x.size(-1);
    const RowOffsets ox = row_offsets(x);
    const RowOffsets om = mask.defined() ? row_offsets(mask) : RowOffsets();
    const RowOffsets ob = bias.defined() ? row_offsets(bias) : RowOffsets();
    const int64_t ms = mask.defined() ? mask.stride(-1) : 0, bs = bias.defined() ? bias.stride(-1) : 0;
    float* px = x.f32();
    const float* pm = mask.defined() ? mask.f32() : nullptr;
    const float* pb = bias.defined() ? bias.f32() : nullptr;
    const int64_t rows = ox.size();
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t r = 0; r < rows; ++r)
        softmax_row(px + ox[r], n, scale, pm ? pm + om[r] : nullptr, ms, pb ? pb + ob[r] : nullptr, bs, inf);
}

namespace {

// The attention core of one (batch, head) pair, fused: q k^T for a few query rows at a time into a logits
// block that stays in L1, the softmax there, then that block times v. Each (batch, head) first packs k
// transposed ([C, Kp], zero-padded to whole vectors) and v ([K, C], contiguous), rounded to the matmul
// precision's mantissa (so bf16/tf32 keep their emulated arithmetic class: rounded operands, fp32 products
// and sums). Register-blocked with the vector types above.
// It replaces a BLAS GEMM pair per (batch, head), whose packing and output zeroing weigh heavily at AlphaFold's
// head widths (C = 8..64), and the logits' round trip through memory.
constexpr int64_t kQueryRows = 6;  // query rows per logits block: 12 accumulators
// q, k and v rows are read with a large stride (all heads, and the fused projection's other parts, lie
// between them) from memory the projection just wrote: their cache lines are requested ahead of use.
constexpr int64_t kPrefetchRows = 8;
inline void prefetch_row(const float* p, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

struct AttentionHead {
    const float* q;  // rows of C, stride qs
    int64_t qs;
    const float* kt;  // packed [C, Kp]
    const float* v;   // packed [K, C]
    float* out;       // rows of C, stride os
    int64_t os;
    int64_t Q, K, Kp, C;
    int bits;
};

// The logits of nr <= kQueryRows query rows, with the softmax's additive terms, in one pass:
// logits[r, 0:Kp] = scale * q[i0 + r, :] . kt[:, 0:Kp] + bias[r * bq + 0:K] + add[0:Kp], and mx[r] their
// maximum. add holds the mask's term, and -inf past K (padding, which exp takes to 0); bias (optional) has
// contiguous rows. qbuf: the rows packed, the missing ones zero.
void logits_block(const AttentionHead& a, int64_t i0, int64_t nr, float scale, const float* bias, int64_t bq,
                  const float* add, float* qbuf, float* logits, float* mx) {
    for (int64_t r = 0; r < kQueryRows; ++r) {
        const float* qr = a.q + (i0 + r) * a.qs;
        if (i0 + r + kQueryRows < a.Q) prefetch_row(qr + kQueryRows * a.qs, a.C);  // the next block's row
        for (int64_t c = 0; c < a.C; ++c)
            qbuf[c * kQueryRows + r] = r >= nr ? 0.f : a.bits ? round_mantissa(qr[c], a.bits) : qr[c];
    }
    vf vmx[kQueryRows];
    for (int64_t r = 0; r < kQueryRows; ++r) vmx[r] = vf{} - std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < a.Kp; j += 2 * kLanes) {
        vf acc[kQueryRows][2] = {};
        for (int64_t c = 0; c < a.C; ++c) {
            const vf b0 = load(a.kt + c * a.Kp + j), b1 = load(a.kt + c * a.Kp + j + kLanes);
            const float* qc = qbuf + c * kQueryRows;
            for (int64_t r = 0; r < kQueryRows; ++r) {
                const float x = qc[r];
                acc[r][0] += x * b0;
                acc[r][1] += x * b1;
            }
        }
        const vf add0 = load(add + j), add1 = load(add + j + kLanes);
        for (int64_t r = 0; r < nr; ++r) {
            vf t0 = acc[r][0] * scale + add0, t1 = acc[r][1] * scale + add1;
            if (bias) {
                const float* br = bias + r * bq;
                t0 += j + kLanes <= a.K ? load(br + j) : load_partial(br + j, std::max<int64_t>(a.K - j, 0));
                t1 += j + 2 * kLanes <= a.K ? load(br + j + kLanes)
                                            : load_partial(br + j + kLanes, std::max<int64_t>(a.K - j - kLanes, 0));
            }
            store(logits + r * a.Kp + j, t0);
            store(logits + r * a.Kp + j + kLanes, t1);
            const vf m = t0 > t1 ? t0 : t1;
            vmx[r] = m > vmx[r] ? m : vmx[r];
        }
    }
    for (int64_t r = 0; r < nr; ++r) mx[r] = hmax(vmx[r]);
}

// out[i0 + r, u:u + W * kLanes] = inv[r] * p[r, 0:K] v[:, u:...] for the block's rows (all kQueryRows computed:
// those past nr are zero logits, not stored): 6 x W accumulators.
template <int W>
void values_columns(const AttentionHead& a, int64_t i0, int64_t nr, const float* p, const float* inv, int64_t u) {
    vf acc[kQueryRows][W] = {};
    for (int64_t j = 0; j < a.K; ++j) {
        vf vv[W];
        for (int w = 0; w < W; ++w) vv[w] = load(a.v + j * a.C + u + w * kLanes);
        for (int64_t r = 0; r < kQueryRows; ++r) {
            const float x = p[r * a.Kp + j];
            for (int w = 0; w < W; ++w) acc[r][w] += x * vv[w];
        }
    }
    for (int64_t r = 0; r < nr; ++r)
        for (int w = 0; w < W; ++w) store(a.out + (i0 + r) * a.os + u + w * kLanes, inv[r] * acc[r][w]);
}

// out[i0 + r, :] = inv[r] * p[r, 0:K] v for the block's nr rows, two vectors of C at a time.
void values_block(const AttentionHead& a, int64_t i0, int64_t nr, const float* p, const float* inv) {
    int64_t u = 0;
    for (; u + 2 * kLanes <= a.C; u += 2 * kLanes) values_columns<2>(a, i0, nr, p, inv, u);
    if (u < a.C) values_columns<1>(a, i0, nr, p, inv, u);
}

}  // namespace

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias, float scale,
               float inf, const Tensor& out, Workspace& ws) {
    const int64_t B = q.size(0), Q = q.size(1), H = q.size(2), C = q.size(3), K = k.size(1);
    const MatmulPrecision prec = matmul_precision();
    const int bits = prec == MatmulPrecision::Bf16 ? 7 : prec == MatmulPrecision::Tf32 ? 10 : 0;
    const int nt = omp_get_max_threads();
    const float* pm = mask.defined() ? mask.f32() : nullptr;
    const float* pb = bias.defined() ? bias.f32() : nullptr;
    const int64_t mb = pm ? mask.stride(0) : 0, mk = pm ? mask.stride(1) : 0;
    const int64_t bh = pb ? bias.stride(0) : 0, bq = pb ? bias.stride(1) : 0, bk = pb ? bias.stride(2) : 0;
    WorkspaceScope scope(ws);
    if (C % kLanes == 0 && C <= 8 * kLanes) {
        const int64_t Kp = (K + 2 * kLanes - 1) / (2 * kLanes) * (2 * kLanes);
        const int64_t per_thread = C * Kp + K * C + kQueryRows * (C + 2 * Kp) + Kp;
        Tensor scratch = ws.alloc({nt, per_thread});
        const int64_t ks = k.stride(1), vs = v.stride(1);
#pragma omp parallel for schedule(dynamic)
        for (int64_t t = 0; t < B * H; ++t) {
            const int64_t b = t / H, h = t % H;
            float* kt = scratch.f32() + static_cast<int64_t>(omp_get_thread_num()) * per_thread;
            float* vp = kt + C * Kp;
            float* qbuf = vp + K * C;
            float* logits = qbuf + kQueryRows * C;
            float* bbuf = logits + kQueryRows * Kp;
            float* add = bbuf + kQueryRows * Kp;
            const float* kb = k.f32() + b * k.stride(0) + h * k.stride(2);
            const float* vb = v.f32() + b * v.stride(0) + h * v.stride(2);
            for (int64_t j = 0; j < K; ++j) {
                const float *kr = kb + j * ks, *vr = vb + j * vs;
                if (j + kPrefetchRows < K) {
                    prefetch_row(kr + kPrefetchRows * ks, C);
                    prefetch_row(vr + kPrefetchRows * vs, C);
                }
                for (int64_t c = 0; c < C; ++c) kt[c * Kp + j] = kr[c];
                std::memcpy(vp + j * C, vr, sizeof(float) * C);
            }
            for (int64_t c = 0; c < C; ++c) std::fill(kt + c * Kp + K, kt + (c + 1) * Kp, 0.f);
            if (bits) {
#pragma omp simd
                for (int64_t i = 0; i < C * Kp; ++i) kt[i] = round_mantissa(kt[i], bits);
#pragma omp simd
                for (int64_t i = 0; i < K * C; ++i) vp[i] = round_mantissa(vp[i], bits);
            }
            const AttentionHead a{q.f32() + b * q.stride(0) + h * q.stride(2),
                                  q.stride(1),
                                  kt,
                                  vp,
                                  out.f32() + b * out.stride(0) + h * out.stride(2),
                                  out.stride(1),
                                  Q,
                                  K,
                                  Kp,
                                  C,
                                  bits};
            // The mask's additive term once per (batch, head), any mask stride; the padding keys get -inf,
            // so that their exp is 0 whatever the row's maximum (a fully masked row's is near -inf too).
            for (int64_t j = 0; j < Kp; ++j)
                add[j] = j >= K ? -std::numeric_limits<float>::infinity()
                         : pm   ? inf * (pm[b * mb + j * mk] - 1.f)
                                : 0.f;
            for (int64_t i0 = 0; i0 < Q; i0 += kQueryRows) {
                const int64_t nr = std::min(kQueryRows, Q - i0);
                // A bias with strided rows (the pair's transpose) is packed for the block's rows.
                const float* brows = pb ? pb + h * bh + i0 * bq : nullptr;
                int64_t brs = bq;
                if (pb && bk != 1) {
                    for (int64_t r = 0; r < nr; ++r)
                        for (int64_t j = 0; j < K; ++j) bbuf[r * Kp + j] = brows[r * bq + j * bk];
                    brows = bbuf;
                    brs = Kp;
                }
                float mx[kQueryRows];
                logits_block(a, i0, nr, scale, brows, brs, add, qbuf, logits, mx);
                // Under fp32 the probabilities stay unnormalised and values_block scales each output row;
                // under bf16/tf32 they are normalised and rounded, as the GEMM operands they are.
                float inv[kQueryRows];
                for (int64_t r = 0; r < nr; ++r) {
                    float* row = logits + r * Kp;
                    inv[r] = 1.f / exp_sum_row(row, Kp, mx[r]);
                    if (bits) {
#pragma omp simd
                        for (int64_t j = 0; j < K; ++j) row[j] = round_mantissa(row[j] * inv[r], bits);
                        inv[r] = 1.f;
                    }
                }
                values_block(a, i0, nr, logits, inv);
            }
        }
        return;
    }
    // Other head widths: a GEMM pair per (batch, head) through the BLAS.
    Tensor logits_all = ws.alloc({nt, Q, K});
    float* lbase = logits_all.f32();
    const float *pq = q.f32(), *pk = k.f32(), *pv = v.f32();
    float* po = out.f32();
#pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < B * H; ++t) {
        const int64_t b = t / H, h = t % H;
        float* L = lbase + static_cast<int64_t>(omp_get_thread_num()) * Q * K;
        const float* qb = pq + b * q.stride(0) + h * q.stride(2);
        const float* kb = pk + b * k.stride(0) + h * k.stride(2);
        const float* vb = pv + b * v.stride(0) + h * v.stride(2);
        // logits = q k^T: k rows viewed as a column-major [C, K] operand.
        gemm_dispatch(qb, {true, q.stride(1)}, kb, {false, k.stride(1)}, L, K, Q, K, C, 1.f, 0.f);
        const float* mrow = pm ? pm + b * mb : nullptr;
        for (int64_t i = 0; i < Q; ++i)
            softmax_row(L + i * K, K, scale, mrow, mk, pb ? pb + h * bh + i * bq : nullptr, bk, inf);
        gemm_dispatch(L, {true, K}, vb, {true, v.stride(1)}, po + b * out.stride(0) + h * out.stride(2), out.stride(1),
                      Q, C, K, 1.f, 0.f);
    }
}

void softmax_backward(const Tensor& y, const Tensor& dy, float scale, const Tensor& dx) {
    const int64_t n = y.size(-1), rows = y.numel() / std::max<int64_t>(n, 1);
    const float *py = y.f32(), *pdy = dy.f32();
    float* pdx = dx.f32();
#pragma omp parallel for schedule(static) if (rows * n > 32768)
    for (int64_t r = 0; r < rows; ++r) {
        const float *yr = py + r * n, *gr = pdy + r * n;
        float* dr = pdx + r * n;
        float dot = 0.f;
#pragma omp simd reduction(+ : dot)
        for (int64_t k = 0; k < n; ++k) dot += yr[k] * gr[k];
#pragma omp simd
        for (int64_t k = 0; k < n; ++k) dr[k] = scale * yr[k] * (gr[k] - dot);
    }
}

namespace {
// One row of the layer norm's backward: dx, and the row's terms of dscale (ds) and doffset (db), added in.
// Two passes: the first gathers every row sum the gradient needs, over x shifted by its first element (so
// the variance is not a difference of large squares), the second writes dx and ds.
inline void layer_norm_backward_row(const float* __restrict x, const float* __restrict g, const float* __restrict dy,
                                    int64_t C, float eps, float* __restrict dx, float* __restrict ds,
                                    float* __restrict db) {
    const float rc = 1.f / static_cast<float>(C), x0 = x[0];
    float s1 = 0.f, s2 = 0.f, sg = 0.f, sgx = 0.f;  // sums of d, d^2, dy g, dy g d, with d = x - x0
#pragma omp simd reduction(+ : s1, s2, sg, sgx)
    for (int64_t c = 0; c < C; ++c) {
        const float d = x[c] - x0, gc = dy[c] * g[c];
        s1 += d;
        s2 += d * d;
        sg += gc;
        sgx += gc * d;
        db[c] += dy[c];
    }
    const float dmean = s1 * rc, var = s2 * rc - dmean * dmean;
    const float inv = 1.f / std::sqrt((var > 0.f ? var : 0.f) + eps), mean = x0 + dmean;
    // The mean of dy g xhat, from the sums: inv (sgx - dmean sg) / C.
    const float mg = sg * rc, mgx = inv * (sgx - dmean * sg) * rc;
#pragma omp simd
    for (int64_t c = 0; c < C; ++c) {
        const float xh = (x[c] - mean) * inv;
        ds[c] += dy[c] * xh;
        dx[c] = inv * (dy[c] * g[c] - mg - xh * mgx);
    }
}
}  // namespace

void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset) {
    const int64_t C = x.size(-1), rows = x.numel() / std::max<int64_t>(C, 1);
    const float *px = x.f32(), *g = scale.f32(), *pdy = dy.f32();
    float* pdx = dx.f32();
    const int nt = omp_get_max_threads();
    // Per-thread partial sums of dscale and doffset, reduced at the end (deterministic for a thread count).
    std::vector<float> part(static_cast<size_t>(nt) * 2 * C, 0.f);
#pragma omp parallel if (rows * C > 32768)
    {
        float* ds = part.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * C;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r)
            layer_norm_backward_row(px + r * C, g, pdy + r * C, C, eps, pdx + r * C, ds, ds + C);
    }
    float *ps = dscale.f32(), *pb = doffset.f32();
    for (int t = 0; t < nt; ++t)
        for (int64_t c = 0; c < C; ++c) {
            ps[c] += part[(static_cast<size_t>(t) * 2) * C + c];
            pb[c] += part[(static_cast<size_t>(t) * 2 + 1) * C + c];
        }
}

void sigmoid_mul_backward(const Tensor& x, const Tensor& gate, const Tensor& dy, const Tensor& dx,
                          const Tensor& dgate) {
    const int64_t n = x.numel();
    const float *px = x.f32(), *pg = gate.f32(), *pdy = dy.f32();
    float *pdx = dx.f32(), *pdg = dgate.f32();
#pragma omp parallel for simd schedule(static) if (parallel : n > 32768)
    for (int64_t i = 0; i < n; ++i) {
        const float s = fast_sigmoid(pg[i]), g = pdy[i];
        pdg[i] = g * px[i] * s * (1.f - s);
        pdx[i] = g * s;
    }
}

void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) {
    const int64_t n = y.numel();
    const float *py = y.f32(), *pdy = dy.f32();
    float* pdx = dx.f32();
#pragma omp parallel for simd schedule(static) if (parallel : n > 32768)
    for (int64_t i = 0; i < n; ++i) pdx[i] = py[i] > 0.f ? pdy[i] : 0.f;
}

namespace {

template <class F>
void unary_loop(float* __restrict p, int64_t n, int64_t stride, F f) {
    if (stride == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) p[i] = f(p[i]);
    } else {
        for (int64_t i = 0; i < n; ++i) p[i * stride] = f(p[i * stride]);
    }
}

template <class F>
void binary_loop(float* __restrict x, const float* __restrict y, int64_t n, int64_t xs, int64_t ys, F f) {
    if (xs == 1 && ys == 1) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) x[i] = f(x[i], y[i]);
    } else if (xs == 1 && ys == 0) {
        const float w = y[0];
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) x[i] = f(x[i], w);
    } else {
        for (int64_t i = 0; i < n; ++i) x[i * xs] = f(x[i * xs], y[i * ys]);
    }
}

template <class F>
void unary_apply(const Tensor& x, F f) {
    float* px = x.f32();
    if (x.is_contiguous()) {
        const int64_t n = x.numel(), block = 16384;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t b = 0; b < n; b += block) unary_loop(px + b, std::min(block, n - b), 1, f);
        return;
    }
    const int64_t C = x.size(-1), cs = x.stride(-1);
    const RowOffsets ox = row_offsets(x);
    const int64_t rows = ox.size();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) unary_loop(px + ox[r], C, cs, f);
}

template <class F>
void binary_apply(const Tensor& x, const Tensor& y, F f) {
    float* px = x.f32();
    const float* py = y.f32();
    if (x.is_contiguous() && y.is_contiguous()) {
        const int64_t n = x.numel(), block = 16384;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t b = 0; b < n; b += block) binary_loop(px + b, py + b, std::min(block, n - b), 1, 1, f);
        return;
    }
    const int64_t C = x.size(-1), xs = x.stride(-1), ys = y.stride(-1);
    const RowOffsets ox = row_offsets(x), oy = row_offsets(y);
    const int64_t rows = ox.size();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) binary_loop(px + ox[r], py + oy[r], C, xs, ys, f);
}

}  // namespace

void unary(const Tensor& x, Unary op, float s) {
    switch (op) {
        case Unary::Sigmoid:
            unary_apply(x, [](float e) { return fast_sigmoid(e); });
            break;
        case Unary::Relu:
            unary_apply(x, [](float e) { return e > 0.f ? e : 0.f; });
            break;
        case Unary::Scale:
            unary_apply(x, [s](float e) { return e * s; });
            break;
        case Unary::Fill:
            unary_apply(x, [s](float) { return s; });
            break;
    }
}

void binary(const Tensor& x, const Tensor& y, Binary op, float alpha) {
    switch (op) {
        case Binary::Add:
            binary_apply(x, y, [alpha](float a, float b) { return a + alpha * b; });
            break;
        case Binary::Mul:
            binary_apply(x, y, [](float a, float b) { return a * b; });
            break;
        case Binary::SigmoidMul:
            binary_apply(x, y, [](float a, float b) { return a * fast_sigmoid(b); });
            break;
        case Binary::DivEps:
            binary_apply(x, y, [alpha](float a, float b) { return a / (b + alpha); });
            break;
    }
}

void add_to_bf16(const Tensor& x, const Tensor& y, float alpha) {
    bf16_t* px = x.data<bf16_t>();
    const float* py = y.f32();
    const int64_t C = x.size(-1), xs = x.stride(-1), ys = y.stride(-1);
    const RowOffsets ox = row_offsets(x), oy = row_offsets(y);
    const int64_t rows = ox.size();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        bf16_t* xr = px + ox[r];
        const float* yr = py + oy[r];
        if (xs == 1 && ys == 1) {
#pragma omp simd
            for (int64_t c = 0; c < C; ++c) xr[c].bits = bf16_from_float(bf16_to_float(xr[c].bits) + alpha * yr[c]);
        } else {
            for (int64_t c = 0; c < C; ++c) {
                bf16_t& e = xr[c * xs];
                e.bits = bf16_from_float(bf16_to_float(e.bits) + alpha * yr[c * ys]);
            }
        }
    }
}

void convert(const Tensor& dst, const Tensor& src) {
    const int64_t C = dst.size(-1), ds = dst.stride(-1), ss = src.stride(-1);
    const RowOffsets od = row_offsets(dst), os = row_offsets(src);
    const int64_t rows = od.size();
    const bool to_bf16 = dst.dtype() == DType::BF16;
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; ++r) {
        if (to_bf16) {
            bf16_t* d = dst.data<bf16_t>() + od[r];
            const float* s = src.f32() + os[r];
            if (ds == 1 && ss == 1) {
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) d[c].bits = bf16_from_float(s[c]);
            } else {
                for (int64_t c = 0; c < C; ++c) d[c * ds].bits = bf16_from_float(s[c * ss]);
            }
        } else {
            float* d = dst.f32() + od[r];
            const bf16_t* s = src.data<bf16_t>() + os[r];
            if (ds == 1 && ss == 1) {
#pragma omp simd
                for (int64_t c = 0; c < C; ++c) d[c] = bf16_to_float(s[c].bits);
            } else {
                for (int64_t c = 0; c < C; ++c) d[c * ds] = bf16_to_float(s[c * ss].bits);
            }
        }
    }
}

void gather_rows(const Tensor& table, const Tensor& index, const Tensor& out, bool accumulate) {
    const int64_t M = out.size(0), C = out.size(1), V = table.size(0), os = out.stride(0);
    const int64_t* idx = index.data<int64_t>();
    for (int64_t m = 0; m < M; ++m)
        AXF_CHECK(idx[m] < V, "gather_rows: index %lld at row %lld is outside a table of %lld rows", (long long)idx[m],
                  (long long)m, (long long)V);
    const float* pt = table.f32();
    float* po = out.f32();
#pragma omp parallel for schedule(static) if (M * C > 65536)
    for (int64_t m = 0; m < M; ++m) {
        float* o = po + m * os;
        if (idx[m] < 0) {
            if (!accumulate) std::fill(o, o + C, 0.f);
            continue;
        }
        const float* t = pt + idx[m] * C;
        for (int64_t c = 0; c < C; ++c) o[c] = accumulate ? o[c] + t[c] : t[c];
    }
}

void apply_frames(const Tensor& rot, const Tensor& trans, const Tensor& x, const Tensor& y, bool inverse,
                  const Tensor& norms, float eps) {
    const int64_t N = x.size(0), K = x.size(1);
    const float *R = rot.f32(), *T = trans.f32(), *px = x.f32();
    float* py = y.f32();
    float* pn = norms.defined() ? norms.f32() : nullptr;
#pragma omp parallel for schedule(static) if (N * K > 16384)
    for (int64_t n = 0; n < N; ++n) {
        const float* r = R + n * 9;
        const float* t = T + n * 3;
        for (int64_t k = 0; k < K; ++k) {
            const float* xi = px + n * x.stride(0) + k * x.stride(1);
            const float x0 = xi[0], x1 = xi[x.stride(2)], x2 = xi[2 * x.stride(2)];
            float v[3];
            if (inverse) {
                const float e0 = x0 - t[0], e1 = x1 - t[1], e2 = x2 - t[2];
                for (int a = 0; a < 3; ++a) v[a] = r[0 * 3 + a] * e0 + r[1 * 3 + a] * e1 + r[2 * 3 + a] * e2;
            } else {
                for (int d = 0; d < 3; ++d) v[d] = r[d * 3 + 0] * x0 + r[d * 3 + 1] * x1 + r[d * 3 + 2] * x2 + t[d];
            }
            float* yi = py + n * y.stride(0) + k * y.stride(1);
            for (int d = 0; d < 3; ++d) yi[d * y.stride(2)] = v[d];
            if (pn)
                pn[n * norms.stride(0) + k * norms.stride(1)] =
                    std::sqrt(eps + v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
        }
    }
}

void weighted_sq_distances(const Tensor& a, const Tensor& c, const Tensor& weight, const Tensor& out) {
    const int64_t B = a.size(0), I = a.size(1), J = c.size(1), D = a.size(2);
    const float *pa = a.f32(), *pc = c.f32(), *pw = weight.f32();
    float* po = out.f32();
#pragma omp parallel for collapse(2) schedule(static) if (B * I * J > 16384)
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < I; ++i) {
            const float* ai = pa + b * a.stride(0) + i * a.stride(1);
            float* o = po + b * out.stride(0) + i * out.stride(1);
            for (int64_t j = 0; j < J; ++j) {
                const float* cj = pc + b * c.stride(0) + j * c.stride(1);
                float d2 = 0.f;
                for (int64_t d = 0; d < D; ++d) {
                    const float e = ai[d] - cj[d];
                    d2 += e * e;
                }
                o[j] = pw[b] * d2;
            }
        }
}

void add_transpose(const Tensor& x) {
    const int64_t N = x.size(0), C = x.size(2);
    float* p = x.f32();
#pragma omp parallel for schedule(dynamic, 8) if (N * N * C > 65536)
    for (int64_t i = 0; i < N; ++i) {
        for (int64_t c = 0; c < C; ++c) p[(i * N + i) * C + c] *= 2.f;
        for (int64_t j = i + 1; j < N; ++j)
            for (int64_t c = 0; c < C; ++c) {
                const float s = p[(i * N + j) * C + c] + p[(j * N + i) * C + c];
                p[(i * N + j) * C + c] = s;
                p[(j * N + i) * C + c] = s;
            }
    }
}

void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamCoefficients& c) {
    float *pp = p.f32(), *mp = m.f32(), *vp = v.f32();
    const float* gp = g.f32();
    const int64_t n = p.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t e = 0; e < n; ++e) {
        const double ge = c.grad_scale * gp[e];
        const double me = c.beta1 * mp[e] + (1 - c.beta1) * ge, ve = c.beta2 * vp[e] + (1 - c.beta2) * ge * ge;
        mp[e] = static_cast<float>(me);
        vp[e] = static_cast<float>(ve);
        pp[e] = static_cast<float>(pp[e] - c.lr * (me / c.bias1) / (std::sqrt(ve / c.bias2) + c.eps));
    }
}

void moving_average_update(const Tensor& ema, const Tensor& p, double decay) {
    float* e = ema.f32();
    const float* pp = p.f32();
    const int64_t n = ema.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t k = 0; k < n; ++k) e[k] = static_cast<float>(decay * e[k] + (1 - decay) * pp[k]);
}

double sum_of_squares(const Tensor& x) {
    // Blocks of a fixed size summed in order, each block in order: the same sum for any thread count.
    constexpr int64_t kBlock = 1 << 16;
    const float* p = x.f32();
    const int64_t n = x.numel(), blocks = (n + kBlock - 1) / kBlock;
    std::vector<double> part(static_cast<size_t>(blocks));
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
        double s = 0;
        for (int64_t i = b * kBlock; i < std::min(n, (b + 1) * kBlock); ++i) s += static_cast<double>(p[i]) * p[i];
        part[static_cast<size_t>(b)] = s;
    }
    double s = 0;
    for (double v : part) s += v;
    return s;
}

}  // namespace axfold::cpu

