// `axfold init-params`: random parameters in the official AF2 layout and names, for tests, examples and
// benchmarks. They give meaningless structures.
#include <cstdio>

#include "apps/commands.h"
#include "io/params.h"
#include "model/model_params.h"

namespace axfold::apps {

int init_params_main(const InitParamsOptions& o) {
    AXF_CHECK(!o.model_name.empty() && !o.out.empty(), "init-params: --model-name and --out are required");
    AXF_CHECK(o.evoformer_blocks >= 1 && o.extra_msa_blocks >= 1, "init-params: block counts must be >= 1");
    ModelPreset preset = ModelPreset::from_name(o.model_name);
    ModelDims d;
    d.evoformer_blocks = o.evoformer_blocks;
    d.extra_msa_blocks = o.extra_msa_blocks;
    std::map<std::string, Tensor> params = init_model_params(preset, d, o.seed);
    const bool h5 = o.out.size() > 3 && (o.out.compare(o.out.size() - 3, 3, ".h5") == 0 ||
                                         (o.out.size() > 5 && o.out.compare(o.out.size() - 5, 5, ".hdf5") == 0));
    ParamStore store;
    int64_t scalars = 0;
    for (auto& [k, t] : params) {
        scalars += t.numel();
        store.insert(k, t);
    }
    if (h5)
        store.save_h5(o.out);
    else
        store.save_npz(o.out);
    std::printf("init-params: %s -> %s: %zu arrays, %lld scalars (random weights: structures are meaningless)\n",
                o.model_name.c_str(), o.out.c_str(), params.size(), (long long)scalars);
    return 0;
}

}  // namespace axfold::apps
