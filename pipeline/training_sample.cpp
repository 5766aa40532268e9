#include "pipeline/training_sample.h"

#include "io/hdf5_file.h"

namespace axfold::pipeline {

using namespace axfold::io;

namespace {

// The batch features make_training_sample derives from the model features.
const char* const kFromFeatures[] = {"aatype", "residue_index", "seq_mask", "true_msa", "bert_mask"};

bool derived(const std::string& name) {
    for (const char* k : kFromFeatures)
        if (name == k) return true;
    return name == "seq_length";
}

Tensor scalar_i64(int64_t v) {
    Tensor t = Tensor::empty({}, DType::I64);
    t.data<int64_t>()[0] = v;
    return t;
}

}  // namespace

TrainingSample make_training_sample(const RawFeatures& raw, const ProcessedFeatures& ground_truth,
                                    const TransformConfig& config) {
    TrainingSample s;
    s.features = process_features(raw, config);
    s.batch = ground_truth;
    const int64_t R = s.features.at("aatype").size(0);
    for (const char* k : kFromFeatures) s.batch[k] = s.features.at(k).select(0, R - 1).contiguous();
    s.batch["seq_length"] = Tensor::full({}, static_cast<float>(raw.num_res()));
    return s;
}

RawFeatures crop_raw_features(const RawFeatures& raw, int64_t begin, int64_t n) {
    const int64_t N = raw.num_res();
    AXF_CHECK(begin >= 0 && n >= 1 && begin + n <= N, "%s: crop of residues [%lld, %lld) of %lld", raw.source.c_str(),
              (long long)begin, (long long)(begin + n), (long long)N);
    RawFeatures out;
    out.source = raw.source;
    out.strings = raw.strings;
    for (const auto& [k, t] : raw.arrays) {
        if (k == "msa" || k == "deletion_matrix_int" ||
            (k.rfind("template_", 0) == 0 && t.dim() >= 2 && t.size(1) == N))
            out.arrays[k] = t.slice(1, begin, begin + n).contiguous();  // [rows or templates, N, ...]
        else if (t.dim() >= 1 && t.size(0) == N && k.rfind("template_", 0) != 0)
            out.arrays[k] = t.slice(0, begin, begin + n).contiguous();
        else
            out.arrays[k] = t;
    }
    Tensor sl = Tensor::empty({n}, DType::I32);
    for (int64_t i = 0; i < n; ++i) sl.data<int32_t>()[i] = static_cast<int32_t>(n);
    out.arrays["seq_length"] = sl;
    if (out.strings.count("sequence") && !out.strings.at("sequence").empty())
        out.strings["sequence"] = {
            out.strings.at("sequence")[0].substr(static_cast<size_t>(begin), static_cast<size_t>(n))};
    return out;
}

ProcessedFeatures crop_ground_truth(const ProcessedFeatures& ground_truth, int64_t num_res, int64_t begin, int64_t n) {
    AXF_CHECK(begin >= 0 && n >= 1 && begin + n <= num_res, "ground truth: crop of residues [%lld, %lld) of %lld",
              (long long)begin, (long long)(begin + n), (long long)num_res);
    ProcessedFeatures out;
    for (const auto& [k, t] : ground_truth)
        out[k] = t.dim() >= 1 && t.size(0) == num_res ? t.slice(0, begin, begin + n).contiguous() : t;
    return out;
}

void write_training_source(Hdf5Writer& out, const RawFeatures& raw, const TransformConfig& config) {
    for (const auto& [k, t] : raw.arrays) out.write("raw/" + k, t);
    out.write("raw_config/max_msa_clusters", scalar_i64(config.max_msa_clusters));
    out.write("raw_config/max_extra_msa", scalar_i64(config.max_extra_msa));
    out.write("raw_config/num_iterations", scalar_i64(config.num_iterations));
    out.write("raw_config/pad_to_fixed_size", scalar_i64(config.pad_to_fixed_size ? 1 : 0));
    out.write("raw_config/seed", scalar_i64(static_cast<int64_t>(config.seed)));
}

TrainingSource read_training_source(const std::string& path) {
    const Hdf5File f(path);
    AXF_CHECK(f.has("raw") && f.has("raw_config") && f.has("batch"),
              "%s: no raw/ features to resample from (an example made by `axfold training-example` keeps them)",
              path.c_str());
    TrainingSource s;
    s.path = path;
    s.raw.source = path;
    for (const std::string& k : f.list("raw"))
        if (f.has_dataset(k)) s.raw.arrays[k.substr(k.find("raw/") + 4)] = f.read(k);
    validate_raw_features(s.raw);
    for (const std::string& k : f.list("batch")) {
        if (!f.has_dataset(k)) continue;
        const std::string name = k.substr(k.find("batch/") + 6);
        if (!derived(name)) s.ground_truth[name] = f.read(k);
    }
    auto setting = [&](const char* name) {
        const std::vector<int64_t> v = host_int64(f.read(std::string("raw_config/") + name));
        AXF_CHECK(v.size() == 1, "%s: raw_config/%s is not a scalar", path.c_str(), name);
        return v[0];
    };
    s.config.max_msa_clusters = setting("max_msa_clusters");
    s.config.max_extra_msa = setting("max_extra_msa");
    s.config.num_iterations = static_cast<int>(setting("num_iterations"));
    s.config.pad_to_fixed_size = setting("pad_to_fixed_size") != 0;
    if (f.has_dataset("raw_config/seed")) s.config.seed = static_cast<uint64_t>(setting("seed"));
    return s;
}

}  // namespace axfold::pipeline
