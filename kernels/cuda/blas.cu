// matmul on cuBLAS: fp32 operands and results, arithmetic by the process's MatmulPrecision: fp32
// (CUBLAS_COMPUTE_32F), TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32, which rounds the operands to nearest as
// the CPU emulation does), or bfloat16 tensor cores with fp32 accumulation. For bfloat16 the operands are
// converted to bfloat16 copies (rounded to nearest-even, the CPU emulation's rounding) and cuBLAS multiplies
// those: CUBLAS_COMPUTE_32F_FAST_16BF on fp32 operands only *allows* bfloat16, and on an H200 (cuBLAS 13.0)
// it was measured to compute at TF32 accuracy instead (GpuOps.ReducedPrecisionMatmulMatchesCpuEmulation).
//
// Our matrices are row-major (or column-major views); cuBLAS is column-major. A row-major [M, N] C with
// leading dimension ldc is, read column-major, the [N, M] matrix C^T, so we ask cuBLAS for
// C^T = B^T A^T: m = N, n = M, k = K, first operand B, second A. A row-major operand read column-major is
// already its transpose (op N); a column-major one needs op T. Batch dims (a and b broadcast to c's) are
// collapsed jointly; the longest remaining batch dim becomes one cublasGemmStridedBatchedEx call (stride 0
// for a broadcast operand) and the others, if any, a host loop over such calls.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/cuda/strided.cuh"

namespace axfold::cuda {

namespace {

struct MatLayout {
    bool row_major;
    int64_t ld;
};

// As kernels/cpu's layout_of, but rejecting leading dimensions that do not describe the view (e.g. a
// broadcast row stride of 0) instead of reading the wrong elements.
MatLayout layout_of(const Tensor& t) {
    const int64_t rows = t.size(-2), cols = t.size(-1), s0 = t.stride(-2), s1 = t.stride(-1);
    if (s1 == 1 || cols == 1) {
        AXF_CHECK(rows <= 1 || s0 >= cols, "matmul operand %s with strides %s: row stride below the row length",
                  t.desc().c_str(), shape_str(t.strides()).c_str());
        return {true, std::max<int64_t>({rows <= 1 ? cols : s0, cols, 1})};
    }
    if (s0 == 1 || rows == 1) {
        AXF_CHECK(cols <= 1 || s1 >= rows, "matmul operand %s with strides %s: column stride below the column length",
                  t.desc().c_str(), shape_str(t.strides()).c_str());
        return {false, std::max<int64_t>({cols <= 1 ? rows : s1, rows, 1})};
    }
    AXF_FAIL("matmul operand %s has strides %s: neither rows nor columns are contiguous", t.desc().c_str(),
             shape_str(t.strides()).c_str());
}

int as_int(int64_t v, const char* what, const Tensor& c) {
    AXF_CHECK(v >= 0 && v <= INT_MAX, "matmul into %s: %s = %lld exceeds cuBLAS's int range", c.desc().c_str(), what,
              (long long)v);
    return static_cast<int>(v);
}

// c = alpha a b + beta c. a and b give the layouts; their elements are read from pa and pb, of type ab (float32,
// or bfloat16 copies laid out with a's and b's own strides), c is float32.
void gemm(const Tensor& a, const Tensor& b, const Tensor& c, float alpha, float beta, cublasComputeType_t compute,
          const void* a_data, const void* b_data, DType ab) {
    const int nd = c.dim();
    const int64_t M = c.size(-2), N = c.size(-1), K = a.size(-1);
    if (M == 0 || N == 0) return;
    AXF_CHECK(c.stride(-1) == 1 || N == 1, "matmul output %s must have contiguous rows", c.desc().c_str());
    AXF_CHECK(M == 1 || c.stride(-2) >= N, "matmul output %s: row stride %lld below the row length %lld",
              c.desc().c_str(), (long long)c.stride(-2), (long long)N);
    const MatLayout la = layout_of(a), lb = layout_of(b);
    const int64_t ldc = std::max<int64_t>(M == 1 ? N : c.stride(-2), N);

    // Batch strides of a and b broadcast to c's batch shape (missing or size-1 dims get stride 0).
    auto batch_strides = [&](const Tensor& t) {
        Shape st(static_cast<size_t>(nd - 2), 0);
        const int off = nd - t.dim();
        for (int i = 0; i < t.dim() - 2; ++i) st[off + i] = t.size(i) == 1 ? 0 : t.stride(i);
        return st;
    };
    const Shape sa = batch_strides(a), sb = batch_strides(b);
    const Shape sc(c.strides().begin(), c.strides().end() - 2);
    // Dims innermost first; operand order c, a, b.
    const std::vector<CollapsedDim<3>> dims = collapse_dims<3>(c.shape(), {&sc, &sa, &sb}, nd - 2);

    // The longest batch dim goes to cuBLAS; the others are looped over on the host.
    int inner = -1;
    for (int d = 0; d < static_cast<int>(dims.size()); ++d)
        if (inner < 0 || dims[d].size > dims[inner].size) inner = d;
    const int count = inner < 0 ? 1 : as_int(dims[inner].size, "batch count", c);
    const long long stride_c = inner < 0 ? 0 : dims[inner].stride[0];
    const long long stride_a = inner < 0 ? 0 : dims[inner].stride[1];
    const long long stride_b = inner < 0 ? 0 : dims[inner].stride[2];

    const cublasOperation_t op_a = la.row_major ? CUBLAS_OP_N : CUBLAS_OP_T;
    const cublasOperation_t op_b = lb.row_major ? CUBLAS_OP_N : CUBLAS_OP_T;
    const int m = as_int(N, "N", c), n = as_int(M, "M", c), k = as_int(K, "K", c);
    const int lda = as_int(la.ld, "lda", c), ldb = as_int(lb.ld, "ldb", c), ldcc = as_int(ldc, "ldc", c);
    cublasHandle_t h = cublas_handle();
    const cudaDataType ab_type = ab == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F;
    const int64_t esize = static_cast<int64_t>(dtype_size(ab));
    const char* pa = static_cast<const char*>(a_data);
    const char* pb = static_cast<const char*>(b_data);
    float* pc = c.f32();

    // Odometer over the looped dims (every dim except `inner`).
    std::vector<int64_t> idx(dims.size(), 0);
    for (;;) {
        int64_t oc = 0, oa = 0, ob = 0;
        for (size_t d = 0; d < dims.size(); ++d) {
            if (static_cast<int>(d) == inner) continue;
            oc += idx[d] * dims[d].stride[0];
            oa += idx[d] * dims[d].stride[1];
            ob += idx[d] * dims[d].stride[2];
        }
        if (count == 1)
            AXF_CUBLAS(cublasGemmEx(h, op_b, op_a, m, n, k, &alpha, pb + ob * esize, ab_type, ldb, pa + oa * esize,
                                    ab_type, lda, &beta, pc + oc, CUDA_R_32F, ldcc, compute, CUBLAS_GEMM_DEFAULT));
        else
            AXF_CUBLAS(cublasGemmStridedBatchedEx(h, op_b, op_a, m, n, k, &alpha, pb + ob * esize, ab_type, ldb,
                                                  stride_b, pa + oa * esize, ab_type, lda, stride_a, &beta, pc + oc,
                                                  CUDA_R_32F, ldcc, stride_c, count, compute, CUBLAS_GEMM_DEFAULT));
        size_t d = 0;
        for (; d < dims.size(); ++d) {
            if (static_cast<int>(d) == inner) continue;
            if (++idx[d] < dims[d].size) break;
            idx[d] = 0;
        }
        if (d == dims.size()) break;
    }
}

// Elements from t's first to its last (strides are never negative).
int64_t span_of(const Tensor& t) {
    int64_t span = 1;
    for (int d = 0; d < t.dim(); ++d)
        if (t.size(d) > 1) span += (t.size(d) - 1) * t.stride(d);
    return span;
}

// A bfloat16 copy of an operand (rounded to nearest-even) that the GEMM reads with the operand's own layout:
// the operand's whole memory span converted flat (cheap, and no gather through permuted strides) when the
// view covers at least half of it, else a compact row-major copy of the view. Buffers come from the pool.
struct Bf16Operand {
    Tensor layout;  // the view the GEMM's layout is taken from
    Tensor buffer;  // its bfloat16 elements
};
Bf16Operand to_bf16(const Tensor& t) {
    const int64_t span = span_of(t);
    if (span <= 2 * t.numel()) {
        Tensor buf = Tensor::empty({span}, DType::BF16, Device::CUDA);
        convert(buf, Tensor::borrow(t.raw(), {span}, DType::F32, Device::CUDA));
        return {t, buf};
    }
    Tensor compact = Tensor::empty(t.shape(), DType::BF16, Device::CUDA);
    convert(compact, t);
    return {compact, compact};
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, float alpha, float beta) {
    switch (matmul_precision()) {
        case MatmulPrecision::Fp32: gemm(a, b, c, alpha, beta, CUBLAS_COMPUTE_32F, a.raw(), b.raw(), DType::F32); return;
        case MatmulPrecision::Tf32:
            gemm(a, b, c, alpha, beta, CUBLAS_COMPUTE_32F_FAST_TF32, a.raw(), b.raw(), DType::F32);
            return;
        case MatmulPrecision::Bf16: {
            const Bf16Operand a16 = to_bf16(a), b16 = to_bf16(b);
            gemm(a16.layout, b16.layout, c, alpha, beta, CUBLAS_COMPUTE_32F, a16.buffer.raw(), b16.buffer.raw(),
                 DType::BF16);
            return;
        }
    }
}

}  // namespace axfold::cuda
