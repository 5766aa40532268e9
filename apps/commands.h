// Entry points of the `axfold` subcommands. Each is a thin front end over the library; main.cpp parses
// the command line and catches axfold::Error.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "evoformer/memory_plan.h"
#include "model/model.h"
#include "model/model_plan.h"
#include "model/run.h"
#include "parallel/comm.h"
#include "pipeline/msa_pairing.h"
#include "pipeline/raw_features.h"
#include "pipeline/transforms.h"
#include "training/trainer.h"

namespace axfold::apps {

int convert_params_main(const std::string& in, const std::string& out);

struct BenchEvoformerOptions {
    int64_t n_seq = 128, n_res = 256;
    int blocks = 3;
    bool json = false;
    bool breakdown = false;  // per sub-module times on stderr
    bool dap = false;        // run the DAP block even on one rank (under mpirun it always does)
    bool backward = false;   // time the block's backward (forward replay + backward) instead
    RunSettings run;         // --device, --precision, --activations, --threads, --chunk-size, --max-memory
};
int bench_evoformer_main(const BenchEvoformerOptions& o);

// `axfold bench kernels`: achieved memory bandwidth of the fused kernels against a plain copy.
struct BenchKernelsOptions {
    int64_t rows = 65536, cols = 128;
    int reps = 20, threads = 0;
    bool json = false;
    std::string device = "cpu";
};
int bench_kernels_main(const BenchKernelsOptions& o);

// `axfold bench gemm`: fp32 and bf16 GEMM throughput at the Evoformer block's shapes, against a large square
// GEMM (this machine's ceiling).
struct BenchGemmOptions {
    int reps = 5, threads = 0;
    bool json = false;
    std::string shapes;  // comma-separated shape names to time besides the square ceiling; empty: all
};
int bench_gemm_main(const BenchGemmOptions& o);

// Where the model inputs come from: a FASTA file with its alignments, or a raw or processed feature file.
struct InputOptions {
    std::string fasta;              // one sequence; for a complex one record per chain, or ColabFold's A:B
    std::vector<std::string> msas;  // A3M / Stockholm files, merged in this order
    std::string msa_dir;            // a complex's alignments in AF2's msas/<chain_id>/ layout
    std::string features;           // raw (features.pkl layout) or processed HDF5, told apart by their keys
    uint64_t seed = 0;              // MSA sampling and masking
    int64_t max_msa_clusters = -1, max_extra_msa = -1;  // -1: the model preset's
    bool no_msa_padding = false;  // keep only real MSA rows (AF2 pads to the maxima with zero masks)
    std::string max_memory;       // budget for reading alignments (predict's --max-memory); empty: the machine's
    std::function<void(const std::string&)> note;  // where notes on the input go (a target's log); empty: stderr
};

// Raw features from --fasta/--msa (or a raw feature file); notes what it read (InputOptions::note).
pipeline::RawFeatures build_raw_features(const InputOptions& in);
// The transform settings of model_name (TransformConfig::for_model, num_recycle < 0 its default) with the
// overrides of `in`.
pipeline::TransformConfig transform_config(const InputOptions& in, const std::string& model_name, int num_recycle);
// Processed model features from any input: FASTA + alignments, raw features (transformed) or processed
// features (read as they are).
pipeline::ProcessedFeatures model_features(const InputOptions& in, const std::string& model_name, int num_recycle);

// A complex's chains and merged features (pipeline/msa_pairing.h), from --fasta with --msa-dir (or no alignments:
// single-sequence mode) or from a merged feature file (AF2's multimer features.pkl layout, with asym_id).
struct ComplexInput {
    std::vector<pipeline::ComplexChain> chains;  // empty when read from a feature file
    pipeline::MergedFeatures merged;
};
ComplexInput build_complex_input(const InputOptions& in);
// Whether the input is a complex: --msa-dir, a FASTA with several chains, or merged features.
bool is_complex_input(const InputOptions& in);

struct FeaturesOptions {
    InputOptions in;
    std::string out;
    std::string model_name = "model_1_ptm";  // presets for --processed
    int num_recycle = 3;
    int threads = 0;
    bool processed = false;  // write the processed layout (for inspection) instead of raw features
};
int features_main(const FeaturesOptions& o);

struct PredictOptions {
    InputOptions in;
    // --model-name (repeatable, or comma-separated): the models run one after another and are ranked by mean
    // pLDDT (AF2's monomer ranking). --params: one file per model, in the same order, or one directory holding
    // AlphaFold's params_<model>.npz (or .h5) files.
    std::vector<std::string> params, model_names;
    // Batch mode (--input): many targets in one job, each into out_dir/<target>/ (apps/batch.cpp).
    std::string input;  // a directory of FASTA / A3M files, a multi-record FASTA, or a CSV/TSV id,sequence;
                        // in.msa_dir then holds DIR/<target>/ per target
    std::string shard;  // "I/N" with 0 <= I < N; default from SLURM_ARRAY_TASK_ID (- _MIN) / SLURM_ARRAY_TASK_COUNT
    bool quiet = false;
    bool list_targets = false;  // print the shard's targets (id, length, source) in order and stop
    std::string model_preset;   // AF2's --model_preset: monomer, monomer_ptm or multimer (the five models)
    // Predictions per model, each with its own MSA sample (AF2's --num_multimer_predictions_per_model, ColabFold's
    // --num-seeds); -1: 5 with --model-preset multimer (AF2's default), else 1.
    int num_predictions_per_model = -1;
    std::string out_dir;
    int num_recycle = -1;  // -1: every iteration in the features
    int structure_module_layers = 8;
    bool save_outputs = false, overwrite = false;
    RunSettings run;  // --device, --precision, --activations, --threads, --chunk-size, --max-memory, --offload
};
int predict_main(const PredictOptions& o);

struct InitParamsOptions {
    std::string model_name, out;
    int64_t evoformer_blocks = 48, extra_msa_blocks = 4;
    uint64_t seed = 0;
};
int init_params_main(const InitParamsOptions& o);

struct BenchModelOptions {
    int64_t n_res = 128, n_seq = 128, n_extra = 1024;
    int64_t evoformer_blocks = 48, extra_msa_blocks = 4;
    int num_recycle = 0;
    int templates = 0;       // > 0: model_1_ptm with that many random templates
    int chains = 0;          // > 0: model_1_multimer_v3 on this many chains of n_res / chains residues (4 templates)
    std::string model_name;  // a preset instead (a multimer one on 2 chains unless --chains is given)
    int run_blocks = -1;     // PredictOptions::run_blocks
    bool json = false;
    bool training = false;   // one training update (training_step and Adam, random ground truth) instead
    RunSettings run;
};
int bench_model_main(const BenchModelOptions& o);

struct PlanOptions {
    int64_t n_res = 256, n_seq = 512, n_extra = 5120;
    bool save_outputs = false;  // plan for `predict --save-outputs` with 4 iterations (heads' tensors, pairs kept)
    std::string model_name = "model_3_ptm";  // model_1 and model_2 add the template embedding
    RunSettings run;                         // --device plans the GPU's share (no GPU needed with --max-memory)
    bool training = false;                   // one training update (training/training_plan.h) instead
    bool ema = true;                         // the training plan keeps the moving average
    int dap = 1;                             // the training plan: ranks per example (one rank's share)
    bool longest = false;                    // find the longest protein (crop) that fits --max-memory
};
int plan_main(const PlanOptions& o);

// `axfold train` (training/trainer.h).
int train_main(const TrainerOptions& o);

// `axfold training-example`: a training example from an mmCIF chain (a residue range of its SEQRES) and
// the chain's alignments.
struct TrainingExampleOptions {
    std::string mmcif, chain, out, residues, model_name = "model_3_ptm";
    std::vector<std::string> msas;
    uint64_t seed = 0;
    int num_recycle = 3, threads = 0;
    int64_t max_msa_clusters = -1, max_extra_msa = -1;
    bool no_msa_padding = false, unclamped_fape = false;
};
int training_example_main(const TrainingExampleOptions& o);
}  // namespace axfold::apps
