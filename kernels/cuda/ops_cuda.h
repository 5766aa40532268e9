// CUDA implementations of kernels/ops.h. Built from the .cu files in this folder when AXFOLD_CUDA is on;
// otherwise stub.cpp provides versions that throw "built without CUDA". Called only by the dispatchers in
// ops.cpp (and Tensor::copy_from), which have already checked shapes, dtypes and devices.
//
// All work is queued on the legacy default stream; results are visible to the host after the next
// device-to-host copy (Tensor::to), which synchronises.
#pragma once

#include "kernels/ops.h"

namespace axfold::cuda {

// cuBLAS SGEMM; batch dims with uniform strides become one strided-batched call, others a loop of them.
void matmul(const Tensor& a, const Tensor& b, const Tensor& c, float alpha, float beta);
void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y);
void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf);
void softmax_backward(const Tensor& y, const Tensor& dy, float scale, const Tensor& dx);
void sigmoid_mul_backward(const Tensor& x, const Tensor& gate, const Tensor& dy, const Tensor& dx, const Tensor& dgate);
void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx);
void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset);
// Logits GEMM + fused masked softmax + value GEMM, chunked over the batch; scratch from ws (a CUDA
// workspace).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
               float scale, float inf, const Tensor& out, Workspace& ws);

// Flash-style fused attention (no logits in memory) for head widths up to 64; what `attention` runs when
// AXFOLD_FUSED_ATTENTION=1. Same arguments and results as attention, without the workspace.
void attention_fused(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
                     float scale, float inf, const Tensor& out);

enum class Unary { Sigmoid, Relu, Scale, Fill };
void unary(const Tensor& x, Unary op, float s);
enum class Binary { Add, Mul, SigmoidMul, DivEps };
void binary(const Tensor& x, const Tensor& y, Binary op, float alpha);  // x = op(x, y); y may broadcast
// dst = src, both on the device, same shape and dtype, any strides (elements of 1, 2, 4 or 8 bytes).
void copy(const Tensor& dst, const Tensor& src);
// x (bfloat16) += alpha * y (float32, may broadcast), each sum rounded once to bfloat16.
void add_to_bf16(const Tensor& x, const Tensor& y, float alpha);
// dst = src between float32 and bfloat16, any strides.
void convert(const Tensor& dst, const Tensor& src);

// Tensor-core flash attention (TF32 WMMA, fp32 accumulation) for head widths up to 64: what `attention` runs
// when AXFOLD_FUSED_ATTENTION=1 and the GEMM precision is TF32 or bf16 (kernels/cuda/flash_attention.cu); its
// operands and probabilities are rounded as that precision's GEMMs round them (TF32, or bfloat16).
void attention_flash_tc(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
                        float scale, float inf, const Tensor& out);

// Structure-module, embedding and head ops (ops.h), arguments checked by the dispatchers.
void gather_rows(const Tensor& table, const Tensor& index, const Tensor& out, bool accumulate);
void apply_frames(const Tensor& rot, const Tensor& trans, const Tensor& x, const Tensor& y, bool inverse,
                  const Tensor& norms, float eps);
void weighted_sq_distances(const Tensor& a, const Tensor& c, const Tensor& weight, const Tensor& out);
void add_transpose(const Tensor& x);
void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamCoefficients& c);
void moving_average_update(const Tensor& ema, const Tensor& p, double decay);
double sum_of_squares(const Tensor& x);

}  // namespace axfold::cuda
