// axfold training-example: one training example (training/training.h's HDF5 layout) from an experimental
// structure and the alignments of its chain: the model features as `axfold features --processed` makes them,
// the ground truth of training/ground_truth.h, and the raw features `axfold train --resample` samples anew
// (pipeline/training_sample.h).
#include <cstdio>

#include "apps/commands.h"
#include "io/hdf5_file.h"
#include "io/mmcif.h"
#include "io/msa.h"
#include "pipeline/training_sample.h"
#include "structure/residue_constants.h"
#include "training/ground_truth.h"

namespace axfold::apps {

int training_example_main(const TrainingExampleOptions& o) {
    set_num_threads(o.threads);
    const io::MmcifChain chain = io::read_mmcif_chain(o.mmcif, o.chain);
    const int64_t L = static_cast<int64_t>(chain.seqres.size());
    int64_t begin = 0, end = L;
    if (!o.residues.empty()) {
        long long a = 0, b = 0;
        char tail = 0;
        AXF_CHECK(std::sscanf(o.residues.c_str(), "%lld:%lld%c", &a, &b, &tail) == 2,
                  "--residues '%s': expected BEGIN:END (0-based SEQRES positions, END exclusive)", o.residues.c_str());
        AXF_CHECK(a >= 0 && a < b && b <= L,
                  "--residues %s: expected 0 <= BEGIN < END <= %lld (the %s chain %s SEQRES length)",
                  o.residues.c_str(), (long long)L, o.mmcif.c_str(), o.chain.c_str());
        begin = a;
        end = b;
    }
    const ChainAtoms full = chain_atoms(chain), crop = chain_atoms(chain, begin, end);
    // The alignments are of the whole chain: each query row must be its SEQRES; their columns are cut to the
    // crop before AF2's merging and deduplication.
    std::vector<io::Msa> msas;
    for (const std::string& path : o.msas) {
        const io::Msa m = io::read_msa(path);
        io::check_msa_query(m, full.sequence);
        msas.push_back(io::crop_msa(m, begin, end));
    }
    pipeline::RawFeatures raw = pipeline::make_raw_features(crop.sequence, o.mmcif + " chain " + o.chain, msas);
    raw.source = o.mmcif;
    // AF2's residue numbering of the crop: its SEQRES positions.
    Tensor& ri = raw.arrays.at("residue_index");
    for (int64_t i = 0; i < ri.numel(); ++i) ri.data<int32_t>()[i] += static_cast<int32_t>(begin);
    InputOptions in;
    in.seed = o.seed;
    in.max_msa_clusters = o.max_msa_clusters;
    in.max_extra_msa = o.max_extra_msa;
    in.no_msa_padding = o.no_msa_padding;
    const pipeline::TransformConfig config = transform_config(in, o.model_name, o.num_recycle);
    FeatureDict truth = ground_truth_features(crop.aatype, crop.all_atom_positions, crop.all_atom_mask);
    truth["resolution"] = Tensor::full({}, static_cast<float>(chain.resolution));
    truth["use_clamped_fape"] = Tensor::full({}, o.unclamped_fape ? 0.f : 1.f);
    const pipeline::TrainingSample sample = pipeline::make_training_sample(raw, truth, config);

    // features/ and batch/: this sample; raw/ and raw_config/: what `axfold train --resample` samples anew.
    io::Hdf5Writer w(o.out);
    for (const auto& [k, t] : sample.features) w.write("features/" + k, t);
    for (const auto& [k, t] : sample.batch) w.write("batch/" + k, t);
    pipeline::write_training_source(w, raw, config);
    w.write_string_attr("/", "source", o.mmcif + " chain " + o.chain);
    w.write_string_attr("/", "residues", std::to_string(begin) + ":" + std::to_string(end));
    w.write_string_attr("/", "model_name", o.model_name);
    w.commit();
    int resolved = 0;
    for (int64_t i = 0; i < end - begin; ++i) resolved += crop.all_atom_mask.f32()[i * rc::kAtom37 + rc::kAtomCA] > 0;
    std::printf(
        "axfold training-example: wrote %s: %s chain %s residues %lld:%lld (%s), %d with a CA, "
        "resolution %.2f A, %lld MSA rows\n",
        o.out.c_str(), o.mmcif.c_str(), o.chain.c_str(), (long long)begin, (long long)end, crop.sequence.c_str(),
        resolved, chain.resolution, (long long)raw.msa_depth());
    return 0;
}

}  // namespace axfold::apps
