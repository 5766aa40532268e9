// Helpers shared by the .cu files: strided multi-dimensional indexing passed to kernels by value (so no
// per-call device offset arrays and no cudaMalloc inside a forward), warp and block reductions, and
// grid sizing.
//
// A StridedIndex<N> walks the leading dims of N tensors that share a shape, jointly: dims of size 1 are
// dropped and neighbouring dims merged where every operand allows it, so typical views (contiguous,
// sliced rows, broadcast with stride 0, permuted) fit in kMaxDims. Dims are stored innermost first.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/tensor.h"

namespace axfold::cuda {

// float32 values of stored elements (bfloat16 activations widened exactly), and bfloat16 rounding to
// nearest-even as kernels/tensor.h's bf16_from_float does on the host.
__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const bf16_t* p) {
    return __uint_as_float(static_cast<uint32_t>(p->bits) << 16);
}
__device__ __forceinline__ uint16_t bf16_round(float x) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return static_cast<uint16_t>((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}
__device__ __forceinline__ void store_f32(float* p, float v) { *p = v; }
__device__ __forceinline__ void store_f32(bf16_t* p, float v) { p->bits = bf16_round(v); }

constexpr int kMaxDims = 6;

template <int N> struct StridedIndex {
    int nd = 0;
    int64_t size[kMaxDims] = {};
    int64_t stride[N][kMaxDims] = {};

    // Element offsets of each operand for linear index i (row-major over the indexed dims).
    __host__ __device__ __forceinline__ void offsets(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
        for (int o = 0; o < N; ++o) off[o] = 0;
#pragma unroll
        for (int d = 0; d < kMaxDims; ++d) {
            if (d >= nd) break;
            const int64_t q = i / size[d];
            const int64_t r = i - q * size[d];
            i = q;
#pragma unroll
            for (int o = 0; o < N; ++o) off[o] += r * stride[o][d];
        }
    }
};

// One collapsed dim: its size and each operand's stride.
template <int N> struct CollapsedDim {
    int64_t size;
    std::array<int64_t, N> stride;
};

// Joint collapse of the first `nd` dims of `shape` for N operands (strides[o] has at least nd entries).
// Returned innermost first; empty when every dim has size 1.
template <int N>
std::vector<CollapsedDim<N>> collapse_dims(const Shape& shape, const std::array<const Shape*, N>& strides, int nd) {
    std::vector<CollapsedDim<N>> dims;
    for (int d = nd - 1; d >= 0; --d) {
        if (shape[d] == 1) continue;
        if (!dims.empty()) {
            CollapsedDim<N>& in = dims.back();
            bool merge = true;
            for (int o = 0; o < N; ++o) merge = merge && (*strides[o])[d] == in.stride[o] * in.size;
            if (merge) {
                in.size *= shape[d];
                continue;
            }
        }
        CollapsedDim<N> c;
        c.size = shape[d];
        for (int o = 0; o < N; ++o) c.stride[o] = (*strides[o])[d];
        dims.push_back(c);
    }
    return dims;
}

// Index over the first `nd` dims of `shape`, shared by N operands.
template <int N>
StridedIndex<N> make_index(const Shape& shape, const std::array<const Shape*, N>& strides, int nd) {
    std::vector<CollapsedDim<N>> dims = collapse_dims<N>(shape, strides, nd);
    AXF_CHECK(dims.size() <= static_cast<size_t>(kMaxDims),
              "CUDA op over shape %s: %zu non-mergeable dims, at most %d supported (make the operand contiguous)",
              shape_str(shape).c_str(), dims.size(), kMaxDims);
    StridedIndex<N> ix;
    if (dims.empty()) {
        ix.nd = 1;
        ix.size[0] = 1;
        return ix;
    }
    ix.nd = static_cast<int>(dims.size());
    for (int d = 0; d < ix.nd; ++d) {
        ix.size[d] = dims[d].size;
        for (int o = 0; o < N; ++o) ix.stride[o][d] = dims[d].stride[o];
    }
    return ix;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` is __shared__ float[32]. The leading barrier lets consecutive calls reuse the scratch, and
// the barriers also make the block's earlier global writes visible to all its threads.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_sum(lane < nw ? scratch[lane] : 0.f);
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
    v = warp_max(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    return warp_max(lane < nw ? scratch[lane] : -INFINITY);
}

// A grid-stride loop's start and step (int64: element counts past 2^31).
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }
__device__ __forceinline__ int64_t global_id() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }

// Blocks for a grid-stride loop over n items.
inline unsigned grid_for(int64_t n, int threads) {
    const int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65536));
}

// Streaming multiprocessors of the current device (kernels/cuda/device.cu).
int multiprocessor_count();

// Row count over the leading dims of t (all dims but the last).
inline int64_t leading_rows(const Tensor& t) { return t.dim() == 0 ? 1 : t.numel() / std::max<int64_t>(t.size(-1), 1); }

}  // namespace axfold::cuda
