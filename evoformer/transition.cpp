#include "evoformer/transition.h"

#include <algorithm>

namespace axfold {

void transition_forward(const TransitionWeights& w, const Tensor& act, const Tensor& out, bool accumulate, Context& ctx,
                        const TrunkConstants& k) {
    const int64_t C = act.size(-1), rows = act.numel() / std::max<int64_t>(C, 1);
    AXF_CHECK(act.is_contiguous() && out.is_contiguous() && out.numel() == act.numel(),
              "transition: input %s and output %s must be contiguous and of one size", act.desc().c_str(),
              out.desc().c_str());
    const Tensor a2 = act.view({rows, C}), o2 = out.view({rows, C});
    // Rows are independent; ctx.chunk_size counts rows of the leading axis.
    const int64_t per_lead = act.dim() > 1 ? rows / act.size(0) : 1;
    const int64_t cs = ctx.chunk_size > 0 ? std::max<int64_t>(1, ctx.chunk_size) * per_lead : rows;
    for (int64_t r0 = 0; r0 < rows; r0 += cs) {
        WorkspaceScope scope(ctx.ws);
        const int64_t r1 = std::min(rows, r0 + cs);
        Tensor x = layer_norm(a2.slice(0, r0, r1), w.input_layer_norm.scale, w.input_layer_norm.offset, k.eps, ctx.ws);
        Tensor h = linear_relu(x, w.transition1.weights, w.transition1.bias, ctx.ws);
        // (bfloat16 activations go through x, which is dead once h exists)
        linear_update(h, w.transition2.weights, w.transition2.bias, o2.slice(0, r0, r1), accumulate, x);
    }
}

void transition_backward(const TransitionWeights& w, const Tensor& act, const Tensor& dupdate, const Tensor& dact,
                         bool accumulate_dact, TransitionWeights& grads, Context& ctx, const TrunkConstants& k) {
    const int64_t C = act.size(-1), rows = act.numel() / std::max<int64_t>(C, 1);
    AXF_CHECK(act.is_contiguous() && dupdate.is_contiguous() && dact.is_contiguous() &&
                  dupdate.shape() == act.shape() && dact.shape() == act.shape(),
              "transition backward: act %s, dupdate %s and dact %s must be contiguous and of one shape",
              act.desc().c_str(), dupdate.desc().c_str(), dact.desc().c_str());
    const Tensor a2 = act.view({rows, C}), du2 = dupdate.view({rows, C}), da2 = dact.view({rows, C});
    const int64_t per_lead = act.dim() > 1 ? rows / act.size(0) : 1;
    const int64_t cs = ctx.chunk_size > 0 ? std::max<int64_t>(1, ctx.chunk_size) * per_lead : rows;
    for (int64_t r0 = 0; r0 < rows; r0 += cs) {
        WorkspaceScope scope(ctx.ws);
        const int64_t r1 = std::min(rows, r0 + cs);
        const Tensor a = a2.slice(0, r0, r1), du = du2.slice(0, r0, r1), da = da2.slice(0, r0, r1);
        // Forward internals: x = LN(act), h = relu(x W1 + b1).
        Tensor x = layer_norm(a, w.input_layer_norm.scale, w.input_layer_norm.offset, k.eps, ctx.ws);
        Tensor h = linear_relu(x, w.transition1.weights, w.transition1.bias, ctx.ws);
        // u = h W2 + b2.
        Tensor dh = ctx.ws.alloc(h.shape());
        linear_backward(h, w.transition2.weights, du, dh, false, grads.transition2.weights, grads.transition2.bias,
                        ctx.ws);
        relu_backward(h, dh, dh);
        Tensor dx = ctx.ws.alloc(x.shape());
        linear_backward(x, w.transition1.weights, dh, dx, false, grads.transition1.weights, grads.transition1.bias,
                        ctx.ws);
        layer_norm_backward(a, w.input_layer_norm.scale, k.eps, dx, da, accumulate_dact, grads.input_layer_norm.scale,
                            grads.input_layer_norm.offset, ctx.ws);
    }
}

}  // namespace axfold
