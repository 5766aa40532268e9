// Every parameter of an AF2 monomer model (model_1/model_2 with the template embedding) with its shape, under
// DeepMind's keys, for given widths and block counts; `axfold init-params` fills them with random values.
#pragma once

#include <map>
#include <string>

#include "evoformer/param_shapes.h"
#include "model/model.h"

namespace axfold {

struct ModelDims {
    EvoformerDims evoformer = EvoformerDims::af2_evoformer();
    EvoformerDims extra_msa = EvoformerDims::af2_extra_msa();
    int64_t evoformer_blocks = 48, extra_msa_blocks = 4;
    int64_t c_s = 384;
    int64_t ipa_heads = 12, ipa_c = 16, ipa_qk_points = 4, ipa_v_points = 8;
    int64_t angle_resnet_c = 128, lddt_c = 128;
    // Template models (model_1, model_2): AF2 monomer template sizes.
    int64_t c_t = 64, template_pair_blocks = 2;
    int64_t template_pair_heads = 4, template_pair_head_dim = 16;  // template pair stack triangle attention
    int64_t template_tri_mul_dim = 64, template_transition_factor = 2;
    int64_t template_pointwise_heads = 4, template_pointwise_head_dim = 16;
};

// Full keys ("alphafold/alphafold_iteration/...//name") and shapes, stacked blocks with their leading axis.
ParamShapes model_param_shapes(const ModelPreset& preset, const ModelDims& d);

// The widths and layer counts of a parameter set, read from the shapes of one array per width (the attention
// projections, the first linear of each MLP, the stacked layer axes). Throws naming `file` and the key when one of
// those arrays is missing or has the wrong number of dimensions.
ModelDims infer_model_dims(const std::map<std::string, Shape>& shapes, const ModelPreset& preset,
                           const std::string& file);
// Checks every array a preset's model reads against the shape its widths (infer_model_dims) imply; throws naming
// the file, the key, the expected and the found shape. Arrays the model does not read are allowed.
void check_param_shapes(const std::map<std::string, Shape>& shapes, const ModelPreset& preset, const std::string& file);

// Random parameters for `preset` (init_param scaling; residual output layers scaled down so a deep
// stack of random blocks keeps activations O(1)). Deterministic in `seed`.
std::map<std::string, Tensor> init_model_params(const ModelPreset& preset, const ModelDims& d, uint64_t seed);

}  // namespace axfold
