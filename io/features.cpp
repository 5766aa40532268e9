#include "io/features.h"

#include "io/hdf5_file.h"

namespace axfold::io {

std::map<std::string, Tensor> read_features_h5(const std::string& path) {
    Hdf5File f(path);
    std::map<std::string, Tensor> out;
    for (const std::string& name : f.list("/", false)) out[name] = f.read(name);
    AXF_CHECK(!out.empty(), "%s: no datasets at the root; expected processed AlphaFold2 features (aatype, msa_feat, ...)",
              path.c_str());
    return out;
}

void write_features_h5(const std::string& path, const std::map<std::string, Tensor>& features) {
    Hdf5Writer w(path);
    for (const auto& [name, t] : features) w.write(name, t);
    w.commit();
}

}  // namespace axfold::io
