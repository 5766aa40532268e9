// `axfold predict`: features + parameters in; structures, confidences and timings out, in the files
// AlphaFold users' pipelines already read.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "apps/commands.h"
#include "evoformer/memory_plan.h"
#include "io/atomic_file.h"
#include "io/features.h"
#include "io/hdf5_file.h"
#include "io/json_writer.h"
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

// What the ranking and the ranked files need of each model.
struct ModelResult {
    std::string name;
    double confidence = 0;  // AF2's ranking confidence: mean pLDDT; AlphaFold-Multimer: 0.8 ipTM + 0.2 pTM
    io::ProteinStructure prot;
};

}  // namespace

int predict_main(const PredictOptions& o) {
    auto t_start = Clock::now();
    AXF_CHECK(
        (!o.in.features.empty() || !o.in.fasta.empty()) && !o.params.empty() && !o.out_dir.empty(),
        "predict: --fasta (or --features), --params, --model-name (or --model-preset) and --out-dir are required");
    AXF_CHECK(o.model_preset.empty() || o.model_names.empty(), "give --model-name or --model-preset, not both");
    const std::vector<std::string> models =
        o.model_preset.empty() ? model_list(o.model_names) : preset_models(o.model_preset);
    AXF_CHECK(!models.empty(), "predict: --model-name or --model-preset is required");
    const bool processed_input =
        o.in.fasta.empty() && pipeline::detect_feature_file(o.in.features) == pipeline::FeatureFileKind::Processed;
    const std::vector<Run> runs = job_runs(models, o, processed_input);
    const bool multimer = ModelPreset::from_name(models[0]).multimer;
    const std::vector<std::string> param_paths = params_files(o.params, models);
    const RunTarget target = configure_run(o.run);
    if (!target.note.empty()) std::fprintf(stderr, "axfold: %s\n", target.note.c_str());
    const Device device = target.device;
    // DAP: under an MPI launcher the stacks run over every rank; rank 0 writes the outputs. With the trunk on
    // GPUs the stacks' collectives go over NCCL (bootstrapped from the MPI world), one GPU per rank: made
    // before anything touches a device, since it selects this rank's GPU.
    axfold::Comm& comm = axfold::world_comm();
    const std::unique_ptr<Comm> nccl = device == Device::CUDA ? gpu_dap_comm(comm) : nullptr;
    namespace fs = std::filesystem;
    fs::create_directories(o.out_dir);
    auto out = [&](const std::string& f) { return (fs::path(o.out_dir) / f).string(); };
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
    if (!o.overwrite) {
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
    // or a raw feature file) go through each model's transforms with AF2's per-model seed (model index +
    // seed x number of models; the seed itself for one model).
    std::vector<std::pair<std::string, double>> stages;
    auto t0 = Clock::now();
    const std::string source = o.in.fasta.empty() ? o.in.features : o.in.fasta;
    FeatureDict processed;
    pipeline::RawFeatures raw;
    ComplexInput complex;
    if (processed_input) {
        AXF_CHECK(o.in.msas.empty(), "--msa needs --fasta; '%s' holds processed features already",
                  o.in.features.c_str());
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
                      o.in.features.c_str(), models[0].c_str(), name.c_str(), (long long)a.max_msa_clusters,
                      (long long)b.max_msa_clusters, (long long)a.max_extra_msa, (long long)b.max_extra_msa,
                      a.use_templates ? "yes" : "no", b.use_templates ? "yes" : "no");
        }
        processed = io::read_features_h5(o.in.features);
    } else {
        AXF_CHECK(multimer == is_complex_input(o.in),
                  "%s is %s, but %s: AlphaFold-Multimer models take complexes (several FASTA records or A:B, "
                  "--msa-dir), monomer models one chain",
                  source.c_str(), multimer ? "one chain" : "a complex",
                  multimer ? "the models are AlphaFold-Multimer's" : "the models are monomer models");
        if (multimer) {
            complex = build_complex_input(o.in);
        } else {
            raw = build_raw_features(o.in);
        }
    }
    stages.push_back({"features", since(t0)});

    std::vector<ModelResult> results;
    std::optional<Model> model;
    for (size_t ri = 0; ri < runs.size(); ++ri) {
        const std::string& name = runs[ri].name;
        const std::string& model_name = models[runs[ri].model];
        FeatureDict model_feats;
        if (!processed_input) {
            t0 = Clock::now();
            InputOptions in = o.in;
            in.seed = o.in.seed * runs.size() + ri;  // AF2's per-prediction seed
            const pipeline::TransformConfig tc = transform_config(in, model_name, o.num_recycle);
            model_feats = multimer ? pipeline::process_multimer_features(complex.merged, tc)
                                   : pipeline::process_features(raw, tc);
            stages.push_back({"process_features_" + name, since(t0)});
            std::fprintf(
                stderr,
                "  features for %s: transforms %.3f s, seed %llu (%lld iterations, msa_feat %s, extra_msa %s)\n",
                name.c_str(), stages.back().second, (unsigned long long)in.seed,
                (long long)model_feats.at("msa_feat").size(0), shape_str(model_feats.at("msa_feat").shape()).c_str(),
                shape_str(model_feats.at("extra_msa").shape()).c_str());
        }
        const FeatureDict& features = processed_input ? processed : model_feats;
        if (ri == 0 || runs[ri - 1].model != runs[ri].model) {  // each model's parameters once
            t0 = Clock::now();
            model.reset();
            model.emplace(Model::load(param_paths[runs[ri].model], model_name, o.structure_module_layers));
            stages.push_back({"load_params_" + model_name, since(t0)});
        }
        const ModelConfig& cfg = model->config();
        std::fprintf(stderr,
                     "axfold predict: %s (%zu of %zu), %lld Evoformer / %lld extra-MSA blocks, %d structure-module "
                     "layers, %d threads, on %s%s, %s GEMMs, %s activations\n",
                     name.c_str(), ri + 1, runs.size(), (long long)cfg.evoformer_blocks,
                     (long long)cfg.extra_msa_blocks, cfg.structure_module_layers, num_threads(), device_name(device),
                     device != Device::CPU && comm.size() > 1 ? " (the stacks; the rest on the host)" : "",
                     o.run.precision.c_str(), dtype_name(target.activations));

        // The fastest chunk size whose predicted peak fits --max-memory (or --chunk-size); the features are
        // checked first, naming the file in every message.
        Context ctx(device);
        axfold::PredictOptions po;
        const RunPlan plan = prepare_prediction(*model, features, source, o.run, target, o.num_recycle, o.save_outputs,
                                                ctx, po, comm.size());
        if (device == Device::CPU)
            std::fprintf(stderr, "  memory plan: chunk size %lld, predicted peak %s\n",
                         (long long)plan.chunks.chunk_size, format_bytes(plan.predicted_peak).c_str());
        else
            std::fprintf(stderr, "  memory plan (GPU): chunk size %lld, predicted device peak %s%s\n",
                         (long long)plan.chunks.chunk_size, format_bytes(plan.predicted_peak).c_str(),
                         plan.chunks.offload_msa ? ", the MSA parked in host memory during the extra-MSA stack" : "");
        po.progress = [&](const std::string& stage, int r, double s) {
            std::fprintf(stderr, "  iteration %d  %-18s %8.3f s   (elapsed %.1f s)\n", r, stage.c_str(), s,
                         since(t_start));
        };
        t0 = Clock::now();
        po.comm = nccl ? nccl.get() : &comm;
        if (comm.size() > 1 && comm.rank() == 0)
            std::fprintf(stderr, "  DAP: trunk stacks over %d ranks (%s)\n", comm.size(), po.comm->backend().c_str());
        Prediction p = model->predict(features, po, ctx);
        if (comm.rank() != 0) continue;
        const double predict_s = since(t0);
        stages.push_back({"predict_" + name, predict_s});
        for (const auto& [s, sec] : p.timings) stages.push_back({s + "_" + name, sec});

        t0 = Clock::now();
        const ModelFiles mf = files_of(name);
        const HeadsOutputs& h = p.heads;
        ModelResult res{name, h.has_iptm ? h.weighted_ptm_score : mean_plddt(p), prediction_structure(p)};
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
        struct rusage ru {};
        getrusage(RUSAGE_SELF, &ru);
        std::printf(
            "axfold predict: %s  N=%lld  iterations=%d  mean pLDDT %.2f%s%s  predict %.2f s  total %.2f s  "
            "peak %s (predicted %s)  -> %s\n",
            name.c_str(), (long long)p.aatype.numel(), p.iterations, mean_plddt(p),
            h.has_pae ? strfmt("  pTM %.4f", h.ptm).c_str() : "",
            h.has_iptm ? strfmt("  ipTM %.4f", h.iptm).c_str() : "", predict_s, since(t_start),
            format_bytes(static_cast<size_t>(ru.ru_maxrss) * 1024).c_str(), format_bytes(plan.predicted_peak).c_str(),
            o.out_dir.c_str());
        results.push_back(std::move(res));
    }
    if (comm.rank() != 0) return 0;

    // AF2's ranking: by mean pLDDT (monomers) or 0.8 ipTM + 0.2 pTM (AlphaFold-Multimer, "iptm+ptm" in
    // ranking_debug.json), best first (ties in the order the models ran); ranked_<i>.pdb and
    // .cif are the rank-i model's structure.
    t0 = Clock::now();
    std::vector<size_t> order(results.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return results[a].confidence > results[b].confidence; });
    for (size_t rank = 0; rank < order.size(); ++rank) {
        const ModelResult& r = results[order[rank]];
        io::write_pdb(ranked(rank, ".pdb"), r.prot);
        io::write_mmcif(ranked(rank, ".cif"), r.prot, r.name);
    }
    // With --overwrite, ranked files of an earlier job with more models would outlive its ranking.
    for (size_t rank = order.size(); fs::exists(ranked(rank, ".pdb")) || fs::exists(ranked(rank, ".cif")); ++rank) {
        fs::remove(ranked(rank, ".pdb"));
        fs::remove(ranked(rank, ".cif"));
    }
    std::vector<std::pair<std::string, double>> scores;
    for (const ModelResult& r : results) scores.push_back({r.name, r.confidence});
    io::write_file_atomic(ranking, io::ranking_debug_json(scores, multimer ? "iptm+ptm" : "plddts"));
    stages.push_back({"ranking", since(t0)});
    io::write_file_atomic(timings, io::timings_json(stages));
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
            multimer ? "0.8 ipTM + 0.2 pTM" : "mean pLDDT", since(t_start), o.out_dir.c_str());
    return 0;
}

}  // namespace axfold::apps
