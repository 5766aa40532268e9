// The C++ API (include/axfold/axfold.hpp): the library's Model, features and Prediction behind opaque handles,
// every call's exceptions turned into axf::Error with the same message.
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>

#include "axfold/axfold.hpp"
#include "io/features.h"
#include "io/msa.h"
#include "io/structure_writer.h"
#include "model/model.h"
#include "model/run.h"
#include "pipeline/msa_pairing.h"
#include "pipeline/multimer_transforms.h"
#include "pipeline/raw_features.h"
#include "pipeline/transforms.h"

namespace axf {

struct Features::Impl {
    axfold::FeatureDict features;
    std::string source;  // the file they came from, named in error messages
};

struct Prediction::Impl {
    axfold::Prediction p;
    std::string model_name;
};

struct Model::Impl {
    axfold::Model model;
    std::string name;
};

namespace {

// Runs fn; any exception becomes axf::Error with its message.
template <class F>
auto guarded(F&& fn) -> decltype(fn()) {
    try {
        return fn();
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(e.what());
    } catch (...) {
        throw Error("axfold: unknown error");
    }
}

axfold::FeatureDict transform(const axfold::pipeline::RawFeatures& raw, const std::string& model_name, uint64_t seed,
                              int num_recycle) {
    return axfold::pipeline::process_features(
        raw, axfold::pipeline::TransformConfig::for_model(model_name, seed, num_recycle));
}

// A host float32 tensor's values.
std::vector<float> values(const axfold::Tensor& t, const char* what) {
    const axfold::Tensor h = t.to(axfold::Device::CPU).contiguous();
    AXF_CHECK(h.dtype() == axfold::DType::F32, "%s: %s, expected float32", what, h.desc().c_str());
    return std::vector<float>(h.f32(), h.f32() + h.numel());
}

}  // namespace

std::string version() {
    return AXFOLD_VERSION;
}

Error::~Error() = default;

Features::Features(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Features::Features(Features&&) noexcept = default;
Features& Features::operator=(Features&&) noexcept = default;
Features::~Features() = default;

Features Features::load(const std::string& path, const std::string& model_name, uint64_t seed, int num_recycle) {
    return guarded([&] {
        namespace pl = axfold::pipeline;
        const bool processed = pl::detect_feature_file(path) == pl::FeatureFileKind::Processed;
        axfold::FeatureDict f = processed ? axfold::io::read_features_h5(path)
                                : axfold::ModelPreset::from_name(model_name).multimer
                                    ? pl::process_multimer_features(
                                          pl::read_merged_features_h5(path),
                                          axfold::pipeline::TransformConfig::for_model(model_name, seed, num_recycle))
                                    : transform(pl::read_raw_features_h5(path), model_name, seed, num_recycle);
        return Features(std::make_unique<Impl>(Impl{std::move(f), path}));
    });
}

Features Features::from_fasta(const std::string& fasta_path, const std::vector<std::string>& msa_paths,
                              const std::string& model_name, uint64_t seed, int num_recycle) {
    return guarded([&] {
        namespace pl = axfold::pipeline;
        const bool multimer = axfold::ModelPreset::from_name(model_name).multimer;
        AXF_CHECK(multimer == pl::is_complex_fasta(fasta_path),
                  "%s is %s, but %s is %s model: AlphaFold-Multimer models take complexes, monomer models one chain",
                  fasta_path.c_str(), multimer ? "one chain" : "a complex", model_name.c_str(),
                  multimer ? "an AlphaFold-Multimer" : "a monomer");
        if (multimer) {  // one directory in AF2's msas/ layout, one ColabFold complex A3M, or none
            const bool dir = msa_paths.size() == 1 && std::filesystem::is_directory(msa_paths[0]);
            const pl::ComplexFeatures c =
                pl::complex_features(fasta_path, dir ? std::vector<std::string>{} : msa_paths, dir ? msa_paths[0] : "");
            return Features(std::make_unique<Impl>(
                Impl{pl::process_multimer_features(
                         c.merged, axfold::pipeline::TransformConfig::for_model(model_name, seed, num_recycle)),
                     fasta_path}));
        }
        const std::vector<axfold::io::FastaRecord> recs = axfold::io::read_fasta(fasta_path);
        std::vector<axfold::io::Msa> msas;
        for (const std::string& m : msa_paths) msas.push_back(axfold::io::read_msa(m));
        const pl::RawFeatures raw = pl::make_raw_features(recs[0].sequence, recs[0].description, msas);
        return Features(std::make_unique<Impl>(Impl{transform(raw, model_name, seed, num_recycle), fasta_path}));
    });
}

namespace {

// Processed features as they are; raw ones (a monomer's, or a complex's merged ones) through the transforms.
axfold::FeatureDict from_feature_arrays(std::map<std::string, axfold::Tensor> arrays,
                                        std::map<std::string, std::vector<std::string>> strings,
                                        const std::string& model_name, uint64_t seed, int num_recycle) {
    namespace pl = axfold::pipeline;
    if (arrays.count("msa_feat")) return arrays;
    if (arrays.count("asym_id") && arrays.count("cluster_bias_mask"))
        return pl::process_multimer_features(
            arrays, axfold::pipeline::TransformConfig::for_model(model_name, seed, num_recycle));
    pl::RawFeatures raw{std::move(arrays), std::move(strings), "features"};
    return transform(raw, model_name, seed, num_recycle);
}

}  // namespace

Features Features::from_text(const std::string& fasta_text, const std::vector<std::string>& msa_texts,
                             const std::string& model_name, uint64_t seed, int num_recycle) {
    return guarded([&] {
        namespace pl = axfold::pipeline;
        const std::vector<axfold::io::FastaRecord> recs = axfold::io::parse_fasta(fasta_text, "fasta_text", true);
        const bool multimer = axfold::ModelPreset::from_name(model_name).multimer;
        if (multimer) {  // through files: the complex pipeline reads paths
            std::string templ = (std::filesystem::temp_directory_path() / "axfold_text_XXXXXX").string();
            AXF_CHECK(::mkdtemp(templ.data()) != nullptr, "cannot create a temporary directory %s", templ.c_str());
            const std::filesystem::path dir = templ;
            struct Cleanup {
                std::filesystem::path p;
                ~Cleanup() {
                    std::error_code ec;
                    std::filesystem::remove_all(p, ec);
                }
            } cleanup{dir};
            std::ofstream((dir / "query.fasta").string()) << fasta_text;
            std::vector<std::string> msas;
            for (size_t i = 0; i < msa_texts.size(); ++i) {
                msas.push_back((dir / ("msa_" + std::to_string(i) + ".a3m")).string());
                std::ofstream(msas.back()) << msa_texts[i];
            }
            const pl::ComplexFeatures c = pl::complex_features((dir / "query.fasta").string(), msas, "");
            return Features(std::make_unique<Impl>(
                Impl{pl::process_multimer_features(
                         c.merged, axfold::pipeline::TransformConfig::for_model(model_name, seed, num_recycle)),
                     "fasta_text"}));
        }
        AXF_CHECK(recs.size() == 1 && recs[0].sequence.find(':') == std::string::npos,
                  "fasta_text: %zu records; %s is a monomer model (one sequence)", recs.size(), model_name.c_str());
        std::vector<axfold::io::Msa> msas;
        for (size_t i = 0; i < msa_texts.size(); ++i) {
            const std::string name = "msa_texts[" + std::to_string(i) + "]";
            msas.push_back(msa_texts[i].rfind("# STOCKHOLM", 0) == 0 ? axfold::io::parse_stockholm(msa_texts[i], name)
                                                                     : axfold::io::parse_a3m(msa_texts[i], name));
        }
        const pl::RawFeatures raw = pl::make_raw_features(recs[0].sequence, recs[0].description, msas);
        return Features(std::make_unique<Impl>(Impl{transform(raw, model_name, seed, num_recycle), "fasta_text"}));
    });
}

Features Features::from_arrays(const std::vector<Array>& arrays, const std::string& model_name, uint64_t seed,
                               int num_recycle) {
    return guarded([&] {
        std::map<std::string, axfold::Tensor> tensors;
        for (const Array& a : arrays) {
            AXF_CHECK(a.dtype >= 0 && a.dtype <= 2,
                      "array '%s': dtype %d, expected 0 (float32), 1 (int32) or 2 (int64)", a.name.c_str(), a.dtype);
            AXF_CHECK(a.data != nullptr || std::find(a.shape.begin(), a.shape.end(), 0) != a.shape.end(),
                      "array '%s': no data", a.name.c_str());
            for (int64_t n : a.shape) AXF_CHECK(n >= 0, "array '%s': negative size", a.name.c_str());
            const axfold::DType dt = a.dtype == 0   ? axfold::DType::F32
                                     : a.dtype == 1 ? axfold::DType::I32
                                                    : axfold::DType::I64;
            AXF_CHECK(!tensors.count(a.name), "array '%s' given twice", a.name.c_str());
            tensors[a.name] =
                axfold::Tensor::borrow(const_cast<void*>(a.data), axfold::Shape(a.shape.begin(), a.shape.end()), dt,
                                       axfold::Device::CPU)
                    .clone();
        }
        return Features(std::make_unique<Impl>(
            Impl{from_feature_arrays(std::move(tensors), {}, model_name, seed, num_recycle), "arrays"}));
    });
}

int64_t Features::num_residues() const {
    const auto it = impl_->features.find("aatype");  // [iterations, N]; checked by predict
    return it != impl_->features.end() && it->second.dim() == 2 ? it->second.size(1) : -1;
}

Prediction::Prediction(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Prediction::Prediction(Prediction&&) noexcept = default;
Prediction& Prediction::operator=(Prediction&&) noexcept = default;
Prediction::~Prediction() = default;

const std::string& Prediction::model_name() const {
    return impl_->model_name;
}
int64_t Prediction::num_residues() const {
    return impl_->p.heads.plddt.numel();
}
int Prediction::iterations() const {
    return impl_->p.iterations;
}
std::vector<float> Prediction::plddt() const {
    return guarded([&] { return values(impl_->p.heads.plddt, "plddt"); });
}
double Prediction::mean_plddt() const {
    return guarded([&] { return axfold::mean_plddt(impl_->p); });
}
std::vector<float> Prediction::atom37() const {
    return guarded([&] { return values(impl_->p.structure_module.final_atom_positions, "atom37"); });
}
std::vector<float> Prediction::atom37_mask() const {
    return guarded([&] { return values(impl_->p.structure_module.final_atom_mask, "atom37 mask"); });
}
bool Prediction::has_pae() const {
    return impl_->p.heads.has_pae;
}
std::vector<float> Prediction::pae() const {
    return guarded([&] {
        AXF_CHECK(has_pae(), "pae: %s has no predicted-aligned-error head (use a _ptm model)",
                  impl_->model_name.c_str());
        return values(impl_->p.heads.predicted_aligned_error, "pae");
    });
}
float Prediction::max_pae() const {
    return guarded([&] {
        AXF_CHECK(has_pae(), "max_pae: %s has no predicted-aligned-error head (use a _ptm model)",
                  impl_->model_name.c_str());
        return impl_->p.heads.max_predicted_aligned_error;
    });
}
double Prediction::ptm() const {
    return guarded([&] {
        AXF_CHECK(has_pae(), "ptm: %s has no predicted-aligned-error head (use a _ptm model)",
                  impl_->model_name.c_str());
        return static_cast<double>(impl_->p.heads.ptm);
    });
}
bool Prediction::has_iptm() const {
    return impl_->p.heads.has_iptm;
}
double Prediction::iptm() const {
    return guarded([&] {
        AXF_CHECK(has_iptm(), "iptm: %s is not an AlphaFold-Multimer model", impl_->model_name.c_str());
        return static_cast<double>(impl_->p.heads.iptm);
    });
}
double Prediction::ranking_confidence() const {
    return has_iptm() ? static_cast<double>(impl_->p.heads.weighted_ptm_score) : mean_plddt();
}
std::vector<std::pair<std::string, double>> Prediction::timings() const {
    return impl_->p.timings;
}
void Prediction::write_pdb(const std::string& path) const {
    guarded([&] { axfold::io::write_pdb(path, axfold::prediction_structure(impl_->p)); });
}
void Prediction::write_mmcif(const std::string& path) const {
    guarded([&] { axfold::io::write_mmcif(path, axfold::prediction_structure(impl_->p), impl_->model_name); });
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

Model Model::load(const std::string& params_path, const std::string& model_name) {
    return guarded([&] {
        return Model(std::make_unique<Impl>(Impl{axfold::Model::load(params_path, model_name), model_name}));
    });
}

const std::string& Model::name() const {
    return impl_->name;
}

Prediction Model::predict(const Features& features, const PredictOptions& o) const {
    return guarded([&] {
        axfold::RunSettings s;
        s.device = o.device;
        s.precision = o.precision;
        s.activations = o.activations;
        s.max_memory = o.max_memory;
        s.chunk_size = o.chunk_size;
        s.offload = o.offload;
        s.threads = o.threads;
        s.recycle_early_stop_tolerance = o.recycle_early_stop_tolerance;
        const axfold::RunTarget target = axfold::configure_run(s);
        axfold::Context ctx(target.device);
        axfold::PredictOptions po;
        const axfold::FeatureDict& f = features.impl_->features;
        axfold::prepare_prediction(impl_->model, f, features.impl_->source, s, target, o.num_recycle, false, ctx, po);
        return Prediction(
            std::make_unique<Prediction::Impl>(Prediction::Impl{impl_->model.predict(f, po, ctx), impl_->name}));
    });
}

}  // namespace axf
