// A training run (training/trainer.h): the run's directory, its checks, and the update loop.
#include "training/trainer.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "evoformer/memory_plan.h"
#include "io/atomic_file.h"
#include "io/json_writer.h"
#include "io/params.h"
#include "kernels/device.h"
#include "model/run.h"
#include "pipeline/training_sample.h"
#include "training/losses.h"
#include "training/optimizer.h"
#include "training/training.h"
#include "training/training_plan.h"

namespace axfold {

namespace fs = std::filesystem;

namespace {

// checkpoint-<step>, or the hidden temporary name it is written under.
std::string checkpoint_name(int64_t step, bool temporary = false) {
    char buf[48];
    std::snprintf(buf, sizeof buf, temporary ? ".checkpoint-%06lld.tmp" : "checkpoint-%06lld",
                  static_cast<long long>(step));
    return buf;
}

// The update number of a checkpoint directory's name, -1 for anything else.
int64_t checkpoint_step(const fs::path& p) {
    long long step = -1;
    char tail = 0;
    return std::sscanf(p.filename().c_str(), "checkpoint-%lld%c", &step, &tail) == 1 ? step : -1;
}

// fsync of a file or directory, so a rename that follows survives a crash with its content.
void sync_path(const fs::path& p) {
    const int fd = ::open(p.c_str(), O_RDONLY);
    AXF_CHECK(fd >= 0, "train: cannot open %s to flush it to disk", p.c_str());
    const int rc = ::fsync(fd);
    ::close(fd);
    AXF_CHECK(rc == 0, "train: fsync of %s failed", p.c_str());
}

// The settings a resumed run must share with the run it continues (they decide every update's example,
// sample and step size); written into optimizer.h5.
std::vector<std::pair<std::string, std::string>> run_settings(const TrainerOptions& o, int ranks) {
    std::string examples;
    for (const std::string& e : o.examples) {
        if (!examples.empty()) examples.append(1, ' ');
        examples.append(fs::path(e).filename().string());
    }
    return {{"model_name", o.model_name},
            {"examples", examples},
            {"learning_rate", io::json_number(o.learning_rate, "learning rate")},
            {"warmup_steps", std::to_string(o.warmup_steps)},
            {"clip_norm", io::json_number(o.clip_norm, "clip norm")},
            {"ema_decay", io::json_number(o.ema_decay, "ema decay")},
            {"ranks", std::to_string(ranks)},
            {"dap", std::to_string(o.dap)},
            {"seed", std::to_string(o.seed)},
            {"resample", o.resample ? "1" : "0"},
            {"crop_size", std::to_string(o.crop_size)},
            {"sample_recycles", o.sample_recycles ? "1" : "0"},
            {"dropout", o.dropout ? "1" : "0"},
            {"structure_module_layers", std::to_string(o.structure_module_layers)},
            {"precision", o.precision}};
}

// The gradient an update applies (before clipping) and the replicas' mean losses: gradients-<update>.h5.
void save_gradients(const std::string& out_dir, int64_t step, const ModelWeights& grads,
                    const std::vector<std::string>& names, const Tensor& losses) {
    io::Hdf5Writer w((fs::path(out_dir) / strfmt("gradients-%06lld.h5", (long long)step)).string());
    ModelWeights g = grads;
    g.visit([&](const std::string& n, Tensor& t) {
        if (t.defined()) w.write("gradients/" + n, t.to(Device::CPU));
    });
    w.write("loss/total", losses.slice(0, 0, 1));
    for (size_t i = 0; i < names.size(); ++i)
        w.write("loss/" + names[i], losses.slice(0, static_cast<int64_t>(i) + 1, static_cast<int64_t>(i) + 2));
    w.commit();
}

// The trained parameters (AF2's .npz layout), their moving average and the optimizer's state with the run's
// settings, written under a temporary name, flushed to disk and renamed as one directory: a checkpoint is
// complete or absent, also after a crash of the machine.
void save_checkpoint(const std::string& out_dir, const std::string& model_name, const ParamStore& params,
                     const ParamStore* ema, const Adam& adam, const TrainerOptions& o, int ranks) {
    const fs::path dir = fs::path(out_dir) / checkpoint_name(adam.step());
    const fs::path tmp = fs::path(out_dir) / checkpoint_name(adam.step(), true);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    params.save_npz((tmp / ("params_" + model_name + ".npz")).string());
    if (ema) ema->save_npz((tmp / ("params_" + model_name + "_ema.npz")).string());
    {
        io::Hdf5Writer w((tmp / "optimizer.h5").string());
        adam.save(w, "optimizer");
        for (const auto& [k, v] : run_settings(o, ranks)) w.write_string_attr("/", k, v);
        w.commit();
    }
    sync_path(tmp / "optimizer.h5");
    sync_path(tmp);
    // An existing checkpoint of this update (a rerun) is moved aside first, so one always exists.
    std::string aside = checkpoint_name(adam.step());
    aside.insert(0, 1, '.').append(".old");
    const fs::path old = fs::path(out_dir) / aside;
    fs::remove_all(old);
    if (fs::exists(dir)) fs::rename(dir, old);
    fs::rename(tmp, dir);
    sync_path(out_dir);
    fs::remove_all(old);
}

// The records of training_log.jsonl from before `first_step` (a resumed run keeps its history; a record cut
// short by a crash is dropped).
std::string log_before(const std::string& path, int64_t first_step) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
        long long step = 0;
        if (!line.empty() && line.back() == '}' && std::sscanf(line.c_str(), "{\"step\": %lld", &step) == 1 &&
            step < first_step)
            kept += line + "\n";
    }
    return kept;
}

// The random stream of one update and replica (splitmix64 of the run's seed, the update and the replica): the
// same on every rank of a DAP group, different across updates and replicas, and the same after a resume.
uint64_t update_seed(uint64_t seed, int64_t step, int replica) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>((step << 16) + replica + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Appends one line to a log and flushes it to disk (a crash loses at most the line being written, which a resume
// drops).
void append_line(FILE* log, const std::string& line, const std::string& path) {
    AXF_CHECK(std::fwrite(line.data(), 1, line.size(), log) == line.size() && std::fflush(log) == 0 &&
                  ::fsync(::fileno(log)) == 0,
              "train: writing %s failed", path.c_str());
}

// A log of the run's directory, reopened for appending with its records from before `first_step` (rank 0).
FILE* open_log(const std::string& path, int64_t first_step) {
    io::write_file_atomic(path, log_before(path, first_step));
    FILE* log = std::fopen(path.c_str(), "a");
    AXF_CHECK(log != nullptr, "train: cannot append to %s", path.c_str());
    return log;
}

// The files of another run in the output directory (rank 0): a fresh run (or one resumed from elsewhere)
// refuses a directory that holds one unless --overwrite; a run resumed from a checkpoint of this directory
// drops the checkpoints after it (an abandoned continuation). The caller removes them only after every other
// check has passed.
std::vector<fs::path> files_to_replace(const TrainerOptions& o, const fs::path& resume, int64_t resumed_step) {
    std::vector<fs::path> stale;
    if (!fs::exists(o.out_dir)) return stale;
    std::error_code ec;
    const bool continuing = !o.resume.empty() && fs::equivalent(resume.parent_path(), o.out_dir, ec);
    for (const auto& e : fs::directory_iterator(o.out_dir)) {
        const std::string name = e.path().filename().string();
        const int64_t step = checkpoint_step(e.path());
        const bool ours = step >= 0 || name == "training_log.jsonl" || name.rfind(".checkpoint-", 0) == 0 ||
                          name.rfind("training_log.jsonl.tmp", 0) == 0;
        if (!ours) continue;
        if (continuing && (step >= 0 ? step <= resumed_step : name == "training_log.jsonl")) continue;
        AXF_CHECK(o.overwrite || continuing || name[0] == '.' || name.rfind("training_log.jsonl.tmp", 0) == 0,
                  "train: %s already holds a run (%s); continue it with --resume from one of its checkpoints, or "
                  "replace it with --overwrite",
                  o.out_dir.c_str(), name.c_str());
        stale.push_back(e.path());
    }
    return stale;
}

// The parameters being trained (the resumed checkpoint's, else --params), their moving average and Adam's state.
// On a GPU the three live there (device_model, ema_device_model: copies of the host models' weights), and the
// host stores, which checkpoints and validation read, are refreshed from them (sync_to_host).
struct TrainingState {
    std::shared_ptr<ParamStore> store, ema_store;
    std::unique_ptr<Model> model, ema_model, device_model, ema_device_model;
    ModelWeights params, ema;  // what Adam and the moving average update: the device models' weights on a GPU
    std::unique_ptr<Adam> adam;
    const Model& trained() const { return device_model ? *device_model : *model; }
};

// dst's tensors (views of a host store) = src's (the same layout on a device).
void copy_weights(const ModelWeights& dst, const ModelWeights& src) {
    const auto ds = tensors_of(dst), ss = tensors_of(src);
    AXF_CHECK(ds.size() == ss.size(), "train: %zu host tensors for %zu device tensors", ds.size(), ss.size());
    for (size_t i = 0; i < ds.size(); ++i) ds[i].second.copy_from(ss[i].second);
}

void sync_to_host(const TrainingState& st) {
    if (st.device_model) copy_weights(st.model->weights(), st.params);
    if (st.ema_device_model) copy_weights(st.ema_model->weights(), st.ema);
}

TrainingState load_state(const TrainerOptions& o, const fs::path& resume, int64_t resumed_step, int ranks,
                         Device device) {
    TrainingState st;
    std::string params_path = o.params;
    if (!o.resume.empty()) params_path = (resume / ("params_" + o.model_name + ".npz")).string();
    AXF_CHECK(io::file_exists(params_path), "train: parameters %s not found", params_path.c_str());
    st.store = std::make_shared<ParamStore>(ParamStore::load(params_path));
    st.model = std::make_unique<Model>(Model::from_store(st.store, o.model_name, o.structure_module_layers));
    AXF_CHECK(!st.model->config().preset.multimer, "train: %s is an AlphaFold-Multimer model, which does not train yet",
              o.model_name.c_str());
    if (device != Device::CPU) st.device_model = std::make_unique<Model>(st.model->on(device));
    st.params = st.trained().weights();
    // The moving average: a second parameter store (the checkpoint's, when resuming; else a copy of the
    // starting parameters).
    if (o.ema_decay > 0) {
        const std::string resumed = o.resume.empty() ? "" : (resume / ("params_" + o.model_name + "_ema.npz")).string();
        if (!resumed.empty() && io::file_exists(resumed)) {
            st.ema_store = std::make_shared<ParamStore>(ParamStore::load(resumed));
        } else {
            st.ema_store = std::make_shared<ParamStore>();
            for (const std::string& k : st.store->keys()) st.ema_store->insert(k, st.store->get(k).clone());
        }
        st.ema_model =
            std::make_unique<Model>(Model::from_store(st.ema_store, o.model_name, o.structure_module_layers));
        if (device != Device::CPU) st.ema_device_model = std::make_unique<Model>(st.ema_model->on(device));
        st.ema = (st.ema_device_model ? *st.ema_device_model : *st.ema_model).weights();
    }
    AdamConfig ac;
    ac.learning_rate = o.learning_rate;
    ac.warmup_steps = o.warmup_steps;
    ac.clip_norm = o.clip_norm;
    st.adam = std::make_unique<Adam>(ac, st.params);
    if (!o.resume.empty()) {
        const io::Hdf5File state((resume / "optimizer.h5").string());
        st.adam->load(state, "optimizer");
        // The settings that decide the updates must be the run's own, unless asked otherwise (a setting the
        // checkpoint does not record is not compared).
        std::string changed;
        for (const auto& [k, v] : run_settings(o, ranks)) {
            if (!state.has_attr("/", k)) continue;
            const std::string was = state.read_string_attr("/", k);
            if (was != v) changed += strfmt("\n  %s: %s, now %s", k.c_str(), was.c_str(), v.c_str());
        }
        AXF_CHECK(changed.empty() || o.allow_changed_settings,
                  "train: %s was trained with other settings (give --allow-changed-settings to continue anyway):%s",
                  o.resume.c_str(), changed.c_str());
        AXF_CHECK(st.adam->step() == resumed_step, "train: %s holds the state of update %lld", o.resume.c_str(),
                  (long long)st.adam->step());
    }
    AXF_CHECK(st.adam->step() < o.steps, "train: the checkpoint is at update %lld, --steps %lld asks for no more",
              (long long)st.adam->step(), (long long)o.steps);
    return st;
}

bool sampling(const TrainerOptions& o) {
    return o.resample || o.crop_size > 0 || o.sample_recycles;
}

// Update s's example for `replica`: the stored one, or (sampling) a fresh crop, MSA sample and iteration count
// from its raw features, as AF2 trains.
struct UpdateExample {
    TrainingExample ex;
    int64_t crop_begin = 0, crop_end = 0;
    int iterations = 0;
};
UpdateExample update_example(const TrainerOptions& o, const std::string& path, int64_t s, int replica) {
    UpdateExample u;
    if (!sampling(o)) {
        u.ex = load_training_example(path);
        return u;
    }
    const pipeline::TrainingSource src = pipeline::read_training_source(path);
    const int64_t N = src.raw.num_res(), n = o.crop_size > 0 ? std::min(o.crop_size, N) : N;
    const uint64_t seed = update_seed(o.seed, s, replica);
    u.crop_begin = n < N ? static_cast<int64_t>(seed % static_cast<uint64_t>(N - n + 1)) : 0;
    u.crop_end = u.crop_begin + n;
    pipeline::TransformConfig cfg = src.config;  // its own seed, unless resampling
    if (o.resample) cfg.seed = update_seed(seed, 0, 0);
    // AF2 draws the number of iterations per update, the same for every replica (1..the example's).
    if (o.sample_recycles)
        cfg.num_iterations =
            1 + static_cast<int>(update_seed(o.seed, s, -1) % static_cast<uint64_t>(src.config.num_iterations));
    u.iterations = cfg.num_iterations;
    pipeline::TrainingSample sample =
        pipeline::make_training_sample(pipeline::crop_raw_features(src.raw, u.crop_begin, n),
                                       pipeline::crop_ground_truth(src.ground_truth, N, u.crop_begin, n), cfg);
    u.ex.path = path;
    u.ex.features = std::move(sample.features);
    u.ex.batch = std::move(sample.batch);
    return u;
}

// One training_log.jsonl record: the loss and its terms (`losses`: total then `names`' terms, the replicas'
// mean), the update's statistics and seconds, and replica 0's example.
std::string log_record(const AdamStats& st, const std::vector<std::string>& names, const Tensor& losses, double secs,
                       const TrainingStep& step, const std::string& path, const UpdateExample& u, bool sampled) {
    std::ostringstream rec;
    rec << "{\"step\": " << st.step << ", \"loss\": " << io::json_number(losses.data<double>()[0], "loss")
        << ", \"learning_rate\": " << io::json_number(st.learning_rate, "learning rate")
        << ", \"grad_norm\": " << io::json_number(st.grad_norm, "gradient norm")
        << ", \"clip_scale\": " << io::json_number(st.clip_scale, "clip scale")
        << ", \"seconds\": " << io::json_rounded(secs, 3, "seconds") << ", \"terms\": {";
    for (size_t i = 0; i < names.size(); ++i)
        rec << (i ? ", " : "") << io::json_string(names[i]) << ": "
            << io::json_number(losses.data<double>()[i + 1], names[i].c_str());
    rec << "}, \"timings\": {";
    for (size_t i = 0; i < step.timings.size(); ++i)
        rec << (i ? ", " : "") << io::json_string(step.timings[i].first) << ": "
            << io::json_rounded(step.timings[i].second, 3, "stage seconds");
    rec << "}, \"example\": " << io::json_string(fs::path(path).filename().string());
    if (sampled) rec << ", \"crop\": [" << u.crop_begin << ", " << u.crop_end << "], \"iterations\": " << u.iterations;
    rec << "}\n";
    return rec.str();
}

}  // namespace

std::string train(const TrainerOptions& o) {
    set_num_threads(o.threads);
    Comm& world = world_comm();
    AXF_CHECK(!o.examples.empty(), "train: no --examples");
    AXF_CHECK(o.steps >= 1, "train: --steps %lld, expected >= 1", (long long)o.steps);
    AXF_CHECK(o.save_every >= 0, "train: --save-every %lld, expected >= 0", (long long)o.save_every);
    AXF_CHECK(o.learning_rate > 0 && o.warmup_steps >= 0 && o.clip_norm >= 0 && o.crop_size >= 0,
              "train: --learning-rate %g (> 0), --warmup-steps %lld (>= 0), --clip-norm %g (>= 0), --crop-size %lld "
              "(>= 0)",
              o.learning_rate, (long long)o.warmup_steps, o.clip_norm, (long long)o.crop_size);
    AXF_CHECK(o.ema_decay >= 0 && o.ema_decay < 1, "train: --ema-decay %g, expected in [0, 1)", o.ema_decay);
    const Device device = select_device(o.device);
    const MatmulPrecisionScope precision(parse_precision(o.precision));
    const DType ctx_activations = activation_dtype(matmul_precision());  // bf16: the stacks' checkpoints
    TrainingGroups groups = split_training_groups(world, o.dap);
    const bool lead = world.rank() == 0;
    // On GPUs, one NCCL communicator per DAP group and per replica group, bootstrapped over the group's MPI
    // communicator, one GPU per rank (local_cuda_device, chosen here before anything is allocated): DAP's
    // collectives, the gradient's average and broadcast run on the device. The MPI groups stay for the host's
    // traffic (the logged losses).
    std::unique_ptr<Comm> nccl_dap, nccl_replicas;
    if (device == Device::CUDA && world.size() > 1 && !device_emulated()) {
        AXF_CHECK(nccl_available(), "train --device cuda on %d ranks: this axfold was built without NCCL",
                  world.size());
        const int gpu = local_cuda_device(world);
        if (groups.dap->size() > 1) nccl_dap = make_nccl_comm(*groups.dap, gpu);
        if (groups.replicas->size() > 1) nccl_replicas = make_nccl_comm(*groups.replicas, gpu);
    }
    Comm& dap = nccl_dap ? *nccl_dap : *groups.dap;
    Comm& replicas = nccl_replicas ? *nccl_replicas : *groups.replicas;

    fs::path resume = fs::path(o.resume).lexically_normal();
    if (!resume.empty() && !resume.has_filename()) resume = resume.parent_path();  // "checkpoint-000001/"
    const int64_t resumed_step = o.resume.empty() ? 0 : checkpoint_step(resume);
    AXF_CHECK(o.resume.empty() || resumed_step >= 0, "train: --resume %s is not a checkpoint-<update> directory",
              o.resume.c_str());
    const std::vector<fs::path> stale = lead ? files_to_replace(o, resume, resumed_step) : std::vector<fs::path>{};
    TrainingState st = load_state(o, resume, resumed_step, world.size(), device);
    const Model& model = *st.model;
    Adam& adam = *st.adam;

    // Every example is checked up front, so bad input ends the job before any compute; then each update reads
    // the one it takes (a rank does not hold every example).
    // The largest update's memory plan (training/training_plan.h), for the log.
    size_t planned = 0;
    for (const std::string& p : o.examples) {
        const TrainingExample ex = load_training_example(p);
        validate_training_example(ex, model.config());
        if (sampling(o)) pipeline::read_training_source(p);
        int64_t n = ex.features.at("aatype").size(1);
        if (o.crop_size > 0) n = std::min(n, o.crop_size);
        planned = std::max(planned, plan_training(model.config(), n, ex.features.at("msa_feat").size(1),
                                                  ex.features.at("extra_msa").size(1), o.ema_decay > 0, o.dap,
                                                  ctx_activations)
                                        .peak());
    }
    for (const std::string& p : o.validate) validate_training_example(load_training_example(p), model.config());
    // Every check passed: the other run's (or the abandoned continuation's) files go.
    for (const fs::path& p : stale) fs::remove_all(p);
    world.barrier();
    fs::create_directories(o.out_dir);
    const std::string log_path = (fs::path(o.out_dir) / "training_log.jsonl").string();
    const std::string vlog_path = (fs::path(o.out_dir) / "validation_log.jsonl").string();
    FILE* log = lead ? open_log(log_path, adam.step() + 1) : nullptr;
    FILE* vlog = lead && !o.validate.empty() ? open_log(vlog_path, adam.step() + 1) : nullptr;
    if (lead)
        std::fprintf(stderr,
                     "train: %s, %zu examples, %d ranks = %d replicas x DAP %d, updates %lld..%lld, lr %g "
                     "(warm-up %lld), clip %g, %s GEMMs on %s, %d threads; memory plan %s per rank (the largest "
                     "example)\n",
                     o.model_name.c_str(), o.examples.size(), world.size(), groups.num_replicas, o.dap,
                     (long long)adam.step() + 1, (long long)o.steps, o.learning_rate, (long long)o.warmup_steps,
                     o.clip_norm, o.precision.c_str(), device_name(device), num_threads(),
                     format_bytes(planned).c_str());

    // Validation: every --validate-every updates (and after the last), replica 0's group predicts each validation
    // example with the moving average's parameters (the trained ones without it) and rank 0 logs the whole
    // chain's lDDT-Cα of the final atoms (OpenFold's validation metric) to validation_log.jsonl.
    auto validate = [&](int64_t step) {
        if (groups.replica != 0) return;
        const Model& evaluated = st.ema_model ? *st.ema_model : model;
        for (const std::string& p : o.validate) {
            const TrainingExample v = load_training_example(p);
            axfold::PredictOptions po;
            po.comm = &dap;
            po.keep_recycles = false;
            po.keep_pair_logits = false;
            Context vctx(device);
            const Prediction pred = evaluated.predict(v.features, po, vctx);
            const double lddt = lddt_ca_global(pred.structure_module.final_atom_positions,
                                               v.batch.at("all_atom_positions"), v.batch.at("all_atom_mask"));
            if (!lead) continue;
            append_line(vlog,
                        strfmt("{\"step\": %lld, \"example\": %s, \"lddt_ca\": %s, \"ema\": %s}\n", (long long)step,
                               io::json_string(fs::path(p).filename().string()).c_str(),
                               io::json_number(lddt, "lDDT-Ca").c_str(), st.ema_model ? "true" : "false"),
                        vlog_path);
            std::fprintf(stderr, "validation after update %lld: %s lDDT-Ca %.4f\n", (long long)step, p.c_str(), lddt);
        }
    };

    Context ctx(device);
    ctx.activation_dtype = ctx_activations;
    const int R = groups.num_replicas;
    for (int64_t s = adam.step() + 1; s <= o.steps; ++s) {
        const auto t0 = std::chrono::steady_clock::now();
        // Replica q takes example ((s - 1) R + q) mod n: every example in turn, each update a different set.
        const size_t pick =
            static_cast<size_t>(((s - 1) * R + groups.replica) % static_cast<int64_t>(o.examples.size()));
        const std::string& path = o.examples[pick];
        UpdateExample u;
        TrainingStep step;
        try {
            u = update_example(o, path, s, groups.replica);
            // Dropout masks: the same on every rank of a DAP group, different across replicas and updates.
            const uint64_t dropout_seed = o.dropout ? update_seed(o.seed ^ 0x5DEECE66Dull, s, groups.replica) | 1 : 0;
            step = training_step(st.trained(), u.ex.features, u.ex.batch, LossConfig{}, ctx, nullptr, &dap,
                                 dropout_seed, &replicas);  // the gradient averaged over replicas
        } catch (const Error& e) {
            throw Error(strfmt("update %lld, example %s: %s", (long long)s, path.c_str(), e.what()));
        }
        broadcast_gradients(step.grads, dap);  // one update on every rank of a DAP group
        // The losses averaged over replicas, for the log.
        std::vector<std::string> names;
        for (const auto& [n, v] : step.loss.terms) names.push_back(n);
        Tensor losses = Tensor::empty({static_cast<int64_t>(names.size()) + 1}, DType::F64);
        losses.data<double>()[0] = step.loss.total;
        for (size_t i = 0; i < names.size(); ++i) losses.data<double>()[i + 1] = step.loss.terms.at(names[i]);
        groups.replicas->all_reduce_sum(losses)->wait();
        for (int64_t i = 0; i < losses.numel(); ++i) losses.data<double>()[i] /= R;
        if (lead && o.save_gradients) save_gradients(o.out_dir, s, step.grads, names, losses);
        const AdamStats stats = adam.update(st.params, step.grads);
        if (st.ema_model) update_moving_average(st.ema, st.params, o.ema_decay);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (lead) {
            append_line(log, log_record(stats, names, losses, secs, step, path, u, sampling(o)), log_path);
            std::fprintf(stderr, "update %lld: loss %.4f, |g| %.4g%s, lr %.3g, %.2f s\n", (long long)stats.step,
                         losses.data<double>()[0], stats.grad_norm, stats.clip_scale < 1 ? " (clipped)" : "",
                         stats.learning_rate, secs);
        }
        const bool checkpoint = (o.save_every > 0 && s % o.save_every == 0) || s == o.steps;
        const bool validating =
            !o.validate.empty() && ((o.validate_every > 0 && s % o.validate_every == 0) || s == o.steps);
        if (checkpoint || validating) sync_to_host(st);
        if (lead && checkpoint)
            save_checkpoint(o.out_dir, o.model_name, *st.store, st.ema_store.get(), adam, o, world.size());
        if (validating) validate(s);
    }
    if (log) std::fclose(log);
    if (vlog) std::fclose(vlog);
    world.barrier();
    return (fs::path(o.out_dir) / checkpoint_name(o.steps)).string();
}

}  // namespace axfold
