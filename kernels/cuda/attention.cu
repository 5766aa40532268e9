// Attention core on CUDA, unfused: per chunk of the batch, logits = q k^T by cuBLAS (batched over
// (b, h)), the fused masked softmax kernel (scale, bias[h,q,k], inf * (mask[b,k] - 1)), then out = w v by
// cuBLAS, writing straight into out's [B, Q, H, C] layout. The logits live in the workspace; the batch is
// chunked so that they stay under kLogitsBudget floats (one batch element at least).
//
// DISCREPANCY: none in results; a fused flash-style kernel (no logits in memory) is future work
// (docs/GPU.md).
#include <algorithm>
#include <cstdint>

#include "kernels/cuda/ops_cuda.h"

namespace axfold::cuda {

namespace {
constexpr int64_t kLogitsBudget = int64_t(64) << 20;  // floats (256 MiB)
}

void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& bias,
               float scale, float inf, const Tensor& out, Workspace& ws) {
    AXF_CHECK(ws.device() == Device::CUDA, "attention on CUDA needs a CUDA workspace, got a %s one",
              device_name(ws.device()));
    const int64_t B = q.size(0), Q = q.size(1), H = q.size(2), K = k.size(1);
    if (out.numel() == 0) return;
    const int64_t per_batch = std::max<int64_t>(H * Q * K, 1);
    const int64_t chunk = std::clamp<int64_t>(kLogitsBudget / per_batch, 1, B);
    WorkspaceScope scope(ws);
    Tensor logits = ws.alloc({chunk, H, Q, K});  // [chunk, H, Q, K] contiguous
    for (int64_t b0 = 0; b0 < B; b0 += chunk) {
        const int64_t nb = std::min(chunk, B - b0);
        Tensor L = logits.slice(0, 0, nb);                          // [nb, H, Q, K]
        Tensor qb = q.slice(0, b0, b0 + nb).permute({0, 2, 1, 3});  // [nb, H, Q, C] row-major
        Tensor kt = k.slice(0, b0, b0 + nb).permute({0, 2, 3, 1});  // [nb, H, C, K] column-major
        Tensor vb = v.slice(0, b0, b0 + nb).permute({0, 2, 1, 3});  // [nb, H, K, C] row-major
        Tensor ob = out.slice(0, b0, b0 + nb).permute({0, 2, 1, 3});  // [nb, H, Q, C] row-major
        Tensor m, bb;
        if (mask.defined()) m = mask.slice(0, b0, b0 + nb).unsqueeze(1).unsqueeze(1).expand({nb, H, Q, K});
        if (bias.defined()) bb = bias.unsqueeze(0).expand({nb, H, Q, K});
        cuda::matmul(qb, kt, L, 1.f, 0.f);
        if (L.numel()) cuda::softmax(L, scale, m, bb, inf);
        cuda::matmul(L, vb, ob, 1.f, 0.f);
    }
}

}  // namespace axfold::cuda
