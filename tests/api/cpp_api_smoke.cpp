// The C++ API from a program that includes only <axfold/axfold.hpp> and links only libaxfold.so: a prediction on
// the golden small set, its results' ranges, and errors as axf::Error naming the file. Built in the tree and, by
// CApi.installed_package, against an installed copy. Usage: cpp_api_smoke PARAMS.npz FEATURES.h5 OUT_DIR
#include <axfold/axfold.hpp>
#include <cmath>
#include <cstdio>
#include <string>

#define CHECK(cond, ...)                                               \
    do {                                                               \
        if (!(cond)) {                                                 \
            std::fprintf(stderr, "cpp_api_smoke: %s failed: ", #cond); \
            std::fprintf(stderr, __VA_ARGS__);                         \
            std::fprintf(stderr, "\n");                                \
            return 1;                                                  \
        }                                                              \
    } while (0)

int main(int argc, char** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: cpp_api_smoke PARAMS.npz FEATURES.h5 OUT_DIR\n");
        return 2;
    }
    try {
        axf::Model::load("/nonexistent/params.npz", "model_3_ptm");
        CHECK(false, "a missing parameter file was accepted");
    } catch (const axf::Error& e) {
        CHECK(std::string(e.what()).find("/nonexistent/params.npz") != std::string::npos, "message: %s", e.what());
    }
    const axf::Model model = axf::Model::load(argv[1], "model_3_ptm");
    const axf::Features features = axf::Features::load(argv[2], model.name());
    axf::PredictOptions o;
    o.threads = 1;
    const axf::Prediction p = model.predict(features, o);
    const int64_t n = p.num_residues();
    CHECK(n == features.num_residues() && n > 0, "%lld residues", (long long)n);
    const std::vector<float> plddt = p.plddt(), pos = p.atom37(), pae = p.pae();
    CHECK(plddt.size() == size_t(n) && pos.size() == size_t(n) * 37 * 3 && pae.size() == size_t(n * n), "sizes");
    for (float v : plddt) CHECK(v >= 0.f && v <= 100.f, "pLDDT %g", v);
    CHECK(std::fabs(p.max_pae() - 31.75f) < 1e-4f && p.ptm() > 0.0 && p.ptm() <= 1.0, "max PAE %g, pTM %g", p.max_pae(),
          p.ptm());
    p.write_pdb(std::string(argv[3]) + "/cpp_api.pdb");
    o.device = "tpu";
    try {
        model.predict(features, o);
        CHECK(false, "device tpu accepted");
    } catch (const axf::Error& e) {
        CHECK(std::string(e.what()).find("tpu") != std::string::npos, "message: %s", e.what());
    }
    std::printf("cpp_api_smoke: axfold %s, %lld residues, mean pLDDT %.2f, pTM %.4f\n", axf::version().c_str(),
                (long long)n, p.mean_plddt(), p.ptm());
    return 0;
}
