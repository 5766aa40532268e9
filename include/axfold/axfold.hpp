// axfold C++ API: all a C++ program includes to predict structures with libaxfold (C++20).
//
//   axf::Model model = axf::Model::load("params_model_3_ptm.npz", "model_3_ptm");
//   axf::Features f = axf::Features::load("features.h5", model.name());   // or Features::from_fasta
//   axf::PredictOptions o;
//   o.max_memory = "24G";                                                  // o.device = "cuda"; ...
//   axf::Prediction p = model.predict(f, o);
//   std::vector<float> plddt = p.plddt();                                  // also atom37, PAE, pTM
//   p.write_pdb("model.pdb");
//
// The same engine as `axfold predict` and the C API (axfold.h), with the same settings and the same error
// messages. Every failure throws axf::Error, whose what() names the file, the feature or the setting, with what
// was expected and what was found. Objects are movable, not copyable; results are returned as copies.
// Threads: as the C API (axfold.h): predict calls must not overlap; loading may run concurrently.
// Link: find_package(axfold), then target_link_libraries(app axfold::axfold_c) (libaxfold.so).
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#if defined(__GNUC__)
#define AXF_CXX_API __attribute__((visibility("default")))
#else
#define AXF_CXX_API
#endif

namespace axf {

// The library's version ("0.1.0").
AXF_CXX_API std::string version();

class AXF_CXX_API Error : public std::runtime_error {
public:
    explicit Error(const std::string& message) : std::runtime_error(message) {}
    ~Error() override;
};

// How a prediction runs (the options of `axfold predict`).
struct PredictOptions {
    std::string device = "cpu";      // "cpu" or "cuda"
    std::string precision = "fp32";  // GEMM arithmetic: "fp32", "tf32" or "bf16" (fp32 accumulation)
    std::string activations;         // the trunk's activation storage, "fp32" or "bf16"; "": bf16 with bf16 GEMMs
    std::string max_memory;          // the budget the planner fits, e.g. "24G" (the GPU's with "cuda"); "": none
    int64_t chunk_size = -1;         // rows per chunk; -1: the planner's choice, 0: unchunked
    std::string offload = "auto";    // with "cuda", park the MSA in host memory: "auto", "on" or "off"
    int threads = 0;                 // CPU threads (process-wide); 0: as the process is set
    int num_recycle = -1;            // -1: every iteration the features hold
    double recycle_early_stop_tolerance = -1;  // Å; negative: the model's (AlphaFold-Multimer 0.5, monomers none)
};

// A model's inputs: AF2's processed features, one model preset's (MSA sample, cluster and extra rows, templates).
class AXF_CXX_API Features {
public:
    // Processed or raw feature HDF5 (features.pkl's layout, see scripts/features_pkl_to_h5.py); raw features go
    // through AF2's transforms for model_name with `seed` and num_recycle + 1 iterations (-1: AF2's 3 recycles).
    static Features load(const std::string& path, const std::string& model_name, uint64_t seed = 0,
                         int num_recycle = -1);
    // One sequence (FASTA, one record) and its alignments (A3M or Stockholm, merged in order). For an
    // AlphaFold-Multimer model, a complex (one record per chain, or A:B) with one directory in AlphaFold's msas/
    // layout, one ColabFold complex A3M, or no alignments (single-sequence mode). Raw features for a multimer model
    // (load) are a complex's merged features.
    static Features from_fasta(const std::string& fasta_path, const std::vector<std::string>& msa_paths,
                               const std::string& model_name, uint64_t seed = 0, int num_recycle = -1);
    // The same from text: a FASTA record (or a complex's records for a multimer model) and alignments as A3M or
    // Stockholm text (for a multimer model: one ColabFold complex A3M, or none).
    static Features from_text(const std::string& fasta_text, const std::vector<std::string>& msa_texts,
                              const std::string& model_name, uint64_t seed = 0, int num_recycle = -1);
    // One feature array of AF2's FeatureDict, read (copied) from the caller's memory: C order, float32, int32 or
    // int64 (dtype 0, 1, 2 as axf_dtype).
    struct Array {
        std::string name;
        int dtype = 0;
        std::vector<int64_t> shape;
        const void* data = nullptr;
    };
    // Features from arrays: processed (with msa_feat) as they are, raw ones through model_name's transforms as load.
    static Features from_arrays(const std::vector<Array>& arrays, const std::string& model_name, uint64_t seed = 0,
                                int num_recycle = -1);
    int64_t num_residues() const;

    Features(Features&&) noexcept;
    Features& operator=(Features&&) noexcept;
    ~Features();
    struct Impl;

private:
    explicit Features(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    friend class Model;
};

// One model's prediction.
class AXF_CXX_API Prediction {
public:
    const std::string& model_name() const;
    int64_t num_residues() const;
    int iterations() const;                  // recycling iterations run
    std::vector<float> plddt() const;        // [N], 0..100
    double mean_plddt() const;               // AF2's ranking confidence of monomer models
    std::vector<float> atom37() const;       // [N, 37, 3] atom positions (Angstrom), AF2's atom37 order
    std::vector<float> atom37_mask() const;  // [N, 37]
    bool has_pae() const;                    // _ptm models
    std::vector<float> pae() const;          // [N, N] predicted aligned error (Angstrom); throws without a PAE head
    float max_pae() const;
    double ptm() const;                 // throws without a PAE head
    bool has_iptm() const;              // AlphaFold-Multimer models
    double iptm() const;                // pTM over pairs of chains; throws for monomers
    double ranking_confidence() const;  // AlphaFold's: 0.8 ipTM + 0.2 pTM (multimer), mean pLDDT (monomer)
    std::vector<std::pair<std::string, double>> timings() const;  // seconds per stage
    // The structure with pLDDT as B-factors, written to a temporary name and renamed.
    void write_pdb(const std::string& path) const;
    void write_mmcif(const std::string& path) const;

    Prediction(Prediction&&) noexcept;
    Prediction& operator=(Prediction&&) noexcept;
    ~Prediction();
    struct Impl;

private:
    explicit Prediction(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
    friend class Model;
};

class AXF_CXX_API Model {
public:
    // Parameters of model_name ("model_1" .. "model_5", optionally "_ptm", or "model_1_multimer_v3" ..
    // "model_5_multimer_v3") from an .npz (as published) or .h5 file; a file of another model is an error naming it.
    static Model load(const std::string& params_path, const std::string& model_name);
    const std::string& name() const;
    Prediction predict(const Features& features, const PredictOptions& options = {}) const;

    Model(Model&&) noexcept;
    Model& operator=(Model&&) noexcept;
    ~Model();
    struct Impl;

private:
    explicit Model(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace axf
