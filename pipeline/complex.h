// The chains of a complex (AlphaFold-Multimer's input, AF2 `pipeline_multimer`): one chain per FASTA record, or
// per `:`-separated part of a record (ColabFold's `A:B` query syntax); chains with identical sequences are one
// entity with several copies. The merged residue order is entity-major (AF2 `pair_and_merge`): every copy of the
// first entity, then the next entity's; asym ids number the chains in that order from 1, entity ids the
// sequences from 1 in order of first appearance, sym ids the copies of an entity from 1.
// Chain ids follow AF2 (`_make_chain_id_map`): the i-th input chain (FASTA order) is PDB_CHAIN_IDS[i]
// (A..Z, a..z, 0..9), which names its alignment directory msas/<chain_id>/; more than 62 chains is an error.
// The alignments and their pairing are pipeline/msa_pairing.h.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "io/msa.h"
#include "kernels/tensor.h"

namespace axfold::pipeline {

struct ComplexChain {
    std::string name;                                // the FASTA description (with a part number for `A:B` records)
    std::string sequence;                            // one-letter codes
    std::string chain_id;                            // AF2's id by input order: A, B, ... (msas/<chain_id>/)
    int line = 0;                                    // the FASTA record's header line, for errors
    size_t input_index = 0;                          // position in the input (FASTA order)
    int64_t asym_id = 0, entity_id = 0, sym_id = 0;  // 1-based, in the merged order
};

// The chains in the merged order (records from io::read_fasta(path, true), which accepts ':'); throws naming the
// file and line for an empty chain.
std::vector<ComplexChain> complex_chains(const std::vector<io::FastaRecord>& records, const std::string& source);

// Per-residue features of the merged complex: aatype [N] int64 (AF order, X = 20), residue_index [N] (from 0 in
// each chain), asym_id, entity_id, sym_id [N] int64, seq_mask [N] and target_feat [N, 21] (one_hot(aatype)).
std::map<std::string, Tensor> complex_residue_features(const std::vector<ComplexChain>& chains);

}  // namespace axfold::pipeline
