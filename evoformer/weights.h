// Weight structs shared by the AF2 modules, bound to DeepMind's parameter names.
//
// Every weights struct has `visit(f)`, which calls f(relative_key, Tensor&) for each tensor, where the
// relative key uses AF2's "<scope>//<name>" form ("query_norm//scale", "//feat_2d_weights"). Loading,
// zeroing gradients and optimiser steps are all one visit walk. Shapes are whatever the parameter file
// holds: module sizes (heads, channels) are derived from them, so reduced and full AF2 widths both work.
#pragma once

#include <string>
#include <utility>

#include "kernels/tensor.h"

namespace axfold {

// Joins a module scope and a relative key: "a/b" + "c//w" -> "a/b/c//w", "a/b" + "//w" -> "a/b//w".
inline std::string join_key(const std::string& scope, const std::string& rel) {
    if (scope.empty()) return rel;
    if (rel.rfind("//", 0) == 0) return scope + rel;
    return scope + "/" + rel;
}

// Wraps a visitor so that every key it sees is prefixed with `scope`.
template <class F> auto scoped(const std::string& scope, F& f) {
    return [scope, &f](const std::string& rel, Tensor& t) { f(join_key(scope, rel), t); };
}

// The same weights with every tensor on `device`: copies of those elsewhere, the tensors themselves where they
// already are.
template <class W> W weights_on(const W& w, Device device) {
    W c = w;
    c.visit([device](const std::string&, Tensor& t) {
        if (t.defined()) t = t.to(device);
    });
    return c;
}

// A weights struct of the same layout with every tensor zero, on the same devices: gradient accumulators.
template <class W> W zeros_like_weights(const W& w) {
    W g = w;
    g.visit([](const std::string&, Tensor& t) {
        if (t.defined()) t = Tensor::zeros(t.shape(), t.dtype(), t.device());
    });
    return g;
}

struct LayerNormWeights {
    Tensor scale;   // [C]
    Tensor offset;  // [C]
    template <class F> void visit(F&& f) {
        f("//scale", scale);
        f("//offset", offset);
    }
};

struct LinearWeights {
    Tensor weights;  // [c_in, c_out] (or [c_in, ...] flattened)
    Tensor bias;     // [c_out]; undefined for bias-free layers
    bool has_bias = true;
    template <class F> void visit(F&& f) {
        f("//weights", weights);
        if (has_bias) f("//bias", bias);
    }
};

// AF2 Attention (gated unless gating_w is absent).
struct AttentionWeights {
    Tensor query_w;   // [c_q, H, c]
    Tensor key_w;     // [c_kv, H, c]
    Tensor value_w;   // [c_kv, H, c]
    Tensor gating_w;  // [c_q, H, c]
    Tensor gating_b;  // [H, c]
    Tensor output_w;  // [H, c, c_out]
    Tensor output_b;  // [c_out]
    bool gating = true;
    int64_t no_heads() const { return query_w.size(1); }
    int64_t c_hidden() const { return query_w.size(2); }
    template <class F> void visit(F&& f) {
        f("//query_w", query_w);
        f("//key_w", key_w);
        f("//value_w", value_w);
        if (gating) {
            f("//gating_w", gating_w);
            f("//gating_b", gating_b);
        }
        f("//output_w", output_w);
        f("//output_b", output_b);
    }
};

// AF2 GlobalAttention: one key/value head shared by all query heads.
struct GlobalAttentionWeights {
    Tensor query_w;   // [c_in, H, c]
    Tensor key_w;     // [c_in, c]
    Tensor value_w;   // [c_in, c]
    Tensor gating_w;  // [c_in, H, c]
    Tensor gating_b;  // [H, c]
    Tensor output_w;  // [H, c, c_out]
    Tensor output_b;  // [c_out]
    int64_t no_heads() const { return query_w.size(1); }
    int64_t c_hidden() const { return query_w.size(2); }
    template <class F> void visit(F&& f) {
        f("//query_w", query_w);
        f("//key_w", key_w);
        f("//value_w", value_w);
        f("//gating_w", gating_w);
        f("//gating_b", gating_b);
        f("//output_w", output_w);
        f("//output_b", output_b);
    }
};

// Constants shared by the trunk modules (golden README "Constants").
struct TrunkConstants {
    float inf = 1e9f;         // attention mask bias scale
    float eps = 1e-5f;        // layer norm
    float opm_eps = 1e-3f;    // outer product mean normaliser
    float global_eps = 1e-10f;  // masked mean in global attention
    // Training dropout of the residual updates (evoformer/dropout.h); off when 0. The stacks give each block a
    // key of its own derived from this one.
    uint64_t dropout_key = 0;
};

}  // namespace axfold

#include <functional>

namespace axfold {

// Source of parameters by full AF2 key (io::ParamStore provides one); throws for a missing key.
using ParamLookup = std::function<Tensor(const std::string& key)>;

// Binds every tensor of `w` to the parameters under `scope`. For stacked layers (`layer` >= 0) each
// tensor is the layer's slice of the stacked array (a view, no copy).
template <class W> void bind_params(W& w, const std::string& scope, const ParamLookup& get, int layer = -1) {
    auto f = [&](const std::string& key, Tensor& t) {
        Tensor p = get(key);
        if (layer >= 0) {
            AXF_CHECK(p.dim() >= 1 && layer < p.size(0), "parameter %s has shape %s: no layer %d", key.c_str(),
                      shape_str(p.shape()).c_str(), layer);
            p = p.select(0, layer);
        }
        t = p;
    };
    w.visit(scoped(scope, f));
}

}  // namespace axfold
