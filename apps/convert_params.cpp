// axfold convert-params: AlphaFold2 parameters (.npz or .h5) to the params.h5 layout.
#include <cstdio>

#include "apps/commands.h"
#include "io/params.h"

namespace axfold::apps {

int convert_params_main(const std::string& in, const std::string& out) {
    const ParamStore params = ParamStore::load(in);
    params.save_h5(out);
    std::printf("converted %s -> %s: %zu arrays, %lld scalars\n", in.c_str(), out.c_str(), params.size(),
                static_cast<long long>(params.num_scalars()));
    return 0;
}

}  // namespace axfold::apps
