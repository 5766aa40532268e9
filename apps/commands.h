// Entry points of the `axfold` subcommands. Each is a thin front end over the library; main.cpp parses
// the command line and catches axfold::Error.
#pragma once

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

}  // namespace axfold::apps
