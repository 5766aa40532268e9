// What `axfold predict` shares between one target (predict.cpp) and a batch of them (batch.cpp): the job (models,
// their parameter files, loaded once, the device and DAP set-up) and the prediction of one target into a directory.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/commands.h"

namespace axfold::apps {

// A target's log: lines go to log.txt (the caller writes `text`) and to stderr unless quiet.
struct TargetLog {
    std::string target;         // the target's id (batch), for the report's title
    std::string prefix;         // put before every line on stderr and in the text
    bool quiet = false;         // nothing on stderr
    bool quiet_stages = false;  // no line per stage (a progress display shows them)
    bool tty = false;           // stderr is a terminal with a progress line: clear it before each line
    std::function<void(const std::string& stage, int iteration, double seconds)> progress;
    std::string text;
    void line(const char* fmt, ...) __attribute__((format(printf, 2, 3)));
};

struct PredictJob {
    std::vector<std::string> models, param_paths;
    bool multimer = false;
    RunTarget target;
    Comm* comm = nullptr;
    std::unique_ptr<Comm> nccl;
    // Each model's parameters, loaded on first use. A batch job keeps them all (one read per model for the job); one
    // target keeps only the model it runs, so its peak memory holds one model's parameters.
    std::map<size_t, Model> loaded;
    bool keep_all_models = false;

    explicit PredictJob(const PredictOptions& o);  // checks the models, parameter files and run settings
    const Model& model(size_t i, int structure_module_layers, TargetLog& log);
};

// What a job summary records of a target.
struct TargetOutcome {
    int64_t n_res = 0;
    size_t chains = 0, predictions = 0;
    std::string best;  // the best prediction's name
    double best_confidence = 0, mean_plddt = 0, ptm = 0, iptm = 0, seconds = 0;
    bool has_ptm = false, has_iptm = false;
    size_t peak_bytes = 0;
};

// Predicts one target (`in`) into out_dir: every model's structures, confidences, ranking, timings and report.html.
TargetOutcome predict_target(PredictJob& job, const PredictOptions& o, const InputOptions& in,
                             const std::string& out_dir, bool overwrite, TargetLog& log);

// `axfold predict --input`: many targets in one job (batch.cpp).
int predict_batch(const PredictOptions& o);

// The process's peak resident memory so far.
size_t peak_rss_bytes();

}  // namespace axfold::apps
