// The parameter check at load (model/model_params.h): the widths read from a parameter file, and every array's
// shape checked against them, so a wrong file fails at load naming the file, the key and both shapes.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "io/params.h"
#include "model/model.h"
#include "model/model_params.h"
#include "test_util.h"

using namespace axfold;

namespace {

const std::string kDataDir = AXFOLD_TEST_DATA_DIR;
const std::string kEvo = "alphafold/alphafold_iteration/evoformer";

std::map<std::string, Shape> shapes_of(const ParamShapes& p) {
    return {p.begin(), p.end()};
}

// A copy of `store` with `key` replaced by a zero array of `shape` (none: left out).
std::shared_ptr<ParamStore> altered(const ParamStore& store, const std::string& key, const Shape* shape) {
    auto out = std::make_shared<ParamStore>();
    for (const std::string& k : store.keys())
        if (k != key) out->insert(k, store.get(k));
    if (shape) out->insert(key, Tensor::zeros(*shape));
    return out;
}

}  // namespace

TEST(ModelParams, GoldenFilesHoldExactlyTheArraysTheirWidthsImply) {
    for (const auto& [file, name] : {std::pair<std::string, std::string>{"small/params.npz", "model_3_ptm"},
                                     {"small/params.h5", "model_3_ptm"},
                                     {"multimer_small/params.npz", "model_1_multimer_v3"}}) {
        SCOPED_TRACE(file);
        const auto shapes = read_param_shapes(kDataDir + "/golden/" + file);
        const ModelPreset preset = ModelPreset::from_name(name);
        EXPECT_EQ(shapes_of(model_param_shapes(preset, infer_model_dims(shapes, preset, file))), shapes);
        const ModelConfig c = model_config(shapes, name, 8, file);
        const ModelConfig loaded = Model::load(kDataDir + "/golden/" + file, name).config();
        EXPECT_EQ(c.c_m, loaded.c_m);
        EXPECT_EQ(c.c_z, loaded.c_z);
        EXPECT_EQ(c.evoformer_blocks, loaded.evoformer_blocks);
    }
}

// Widths unlike AF2's and the golden sets' (templates included) are read back from the shapes they imply.
TEST(ModelParams, WidthsAreReadBackForEveryPreset) {
    ModelDims d;
    d.evoformer = {24, 16, 3, 5, 2, 7, 12, 6, 3, 1, 1};
    d.extra_msa = {8, 16, 2, 3, 5, 4, 10, 4, 2, 3, 6};
    d.evoformer_blocks = 3, d.extra_msa_blocks = 2, d.c_s = 20;
    d.ipa_heads = 3, d.ipa_c = 4, d.ipa_qk_points = 2, d.ipa_v_points = 5, d.angle_resnet_c = 9, d.lddt_c = 11;
    d.c_t = 6, d.template_pair_blocks = 2, d.template_pair_heads = 3, d.template_pair_head_dim = 2;
    d.template_tri_mul_dim = 5, d.template_transition_factor = 3, d.template_pointwise_heads = 2;
    d.template_pointwise_head_dim = 7;
    for (const char* name : {"model_1", "model_3_ptm", "model_2_multimer_v3"}) {
        SCOPED_TRACE(name);
        const ModelPreset preset = ModelPreset::from_name(name);
        const ParamShapes want = model_param_shapes(preset, d);
        const ModelDims got = infer_model_dims(shapes_of(want), preset, "x.npz");
        EXPECT_EQ(model_param_shapes(preset, got), want);
        EXPECT_EQ(got.evoformer.transition_factor, 3);
        EXPECT_EQ(got.extra_msa.global_head_dim, 6);
        EXPECT_EQ(got.ipa_v_points, 5);
        if (preset.templates) {
            EXPECT_EQ(got.template_tri_mul_dim, 5);
        }
    }
}

// A wrong but self-consistent shape (the bias of a layer whose weights are right) fails at load, not mid-forward.
TEST(ModelParams, AWrongShapeFailsAtLoadNamingFileKeyAndShapes) {
    const ParamStore store = ParamStore::load(kDataDir + "/golden/small/params.npz");
    const std::string bias = kEvo + "/evoformer_iteration/pair_transition/transition1//bias";
    const Shape good = store.get(bias).shape(), bad = {good[0], good[1] / 2};
    test::expect_error([&] { Model::from_store(altered(store, bias, &bad), "model_3_ptm"); },
                       {"in-memory parameters", bias, shape_str(bad), "expected " + shape_str(good)});
    test::expect_error([&] { Model::from_store(altered(store, bias, nullptr), "model_3_ptm"); },
                       {bias, "is missing", shape_str(good)});
    // A width read from the file itself: its layer count differs from the other arrays'.
    const std::string query = kEvo + "/extra_msa_stack/msa_row_attention_with_pair_bias/attention//query_w";
    Shape q = store.get(query).shape();
    q[0] += 1;
    test::expect_error([&] { Model::from_store(altered(store, query, &q), "model_3_ptm"); },
                       {"extra_msa_stack", "expected", "has shape"});
}
