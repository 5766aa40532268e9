// axfold command-line front end: `axfold <command> [options]`.
#include <boost/program_options.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "kernels/error.h"

namespace po = boost::program_options;
using namespace axfold::apps;

namespace {

const char* kUsage =
    "usage: axfold <command> [options]\n"
    "commands:\n"
    "  convert-params IN.npz OUT.h5      convert official AlphaFold2 parameters to HDF5\n"
    "  bench evoformer [options]         time Evoformer blocks at AF2 widths (--help for options)\n";

int run_bench(const std::vector<std::string>& args) {
    if (args.empty() || args[0] != "evoformer") {
        std::fprintf(stderr, "axfold bench: expected a benchmark name (evoformer)\n");
        return 2;
    }
    BenchEvoformerOptions o;
    po::options_description desc("axfold bench evoformer options");
    desc.add_options()("help,h", "show this help")(
        "n-seq", po::value<int64_t>(&o.n_seq)->default_value(128), "MSA rows S")(
        "n-res", po::value<int64_t>(&o.n_res)->default_value(256), "residues R")(
        "threads", po::value<int>(&o.threads)->default_value(0), "CPU threads (0 = all)")(
        "blocks", po::value<int>(&o.blocks)->default_value(3), "timed blocks (median reported)")(
        "json", po::bool_switch(&o.json), "print one JSON object")(
        "breakdown", po::bool_switch(&o.breakdown), "print the time of each sub-module on stderr");
    po::variables_map vm;
    po::store(po::command_line_parser(std::vector<std::string>(args.begin() + 1, args.end())).options(desc).run(), vm);
    if (vm.count("help")) {
        std::cout << desc << "\n";
        return 0;
    }
    po::notify(vm);
    return bench_evoformer_main(o);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    std::vector<std::string> args(argv + 2, argv + argc);
    try {
        if (cmd == "convert-params") {
            if (args.size() != 2) {
                std::fprintf(stderr, "usage: axfold convert-params IN.npz OUT.h5\n");
                return 2;
            }
            return convert_params_main(args[0], args[1]);
        }
        if (cmd == "bench") return run_bench(args);
        std::fprintf(stderr, "axfold: unknown command '%s'\n%s", cmd.c_str(), kUsage);
        return 2;
    } catch (const axfold::Error& e) {
        std::fprintf(stderr, "axfold %s: error: %s\n", cmd.c_str(), e.what());
        return 1;
    } catch (const po::error& e) {
        std::fprintf(stderr, "axfold %s: %s\n", cmd.c_str(), e.what());
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "axfold %s: unexpected error: %s\n", cmd.c_str(), e.what());
        return 1;
    }
}
