#include "evoformer/transition.h"

namespace axfold {

void transition_forward(const TransitionWeights& w, const Tensor& act, Tensor& out, bool accumulate, Context& ctx,
                        const TrunkConstants& k) {
    WorkspaceScope scope(ctx.ws);
    Tensor x = layer_norm(act, w.input_layer_norm.scale, w.input_layer_norm.offset, k.eps, ctx.ws);
    Tensor h = linear(x, w.transition1.weights, w.transition1.bias, ctx.ws);
    relu(h);
    linear(h, w.transition2.weights, w.transition2.bias, out, accumulate ? 1.f : 0.f);
}

}  // namespace axfold
