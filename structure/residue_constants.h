// AlphaFold2 residue constants: residue types, atom orders, and (in residue_constants.cpp) the
// rigid-group geometry, chi-angle definitions and atom14/atom37 maps.
//
// These are facts from AlphaFold2's `common/residue_constants.py` (Jumper et al. 2021, Apache-2.0), which
// in turn come from Engh & Huber (1991) ideal geometry; the code here is our own. Orders match AF2 so
// that parameters, features and outputs line up with AF2 and OpenFold.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <string>

namespace axfold::rc {

constexpr int kNumRestypes = 20;       // ARNDCQEGHILKMFPSTWYV
constexpr int kNumRestypesWithX = 21;  // + X (unknown), index 20
constexpr int kAtom37 = 37;
constexpr int kAtom14 = 14;
constexpr int kNumRigidGroups = 8;     // backbone, pre-omega, phi, psi, chi1..chi4
constexpr int kNumTorsions = 7;        // omega, phi, psi, chi1..chi4

// One-letter codes in AF2 order, then X.
inline constexpr const char* kRestypes = "ARNDCQEGHILKMFPSTWYVX";

inline constexpr std::array<const char*, kNumRestypesWithX> kRestype3 = {
    "ALA", "ARG", "ASN", "ASP", "CYS", "GLN", "GLU", "GLY", "HIS", "ILE", "LEU",
    "LYS", "MET", "PHE", "PRO", "SER", "THR", "TRP", "TYR", "VAL", "UNK"};

// atom37 order.
inline constexpr std::array<const char*, kAtom37> kAtomTypes = {
    "N",   "CA",  "C",   "CB",  "O",   "CG",  "CG1", "CG2", "OG",  "OG1", "SG",  "CD",  "CD1",
    "CD2", "ND1", "ND2", "OD1", "OD2", "SD",  "CE",  "CE1", "CE2", "CE3", "NE",  "NE1", "NE2",
    "OE1", "OE2", "CH2", "NH1", "NH2", "OH",  "CZ",  "CZ2", "CZ3", "NZ",  "OXT"};

inline constexpr int kAtomN = 0, kAtomCA = 1, kAtomC = 2, kAtomCB = 3, kAtomO = 4;

// Element symbol of an atom37 name (its first letter for the atoms AF2 models).
inline char atom_element(int atom37) { return kAtomTypes[atom37][0]; }

// Index of a one-letter code in kRestypes (unknown letters map to X = 20).
inline int restype_index(char aa) {
    for (int i = 0; i < kNumRestypes; ++i)
        if (kRestypes[i] == aa) return i;
    return 20;
}

// ---------------------------------------------------------------------------------------------------
// Literal AF2 tables (residue_constants.cpp). Rows are indexed by restype 0..20 (kRestypes order);
// where AF2's table has only the 20 standard types, row 20 (UNK) is all zero / empty.

// One atom of `rigid_group_atom_positions`: its name, its rigid group (0 backbone, 3 psi, 4..7 chi1..4)
// and its position in that group's frame [Å]. Double because AF2 derives the default frames from these
// in float64 before storing them in float32.
struct RigidGroupAtom {
    const char* atom;
    int group;
    double pos[3];
};
// AF2 `rigid_group_atom_positions[resname]`; empty for UNK.
std::span<const RigidGroupAtom> rigid_group_atom_positions(int restype);

// AF2 `restype_name_to_atom14_names`, "" where a slot is empty (all slots of UNK).
extern const std::array<std::array<const char*, kAtom14>, kNumRestypesWithX> kRestypeAtom14Names;
// AF2 `chi_angles_atoms`: chi1..chi4 as 4 atom names each; "" for chis the residue does not have.
extern const std::array<std::array<std::array<const char*, 4>, 4>, kNumRestypesWithX> kChiAnglesAtoms;
// AF2 `chi_angles_mask` [20, 4] plus a zero UNK row (as OpenFold appends), and `chi_pi_periodic` [21, 4].
extern const std::array<std::array<float, 4>, kNumRestypesWithX> kChiAnglesMask;
extern const std::array<std::array<float, 4>, kNumRestypesWithX> kChiPiPeriodic;

// AF2 `van_der_waals_radius` [Å] by element ('C', 'N', 'O', 'S'); throws for any other element.
double van_der_waals_radius(char element);

// atom37 index of an atom name, -1 if it is not an atom37 name.
int atom37_index(const std::string& name);
// atom14 slot of an atom name in restype, -1 if the residue has no such atom.
int atom14_index(int restype, const std::string& name);

// ---------------------------------------------------------------------------------------------------
// Derived tables, computed once (thread-safe) the way AF2's `_make_rigid_group_constants` does.

struct RigidGroupTables {
    // Group frame -> parent frame (backbone for groups 0..4, chi(k-1) for chi2..chi4), Gram-Schmidt from
    // the literature positions (`_make_rigid_transformation_4x4`). Groups 0 and 1 are the identity; groups
    // a residue lacks, and every group of UNK, are all zero (AF2).
    float default_frame[kNumRestypesWithX][kNumRigidGroups][4][4];     // restype_rigid_group_default_frame
    int atom14_to_rigid_group[kNumRestypesWithX][kAtom14];              // 0 where absent
    float atom14_mask[kNumRestypesWithX][kAtom14];                      // restype_atom14_mask
    float atom14_rigid_group_positions[kNumRestypesWithX][kAtom14][3];  // [Å], 0 where absent
    int atom37_to_rigid_group[kNumRestypesWithX][kAtom37];
    float atom37_mask[kNumRestypesWithX][kAtom37];                      // restype_atom37_mask
    float atom37_rigid_group_positions[kNumRestypesWithX][kAtom37][3];
};
const RigidGroupTables& rigid_group_tables();

// AF2 `data_transforms.make_atom14_masks` maps and OpenFold's ambiguity tables.
struct AtomIndexTables {
    int atom14_to_atom37[kNumRestypesWithX][kAtom14];  // restype_atom14_to_atom37, 0 where absent
    int atom37_to_atom14[kNumRestypesWithX][kAtom37];  // restype_atom37_to_atom14, 0 where absent
    // atom37 indices of the 4 atoms of each chi (AF2 `chi_angles_atom_indices`, 0 padding; UNK all 0).
    int chi_angles_atom_indices[kNumRestypesWithX][4][4];
    // From `residue_atom_renaming_swaps` (ASP, GLU, PHE, TYR): 1 for atoms whose names may swap, and the
    // atom14 slot each atom maps to under the swap (identity elsewhere).
    float atom14_is_ambiguous[kNumRestypesWithX][kAtom14];
    int atom14_ambiguous_swap_index[kNumRestypesWithX][kAtom14];
};
const AtomIndexTables& atom_index_tables();

// AF2 `make_atom14_dists_bounds`: per residue type and atom14 pair, the allowed distance range within a residue.
// Non-bonded pairs: at least the sum of van der Waals radii less overlap_tolerance (no upper bound, 1e10);
// bonds, and the 1-3 distances of bond angles: within bond_length_tolerance_factor standard deviations of the
// ideal length (Engh & Huber, AF2's stereo_chemical_props.txt). float32, as AF2 stores them; UNK all zero.
struct Atom14DistBounds {
    float lower[kNumRestypesWithX][kAtom14][kAtom14];
    float upper[kNumRestypesWithX][kAtom14][kAtom14];
    float stddev[kNumRestypesWithX][kAtom14][kAtom14];
};
std::unique_ptr<Atom14DistBounds> atom14_dists_bounds(double overlap_tolerance = 1.5,
                                                      double bond_length_tolerance_factor = 15.0);

}  // namespace axfold::rc
