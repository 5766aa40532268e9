// CPU implementations of kernels/ops.h (Eigen + OpenMP). Called only by the dispatchers in ops.cpp,
// which have already checked shapes and dtypes.
#pragma once

#include "kernels/ops.h"

namespace axfold::cpu {

// What a GEMM does to each row of its output after the product: add bias (N floats), then ReLU.
struct GemmEpilogue {
    const float* bias = nullptr;
    bool relu = false;
    bool any() const { return bias || relu; }
    // The same for the output's columns from n0 on (a column block of the product).
    GemmEpilogue from_column(int64_t n0) const { return {bias ? bias + n0 : nullptr, relu}; }
};
// c = alpha a b + beta c, then bias (optional: [N] contiguous) added to every row of c and, with relu, ReLU.
void matmul(const Tensor& a, const Tensor& b, const Tensor& c, float alpha, float beta, const Tensor& bias = Tensor(),
            bool relu = false);
const char* bf16_gemm_backend();
bool set_bf16_gemm_backend(const std::string& name);
void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y);
void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf);
void softmax_backward(const Tensor& y, const Tensor& dy, float scale, const Tensor& dx);
void sigmoid_mul_backward(const Tensor& x, const Tensor& gate, const Tensor& dy, const Tensor& dx, const Tensor& dgate);
void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx);
void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset);
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias, float scale,
               float inf, const Tensor& out, Workspace& ws);
enum class Unary { Sigmoid, Relu, Scale, Fill };
void unary(const Tensor& x, Unary op, float s);
enum class Binary { Add, Mul, SigmoidMul, DivEps };
void binary(const Tensor& x, const Tensor& y, Binary op, float alpha);
// x (bfloat16) += alpha * y (float32), each sum rounded once to bfloat16.
void add_to_bf16(const Tensor& x, const Tensor& y, float alpha);
// dst = src between float32 and bfloat16 (either way), any strides.
void convert(const Tensor& dst, const Tensor& src);

void gather_rows(const Tensor& table, const Tensor& index, const Tensor& out, bool accumulate);
void apply_frames(const Tensor& rot, const Tensor& trans, const Tensor& x, const Tensor& y, bool inverse,
                  const Tensor& norms, float eps);
void weighted_sq_distances(const Tensor& a, const Tensor& c, const Tensor& weight, const Tensor& out);
void add_transpose(const Tensor& x);
void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamCoefficients& c);
void moving_average_update(const Tensor& ema, const Tensor& p, double decay);
double sum_of_squares(const Tensor& x);

// Offsets (in elements) of a tensor's last-dim rows, in row-major order of the leading dims, computed per
// row (a table of them cost a fresh allocation and a page fault per 512 rows at every call). Leading
// dimensions that merge are merged first, so a contiguous tensor's offset is one multiply.
class RowOffsets {
public:
    RowOffsets() = default;
    explicit RowOffsets(const Tensor& t);
    int64_t size() const { return rows_; }
    int64_t operator[](int64_t r) const {
        int64_t off = 0;
        for (int d = nd_ - 1; d > 0; --d) {
            const int64_t q = r / shape_[d];
            off += (r - q * shape_[d]) * stride_[d];
            r = q;
        }
        return off + r * stride_[0];
    }

private:
    static constexpr int kMaxDims = 8;
    int nd_ = 1;
    int64_t rows_ = 0, shape_[kMaxDims] = {}, stride_[kMaxDims] = {};
};
inline RowOffsets row_offsets(const Tensor& t) {
    return RowOffsets(t);
}

}  // namespace axfold::cpu
