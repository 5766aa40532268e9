// Training dropout of the Evoformer's residual updates, as AF2's dropout_wrapper applies it (monomer config):
// x += u * keep / (1 - rate), where keep is one Bernoulli(1 - rate) draw per (position along the kept axis,
// channel), shared along the other axis ("shared_dropout"):
//
//   module                           rate   shared along            mask indexed by
//   MSA row attention with pair bias 0.15   the sequences (rows)    residue j, channel
//   triangle multiplication out/in   0.25   rows i (per_row)        residue j, channel
//   triangle attention, starting     0.25   rows i (per_row)        residue j, channel
//   triangle attention, ending       0.25   columns j (per_column)  residue i, channel
//
// (column attention, transitions and the outer product mean have rate 0.) The draws are a hash of (the
// block's key, the module, the global residue index, the channel), not a random stream, so DAP's shards
// draw exactly what one rank draws for the same positions, and a backward pass redraws the forward's masks.
// The structure module's dropout (0.1, element-wise, after IPA's and the transition's residuals) uses
// apply_elementwise_dropout below (structure/structure_module.h).
// DISCREPANCY: AF2 draws from JAX's PRNG, so the masks differ from AF2's (the distribution is the same); AF2
// also drops out in the recycled (stop-gradient) iterations, which training_step runs without dropout.
// The template pair stack drops out as the Evoformer's pair stack does (AF2's template_pair_stack config: 0.25 on
// the four triangle modules), a key per template and block (template_embedding.h).
#pragma once

#include <cstdint>

#include "kernels/ops.h"
#include "kernels/tensor.h"

namespace axfold {

enum class DropoutSite : int { None = 0, MsaRowAttention, TriangleMultiplicationOutgoing,
                               TriangleMultiplicationIncoming, TriangleAttentionStarting, TriangleAttentionEnding };

struct DropoutSpec {
    float rate;
    bool per_column;  // the mask is indexed by dim 0 (shared along dim 1) instead of dim 1
};
DropoutSpec dropout_spec(DropoutSite site);

// A key for block `index` of a stack keyed `key` (and for a stack from a training step's seed).
uint64_t derive_dropout_key(uint64_t key, uint64_t index);

// u [A, B, C] (float32, contiguous, any device) *= the site's mask / (1 - rate), the mask indexed by (b + b_offset, c)
// (per row) or (a + a_offset, c) (per column): offsets place a DAP shard in the whole pair or MSA. No-op when
// key is 0 or site None. C must not exceed 4096 (the hash's channel field).
void apply_dropout(const Tensor& u, uint64_t key, DropoutSite site, int64_t a_offset = 0, int64_t b_offset = 0);

// Element-wise dropout (no sharing; AF2's structure module, rate 0.1 after IPA and after the transition):
// u (float32, contiguous, any shape and device) *= Bernoulli(1 - rate) / (1 - rate), one draw per element from a hash
// of (key, element index). No-op when key is 0.
void apply_elementwise_dropout(const Tensor& u, uint64_t key, float rate);

// A residual update x += f(x), or with training dropout (key != 0) x += dropout(f(x)) with the update formed apart
// in ctx's workspace. update(out, accumulate) writes f(x) into out, or adds it when accumulating (out is x then).
template <class F>
void residual_update(const Tensor& x, uint64_t key, DropoutSite site, Context& ctx, F&& update) {
    if (key == 0) {
        update(x, true);
        return;
    }
    WorkspaceScope scope(ctx.ws);
    Tensor u = ctx.ws.alloc(x.shape());
    update(u, false);
    apply_dropout(u, key, site);
    add(x, u);
}

}  // namespace axfold
