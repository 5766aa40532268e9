// Shared by the template-model tests (CPU and GPU): a template model at reduced widths with random AF2-layout
// parameters, and random templates turned into the model's processed features.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>

#include "io/features.h"
#include "model/model.h"
#include "model/model_params.h"
#include "pipeline/template_features.h"
#include "test_util.h"

namespace axfold::test {

// Reduced widths (c_m 32, c_z 16, c_t 8) and one block per stack: template-model tests in seconds.
inline ModelDims tiny_template_model_dims() {
    ModelDims d;
    d.evoformer.c_m = 32;
    d.evoformer.c_z = 16;
    d.extra_msa.c_m = 16;
    d.c_s = 32;
    d.c_t = 8;
    d.evoformer_blocks = 1;
    d.extra_msa_blocks = 1;
    return d;
}

// model_1_ptm at those widths, random parameters from `seed`, two structure-module layers.
inline Model tiny_template_model(uint64_t seed) {
    auto store = std::make_shared<ParamStore>();
    for (auto& [k, t] : init_model_params(ModelPreset::from_name("model_1_ptm"), tiny_template_model_dims(), seed))
        store->insert(k, t);
    return Model::from_store(store, "model_1_ptm", 2);
}

// T0 raw templates of N residues (feature-dict layout): random residue types and atoms, template t missing
// its first 2 + t residues.
inline std::map<std::string, Tensor> random_raw_templates(int64_t T0, int64_t N, std::mt19937& rng) {
    std::map<std::string, Tensor> raw;
    raw["template_aatype"] = Tensor::zeros({T0, N, 22});
    raw["template_all_atom_positions"] = randn({T0, N, 37, 3}, rng, 4.f);
    raw["template_all_atom_masks"] = Tensor::zeros({T0, N, 37});
    raw["template_sum_probs"] = Tensor::empty({T0, 1});
    for (int64_t t = 0; t < T0; ++t) {
        raw["template_sum_probs"].f32()[t] = static_cast<float>(3 + 4 * t);
        for (int64_t i = 0; i < N; ++i) {
            raw["template_aatype"].at({t, i, static_cast<int64_t>(rng() % 22)}) = 1.f;
            if (i >= 2 + t)
                for (int64_t a = 0; a < 37; ++a) raw["template_all_atom_masks"].at({t, i, a}) = 1.f;
        }
    }
    return raw;
}

// f with the processed template features of `raw` (max_templates 4), repeated for each iteration.
inline FeatureDict with_templates(const FeatureDict& f, const std::map<std::string, Tensor>& raw) {
    const int64_t R = f.at("aatype").size(0), N = f.at("aatype").size(1);
    FeatureDict g = f;
    for (const auto& [k, v] : pipeline::make_template_features(raw, N, 4)) {
        Shape s = v.shape();
        s.insert(s.begin(), R);
        Tensor stacked = Tensor::empty(s, v.dtype());
        for (int64_t r = 0; r < R; ++r) stacked.select(0, r).copy_from(v);
        g[k] = stacked;
    }
    return g;
}

}  // namespace axfold::test
