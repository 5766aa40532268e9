// `axfold predict`: features + parameters in; structures, confidences and timings out, in the files
// AlphaFold users' pipelines already read.
#include "apps/predict.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "evoformer/memory_plan.h"
#include "io/atomic_file.h"
#include "io/features.h"
#include "io/hdf5_file.h"
#include "io/json_writer.h"
#include "io/msa.h"
#include "io/params.h"
#include "io/report.h"
#include "io/structure_writer.h"
#include "kernels/device.h"
#include "kernels/ops.h"
#include "model/model.h"
#include "parallel/comm.h"
#include "pipeline/multimer_transforms.h"

namespace axfold::apps {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// --model-name values, commas split, in order; each a known preset, none twice.
std::vector<std::string> model_list(const std::vector<std::string>& args) {
    std::vector<std::string> names;
    for (const std::string& a : args) {
        size_t start = 0;
        while (start <= a.size()) {
            const size_t comma = std::min(a.find(',', start), a.size());
            const std::string n = a.substr(start, comma - start);
            AXF_CHECK(!n.empty(), "--model-name '%s': empty model name", a.c_str());
            // Each a known preset (throws naming the accepted names), monomers and AlphaFold-Multimer not mixed.
            AXF_CHECK(
                names.empty() || ModelPreset::from_name(n).multimer == ModelPreset::from_name(names[0]).multimer,
                "--model-name: %s and %s are a monomer and an AlphaFold-Multimer model; run them in separate jobs",
                names[0].c_str(), n.c_str());
            AXF_CHECK(std::find(names.begin(), names.end(), n) == names.end(), "--model-name: %s given twice",
                      n.c_str());
            names.push_back(n);
            start = comma + 1;
        }
    }
    return names;
}

// AF2's --model_preset: the five models of a kind.
std::vector<std::string> preset_models(const std::string& preset) {
    const char* suffix = preset == "monomer"       ? ""
                         : preset == "monomer_ptm" ? "_ptm"
                         : preset == "multimer"    ? "_multimer_v3"
                                                   : nullptr;
    AXF_CHECK(suffix, "--model-preset '%s': expected monomer, monomer_ptm or multimer", preset.c_str());
    std::vector<std::string> names;
    for (int i = 1; i <= 5; ++i) names.push_back("model_" + std::to_string(i) + suffix);
    return names;
}

// One prediction of the job: a model and a seed, named as AF2 names its outputs.
struct Run {
    std::string name;  // <model> for monomers with one prediction each, <model>_pred_<k> otherwise
    size_t model = 0;  // index into the model list
};

// Processed features are one MSA sample: every prediction of a model would be the same, so they get one each.
std::vector<Run> job_runs(const std::vector<std::string>& models, const PredictOptions& o, bool processed_input) {
    const bool multimer = ModelPreset::from_name(models[0]).multimer;
    const int per_model = o.num_predictions_per_model > 0                    ? o.num_predictions_per_model
                          : o.model_preset == "multimer" && !processed_input ? 5
                                                                             : 1;
    AXF_CHECK(o.num_predictions_per_model == -1 || o.num_predictions_per_model > 0,
              "--num-predictions-per-model %d: expected at least 1", o.num_predictions_per_model);
    AXF_CHECK(per_model == 1 || !processed_input,
              "--num-predictions-per-model %d: %s holds processed features, one MSA sample, so every prediction of a "
              "model would be the same; give raw features or --fasta",
              per_model, o.in.features.c_str());
    std::vector<Run> runs;
    for (size_t m = 0; m < models.size(); ++m)
        for (int k = 0; k < per_model; ++k)
            runs.push_back({multimer || per_model > 1 ? models[m] + "_pred_" + std::to_string(k) : models[m], m});
    return runs;
}

// The parameter file of each model: --params once per model, in order, or one directory holding AlphaFold's
// params_<model>.npz (or .h5, as convert-params writes) files.
std::vector<std::string> params_files(const std::vector<std::string>& params, const std::vector<std::string>& models) {
    namespace fs = std::filesystem;
    if (params.size() == 1 && fs::is_directory(params[0])) {
        std::vector<std::string> files;
        for (const std::string& m : models) {
            const fs::path npz = fs::path(params[0]) / ("params_" + m + ".npz"),
                           h5 = fs::path(params[0]) / ("params_" + m + ".h5");
            AXF_CHECK(fs::exists(npz) || fs::exists(h5), "--params %s: no parameters for %s (expected %s or %s)",
                      params[0].c_str(), m.c_str(), npz.filename().c_str(), h5.filename().c_str());
            files.push_back((fs::exists(npz) ? npz : h5).string());
        }
        return files;
    }
    AXF_CHECK(params.size() == models.size(),
              "predict: %zu --params for %zu models: give one parameter file per --model-name, in the same order, or "
              "one directory with params_<model>.npz files",
              params.size(), models.size());
    for (const std::string& f : params) {
        AXF_CHECK(!fs::is_directory(f), "--params %s is a directory: with several --params, each is one model's file",
                  f.c_str());
        // Checked before any model runs, so a missing file cannot stop the job after hours of earlier models.
        AXF_CHECK(fs::exists(f), "--params %s: no such file", f.c_str());
    }
    return params;
}

// The chain lengths of a structure, in its residue order (one entry for a monomer).
std::vector<int64_t> chain_lengths(const io::ProteinStructure& prot) {
    std::vector<int64_t> lengths;
    const std::vector<int64_t> chains =
        prot.chain_index.defined() ? host_int64(prot.chain_index) : std::vector<int64_t>();
    const int64_t n = prot.aatype.numel();
    if (chains.empty()) return {n};
    for (int64_t i = 0; i < n; ++i) {
        if (i == 0 || chains[i] != chains[i - 1]) lengths.push_back(0);
        ++lengths.back();
    }
    return lengths;
}

// The MSA rows the report's coverage plot shows (the query first, 21 = gap): the monomer's raw MSA or the
// complex's merged one (its real rows); none for processed features.
std::vector<std::vector<uint8_t>> coverage_rows(bool processed_input, const pipeline::RawFeatures& raw,
                                                const pipeline::MergedFeatures& merged) {
    if (processed_input) return {};
    const Tensor& msa = merged.empty() ? raw.at("msa") : merged.at("msa");
    const int64_t rows = merged.empty() ? msa.size(0) : merged.at("num_alignments").data<int32_t>()[0], n = msa.size(1);
    const std::vector<int64_t> v = host_int64(msa);
    std::vector<std::vector<uint8_t>> out(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) out[r].assign(v.begin() + r * n, v.begin() + (r + 1) * n);
    return out;
}

// The sizes a prediction of `in` will have, or lower bounds of them, read without building anything: a FASTA's
// residues (a complex's chains summed; an A3M's query) with the MSA counted as one row, or a feature file's
// dataspaces. The memory plan made from them comes before the features and parameters are read.
struct InputSizes {
    int64_t n_res = 0, n_msa = 1, n_extra = 1;
};
InputSizes input_sizes(const InputOptions& in, bool processed, const ModelPreset& preset) {
    InputSizes z;
    if (!in.fasta.empty()) {
        const bool complex = preset.multimer && !io::has_colabfold_header(in.fasta);
        for (const io::FastaRecord& r : io::read_fasta(in.fasta, preset.multimer)) {
            z.n_res += static_cast<int64_t>(r.sequence.size());
            if (!complex) break;
        }
        return z;
    }
    const io::Hdf5File f(in.features);
    auto dim = [&](const char* name, int rank, int axis) -> int64_t {
        if (!f.has_dataset(name)) return 0;
        const Shape s = f.shape(name);
        return static_cast<int>(s.size()) == rank ? s[axis] : 0;
    };
    if (processed) {  // [R, N], [R, S, N, 49], [R, E, N]
        z.n_res = dim("aatype", 2, 1);
        z.n_msa = std::max<int64_t>(1, dim("msa_feat", 4, 1));
        z.n_extra = std::max<int64_t>(1, dim("extra_msa", 3, 1));
    } else {  // msa [S, N]: AF2 samples min(S, clusters) cluster rows and up to max_extra_msa of the rest
        const int64_t rows = dim("msa", 2, 0);
        z.n_res = dim("msa", 2, 1);
        z.n_msa = std::max<int64_t>(1, std::min(rows, preset.max_msa_clusters));
        z.n_extra = std::max<int64_t>(1, std::min(rows - z.n_msa, preset.max_extra_msa));
    }
    return z;
}

}  // namespace

size_t peak_rss_bytes() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<size_t>(ru.ru_maxrss) * 1024;
}

PredictJob::PredictJob(const PredictOptions& o) {
    AXF_CHECK(!o.params.empty() && !o.out_dir.empty(),
              "predict: --params, --model-name (or --model-preset) and --out-dir are required, with --fasta, "
              "--features or --input");
    AXF_CHECK(o.model_preset.empty() || o.model_names.empty(), "give --model-name or --model-preset, not both");
    models = o.model_preset.empty() ? model_list(o.model_names) : preset_models(o.model_preset);
    AXF_CHECK(!models.empty(), "predict: --model-name or --model-preset is required");
    multimer = ModelPreset::from_name(models[0]).multimer;
    param_paths = params_files(o.params, models);
    target = configure_run(o.run);
    if (!target.note.empty()) std::fprintf(stderr, "axfold: %s\n", target.note.c_str());
    // DAP: under an MPI launcher the stacks run over every rank; rank 0 writes the outputs. With the trunk on
    // GPUs the stacks' collectives go over NCCL (bootstrapped from the MPI world), one GPU per rank: made
    // before anything touches a device, since it selects this rank's GPU.
    comm = &axfold::world_comm();
    if (target.device == Device::CUDA) nccl = gpu_dap_comm(*comm);
}

const Model& PredictJob::model(size_t i, int structure_module_layers, TargetLog& log) {
    auto it = loaded.find(i);
    if (it != loaded.end()) return it->second;
    if (!keep_all_models) loaded.clear();  // the previous model's parameters go before the next one's come
    const auto t0 = Clock::now();
    Model m = Model::load(param_paths[i], models[i], structure_module_layers);
    log.line("loaded the parameters of %s from %s in %.2f s%s", models[i].c_str(), param_paths[i].c_str(), since(t0),
             keep_all_models ? " (once for the job)" : "");
    return loaded.emplace(i, std::move(m)).first->second;
}

void TargetLog::line(const char* fmt, ...) {
    char buf[4096];
    va_list args;
    va_start(args, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    text += prefix + buf + "\n";
    if (!quiet) std::fprintf(stderr, "%s%s%s\n", tty ? "\r\033[K" : "", prefix.c_str(), buf);
}

TargetOutcome predict_target(PredictJob& job, const PredictOptions& o, const InputOptions& in_options,
                             const std::string& out_dir, bool overwrite, TargetLog& log) {
    const auto t_start = Clock::now();
    AXF_CHECK(!in_options.features.empty() || !in_options.fasta.empty(),
              "predict: --fasta (or --features, or --input) is required");
    const std::vector<std::string>& models = job.models;
    const bool multimer = job.multimer;
    const bool processed_input = in_options.fasta.empty() && pipeline::detect_feature_file(in_options.features) ==
                                                                 pipeline::FeatureFileKind::Processed;
    const std::vector<Run> runs = job_runs(models, o, processed_input);
    const std::string source = in_options.fasta.empty() ? in_options.features : in_options.fasta;
    AXF_CHECK(processed_input || multimer == is_complex_input(in_options),
              "%s is %s, but %s: AlphaFold-Multimer models take complexes (several FASTA records or A:B, "
              "--msa-dir), monomer models one chain",
              source.c_str(), multimer ? "one chain" : "a complex",
              multimer ? "the models are AlphaFold-Multimer's" : "the models are monomer models");
    // The plan comes first: a prediction that cannot fit its memory (--max-memory, else the machine's), however
    // chunked, is refused before the features are built or the parameters read (their shapes suffice).
    const InputSizes sizes = input_sizes(in_options, processed_input, ModelPreset::from_name(models[0]));
    if (sizes.n_res > 0)
        for (size_t i = 0; i < models.size(); ++i)
            check_fits(model_config(read_param_shapes(job.param_paths[i]), models[i], o.structure_module_layers,
                                    job.param_paths[i]),
                       sizes.n_res, sizes.n_msa, sizes.n_extra, o.run, job.target, source);
    InputOptions in = in_options;
    in.note = [&](const std::string& line) { log.line("%s", line.c_str()); };
    in.max_memory = o.run.max_memory;
    const Device device = job.target.device;
    Comm& comm = *job.comm;
    namespace fs = std::filesystem;
    fs::create_directories(out_dir);
    auto out = [&](const std::string& f) { return (fs::path(out_dir) / f).string(); };
    struct ModelFiles {
        std::string pdb, cif, conf, pae, scores, h5;
    };
    auto files_of = [&](const std::string& name) {
        return ModelFiles{out(name + "_unrelaxed.pdb"),        out(name + "_unrelaxed.cif"),
                          out("confidence_" + name + ".json"), out("pae_" + name + ".json"),
                          out("scores_" + name + ".json"),     out("outputs_" + name + ".h5")};
    };
    const std::string ranking = out("ranking_debug.json"), timings = out("timings.json");
    auto ranked = [&](size_t i, const char* ext) { return out("ranked_" + std::to_string(i) + ext); };
    if (!overwrite) {
        std::vector<std::string> existing = {ranking, timings};
        for (size_t i = 0; i < runs.size(); ++i) {
            const ModelFiles m = files_of(runs[i].name);
            for (const std::string& f :
                 {m.pdb, m.cif, m.conf, m.pae, m.scores, m.h5, ranked(i, ".pdb"), ranked(i, ".cif")})
                existing.push_back(f);
        }
        for (const std::string& f : existing)
            AXF_CHECK(!io::file_exists(f), "%s already exists; pass --overwrite to replace results", f.c_str());
    }

    // The inputs are read once. Processed features serve every model as they are; raw ones (FASTA + alignments,
    // or a raw feature file) go through each prediction's transforms with AF2's per-prediction seed (prediction
    // index + seed x number of predictions; the seed itself for one prediction).
    std::vector<std::pair<std::string, double>> stages;
    auto t0 = Clock::now();
    FeatureDict processed;
    pipeline::RawFeatures raw;
    ComplexInput complex;
    if (processed_input) {
        AXF_CHECK(in.msas.empty(), "--msa needs --fasta; '%s' holds processed features already", in.features.c_str());
        // Processed features are one preset's inputs (cluster and extra rows, templates): several models may share
        // them only when their presets agree (model_3..5, say); each then sees the same MSA sample.
        for (const std::string& name : models) {
            const pipeline::TransformConfig a = pipeline::TransformConfig::for_model(models[0]),
                                            b = pipeline::TransformConfig::for_model(name);
            AXF_CHECK(a.max_msa_clusters == b.max_msa_clusters && a.max_extra_msa == b.max_extra_msa &&
                          a.use_templates == b.use_templates,
                      "%s holds processed features, which are one model preset's inputs: %s and %s sample the MSA "
                      "differently (%lld / %lld cluster rows, %lld / %lld extra rows, templates %s / %s); give raw "
                      "features (features.pkl layout) or --fasta to run them in one job",
                      in.features.c_str(), models[0].c_str(), name.c_str(), (long long)a.max_msa_clusters,
                      (long long)b.max_msa_clusters, (long long)a.max_extra_msa, (long long)b.max_extra_msa,
                      a.use_templates ? "yes" : "no", b.use_templates ? "yes" : "no");
        }
        processed = io::read_features_h5(in.features);
    } else {
        if (multimer) {
            complex = build_complex_input(in);
        } else {
            raw = build_raw_features(in);
        }
    }
    stages.push_back({"features", since(t0)});

    // What the ranking and the report need of each prediction.
    struct Result {
        std::string name;
        double confidence = 0;  // AF2's ranking confidence: mean pLDDT; AlphaFold-Multimer: 0.8 ipTM + 0.2 pTM
        io::ProteinStructure prot;
        io::ReportPrediction report;
        std::vector<float> pae;
        float max_pae = 0;
    };
    std::vector<Result> results;
    TargetOutcome outcome;
    for (size_t ri = 0; ri < runs.size(); ++ri) {
        const std::string& name = runs[ri].name;
        const std::string& model_name = models[runs[ri].model];
        FeatureDict model_feats;
        if (!processed_input) {
            t0 = Clock::now();
            InputOptions pin = in;
            pin.seed = in.seed * runs.size() + ri;  // AF2's per-prediction seed
            const pipeline::TransformConfig tc = transform_config(pin, model_name, o.num_recycle);
            model_feats = multimer ? pipeline::process_multimer_features(complex.merged, tc)
                                   : pipeline::process_features(raw, tc);
            stages.push_back({"process_features_" + name, since(t0)});
            log.line("features for %s: transforms %.3f s, seed %llu (%lld iterations, msa_feat %s, extra_msa %s)",
                     name.c_str(), stages.back().second, (unsigned long long)pin.seed,
                     (long long)model_feats.at("msa_feat").size(0),
                     shape_str(model_feats.at("msa_feat").shape()).c_str(),
                     shape_str(model_feats.at("extra_msa").shape()).c_str());
        }
        const FeatureDict& features = processed_input ? processed : model_feats;
        t0 = Clock::now();
        const Model& model = job.model(runs[ri].model, o.structure_module_layers, log);
        stages.push_back({"load_params_" + name, since(t0)});
        const ModelConfig& cfg = model.config();
        log.line(
            "%s (%zu of %zu), %lld Evoformer / %lld extra-MSA blocks, %d structure-module layers, %d threads, on "
            "%s%s, %s GEMMs, %s activations",
            name.c_str(), ri + 1, runs.size(), (long long)cfg.evoformer_blocks, (long long)cfg.extra_msa_blocks,
            cfg.structure_module_layers, num_threads(), device_name(device),
            device != Device::CPU && comm.size() > 1 ? " (the stacks; the rest on the host)" : "",
            o.run.precision.c_str(), dtype_name(job.target.activations));

        // The fastest chunk size whose predicted peak fits --max-memory (or --chunk-size); the features are
        // checked first, naming the file in every message.
        io::check_pdb_residue_numbers(features.at("residue_index"), source + ": feature 'residue_index'");
        Context ctx(device);
        axfold::PredictOptions po;
        const RunPlan plan = prepare_prediction(model, features, source, o.run, job.target, o.num_recycle,
                                                o.save_outputs, ctx, po, comm.size());
        if (device == Device::CPU)
            log.line("  memory plan: chunk size %lld, predicted peak %s", (long long)plan.chunks.chunk_size,
                     format_bytes(plan.predicted_peak).c_str());
        else
            log.line("  memory plan (GPU): chunk size %lld, predicted device peak %s%s",
                     (long long)plan.chunks.chunk_size, format_bytes(plan.predicted_peak).c_str(),
                     plan.chunks.offload_msa ? ", the MSA parked in host memory during the extra-MSA stack" : "");
        po.progress = [&](const std::string& stage, int r, double sec) {
            if (log.progress) log.progress(stage, r, sec);
            if (!log.quiet_stages)
                log.line("  iteration %d  %-18s %8.3f s   (elapsed %.1f s)", r, stage.c_str(), sec, since(t_start));
        };
        // ColabFold's per-recycle line: pLDDT, pTM (ipTM) and the early-stop distance of every iteration.
        po.on_iteration = [&](int r, double diff, const HeadsOutputs& h) {
            const std::vector<double> pl = host_float64(h.plddt);
            double mean = 0;
            for (double v : pl) mean += v / static_cast<double>(pl.size());
            log.line("%s recycle=%d pLDDT=%.3g%s%s tol=%.3g", name.c_str(), r, mean,
                     h.has_pae ? strfmt(" pTM=%.3g", h.ptm).c_str() : "",
                     h.has_iptm ? strfmt(" ipTM=%.3g", h.iptm).c_str() : "", diff);
        };
        t0 = Clock::now();
        po.comm = job.nccl ? job.nccl.get() : &comm;
        if (comm.size() > 1 && comm.rank() == 0)
            log.line("  DAP: trunk stacks over %d ranks (%s)", comm.size(), po.comm->backend().c_str());
        Prediction p = model.predict(features, po, ctx);
        if (comm.rank() != 0) continue;
        const double predict_s = since(t0);
        stages.push_back({"predict_" + name, predict_s});
        for (const auto& [stage, sec] : p.timings) stages.push_back({stage + "_" + name, sec});

        t0 = Clock::now();
        const ModelFiles mf = files_of(name);
        const HeadsOutputs& h = p.heads;
        Result res{name, h.has_iptm ? h.weighted_ptm_score : mean_plddt(p), prediction_structure(p), {}, {}, 0};
        io::write_pdb(mf.pdb, res.prot);
        io::write_mmcif(mf.cif, res.prot, name);
        io::write_file_atomic(mf.conf, io::confidence_json(h.plddt));
        double ptm = h.ptm, iptm = h.iptm;
        if (h.has_pae)
            io::write_file_atomic(mf.pae, io::pae_json(h.predicted_aligned_error, h.max_predicted_aligned_error));
        io::write_file_atomic(mf.scores,
                              io::colabfold_scores_json(h.plddt, h.has_pae ? &h.predicted_aligned_error : nullptr,
                                                        h.max_predicted_aligned_error, h.has_pae ? &ptm : nullptr,
                                                        h.has_iptm ? &iptm : nullptr));
        if (o.save_outputs) {
            io::Hdf5Writer w(mf.h5);
            for (const auto& [key, t] : prediction_output_tensors(p)) w.write(key, t.contiguous());
            w.commit();
        }
        stages.push_back({"write_outputs_" + name, since(t0)});
        const std::vector<double> plddt = host_float64(h.plddt);
        res.report = {name, res.confidence, mean_plddt(p), ptm,
                      iptm, h.has_pae,      h.has_iptm,    std::vector<float>(plddt.begin(), plddt.end())};
        if (h.has_pae) {
            const std::vector<double> pae = host_float64(h.predicted_aligned_error);
            res.pae.assign(pae.begin(), pae.end());
            res.max_pae = h.max_predicted_aligned_error;
        }
        outcome.n_res = p.aatype.numel();
        outcome.peak_bytes = peak_rss_bytes();
        std::printf(
            "axfold predict: %s  N=%lld  iterations=%d  mean pLDDT %.2f%s%s  predict %.2f s  total %.2f s  "
            "peak %s (predicted %s)  -> %s\n",
            name.c_str(), (long long)p.aatype.numel(), p.iterations, mean_plddt(p),
            h.has_pae ? strfmt("  pTM %.4f", h.ptm).c_str() : "",
            h.has_iptm ? strfmt("  ipTM %.4f", h.iptm).c_str() : "", predict_s, since(t_start),
            format_bytes(outcome.peak_bytes).c_str(), format_bytes(plan.predicted_peak).c_str(), out_dir.c_str());
        std::fflush(stdout);
        results.push_back(std::move(res));
    }
    if (comm.rank() != 0) return outcome;

    // AF2's ranking: by mean pLDDT (monomers) or 0.8 ipTM + 0.2 pTM (AlphaFold-Multimer, "iptm+ptm" in
    // ranking_debug.json), best first (ties in the order the models ran); ranked_<i>.pdb and
    // .cif are the rank-i model's structure.
    t0 = Clock::now();
    std::vector<size_t> order(results.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return results[a].confidence > results[b].confidence; });
    for (size_t rank = 0; rank < order.size(); ++rank) {
        const Result& r = results[order[rank]];
        io::write_pdb(ranked(rank, ".pdb"), r.prot);
        io::write_mmcif(ranked(rank, ".cif"), r.prot, r.name);
    }
    // With --overwrite, ranked files of an earlier job with more models would outlive its ranking.
    for (size_t rank = order.size(); fs::exists(ranked(rank, ".pdb")) || fs::exists(ranked(rank, ".cif")); ++rank) {
        fs::remove(ranked(rank, ".pdb"));
        fs::remove(ranked(rank, ".cif"));
    }
    std::vector<std::pair<std::string, double>> scores;
    for (const Result& r : results) scores.push_back({r.name, r.confidence});
    io::write_file_atomic(ranking, io::ranking_debug_json(scores, multimer ? "iptm+ptm" : "plddts"));
    stages.push_back({"ranking", since(t0)});

    // The report a person looks at: pLDDT of every prediction, the best one's PAE, the MSA coverage.
    t0 = Clock::now();
    io::ReportInput report;
    report.target = log.target.empty() ? fs::path(source).stem().string() : log.target;
    report.ranking_metric = multimer ? "0.8 ipTM + 0.2 pTM" : "mean pLDDT";
    for (size_t rank : order) report.predictions.push_back(results[rank].report);
    report.pae = results[order[0]].pae;
    report.max_pae = results[order[0]].max_pae;
    report.chain_lengths = chain_lengths(results[order[0]].prot);
    report.msa = coverage_rows(processed_input, raw, complex.merged);
    try {  // the predictions are written already: a report that cannot be made is a note, not the target's failure
        io::write_report(out_dir, report);
    } catch (const std::exception& e) {
        log.line("report not written: %s", e.what());
    }
    stages.push_back({"report", since(t0)});
    io::write_file_atomic(timings, io::timings_json(stages));

    const Result& best = results[order[0]];
    outcome.predictions = results.size();
    outcome.chains = report.chain_lengths.size();
    outcome.best = best.name;
    outcome.best_confidence = best.confidence;
    outcome.mean_plddt = best.report.mean_plddt;
    outcome.has_ptm = best.report.has_ptm;
    outcome.ptm = best.report.ptm;
    outcome.has_iptm = best.report.has_iptm;
    outcome.iptm = best.report.iptm;
    outcome.seconds = since(t_start);
    if (results.size() > 1)
        std::printf(
            "axfold predict: ranked %s (best first by %s), %.2f s in all  -> %s\n",
            [&] {
                std::string s;
                for (size_t rank = 0; rank < order.size(); ++rank)
                    s += (rank ? ", " : "") + results[order[rank]].name +
                         strfmt(multimer ? " %.4f" : " %.2f", results[order[rank]].confidence);
                return s;
            }()
                .c_str(),
            report.ranking_metric.c_str(), since(t_start), out_dir.c_str());
    return outcome;
}

namespace {

// One target's run marks its output directory while it writes (.axfold-running, holding its pid). A marker left by
// a process that no longer runs is an interrupted run: the next run replaces its files without --overwrite and
// removes the temporaries it left (*.tmp, *.tmp.<pid>). A marker of a live process means another run writes there.
class RunMarker {
public:
    RunMarker(const std::string& out_dir, bool root) : path_(std::filesystem::path(out_dir) / ".axfold-running") {
        if (!root) return;
        namespace fs = std::filesystem;
        fs::create_directories(out_dir);
        if (fs::exists(path_)) {
            std::ifstream in(path_);
            long pid = 0;
            in >> pid;
            AXF_CHECK(pid <= 0 || pid == static_cast<long>(::getpid()) || ::kill(static_cast<pid_t>(pid), 0) != 0,
                      "%s: another axfold predict (pid %ld) is writing into this directory (%s); wait for it or "
                      "use another --out-dir",
                      out_dir.c_str(), pid, path_.c_str());
            interrupted_ = true;
            for (const auto& e : fs::directory_iterator(out_dir)) {
                const std::string name = e.path().filename().string();
                const size_t tmp = name.rfind(".tmp");
                if (tmp != std::string::npos &&
                    (tmp + 4 == name.size() ||
                     (name[tmp + 4] == '.' && name.find_first_not_of("0123456789", tmp + 5) == std::string::npos)))
                    fs::remove(e.path());
            }
        }
        io::write_file_atomic(path_.string(), std::to_string(static_cast<long>(::getpid())) + "\n");
        owned_ = true;
    }
    ~RunMarker() {
        std::error_code ec;
        if (owned_ && finished_) std::filesystem::remove(path_, ec);
    }
    bool interrupted() const { return interrupted_; }
    void finished() { finished_ = true; }

private:
    std::filesystem::path path_;
    bool interrupted_ = false, owned_ = false, finished_ = false;
};

}  // namespace

int predict_main(const PredictOptions& o) {
    if (!o.input.empty()) return predict_batch(o);
    PredictJob job(o);
    TargetLog log;
    RunMarker marker(o.out_dir, job.comm->rank() == 0);
    if (marker.interrupted()) log.line("%s holds an interrupted run's files: they are replaced", o.out_dir.c_str());
    predict_target(job, o, o.in, o.out_dir, o.overwrite || marker.interrupted(), log);
    marker.finished();
    return 0;
}

}  // namespace axfold::apps
