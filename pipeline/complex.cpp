// The chains of a complex; see complex.h.
#include "pipeline/complex.h"

#include <algorithm>

#include "structure/residue_constants.h"

namespace axfold::pipeline {

std::vector<ComplexChain> complex_chains(const std::vector<io::FastaRecord>& records, const std::string& source) {
    std::vector<ComplexChain> input;
    for (const io::FastaRecord& r : records) {
        size_t start = 0, part = 0;
        const bool split = r.sequence.find(':') != std::string::npos;
        while (start <= r.sequence.size()) {
            const size_t end = std::min(r.sequence.find(':', start), r.sequence.size());
            const std::string seq = r.sequence.substr(start, end - start);
            AXF_CHECK(!seq.empty(), "%s:%d: record '%s' has an empty chain%s", source.c_str(), r.line,
                      r.description.c_str(), split ? " (between ':' separators)" : "");
            ComplexChain c;
            c.name = split ? r.description + "_" + std::to_string(++part) : r.description;
            c.sequence = seq;
            c.line = r.line;
            input.push_back(c);
            start = end + 1;
        }
    }
    AXF_CHECK(!input.empty(), "%s: no chains", source.c_str());
    static const std::string kChainIds = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    AXF_CHECK(input.size() <= kChainIds.size(),
              "%s: %zu chains, but AlphaFold-Multimer names chains with %zu chain IDs (A-Z, a-z, 0-9); split the "
              "complex",
              source.c_str(), input.size(), kChainIds.size());
    for (size_t i = 0; i < input.size(); ++i) {
        input[i].chain_id = kChainIds.substr(i, 1);
        input[i].input_index = i;
    }
    // Entities by sequence, in order of first appearance; the merged order lists each entity's copies together.
    std::vector<std::string> entities;
    for (const ComplexChain& c : input)
        if (std::find(entities.begin(), entities.end(), c.sequence) == entities.end()) entities.push_back(c.sequence);
    std::vector<ComplexChain> merged;
    for (size_t e = 0; e < entities.size(); ++e) {
        int64_t sym = 0;
        for (const ComplexChain& c : input) {
            if (c.sequence != entities[e]) continue;
            ComplexChain m = c;
            m.asym_id = static_cast<int64_t>(merged.size()) + 1;
            m.entity_id = static_cast<int64_t>(e) + 1;
            m.sym_id = ++sym;
            merged.push_back(m);
        }
    }
    return merged;
}

std::map<std::string, Tensor> complex_residue_features(const std::vector<ComplexChain>& chains) {
    int64_t N = 0;
    for (const ComplexChain& c : chains) N += static_cast<int64_t>(c.sequence.size());
    AXF_CHECK(N > 0, "complex_residue_features: no residues");
    std::map<std::string, Tensor> f;
    for (const char* k : {"aatype", "residue_index", "asym_id", "entity_id", "sym_id"})
        f[k] = Tensor::empty({N}, DType::I64);
    f["seq_mask"] = Tensor::full({N}, 1.f);
    f["target_feat"] = Tensor::zeros({N, rc::kNumRestypesWithX});
    int64_t i = 0;
    for (const ComplexChain& c : chains)
        for (size_t k = 0; k < c.sequence.size(); ++k, ++i) {
            const int64_t aa = rc::restype_index(c.sequence[k]);
            f["aatype"].data<int64_t>()[i] = aa;
            f["residue_index"].data<int64_t>()[i] = static_cast<int64_t>(k);
            f["asym_id"].data<int64_t>()[i] = c.asym_id;
            f["entity_id"].data<int64_t>()[i] = c.entity_id;
            f["sym_id"].data<int64_t>()[i] = c.sym_id;
            f["target_feat"].f32()[i * rc::kNumRestypesWithX + aa] = 1.f;
        }
    return f;
}

}  // namespace axfold::pipeline
