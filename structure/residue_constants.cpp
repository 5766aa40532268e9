// AlphaFold2 residue constants: literal tables and the derived rigid-group / atom-map tables.
//
// The literal values (ideal atom positions per rigid group, chi-angle atoms and masks, atom14 names,
// van der Waals radii) are facts transcribed from AlphaFold2's `alphafold/common/residue_constants.py`
// (DeepMind, Apache-2.0; positions from Engh & Huber 1991). The derivations below are our code and follow
// AF2's `_make_rigid_group_constants` and `data_transforms.make_atom14_masks`.
#include "structure/residue_constants.h"

#include <cmath>
#include <cstring>

#include "kernels/error.h"

namespace axfold::rc {

namespace {

// rigid_group_atom_positions: [atom, group, position in the group frame (Å)]. Group 0 backbone, 3 psi,
// 4..7 chi1..chi4; positions are relative to the group's axis-end atom, x along the rotation axis and the
// dihedral-defining atom in the xy-plane with y > 0.
const RigidGroupAtom kAla[] = {
    {"N", 0, {-0.525, 1.363, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.526, -0.000, -0.000}},
    {"CB", 0, {-0.529, -0.774, -1.205}}, {"O", 3, {0.627, 1.062, 0.000}},
};
const RigidGroupAtom kArg[] = {
    {"N", 0, {-0.524, 1.362, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}},  {"C", 0, {1.525, -0.000, -0.000}},
    {"CB", 0, {-0.524, -0.778, -1.209}}, {"O", 3, {0.626, 1.062, 0.000}},   {"CG", 4, {0.616, 1.390, -0.000}},
    {"CD", 5, {0.564, 1.414, 0.000}},    {"NE", 6, {0.539, 1.357, -0.000}}, {"NH1", 7, {0.206, 2.301, 0.000}},
    {"NH2", 7, {2.078, 0.978, -0.000}},  {"CZ", 7, {0.758, 1.093, -0.000}},
};
const RigidGroupAtom kAsn[] = {
    {"N", 0, {-0.536, 1.357, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},  {"C", 0, {1.526, -0.000, -0.000}},
    {"CB", 0, {-0.531, -0.787, -1.200}}, {"O", 3, {0.625, 1.062, 0.000}},   {"CG", 4, {0.584, 1.399, 0.000}},
    {"ND2", 5, {0.593, -1.188, 0.001}},  {"OD1", 5, {0.633, 1.059, 0.000}},
};
const RigidGroupAtom kAsp[] = {
    {"N", 0, {-0.525, 1.362, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}},    {"C", 0, {1.527, 0.000, -0.000}},
    {"CB", 0, {-0.526, -0.778, -1.208}}, {"O", 3, {0.626, 1.062, -0.000}},    {"CG", 4, {0.593, 1.398, -0.000}},
    {"OD1", 5, {0.610, 1.091, 0.000}},   {"OD2", 5, {0.592, -1.101, -0.003}},
};
const RigidGroupAtom kCys[] = {
    {"N", 0, {-0.522, 1.362, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.524, 0.000, 0.000}},
    {"CB", 0, {-0.519, -0.773, -1.212}}, {"O", 3, {0.625, 1.062, -0.000}}, {"SG", 4, {0.728, 1.653, 0.000}},
};
const RigidGroupAtom kGln[] = {
    {"N", 0, {-0.526, 1.361, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}},    {"C", 0, {1.526, 0.000, 0.000}},
    {"CB", 0, {-0.525, -0.779, -1.207}}, {"O", 3, {0.626, 1.062, -0.000}},    {"CG", 4, {0.615, 1.393, 0.000}},
    {"CD", 5, {0.587, 1.399, -0.000}},   {"NE2", 6, {0.593, -1.189, -0.001}}, {"OE1", 6, {0.634, 1.060, 0.000}},
};
const RigidGroupAtom kGlu[] = {
    {"N", 0, {-0.528, 1.361, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},   {"C", 0, {1.526, -0.000, -0.000}},
    {"CB", 0, {-0.526, -0.781, -1.207}}, {"O", 3, {0.626, 1.062, 0.000}},    {"CG", 4, {0.615, 1.392, 0.000}},
    {"CD", 5, {0.600, 1.397, 0.000}},    {"OE1", 6, {0.607, 1.095, -0.000}}, {"OE2", 6, {0.589, -1.104, -0.001}},
};
const RigidGroupAtom kGly[] = {
    {"N", 0, {-0.572, 1.337, 0.000}},
    {"CA", 0, {0.000, 0.000, 0.000}},
    {"C", 0, {1.517, -0.000, -0.000}},
    {"O", 3, {0.626, 1.062, -0.000}},
};
const RigidGroupAtom kHis[] = {
    {"N", 0, {-0.527, 1.360, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},   {"C", 0, {1.525, 0.000, 0.000}},
    {"CB", 0, {-0.525, -0.778, -1.208}}, {"O", 3, {0.625, 1.063, 0.000}},    {"CG", 4, {0.600, 1.370, -0.000}},
    {"CD2", 5, {0.889, -1.021, 0.003}},  {"ND1", 5, {0.744, 1.160, -0.000}}, {"CE1", 5, {2.030, 0.851, 0.002}},
    {"NE2", 5, {2.145, -0.466, 0.004}},
};
const RigidGroupAtom kIle[] = {
    {"N", 0, {-0.493, 1.373, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}},  {"C", 0, {1.527, -0.000, -0.000}},
    {"CB", 0, {-0.536, -0.793, -1.213}}, {"O", 3, {0.627, 1.062, -0.000}},  {"CG1", 4, {0.534, 1.437, -0.000}},
    {"CG2", 4, {0.540, -0.785, -1.199}}, {"CD1", 5, {0.619, 1.391, 0.000}},
};
const RigidGroupAtom kLeu[] = {
    {"N", 0, {-0.520, 1.363, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},   {"C", 0, {1.525, -0.000, -0.000}},
    {"CB", 0, {-0.522, -0.773, -1.214}}, {"O", 3, {0.625, 1.063, -0.000}},   {"CG", 4, {0.678, 1.371, 0.000}},
    {"CD1", 5, {0.530, 1.430, -0.000}},  {"CD2", 5, {0.535, -0.774, 1.200}},
};
const RigidGroupAtom kLys[] = {
    {"N", 0, {-0.526, 1.362, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.526, 0.000, 0.000}},
    {"CB", 0, {-0.524, -0.778, -1.208}}, {"O", 3, {0.626, 1.062, -0.000}}, {"CG", 4, {0.619, 1.390, 0.000}},
    {"CD", 5, {0.559, 1.417, 0.000}},    {"CE", 6, {0.560, 1.416, 0.000}}, {"NZ", 7, {0.554, 1.387, 0.000}},
};
const RigidGroupAtom kMet[] = {
    {"N", 0, {-0.521, 1.364, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}},  {"C", 0, {1.525, 0.000, 0.000}},
    {"CB", 0, {-0.523, -0.776, -1.210}}, {"O", 3, {0.625, 1.062, -0.000}},  {"CG", 4, {0.613, 1.391, -0.000}},
    {"SD", 5, {0.703, 1.695, 0.000}},    {"CE", 6, {0.320, 1.786, -0.000}},
};
const RigidGroupAtom kPhe[] = {
    {"N", 0, {-0.518, 1.363, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},   {"C", 0, {1.524, 0.000, -0.000}},
    {"CB", 0, {-0.525, -0.776, -1.212}}, {"O", 3, {0.626, 1.062, -0.000}},   {"CG", 4, {0.607, 1.377, 0.000}},
    {"CD1", 5, {0.709, 1.195, -0.000}},  {"CD2", 5, {0.706, -1.196, 0.000}}, {"CE1", 5, {2.102, 1.198, -0.000}},
    {"CE2", 5, {2.098, -1.201, -0.000}}, {"CZ", 5, {2.794, -0.003, -0.001}},
};
const RigidGroupAtom kPro[] = {
    {"N", 0, {-0.566, 1.351, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.527, -0.000, 0.000}},
    {"CB", 0, {-0.546, -0.611, -1.293}}, {"O", 3, {0.621, 1.066, 0.000}},  {"CG", 4, {0.382, 1.445, 0.000}},
    {"CD", 5, {0.477, 1.424, 0.000}},  // AF2 widened the angle by 2 degrees (was 0.427, 1.440)
};
const RigidGroupAtom kSer[] = {
    {"N", 0, {-0.529, 1.360, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.525, -0.000, -0.000}},
    {"CB", 0, {-0.518, -0.777, -1.211}}, {"O", 3, {0.626, 1.062, -0.000}}, {"OG", 4, {0.503, 1.325, 0.000}},
};
const RigidGroupAtom kThr[] = {
    {"N", 0, {-0.517, 1.364, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.526, 0.000, -0.000}},
    {"CB", 0, {-0.516, -0.793, -1.215}}, {"O", 3, {0.626, 1.062, 0.000}},  {"CG2", 4, {0.550, -0.718, -1.228}},
    {"OG1", 4, {0.472, 1.353, 0.000}},
};
const RigidGroupAtom kTrp[] = {
    {"N", 0, {-0.521, 1.363, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},    {"C", 0, {1.525, -0.000, 0.000}},
    {"CB", 0, {-0.523, -0.776, -1.212}}, {"O", 3, {0.627, 1.062, 0.000}},     {"CG", 4, {0.609, 1.370, -0.000}},
    {"CD1", 5, {0.824, 1.091, 0.000}},   {"CD2", 5, {0.854, -1.148, -0.005}}, {"CE2", 5, {2.186, -0.678, -0.007}},
    {"CE3", 5, {0.622, -2.530, -0.007}}, {"NE1", 5, {2.140, 0.690, -0.004}},  {"CH2", 5, {3.028, -2.890, -0.013}},
    {"CZ2", 5, {3.283, -1.543, -0.011}}, {"CZ3", 5, {1.715, -3.389, -0.011}},
};
const RigidGroupAtom kTyr[] = {
    {"N", 0, {-0.522, 1.362, 0.000}},    {"CA", 0, {0.000, 0.000, 0.000}},    {"C", 0, {1.524, -0.000, -0.000}},
    {"CB", 0, {-0.522, -0.776, -1.213}}, {"O", 3, {0.627, 1.062, -0.000}},    {"CG", 4, {0.607, 1.382, -0.000}},
    {"CD1", 5, {0.716, 1.195, -0.000}},  {"CD2", 5, {0.713, -1.194, -0.001}}, {"CE1", 5, {2.107, 1.200, -0.002}},
    {"CE2", 5, {2.104, -1.201, -0.003}}, {"OH", 5, {4.168, -0.002, -0.005}},  {"CZ", 5, {2.791, -0.001, -0.003}},
};
const RigidGroupAtom kVal[] = {
    {"N", 0, {-0.494, 1.373, -0.000}},   {"CA", 0, {0.000, 0.000, 0.000}}, {"C", 0, {1.527, -0.000, -0.000}},
    {"CB", 0, {-0.533, -0.795, -1.213}}, {"O", 3, {0.627, 1.062, -0.000}}, {"CG1", 4, {0.540, 1.429, -0.000}},
    {"CG2", 4, {0.533, -0.776, 1.203}},
};

const std::span<const RigidGroupAtom> kRigidGroupAtoms[kNumRestypes] = {kAla, kArg, kAsn, kAsp, kCys, kGln, kGlu,
                                                                        kGly, kHis, kIle, kLeu, kLys, kMet, kPhe,
                                                                        kPro, kSer, kThr, kTrp, kTyr, kVal};

// residue_atom_renaming_swaps: atom pairs whose names are ambiguous by symmetry.
struct RenamingSwap {
    int restype;
    const char* a;
    const char* b;
};
constexpr RenamingSwap kRenamingSwaps[] = {
    {3, "OD1", "OD2"},                       // ASP
    {6, "OE1", "OE2"},                       // GLU
    {13, "CD1", "CD2"}, {13, "CE1", "CE2"},  // PHE
    {18, "CD1", "CD2"}, {18, "CE1", "CE2"},  // TYR
};

}  // namespace

// restype_name_to_atom14_names.
const std::array<std::array<const char*, kAtom14>, kNumRestypesWithX> kRestypeAtom14Names = {{
    {"N", "CA", "C", "O", "CB", "", "", "", "", "", "", "", "", ""},                            // ALA
    {"N", "CA", "C", "O", "CB", "CG", "CD", "NE", "CZ", "NH1", "NH2", "", "", ""},              // ARG
    {"N", "CA", "C", "O", "CB", "CG", "OD1", "ND2", "", "", "", "", "", ""},                    // ASN
    {"N", "CA", "C", "O", "CB", "CG", "OD1", "OD2", "", "", "", "", "", ""},                    // ASP
    {"N", "CA", "C", "O", "CB", "SG", "", "", "", "", "", "", "", ""},                          // CYS
    {"N", "CA", "C", "O", "CB", "CG", "CD", "OE1", "NE2", "", "", "", "", ""},                  // GLN
    {"N", "CA", "C", "O", "CB", "CG", "CD", "OE1", "OE2", "", "", "", "", ""},                  // GLU
    {"N", "CA", "C", "O", "", "", "", "", "", "", "", "", "", ""},                              // GLY
    {"N", "CA", "C", "O", "CB", "CG", "ND1", "CD2", "CE1", "NE2", "", "", "", ""},              // HIS
    {"N", "CA", "C", "O", "CB", "CG1", "CG2", "CD1", "", "", "", "", "", ""},                   // ILE
    {"N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "", "", "", "", "", ""},                    // LEU
    {"N", "CA", "C", "O", "CB", "CG", "CD", "CE", "NZ", "", "", "", "", ""},                    // LYS
    {"N", "CA", "C", "O", "CB", "CG", "SD", "CE", "", "", "", "", "", ""},                      // MET
    {"N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "", "", ""},            // PHE
    {"N", "CA", "C", "O", "CB", "CG", "CD", "", "", "", "", "", "", ""},                        // PRO
    {"N", "CA", "C", "O", "CB", "OG", "", "", "", "", "", "", "", ""},                          // SER
    {"N", "CA", "C", "O", "CB", "OG1", "CG2", "", "", "", "", "", "", ""},                      // THR
    {"N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "NE1", "CE2", "CE3", "CZ2", "CZ3", "CH2"},  // TRP
    {"N", "CA", "C", "O", "CB", "CG", "CD1", "CD2", "CE1", "CE2", "CZ", "OH", "", ""},          // TYR
    {"N", "CA", "C", "O", "CB", "CG1", "CG2", "", "", "", "", "", "", ""},                      // VAL
    {"", "", "", "", "", "", "", "", "", "", "", "", "", ""},                                   // UNK
}};

// chi_angles_atoms (chi5 of ARG is ignored, as in AF2).
const std::array<std::array<std::array<const char*, 4>, 4>, kNumRestypesWithX> kChiAnglesAtoms = {{
    {{{"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                                 // ALA
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD"}, {"CB", "CG", "CD", "NE"}, {"CG", "CD", "NE", "CZ"}}},  // ARG
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "OD1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // ASN
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "OD1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // ASP
    {{{"N", "CA", "CB", "SG"}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                          // CYS
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD"}, {"CB", "CG", "CD", "OE1"}, {"", "", "", ""}}},         // GLN
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD"}, {"CB", "CG", "CD", "OE1"}, {"", "", "", ""}}},         // GLU
    {{{"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                                 // GLY
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "ND1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // HIS
    {{{"N", "CA", "CB", "CG1"}, {"CA", "CB", "CG1", "CD1"}, {"", "", "", ""}, {"", "", "", ""}}},               // ILE
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // LEU
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD"}, {"CB", "CG", "CD", "CE"}, {"CG", "CD", "CE", "NZ"}}},  // LYS
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "SD"}, {"CB", "CG", "SD", "CE"}, {"", "", "", ""}}},          // MET
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // PHE
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD"}, {"", "", "", ""}, {"", "", "", ""}}},                  // PRO
    {{{"N", "CA", "CB", "OG"}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                          // SER
    {{{"N", "CA", "CB", "OG1"}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                         // THR
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // TRP
    {{{"N", "CA", "CB", "CG"}, {"CA", "CB", "CG", "CD1"}, {"", "", "", ""}, {"", "", "", ""}}},                 // TYR
    {{{"N", "CA", "CB", "CG1"}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                         // VAL
    {{{"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}, {"", "", "", ""}}},                                 // UNK
}};

const std::array<std::array<float, 4>, kNumRestypesWithX> kChiAnglesMask = {{
    {0, 0, 0, 0},  // ALA
    {1, 1, 1, 1},  // ARG
    {1, 1, 0, 0},  // ASN
    {1, 1, 0, 0},  // ASP
    {1, 0, 0, 0},  // CYS
    {1, 1, 1, 0},  // GLN
    {1, 1, 1, 0},  // GLU
    {0, 0, 0, 0},  // GLY
    {1, 1, 0, 0},  // HIS
    {1, 1, 0, 0},  // ILE
    {1, 1, 0, 0},  // LEU
    {1, 1, 1, 1},  // LYS
    {1, 1, 1, 0},  // MET
    {1, 1, 0, 0},  // PHE
    {1, 1, 0, 0},  // PRO
    {1, 0, 0, 0},  // SER
    {1, 0, 0, 0},  // THR
    {1, 1, 0, 0},  // TRP
    {1, 1, 0, 0},  // TYR
    {1, 0, 0, 0},  // VAL
    {0, 0, 0, 0},  // UNK
}};

const std::array<std::array<float, 4>, kNumRestypesWithX> kChiPiPeriodic = {{
    {0, 0, 0, 0},  // ALA
    {0, 0, 0, 0},  // ARG
    {0, 0, 0, 0},  // ASN
    {0, 1, 0, 0},  // ASP
    {0, 0, 0, 0},  // CYS
    {0, 0, 0, 0},  // GLN
    {0, 0, 1, 0},  // GLU
    {0, 0, 0, 0},  // GLY
    {0, 0, 0, 0},  // HIS
    {0, 0, 0, 0},  // ILE
    {0, 0, 0, 0},  // LEU
    {0, 0, 0, 0},  // LYS
    {0, 0, 0, 0},  // MET
    {0, 1, 0, 0},  // PHE
    {0, 0, 0, 0},  // PRO
    {0, 0, 0, 0},  // SER
    {0, 0, 0, 0},  // THR
    {0, 0, 0, 0},  // TRP
    {0, 1, 0, 0},  // TYR
    {0, 0, 0, 0},  // VAL
    {0, 0, 0, 0},  // UNK
}};

std::span<const RigidGroupAtom> rigid_group_atom_positions(int restype) {
    AXF_CHECK(restype >= 0 && restype < kNumRestypesWithX, "restype %d out of range [0, 21)", restype);
    if (restype == kNumRestypes) return {};
    return kRigidGroupAtoms[restype];
}

float van_der_waals_radius(char element) {
    switch (element) {
        case 'C':
            return 1.7f;
        case 'N':
            return 1.55f;
        case 'O':
            return 1.52f;
        case 'S':
            return 1.8f;
        default:
            AXF_FAIL("no van der Waals radius for element '%c' (AF2 knows C, N, O, S)", element);
    }
}

int atom37_index(const std::string& name) {
    for (int i = 0; i < kAtom37; ++i)
        if (name == kAtomTypes[i]) return i;
    return -1;
}

int atom14_index(int restype, const std::string& name) {
    AXF_CHECK(restype >= 0 && restype < kNumRestypesWithX, "restype %d out of range [0, 21)", restype);
    if (name.empty()) return -1;
    for (int i = 0; i < kAtom14; ++i)
        if (name == kRestypeAtom14Names[restype][i]) return i;
    return -1;
}

namespace {

struct V3 {
    double x, y, z;
};
V3 operator-(V3 a, V3 b) {
    return {a.x - b.x, a.y - b.y, a.z - b.z};
}
V3 operator*(double s, V3 a) {
    return {s * a.x, s * a.y, s * a.z};
}
V3 operator/(V3 a, double s) {
    return {a.x / s, a.y / s, a.z / s};
}
double dot(V3 a, V3 b) {
    return a.x * b.x + a.y * b.y + a.z * b.z;
}
V3 cross(V3 a, V3 b) {
    return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x};
}

// AF2 `_make_rigid_transformation_4x4`: columns ex, ey (Gram-Schmidt against ex), ex x ey, translation.
void make_rigid_transformation_4x4(V3 ex, V3 ey, V3 t, float m[4][4]) {
    ex = ex / std::sqrt(dot(ex, ex));
    ey = ey - dot(ey, ex) * ex;
    ey = ey / std::sqrt(dot(ey, ey));
    V3 ez = cross(ex, ey);
    const V3 cols[4] = {ex, ey, ez, t};
    for (int c = 0; c < 4; ++c) {
        m[0][c] = static_cast<float>(cols[c].x);
        m[1][c] = static_cast<float>(cols[c].y);
        m[2][c] = static_cast<float>(cols[c].z);
        m[3][c] = c == 3 ? 1.f : 0.f;
    }
}

void set_identity(float m[4][4]) {
    for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) m[i][j] = i == j ? 1.f : 0.f;
}

RigidGroupTables make_rigid_group_tables() {
    RigidGroupTables t;
    std::memset(&t, 0, sizeof t);
    for (int r = 0; r < kNumRestypes; ++r) {
        for (const RigidGroupAtom& a : kRigidGroupAtoms[r]) {
            int a37 = atom37_index(a.atom);
            int a14 = atom14_index(r, a.atom);
            AXF_CHECK(a37 >= 0 && a14 >= 0, "residue constants: atom %s of %s not in atom37/atom14", a.atom,
                      kRestype3[r]);
            t.atom37_to_rigid_group[r][a37] = a.group;
            t.atom37_mask[r][a37] = 1.f;
            t.atom14_to_rigid_group[r][a14] = a.group;
            t.atom14_mask[r][a14] = 1.f;
            for (int k = 0; k < 3; ++k) {
                t.atom37_rigid_group_positions[r][a37][k] = static_cast<float>(a.pos[k]);
                t.atom14_rigid_group_positions[r][a14][k] = static_cast<float>(a.pos[k]);
            }
        }
    }
    for (int r = 0; r < kNumRestypes; ++r) {
        auto pos = [&](const char* name) -> V3 {
            for (const RigidGroupAtom& a : kRigidGroupAtoms[r])
                if (std::strcmp(a.atom, name) == 0) return {a.pos[0], a.pos[1], a.pos[2]};
            AXF_FAIL("residue constants: %s has no atom %s", kRestype3[r], name);
        };
        set_identity(t.default_frame[r][0]);  // backbone -> backbone
        set_identity(t.default_frame[r][1]);  // pre-omega -> backbone (a placeholder in AF2)
        // phi frame -> backbone.
        make_rigid_transformation_4x4(pos("N") - pos("CA"), {1, 0, 0}, pos("N"), t.default_frame[r][2]);
        // psi frame -> backbone.
        make_rigid_transformation_4x4(pos("C") - pos("CA"), pos("CA") - pos("N"), pos("C"), t.default_frame[r][3]);
        // chi1 frame -> backbone.
        if (kChiAnglesMask[r][0] != 0.f) {
            const auto& chi = kChiAnglesAtoms[r][0];
            make_rigid_transformation_4x4(pos(chi[2]) - pos(chi[1]), pos(chi[0]) - pos(chi[1]), pos(chi[2]),
                                          t.default_frame[r][4]);
        }
        // chi(k) frame -> chi(k-1) frame: each rotation axis starts at the previous frame's origin.
        for (int k = 1; k < 4; ++k) {
            if (kChiAnglesMask[r][k] == 0.f) continue;
            V3 axis_end = pos(kChiAnglesAtoms[r][k][2]);
            make_rigid_transformation_4x4(axis_end, {-1, 0, 0}, axis_end, t.default_frame[r][4 + k]);
        }
    }
    return t;
}

AtomIndexTables make_atom_index_tables() {
    AtomIndexTables t;
    std::memset(&t, 0, sizeof t);
    for (int r = 0; r < kNumRestypesWithX; ++r) {
        for (int i = 0; i < kAtom14; ++i) {
            const char* name = kRestypeAtom14Names[r][i];
            t.atom14_ambiguous_swap_index[r][i] = i;
            if (*name == '\0') continue;
            int a37 = atom37_index(name);
            AXF_CHECK(a37 >= 0, "residue constants: atom14 name %s is not an atom37 name", name);
            t.atom14_to_atom37[r][i] = a37;
            t.atom37_to_atom14[r][a37] = i;
        }
        for (int c = 0; c < 4; ++c) {
            if (kChiAnglesMask[r][c] == 0.f) continue;
            for (int j = 0; j < 4; ++j) t.chi_angles_atom_indices[r][c][j] = atom37_index(kChiAnglesAtoms[r][c][j]);
        }
    }
    for (const RenamingSwap& s : kRenamingSwaps) {
        int a = atom14_index(s.restype, s.a), b = atom14_index(s.restype, s.b);
        AXF_CHECK(a >= 0 && b >= 0, "residue constants: bad renaming swap %s-%s", s.a, s.b);
        t.atom14_is_ambiguous[s.restype][a] = t.atom14_is_ambiguous[s.restype][b] = 1.f;
        t.atom14_ambiguous_swap_index[s.restype][a] = b;
        t.atom14_ambiguous_swap_index[s.restype][b] = a;
    }
    return t;
}

}  // namespace

const RigidGroupTables& rigid_group_tables() {
    static const RigidGroupTables tables = make_rigid_group_tables();
    return tables;
}

const AtomIndexTables& atom_index_tables() {
    static const AtomIndexTables tables = make_atom_index_tables();
    return tables;
}

}  // namespace axfold::rc
