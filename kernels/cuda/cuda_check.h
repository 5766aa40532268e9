// One [[noreturn]] helper for CUDA return codes; every call and kernel launch goes through AXF_CUDA.
#pragma once

#include <cuda_runtime.h>

#include "kernels/error.h"

namespace axfold {
[[noreturn]] void cuda_fail(cudaError_t e, const char* what, const char* file, int line);
}

#define AXF_CUDA(call)                                                          \
    do {                                                                        \
        cudaError_t axf_e_ = (call);                                            \
        if (axf_e_ != cudaSuccess) ::axfold::cuda_fail(axf_e_, #call, __FILE__, __LINE__); \
    } while (0)
#define AXF_CUDA_LAUNCH() AXF_CUDA(cudaGetLastError())
