// Fused layer norm and softmax (scale, additive bias, mask) kernels over the last dim. Rows are
// contiguous in the last dim (mask and bias rows may have any last-dim stride, 0 for broadcast); row
// starts come from a StridedIndex over the leading dims, so strided and broadcast views work as on the
// CPU. Warp per row up to 1024 elements (the row lives in registers), block per row beyond. Layer norm
// also has the channel-major [M, C] path (stride(0) == 1) that triangle multiplication uses.
//
// Numerics mirror kernels/cpu: fp32 throughout, IEEE expf / sqrtf / division (no fast-math), logits
// formed as scale * x + bias + inf * (mask - 1).
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;    // warp-per-row kernels: 256 threads
constexpr int kRowThreads = 256;     // block-per-row kernels
constexpr int kMaxWarpRow = 1024;    // longest row handled by one warp (32 values per lane)

// --- layer norm ----------------------------------------------------------------------------------------

// One warp per row of C <= 32 * kPerLane channels; operand 0 is x, 1 is y.
template <int kPerLane, class T>
__global__ void layer_norm_warp(const T* x, float* y, const float* g, const float* b, StridedIndex<2> ix,
                                int64_t rows, int C, float eps) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;  // warp-uniform
    int64_t off[2];
    ix.offsets(r, off);
    const T* xr = x + off[0];
    float* yr = y + off[1];
    float v[kPerLane];
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int c = lane + 32 * j;
        v[j] = c < C ? load_f32(xr + c) : 0.f;
        s += v[j];
    }
    const float mean = warp_sum(s) / static_cast<float>(C);
    float q = 0.f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int c = lane + 32 * j;
        const float d = c < C ? v[j] - mean : 0.f;
        q += d * d;
    }
    const float inv = 1.f / sqrtf(warp_sum(q) / static_cast<float>(C) + eps);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int c = lane + 32 * j;
        if (c < C) yr[c] = (v[j] - mean) * inv * g[c] + b[c];
    }
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

__device__ __forceinline__ float softmax_logit(const SoftmaxArgs& a, const float* xr, const float* mr,
                                               const float* br, int64_t k) {
    // Explicit rounding (no FMA contraction), in the CPU's order: a logit next to -inf (1e9, ulp 64)
    // must round identically on both backends, or fully masked rows would differ by factors of e^64.
    float t = __fmul_rn(a.scale, xr[k]);
    if (br) t = __fadd_rn(t, br[k * a.bs]);
    if (mr) t = __fadd_rn(t, __fmul_rn(a.inf, mr[k * a.ms] - 1.f));
    return t;
}

// One warp per row of n <= 32 * kPerLane; the row stays in registers between the passes.
template <int kPerLane> __global__ void softmax_warp(SoftmaxArgs a) {
    const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (r >= a.rows) return;  // warp-uniform
    int64_t off[3];
    a.ix.offsets(r, off);
    float* xr = a.x + off[0];
    const float* mr = a.mask ? a.mask + off[1] : nullptr;
    const float* br = a.bias ? a.bias + off[2] : nullptr;
    const int n = static_cast<int>(a.n);
    float v[kPerLane];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int k = lane + 32 * j;
        v[j] = k < n ? softmax_logit(a, xr, mr, br, k) : -INFINITY;
        mx = fmaxf(mx, v[j]);
    }
    mx = warp_max(mx);
    float s = 0.f;
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int k = lane + 32 * j;
        v[j] = k < n ? expf(v[j] - mx) : 0.f;
        s += v[j];
    }
    const float inv = 1.f / warp_sum(s);
#pragma unroll
    for (int j = 0; j < kPerLane; ++j) {
        const int k = lane + 32 * j;
        if (k < n) xr[k] = v[j] * inv;
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
        const float t = softmax_logit(a, xr, mr, br, k);
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

// Lanes' register count for a row of n <= kMaxWarpRow: the smallest power of two with 32 * p >= n.
int per_lane(int64_t n) {
    int p = 1;
    while (32 * p < n) p *= 2;
    return p;
}

unsigned warp_grid(int64_t rows) { return static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock); }

template <int kPerLane, class T>
void launch_layer_norm_warp(const T* px, const Tensor& x, const Tensor& scale, const Tensor& offset, float eps,
                            const Tensor& y, const StridedIndex<2>& ix, int64_t rows) {
    layer_norm_warp<kPerLane, T><<<warp_grid(rows), kWarpsPerBlock * 32>>>(
        px, y.f32(), scale.f32(), offset.f32(), ix, rows, static_cast<int>(x.size(-1)), eps);
}

template <int kPerLane> void launch_softmax_warp(const SoftmaxArgs& a) {
    softmax_warp<kPerLane><<<warp_grid(a.rows), kWarpsPerBlock * 32>>>(a);
}

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
    if (C <= kMaxWarpRow) {
        switch (per_lane(C)) {
            case 1: launch_layer_norm_warp<1>(px, x, scale, offset, eps, y, ix, rows); break;
            case 2: launch_layer_norm_warp<2>(px, x, scale, offset, eps, y, ix, rows); break;
            case 4: launch_layer_norm_warp<4>(px, x, scale, offset, eps, y, ix, rows); break;
            case 8: launch_layer_norm_warp<8>(px, x, scale, offset, eps, y, ix, rows); break;
            case 16: launch_layer_norm_warp<16>(px, x, scale, offset, eps, y, ix, rows); break;
            default: launch_layer_norm_warp<32>(px, x, scale, offset, eps, y, ix, rows); break;
        }
    } else {
        AXF_CHECK(rows <= INT32_MAX, "layer_norm: %lld rows exceed the CUDA grid", (long long)rows);
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
    if (a.n <= kMaxWarpRow) {
        switch (per_lane(a.n)) {
            case 1: launch_softmax_warp<1>(a); break;
            case 2: launch_softmax_warp<2>(a); break;
            case 4: launch_softmax_warp<4>(a); break;
            case 8: launch_softmax_warp<8>(a); break;
            case 16: launch_softmax_warp<16>(a); break;
            default: launch_softmax_warp<32>(a); break;
        }
    } else {
        AXF_CHECK(a.rows <= INT32_MAX, "softmax: %lld rows exceed the CUDA grid", (long long)a.rows);
        softmax_block<<<static_cast<unsigned>(a.rows), kRowThreads>>>(a);
    }
    AXF_CUDA_LAUNCH();
}

// --- backward (training) ---------------------------------------------------------------------------------
// Contiguous rows (ops.cpp checks). One warp per row, lanes striding over the row, so any row length works;
// dx may alias dy (each element is read before it is written, by the same lane).

namespace {

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
    softmax_backward_warp<<<warp_grid(rows), kWarpsPerBlock * 32>>>(y.f32(), dy.f32(), dx.f32(), rows, n, scale);
    AXF_CUDA_LAUNCH();
}

void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset) {
    const int64_t C = x.size(-1), rows = x.numel() / C;
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
