// Fused layer norm and softmax (mask, bias, scale) kernels. Rows are contiguous in the last dim; row
// starts come from a device array of offsets so strided/broadcast leading dims work as on the CPU.
#include <cuda_runtime.h>

#include <vector>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"

namespace axfold::cuda {

namespace {

__inline__ __device__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__inline__ __device__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Warp per row: rows up to a few thousand elements.
__global__ void layer_norm_warp(const float* x, const int64_t* ox, float* y, const int64_t* oy, const float* g,
                                const float* b, int64_t rows, int64_t C, float eps) {
    int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    const float* xr = x + ox[r];
    float* yr = y + oy[r];
    float s = 0.f;
    for (int64_t c = lane; c < C; c += 32) s += xr[c];
    float mean = warp_sum(s) / (float)C;
    float v = 0.f;
    for (int64_t c = lane; c < C; c += 32) {
        float d = xr[c] - mean;
        v += d * d;
    }
    float inv = rsqrtf(warp_sum(v) / (float)C + eps);
    for (int64_t c = lane; c < C; c += 32) yr[c] = (xr[c] - mean) * inv * g[c] + b[c];
}

__global__ void softmax_warp(float* x, const int64_t* ox, const float* mask, const int64_t* om, int64_t ms,
                             const float* bias, const int64_t* ob, int64_t bs, int64_t rows, int64_t n, float scale,
                             float inf) {
    int64_t r = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (r >= rows) return;
    float* xr = x + ox[r];
    const float* mr = mask ? mask + om[r] : nullptr;
    const float* br = bias ? bias + ob[r] : nullptr;
    float mx = -INFINITY;
    for (int64_t k = lane; k < n; k += 32) {
        float v = scale * xr[k];
        if (br) v += br[k * bs];
        if (mr) v += inf * (mr[k * ms] - 1.f);
        xr[k] = v;
        mx = fmaxf(mx, v);
    }
    mx = warp_max(mx);
    float s = 0.f;
    for (int64_t k = lane; k < n; k += 32) {
        float e = __expf(xr[k] - mx);
        xr[k] = e;
        s += e;
    }
    float inv = 1.f / warp_sum(s);
    for (int64_t k = lane; k < n; k += 32) xr[k] *= inv;
}

struct DeviceOffsets {
    int64_t* ptr = nullptr;
    explicit DeviceOffsets(const std::vector<int64_t>& v) {
        AXF_CUDA(cudaMalloc(&ptr, v.size() * sizeof(int64_t)));
        AXF_CUDA(cudaMemcpy(ptr, v.data(), v.size() * sizeof(int64_t), cudaMemcpyHostToDevice));
    }
    ~DeviceOffsets() { cudaFree(ptr); }
};

constexpr int kWarpsPerBlock = 8;

}  // namespace

void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y) {
    std::vector<int64_t> hx = cpu::row_offsets(x), hy = cpu::row_offsets(y);
    DeviceOffsets ox(hx), oy(hy);
    int64_t rows = static_cast<int64_t>(hx.size());
    dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock));
    layer_norm_warp<<<grid, kWarpsPerBlock * 32>>>(x.f32(), ox.ptr, y.f32(), oy.ptr, scale.f32(), offset.f32(), rows,
                                                   x.size(-1), eps);
    AXF_CUDA_LAUNCH();
}

void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf) {
    std::vector<int64_t> hx = cpu::row_offsets(x);
    DeviceOffsets ox(hx);
    DeviceOffsets om(mask.defined() ? cpu::row_offsets(mask) : std::vector<int64_t>{0});
    DeviceOffsets ob(bias.defined() ? cpu::row_offsets(bias) : std::vector<int64_t>{0});
    int64_t rows = static_cast<int64_t>(hx.size());
    dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock));
    softmax_warp<<<grid, kWarpsPerBlock * 32>>>(x.f32(), ox.ptr, mask.defined() ? mask.f32() : nullptr, om.ptr,
                                                mask.defined() ? mask.stride(-1) : 0,
                                                bias.defined() ? bias.f32() : nullptr, ob.ptr,
                                                bias.defined() ? bias.stride(-1) : 0, rows, x.size(-1), scale, inf);
    AXF_CUDA_LAUNCH();
}

}  // namespace axfold::cuda
