// Fused layer norm and softmax (scale, additive bias, mask) kernels over the last dim. Rows are
// contiguous in the last dim (mask and bias rows may have any last-dim stride, 0 for broadcast); row
// starts come from a StridedIndex over the leading dims, so strided and broadcast views work as on the
// CPU. The row lives in registers: a warp per row up to 1024 elements, a block of 256 threads per row up to
// 8192, each thread holding chunks of 4 consecutive elements (16-byte loads) when every row is 16-byte
// aligned and the length a multiple of 4, single elements otherwise. Longer rows take a block-per-row loop
// over memory. Layer norm also has the channel-major [M, C] path (stride(0) == 1) that triangle
// multiplication uses.
//
// Numerics mirror kernels/cpu: fp32 throughout, IEEE expf / sqrtf / division (no fast-math), logits
// formed as scale * x + bias + inf * (mask - 1).
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;    // warp-per-row kernels: 256 threads
constexpr int kRowThreads = 256;     // block-per-row kernels
constexpr int kMaxWarpRow = 1024;    // longest row handled by one warp (32 values per lane)
constexpr int kMaxRegRow = 8192;     // longest row held in registers (a block of 256, 32 values per thread)

// --- rows held in registers ----------------------------------------------------------------------------
// kThreads threads per row: 32 (a warp; kWarpsPerBlock rows per block) or kRowThreads (a block per row).
// Thread t holds kChunks chunks of kVec consecutive elements; chunk j starts at element kVec * (t + kThreads * j),
// so each chunk index is one coalesced sweep over the row.

template <int kThreads> __device__ __forceinline__ int64_t row_index() {
    if constexpr (kThreads == 32)
        return static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    else
        return blockIdx.x;
}
template <int kThreads> __device__ __forceinline__ int row_thread() {
    return kThreads == 32 ? static_cast<int>(threadIdx.x & 31) : static_cast<int>(threadIdx.x);
}
template <int kThreads> __device__ __forceinline__ float row_sum(float v, float* scratch) {
    if constexpr (kThreads == 32) return warp_sum(v); else return block_sum(v, scratch);
}
template <int kThreads> __device__ __forceinline__ float row_max(float v, float* scratch) {
    if constexpr (kThreads == 32) return warp_max(v); else return block_max(v, scratch);
}

// kVec elements at p[k0 ...] (kVec == 4: one 16-byte load, or 8 bytes for bfloat16, the caller having checked
// alignment and a unit stride) or the one element p[k0 * stride].
template <int kVec> __device__ __forceinline__ void load_chunk(const float* p, int64_t k0, int64_t stride, float* v) {
    if constexpr (kVec == 4) {
        const float4 q = *reinterpret_cast<const float4*>(p + k0);
        v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
        v[0] = p[k0 * stride];
    }
}
template <int kVec> __device__ __forceinline__ void load_chunk(const bf16_t* p, int64_t k0, int64_t stride, float* v) {
    if constexpr (kVec == 4) {
        const uint2 q = *reinterpret_cast<const uint2*>(p + k0);
        v[0] = __uint_as_float(q.x << 16), v[1] = __uint_as_float(q.x & 0xffff0000u);
        v[2] = __uint_as_float(q.y << 16), v[3] = __uint_as_float(q.y & 0xffff0000u);
    } else {
        v[0] = load_f32(p + k0 * stride);
    }
}
template <int kVec> __device__ __forceinline__ void store_chunk(float* p, int64_t k0, const float* v) {
    if constexpr (kVec == 4)
        *reinterpret_cast<float4*>(p + k0) = make_float4(v[0], v[1], v[2], v[3]);
    else
        p[k0] = v[0];
}

// Layer norm of rows held in registers; operand 0 is x, 1 is y (in place allowed: each thread stores only
// what it loaded).
template <int kThreads, int kVec, int kChunks, class T>
__global__ void __launch_bounds__(256) layer_norm_rows(const T* x, float* y, const float* g, const float* b,
                                                       StridedIndex<2> ix, int64_t rows, int C, float eps) {
    __shared__ float scratch[32];
    const int64_t r = row_index<kThreads>();
    if (r >= rows) return;  // warp-uniform; never taken by a block per row
    const int t = row_thread<kThreads>();
    int64_t off[2];
    ix.offsets(r, off);
    const T* xr = x + off[0];
    float* yr = y + off[1];
    float v[kChunks][kVec];
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
        if (k0 < C) {
            load_chunk<kVec>(xr, k0, 1, v[j]);
        } else {
#pragma unroll
            for (int e = 0; e < kVec; ++e) v[j][e] = 0.f;
        }
#pragma unroll
        for (int e = 0; e < kVec; ++e) s += v[j][e];
    }
    const float mean = row_sum<kThreads>(s, scratch) / static_cast<float>(C);
    float q = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
            const float d = k0 < C ? v[j][e] - mean : 0.f;
            q += d * d;
        }
    }
    const float inv = 1.f / sqrtf(row_sum<kThreads>(q, scratch) / static_cast<float>(C) + eps);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
        if (k0 >= C) continue;
        float gv[kVec], bv[kVec], o[kVec];
        load_chunk<kVec>(g, k0, 1, gv);
        load_chunk<kVec>(b, k0, 1, bv);
#pragma unroll
        for (int e = 0; e < kVec; ++e) o[e] = (v[j][e] - mean) * inv * gv[e] + bv[e];
        store_chunk<kVec>(yr, k0, o);
    }
}

// The register layout of a row of n elements: threads per row, elements per chunk, chunks per thread (a power
// of two). False when the row is too long for registers.
struct RowLayout {
    int threads, vec, chunks;
};
bool row_layout(int64_t n, bool vec4, RowLayout& l) {
    if (n > kMaxRegRow) return false;
    l.threads = n <= kMaxWarpRow ? 32 : kRowThreads;
    l.vec = vec4 ? 4 : 1;
    const int64_t per = (n + l.threads * l.vec - 1) / (l.threads * l.vec);
    l.chunks = 1;
    while (l.chunks < per) l.chunks *= 2;
    return true;
}
unsigned row_grid(const RowLayout& l, int64_t rows) {
    return static_cast<unsigned>(l.threads == 32 ? (rows + kWarpsPerBlock - 1) / kWarpsPerBlock : rows);
}
template <int V> using Int = std::integral_constant<int, V>;
// Calls f(Int<threads>, Int<vec>, Int<chunks>) with the layout as compile-time constants.
template <class F, class Th, class V> void with_chunks(int chunks, F& f, Th threads, V vec) {
    switch (chunks) {
        case 1: f(threads, vec, Int<1>{}); break;
        case 2: f(threads, vec, Int<2>{}); break;
        case 4: f(threads, vec, Int<4>{}); break;
        case 8: f(threads, vec, Int<8>{}); break;
        case 16: f(threads, vec, Int<16>{}); break;
        default: f(threads, vec, Int<32>{}); break;
    }
}
// Calls f(Int<threads>, Int<vec>, Int<chunks>) with the layout as compile-time constants.
template <class F> void with_layout(const RowLayout& l, F&& f) {
    if (l.threads == 32) {
        if (l.vec == 4) with_chunks(l.chunks, f, Int<32>{}, Int<4>{}); else with_chunks(l.chunks, f, Int<32>{}, Int<1>{});
    } else {
        if (l.vec == 4)
            with_chunks(l.chunks, f, Int<kRowThreads>{}, Int<4>{});
        else
            with_chunks(l.chunks, f, Int<kRowThreads>{}, Int<1>{});
    }
}

// Every row of t (its last dim) can be read in aligned chunks of 4: unit last-dim stride, a length that is a
// multiple of 4, a base aligned to 4 elements and leading strides that are multiples of 4. Undefined: true.
bool rows_vec4(const Tensor& t) {
    if (!t.defined()) return true;
    if (t.size(-1) % 4 != 0 || (t.size(-1) > 1 && t.stride(-1) != 1)) return false;
    if (reinterpret_cast<uintptr_t>(t.raw()) % (4 * dtype_size(t.dtype())) != 0) return false;
    for (int d = 0; d + 1 < t.dim(); ++d)
        if (t.size(d) > 1 && t.stride(d) % 4 != 0) return false;
    return true;
}

// One block per row, any C. In place (y == x) is safe: the last pass reads and writes the same element
// in the same thread, after the barriers inside block_sum.
template <class T>
__global__ void layer_norm_block(const T* x, float* y, const float* g, const float* b, StridedIndex<2> ix,
                                 int64_t C, float eps) {
    __shared__ float scratch[32];
    int64_t off[2];
    ix.offsets(blockIdx.x, off);
    const T* xr = x + off[0];
    float* yr = y + off[1];
    float s = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += load_f32(xr + c);
    const float mean = block_sum(s, scratch) / static_cast<float>(C);
    float q = 0.f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        const float d = load_f32(xr + c) - mean;
        q += d * d;
    }
    const float inv = 1.f / sqrtf(block_sum(q, scratch) / static_cast<float>(C) + eps);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yr[c] = (load_f32(xr + c) - mean) * inv * g[c] + b[c];
}

// [M, C] views of channel-major memory: element (m, c) at m + c * xs. One thread per m, so every channel
// pass reads consecutive m across a warp (coalesced).
template <class T>
__global__ void layer_norm_channels_major(const T* x, int64_t xs, float* y, int64_t ys, const float* g,
                                          const float* b, int64_t M, int64_t C, float eps) {
    const int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (m >= M) return;
    float mean = 0.f;
    for (int64_t c = 0; c < C; ++c) mean += load_f32(x + c * xs + m);
    mean /= static_cast<float>(C);
    float var = 0.f;
    for (int64_t c = 0; c < C; ++c) {
        const float d = load_f32(x + c * xs + m) - mean;
        var += d * d;
    }
    const float inv = 1.f / sqrtf(var / static_cast<float>(C) + eps);
    for (int64_t c = 0; c < C; ++c) y[c * ys + m] = (load_f32(x + c * xs + m) - mean) * inv * g[c] + b[c];
}

// --- softmax -----------------------------------------------------------------------------------------

struct SoftmaxArgs {
    float* x;
    const float* mask;  // nullptr when absent
    const float* bias;  // nullptr when absent
    int64_t ms, bs;     // last-dim strides of mask and bias
    int64_t rows, n;
    float scale, inf;
    StridedIndex<3> ix;  // operands: x, mask, bias
};

// scale * x + bias + inf * (mask - 1) for one element (bias and mask used where present). Explicit rounding
// (no FMA contraction), in the CPU's order: a logit next to -inf (1e9, ulp 64) must round identically on both
// backends, or fully masked rows would differ by factors of e^64.
__device__ __forceinline__ float softmax_logit(const SoftmaxArgs& a, float x, bool has_bias, float bias, bool has_mask,
                                               float mask) {
    float t = __fmul_rn(a.scale, x);
    if (has_bias) t = __fadd_rn(t, bias);
    if (has_mask) t = __fadd_rn(t, __fmul_rn(a.inf, mask - 1.f));
    return t;
}

// Softmax of rows held in registers (the layout above); the logits are formed once.
template <int kThreads, int kVec, int kChunks> __global__ void __launch_bounds__(256) softmax_rows(SoftmaxArgs a) {
    __shared__ float scratch[32];
    const int64_t r = row_index<kThreads>();
    if (r >= a.rows) return;  // warp-uniform; never taken by a block per row
    const int t = row_thread<kThreads>();
    int64_t off[3];
    a.ix.offsets(r, off);
    float* xr = a.x + off[0];
    const float* mr = a.mask ? a.mask + off[1] : nullptr;
    const float* br = a.bias ? a.bias + off[2] : nullptr;
    const int n = static_cast<int>(a.n);
    float v[kChunks][kVec];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
        if (k0 < n) {
            float bv[kVec], mv[kVec];
            load_chunk<kVec>(xr, k0, 1, v[j]);
            if (br) load_chunk<kVec>(br, k0, a.bs, bv);
            if (mr) load_chunk<kVec>(mr, k0, a.ms, mv);
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
                v[j][e] = softmax_logit(a, v[j][e], br, bv[e], mr, mv[e]);
                mx = fmaxf(mx, v[j][e]);
            }
        } else {
#pragma unroll
            for (int e = 0; e < kVec; ++e) v[j][e] = -INFINITY;
        }
    }
    mx = row_max<kThreads>(mx, scratch);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
            v[j][e] = k0 < n ? expf(v[j][e] - mx) : 0.f;
            s += v[j][e];
        }
    }
    const float inv = 1.f / row_sum<kThreads>(s, scratch);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
        if (k0 >= n) continue;
#pragma unroll
        for (int e = 0; e < kVec; ++e) v[j][e] *= inv;
        store_chunk<kVec>(xr, k0, v[j]);
    }
}

// One block per row, any n: logits written back to x, then exp and normalise in place, with float4
// accesses when the row is 16-byte aligned and n % 4 == 0 (decided per row, uniform over the block).
__global__ void softmax_block(SoftmaxArgs a) {
    __shared__ float scratch[32];
    int64_t off[3];
    a.ix.offsets(blockIdx.x, off);
    float* xr = a.x + off[0];
    const float* mr = a.mask ? a.mask + off[1] : nullptr;
    const float* br = a.bias ? a.bias + off[2] : nullptr;
    const int64_t n = a.n;
    float mx = -INFINITY;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
        const float t = softmax_logit(a, xr[k], br, br ? br[k * a.bs] : 0.f, mr, mr ? mr[k * a.ms] : 0.f);
        xr[k] = t;
        mx = fmaxf(mx, t);
    }
    mx = block_max(mx, scratch);  // its barriers publish the logits to the whole block
    const bool vec = (reinterpret_cast<uintptr_t>(xr) & 15u) == 0 && (n & 3) == 0;
    float s = 0.f;
    if (vec) {
        float4* x4 = reinterpret_cast<float4*>(xr);
        for (int64_t k = threadIdx.x; k < n / 4; k += blockDim.x) {
            float4 e = x4[k];
            e.x = expf(e.x - mx);
            e.y = expf(e.y - mx);
            e.z = expf(e.z - mx);
            e.w = expf(e.w - mx);
            x4[k] = e;
            s += (e.x + e.y) + (e.z + e.w);
        }
    } else {
        for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
            const float e = expf(xr[k] - mx);
            xr[k] = e;
            s += e;
        }
    }
    const float inv = 1.f / block_sum(s, scratch);
    if (vec) {
        float4* x4 = reinterpret_cast<float4*>(xr);
        for (int64_t k = threadIdx.x; k < n / 4; k += blockDim.x) {
            float4 e = x4[k];
            e.x *= inv;
            e.y *= inv;
            e.z *= inv;
            e.w *= inv;
            x4[k] = e;
        }
    } else {
        for (int64_t k = threadIdx.x; k < n; k += blockDim.x) xr[k] *= inv;
    }
}

unsigned warp_grid(int64_t rows) { return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

}  // namespace

namespace {
// x float32 or bfloat16 (a stored activation); y float32.
template <class T>
void layer_norm_typed(const T* px, const Tensor& x, const Tensor& scale, const Tensor& offset, float eps,
                      const Tensor& y) {
    const int64_t C = x.size(-1);
    // Same condition as the CPU backend's channel-major path.
    if (x.dim() == 2 && x.stride(0) == 1 && y.stride(0) == 1 && x.size(1) > 1) {
        const int64_t M = x.size(0);
        constexpr int threads = 256;
        const unsigned blocks = static_cast<unsigned>((M + threads - 1) / threads);
        layer_norm_channels_major<T><<<blocks, threads>>>(px, x.stride(1), y.f32(), y.stride(1), scale.f32(),
                                                          offset.f32(), M, C, eps);
        AXF_CUDA_LAUNCH();
        return;
    }
    const StridedIndex<2> ix = make_index<2>(x.shape(), {&x.strides(), &y.strides()}, x.dim() - 1);
    const int64_t rows = leading_rows(x);
    AXF_CHECK(rows <= INT32_MAX, "layer_norm: %lld rows exceed the CUDA grid", (long long)rows);
    RowLayout l;
    const bool vec4 = rows_vec4(x) && rows_vec4(y) && rows_vec4(scale) && rows_vec4(offset);
    if (row_layout(C, vec4, l)) {
        with_layout(l, [&](auto threads, auto vec, auto chunks) {
            layer_norm_rows<decltype(threads)::value, decltype(vec)::value, decltype(chunks)::value, T>
                <<<row_grid(l, rows), 256>>>(px, y.f32(), scale.f32(), offset.f32(), ix, rows, static_cast<int>(C), eps);
        });
    } else {
        layer_norm_block<T><<<static_cast<unsigned>(rows), kRowThreads>>>(px, y.f32(), scale.f32(), offset.f32(), ix,
                                                                           C, eps);
    }
    AXF_CUDA_LAUNCH();
}
}  // namespace

void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y) {
    if (x.numel() == 0) return;
    AXF_CHECK(scale.is_contiguous() && offset.is_contiguous(), "layer_norm: scale %s and offset %s must be contiguous",
              scale.desc().c_str(), offset.desc().c_str());
    if (x.dtype() == DType::BF16)
        layer_norm_typed(x.data<bf16_t>(), x, scale, offset, eps, y);
    else
        layer_norm_typed(x.f32(), x, scale, offset, eps, y);
}

void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf) {
    if (x.numel() == 0) return;
    SoftmaxArgs a;
    a.x = x.f32();
    a.mask = mask.defined() ? mask.f32() : nullptr;
    a.bias = bias.defined() ? bias.f32() : nullptr;
    a.ms = mask.defined() ? mask.stride(-1) : 0;
    a.bs = bias.defined() ? bias.stride(-1) : 0;
    a.rows = leading_rows(x);
    a.n = x.size(-1);
    a.scale = scale;
    a.inf = inf;
    // Absent operands walk x's strides; their pointers are null so the offsets are never used.
    a.ix = make_index<3>(x.shape(),
                         {&x.strides(), mask.defined() ? &mask.strides() : &x.strides(),
                          bias.defined() ? &bias.strides() : &x.strides()},
                         x.dim() - 1);
    AXF_CHECK(a.rows <= INT32_MAX, "softmax: %lld rows exceed the CUDA grid", (long long)a.rows);
    RowLayout l;
    const bool vec4 = rows_vec4(x) && (!mask.defined() || (a.ms == 1 && rows_vec4(mask))) &&
                      (!bias.defined() || (a.bs == 1 && rows_vec4(bias)));
    if (row_layout(a.n, vec4, l)) {
        with_layout(l, [&](auto threads, auto vec, auto chunks) {
            softmax_rows<decltype(threads)::value, decltype(vec)::value, decltype(chunks)::value>
                <<<row_grid(l, a.rows), 256>>>(a);
        });
    } else {
        softmax_block<<<static_cast<unsigned>(a.rows), kRowThreads>>>(a);
    }
    AXF_CUDA_LAUNCH();
}

// --- backward (training) ---------------------------------------------------------------------------------
// Contiguous rows (ops.cpp checks). One warp per row, lanes striding over the row, so any row length works;
// dx may alias dy (each element is read before it is written, by the same lane).

namespace {

// Rows up to kMaxRegRow held in registers (the forward's layout; contiguous rows); longer rows loop over
// memory with a warp per row.
template <int kThreads, int kVec, int kChunks>
__global__ void __launch_bounds__(256) softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows,
                                                             int n, float scale) {
    __shared__ float scratch[32];
    const int64_t r = row_index<kThreads>();
    if (r >= rows) return;
    const int t = row_thread<kThreads>();
    const float* yr = y + r * n;
    const float* gr = dy + r * n;
    float* dr = dx + r * n;
    float yv[kChunks][kVec], gv[kChunks][kVec];
    float dot = 0.f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
        if (k0 >= n) continue;
        load_chunk<kVec>(yr, k0, 1, yv[j]);
        load_chunk<kVec>(gr, k0, 1, gv[j]);
#pragma unroll
        for (int e = 0; e < kVec; ++e) dot += yv[j][e] * gv[j][e];
    }
    dot = row_sum<kThreads>(dot, scratch);
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (t + kThreads * j);
        if (k0 >= n) continue;
        float o[kVec];
#pragma unroll
        for (int e = 0; e < kVec; ++e) o[e] = scale * yv[j][e] * (gv[j][e] - dot);
        store_chunk<kVec>(dr, k0, o);
    }
}

__global__ void softmax_backward_warp(const float* y, const float* dy, float* dx, int64_t rows, int64_t n,
                                      float scale) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;  // warp-uniform
    const float* yr = y + r * n;
    const float* gr = dy + r * n;
    float* dr = dx + r * n;
    float dot = 0.f;
    for (int64_t k = lane; k < n; k += 32) dot += yr[k] * gr[k];
    dot = warp_sum(dot);
    for (int64_t k = lane; k < n; k += 32) dr[k] = scale * yr[k] * (gr[k] - dot);
}

// Layer norm backward for C <= kMaxWarpRow in one pass: a warp per row (rows grid-strided over the warps of
// the grid), x and dy read once into registers, dx written, and each lane's dscale/doffset partial sums
// kept in registers, then added into the block's shared sums and from there into dscale/doffset.
template <int kVec, int kChunks>
__global__ void __launch_bounds__(256) layer_norm_backward_rows(const float* x, const float* g, const float* dy,
                                                                float* dx, float* dscale, float* doffset,
                                                                int64_t rows, int C, float eps) {
    extern __shared__ float part[];  // [2, C]: the block's dscale and doffset
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) part[c] = 0.f;
    __syncthreads();
    const int lane = threadIdx.x & 31;
    float ds[kChunks][kVec] = {}, db[kChunks][kVec] = {};
    for (int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32; r < rows;
         r += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
        const float* xr = x + r * C;
        const float* gr = dy + r * C;
        float* dr = dx + r * C;
        float xv[kChunks][kVec], gv[kChunks][kVec];
        float s = 0.f;
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
            const int k0 = kVec * (lane + 32 * j);
            if (k0 < C) {
                load_chunk<kVec>(xr, k0, 1, xv[j]);
                load_chunk<kVec>(gr, k0, 1, gv[j]);
            } else {
#pragma unroll
                for (int e = 0; e < kVec; ++e) xv[j][e] = gv[j][e] = 0.f;
            }
#pragma unroll
            for (int e = 0; e < kVec; ++e) s += xv[j][e];
        }
        const float mean = warp_sum(s) / static_cast<float>(C);
        float q = 0.f;
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
            const int k0 = kVec * (lane + 32 * j);
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
                const float d = k0 < C ? xv[j][e] - mean : 0.f;
                q += d * d;
            }
        }
        const float inv = 1.f / sqrtf(warp_sum(q) / static_cast<float>(C) + eps);
        float sg = 0.f, sgx = 0.f;
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
            const int k0 = kVec * (lane + 32 * j);
            if (k0 >= C) continue;
            float gw[kVec];
            load_chunk<kVec>(g, k0, 1, gw);
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
                xv[j][e] = (xv[j][e] - mean) * inv;  // x-hat from here on
                const float gc = gv[j][e] * gw[e];
                sg += gc;
                sgx += gc * xv[j][e];
                ds[j][e] += gv[j][e] * xv[j][e];
                db[j][e] += gv[j][e];
                gv[j][e] = gc;  // dy * scale from here on
            }
        }
        sg = warp_sum(sg) / static_cast<float>(C);
        sgx = warp_sum(sgx) / static_cast<float>(C);
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
            const int k0 = kVec * (lane + 32 * j);
            if (k0 >= C) continue;
            float o[kVec];
#pragma unroll
            for (int e = 0; e < kVec; ++e) o[e] = inv * (gv[j][e] - sg - xv[j][e] * sgx);
            store_chunk<kVec>(dr, k0, o);
        }
    }
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
        const int k0 = kVec * (lane + 32 * j);
        if (k0 >= C) continue;
#pragma unroll
        for (int e = 0; e < kVec; ++e) {
            atomicAdd(part + k0 + e, ds[j][e]);
            atomicAdd(part + C + k0 + e, db[j][e]);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        atomicAdd(dscale + c, part[c]);
        atomicAdd(doffset + c, part[C + c]);
    }
}

// The row's mean and 1/std into stats[2 * r] (read by the parameter and dx kernels).
__global__ void layer_norm_row_stats(const float* x, float* stats, int64_t rows, int64_t C, float eps) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const float* xr = x + r * C;
    float s = 0.f;
    for (int64_t c = lane; c < C; c += 32) s += xr[c];
    const float mean = warp_sum(s) / static_cast<float>(C);
    float q = 0.f;
    for (int64_t c = lane; c < C; c += 32) q += (xr[c] - mean) * (xr[c] - mean);
    const float inv = 1.f / sqrtf(warp_sum(q) / static_cast<float>(C) + eps);
    if (lane == 0) {
        stats[2 * r] = mean;
        stats[2 * r + 1] = inv;
    }
}

// dx for each row from the stats. Runs after the parameter kernel, because dx may alias dy.
__global__ void layer_norm_backward_dx(const float* x, const float* g, const float* dy, float* dx,
                                       const float* stats, int64_t rows, int64_t C) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const float* xr = x + r * C;
    const float* gr = dy + r * C;
    float* dr = dx + r * C;
    const float mean = stats[2 * r], inv = stats[2 * r + 1];
    float sg = 0.f, sgx = 0.f;
    for (int64_t c = lane; c < C; c += 32) {
        const float gc = gr[c] * g[c];
        sg += gc;
        sgx += gc * (xr[c] - mean) * inv;
    }
    sg = warp_sum(sg) / static_cast<float>(C);
    sgx = warp_sum(sgx) / static_cast<float>(C);
    for (int64_t c = lane; c < C; c += 32) dr[c] = inv * (gr[c] * g[c] - sg - (xr[c] - mean) * inv * sgx);
}

// dscale[c] += sum_r dy[r,c] xhat[r,c], doffset[c] += sum_r dy[r,c]: a thread per channel (coalesced along a
// row), blockIdx.y picks a slice of kRowsPerSlice rows, slices meet by atomicAdd.
constexpr int64_t kRowsPerSlice = 256;
__global__ void layer_norm_backward_params(const float* x, const float* dy, const float* stats, float* dscale,
                                           float* doffset, int64_t rows, int64_t C) {
    const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kRowsPerSlice;
    const int64_t r1 = r0 + kRowsPerSlice < rows ? r0 + kRowsPerSlice : rows;
    float ds = 0.f, db = 0.f;
    for (int64_t r = r0; r < r1; ++r) {
        const float g = dy[r * C + c];
        ds += g * (x[r * C + c] - stats[2 * r]) * stats[2 * r + 1];
        db += g;
    }
    atomicAdd(dscale + c, ds);
    atomicAdd(doffset + c, db);
}

}  // namespace

void softmax_backward(const Tensor& y, const Tensor& dy, float scale, const Tensor& dx) {
    const int64_t n = y.size(-1), rows = y.numel() / n;
    RowLayout l;
    if (row_layout(n, rows_vec4(y) && rows_vec4(dy) && rows_vec4(dx), l)) {
        AXF_CHECK(rows <= INT32_MAX, "softmax_backward: %lld rows exceed the CUDA grid", (long long)rows);
        with_layout(l, [&](auto threads, auto vec, auto chunks) {
            softmax_backward_rows<decltype(threads)::value, decltype(vec)::value, decltype(chunks)::value>
                <<<row_grid(l, rows), 256>>>(y.f32(), dy.f32(), dx.f32(), rows, static_cast<int>(n), scale);
        });
    } else {
        softmax_backward_warp<<<warp_grid(rows), kWarpsPerBlock * 32>>>(y.f32(), dy.f32(), dx.f32(), rows, n, scale);
    }
    AXF_CUDA_LAUNCH();
}

void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset) {
    const int64_t C = x.size(-1), rows = x.numel() / C;
    RowLayout l;
    if (C <= kMaxWarpRow && row_layout(C, rows_vec4(x) && rows_vec4(dy) && rows_vec4(dx) && rows_vec4(scale), l)) {
        // Enough blocks to fill the device a few times over; each warp then walks many rows, so the
        // parameter sums meet in few atomics.
        static const int sms = multiprocessor_count();
        const int64_t blocks = std::min<int64_t>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock, 4 * int64_t{sms});
        const size_t shared = 2 * static_cast<size_t>(C) * sizeof(float);
        with_layout(l, [&](auto, auto vec, auto chunks) {
            layer_norm_backward_rows<decltype(vec)::value, decltype(chunks)::value>
                <<<static_cast<unsigned>(std::max<int64_t>(blocks, 1)), 256, shared>>>(
                    x.f32(), scale.f32(), dy.f32(), dx.f32(), dscale.f32(), doffset.f32(), rows, static_cast<int>(C),
                    eps);
        });
        AXF_CUDA_LAUNCH();
        return;
    }
    const int64_t slices = (rows + kRowsPerSlice - 1) / kRowsPerSlice;
    AXF_CHECK(slices <= 65535, "layer_norm_backward: %lld rows exceed the CUDA grid's y limit", (long long)rows);
    Tensor stats = Tensor::empty({rows, 2}, DType::F32, Device::CUDA);  // from the pool
    layer_norm_row_stats<<<warp_grid(rows), kWarpsPerBlock * 32>>>(x.f32(), stats.f32(), rows, C, eps);
    AXF_CUDA_LAUNCH();
    // Parameter gradients read dy, so they run before dx (which may overwrite it).
    const dim3 grid(static_cast<unsigned>((C + 255) / 256), static_cast<unsigned>(slices));
    layer_norm_backward_params<<<grid, 256>>>(x.f32(), dy.f32(), stats.f32(), dscale.f32(), doffset.f32(), rows, C);
    AXF_CUDA_LAUNCH();
    layer_norm_backward_dx<<<warp_grid(rows), kWarpsPerBlock * 32>>>(x.f32(), scale.f32(), dy.f32(), dx.f32(),
                                                                     stats.f32(), rows, C);
    AXF_CUDA_LAUNCH();
}

}  // namespace axfold::cuda
