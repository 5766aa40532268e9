// Structure output: AlphaFold2's unrelaxed/relaxed model files (PDB and PDBx/mmCIF with ModelCIF pLDDT).
//
// to_pdb follows AF2's `protein.to_pdb` column for column (MODEL 1, one ATOM record per present atom37
// atom in atom37 order, TER, ENDMDL, END), so files diff cleanly against AF2 and OpenFold output.
// to_mmcif follows AF2's `protein.to_mmcif` + `mmcif_metadata.add_metadata_to_mmcif` and the AlphaFold DB
// files: _entity_poly_seq filled with UNK for residue numbers missing between 1 and the last residue,
// label_seq_id = auth_seq_id = residue_index + 1, and ModelCIF QA metrics
// (_ma_qa_metric 1 = pLDDT global, 2 = pLDDT local, as AF2 and AFDB number them).
//
// DISCREPANCY: the PDB PARENT line (OpenFold) is omitted. The mmCIF leaves out AF2's license, author
// and citation blocks (they describe DeepMind's release, not our output) and adds _chem_comp rows only
// for residue types that occur, plus auth_comp_id, auth_atom_id and pdbx_formal_charge in _atom_site.
// DISCREPANCY: _ma_qa_metric_global is the mean of the per-residue pLDDT (the number ranking_debug.json
// reports), where AF2's metadata code averages the B-factors of all atoms (weighting big residues more).
// LIMITATION: inputs AF2 would write as a corrupt file are errors here: non-finite coordinates or
// B-factors of present atoms, and (PDB only) values that do not fit their fixed-width columns.
#pragma once

#include <string>

#include "kernels/tensor.h"

namespace axfold::io {

// One predicted chain in atom37 representation (AF2's `Protein`). Tensors may live on any device and
// have any strides; integer fields accept int64 or int32, float fields float32 or float64.
struct ProteinStructure {
    Tensor aatype;          // [N] int64, AF2 order 0..20 (20 = X, written as UNK)
    Tensor residue_index;   // [N] int64, 0-based as in AF2 features; written +1 like AF2's to_pdb
    Tensor atom_positions;  // [N, 37, 3] float32, Å
    Tensor atom_mask;       // [N, 37] float32, atom present where > 0.5 (AF2 skips mask < 0.5)
    Tensor b_factors;       // [N, 37] float32 (pLDDT per atom)
    std::string chain_id = "A";
    // Complexes (AlphaFold-Multimer): each residue's chain [N] int (runs: a chain's residues are consecutive),
    // named A, B, ... as AF2's PDB_CHAIN_IDS (62 at most), and its entity [N] int (chains of one sequence share
    // it; mmCIF _entity). Undefined: one chain named chain_id (entity_index undefined: one entity per chain).
    Tensor chain_index, entity_index;
};

// AF2 protein.to_pdb text, a TER record closing each chain. Requires a one-character chain id, residue numbers
// (residue_index + 1) in
// [-999, 9999], coordinates in [-999.999, 9999.999], B-factors in [-99.99, 999.99], at most 99999 atoms.
std::string to_pdb(const ProteinStructure& p);
// Refuses residue numbers (residue_index + 1) outside PDB's 4-column resSeq (-999..9999), naming `source`; a
// prediction checks this before it runs rather than when it writes.
void check_pdb_residue_numbers(const Tensor& residue_index, const std::string& source);

// PDBx/mmCIF with ModelCIF pLDDT. `name` becomes the data block and _entry.id (upper-cased like AF2;
// characters other than printable non-space ASCII become '_'). Requires residue_index >= 0 and strictly
// increasing within each chain, and a chain id of ASCII letters and digits. Complexes: an entity (its sequence from
// its first chain) per entity_index, a struct_asym per chain.
std::string to_mmcif(const ProteinStructure& p, const std::string& name);

// Atomic writers (io/atomic_file.h): the previous file stays in place when anything fails.
void write_pdb(const std::string& path, const ProteinStructure& p);
void write_mmcif(const std::string& path, const ProteinStructure& p, const std::string& name);

}  // namespace axfold::io
