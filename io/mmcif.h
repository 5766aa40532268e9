// mmCIF (PDBx) reader for one protein chain: its SEQRES, the atoms of its first model and the entry's
// resolution, as AlphaFold2's `data/mmcif_parsing.py` (over Biopython's MMCIFParser) sees them; the
// template and training-data paths build their atom positions from this.
//
// CIF syntax: the first data_ block is read; `_category.item value` pairs, loop_ tables, values quoted
// with ' or " (a quote closes only before whitespace or the end of the line, so "O5'" is a value),
// ;-delimited text fields, # comments outside values. Unquoted '.' and '?' are unset. Tag names are
// matched case-insensitively. One pass over the file; values are views into it.
//
// Chains are keyed by AUTHOR chain id (auth_asym_id), as AF2 keys them. The first model is the one with
// the smallest pdbx_PDB_model_num (the first listed when the numbers are not integers; one model when the
// column is absent). A chain's entity comes from _atom_site.label_entity_id, else from _struct_asym.
// Atoms whose label_seq_id is unset (waters, ligands) are skipped; hydrogens are kept.
//
// DISCREPANCY: AF2 takes a polymer as protein when any of its monomers has a _chem_comp.type containing
// "peptide"; here an entity is protein when that holds or its _entity_poly.type contains "polypeptide", so
// files without a _chem_comp table (hand-written, some software's output) still work. The two agree on PDB
// entries.
// DISCREPANCY: AF2 appends every _entity_poly_seq row to the sequence, so a microheterogeneous position
// (two rows with one num) lengthens the SEQRES and shifts every later index; here the first listed monomer
// stands for the position, and of the atoms modelled there only those of that monomer are kept (when any
// are; Biopython keeps the last residue type). SEQRES numbers must run contiguously (error otherwise).
// DISCREPANCY: resolution is the first of _refine.ls_d_res_high, _em_3d_reconstruction.resolution,
// _reflns.d_resolution_high that is set and numeric (AF2 after its fix; DeepMind's loop without `break`
// lets the last numeric one win). AF2 reads only model "1"; here the smallest model number is the first.
// LIMITATION: an unquoted value may not start with '_' (the CIF rule; Biopython accepts one inside a loop
// row), and a loop whose value count is not a multiple of its columns is an error (Biopython reads on).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axfold::io {

struct MmcifAtom {
    std::string name;          // _atom_site.label_atom_id (e.g. "CA", "SE", "OXT")
    std::string residue_name;  // _atom_site.label_comp_id (e.g. "MSE")
    int64_t seqres_index = 0;  // 0-based position in the chain's SEQRES: label_seq_id - the entity's smallest
                               // _entity_poly_seq.num
    double x = 0, y = 0, z = 0, occupancy = 1;  // Cartn_x/y/z in Å; occupancy 1 when unset
    bool hetatm = false;                        // group_PDB == HETATM (e.g. MSE)
};

struct MmcifChain {
    std::string path, chain_id;       // the file; the AUTHOR chain id (auth_asym_id), as AF2 keys chains
    std::vector<std::string> seqres;  // [N_res] _entity_poly_seq.mon_id in num order; for a hetero position,
                                      // the first listed
    // First model only, ordered by seqres_index, then by first appearance; one per (seqres_index, name):
    // altlocs resolved by the highest occupancy, the first listed on ties (Biopython's rule). Residues with
    // no atoms here are missing.
    std::vector<MmcifAtom> atoms;
    // Å: _refine.ls_d_res_high, else _em_3d_reconstruction.resolution, else _reflns.d_resolution_high; 0
    // when none is set (missing, '?' or '.').
    double resolution = 0;
};

// Author chain ids of the protein chains with atoms in the first model, in the order of their first atom.
std::vector<std::string> mmcif_protein_chains(const std::string& path);

// The chain's SEQRES and first-model atoms. Throws naming the file and the chain (and the chains that exist)
// when the chain is absent or not a protein, and the file and line for malformed CIF.
MmcifChain read_mmcif_chain(const std::string& path, const std::string& chain_id);

}  // namespace axfold::io
