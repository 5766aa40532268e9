// axfold command-line front end: `axfold <command> [options]`.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "kernels/error.h"
#include "parallel/comm.h"

namespace po = boost::program_options;
using namespace axfold::apps;

namespace {

const char* kUsage =
    "usage: axfold <command> [options]\n"
    "commands:\n"
    "  predict [options]                 structures and confidences from a FASTA file (+ alignments) or features\n"
    "  features [options]                AlphaFold2 input features from a FASTA file and its alignments\n"
    "  init-params [options]             random parameters in the AF2 layout (meaningless structures)\n"
    "  convert-params IN.npz OUT.h5      convert official AlphaFold2 parameters to HDF5\n"
    "  bench evoformer|model [options]   benchmarks at AF2 widths\n"
    "  training-example [options]        a training example from an mmCIF chain and its alignments\n"
    "  train [options]                   train the parameters (Adam; data parallel x DAP under mpirun)\n"
    "  plan --n-res R [options]          the memory plan (chunk size, predicted peak) for a protein\n"
    "  plan --training --crop-size R     the memory plan of a training update\n"
    "Run 'axfold <command> --help' for a command's options.\n";

// How the model runs (model/run.h), for the commands that run or plan it; --offload only where the whole model
// runs or is planned.
void add_run_options(po::options_description& desc, axfold::RunSettings& r, bool offload) {
    desc.add_options()("threads", po::value<int>(&r.threads)->default_value(0), "CPU threads (0 = all)")(
        "chunk-size", po::value<int64_t>(&r.chunk_size)->default_value(-1),
        "rows per chunk in every module (0 = unchunked; default: the planner's choice)")(
        "max-memory", po::value<std::string>(&r.max_memory),
        "memory budget, e.g. 24G: the planner picks the chunk size (with --device cuda, the GPU's)")(
        "device", po::value<std::string>(&r.device)->default_value("cpu"), "where the model runs: cpu or cuda")(
        "precision", po::value<std::string>(&r.precision)->default_value("fp32"),
        "GEMM arithmetic: fp32, tf32 or bf16 (fp32 accumulation; CPUs without bf16 dot products emulate bf16 at fp32 "
        "speed)")("activations", po::value<std::string>(&r.activations),
                  "storage of the trunk's MSA and pair: fp32 or bf16 (default: bf16 with --precision bf16, else fp32)");
    if (offload)
        desc.add_options()("offload", po::value<std::string>(&r.offload)->default_value("auto"),
                           "with --device cuda, park the MSA in host memory during the extra-MSA stack: auto (when the "
                           "plan needs it), on or off");
}

// Parses args into vm; returns false (after printing help) when --help was asked.
bool parse(const std::vector<std::string>& args, const po::options_description& desc, po::variables_map& vm) {
    // No positional arguments: a stray word (`--model-name model_3_ptm model_4_ptm`) is an error, not dropped.
    const po::positional_options_description none;
    po::store(po::command_line_parser(args).options(desc).positional(none).run(), vm);
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return false;
    }
    po::notify(vm);
    return true;
}

// The input options `features` and `predict` share.
void add_input_options(po::options_description& desc, InputOptions& in) {
    desc.add_options()("fasta", po::value<std::string>(&in.fasta),
                       "query sequence (FASTA, one record); a complex: one record per chain, or ColabFold's A:B")(
        "msa-dir", po::value<std::string>(&in.msa_dir),
        "a complex's alignments in AlphaFold's msas/ layout: DIR/<chain_id>/{uniref90_hits.sto, bfd_uniref_hits.a3m, "
        "mgnify_hits.sto, uniprot_hits.sto[, template_features.h5]}, chain ids A, B, ... in FASTA order")(
        "msa", po::value<std::vector<std::string>>(&in.msas)->composing(),
        "alignment of the query (A3M or Stockholm; repeatable, merged in order: uniref90, BFD/UniRef30, mgnify)")(
        "features", po::value<std::string>(&in.features),
        "raw (features.pkl layout) or processed feature HDF5 instead of --fasta")(
        "seed", po::value<uint64_t>(&in.seed)->default_value(0), "random seed of MSA sampling and masking")(
        "max-msa-clusters", po::value<int64_t>(&in.max_msa_clusters)->default_value(-1),
        "MSA cluster rows (-1: the preset's, 512, 508 with templates)")(
        "max-extra-msa", po::value<int64_t>(&in.max_extra_msa)->default_value(-1),
        "extra MSA rows (-1: the preset's, 5120 or 1024)")("no-msa-padding", po::bool_switch(&in.no_msa_padding),
                                                           "keep only real MSA rows (AF2 pads to the maxima)");
}

int run_features(const std::vector<std::string>& args) {
    FeaturesOptions o;
    po::options_description desc("axfold features options");
    desc.add_options()("help,h", "show this help")("out,o", po::value<std::string>(&o.out)->required(),
                                                   "output HDF5 file")(
        "processed", po::bool_switch(&o.processed), "write the processed model inputs (leading iteration axis)")(
        "model-name", po::value<std::string>(&o.model_name)->default_value("model_1_ptm"),
        "preset for --processed (MSA sizes, templates)")(
        "num-recycle", po::value<int>(&o.num_recycle)->default_value(3), "recycles for --processed (iterations - 1)")(
        "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0 = all)")(
        "max-memory", po::value<std::string>(&o.in.max_memory),
        "memory budget for reading the alignments, e.g. 8G (default: this machine's)");
    add_input_options(desc, o.in);
    po::variables_map vm;
    if (!parse(args, desc, vm)) return 0;
    return features_main(o);
}

int run_predict(const std::vector<std::string>& args) {
    PredictOptions o;
    po::options_description desc("axfold predict options");
    add_input_options(desc, o.in);
    desc.add_options()("help,h", "show this help")(
        "params", po::value<std::vector<std::string>>(&o.params)->required(),
        "AlphaFold2 parameters (.npz as published, or .h5): one file per --model-name, in order, or a directory "
        "with params_<model>.npz files (AlphaFold's data_dir/params)")(
        "model-name", po::value<std::vector<std::string>>(&o.model_names),
        "model_1 .. model_5, optionally _ptm, or model_1_multimer_v3 .. model_5_multimer_v3; repeatable or "
        "comma-separated: the models run in turn and are ranked (ranked_<i>.pdb, ranking_debug.json)")(
        "input", po::value<std::string>(&o.input),
        "many targets in one job: a directory of .fasta/.a3m files, a FASTA file (a target per record) or a .csv/.tsv "
        "of id,sequence; each into OUT_DIR/<target>/, resumable (see docs/CLUSTERS.md); --msa-dir DIR then holds "
        "DIR/<target>/")(
        "shard", po::value<std::string>(&o.shard),
        "with --input: this job's share I/N (0 <= I < N) of the targets, balanced by cost (default: Slurm's "
        "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT)")("quiet", po::bool_switch(&o.quiet),
                                                           "with --input: no progress or log lines on stderr")(
        "list-targets", po::bool_switch(&o.list_targets),
        "with --input: print this shard's targets (id, length, source) in the order they would run, and stop")(
        "model-preset", po::value<std::string>(&o.model_preset),
        "instead of --model-name, AlphaFold's presets: monomer (model_1..5), monomer_ptm (model_1_ptm..5_ptm) or "
        "multimer (model_1_multimer_v3..5_multimer_v3)")("num-seeds", po::value<int>(&o.num_predictions_per_model),
                                                         "ColabFold's name for --num-predictions-per-model")(
        "num-predictions-per-model", po::value<int>(&o.num_predictions_per_model)->default_value(-1),
        "predictions per model with different seeds (-1: 5 with --model-preset multimer as AlphaFold, else 1); "
        "multimer predictions are named <model>_pred_<k>")("out-dir", po::value<std::string>(&o.out_dir)->required(),
                                                           "output directory (created if missing)")(
        "num-recycle", po::value<int>(&o.num_recycle)->default_value(-1),
        "recycles (-1: every iteration of processed features; when features are built here AF2's 3 for monomers, up to "
        "20 for AlphaFold-Multimer, which stops early)")("structure-module-layers",
                                                         po::value<int>(&o.structure_module_layers)->default_value(8),
                                                         "structure-module iterations (AF2: 8)")(
        "save-outputs", po::bool_switch(&o.save_outputs), "also write outputs_<name>.h5 (all outputs, per-iteration)")(
        "overwrite", po::bool_switch(&o.overwrite), "replace existing results")(
        "recycle-early-stop-tolerance", po::value<double>(&o.run.recycle_early_stop_tolerance)->default_value(-1),
        "stop recycling when the Ca distances change by at most this many A (AlphaFold-Multimer's rule; default: 0.5 "
        "for multimer models, off for monomers)");
    add_run_options(desc, o.run, true);
    po::variables_map vm;
    if (!parse(args, desc, vm)) return 0;
    AXF_CHECK(!vm.count("num-seeds") || vm["num-predictions-per-model"].defaulted(),
              "give --num-seeds or --num-predictions-per-model (the same setting), not both");
    return predict_main(o);
}

int run_init_params(const std::vector<std::string>& args) {
    InitParamsOptions o;
    po::options_description desc("axfold init-params options");
    desc.add_options()("help,h", "show this help")(
        "model-name", po::value<std::string>(&o.model_name)->required(),
        "model_1 .. model_5, optionally _ptm, or model_1_multimer_v3 .. model_5_multimer_v3")(
        "out", po::value<std::string>(&o.out)->required(), "output file (.npz, or .h5)")(
        "evoformer-blocks", po::value<int64_t>(&o.evoformer_blocks)->default_value(48), "Evoformer blocks")(
        "extra-msa-blocks", po::value<int64_t>(&o.extra_msa_blocks)->default_value(4), "extra-MSA blocks")(
        "seed", po::value<uint64_t>(&o.seed)->default_value(0), "random seed");
    po::variables_map vm;
    if (!parse(args, desc, vm)) return 0;
    return init_params_main(o);
}

int run_bench(const std::vector<std::string>& args) {
    if (!args.empty() && args[0] == "kernels") {
        BenchKernelsOptions o;
        po::options_description desc("axfold bench kernels options");
        desc.add_options()("help,h", "show this help")("rows", po::value<int64_t>(&o.rows)->default_value(65536),
                                                       "rows of the [rows, cols] operands")(
            "cols", po::value<int64_t>(&o.cols)->default_value(128), "row length (softmax/layer-norm axis)")(
            "reps", po::value<int>(&o.reps)->default_value(20), "timed repetitions per kernel (median reported)")(
            "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0 = all)")(
            "device", po::value<std::string>(&o.device)->default_value("cpu"), "cpu or cuda")(
            "json", po::bool_switch(&o.json), "print one JSON object");
        po::variables_map vm;
        if (!parse(std::vector<std::string>(args.begin() + 1, args.end()), desc, vm)) return 0;
        return bench_kernels_main(o);
    }
    if (!args.empty() && args[0] == "gemm") {
        BenchGemmOptions o;
        po::options_description desc("axfold bench gemm options");
        desc.add_options()("help,h", "show this help")("reps", po::value<int>(&o.reps)->default_value(5),
                                                       "timed repetitions per shape (median reported)")(
            "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0 = all)")(
            "json", po::bool_switch(&o.json), "print one JSON object")(
            "shapes", po::value<std::string>(&o.shapes),
            "comma-separated shape names to time (the square_2048 ceiling always runs); default: all");
        po::variables_map vm;
        if (!parse(std::vector<std::string>(args.begin() + 1, args.end()), desc, vm)) return 0;
        return bench_gemm_main(o);
    }
    if (!args.empty() && args[0] == "model") {
        BenchModelOptions o;
        po::options_description desc("axfold bench model options");
        desc.add_options()("help,h", "show this help")("n-res", po::value<int64_t>(&o.n_res)->default_value(128),
                                                       "residues")(
            "n-seq", po::value<int64_t>(&o.n_seq)->default_value(128), "MSA cluster rows")(
            "n-extra", po::value<int64_t>(&o.n_extra)->default_value(1024), "extra-MSA rows")(
            "evoformer-blocks", po::value<int64_t>(&o.evoformer_blocks)->default_value(48), "Evoformer blocks")(
            "extra-msa-blocks", po::value<int64_t>(&o.extra_msa_blocks)->default_value(4), "extra-MSA blocks")(
            "num-recycle", po::value<int>(&o.num_recycle)->default_value(0), "recycles (iterations - 1)")(
            "templates", po::value<int>(&o.templates)->default_value(0),
            "random templates (> 0: model_1_ptm, with its template embedding; 0: model_3_ptm)")(
            "model-name", po::value<std::string>(&o.model_name),
            "the preset to time (model_1_multimer_v3: AlphaFold-Multimer on 2 chains unless --chains)")(
            "chains", po::value<int>(&o.chains)->default_value(0),
            "> 0: AlphaFold-Multimer (model_1_multimer_v3, 4 random templates) on this many chains splitting --n-res")(
            "run-blocks", po::value<int>(&o.run_blocks)->default_value(-1),
            "run only the first N blocks of each stack, all parameters loaded (peak memory as the full run)")(
            "training", po::bool_switch(&o.training),
            "time one training update instead (training_step on a random ground truth, Adam, the moving average; "
            "CPU, float32) against plan --training")(
            "json", po::bool_switch(&o.json), "print one JSON object");
        add_run_options(desc, o.run, true);
        po::variables_map vm;
        if (!parse(std::vector<std::string>(args.begin() + 1, args.end()), desc, vm)) return 0;
        return bench_model_main(o);
    }
    if (args.empty() || args[0] != "evoformer") {
        std::fprintf(stderr, "axfold bench: expected a benchmark name (evoformer, model, kernels or gemm)\n");
        return 2;
    }
    BenchEvoformerOptions o;
    po::options_description desc("axfold bench evoformer options");
    desc.add_options()("help,h", "show this help")("n-seq", po::value<int64_t>(&o.n_seq)->default_value(128),
                                                   "MSA rows S")(
        "n-res", po::value<int64_t>(&o.n_res)->default_value(256), "residues R")(
        "blocks", po::value<int>(&o.blocks)->default_value(3), "timed blocks (median reported)")(
        "json", po::bool_switch(&o.json), "print one JSON object")("breakdown", po::bool_switch(&o.breakdown),
                                                                   "print the time of each sub-module on stderr")(
        "dap", po::bool_switch(&o.dap), "run the distributed (DAP) block on one rank too (always on under mpirun)")(
        "backward", po::bool_switch(&o.backward),
        "time the block's backward (its forward replayed, then the backward; CPU, float32) instead");
    add_run_options(desc, o.run, false);
    po::variables_map vm;
    po::store(po::command_line_parser(std::vector<std::string>(args.begin() + 1, args.end())).options(desc).run(), vm);
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    po::notify(vm);
    return bench_evoformer_main(o);
}

int run_command(const std::string& cmd, const std::vector<std::string>& args) {
    if (cmd == "convert-params") {
        if (args.size() != 2) {
            std::fprintf(stderr, "usage: axfold convert-params IN.npz OUT.h5\n");
            return 2;
        }
        return convert_params_main(args[0], args[1]);
    }
    if (cmd == "bench") return run_bench(args);
    if (cmd == "predict") return run_predict(args);
    if (cmd == "features") return run_features(args);
    if (cmd == "init-params") return run_init_params(args);
    if (cmd == "training-example") {
        TrainingExampleOptions o;
        po::options_description desc("axfold training-example options");
        desc.add_options()("help,h", "show this help")("mmcif", po::value<std::string>(&o.mmcif)->required(),
                                                       "the experimental structure (PDBx/mmCIF)")(
            "chain", po::value<std::string>(&o.chain)->required(), "author chain id")(
            "residues", po::value<std::string>(&o.residues), "BEGIN:END, 0-based SEQRES positions (default: all)")(
            "msa", po::value<std::vector<std::string>>(&o.msas)->multitoken(),
            "the chain's alignments (A3M / Stockholm; uniref90, BFD, mgnify order)")(
            "out,o", po::value<std::string>(&o.out)->required(), "the example (HDF5: features/ and batch/)")(
            "model-name", po::value<std::string>(&o.model_name)->default_value("model_3_ptm"), "feature presets")(
            "num-recycle", po::value<int>(&o.num_recycle)->default_value(3), "iterations - 1")(
            "seed", po::value<uint64_t>(&o.seed)->default_value(0), "MSA sampling and masking")(
            "max-msa-clusters", po::value<int64_t>(&o.max_msa_clusters)->default_value(-1),
            "cluster rows (-1: preset)")("max-extra-msa", po::value<int64_t>(&o.max_extra_msa)->default_value(-1),
                                         "extra rows (-1: preset)")(
            "no-msa-padding", po::bool_switch(&o.no_msa_padding), "keep only real MSA rows")(
            "unclamped-fape", po::bool_switch(&o.unclamped_fape),
            "use_clamped_fape 0 (AF2 clamps 90 % of training examples)")(
            "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0 = all)");
        po::variables_map vm;
        if (!parse(args, desc, vm)) return 0;
        return training_example_main(o);
    }
    if (cmd == "train") {
        axfold::TrainerOptions o;
        po::options_description desc("axfold train options");
        desc.add_options()("help,h", "show this help")("params", po::value<std::string>(&o.params)->required(),
                                                       "AlphaFold2 parameters to start from (.npz or .h5)")(
            "model-name", po::value<std::string>(&o.model_name)->default_value("model_3_ptm"),
            "model_1 .. model_5, optionally _ptm (model_1 and model_2 train their template embedding on examples "
            "with template features)")(
            "examples", po::value<std::vector<std::string>>(&o.examples)->multitoken()->required(),
            "training examples: HDF5 files with features/ and batch/ groups (docs/TRAINING.md)")(
            "out-dir", po::value<std::string>(&o.out_dir)->required(),
            "checkpoints (checkpoint-<update>/) and training_log.jsonl")(
            "steps", po::value<int64_t>(&o.steps)->default_value(1), "the update to train to")(
            "learning-rate", po::value<double>(&o.learning_rate)->default_value(1e-3),
            "Adam's learning rate after the warm-up (AF2: 1e-3; fine-tuning 5e-4)")(
            "warmup-steps", po::value<int64_t>(&o.warmup_steps)->default_value(1000),
            "linear warm-up updates (AF2: 1000)")("clip-norm", po::value<double>(&o.clip_norm)->default_value(0.1),
                                                  "clip the gradient's global norm to this (AF2: 0.1; 0 = off)")(
            "dap", po::value<int>(&o.dap)->default_value(1),
            "ranks per example (DAP); the launcher's ranks / this = data-parallel replicas")(
            "save-every", po::value<int64_t>(&o.save_every)->default_value(0),
            "also checkpoint every this many updates (the last update always)")(
            "resume", po::value<std::string>(&o.resume),
            "a checkpoint directory to continue from (with the run's own settings)")(
            "overwrite", po::bool_switch(&o.overwrite), "replace another run's checkpoints and log in --out-dir")(
            "no-dropout", po::bool_switch(), "train without AF2's dropout")(
            "save-gradients", po::bool_switch(&o.save_gradients),
            "also write each update's gradient (replicas' mean, before clipping) as gradients-<update>.h5")(
            "validate", po::value<std::vector<std::string>>(&o.validate)->multitoken(),
            "validation examples (the training layout): the whole chain's lDDT-Ca of the moving average's "
            "prediction, in validation_log.jsonl")(
            "validate-every", po::value<int64_t>(&o.validate_every)->default_value(0),
            "validate every this many updates (and after the last; 0: after the last only)")(
            "allow-changed-settings", po::bool_switch(&o.allow_changed_settings),
            "resume although learning rate, examples, ranks, seed or sampling differ from the checkpoint's")(
            "resample", po::bool_switch(&o.resample),
            "sample the MSA clusters, extra rows and masking anew for every update (AF2 training; needs examples "
            "made by training-example)")(
            "crop-size", po::value<int64_t>(&o.crop_size)->default_value(0),
            "a random contiguous crop of this many residues per update (AF2: 256; 0 = the whole example)")(
            "seed", po::value<uint64_t>(&o.seed)->default_value(0), "the updates' crops and samples")(
            "ema-decay", po::value<double>(&o.ema_decay)->default_value(0.999),
            "decay of the parameters' moving average, written as params_<model>_ema.npz (AF2: 0.999; 0 = none)")(
            "sample-recycles", po::bool_switch(&o.sample_recycles),
            "run 1..R iterations per update, drawn uniformly (R: the example's; AF2's training), the gradient "
            "through the last")("structure-module-layers", po::value<int>(&o.structure_module_layers)->default_value(8),
                                "structure-module iterations (AF2: 8)")(
            "device", po::value<std::string>(&o.device)->default_value("cpu"),
            "cpu or cuda (the training step, the parameters and Adam's state on the GPU)")(
            "precision", po::value<std::string>(&o.precision)->default_value("fp32"),
            "GEMM arithmetic: fp32, tf32 or bf16 (mixed precision: bf16 GEMM operands and stack checkpoints, fp32 "
            "accumulation; the parameters, optimizer state and losses stay fp32)")(
            "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0 = all)");
        po::variables_map vm;
        if (!parse(args, desc, vm)) return 0;
        o.dropout = !vm["no-dropout"].as<bool>();
        return train_main(o);
    }
    if (cmd == "plan") {
        PlanOptions o;
        po::options_description desc("axfold plan options");
        desc.add_options()("help,h", "show this help")("n-res", po::value<int64_t>(&o.n_res), "residues")(
            "crop-size", po::value<int64_t>(), "with --training: the crop's residues (the same as --n-res)")(
            "n-seq", po::value<int64_t>(&o.n_seq)->default_value(512),
            "MSA cluster rows (with --training: default 128, AF2's training)")(
            "n-extra", po::value<int64_t>(&o.n_extra)->default_value(5120),
            "extra-MSA rows (with --training: default 1024)")(
            "training", po::bool_switch(&o.training),
            "plan one training update (axfold train, one rank) instead of a prediction")(
            "no-ema", po::bool_switch(), "with --training: without the parameters' moving average (--ema-decay 0)")(
            "dap", po::value<int>(&o.dap)->default_value(1), "with --training: ranks per example (one rank's share)")(
            "longest", po::bool_switch(&o.longest),
            "the longest protein (with --training: crop) that fits --max-memory, and its plan")(
            "model-name", po::value<std::string>(&o.model_name)->default_value("model_3_ptm"),
            "model_1 .. model_5, optionally _ptm (model_1 and model_2 plan their template embedding too)")(
            "save-outputs", po::bool_switch(&o.save_outputs),
            "plan for predict --save-outputs with 4 iterations (keeps the heads' [N, N, 64] tensors and every "
            "iteration's pair)");
        add_run_options(desc, o.run, true);  // --device cuda plans the GPU's share (needs --max-memory without one)
        po::variables_map vm;
        if (!parse(args, desc, vm)) return 0;
        AXF_CHECK(o.training || !vm.count("crop-size"), "plan: --crop-size goes with --training");
        AXF_CHECK(vm.count("n-res") || vm.count("crop-size") || o.longest,
                  "plan: give --n-res (or, with --training, --crop-size), or --longest");
        if (vm.count("crop-size")) o.n_res = vm["crop-size"].as<int64_t>();
        if (o.training) {  // AF2's training sizes unless given
            if (vm["n-seq"].defaulted()) o.n_seq = 128;
            if (vm["n-extra"].defaulted()) o.n_extra = 1024;
        }
        o.ema = !vm["no-ema"].as<bool>();
        return plan_main(o);
    }
    std::fprintf(stderr, "axfold: unknown command '%s'\n%s", cmd.c_str(), kUsage);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    std::vector<std::string> args(argv + 2, argv + argc);
    // Under an MPI launcher (mpirun, srun) every rank runs the command; an error on any rank ends the
    // whole job through report_fatal_error (MPI_Abort), so no rank is left waiting in a collective.
    int rc = 1;
    try {
        axfold::world_comm();
        rc = run_command(cmd, args);
    } catch (const axfold::Error& e) {
        axfold::report_fatal_error(cmd.c_str(), e.what(), 1);
        return 1;
    } catch (const po::error& e) {
        axfold::end_job_if_parallel(cmd.c_str(), e.what(), 2);
        std::fprintf(stderr, "axfold %s: %s\n", cmd.c_str(), e.what());
        return 2;
    } catch (const std::exception& e) {
        axfold::end_job_if_parallel(cmd.c_str(), e.what(), 1);
        std::fprintf(stderr, "axfold %s: unexpected error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
    axfold::finalize_world_comm();
    return rc;
}
