// axfold train: updates AlphaFold2 parameters on training examples (structure/training.h) with Adam
// (structure/optimizer.h), data parallel x DAP under an MPI launcher, and writes checkpoints that
// `axfold predict` reads.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/commands.h"
#include "io/atomic_file.h"
#include "io/json_writer.h"
#include "io/params.h"
#include "io/training_sample.h"
#include "structure/optimizer.h"
#include "structure/training.h"

namespace axfold::apps {

namespace fs = std::filesystem;

namespace {

// checkpoint-<step>, or the hidden temporary name it is written under.
std::string checkpoint_name(int64_t step, bool temporary = false) {
    char buf[48];
    std::snprintf(buf, sizeof buf, temporary ? ".checkpoint-%06lld.tmp" : "checkpoint-%06lld",
                  static_cast<long long>(step));
    return buf;
}

// The trained parameters (AF2's .npz layout) and the optimizer's state, written under a temporary name and
// renamed as one directory, so a checkpoint is either complete or absent.
void save_checkpoint(const std::string& out_dir, const std::string& model_name, const ParamStore& params,
                     const ParamStore* ema, const Adam& adam, const TrainOptions& o) {
    const fs::path dir = fs::path(out_dir) / checkpoint_name(adam.step());
    const fs::path tmp = fs::path(out_dir) / checkpoint_name(adam.step(), true);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    params.save_npz((tmp / ("params_" + model_name + ".npz")).string());
    if (ema) ema->save_npz((tmp / ("params_" + model_name + "_ema.npz")).string());
    io::Hdf5Writer w((tmp / "optimizer.h5").string());
    adam.save(w, "optimizer");
    w.write_string_attr("/", "model_name", model_name);
    w.write_string_attr("/", "params", o.params);
    w.commit();
    fs::remove_all(dir);
    fs::rename(tmp, dir);
}

// The random stream of one update and replica (splitmix64 of the run's seed, the update and the replica): the
// same on every rank of a DAP group, different across updates and replicas, and the same after a resume.
uint64_t update_seed(uint64_t seed, int64_t step, int replica) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>((step << 16) + replica + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// The records of training_log.jsonl from before `first_step` (a resumed run keeps its history).
std::string log_before(const std::string& path, int64_t first_step) {
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
        long long step = 0;
        if (std::sscanf(line.c_str(), "{\"step\": %lld", &step) == 1 && step < first_step) kept += line + "\n";
    }
    return kept;
}

}  // namespace

int train_main(const TrainOptions& o) {
    set_num_threads(o.threads);
    Comm& world = world_comm();
    AXF_CHECK(!o.examples.empty(), "train: no --examples");
    AXF_CHECK(o.steps >= 1, "train: --steps %lld, expected >= 1", (long long)o.steps);
    AXF_CHECK(o.save_every >= 0, "train: --save-every %lld, expected >= 0", (long long)o.save_every);
    TrainingGroups groups = split_training_groups(world, o.dap);
    const bool lead = world.rank() == 0;

    // Parameters: the resumed checkpoint's, else --params.
    std::string params_path = o.params;
    if (!o.resume.empty())
        params_path = (fs::path(o.resume) / ("params_" + o.model_name + ".npz")).string();
    AXF_CHECK(io::file_exists(params_path), "train: parameters %s not found", params_path.c_str());
    auto store = std::make_shared<ParamStore>(ParamStore::load(params_path));
    const Model model = Model::from_store(store, o.model_name, o.structure_module_layers);
    AXF_CHECK(!model.config().preset.templates,
              "train: %s uses templates, whose backward is not written yet; train model_3, model_4 or model_5",
              o.model_name.c_str());
    ModelWeights params = model.weights();
    // The moving average: a second parameter store (the checkpoint's, when resuming one that has it; else a
    // copy of the starting parameters).
    AXF_CHECK(o.ema_decay >= 0 && o.ema_decay < 1, "train: --ema-decay %g, expected in [0, 1)", o.ema_decay);
    std::shared_ptr<ParamStore> ema_store;
    std::unique_ptr<Model> ema_model;
    ModelWeights ema;
    if (o.ema_decay > 0) {
        const std::string resumed =
            o.resume.empty() ? "" : (fs::path(o.resume) / ("params_" + o.model_name + "_ema.npz")).string();
        if (!resumed.empty() && io::file_exists(resumed)) {
            ema_store = std::make_shared<ParamStore>(ParamStore::load(resumed));
        } else {
            ema_store = std::make_shared<ParamStore>();
            for (const std::string& k : store->keys()) ema_store->insert(k, store->get(k).clone());
        }
        ema_model = std::make_unique<Model>(Model::from_store(ema_store, o.model_name, o.structure_module_layers));
        ema = ema_model->weights();
    }
    AdamConfig ac;
    ac.learning_rate = o.learning_rate;
    ac.warmup_steps = o.warmup_steps;
    ac.clip_norm = o.clip_norm;
    Adam adam(ac, params);
    if (!o.resume.empty()) adam.load(io::Hdf5File((fs::path(o.resume) / "optimizer.h5").string()), "optimizer");
    AXF_CHECK(adam.step() < o.steps, "train: the checkpoint is at update %lld, --steps %lld asks for no more",
              (long long)adam.step(), (long long)o.steps);

    // Every rank checks every example up front, so bad input ends the job before any compute.
    std::vector<TrainingExample> examples;
    for (const std::string& p : o.examples) examples.push_back(load_training_example(p));
    // --resample / --crop-size: each update samples its crop, MSA and masking anew from the raw features.
    const bool sampling = o.resample || o.crop_size > 0 || o.sample_recycles;
    AXF_CHECK(o.crop_size >= 0, "train: --crop-size %lld, expected >= 0", (long long)o.crop_size);
    std::vector<io::TrainingSource> sources;
    if (sampling)
        for (const std::string& p : o.examples) sources.push_back(io::read_training_source(p));
    fs::create_directories(o.out_dir);
    const std::string log_path = (fs::path(o.out_dir) / "training_log.jsonl").string();
    std::string log = lead ? log_before(log_path, adam.step() + 1) : "";
    if (lead)
        std::fprintf(stderr,
                     "train: %s, %zu examples, %d ranks = %d replicas x DAP %d, updates %lld..%lld, lr %g "
                     "(warm-up %lld), clip %g, %d threads\n",
                     o.model_name.c_str(), examples.size(), world.size(), groups.num_replicas, o.dap,
                     (long long)adam.step() + 1, (long long)o.steps, o.learning_rate, (long long)o.warmup_steps,
                     o.clip_norm, num_threads());

    Context ctx;
    const int R = groups.num_replicas;
    for (int64_t s = adam.step() + 1; s <= o.steps; ++s) {
        const auto t0 = std::chrono::steady_clock::now();
        // Replica q takes example ((s - 1) R + q) mod n: every example in turn, each update a different set.
        const size_t pick = static_cast<size_t>(((s - 1) * R + groups.replica) % static_cast<int64_t>(examples.size()));
        const TrainingExample& ex = examples[pick];
        const FeatureDict* features = &ex.features;
        const FeatureDict* batch = &ex.batch;
        io::TrainingSample sample;
        int64_t crop_begin = 0, crop_end = 0;
        int iterations = 0;
        if (sampling) {
            const io::TrainingSource& src = sources[pick];
            const int64_t N = src.raw.num_res(), n = o.crop_size > 0 ? std::min(o.crop_size, N) : N;
            const uint64_t seed = update_seed(o.seed, s, groups.replica);
            crop_begin = n < N ? static_cast<int64_t>(seed % static_cast<uint64_t>(N - n + 1)) : 0;
            crop_end = crop_begin + n;
            io::TransformConfig cfg = src.config;
            cfg.seed = o.resample ? update_seed(seed, 0, 0) : o.seed;
            // AF2 draws the number of iterations per update, the same for every replica (1..the example's).
            if (o.sample_recycles)
                cfg.num_iterations = 1 + static_cast<int>(update_seed(o.seed, s, -1) %
                                                          static_cast<uint64_t>(src.config.num_iterations));
            iterations = cfg.num_iterations;
            sample = io::make_training_sample(io::crop_raw_features(src.raw, crop_begin, n),
                                              io::crop_ground_truth(src.ground_truth, N, crop_begin, n), cfg);
            features = &sample.features;
            batch = &sample.batch;
        }
        TrainingStep step = training_step(model, *features, *batch, LossConfig{}, ctx, nullptr, groups.dap.get());
        average_over_replicas(step.grads, *groups.replicas);
        // The losses averaged over replicas, for the log.
        std::vector<std::string> names;
        for (const auto& [n, v] : step.loss.terms) names.push_back(n);
        Tensor losses = Tensor::empty({static_cast<int64_t>(names.size()) + 1}, DType::F64);
        losses.data<double>()[0] = step.loss.total;
        for (size_t i = 0; i < names.size(); ++i) losses.data<double>()[i + 1] = step.loss.terms.at(names[i]);
        groups.replicas->all_reduce_sum(losses)->wait();
        for (int64_t i = 0; i < losses.numel(); ++i) losses.data<double>()[i] /= R;
        const AdamStats st = adam.update(params, step.grads);
        if (ema_model) update_moving_average(ema, params, o.ema_decay);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (lead) {
            std::ostringstream rec;
            rec << "{\"step\": " << st.step << ", \"loss\": " << io::json_number(losses.data<double>()[0], "loss")
                << ", \"learning_rate\": " << io::json_number(st.learning_rate, "learning rate")
                << ", \"grad_norm\": " << io::json_number(st.grad_norm, "gradient norm")
                << ", \"clip_scale\": " << io::json_number(st.clip_scale, "clip scale")
                << ", \"seconds\": " << io::json_rounded(secs, 3, "seconds") << ", \"terms\": {";
            for (size_t i = 0; i < names.size(); ++i)
                rec << (i ? ", " : "") << io::json_string(names[i]) << ": "
                    << io::json_number(losses.data<double>()[i + 1], names[i].c_str());
            rec << "}, \"example\": " << io::json_string(fs::path(ex.path).filename().string());
            if (sampling) rec << ", \"crop\": [" << crop_begin << ", " << crop_end << "], \"iterations\": " << iterations;
            rec << "}";
            log += rec.str() + "\n";
            io::write_file_atomic(log_path, log);
            std::fprintf(stderr, "update %lld: loss %.4f, |g| %.4g%s, lr %.3g, %.2f s\n", (long long)st.step,
                         losses.data<double>()[0], st.grad_norm, st.clip_scale < 1 ? " (clipped)" : "",
                         st.learning_rate, secs);
        }
        if (lead && ((o.save_every > 0 && s % o.save_every == 0) || s == o.steps))
            save_checkpoint(o.out_dir, o.model_name, *store, ema_store.get(), adam, o);
    }
    world.barrier();
    if (lead)
        std::printf("trained %s to update %lld: %s\n", o.model_name.c_str(), (long long)o.steps,
                    (fs::path(o.out_dir) / checkpoint_name(o.steps)).c_str());
    return 0;
}

}  // namespace axfold::apps
