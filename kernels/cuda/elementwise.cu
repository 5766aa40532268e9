// Elementwise ops (in place on x, with y possibly a broadcast view) and the strided device copy.
// One generic kernel walks up to kMaxDims collapsed dims with per-operand strides (0 for broadcast); a
// flat path handles the common case of contiguous operands, with float4 accesses when both are 16-byte
// aligned.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

constexpr int kThreads = 256;

// Numerics as in kernels/cpu: IEEE expf, sigmoid(x) = 1 / (1 + exp(-x)), relu maps NaN to 0.
__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

struct SigmoidOp {
    __device__ float operator()(float a) const { return sigmoidf(a); }
};
struct ReluOp {
    __device__ float operator()(float a) const { return a > 0.f ? a : 0.f; }
};
struct ScaleOp {
    float s;
    __device__ float operator()(float a) const { return a * s; }
};
struct FillOp {
    float v;
    __device__ float operator()(float) const { return v; }
};
struct AddOp {
    float alpha;
    __device__ float operator()(float a, float b) const { return a + alpha * b; }
};
struct MulOp {
    __device__ float operator()(float a, float b) const { return a * b; }
};
struct SigmoidMulOp {
    __device__ float operator()(float a, float b) const { return a * sigmoidf(b); }
};
struct DivEpsOp {
    float eps;
    __device__ float operator()(float a, float b) const { return a / (b + eps); }
};

template <class Op, bool kVec> __global__ void unary_flat(float* x, int64_t n, Op op) {
    int64_t tail = 0;
    if (kVec) {
        float4* x4 = reinterpret_cast<float4*>(x);
        for (int64_t i = global_id(); i < n / 4; i += grid_stride()) {
            float4 e = x4[i];
            e.x = op(e.x);
            e.y = op(e.y);
            e.z = op(e.z);
            e.w = op(e.w);
            x4[i] = e;
        }
        tail = n / 4 * 4;
    }
    for (int64_t i = tail + global_id(); i < n; i += grid_stride()) x[i] = op(x[i]);
}

template <class Op> __global__ void unary_strided(float* x, StridedIndex<1> ix, int64_t n, Op op) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) {
        int64_t off[1];
        ix.offsets(i, off);
        x[off[0]] = op(x[off[0]]);
    }
}

// x and y may be the same memory (mul(x, x)): each element is read and written by one thread only.
template <class Op, bool kVec> __global__ void binary_flat(float* x, const float* y, int64_t n, Op op) {
    int64_t tail = 0;
    if (kVec) {
        float4* x4 = reinterpret_cast<float4*>(x);
        const float4* y4 = reinterpret_cast<const float4*>(y);
        for (int64_t i = global_id(); i < n / 4; i += grid_stride()) {
            float4 a = x4[i];
            const float4 b = y4[i];
            a.x = op(a.x, b.x);
            a.y = op(a.y, b.y);
            a.z = op(a.z, b.z);
            a.w = op(a.w, b.w);
            x4[i] = a;
        }
        tail = n / 4 * 4;
    }
    for (int64_t i = tail + global_id(); i < n; i += grid_stride()) x[i] = op(x[i], y[i]);
}

template <class Op> __global__ void binary_strided(float* x, const float* y, StridedIndex<2> ix, int64_t n, Op op) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) {
        int64_t off[2];
        ix.offsets(i, off);
        x[off[0]] = op(x[off[0]], y[off[1]]);
    }
}

template <class T> __global__ void copy_strided(T* dst, const T* src, StridedIndex<2> ix, int64_t n) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) {
        int64_t off[2];
        ix.offsets(i, off);
        dst[off[0]] = src[off[1]];
    }
}

// x (bfloat16) += alpha * y (float32).
__global__ void add_to_bf16_strided(bf16_t* x, const float* y, StridedIndex<2> ix, int64_t n, float alpha) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) {
        int64_t off[2];
        ix.offsets(i, off);
        store_f32(x + off[0], load_f32(x + off[0]) + alpha * y[off[1]]);
    }
}

// dst[a + b * db] = src[a * sa + b] for every batch offset pair of ix: a batched transpose through 32 x 32
// tiles in shared memory, so that both the reads (along b) and the writes (along a) are coalesced.
// blockDim (32, 8); grid (tiles along a, tiles along b, batches, grid-strided).
template <class T>
__global__ void transpose_tiles(T* dst, const T* src, int64_t na, int64_t nb, int64_t sa, int64_t db,
                                StridedIndex<2> ix, int64_t batches) {
    __shared__ T tile[32][33];
    const int64_t a0 = static_cast<int64_t>(blockIdx.x) * 32, b0 = static_cast<int64_t>(blockIdx.y) * 32;
    for (int64_t z = blockIdx.z; z < batches; z += gridDim.z) {
        int64_t off[2];
        ix.offsets(z, off);
        for (int r = threadIdx.y; r < 32; r += 8) {
            const int64_t a = a0 + r, b = b0 + threadIdx.x;
            if (a < na && b < nb) tile[r][threadIdx.x] = src[off[1] + a * sa + b];
        }
        __syncthreads();
        for (int r = threadIdx.y; r < 32; r += 8) {
            const int64_t a = a0 + threadIdx.x, b = b0 + r;
            if (a < na && b < nb) dst[off[0] + a + b * db] = tile[threadIdx.x][r];
        }
        __syncthreads();
    }
}

template <class D, class S> __global__ void convert_flat(D* dst, const S* src, int64_t n) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) store_f32(dst + i, load_f32(src + i));
}

template <class D, class S> __global__ void convert_strided(D* dst, const S* src, StridedIndex<2> ix, int64_t n) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) {
        int64_t off[2];
        ix.offsets(i, off);
        store_f32(dst + off[0], load_f32(src + off[1]));
    }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <class Op> void run_unary(const Tensor& x, Op op) {
    const int64_t n = x.numel();
    float* px = x.f32();
    if (x.is_contiguous()) {
        if (aligned16(px))
            unary_flat<Op, true><<<grid_for(n / 4 + 1, kThreads), kThreads>>>(px, n, op);
        else
            unary_flat<Op, false><<<grid_for(n, kThreads), kThreads>>>(px, n, op);
    } else {
        const StridedIndex<1> ix = make_index<1>(x.shape(), {&x.strides()}, x.dim());
        unary_strided<Op><<<grid_for(n, kThreads), kThreads>>>(px, ix, n, op);
    }
    AXF_CUDA_LAUNCH();
}

template <class Op> void run_binary(const Tensor& x, const Tensor& y, Op op) {
    const int64_t n = x.numel();
    float* px = x.f32();
    const float* py = y.f32();
    if (x.is_contiguous() && y.is_contiguous()) {
        if (aligned16(px) && aligned16(py))
            binary_flat<Op, true><<<grid_for(n / 4 + 1, kThreads), kThreads>>>(px, py, n, op);
        else
            binary_flat<Op, false><<<grid_for(n, kThreads), kThreads>>>(px, py, n, op);
    } else {
        const StridedIndex<2> ix = make_index<2>(x.shape(), {&x.strides(), &y.strides()}, x.dim());
        binary_strided<Op><<<grid_for(n, kThreads), kThreads>>>(px, py, ix, n, op);
    }
    AXF_CUDA_LAUNCH();
}

// A copy whose destination is contiguous along one dim and the source along another (a permute being
// materialised, e.g. [N, N, C] -> [C, N, N]) runs as a batched tiled transpose; anything else as a gather.
template <class T> bool try_transpose(const Tensor& dst, const Tensor& src) {
    const std::vector<CollapsedDim<2>> dims = collapse_dims<2>(dst.shape(), {&dst.strides(), &src.strides()}, dst.dim());
    if (dims.size() < 2 || dims.size() > static_cast<size_t>(kMaxDims) + 2) return false;
    if (dims[0].stride[0] != 1 || dims[0].stride[1] == 1) return false;  // dims are innermost first
    size_t j = 1;
    while (j < dims.size() && dims[j].stride[1] != 1) ++j;
    if (j == dims.size()) return false;
    const int64_t na = dims[0].size, nb = dims[j].size;
    if (na < 16 || nb < 16 || (nb + 31) / 32 > 65535) return false;
    StridedIndex<2> ix;  // the other dims, innermost first, as make_index builds them
    int64_t batches = 1;
    for (size_t d = 1; d < dims.size(); ++d) {
        if (d == j) continue;
        ix.size[ix.nd] = dims[d].size;
        ix.stride[0][ix.nd] = dims[d].stride[0];
        ix.stride[1][ix.nd] = dims[d].stride[1];
        ++ix.nd;
        batches *= dims[d].size;
    }
    if (ix.nd == 0) {
        ix.nd = 1;
        ix.size[0] = 1;
    }
    const dim3 grid(static_cast<unsigned>((na + 31) / 32), static_cast<unsigned>((nb + 31) / 32),
                    static_cast<unsigned>(std::min<int64_t>(batches, 65535)));
    transpose_tiles<T><<<grid, dim3(32, 8)>>>(static_cast<T*>(dst.raw()), static_cast<const T*>(src.raw()), na, nb,
                                              dims[0].stride[1], dims[j].stride[0], ix, batches);
    AXF_CUDA_LAUNCH();
    return true;
}

template <class T> void run_copy(const Tensor& dst, const Tensor& src) {
    if (try_transpose<T>(dst, src)) return;
    const int64_t n = dst.numel();
    const StridedIndex<2> ix = make_index<2>(dst.shape(), {&dst.strides(), &src.strides()}, dst.dim());
    copy_strided<T><<<grid_for(n, kThreads), kThreads>>>(static_cast<T*>(dst.raw()), static_cast<const T*>(src.raw()),
                                                         ix, n);
    AXF_CUDA_LAUNCH();
}

}  // namespace

void unary(const Tensor& x, Unary op, float s) {
    if (x.numel() == 0) return;
    switch (op) {
        case Unary::Sigmoid: run_unary(x, SigmoidOp{}); break;
        case Unary::Relu: run_unary(x, ReluOp{}); break;
        case Unary::Scale: run_unary(x, ScaleOp{s}); break;
        case Unary::Fill: run_unary(x, FillOp{s}); break;
    }
}

void binary(const Tensor& x, const Tensor& y, Binary op, float alpha) {
    if (x.numel() == 0) return;
    switch (op) {
        case Binary::Add: run_binary(x, y, AddOp{alpha}); break;
        case Binary::Mul: run_binary(x, y, MulOp{}); break;
        case Binary::SigmoidMul: run_binary(x, y, SigmoidMulOp{}); break;
        case Binary::DivEps: run_binary(x, y, DivEpsOp{alpha}); break;
    }
}

void copy(const Tensor& dst, const Tensor& src) {
    AXF_CHECK(dst.device() == Device::CUDA && src.device() == Device::CUDA && dst.shape() == src.shape() &&
                  dst.dtype() == src.dtype(),
              "cuda::copy: %s into %s", src.desc().c_str(), dst.desc().c_str());
    if (dst.numel() == 0) return;
    const size_t es = dtype_size(dst.dtype());
    if (dst.is_contiguous() && src.is_contiguous()) {
        AXF_CUDA(cudaMemcpyAsync(dst.raw(), src.raw(), static_cast<size_t>(dst.numel()) * es, cudaMemcpyDeviceToDevice,
                                 0));
        return;
    }
    switch (es) {
        case 1: run_copy<uint8_t>(dst, src); break;
        case 2: run_copy<uint16_t>(dst, src); break;
        case 4: run_copy<uint32_t>(dst, src); break;
        case 8: run_copy<uint64_t>(dst, src); break;
        default: AXF_FAIL("cuda::copy: unsupported element size %zu of %s", es, dst.desc().c_str());
    }
}

void add_to_bf16(const Tensor& x, const Tensor& y, float alpha) {
    const int64_t n = x.numel();
    if (n == 0) return;
    const StridedIndex<2> ix = make_index<2>(x.shape(), {&x.strides(), &y.strides()}, x.dim());
    add_to_bf16_strided<<<grid_for(n, kThreads), kThreads>>>(x.data<bf16_t>(), y.f32(), ix, n, alpha);
    AXF_CUDA_LAUNCH();
}

void convert(const Tensor& dst, const Tensor& src) {
    const int64_t n = dst.numel();
    if (n == 0) return;
    if (dst.is_contiguous() && src.is_contiguous()) {
        if (dst.dtype() == DType::BF16)
            convert_flat<<<grid_for(n, kThreads), kThreads>>>(dst.data<bf16_t>(), src.f32(), n);
        else
            convert_flat<<<grid_for(n, kThreads), kThreads>>>(dst.f32(), src.data<bf16_t>(), n);
        AXF_CUDA_LAUNCH();
        return;
    }
    const StridedIndex<2> ix = make_index<2>(dst.shape(), {&dst.strides(), &src.strides()}, dst.dim());
    if (dst.dtype() == DType::BF16)
        convert_strided<<<grid_for(n, kThreads), kThreads>>>(dst.data<bf16_t>(), src.f32(), ix, n);
    else
        convert_strided<<<grid_for(n, kThreads), kThreads>>>(dst.f32(), src.data<bf16_t>(), ix, n);
    AXF_CUDA_LAUNCH();
}

namespace {
__global__ void sigmoid_mul_backward_flat(const float* x, const float* gate, const float* dy, float* dx, float* dgate,
                                          int64_t n) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) {
        const float s = sigmoidf(gate[i]), g = dy[i];
        dgate[i] = g * x[i] * s * (1.f - s);
        dx[i] = g * s;
    }
}
}  // namespace

void sigmoid_mul_backward(const Tensor& x, const Tensor& gate, const Tensor& dy, const Tensor& dx, const Tensor& dgate) {
    const int64_t n = x.numel();
    sigmoid_mul_backward_flat<<<grid_for(n, kThreads), kThreads>>>(x.f32(), gate.f32(), dy.f32(), dx.f32(), dgate.f32(), n);
    AXF_CUDA_LAUNCH();
}

namespace {
__global__ void relu_backward_flat(const float* y, const float* dy, float* dx, int64_t n) {
    for (int64_t i = global_id(); i < n; i += grid_stride()) dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}
}  // namespace

void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) {
    const int64_t n = y.numel();
    relu_backward_flat<<<grid_for(n, kThreads), kThreads>>>(y.f32(), dy.f32(), dx.f32(), n);
    AXF_CUDA_LAUNCH();
}

}  // namespace axfold::cuda
