// One [[noreturn]] helper per library for return codes: every CUDA runtime call and kernel launch goes
// through AXF_CUDA / AXF_CUDA_LAUNCH, every cuBLAS call through AXF_CUBLAS.
//
// All device work runs on the legacy default stream (stream 0): host<->device copies, kernels, cuBLAS
// and the stream-ordered allocator are ordered with each other without explicit synchronisation.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/error.h"

namespace axfold {
[[noreturn]] void cuda_fail(cudaError_t e, const char* what, const char* file, int line);
[[noreturn]] void cublas_fail(cublasStatus_t s, const char* what, const char* file, int line);

namespace cuda {
// Process-wide cuBLAS handle on stream 0, created on first use with default math (each GEMM names its
// compute type: fp32 unless the MatmulPrecision asks for TF32 or bf16 tensor cores) and a workspace from
// the device pool. Never destroyed: tearing it down at exit, after the CUDA context may be gone, is
// riskier than leaking it. Use from one host thread at a time.
cublasHandle_t cublas_handle();
}  // namespace cuda
}  // namespace axfold

#define AXF_CUDA(call)                                                                      \
    do {                                                                                    \
        cudaError_t axf_e_ = (call);                                                        \
        if (axf_e_ != cudaSuccess) ::axfold::cuda_fail(axf_e_, #call, __FILE__, __LINE__);  \
    } while (0)
#define AXF_CUDA_LAUNCH() AXF_CUDA(cudaGetLastError())
#define AXF_CUBLAS(call)                                                                                \
    do {                                                                                                \
        cublasStatus_t axf_s_ = (call);                                                                 \
        if (axf_s_ != CUBLAS_STATUS_SUCCESS) ::axfold::cublas_fail(axf_s_, #call, __FILE__, __LINE__); \
    } while (0)
