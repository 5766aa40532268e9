// The C API (include/axfold/axfold.h): opaque handles over Model, the processed features and Prediction, every
// call behind one exception barrier that turns axfold::Error (and anything else) into a status and a
// thread-local message.
#include "axfold/axfold.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "io/features.h"
#include "io/msa.h"
#include "io/raw_features.h"
#include "io/transforms.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "structure/model.h"
#include "structure/model_plan.h"

struct axf_model {
    axfold::Model model;
    std::string name;
};

struct axf_features {
    axfold::FeatureDict features;
    std::string source;  // the file they came from, named in error messages
};

struct axf_prediction {
    axfold::Prediction p;
    std::string model_name;
};

namespace {

thread_local std::string last_error;

// Runs fn; an exception becomes AXF_ERROR with its message.
template <class F> axf_status guarded(F&& fn) {
    try {
        last_error.clear();
        fn();
        return AXF_OK;
    } catch (const std::exception& e) {
        last_error = e.what();
    } catch (...) {
        last_error = "axfold: unknown error";
    }
    return AXF_ERROR;
}

// A NULL argument: AXF_INVALID_ARGUMENT naming it.
bool missing(const void* p, const char* call, const char* what) {
    if (p) return false;
    last_error = std::string(call) + ": " + what + " is NULL";
    return true;
}

axfold::FeatureDict transform(const axfold::io::RawFeatures& raw, const char* model_name, uint64_t seed,
                              int num_recycle) {
    axfold::io::TransformConfig c = axfold::io::TransformConfig::for_model(model_name);
    c.num_iterations = (num_recycle < 0 ? 3 : num_recycle) + 1;
    c.seed = seed;
    return axfold::io::process_features(raw, c);
}

// Copies a host float32 tensor of n elements into out.
void copy_out(const axfold::Tensor& t, float* out, int64_t n, const char* what) {
    const axfold::Tensor h = t.to(axfold::Device::CPU).contiguous();
    AXF_CHECK(h.dtype() == axfold::DType::F32 && h.numel() == n, "%s: %s, expected %lld float32 values", what,
              h.desc().c_str(), (long long)n);
    std::memcpy(out, h.f32(), sizeof(float) * static_cast<size_t>(n));
}

}  // namespace

extern "C" {

const char* axf_version(void) { return AXFOLD_VERSION; }

int axf_api_version(void) { return AXF_API_VERSION; }

const char* axf_last_error(void) { return last_error.c_str(); }

axf_status axf_model_load(const char* params_path, const char* model_name, axf_model** model) {
    if (missing(model, "axf_model_load", "model") || missing(params_path, "axf_model_load", "params_path") ||
        missing(model_name, "axf_model_load", "model_name"))
        return AXF_INVALID_ARGUMENT;
    *model = nullptr;
    return guarded([&] { *model = new axf_model{axfold::Model::load(params_path, model_name), model_name}; });
}

void axf_model_free(axf_model* model) { delete model; }

axf_status axf_features_load(const char* path, const char* model_name, uint64_t seed, int num_recycle,
                             axf_features** features) {
    if (missing(features, "axf_features_load", "features") || missing(path, "axf_features_load", "path") ||
        missing(model_name, "axf_features_load", "model_name"))
        return AXF_INVALID_ARGUMENT;
    *features = nullptr;
    return guarded([&] {
        axfold::FeatureDict f = axfold::io::detect_feature_file(path) == axfold::io::FeatureFileKind::Processed
                                    ? axfold::io::read_features_h5(path)
                                    : transform(axfold::io::read_raw_features_h5(path), model_name, seed, num_recycle);
        *features = new axf_features{std::move(f), path};
    });
}

axf_status axf_features_from_fasta(const char* fasta_path, const char* const* msa_paths, size_t num_msas,
                                   const char* model_name, uint64_t seed, int num_recycle, axf_features** features) {
    if (missing(features, "axf_features_from_fasta", "features") ||
        missing(fasta_path, "axf_features_from_fasta", "fasta_path") ||
        missing(model_name, "axf_features_from_fasta", "model_name") ||
        (num_msas > 0 && missing(msa_paths, "axf_features_from_fasta", "msa_paths")))
        return AXF_INVALID_ARGUMENT;
    for (size_t i = 0; i < num_msas; ++i)
        if (missing(msa_paths[i], "axf_features_from_fasta", "an entry of msa_paths")) return AXF_INVALID_ARGUMENT;
    *features = nullptr;
    return guarded([&] {
        const std::vector<axfold::io::FastaRecord> recs = axfold::io::read_fasta(fasta_path);
        AXF_CHECK(recs.size() == 1, "%s: %zu sequences; a monomer prediction takes exactly one", fasta_path,
                  recs.size());
        std::vector<axfold::io::Msa> msas;
        for (size_t i = 0; i < num_msas; ++i) msas.push_back(axfold::io::read_msa(msa_paths[i]));
        const axfold::io::RawFeatures raw = axfold::io::make_raw_features(recs[0].sequence, recs[0].description, msas);
        *features = new axf_features{transform(raw, model_name, seed, num_recycle), fasta_path};
    });
}

int64_t axf_features_num_residues(const axf_features* features) {
    if (!features) return -1;
    const auto it = features->features.find("aatype");  // [iterations, N]; checked by axf_predict
    return it != features->features.end() && it->second.dim() == 2 ? it->second.size(1) : -1;
}

void axf_features_free(axf_features* features) { delete features; }

axf_status axf_predict(const axf_model* model, const axf_features* features, const axf_predict_options* options,
                       axf_prediction** prediction) {
    if (missing(prediction, "axf_predict", "prediction") || missing(model, "axf_predict", "model") ||
        missing(features, "axf_predict", "features"))
        return AXF_INVALID_ARGUMENT;
    *prediction = nullptr;
    axf_predict_options o;
    axf_predict_options_init(&o);
    if (options) {
        // A caller built against an older header passes a shorter struct: the fields it lacks keep their defaults.
        constexpr size_t kVersion1 = offsetof(axf_predict_options, max_memory) + sizeof(const char*);
        if (options->struct_size < kVersion1) {
            last_error = "axf_predict: options->struct_size " + std::to_string(options->struct_size) +
                         " is too small (call axf_predict_options_init first)";
            return AXF_INVALID_ARGUMENT;
        }
        std::memcpy(&o, options, std::min(options->struct_size, sizeof(o)));
        o.struct_size = sizeof(o);
    }
    return guarded([&] {
        using namespace axfold;
        const std::string device_name = o.device ? o.device : "cpu";
        AXF_CHECK(device_name == "cpu" || device_name == "cuda", "axf_predict: device \"%s\": expected cpu or cuda",
                  device_name.c_str());
        const Device device = device_name == "cuda" ? Device::CUDA : Device::CPU;
        AXF_CHECK(device == Device::CPU || cuda_built(), "axf_predict: device cuda: this libaxfold was built without CUDA");
        AXF_CHECK(device == Device::CPU || cuda_available(), "axf_predict: device cuda: no CUDA device is visible");
        const MatmulPrecision precision = parse_precision(o.precision ? o.precision : "fp32");
        if (o.threads > 0) set_num_threads(o.threads);
        const ModelConfig& cfg = model->model.config();
        const FeatureDict& f = features->features;
        validate_features(f, cfg, features->source);
        set_matmul_precision(precision);
        const DType act = precision == MatmulPrecision::Bf16 ? DType::BF16 : DType::F32;
        const int64_t n_res = f.at("aatype").size(1), n_msa = f.at("msa_feat").size(1), n_extra = f.at("extra_msa").size(1);
        const std::string max_memory = o.max_memory ? o.max_memory : "";
        Context ctx(device);
        ctx.activation_dtype = act;
        PredictOptions po;
        po.num_recycle = o.num_recycle;
        po.keep_recycles = false;
        po.keep_pair_logits = false;
        size_t peak = 0;
        const ChunkPlan plan = device == Device::CPU
                                   ? plan_prediction(cfg, n_res, n_msa, n_extra, max_memory, o.chunk_size, &peak, act)
                                   : plan_device_model(cfg, n_res, n_msa, n_extra, max_memory, o.chunk_size, &peak, act);
        ctx.chunk_size = plan.chunk_size;
        ctx.ws.reserve(plan.predicted_workspace_bytes);
        po.offload_msa = plan.offload_msa;
        *prediction = new axf_prediction{model->model.predict(f, po, ctx), model->name};
    });
}

int64_t axf_prediction_num_residues(const axf_prediction* prediction) {
    return prediction ? prediction->p.heads.plddt.numel() : -1;
}

axf_status axf_prediction_plddt(const axf_prediction* prediction, float* plddt) {
    if (missing(prediction, "axf_prediction_plddt", "prediction") || missing(plddt, "axf_prediction_plddt", "plddt"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        copy_out(prediction->p.heads.plddt, plddt, prediction->p.heads.plddt.numel(), "axf_prediction_plddt");
    });
}

axf_status axf_prediction_mean_plddt(const axf_prediction* prediction, double* mean_plddt) {
    if (missing(prediction, "axf_prediction_mean_plddt", "prediction") ||
        missing(mean_plddt, "axf_prediction_mean_plddt", "mean_plddt"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { *mean_plddt = axfold::mean_plddt(prediction->p); });
}

axf_status axf_prediction_atom37(const axf_prediction* prediction, float* positions, float* mask) {
    if (missing(prediction, "axf_prediction_atom37", "prediction")) return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        const int64_t N = axf_prediction_num_residues(prediction);
        const axfold::StructureModuleOutputs& sm = prediction->p.structure_module;
        if (positions) copy_out(sm.final_atom_positions, positions, N * 37 * 3, "axf_prediction_atom37 positions");
        if (mask) copy_out(sm.final_atom_mask, mask, N * 37, "axf_prediction_atom37 mask");
    });
}

int axf_prediction_has_pae(const axf_prediction* prediction) { return prediction && prediction->p.heads.has_pae; }

axf_status axf_prediction_pae(const axf_prediction* prediction, float* pae, float* max_pae) {
    if (missing(prediction, "axf_prediction_pae", "prediction") || missing(pae, "axf_prediction_pae", "pae"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        const axfold::HeadsOutputs& h = prediction->p.heads;
        AXF_CHECK(h.has_pae, "axf_prediction_pae: %s has no predicted-aligned-error head (use a _ptm model)",
                  prediction->model_name.c_str());
        const int64_t N = axf_prediction_num_residues(prediction);
        copy_out(h.predicted_aligned_error, pae, N * N, "axf_prediction_pae");
        if (max_pae) *max_pae = h.max_predicted_aligned_error;
    });
}

axf_status axf_prediction_ptm(const axf_prediction* prediction, double* ptm) {
    if (missing(prediction, "axf_prediction_ptm", "prediction") || missing(ptm, "axf_prediction_ptm", "ptm"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        AXF_CHECK(prediction->p.heads.has_pae, "axf_prediction_ptm: %s has no predicted-aligned-error head (use a _ptm model)",
                  prediction->model_name.c_str());
        *ptm = prediction->p.heads.ptm;
    });
}

axf_status axf_prediction_write_pdb(const axf_prediction* prediction, const char* path) {
    if (missing(prediction, "axf_prediction_write_pdb", "prediction") || missing(path, "axf_prediction_write_pdb", "path"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { axfold::io::write_pdb(path, axfold::prediction_structure(prediction->p)); });
}

axf_status axf_prediction_write_mmcif(const axf_prediction* prediction, const char* path) {
    if (missing(prediction, "axf_prediction_write_mmcif", "prediction") ||
        missing(path, "axf_prediction_write_mmcif", "path"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        axfold::io::write_mmcif(path, axfold::prediction_structure(prediction->p), prediction->model_name);
    });
}

void axf_prediction_free(axf_prediction* prediction) { delete prediction; }

}  // extern "C"
