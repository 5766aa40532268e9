// Device-neutral op API. Every op checks shapes and dtypes, then dispatches once on the device of its
// output to cpu:: (Eigen + OpenMP) or cuda:: (cuBLAS + our kernels). evoformer/ and structure/ are
// written only in these ops.
//
// Output tensors are passed as const handles (a Tensor is a view; the op writes its elements).
// Conventions: tensors are float32; "last dim contiguous" (stride 1) is required where noted; leading
// dims may have any strides, including 0 for broadcast views made with Tensor::expand.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/tensor.h"
#include "kernels/workspace.h"

namespace axfold {

// Threads used by CPU ops (OpenMP and Eigen). 0 = leave the OpenMP default.
void set_num_threads(int threads);
int num_threads();

// GEMM arithmetic, process-wide (PyTorch's float32_matmul_precision). Fp32: exact fp32 products. Tf32 and
// Bf16: every GEMM operand (weights, activations, attention logits' q and k, attention probabilities) is
// rounded to nearest-even with 10 (TF32) or 7 (bfloat16) mantissa bits, products accumulate in fp32; softmax
// and layer-norm statistics stay fp32. On CUDA this is cuBLAS's CUBLAS_COMPUTE_32F_FAST_TF32 /
// _FAST_16BF (tensor cores); on the CPU it is emulated (operands rounded, then SGEMM): slower than Fp32,
// for checking what the GPU modes do to a prediction. Activations are stored in fp32 either way.
enum class MatmulPrecision : uint8_t { Fp32, Tf32, Bf16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
// Sets the GEMM precision for a scope and restores the previous one. The precision is process-wide: two
// predictions running at once in one process would see each other's settings.
class MatmulPrecisionScope {
public:
    explicit MatmulPrecisionScope(MatmulPrecision p) : saved_(matmul_precision()) { set_matmul_precision(p); }
    ~MatmulPrecisionScope() { set_matmul_precision(saved_); }
    MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
    MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

private:
    MatmulPrecision saved_;
};
// Where CPU GEMMs run under MatmulPrecision::Bf16: "onednn" (bfloat16 dot products in oneDNN's AVX512_BF16 or
// AMX kernels, fp32 accumulation; chosen when the CPU has them and axfold was built with libdnnl-dev) or
// "emulated" (operands rounded to bfloat16, then an fp32 GEMM: the same arithmetic at fp32 speed).
// AXFOLD_BF16_GEMM=emulated keeps the emulation. set_cpu_bf16_gemm_backend("emulated" | "onednn" | "" = the
// detected one) switches it in a running process (tests, benchmarks); false where "onednn" cannot run.
const char* cpu_bf16_gemm_backend();
bool set_cpu_bf16_gemm_backend(const std::string& name);
const char* precision_name(MatmulPrecision p);             // "fp32", "tf32", "bf16"
MatmulPrecision parse_precision(const std::string& name);  // throws naming the accepted values
// x rounded to nearest-even with `mantissa_bits` explicit mantissa bits (7: bfloat16, 10: TF32); infinities and
// NaNs unchanged. Inline and branch-free, so that the CPU kernels' loops over it vectorise.
inline float round_mantissa(float x, int mantissa_bits) {
    const int drop = 23 - mantissa_bits;
    if (drop <= 0) return x;  // float32 keeps 23 bits
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    const uint32_t half = (1u << (drop - 1)) - 1u + ((u >> drop) & 1u);  // ties to even
    const uint32_t r = (u + half) & ~((1u << drop) - 1u);
    float y;
    std::memcpy(&y, &r, sizeof y);
    return (u & 0x7f800000u) == 0x7f800000u ? x : y;
}

// Per-run state handed to every module: workspace arena and device.
struct Context {
    explicit Context(Device d = Device::CPU) : device(d), ws(d) {}
    Device device;
    Workspace ws;
    // Storage of the trunk's MSA and pair activations (the residual streams) between modules: F32, or BF16
    // (--precision bf16: half the memory; each residual update is rounded once to bfloat16, every module
    // computes in float32 from the widened values). Workspace temporaries are float32 either way.
    DType activation_dtype = DType::F32;
    // Rows of the batch-like axis each memory-heavy module processes at a time (OpenFold's chunk_size);
    // 0 = unchunked. Results do not depend on it beyond rounding. Set by the planner or --chunk-size.
    int64_t chunk_size = 0;
};

// c = alpha * a @ b + beta * c, batched over leading dims (a, b broadcast to c's batch shape).
// a [..., M, K], b [..., K, N], c [..., M, N]. Each matrix of a and b is row-major (stride(-1) == 1) or
// column-major (stride(-2) == 1, e.g. a transposed view); c must be row-major.
void matmul(const Tensor& a, const Tensor& b, const Tensor& c, float alpha = 1.f, float beta = 0.f);

// AF2 Linear: y = x @ w + bias, with w in AF2 layout [c_in, ...] viewed as [c_in, prod(rest)] and y's
// trailing dims flattened to match. x [..., c_in] (rows may be strided), y [..., c_out] contiguous rows.
// bias may be undefined; beta = 1 accumulates into y (residual update in place).
void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, float beta = 0.f);
// Same, allocating y [..., prod(w.shape[1:])] from the workspace.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, Workspace& ws);
// relu(x @ w + bias), allocated likewise; on the CPU the ReLU runs on each block of rows while it is in cache.
Tensor linear_relu(const Tensor& x, const Tensor& w, const Tensor& bias, Workspace& ws);

// y = (x - mean) / sqrt(var + eps) * scale + offset over the last dim; y may alias x. x may be bfloat16
// (a stored activation; y is float32 then).
void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y);
Tensor layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, Workspace& ws);

// In place over the last dim: x = softmax(scale * x + bias + inf * (mask - 1)).
// mask and bias are optional (undefined) views with x's shape (broadcast with expand).
void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf);

// Backward passes (training). Rows contiguous (x, y, dy, dx of the same shape; dx may alias dy).
// softmax_backward: y = softmax(scale * x + bias + mask term) as the forward op left it, dy = dL/dy;
// writes dx = dL/dx = scale * y * (dy - sum_k dy y). dL/dbias is dx / scale; the mask has no gradient.
void softmax_backward(const Tensor& y, const Tensor& dy, float scale, const Tensor& dx);
// layer_norm_backward: x the forward input, dy = dL/dy; writes dx and ADDS dL/dscale and dL/doffset ([C])
// into dscale and doffset, so chunked callers accumulate over chunks (zero them first).
void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset);
// The same with dx accumulated (dx += dL/dx; through a workspace temporary) when accumulate_dx.
void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         bool accumulate_dx, const Tensor& dscale, const Tensor& doffset, Workspace& ws);

// relu_backward: y = relu(x) as the forward op left it, dy = dL/dy; writes dx = dy where y > 0, else 0 (all
// contiguous, one shape; dx may alias dy).
void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx);
// linear_backward: for y = x @ w + bias (linear above; x and dy contiguous), dy = dL/dy: dx = (or, with
// accumulate_dx, +=) dy @ w^T when dx is defined; dw += x^T @ dy and dbias += the column sums of dy when
// defined (parameter gradients accumulate over chunks and calls).
void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor& dx, bool accumulate_dx,
                     const Tensor& dw, const Tensor& dbias, Workspace& ws);
// sigmoid_mul_backward: y = x * sigmoid(gate) forward, dy = dL/dy; writes dx = dy * sigmoid(gate) and
// dgate = dy * x * sigmoid(gate) * (1 - sigmoid(gate)). All contiguous, same shape; dx may alias dy.
void sigmoid_mul_backward(const Tensor& x, const Tensor& gate, const Tensor& dy, const Tensor& dx, const Tensor& dgate);

// AXFOLD_FUSED_ATTENTION=1: CUDA attention runs a fused kernel where it applies (head width <= 64): under fp32
// GEMMs the CUDA-core kernel (kernels/cuda/attention.cu), under TF32 or bf16 the tensor-core flash kernel
// (kernels/cuda/flash_attention.cu). Read once per process.
bool fused_attention_requested();

// attention_backward: for out = attention(q, k, v, mask, bias, scale, inf) (below) and dout = dL/dout, writes
// dq, dk, dv (= dL/d; [B,Q,H,C] / [B,K,H,C], last dim contiguous) and, when defined, adds dL/dbias [H,Q,K]
// (contiguous) into dbias. The logits are recomputed per block of batch elements (at most 64 Mi floats).
void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
                        float scale, float inf, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv, const Tensor& dbias, Workspace& ws);
// Multi-head attention core (AF2 Attention without projections):
//   out[b,q,h,:] = sum_k w[b,h,q,k] v[b,k,h,:],
//   w = softmax_k(scale * q[b,q,h,:].k[b,k,h,:] + bias[h,q,k] + inf * (mask[b,k] - 1)).
// q [B,Q,H,C], k and v [B,K,H,C], out [B,Q,H,C]: any batch/row strides, last dim contiguous.
// mask [B,K] and bias [H,Q,K] are optional (undefined).
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias, float scale,
               float inf, const Tensor& out, Workspace& ws);

// Structure-module, embedding and head ops: the model's former per-pair host loops, so that every pair-sized
// computation runs on the model's device (only per-residue frame algebra stays on the host).
//
// Embedding lookup (a one-hot feature times a weight matrix, without the one-hot): out[m, :] = (accumulate ?
// out[m, :] : 0) + table[index[m], :]; rows with index[m] < 0 get nothing added (0 when not accumulating).
// table [V, C] float32 with contiguous rows; index int64 [M] contiguous, each < V (checked on the CPU; the
// caller's contract on CUDA); out [M, C] float32 with contiguous rows (any row stride).
void gather_rows(const Tensor& table, const Tensor& index, const Tensor& out, bool accumulate);
// Rigid frames applied to points: y[n, k, :] = R[n] x[n, k, :] + t[n], or with inverse R[n]^T (x[n, k, :] - t[n]).
// rot [N, 3, 3] and trans [N, 3] contiguous float32; x and y [N, K, 3] float32 with any strides (y must not
// overlap x). With norms [N, K] (any strides) defined, also norms[n, k] = sqrt(eps + |y[n, k, :]|^2).
// Sums run in the order written (row by row of R; for the inverse, column by column), as the CPU loops did.
void apply_frames(const Tensor& rot, const Tensor& trans, const Tensor& x, const Tensor& y, bool inverse,
                  const Tensor& norms = Tensor(), float eps = 0.f);
// Weighted squared distances between two point sets: out[b, i, j] = weight[b] * sum_d (a[b, i, d] - c[b, j, d])^2,
// the sum in order of d. a [B, I, D] and c [B, J, D] with contiguous last dims and any other strides; weight [B]
// contiguous; out [B, I, J] with a contiguous last dim. (IPA's point logits, D = 3 * points per head.)
void weighted_sq_distances(const Tensor& a, const Tensor& c, const Tensor& weight, const Tensor& out);
// In place over square leading dims: x[i, j, :] = x[j, i, :] = x[i, j, :] + x[j, i, :] (so x[i, i, :] doubles).
// x [N, N, C] contiguous float32. (The distogram's symmetric logits from its half logits.)
void add_transpose(const Tensor& x);

// Elementwise, in place; y broadcast views allowed where y has x's shape. float32, except that add's x
// may be a bfloat16 activation (each sum rounded once to nearest-even).
void add(const Tensor& x, const Tensor& y, float alpha = 1.f);  // x += alpha * y
void mul(const Tensor& x, const Tensor& y);                     // x *= y
void scale(const Tensor& x, float s);                           // x *= s
void fill(const Tensor& x, float value);                        // x = value (any device)
void sigmoid(const Tensor& x);
void relu(const Tensor& x);
void sigmoid_mul(const Tensor& x, const Tensor& gate);      // x *= sigmoid(gate)
void div_eps(const Tensor& x, const Tensor& y, float eps);  // x /= (y + eps)
// Copy with a change of strides (e.g. materialise a permuted view): dst and src same shape; same dtype, or
// float32 <-> bfloat16 (rounded to nearest-even; widening is exact).
void copy(const Tensor& dst, const Tensor& src);
// A module's update into its output: dst += src (accumulate, a residual update) or dst = src. dst float32 or a
// bfloat16 activation; src float32.
void write_update(const Tensor& dst, const Tensor& src, bool accumulate);
// A module's output projection as an update: dst = or += x @ w + bias (accumulate). Straight into dst when it
// is a contiguous float32 tensor; otherwise (bfloat16 activations, strided or permuted views) into `scratch`
// (float32, contiguous, dst.numel() elements: a buffer the caller no longer needs) and from there into dst.
void linear_update(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& dst, bool accumulate,
                   const Tensor& scratch);
// x in `dtype` on x's device (x itself when it already is).
Tensor to_dtype(const Tensor& x, DType dtype);

// The optimizer's element-wise steps (training/optimizer.h), in float64 arithmetic on float32 storage, on the
// tensors' device; every tensor contiguous float32, of one shape and device.
// Adam (optax's, eps outside the root) with the gradient scaled by grad_scale (clipping):
//   g' = grad_scale g, m = beta1 m + (1 - beta1) g', v = beta2 v + (1 - beta2) g'^2,
//   p -= lr (m / bias1) / (sqrt(v / bias2) + eps), with bias1 = 1 - beta1^t and bias2 = 1 - beta2^t.
struct AdamCoefficients {
    double lr, beta1, beta2, eps, bias1, bias2, grad_scale;
};
void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamCoefficients& c);
// ema = decay ema + (1 - decay) p.
void moving_average_update(const Tensor& ema, const Tensor& p, double decay);
// sum x^2 over every element, accumulated in float64 in a fixed order (the same sum at every call).
double sum_of_squares(const Tensor& x);

}  // namespace axfold
