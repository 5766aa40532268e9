// AlphaFold-Multimer's data side (AF2 `data/pipeline_multimer.py`, `feature_processing.py`, `msa_pairing.py`):
// each chain's alignments in AF2's `msas/<chain_id>/` layout become per-chain raw features; the chains are paired
// by UniProt species, cropped and merged into one feature dict for the complex (`pair_and_merge` + `pad_msa`).
//
// Per chain (chain_msa_features): make_raw_features over uniref90_hits.sto, bfd_uniref_hits.a3m (or
// small_bfd_hits.sto), mgnify_hits.sto in that order, each file optional; with pairing, the `*_all_seq` features
// from uniprot_hits.sto (at most 50000 rows, every row's species mnemonic); the chain's templates from an optional
// template_features.h5 (AF2's template featurizer output: template_aatype [T, N, 22] one-hot HHblits order,
// template_all_atom_positions [T, N, 37, 3], template_all_atom_masks [T, N, 37]). A chain whose sequence appeared
// before reuses that chain's directory (AF2 runs the search once per distinct sequence).
//
// Pairing (pair_and_merge, with two or more entities): rows of msa_all_seq grouped by species (sorted; the
// query's "" excluded); a species found in >= 2 chains with <= 600 rows in each is paired: each chain's rows of
// that species sorted by identity to the query (equal tokens, gaps included) descending, ties by row index, the
// minimum count over the chains taken, a chain without the species given a gap row. Paired rows: the query row,
// then rows found in all chains, then in fewer; within a group by |product of row indices| (stable). Each chain's
// unpaired rows equal to one of its paired rows are dropped; the MSA is cropped to 2048 rows per chain (paired at
// most 1024, unpaired at most 2048 minus the non-gap paired rows). Copies of an entity sit side by side, entities
// block-diagonal (gap 21, deletion 0); paired rows come first. With one entity (monomer or homomer) there is no
// pairing and every entity block's first row is kept by the cluster bias.
//
// The merged dict (AF2's names; [M] MSA rows, padded with zeros to at least 512, [N] residues):
//   msa [M, N] int32 (AF order), deletion_matrix, bert_mask, msa_mask [M, N] float32, cluster_bias_mask [M],
//   aatype, residue_index [N] int32, asym_id, entity_id, sym_id [N] int64, seq_mask, deletion_mean [N] float32,
//   entity_mask [N] int32, all_atom_mask [N, 37], all_atom_positions [N, 37, 3] (zeros),
//   template_aatype [4, N] int64 (AF order), template_all_atom_mask [4, N, 37], template_all_atom_positions
//   [4, N, 37, 3], num_alignments, num_templates, seq_length, assembly_num_chains [] scalars,
//   msa_profile [N, 22] (masked mean one-hot, OpenFold's eps 1e-4), target_feat [N, 21] (one_hot(aatype)).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "pipeline/complex.h"
#include "pipeline/raw_features.h"

namespace axfold::pipeline {

using MergedFeatures = std::map<std::string, Tensor>;

// The alignment files of one chain directory, in AF2's merge order.
std::vector<std::string> chain_alignment_files(const std::string& chain_dir);

// One chain's raw features from its directory (see above); `pairing` adds the *_all_seq features and then needs
// uniprot_hits.sto. Throws naming the chain, its FASTA line and the directory when nothing is there.
RawFeatures chain_msa_features(const ComplexChain& chain, const std::string& chain_dir, bool pairing);

// Every chain's raw features from `msa_dir`/<chain_id>/ (chains in the merged order; copies share one entry).
std::vector<RawFeatures> complex_msa_features(const std::vector<ComplexChain>& chains, const std::string& msa_dir);

// Every chain's raw features from ColabFold's complex A3M (io::parse_colabfold_a3m): its unpaired rows as the
// chain's MSA, its paired rows as msa_all_seq (row i of every chain paired, as the file gives them). The file's
// distinct chains must be the complex's entities (sequence and copy number); throws naming `source` otherwise.
std::vector<RawFeatures> colabfold_msa_features(const std::vector<ComplexChain>& chains, const io::ColabFoldMsa& msa,
                                                const std::string& source);

// How the rows of msa_all_seq are paired: by UniProt species (AF2), or as given (row i of every chain, ColabFold).
enum class Pairing { Species, Given };

// AF2 pair_and_merge + pad_msa(512): `raw[i]` belongs to `chains[i]` (merged order).
MergedFeatures pair_and_merge(const std::vector<ComplexChain>& chains, const std::vector<RawFeatures>& raw,
                              Pairing pairing = Pairing::Species);

// A complex's input, whole: its chains and merged features from a FASTA (one record per chain, or A:B) with
// alignments from one of: `msa_dir` in AF2's layout, one ColabFold complex A3M in `msa_paths`, or none
// (single-sequence mode: each chain's query row, the query rows paired). `mode` says which, for logs.
struct ComplexFeatures {
    std::vector<ComplexChain> chains;
    MergedFeatures merged;
    std::string mode;
};
ComplexFeatures complex_features(const std::string& fasta, const std::vector<std::string>& msa_paths,
                                 const std::string& msa_dir);
// Merged features from HDF5 (as `axfold features` writes them for a complex, or AF2's multimer features.pkl
// converted by scripts/features_pkl_to_h5.py); throws naming the file when asym_id, msa or cluster_bias_mask is
// missing.
MergedFeatures read_merged_features_h5(const std::string& path);
// Whether a FASTA file is a complex (several records, or ':' in one).
bool is_complex_fasta(const std::string& path);

// Whether a complex needs pairing (two or more entities).
bool needs_pairing(const std::vector<ComplexChain>& chains);

}  // namespace axfold::pipeline
