// AlphaFold2's raw monomer features (the `features.pkl` dict of AF2's data pipeline) and their HDF5 file.
//
// Built from a FASTA sequence and its alignments (AF2 `data/pipeline.py` make_sequence_features and
// make_msa_features), read from HDF5 (axfold's own files, scripts/features_pkl_to_h5.py output, the golden
// raw_features.h5) and written to HDF5: one dataset per key at the root with the pickle's dtype and shape,
// byte-string arrays as variable-length UTF-8 strings.
//
//   aatype                    [N, 21] int32 one-hot, AF order ARNDCQEGHILKMFPSTWYV + X
//   between_segment_residues  [N] int32 (zeros)
//   domain_name, sequence     [1] strings
//   residue_index             [N] int32 0..N-1
//   seq_length                [N] int32 (N repeated)
//   msa                       [S, N] int32, HHblits alphabet (A0 C1 D2 ... Y19 X20 -21), row 0 the query
//   deletion_matrix_int       [S, N] int32
//   num_alignments            [N] int32 (S repeated)
//   msa_species_identifiers   [S] strings, each row's UniProt species mnemonic or "" (io::uniprot_species)
//   template_*                passed through unchanged when present (template_aatype [T, N, 22] ...)
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/msa.h"
#include "kernels/tensor.h"

namespace axfold::pipeline {

struct RawFeatures {
    std::map<std::string, Tensor> arrays;                     // numeric arrays (CPU)
    std::map<std::string, std::vector<std::string>> strings;  // domain_name, sequence, template_sequence, ...
    std::string source;                                       // file or description, for error messages

    int64_t num_res() const;                         // N (from aatype)
    int64_t msa_depth() const;                       // S (from msa)
    const Tensor& at(const std::string& key) const;  // throws naming source and key
    bool has(const std::string& key) const { return arrays.count(key) > 0; }
};

// The per-source depth limits: a limit <= 0 means unlimited; an empty vector uses default_max_hits.
struct MsaMergeOptions {
    std::vector<int64_t> max_hits;
};

// AF2 make_sequence_features + make_msa_features. `msas` are merged in the given order (AF2's order is
// uniref90, BFD/UniRef30, mgnify), each truncated to its depth limit, then deduplicated: the query first,
// every identical aligned sequence once (the first occurrence's deletion row kept). Each alignment's query
// row must equal `sequence`. No alignments: the query alone (single-sequence mode).
RawFeatures make_raw_features(const std::string& sequence, const std::string& description,
                              const std::vector<io::Msa>& msas, const MsaMergeOptions& options = {});

// Checks keys, shapes and value ranges; throws naming `raw.source` and the key.
void validate_raw_features(const RawFeatures& raw);

void write_raw_features_h5(const std::string& path, const RawFeatures& raw);
// Reads and validates (throws naming the file and the missing or malformed key).
RawFeatures read_raw_features_h5(const std::string& path);

enum class FeatureFileKind { Raw, Processed };
// Tells raw (msa + deletion_matrix_int/deletion_matrix) from processed (msa_feat) features by their keys;
// throws naming the file when it is neither.
FeatureFileKind detect_feature_file(const std::string& path);

}  // namespace axfold::pipeline
