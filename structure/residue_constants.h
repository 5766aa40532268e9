// AlphaFold2 residue constants: residue types, atom orders, and (in residue_constants.cpp) the
// rigid-group geometry, chi-angle definitions and atom14/atom37 maps.
//
// These are facts from AlphaFold2's `common/residue_constants.py` (Jumper et al. 2021, Apache-2.0), which
// in turn come from Engh & Huber (1991) ideal geometry; the code here is our own. Orders match AF2 so
// that parameters, features and outputs line up with AF2 and OpenFold.
#pragma once

#include <array>
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

}  // namespace axfold::rc
