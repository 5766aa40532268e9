// One libFuzzer harness per input format (built by tests/fuzz/CMakeLists.txt with AXFOLD_FUZZ_FORMAT set): the
// bytes are handed to the parser a user's file reaches, as a string or through a file. A parser may throw
// axfold::Error (a clear message about bad input); any other exception, a crash, a hang or a sanitizer report is a
// finding. scripts/fuzz.sh builds and runs them; crashes found are kept in tests/fuzz/regressions/<format>/.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "io/features.h"
#include "io/mmcif.h"
#include "io/msa.h"
#include "io/npz.h"
#include "io/params.h"
#include "kernels/error.h"
#include "model/model.h"
#include "pipeline/msa_pairing.h"
#include "pipeline/raw_features.h"

namespace {

// The input as a file (parsers of binary formats and mmCIF take paths), in /dev/shm when present.
std::string write_input(const uint8_t* data, size_t size) {
    static const std::string path = (access("/dev/shm", W_OK) == 0 ? std::string("/dev/shm") : std::string("/tmp")) +
                                    "/axfold-fuzz-" + std::to_string(getpid()) + "-" + AXFOLD_FUZZ_FORMAT;
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(data, 1, size, f) != size || std::fclose(f) != 0) std::abort();
    return path;
}

void parse(const uint8_t* data, size_t size) {
    using namespace axfold;
    const std::string format = AXFOLD_FUZZ_FORMAT;
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (format == "fasta") {
        io::parse_fasta(text, "fuzz.fasta", true);
    } else if (format == "a3m") {
        io::parse_a3m(text, "fuzz.a3m");
        io::parse_colabfold_a3m(text, "fuzz.a3m");
    } else if (format == "stockholm") {
        io::parse_stockholm(text, "fuzz.sto");
    } else if (format == "mmcif") {
        const std::string path = write_input(data, size);
        for (const std::string& chain : io::mmcif_protein_chains(path)) io::read_mmcif_chain(path, chain);
    } else if (format == "npz") {
        io::read_npz(write_input(data, size));
    } else if (format == "features") {  // processed features.h5, raw (features.pkl converted), merged complexes
        const std::string path = write_input(data, size);
        if (pipeline::detect_feature_file(path) == pipeline::FeatureFileKind::Processed) {
            ModelConfig config;
            config.preset = ModelPreset::from_name("model_1_ptm");
            validate_features(io::read_features_h5(path), config, path);
        } else {
            pipeline::read_raw_features_h5(path);
            pipeline::read_merged_features_h5(path);
        }
    } else if (format == "params") {  // .npz or params.h5, checked against the model its keys say it is
        auto store = std::make_shared<ParamStore>(ParamStore::load(write_input(data, size)));
        const std::string root = "alphafold/alphafold_iteration/";
        const bool multimer = store->has(root + "evoformer/~_relative_encoding/position_activations//weights");
        const bool templates = store->has(root + "evoformer/template_embedding/single_template_embedding/" +
                                          (multimer ? "template_pair_embedding_0//weights" : "embedding2d//weights"));
        const bool ptm = store->has(root + "predicted_aligned_error_head/logits//weights");
        Model::from_store(store, multimer ? "model_1_multimer_v3"
                                          : std::string(templates ? "model_1" : "model_3") + (ptm ? "_ptm" : ""));
    } else {
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        parse(data, size);
    } catch (const axfold::Error&) {
        // bad input, reported
    }
    return 0;
}
