// The C API (include/axfold/axfold.h) over the C++ API (include/axfold/axfold.hpp): opaque handles holding its
// objects, every call behind one exception barrier that turns an exception into a status and a thread-local
// message, results copied into the caller's buffers.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "axfold/axfold.h"
#include "axfold/axfold.hpp"

struct axf_model {
    axf::Model model;
};

struct axf_features {
    axf::Features features;
};

struct axf_prediction {
    axf::Prediction p;
};

namespace {

thread_local std::string last_error;

// Runs fn; an exception becomes AXF_ERROR with its message.
template <class F>
axf_status guarded(F&& fn) {
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

void copy_out(const std::vector<float>& v, float* out) {
    std::copy(v.begin(), v.end(), out);
}

}  // namespace

extern "C" {

const char* axf_version(void) {
    return AXFOLD_VERSION;
}

int axf_api_version(void) {
    return AXF_API_VERSION;
}

const char* axf_last_error(void) {
    return last_error.c_str();
}

axf_status axf_model_load(const char* params_path, const char* model_name, axf_model** model) {
    if (missing(model, "axf_model_load", "model") || missing(params_path, "axf_model_load", "params_path") ||
        missing(model_name, "axf_model_load", "model_name"))
        return AXF_INVALID_ARGUMENT;
    *model = nullptr;
    return guarded([&] { *model = new axf_model{axf::Model::load(params_path, model_name)}; });
}

void axf_model_free(axf_model* model) {
    delete model;
}

axf_status axf_features_load(const char* path, const char* model_name, uint64_t seed, int num_recycle,
                             axf_features** features) {
    if (missing(features, "axf_features_load", "features") || missing(path, "axf_features_load", "path") ||
        missing(model_name, "axf_features_load", "model_name"))
        return AXF_INVALID_ARGUMENT;
    *features = nullptr;
    return guarded([&] { *features = new axf_features{axf::Features::load(path, model_name, seed, num_recycle)}; });
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
        const std::vector<std::string> msas(msa_paths, msa_paths + num_msas);
        *features = new axf_features{axf::Features::from_fasta(fasta_path, msas, model_name, seed, num_recycle)};
    });
}

axf_status axf_features_from_text(const char* fasta_text, const char* const* msa_texts, size_t num_msas,
                                  const char* model_name, uint64_t seed, int num_recycle, axf_features** features) {
    if (missing(features, "axf_features_from_text", "features") ||
        missing(fasta_text, "axf_features_from_text", "fasta_text") ||
        missing(model_name, "axf_features_from_text", "model_name") ||
        (num_msas > 0 && missing(msa_texts, "axf_features_from_text", "msa_texts")))
        return AXF_INVALID_ARGUMENT;
    for (size_t i = 0; i < num_msas; ++i)
        if (missing(msa_texts[i], "axf_features_from_text", "an entry of msa_texts")) return AXF_INVALID_ARGUMENT;
    *features = nullptr;
    return guarded([&] {
        const std::vector<std::string> msas(msa_texts, msa_texts + num_msas);
        *features = new axf_features{axf::Features::from_text(fasta_text, msas, model_name, seed, num_recycle)};
    });
}

axf_status axf_features_from_arrays(const axf_array* arrays, size_t num_arrays, const char* model_name, uint64_t seed,
                                    int num_recycle, axf_features** features) {
    if (missing(features, "axf_features_from_arrays", "features") ||
        missing(model_name, "axf_features_from_arrays", "model_name") ||
        (num_arrays > 0 && missing(arrays, "axf_features_from_arrays", "arrays")))
        return AXF_INVALID_ARGUMENT;
    std::vector<axf::Features::Array> list;
    for (size_t i = 0; i < num_arrays; ++i) {
        const axf_array& a = arrays[i];
        if (missing(a.name, "axf_features_from_arrays", "an array's name") ||
            (a.ndim > 0 && missing(a.shape, "axf_features_from_arrays", "an array's shape")) || a.ndim < 0)
            return AXF_INVALID_ARGUMENT;
        // A C caller may store any int in the enum; reading it as axf_dtype in C++ is undefined past its range.
        int dtype = 0;
        static_assert(sizeof dtype == sizeof a.dtype);
        std::memcpy(&dtype, &a.dtype, sizeof dtype);
        list.push_back({a.name, dtype, std::vector<int64_t>(a.shape, a.shape + a.ndim), a.data});
    }
    *features = nullptr;
    return guarded(
        [&] { *features = new axf_features{axf::Features::from_arrays(list, model_name, seed, num_recycle)}; });
}

int64_t axf_features_num_residues(const axf_features* features) {
    return features ? features->features.num_residues() : -1;
}

void axf_features_free(axf_features* features) {
    delete features;
}

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
        axf::PredictOptions po;
        po.device = o.device ? o.device : "cpu";
        po.precision = o.precision ? o.precision : "fp32";
        po.max_memory = o.max_memory ? o.max_memory : "";
        po.chunk_size = o.chunk_size;
        po.threads = o.threads;
        po.num_recycle = o.num_recycle;
        po.activations = o.activations ? o.activations : "";
        po.offload = o.offload ? o.offload : "auto";
        po.recycle_early_stop_tolerance = o.recycle_early_stop_tolerance;
        *prediction = new axf_prediction{model->model.predict(features->features, po)};
    });
}

int64_t axf_prediction_num_residues(const axf_prediction* prediction) {
    return prediction ? prediction->p.num_residues() : -1;
}

axf_status axf_prediction_plddt(const axf_prediction* prediction, float* plddt) {
    if (missing(prediction, "axf_prediction_plddt", "prediction") || missing(plddt, "axf_prediction_plddt", "plddt"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { copy_out(prediction->p.plddt(), plddt); });
}

axf_status axf_prediction_mean_plddt(const axf_prediction* prediction, double* mean_plddt) {
    if (missing(prediction, "axf_prediction_mean_plddt", "prediction") ||
        missing(mean_plddt, "axf_prediction_mean_plddt", "mean_plddt"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { *mean_plddt = prediction->p.mean_plddt(); });
}

axf_status axf_prediction_atom37(const axf_prediction* prediction, float* positions, float* mask) {
    if (missing(prediction, "axf_prediction_atom37", "prediction")) return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        if (positions) copy_out(prediction->p.atom37(), positions);
        if (mask) copy_out(prediction->p.atom37_mask(), mask);
    });
}

int axf_prediction_has_pae(const axf_prediction* prediction) {
    return prediction && prediction->p.has_pae();
}

axf_status axf_prediction_pae(const axf_prediction* prediction, float* pae, float* max_pae) {
    if (missing(prediction, "axf_prediction_pae", "prediction") || missing(pae, "axf_prediction_pae", "pae"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] {
        copy_out(prediction->p.pae(), pae);
        if (max_pae) *max_pae = prediction->p.max_pae();
    });
}

axf_status axf_prediction_ptm(const axf_prediction* prediction, double* ptm) {
    if (missing(prediction, "axf_prediction_ptm", "prediction") || missing(ptm, "axf_prediction_ptm", "ptm"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { *ptm = prediction->p.ptm(); });
}

axf_status axf_prediction_iptm(const axf_prediction* prediction, double* iptm) {
    if (missing(prediction, "axf_prediction_iptm", "prediction") || missing(iptm, "axf_prediction_iptm", "iptm"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { *iptm = prediction->p.iptm(); });
}

axf_status axf_prediction_ranking_confidence(const axf_prediction* prediction, double* confidence) {
    if (missing(prediction, "axf_prediction_ranking_confidence", "prediction") ||
        missing(confidence, "axf_prediction_ranking_confidence", "confidence"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { *confidence = prediction->p.ranking_confidence(); });
}

axf_status axf_prediction_write_pdb(const axf_prediction* prediction, const char* path) {
    if (missing(prediction, "axf_prediction_write_pdb", "prediction") ||
        missing(path, "axf_prediction_write_pdb", "path"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { prediction->p.write_pdb(path); });
}

axf_status axf_prediction_write_mmcif(const axf_prediction* prediction, const char* path) {
    if (missing(prediction, "axf_prediction_write_mmcif", "prediction") ||
        missing(path, "axf_prediction_write_mmcif", "path"))
        return AXF_INVALID_ARGUMENT;
    return guarded([&] { prediction->p.write_mmcif(path); });
}

void axf_prediction_free(axf_prediction* prediction) {
    delete prediction;
}

}  // extern "C"
