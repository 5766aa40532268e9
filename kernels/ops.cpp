// Op dispatch: shape and dtype checks at the boundary, then one branch on the output's device.
#include "kernels/ops.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/cuda/ops_cuda.h"
#include "kernels/device.h"

namespace axfold {

namespace {

void check_f32(const Tensor& t, const char* op, const char* name) {
    AXF_CHECK(t.defined(), "%s: %s is undefined", op, name);
    AXF_CHECK(t.dtype() == DType::F32, "%s: %s must be float32, got %s", op, name, t.desc().c_str());
}

// float32, or bfloat16 where a stored activation (the MSA or pair residual stream) may be read or updated.
void check_activation(const Tensor& t, const char* op, const char* name) {
    AXF_CHECK(t.defined(), "%s: %s is undefined", op, name);
    AXF_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, "%s: %s must be float32 or bfloat16, got %s", op,
              name, t.desc().c_str());
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
    AXF_CHECK(!b.defined() || a.device() == b.device(), "%s: tensors on different devices (%s vs %s)", op,
              a.desc().c_str(), b.desc().c_str());
}

void check_last_contiguous(const Tensor& t, const char* op, const char* name) {
    AXF_CHECK(t.dim() >= 1 && (t.stride(-1) == 1 || t.size(-1) == 1), "%s: %s %s needs a contiguous last dim", op, name,
              t.desc().c_str());
}

// Leading dims of x merged into one row dim of stride *row_stride when the strides allow it (no copy).
bool merged_row_stride(const Tensor& x, int64_t* row_stride) {
    *row_stride = x.size(-1);
    int prev = -1;
    for (int i = x.dim() - 2; i >= 0; --i) {
        if (x.size(i) == 1) continue;
        if (prev < 0)
            *row_stride = x.stride(i);
        else if (x.stride(i) != x.stride(prev) * x.size(prev))
            return false;
        prev = i;
    }
    return *row_stride >= x.size(-1);
}

// Whether an op on t's device runs the CUDA kernels: not under DeviceEmulation, whose device tensors take the
// CPU kernels (each public op holds a KernelAccess while it runs: kernels/device.h).
bool on_gpu(const Tensor& t) {
    return t.device() == Device::CUDA && !device_emulated();
}

}  // namespace

void set_num_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
}

int num_threads() {
    return omp_get_max_threads();
}

namespace {
std::atomic<MatmulPrecision> g_matmul_precision{MatmulPrecision::Fp32};
}

bool fused_attention_requested() {
    static const bool on = [] {
        const char* e = std::getenv("AXFOLD_FUSED_ATTENTION");
        return e && std::string(e) == "1";
    }();
    return on;
}

void set_matmul_precision(MatmulPrecision p) {
    g_matmul_precision.store(p);
}
MatmulPrecision matmul_precision() {
    return g_matmul_precision.load();
}

const char* precision_name(MatmulPrecision p) {
    switch (p) {
        case MatmulPrecision::Fp32:
            return "fp32";
        case MatmulPrecision::Tf32:
            return "tf32";
        case MatmulPrecision::Bf16:
            return "bf16";
    }
    return "?";
}

MatmulPrecision parse_precision(const std::string& name) {
    for (MatmulPrecision p : {MatmulPrecision::Fp32, MatmulPrecision::Tf32, MatmulPrecision::Bf16})
        if (name == precision_name(p)) return p;
    AXF_FAIL("precision '%s': expected fp32, tf32 or bf16", name.c_str());
}

const char* cpu_bf16_gemm_backend() {
    return cpu::bf16_gemm_backend();
}
bool set_cpu_bf16_gemm_backend(const std::string& name) {
    return cpu::set_bf16_gemm_backend(name);
}

void matmul(const Tensor& a, const Tensor& b, const Tensor& c, float alpha, float beta) {
    const KernelAccess kernel;
    check_f32(a, "matmul", "a");
    check_f32(b, "matmul", "b");
    check_f32(c, "matmul", "c");
    AXF_CHECK(a.dim() >= 2 && b.dim() >= 2 && c.dim() >= 2 && a.dim() <= c.dim() && b.dim() <= c.dim(),
              "matmul: ranks of %s @ %s -> %s", a.desc().c_str(), b.desc().c_str(), c.desc().c_str());
    AXF_CHECK(a.size(-1) == b.size(-2) && a.size(-2) == c.size(-2) && b.size(-1) == c.size(-1),
              "matmul: shapes %s @ %s -> %s do not agree", shape_str(a.shape()).c_str(), shape_str(b.shape()).c_str(),
              shape_str(c.shape()).c_str());
    for (const Tensor* t : {&a, &b}) {
        int off = c.dim() - t->dim();
        for (int i = 0; i < t->dim() - 2; ++i)
            AXF_CHECK(t->size(i) == c.size(off + i) || t->size(i) == 1,
                      "matmul: batch dims of %s do not broadcast to %s", t->desc().c_str(), c.desc().c_str());
    }
    check_same_device(c, a, "matmul");
    check_same_device(c, b, "matmul");
    if (c.numel() == 0) return;
    if (on_gpu(c))
        cuda::matmul(a, b, c, alpha, beta);
    else
        cpu::matmul(a, b, c, alpha, beta);
}

namespace {
// AF2 layouts flatten on both sides: [c_in, ...] for projections, [H, c, c_out] for outputs, so the input width is
// whichever leading prefix of w's dims multiplies to x's last dim. Returns c_out = w.numel() / c_in.
int64_t linear_out_features(const Tensor& x, const Tensor& w, const char* op) {
    const int64_t c_in = x.size(-1);
    AXF_CHECK(w.is_contiguous(), "%s: weights %s must be contiguous", op, w.desc().c_str());
    int64_t prefix = 1;
    for (int i = 0; i < w.dim() && prefix < c_in; ++i) prefix *= w.size(i);
    AXF_CHECK(prefix == c_in && c_in > 0, "%s: input %s has %lld features, weights %s do not start with that", op,
              shape_str(x.shape()).c_str(), (long long)c_in, shape_str(w.shape()).c_str());
    return w.numel() / c_in;
}
}  // namespace

namespace {
void linear_impl(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, float beta, bool relu) {
    check_f32(x, "linear", "x");
    check_f32(w, "linear", "w");
    check_f32(y, "linear", "y");
    const int64_t c_in = x.size(-1), c_out = linear_out_features(x, w, "linear");
    AXF_CHECK(y.is_contiguous() && y.numel() == x.numel() / std::max<int64_t>(c_in, 1) * c_out,
              "linear: output %s does not fit input %s and weights %s", y.desc().c_str(), shape_str(x.shape()).c_str(),
              shape_str(w.shape()).c_str());
    if (bias.defined()) {
        check_f32(bias, "linear", "bias");
        AXF_CHECK(bias.numel() == c_out, "linear: bias %s for %lld outputs", shape_str(bias.shape()).c_str(),
                  (long long)c_out);
    }
    check_same_device(y, x, "linear");
    check_same_device(y, w, "linear");
    check_same_device(y, bias, "linear");
    const int64_t rows = x.numel() / std::max<int64_t>(c_in, 1);
    int64_t row_stride = 0;
    Tensor x2;
    if (x.dim() == 2 && x.stride(0) == 1 && x.stride(1) >= rows)
        x2 = x;  // column-major input (a transposed view): the GEMM reads it as is
    else if ((x.stride(-1) == 1 || c_in == 1) && merged_row_stride(x, &row_stride))
        x2 = Tensor::borrow(x.raw(), {rows, row_stride}, DType::F32, x.device()).slice(1, 0, c_in);
    else
        x2 = x.contiguous().view({rows, c_in});
    Tensor y2 = y.view({rows, c_out});
    Tensor w2 = w.view({c_in, c_out});
    if (on_gpu(y)) {
        if (rows == 0) return;
        if (bias.defined()) {
            // y = bias (or y += bias), then accumulate the product, as on the CPU.
            AXF_CHECK(bias.is_contiguous(), "linear: bias %s must be contiguous", bias.desc().c_str());
            Tensor b2 = bias.view({1, c_out}).expand({rows, c_out});
            if (beta == 0.f)
                cuda::copy(y2, b2);
            else
                cuda::binary(y2, b2, cuda::Binary::Add, 1.f);
            cuda::matmul(x2, w2, y2, 1.f, 1.f);
        } else {
            cuda::matmul(x2, w2, y2, 1.f, beta);
        }
        if (relu) cuda::unary(y2, cuda::Unary::Relu, 0.f);
        return;
    }
    // The bias (and ReLU) are applied block by block, while each block of rows is in cache.
    cpu::matmul(x2, w2, y2, 1.f, beta, bias.defined() ? bias.contiguous().view({c_out}) : Tensor(), relu);
}
}  // namespace

void linear(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y, float beta) {
    const KernelAccess kernel;
    linear_impl(x, w, bias, y, beta, false);
}

namespace {
// A linear layer's output [..., prod(w.shape[1:])] from the workspace, computed (with ReLU or not).
Tensor linear_alloc(const Tensor& x, const Tensor& w, const Tensor& bias, Workspace& ws, bool relu) {
    Shape s = x.shape();
    s.back() = w.numel() / std::max<int64_t>(x.size(-1), 1);
    Tensor y = ws.alloc(s);
    linear_impl(x, w, bias, y, 0.f, relu);
    return y;
}
}  // namespace

Tensor linear_relu(const Tensor& x, const Tensor& w, const Tensor& bias, Workspace& ws) {
    const KernelAccess kernel;
    return linear_alloc(x, w, bias, ws, true);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, Workspace& ws) {
    const KernelAccess kernel;
    return linear_alloc(x, w, bias, ws, false);
}

void layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, const Tensor& y) {
    const KernelAccess kernel;
    check_activation(x, "layer_norm", "x");
    check_f32(y, "layer_norm", "y");
    check_f32(scale, "layer_norm", "scale");
    check_f32(offset, "layer_norm", "offset");
    AXF_CHECK(x.shape() == y.shape(), "layer_norm: input %s, output %s", x.desc().c_str(), y.desc().c_str());
    AXF_CHECK(scale.numel() == x.size(-1) && offset.numel() == x.size(-1),
              "layer_norm: %lld channels but scale %s, offset %s", (long long)x.size(-1),
              shape_str(scale.shape()).c_str(), shape_str(offset.shape()).c_str());
    // Either channels contiguous, or a 2-D [M, C] view of channel-major memory (stride(0) == 1).
    const bool channels_major = x.dim() == 2 && x.stride(0) == 1 && y.stride(0) == 1 && y.dim() == 2;
    if (!channels_major) {
        check_last_contiguous(x, "layer_norm", "x");
        check_last_contiguous(y, "layer_norm", "y");
    }
    check_same_device(y, x, "layer_norm");
    if (on_gpu(y))
        cuda::layer_norm(x, scale, offset, eps, y);
    else
        cpu::layer_norm(x, scale, offset, eps, y);
}

void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         const Tensor& dscale, const Tensor& doffset) {
    const KernelAccess kernel;
    for (const Tensor* t : {&x, &scale, &dy, &dx, &dscale, &doffset}) {
        check_f32(*t, "layer_norm_backward", "operand");
        AXF_CHECK(t->is_contiguous(), "layer_norm_backward: operand %s must be contiguous", t->desc().c_str());
        check_same_device(x, *t, "layer_norm_backward");
    }
    AXF_CHECK(dy.shape() == x.shape() && dx.shape() == x.shape(), "layer_norm_backward: x %s, dy %s, dx %s",
              x.desc().c_str(), dy.desc().c_str(), dx.desc().c_str());
    const int64_t C = x.size(-1);
    AXF_CHECK(scale.numel() == C && dscale.numel() == C && doffset.numel() == C,
              "layer_norm_backward: %lld channels but scale %s, dscale %s, doffset %s", (long long)C,
              scale.desc().c_str(), dscale.desc().c_str(), doffset.desc().c_str());
    if (x.numel() == 0) return;
    if (on_gpu(x))
        cuda::layer_norm_backward(x, scale, eps, dy, dx, dscale, doffset);
    else
        cpu::layer_norm_backward(x, scale, eps, dy, dx, dscale, doffset);
}

void sigmoid_mul_backward(const Tensor& x, const Tensor& gate, const Tensor& dy, const Tensor& dx,
                          const Tensor& dgate) {
    const KernelAccess kernel;
    for (const Tensor* t : {&x, &gate, &dy, &dx, &dgate}) {
        check_f32(*t, "sigmoid_mul_backward", "operand");
        AXF_CHECK(t->is_contiguous(), "sigmoid_mul_backward: operand %s must be contiguous", t->desc().c_str());
        AXF_CHECK(t->shape() == x.shape(), "sigmoid_mul_backward: x %s, operand %s", x.desc().c_str(),
                  t->desc().c_str());
        check_same_device(x, *t, "sigmoid_mul_backward");
    }
    if (x.numel() == 0) return;
    if (on_gpu(x))
        cuda::sigmoid_mul_backward(x, gate, dy, dx, dgate);
    else
        cpu::sigmoid_mul_backward(x, gate, dy, dx, dgate);
}

void layer_norm_backward(const Tensor& x, const Tensor& scale, float eps, const Tensor& dy, const Tensor& dx,
                         bool accumulate_dx, const Tensor& dscale, const Tensor& doffset, Workspace& ws) {
    const KernelAccess kernel;
    if (!accumulate_dx) return layer_norm_backward(x, scale, eps, dy, dx, dscale, doffset);
    WorkspaceScope scope(ws);
    Tensor d = ws.alloc(x.shape());
    layer_norm_backward(x, scale, eps, dy, d, dscale, doffset);
    add(dx, d);
}

void relu_backward(const Tensor& y, const Tensor& dy, const Tensor& dx) {
    const KernelAccess kernel;
    for (const Tensor* t : {&y, &dy, &dx}) {
        check_f32(*t, "relu_backward", "operand");
        AXF_CHECK(t->is_contiguous(), "relu_backward: operand %s must be contiguous", t->desc().c_str());
        AXF_CHECK(t->shape() == y.shape(), "relu_backward: y %s, operand %s", y.desc().c_str(), t->desc().c_str());
        check_same_device(y, *t, "relu_backward");
    }
    if (y.numel() == 0) return;
    if (on_gpu(y))
        cuda::relu_backward(y, dy, dx);
    else
        cpu::relu_backward(y, dy, dx);
}

void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, const Tensor& dx, bool accumulate_dx,
                     const Tensor& dw, const Tensor& dbias, Workspace& ws) {
    const KernelAccess kernel;
    const int64_t c_in = x.size(-1), c_out = linear_out_features(x, w, "linear_backward");
    AXF_CHECK(dy.numel() * c_in == x.numel() * c_out, "linear_backward: x %s, w %s, dy %s", x.desc().c_str(),
              w.desc().c_str(), dy.desc().c_str());
    AXF_CHECK(x.is_contiguous() && dy.is_contiguous(), "linear_backward: x %s and dy %s must be contiguous",
              x.desc().c_str(), dy.desc().c_str());
    const int64_t rows = x.numel() / std::max<int64_t>(c_in, 1);
    const Tensor x2 = x.view({rows, c_in}), dy2 = dy.view({rows, c_out}), w2 = w.view({c_in, c_out});
    if (dx.defined()) {
        AXF_CHECK(dx.is_contiguous() && dx.numel() == x.numel(), "linear_backward: dx %s for x %s", dx.desc().c_str(),
                  x.desc().c_str());
        matmul(dy2, w2.transpose(0, 1), dx.view({rows, c_in}), 1.f, accumulate_dx ? 1.f : 0.f);
    }
    if (dw.defined()) {
        AXF_CHECK(dw.is_contiguous() && dw.numel() == w.numel(), "linear_backward: dw %s for w %s", dw.desc().c_str(),
                  w.desc().c_str());
        matmul(x2.transpose(0, 1), dy2, dw.view({c_in, c_out}), 1.f, 1.f);
    }
    if (dbias.defined()) {
        AXF_CHECK(dbias.is_contiguous() && dbias.numel() == c_out, "linear_backward: dbias %s for %lld outputs",
                  dbias.desc().c_str(), (long long)c_out);
        WorkspaceScope scope(ws);
        Tensor ones = ws.alloc({1, rows});
        fill(ones, 1.f);
        matmul(ones, dy2, dbias.view({1, c_out}), 1.f, 1.f);
    }
}

void softmax_backward(const Tensor& y, const Tensor& dy, float scale, const Tensor& dx) {
    const KernelAccess kernel;
    for (const Tensor* t : {&y, &dy, &dx}) {
        check_f32(*t, "softmax_backward", "operand");
        AXF_CHECK(t->is_contiguous(), "softmax_backward: operand %s must be contiguous", t->desc().c_str());
        AXF_CHECK(t->shape() == y.shape(), "softmax_backward: y %s, operand %s", y.desc().c_str(), t->desc().c_str());
        check_same_device(y, *t, "softmax_backward");
    }
    if (y.numel() == 0) return;
    if (on_gpu(y))
        cuda::softmax_backward(y, dy, scale, dx);
    else
        cpu::softmax_backward(y, dy, scale, dx);
}

Tensor layer_norm(const Tensor& x, const Tensor& scale, const Tensor& offset, float eps, Workspace& ws) {
    const KernelAccess kernel;
    Tensor y = ws.alloc(x.shape());
    layer_norm(x, scale, offset, eps, y);
    return y;
}

void softmax(const Tensor& x, float scale, const Tensor& mask, const Tensor& bias, float inf) {
    const KernelAccess kernel;
    check_f32(x, "softmax", "x");
    check_last_contiguous(x, "softmax", "x");
    for (const Tensor* t : {&mask, &bias}) {
        if (!t->defined()) continue;
        check_f32(*t, "softmax", "mask/bias");
        AXF_CHECK(t->shape() == x.shape(), "softmax: mask/bias %s must be expanded to %s", t->desc().c_str(),
                  shape_str(x.shape()).c_str());
        check_same_device(x, *t, "softmax");
    }
    if (x.numel() == 0) return;
    if (on_gpu(x))
        cuda::softmax(x, scale, mask, bias, inf);
    else
        cpu::softmax(x, scale, mask, bias, inf);
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias, float scale,
               float inf, const Tensor& out, Workspace& ws) {
    const KernelAccess kernel;
    check_f32(q, "attention", "q");
    check_f32(k, "attention", "k");
    check_f32(v, "attention", "v");
    check_f32(out, "attention", "out");
    AXF_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && out.shape() == q.shape(),
              "attention: q %s, k %s, v %s, out %s must be [B,Q,H,C], [B,K,H,C]", q.desc().c_str(), k.desc().c_str(),
              v.desc().c_str(), out.desc().c_str());
    AXF_CHECK(k.shape() == v.shape() && k.size(0) == q.size(0) && k.size(2) == q.size(2) && k.size(3) == q.size(3),
              "attention: q %s, k %s, v %s disagree", shape_str(q.shape()).c_str(), shape_str(k.shape()).c_str(),
              shape_str(v.shape()).c_str());
    for (const Tensor* t : {&q, &k, &v, static_cast<const Tensor*>(&out)})
        check_last_contiguous(*t, "attention", "operand");
    if (mask.defined()) {
        check_f32(mask, "attention", "mask");
        AXF_CHECK(mask.dim() == 2 && mask.size(0) == q.size(0) && mask.size(1) == k.size(1),
                  "attention: mask %s, expected [%lld, %lld]", mask.desc().c_str(), (long long)q.size(0),
                  (long long)k.size(1));
    }
    if (bias.defined()) {
        check_f32(bias, "attention", "bias");
        AXF_CHECK(
            bias.dim() == 3 && bias.size(0) == q.size(2) && bias.size(1) == q.size(1) && bias.size(2) == k.size(1),
            "attention: bias %s, expected [%lld, %lld, %lld]", bias.desc().c_str(), (long long)q.size(2),
            (long long)q.size(1), (long long)k.size(1));
    }
    for (const Tensor* t : {&q, &k, &v, &mask, &bias}) check_same_device(out, *t, "attention");
    if (out.numel() == 0) return;
    if (on_gpu(out))
        cuda::attention(q, k, v, mask, bias, scale, inf, out, ws);
    else
        cpu::attention(q, k, v, mask, bias, scale, inf, out, ws);
}

void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
                        float scale, float inf, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                        const Tensor& dv, const Tensor& dbias, Workspace& ws) {
    const KernelAccess kernel;
    const int64_t B = q.size(0), Q = q.size(1), H = q.size(2), K = k.size(1);
    AXF_CHECK(q.dim() == 4 && k.dim() == 4 && v.shape() == k.shape() && dout.shape() == q.shape() &&
                  dq.shape() == q.shape() && dk.shape() == k.shape() && dv.shape() == v.shape(),
              "attention_backward: q %s, k %s, v %s, dout %s, dq %s, dk %s, dv %s", q.desc().c_str(), k.desc().c_str(),
              v.desc().c_str(), dout.desc().c_str(), dq.desc().c_str(), dk.desc().c_str(), dv.desc().c_str());
    for (const Tensor* t : {&q, &k, &v, &dout, &dq, &dk, &dv})
        check_last_contiguous(*t, "attention_backward", "operand");
    AXF_CHECK(!dbias.defined() || (bias.defined() && dbias.is_contiguous() && dbias.shape() == Shape({H, Q, K})),
              "attention_backward: dbias %s needs a bias and shape [%lld, %lld, %lld]", dbias.desc().c_str(),
              (long long)H, (long long)Q, (long long)K);
    if (q.numel() == 0 || K == 0) return;
    const int64_t per_batch = std::max<int64_t>(H * Q * K, 1);
    const int64_t chunk = std::clamp<int64_t>((int64_t(64) << 20) / per_batch, 1, B);
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        WorkspaceScope scope(ws);
        const int64_t nb = std::min(chunk, B - b0);
        auto heads = [&](const Tensor& t) { return t.slice(0, b0, b0 + nb).permute({0, 2, 1, 3}); };  // [nb,H,.,C]
        const Tensor qh = heads(q), kh = heads(k), vh = heads(v), doh = heads(dout);
        // The probabilities, as the forward forms them.
        Tensor w = ws.alloc({nb, H, Q, K});
        matmul(qh, kh.transpose(2, 3), w);
        const Tensor m =
            mask.defined() ? mask.slice(0, b0, b0 + nb).unsqueeze(1).unsqueeze(1).expand({nb, H, Q, K}) : Tensor();
        const Tensor bb = bias.defined() ? bias.unsqueeze(0).expand({nb, H, Q, K}) : Tensor();
        softmax(w, scale, m, bb, inf);
        // out = w v: dv = w^T dout, dw = dout v^T.
        matmul(w.transpose(2, 3), doh, heads(dv));
        Tensor dw = ws.alloc({nb, H, Q, K});
        matmul(doh, vh.transpose(2, 3), dw);
        // Through the softmax to the dot products q.k (dL/dbias = that / scale), then to q and k.
        softmax_backward(w, dw, scale, dw);
        if (dbias.defined()) {
            Tensor ones = ws.alloc({1, nb});
            fill(ones, 1.f);
            matmul(ones, dw.view({nb, H * Q * K}), dbias.view({1, H * Q * K}), 1.f / scale, 1.f);
        }
        matmul(dw, kh, heads(dq));
        matmul(dw.transpose(2, 3), qh, heads(dk));
    }
}

void gather_rows(const Tensor& table, const Tensor& index, const Tensor& out, bool accumulate) {
    const KernelAccess kernel;
    check_f32(table, "gather_rows", "table");
    check_f32(out, "gather_rows", "out");
    AXF_CHECK(index.defined() && index.dtype() == DType::I64 && index.dim() == 1 && index.is_contiguous(),
              "gather_rows: index %s must be contiguous int64 [M]", index.desc().c_str());
    AXF_CHECK(table.dim() == 2 && (table.stride(1) == 1 || table.size(1) <= 1) && table.stride(0) == table.size(1),
              "gather_rows: table %s must be a contiguous [V, C]", table.desc().c_str());
    AXF_CHECK(out.dim() == 2 && out.size(0) == index.size(0) && out.size(1) == table.size(1),
              "gather_rows: out %s for index %s and table %s, expected [M, C]", out.desc().c_str(),
              index.desc().c_str(), table.desc().c_str());
    check_last_contiguous(out, "gather_rows", "out");
    check_same_device(out, table, "gather_rows");
    check_same_device(out, index, "gather_rows");
    if (out.numel() == 0) return;
    if (on_gpu(out))
        cuda::gather_rows(table, index, out, accumulate);
    else
        cpu::gather_rows(table, index, out, accumulate);
}

void apply_frames(const Tensor& rot, const Tensor& trans, const Tensor& x, const Tensor& y, bool inverse,
                  const Tensor& norms, float eps) {
    const KernelAccess kernel;
    for (const Tensor* t : {&rot, &trans, &x, &y}) check_f32(*t, "apply_frames", "operand");
    const int64_t N = x.dim() == 3 ? x.size(0) : -1;
    AXF_CHECK(rot.is_contiguous() && trans.is_contiguous() && rot.numel() == N * 9 && trans.numel() == N * 3 &&
                  rot.size(-1) == 3 && trans.size(-1) == 3,
              "apply_frames: frames %s / %s must be contiguous [N, 3, 3] / [N, 3] for points %s", rot.desc().c_str(),
              trans.desc().c_str(), x.desc().c_str());
    AXF_CHECK(x.dim() == 3 && x.size(2) == 3 && y.shape() == x.shape(),
              "apply_frames: points %s -> %s, expected [N, K, 3]", x.desc().c_str(), y.desc().c_str());
    if (norms.defined()) {
        check_f32(norms, "apply_frames", "norms");
        AXF_CHECK(norms.dim() == 2 && norms.size(0) == N && norms.size(1) == x.size(1),
                  "apply_frames: norms %s for points %s, expected [N, K]", norms.desc().c_str(), x.desc().c_str());
    }
    for (const Tensor* t : {&rot, &trans, &x, &norms}) check_same_device(y, *t, "apply_frames");
    if (y.numel() == 0) return;
    if (on_gpu(y))
        cuda::apply_frames(rot, trans, x, y, inverse, norms, eps);
    else
        cpu::apply_frames(rot, trans, x, y, inverse, norms, eps);
}

void weighted_sq_distances(const Tensor& a, const Tensor& c, const Tensor& weight, const Tensor& out) {
    const KernelAccess kernel;
    for (const Tensor* t : {&a, &c, &weight, &out}) check_f32(*t, "weighted_sq_distances", "operand");
    AXF_CHECK(a.dim() == 3 && c.dim() == 3 && out.dim() == 3 && a.size(0) == c.size(0) && a.size(2) == c.size(2) &&
                  out.size(0) == a.size(0) && out.size(1) == a.size(1) && out.size(2) == c.size(1),
              "weighted_sq_distances: %s and %s -> %s, expected [B, I, D], [B, J, D] -> [B, I, J]", a.desc().c_str(),
              c.desc().c_str(), out.desc().c_str());
    AXF_CHECK(weight.dim() == 1 && weight.size(0) == a.size(0) && weight.is_contiguous(),
              "weighted_sq_distances: weight %s, expected contiguous [%lld]", weight.desc().c_str(),
              (long long)a.size(0));
    for (const Tensor* t : {&a, &c, &out}) check_last_contiguous(*t, "weighted_sq_distances", "operand");
    for (const Tensor* t : {&a, &c, &weight}) check_same_device(out, *t, "weighted_sq_distances");
    if (out.numel() == 0) return;
    if (on_gpu(out))
        cuda::weighted_sq_distances(a, c, weight, out);
    else
        cpu::weighted_sq_distances(a, c, weight, out);
}

void add_transpose(const Tensor& x) {
    const KernelAccess kernel;
    check_f32(x, "add_transpose", "x");
    AXF_CHECK(x.dim() == 3 && x.size(0) == x.size(1) && x.is_contiguous(),
              "add_transpose: %s must be a contiguous [N, N, C]", x.desc().c_str());
    if (x.numel() == 0) return;
    if (on_gpu(x))
        cuda::add_transpose(x);
    else
        cpu::add_transpose(x);
}

namespace {
void check_binary(const Tensor& x, const Tensor& y, const char* op) {
    check_f32(x, op, "x");
    check_f32(y, op, "y");
    AXF_CHECK(x.shape() == y.shape(), "%s: shapes %s and %s differ (expand y first)", op, x.desc().c_str(),
              y.desc().c_str());
    check_same_device(x, y, op);
}
void run_binary(const Tensor& x, const Tensor& y, cpu::Binary cpu_op, cuda::Binary cuda_op, float a) {
    if (x.numel() == 0) return;
    if (on_gpu(x))
        cuda::binary(x, y, cuda_op, a);
    else
        cpu::binary(x, y, cpu_op, a);
}
void run_unary(const Tensor& x, const char* op, cpu::Unary cpu_op, cuda::Unary cuda_op, float s) {
    check_f32(x, op, "x");
    if (x.numel() == 0) return;
    if (on_gpu(x))
        cuda::unary(x, cuda_op, s);
    else
        cpu::unary(x, cpu_op, s);
}
}  // namespace

void add(const Tensor& x, const Tensor& y, float alpha) {
    const KernelAccess kernel;
    if (x.defined() && x.dtype() == DType::BF16) {  // a bfloat16 residual stream += a float32 update
        check_f32(y, "add", "y");
        AXF_CHECK(x.shape() == y.shape(), "add: shapes %s and %s differ (expand y first)", x.desc().c_str(),
                  y.desc().c_str());
        check_same_device(x, y, "add");
        if (x.numel() == 0) return;
        if (on_gpu(x))
            cuda::add_to_bf16(x, y, alpha);
        else
            cpu::add_to_bf16(x, y, alpha);
        return;
    }
    check_binary(x, y, "add");
    run_binary(x, y, cpu::Binary::Add, cuda::Binary::Add, alpha);
}
void mul(const Tensor& x, const Tensor& y) {
    const KernelAccess kernel;
    check_binary(x, y, "mul");
    run_binary(x, y, cpu::Binary::Mul, cuda::Binary::Mul, 1.f);
}
void sigmoid_mul(const Tensor& x, const Tensor& gate) {
    const KernelAccess kernel;
    check_binary(x, gate, "sigmoid_mul");
    run_binary(x, gate, cpu::Binary::SigmoidMul, cuda::Binary::SigmoidMul, 1.f);
}
void div_eps(const Tensor& x, const Tensor& y, float eps) {
    const KernelAccess kernel;
    check_binary(x, y, "div_eps");
    run_binary(x, y, cpu::Binary::DivEps, cuda::Binary::DivEps, eps);
}
void scale(const Tensor& x, float s) {
    const KernelAccess kernel;
    run_unary(x, "scale", cpu::Unary::Scale, cuda::Unary::Scale, s);
}
void fill(const Tensor& x, float value) {
    const KernelAccess kernel;
    run_unary(x, "fill", cpu::Unary::Fill, cuda::Unary::Fill, value);
}
void sigmoid(const Tensor& x) {
    const KernelAccess kernel;
    run_unary(x, "sigmoid", cpu::Unary::Sigmoid, cuda::Unary::Sigmoid, 0.f);
}
void relu(const Tensor& x) {
    const KernelAccess kernel;
    run_unary(x, "relu", cpu::Unary::Relu, cuda::Unary::Relu, 0.f);
}
void copy(const Tensor& dst, const Tensor& src) {
    const KernelAccess kernel;
    AXF_CHECK(dst.shape() == src.shape(), "copy: %s into %s", src.desc().c_str(), dst.desc().c_str());
    if (dst.dtype() == src.dtype()) {
        dst.copy_from(src);
        return;
    }
    check_activation(dst, "copy", "destination");
    check_activation(src, "copy", "source");
    check_same_device(dst, src, "copy");
    if (dst.numel() == 0) return;
    if (on_gpu(dst))
        cuda::convert(dst, src);
    else
        cpu::convert(dst, src);
}

void write_update(const Tensor& dst, const Tensor& src, bool accumulate) {
    if (accumulate)
        add(dst, src);
    else
        copy(dst, src);
}

void linear_update(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& dst, bool accumulate,
                   const Tensor& scratch) {
    if (dst.dtype() == DType::F32 && dst.is_contiguous()) {
        linear(x, w, bias, dst, accumulate ? 1.f : 0.f);
        return;
    }
    AXF_CHECK(scratch.is_contiguous() && scratch.numel() == dst.numel(), "linear_update: scratch %s for output %s",
              scratch.desc().c_str(), dst.desc().c_str());
    const Tensor s = scratch.view(dst.shape());
    linear(x, w, bias, s);
    write_update(dst, s, accumulate);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
    if (x.dtype() == dtype) return x;
    Tensor y = Tensor::empty(x.shape(), dtype, x.device());
    copy(y, x);
    return y;
}

namespace {
void check_optimizer_operand(const Tensor& t, const Tensor& like, const char* op, const char* name) {
    check_f32(t, op, name);
    AXF_CHECK(t.is_contiguous() && t.shape() == like.shape(), "%s: %s %s must be contiguous, of shape %s", op, name,
              t.desc().c_str(), shape_str(like.shape()).c_str());
    check_same_device(like, t, op);
}
}  // namespace

void adam_update(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamCoefficients& c) {
    const KernelAccess kernel;
    check_optimizer_operand(p, p, "adam_update", "the parameter");
    check_optimizer_operand(g, p, "adam_update", "the gradient");
    check_optimizer_operand(m, p, "adam_update", "the first moment");
    check_optimizer_operand(v, p, "adam_update", "the second moment");
    if (p.numel() == 0) return;
    if (on_gpu(p))
        cuda::adam_update(p, g, m, v, c);
    else
        cpu::adam_update(p, g, m, v, c);
}

void moving_average_update(const Tensor& ema, const Tensor& p, double decay) {
    const KernelAccess kernel;
    check_optimizer_operand(ema, ema, "moving_average_update", "the average");
    check_optimizer_operand(p, ema, "moving_average_update", "the parameter");
    if (ema.numel() == 0) return;
    if (on_gpu(ema))
        cuda::moving_average_update(ema, p, decay);
    else
        cpu::moving_average_update(ema, p, decay);
}

double sum_of_squares(const Tensor& x) {
    const KernelAccess kernel;
    check_optimizer_operand(x, x, "sum_of_squares", "x");
    if (x.numel() == 0) return 0;
    return on_gpu(x) ? cuda::sum_of_squares(x) : cpu::sum_of_squares(x);
}

}  // namespace axfold
