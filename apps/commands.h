// Entry points of the `axfold` subcommands. Each is a thin front end over the library; main.cpp parses
// the command line and catches axfold::Error.
#pragma once

#include <cstdint>
#include <string>

namespace axfold::apps {

int convert_params_main(const std::string& in, const std::string& out);

struct BenchEvoformerOptions {
    int64_t n_seq = 128, n_res = 256;
    int threads = 0, blocks = 3;
    bool json = false;
    bool breakdown = false;  // per sub-module times on stderr
};
int bench_evoformer_main(const BenchEvoformerOptions& o);

struct PredictOptions {
    std::string features, params, model_name, out_dir;
    int num_recycle = -1;  // -1: every iteration in the features
    int threads = 0;
    int structure_module_layers = 8;
    bool save_outputs = false, overwrite = false;
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
    int threads = 0, num_recycle = 0;
    bool json = false;
};
int bench_model_main(const BenchModelOptions& o);

}  // namespace axfold::apps
