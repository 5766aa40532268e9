// MSA and pair transitions (AF2 supplement, Algorithms 9 and 15): layer norm, widen by n, ReLU,
// project back. Parameter scopes `msa_transition` and `pair_transition`. The mask is not applied
// (AF2 does not mask transitions).
#pragma once

#include "evoformer/weights.h"
#include "kernels/ops.h"

namespace axfold {

struct TransitionWeights {
    LayerNormWeights input_layer_norm;  // [C]
    LinearWeights transition1;          // [C, n*C]
    LinearWeights transition2;          // [n*C, C]
    template <class F> void visit(F&& f) {
        input_layer_norm.visit(scoped("input_layer_norm", f));
        transition1.visit(scoped("transition1", f));
        transition2.visit(scoped("transition2", f));
    }
};

// act [..., C]; out as in msa_attention.h.
void transition_forward(const TransitionWeights& w, const Tensor& act, const Tensor& out, bool accumulate, Context& ctx,
                        const TrunkConstants& k = {});

// The backward twin: for the update u = transition(act) and dupdate = dL/du [..., C] (contiguous, float32),
// writes dact = (or, with accumulate_dact, +=) dL/dact through the update (a residual caller adds dupdate for the
// identity itself) and adds the parameter gradients into grads (zeros_like_weights(w) to start). The forward's
// internals are recomputed from act, chunk by chunk as the forward runs.
void transition_backward(const TransitionWeights& w, const Tensor& act, const Tensor& dupdate, const Tensor& dact,
                         bool accumulate_dact, TransitionWeights& grads, Context& ctx, const TrunkConstants& k = {});

}  // namespace axfold
