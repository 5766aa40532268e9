// The optimizer's element-wise steps (kernels/ops.h: adam_update, moving_average_update, sum_of_squares) in float64
// arithmetic on float32 storage, as the CPU kernels compute them.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;  // sum_of_squares: partial sums per call, added on the host in order

__global__ void adam_kernel(float* p, const float* g, float* m, float* v, int64_t n, AdamCoefficients c) {
    for (int64_t e = global_id(); e < n; e += grid_stride()) {
        const double ge = c.grad_scale * g[e];
        const double me = c.beta1 * m[e] + (1 - c.beta1) * ge, ve = c.beta2 * v[e] + (1 - c.beta2) * ge * ge;
        m[e] = static_cast<float>(me);
        v[e] = static_cast<float>(ve);
        p[e] = static_cast<float>(p[e] - c.lr * (me / c.bias1) / (sqrt(ve / c.bias2) + c.eps));
    }
}

__global__ void moving_average_kernel(float* ema, const float* p, int64_t n, double decay) {
    for (int64_t k = global_id(); k < n; k += grid_stride())
        ema[k] = static_cast<float>(decay * ema[k] + (1 - decay) * p[k]);
}

// One partial sum per block: each thread's grid-stride sum, then the block's in a fixed tree order.
__global__ void sum_of_squares_kernel(const float* x, int64_t n, double* partial) {
    __shared__ double s[kThreads];
    double t = 0;
    for (int64_t i = global_id(); i < n; i += grid_stride()) t += static_cast<double>(x[i]) * x[i];
    s[threadIdx.x] = t;
    __syncthreads();
    for (int w = kThreads / 2; w > 0; w /= 2) {
        if (static_cast<int>(threadIdx.x) < w) s[threadIdx.x] += s[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

}  // namespace

void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamCoefficients& c) {
    const int64_t n = p.numel();
    adam_kernel<<<grid_for(n, kThreads), kThreads>>>(p.f32(), g.f32(), m.f32(), v.f32(), n, c);
    AXF_CUDA_LAUNCH();
}

void moving_average_update(const Tensor& ema, const Tensor& p, double decay) {
    const int64_t n = ema.numel();
    moving_average_kernel<<<grid_for(n, kThreads), kThreads>>>(ema.f32(), p.f32(), n, decay);
    AXF_CUDA_LAUNCH();
}

double sum_of_squares(const Tensor& x) {
    const int64_t n = x.numel();
    const int blocks = static_cast<int>(std::min<int64_t>(kMaxBlocks, (n + kThreads - 1) / kThreads));
    const Tensor partial = Tensor::empty({blocks}, DType::F64, Device::CUDA);
    sum_of_squares_kernel<<<blocks, kThreads>>>(x.f32(), n, partial.data<double>());
    AXF_CUDA_LAUNCH();
    std::vector<double> h(static_cast<size_t>(blocks));
    AXF_CUDA(cudaMemcpy(h.data(), partial.raw(), h.size() * sizeof(double), cudaMemcpyDeviceToHost));
    double s = 0;
    for (double b : h) s += b;
    return s;
}

}  // namespace axfold::cuda
