// Structure-module, embedding and head ops on CUDA (kernels/ops.h): embedding row gather, rigid frames applied
// to points, IPA's weighted squared point distances, and the distogram's symmetrisation.
//
// gather_rows: one thread per (m, c) of out, grid-strided, so consecutive threads read and write along a row.
// apply_frames: one thread per point (n, k); each frame is 12 floats that the threads of a point set share
// through L1, so they are read straight from global memory.
// weighted_sq_distances: one thread per out[b, i, j], blocks of 32 (along j, the output's contiguous dim) x 8
// (along i); the 8 rows of a block reread the same c rows, so those reads mostly hit L1.
// add_transpose: one block per row i walks x[i, j >= i, :] (contiguous in memory) and pairs each element with
// x[j, i, :]; every unordered pair (i, j) belongs to exactly one thread, so the in-place update has no races.
//
// Arithmetic order as in kernels/cpu (sums left to right, the d-sum from 0.f, sqrtf(eps + y0^2 + y1^2 + y2^2));
// nvcc's default FMA contraction may round differently from the host by an ulp, no fast-math. Sizes past 2^31
// elements (N_res^2 * C pair tensors) use int64 offsets.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kDistTileJ = 32;  // weighted_sq_distances block: 32 threads along j ...
constexpr int kDistTileI = 8;   // ... times 8 along i
constexpr int kDistThreads = kDistTileJ * kDistTileI;
constexpr unsigned kMaxGridYZ = 65535;

// out[m, c] = (accumulate ? out[m, c] : 0) + table[index[m], c]; rows with index[m] < 0 get nothing added.
// table [V, C] contiguous; out rows contiguous, row stride os.
__global__ void gather_rows_kernel(const float* __restrict__ table, const int64_t* __restrict__ index,
                                   float* __restrict__ out, int64_t M, int64_t C, int64_t os, bool accumulate) {
    const int64_t n = M * C;
    for (int64_t e = global_id(); e < n; e += grid_stride()) {
        const int64_t m = e / C, c = e - m * C;
        const int64_t v = index[m];
        float* o = out + m * os + c;
        if (v < 0) {
            if (!accumulate) *o = 0.f;
            continue;
        }
        const float t = table[v * C + c];
        *o = accumulate ? *o + t : t;
    }
}

struct FramesArgs {
    const float* rot;    // [N, 3, 3] contiguous
    const float* trans;  // [N, 3] contiguous
    const float* x;      // [N, K, 3], strides xs0, xs1, xs2
    float* y;            // [N, K, 3], strides ys0, ys1, ys2
    float* norms;        // [N, K], strides ns0, ns1; null when not requested
    int64_t N, K;
    int64_t xs0, xs1, xs2, ys0, ys1, ys2, ns0, ns1;
    float eps;
};

template <bool kInverse>
__global__ void apply_frames_kernel(FramesArgs a) {
    const int64_t n_points = a.N * a.K;
    for (int64_t p = global_id(); p < n_points; p += grid_stride()) {
        const int64_t n = p / a.K, k = p - n * a.K;
        const float* r = a.rot + n * 9;
        const float* t = a.trans + n * 3;
        const float* xi = a.x + n * a.xs0 + k * a.xs1;
        const float x0 = xi[0], x1 = xi[a.xs2], x2 = xi[2 * a.xs2];
        float v[3];
        if (kInverse) {
            const float e0 = x0 - t[0], e1 = x1 - t[1], e2 = x2 - t[2];
#pragma unroll
            for (int c = 0; c < 3; ++c) v[c] = r[0 * 3 + c] * e0 + r[1 * 3 + c] * e1 + r[2 * 3 + c] * e2;
        } else {
#pragma unroll
            for (int d = 0; d < 3; ++d) v[d] = r[d * 3 + 0] * x0 + r[d * 3 + 1] * x1 + r[d * 3 + 2] * x2 + t[d];
        }
        float* yi = a.y + n * a.ys0 + k * a.ys1;
        yi[0] = v[0];
        yi[a.ys2] = v[1];
        yi[2 * a.ys2] = v[2];
        if (a.norms) a.norms[n * a.ns0 + k * a.ns1] = sqrtf(a.eps + v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
    }
}

struct DistArgs {
    const float* a;       // [B, I, D], strides as0, as1 (last dim contiguous)
    const float* c;       // [B, J, D], strides cs0, cs1 (last dim contiguous)
    const float* weight;  // [B]
    float* out;           // [B, I, J], strides os0, os1 (last dim contiguous)
    int64_t B, I, J, D;
    int64_t as0, as1, cs0, cs1, os0, os1;
};

// blockDim (kDistTileJ, kDistTileI); grid (tiles along j, tiles along i, batches), each grid-strided.
__global__ void __launch_bounds__(kDistThreads) weighted_sq_distances_kernel(DistArgs a) {
    const int64_t j_tiles = (a.J + kDistTileJ - 1) / kDistTileJ, i_tiles = (a.I + kDistTileI - 1) / kDistTileI;
    for (int64_t b = blockIdx.z; b < a.B; b += gridDim.z) {
        const float w = a.weight[b];
        for (int64_t ti = blockIdx.y; ti < i_tiles; ti += gridDim.y) {
            const int64_t i = ti * kDistTileI + threadIdx.y;
            if (i >= a.I) continue;
            const float* ai = a.a + b * a.as0 + i * a.as1;
            float* o = a.out + b * a.os0 + i * a.os1;
            for (int64_t tj = blockIdx.x; tj < j_tiles; tj += gridDim.x) {
                const int64_t j = tj * kDistTileJ + threadIdx.x;
                if (j >= a.J) continue;
                const float* cj = a.c + b * a.cs0 + j * a.cs1;
                float d2 = 0.f;
                for (int64_t d = 0; d < a.D; ++d) {
                    const float e = ai[d] - cj[d];
                    d2 += e * e;
                }
                o[j] = w * d2;
            }
        }
    }
}

// x [N, N, C] contiguous. Row i: elements (i * N + i) * C ... (i * N + N) * C - 1 are x[i, j >= i, :]; each
// is summed with its mirror x[j, i, c] and both receive the sum (the diagonal, its own mirror, doubles).
__global__ void add_transpose_kernel(float* x, int64_t N, int64_t C) {
    for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
        const int64_t n = (N - i) * C;
        float* row = x + (i * N + i) * C;
        for (int64_t e = threadIdx.x; e < n; e += blockDim.x) {
            const int64_t dj = e / C, c = e - dj * C;
            float* mirror = x + ((i + dj) * N + i) * C + c;
            const float s = row[e] + *mirror;
            row[e] = s;
            *mirror = s;
        }
    }
}

}  // namespace

void gather_rows(const Tensor& table, const Tensor& index, const Tensor& out, bool accumulate) {
    const int64_t M = out.size(0), C = out.size(1);
    if (M * C == 0) return;
    gather_rows_kernel<<<grid_for(M * C, kThreads), kThreads>>>(table.f32(), index.data<int64_t>(), out.f32(), M, C,
                                                                out.stride(0), accumulate);
    AXF_CUDA_LAUNCH();
}

void apply_frames(const Tensor& rot, const Tensor& trans, const Tensor& x, const Tensor& y, bool inverse,
                  const Tensor& norms, float eps) {
    FramesArgs a;
    a.rot = rot.f32();
    a.trans = trans.f32();
    a.x = x.f32();
    a.y = y.f32();
    a.N = x.size(0);
    a.K = x.size(1);
    a.xs0 = x.stride(0), a.xs1 = x.stride(1), a.xs2 = x.stride(2);
    a.ys0 = y.stride(0), a.ys1 = y.stride(1), a.ys2 = y.stride(2);
    a.norms = norms.defined() ? norms.f32() : nullptr;
    a.ns0 = norms.defined() ? norms.stride(0) : 0;
    a.ns1 = norms.defined() ? norms.stride(1) : 0;
    a.eps = eps;
    const int64_t n_points = a.N * a.K;
    if (n_points == 0) return;
    if (inverse)
        apply_frames_kernel<true><<<grid_for(n_points, kThreads), kThreads>>>(a);
    else
        apply_frames_kernel<false><<<grid_for(n_points, kThreads), kThreads>>>(a);
    AXF_CUDA_LAUNCH();
}

void weighted_sq_distances(const Tensor& a, const Tensor& c, const Tensor& weight, const Tensor& out) {
    DistArgs d;
    d.a = a.f32();
    d.c = c.f32();
    d.weight = weight.f32();
    d.out = out.f32();
    d.B = a.size(0), d.I = a.size(1), d.J = c.size(1), d.D = a.size(2);
    d.as0 = a.stride(0), d.as1 = a.stride(1);
    d.cs0 = c.stride(0), d.cs1 = c.stride(1);
    d.os0 = out.stride(0), d.os1 = out.stride(1);
    if (d.B * d.I * d.J == 0) return;
    const int64_t j_tiles = (d.J + kDistTileJ - 1) / kDistTileJ, i_tiles = (d.I + kDistTileI - 1) / kDistTileI;
    const dim3 grid(static_cast<unsigned>(std::min<int64_t>(j_tiles, INT32_MAX)),
                    static_cast<unsigned>(std::min<int64_t>(i_tiles, kMaxGridYZ)),
                    static_cast<unsigned>(std::min<int64_t>(d.B, kMaxGridYZ)));
    weighted_sq_distances_kernel<<<grid, dim3(kDistTileJ, kDistTileI)>>>(d);
    AXF_CUDA_LAUNCH();
}

void add_transpose(const Tensor& x) {
    const int64_t N = x.size(0), C = x.size(2);
    if (N * C == 0) return;
    add_transpose_kernel<<<static_cast<unsigned>(std::min<int64_t>(N, INT32_MAX)), kThreads>>>(x.f32(), N, C);
    AXF_CUDA_LAUNCH();
}

}  // namespace axfold::cuda
