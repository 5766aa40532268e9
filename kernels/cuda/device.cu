// Device memory for Tensor storage, and the CUDA error helper.
#include <cuda_runtime.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/device.h"

namespace axfold {

void cuda_fail(cudaError_t e, const char* what, const char* file, int line) {
    throw_error(file, line, strfmt("CUDA error in %s: %s", what, cudaGetErrorString(e)));
}

void* device_alloc(size_t bytes) {
    void* p = nullptr;
    AXF_CUDA(cudaMalloc(&p, bytes));
    return p;
}

void device_free(void* ptr) { cudaFree(ptr); }

void device_memset(void* ptr, int value, size_t bytes) { AXF_CUDA(cudaMemset(ptr, value, bytes)); }

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    cudaMemcpyKind kind = dst_dev == Device::CUDA ? (src_dev == Device::CUDA ? cudaMemcpyDeviceToDevice
                                                                             : cudaMemcpyHostToDevice)
                                                  : (src_dev == Device::CUDA ? cudaMemcpyDeviceToHost
                                                                             : cudaMemcpyHostToHost);
    AXF_CUDA(cudaMemcpy(dst, src, bytes, kind));
}

bool cuda_available() {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace axfold
