// AlphaFold2 residue constants: literal tables and the derived rigid-group / atom-map tables.
//
// The literal values (ideal atom positions per rigid group, chi-angle atoms and masks, atom14 names,
// van der Waals radii) are facts transcribed from AlphaFold2's `alphafold/common/residue_constants.py`
// (DeepMind, Apache-2.0; positions from Engh & Huber 1991), and the bond lengths and angles of its
// `stereo_chemical_props.txt` (Engh & Huber 1991). The derivations below are our code and follow AF2's
// `_make_rigid_group_constants`, `data_transforms.make_atom14_masks` and `make_atom14_dists_bounds`.
#include "structure/residue_constants.h"

#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

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

double van_der_waals_radius(char element) {
    switch (element) {
        case 'C':
            return 1.7;
        case 'N':
            return 1.55;
        case 'O':
            return 1.52;
        case 'S':
            return 1.8;
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

namespace {

// Engh & Huber (1991) ideal geometry as AF2's `stereo_chemical_props.txt` lists it: bond lengths [Å] and bond
// angles [degrees], mean and standard deviation, per residue.
struct StereoEntry {
    const char* resname;
    const char* atoms;  // "CA-CB" (bond) or "N-CA-CB" (angle)
    double mean, stddev;
};
const StereoEntry kStereoBonds[] = {
    {"ALA", "CA-CB", 1.520, 0.021},
    {"ALA", "N-CA", 1.459, 0.020},
    {"ALA", "CA-C", 1.525, 0.026},
    {"ALA", "C-O", 1.229, 0.019},
    {"ARG", "CA-CB", 1.535, 0.022},
    {"ARG", "CB-CG", 1.521, 0.027},
    {"ARG", "CG-CD", 1.515, 0.025},
    {"ARG", "CD-NE", 1.460, 0.017},
    {"ARG", "NE-CZ", 1.326, 0.013},
    {"ARG", "CZ-NH1", 1.326, 0.013},
    {"ARG", "CZ-NH2", 1.326, 0.013},
    {"ARG", "N-CA", 1.459, 0.020},
    {"ARG", "CA-C", 1.525, 0.026},
    {"ARG", "C-O", 1.229, 0.019},
    {"ASN", "CA-CB", 1.527, 0.026},
    {"ASN", "CB-CG", 1.506, 0.023},
    {"ASN", "CG-OD1", 1.235, 0.022},
    {"ASN", "CG-ND2", 1.324, 0.025},
    {"ASN", "N-CA", 1.459, 0.020},
    {"ASN", "CA-C", 1.525, 0.026},
    {"ASN", "C-O", 1.229, 0.019},
    {"ASP", "CA-CB", 1.535, 0.022},
    {"ASP", "CB-CG", 1.513, 0.021},
    {"ASP", "CG-OD1", 1.249, 0.023},
    {"ASP", "CG-OD2", 1.249, 0.023},
    {"ASP", "N-CA", 1.459, 0.020},
    {"ASP", "CA-C", 1.525, 0.026},
    {"ASP", "C-O", 1.229, 0.019},
    {"CYS", "CA-CB", 1.526, 0.013},
    {"CYS", "CB-SG", 1.812, 0.016},
    {"CYS", "N-CA", 1.459, 0.020},
    {"CYS", "CA-C", 1.525, 0.026},
    {"CYS", "C-O", 1.229, 0.019},
    {"GLU", "CA-CB", 1.535, 0.022},
    {"GLU", "CB-CG", 1.517, 0.019},
    {"GLU", "CG-CD", 1.515, 0.015},
    {"GLU", "CD-OE1", 1.252, 0.011},
    {"GLU", "CD-OE2", 1.252, 0.011},
    {"GLU", "N-CA", 1.459, 0.020},
    {"GLU", "CA-C", 1.525, 0.026},
    {"GLU", "C-O", 1.229, 0.019},
    {"GLN", "CA-CB", 1.535, 0.022},
    {"GLN", "CB-CG", 1.521, 0.027},
    {"GLN", "CG-CD", 1.506, 0.023},
    {"GLN", "CD-OE1", 1.235, 0.022},
    {"GLN", "CD-NE2", 1.324, 0.025},
    {"GLN", "N-CA", 1.459, 0.020},
    {"GLN", "CA-C", 1.525, 0.026},
    {"GLN", "C-O", 1.229, 0.019},
    {"GLY", "N-CA", 1.456, 0.015},
    {"GLY", "CA-C", 1.514, 0.016},
    {"GLY", "C-O", 1.232, 0.016},
    {"HIS", "CA-CB", 1.535, 0.022},
    {"HIS", "CB-CG", 1.492, 0.016},
    {"HIS", "CG-ND1", 1.369, 0.015},
    {"HIS", "CG-CD2", 1.353, 0.017},
    {"HIS", "ND1-CE1", 1.343, 0.025},
    {"HIS", "CD2-NE2", 1.415, 0.021},
    {"HIS", "CE1-NE2", 1.322, 0.023},
    {"HIS", "N-CA", 1.459, 0.020},
    {"HIS", "CA-C", 1.525, 0.026},
    {"HIS", "C-O", 1.229, 0.019},
    {"ILE", "CA-CB", 1.544, 0.023},
    {"ILE", "CB-CG1", 1.536, 0.028},
    {"ILE", "CB-CG2", 1.524, 0.031},
    {"ILE", "CG1-CD1", 1.500, 0.069},
    {"ILE", "N-CA", 1.459, 0.020},
    {"ILE", "CA-C", 1.525, 0.026},
    {"ILE", "C-O", 1.229, 0.019},
    {"LEU", "CA-CB", 1.533, 0.023},
    {"LEU", "CB-CG", 1.521, 0.029},
    {"LEU", "CG-CD1", 1.514, 0.037},
    {"LEU", "CG-CD2", 1.514, 0.037},
    {"LEU", "N-CA", 1.459, 0.020},
    {"LEU", "CA-C", 1.525, 0.026},
    {"LEU", "C-O", 1.229, 0.019},
    {"LYS", "CA-CB", 1.535, 0.022},
    {"LYS", "CB-CG", 1.521, 0.027},
    {"LYS", "CG-CD", 1.520, 0.034},
    {"LYS", "CD-CE", 1.508, 0.025},
    {"LYS", "CE-NZ", 1.486, 0.025},
    {"LYS", "N-CA", 1.459, 0.020},
    {"LYS", "CA-C", 1.525, 0.026},
    {"LYS", "C-O", 1.229, 0.019},
    {"MET", "CA-CB", 1.535, 0.022},
    {"MET", "CB-CG", 1.509, 0.032},
    {"MET", "CG-SD", 1.807, 0.026},
    {"MET", "SD-CE", 1.774, 0.056},
    {"MET", "N-CA", 1.459, 0.020},
    {"MET", "CA-C", 1.525, 0.026},
    {"MET", "C-O", 1.229, 0.019},
    {"PHE", "CA-CB", 1.535, 0.022},
    {"PHE", "CB-CG", 1.509, 0.017},
    {"PHE", "CG-CD1", 1.383, 0.015},
    {"PHE", "CG-CD2", 1.383, 0.015},
    {"PHE", "CD1-CE1", 1.388, 0.020},
    {"PHE", "CD2-CE2", 1.388, 0.020},
    {"PHE", "CE1-CZ", 1.369, 0.019},
    {"PHE", "CE2-CZ", 1.369, 0.019},
    {"PHE", "N-CA", 1.459, 0.020},
    {"PHE", "CA-C", 1.525, 0.026},
    {"PHE", "C-O", 1.229, 0.019},
    {"PRO", "CA-CB", 1.531, 0.020},
    {"PRO", "CB-CG", 1.495, 0.050},
    {"PRO", "CG-CD", 1.502, 0.033},
    {"PRO", "CD-N", 1.474, 0.014},
    {"PRO", "N-CA", 1.468, 0.017},
    {"PRO", "CA-C", 1.524, 0.020},
    {"PRO", "C-O", 1.228, 0.020},
    {"SER", "CA-CB", 1.525, 0.015},
    {"SER", "CB-OG", 1.418, 0.013},
    {"SER", "N-CA", 1.459, 0.020},
    {"SER", "CA-C", 1.525, 0.026},
    {"SER", "C-O", 1.229, 0.019},
    {"THR", "CA-CB", 1.529, 0.026},
    {"THR", "CB-OG1", 1.428, 0.020},
    {"THR", "CB-CG2", 1.519, 0.033},
    {"THR", "N-CA", 1.459, 0.020},
    {"THR", "CA-C", 1.525, 0.026},
    {"THR", "C-O", 1.229, 0.019},
    {"TRP", "CA-CB", 1.535, 0.022},
    {"TRP", "CB-CG", 1.498, 0.018},
    {"TRP", "CG-CD1", 1.363, 0.014},
    {"TRP", "CG-CD2", 1.432, 0.017},
    {"TRP", "CD1-NE1", 1.375, 0.017},
    {"TRP", "NE1-CE2", 1.371, 0.013},
    {"TRP", "CD2-CE2", 1.409, 0.012},
    {"TRP", "CD2-CE3", 1.399, 0.015},
    {"TRP", "CE2-CZ2", 1.393, 0.017},
    {"TRP", "CE3-CZ3", 1.380, 0.017},
    {"TRP", "CZ2-CH2", 1.369, 0.019},
    {"TRP", "CZ3-CH2", 1.396, 0.016},
    {"TRP", "N-CA", 1.459, 0.020},
    {"TRP", "CA-C", 1.525, 0.026},
    {"TRP", "C-O", 1.229, 0.019},
    {"TYR", "CA-CB", 1.535, 0.022},
    {"TYR", "CB-CG", 1.512, 0.015},
    {"TYR", "CG-CD1", 1.387, 0.013},
    {"TYR", "CG-CD2", 1.387, 0.013},
    {"TYR", "CD1-CE1", 1.389, 0.015},
    {"TYR", "CD2-CE2", 1.389, 0.015},
    {"TYR", "CE1-CZ", 1.381, 0.013},
    {"TYR", "CE2-CZ", 1.381, 0.013},
    {"TYR", "CZ-OH", 1.374, 0.017},
    {"TYR", "N-CA", 1.459, 0.020},
    {"TYR", "CA-C", 1.525, 0.026},
    {"TYR", "C-O", 1.229, 0.019},
    {"VAL", "CA-CB", 1.543, 0.021},
    {"VAL", "CB-CG1", 1.524, 0.021},
    {"VAL", "CB-CG2", 1.524, 0.021},
    {"VAL", "N-CA", 1.459, 0.020},
    {"VAL", "CA-C", 1.525, 0.026},
    {"VAL", "C-O", 1.229, 0.019},
};
const StereoEntry kStereoAngles[] = {
    {"ALA", "N-CA-CB", 110.1, 1.4},
    {"ALA", "CB-CA-C", 110.1, 1.5},
    {"ALA", "N-CA-C", 111.0, 2.7},
    {"ALA", "CA-C-O", 120.1, 2.1},
    {"ARG", "N-CA-CB", 110.6, 1.8},
    {"ARG", "CB-CA-C", 110.4, 2.0},
    {"ARG", "CA-CB-CG", 113.4, 2.2},
    {"ARG", "CB-CG-CD", 111.6, 2.6},
    {"ARG", "CG-CD-NE", 111.8, 2.1},
    {"ARG", "CD-NE-CZ", 123.6, 1.4},
    {"ARG", "NE-CZ-NH1", 120.3, 0.5},
    {"ARG", "NE-CZ-NH2", 120.3, 0.5},
    {"ARG", "NH1-CZ-NH2", 119.4, 1.1},
    {"ARG", "N-CA-C", 111.0, 2.7},
    {"ARG", "CA-C-O", 120.1, 2.1},
    {"ASN", "N-CA-CB", 110.6, 1.8},
    {"ASN", "CB-CA-C", 110.4, 2.0},
    {"ASN", "CA-CB-CG", 113.4, 2.2},
    {"ASN", "CB-CG-ND2", 116.7, 2.4},
    {"ASN", "CB-CG-OD1", 121.6, 2.0},
    {"ASN", "ND2-CG-OD1", 121.9, 2.3},
    {"ASN", "N-CA-C", 111.0, 2.7},
    {"ASN", "CA-C-O", 120.1, 2.1},
    {"ASP", "N-CA-CB", 110.6, 1.8},
    {"ASP", "CB-CA-C", 110.4, 2.0},
    {"ASP", "CA-CB-CG", 113.4, 2.2},
    {"ASP", "CB-CG-OD1", 118.3, 0.9},
    {"ASP", "CB-CG-OD2", 118.3, 0.9},
    {"ASP", "OD1-CG-OD2", 123.3, 1.9},
    {"ASP", "N-CA-C", 111.0, 2.7},
    {"ASP", "CA-C-O", 120.1, 2.1},
    {"CYS", "N-CA-CB", 110.8, 1.5},
    {"CYS", "CB-CA-C", 111.5, 1.2},
    {"CYS", "CA-CB-SG", 114.2, 1.1},
    {"CYS", "N-CA-C", 111.0, 2.7},
    {"CYS", "CA-C-O", 120.1, 2.1},
    {"GLU", "N-CA-CB", 110.6, 1.8},
    {"GLU", "CB-CA-C", 110.4, 2.0},
    {"GLU", "CA-CB-CG", 113.4, 2.2},
    {"GLU", "CB-CG-CD", 114.2, 2.7},
    {"GLU", "CG-CD-OE1", 118.3, 2.0},
    {"GLU", "CG-CD-OE2", 118.3, 2.0},
    {"GLU", "OE1-CD-OE2", 123.3, 1.2},
    {"GLU", "N-CA-C", 111.0, 2.7},
    {"GLU", "CA-C-O", 120.1, 2.1},
    {"GLN", "N-CA-CB", 110.6, 1.8},
    {"GLN", "CB-CA-C", 110.4, 2.0},
    {"GLN", "CA-CB-CG", 113.4, 2.2},
    {"GLN", "CB-CG-CD", 111.6, 2.6},
    {"GLN", "CG-CD-OE1", 121.6, 2.0},
    {"GLN", "CG-CD-NE2", 116.7, 2.4},
    {"GLN", "OE1-CD-NE2", 121.9, 2.3},
    {"GLN", "N-CA-C", 111.0, 2.7},
    {"GLN", "CA-C-O", 120.1, 2.1},
    {"GLY", "N-CA-C", 113.1, 2.5},
    {"GLY", "CA-C-O", 120.6, 1.8},
    {"HIS", "N-CA-CB", 110.6, 1.8},
    {"HIS", "CB-CA-C", 110.4, 2.0},
    {"HIS", "CA-CB-CG", 113.6, 1.7},
    {"HIS", "CB-CG-ND1", 123.2, 2.5},
    {"HIS", "CB-CG-CD2", 130.8, 3.1},
    {"HIS", "CG-ND1-CE1", 108.2, 1.4},
    {"HIS", "ND1-CE1-NE2", 109.9, 2.2},
    {"HIS", "CE1-NE2-CD2", 106.6, 2.5},
    {"HIS", "NE2-CD2-CG", 109.2, 1.9},
    {"HIS", "CD2-CG-ND1", 106.0, 1.4},
    {"HIS", "N-CA-C", 111.0, 2.7},
    {"HIS", "CA-C-O", 120.1, 2.1},
    {"ILE", "N-CA-CB", 110.8, 2.3},
    {"ILE", "CB-CA-C", 111.6, 2.0},
    {"ILE", "CA-CB-CG1", 111.0, 1.9},
    {"ILE", "CB-CG1-CD1", 113.9, 2.8},
    {"ILE", "CA-CB-CG2", 110.9, 2.0},
    {"ILE", "CG1-CB-CG2", 111.4, 2.2},
    {"ILE", "N-CA-C", 111.0, 2.7},
    {"ILE", "CA-C-O", 120.1, 2.1},
    {"LEU", "N-CA-CB", 110.4, 2.0},
    {"LEU", "CB-CA-C", 110.2, 1.9},
    {"LEU", "CA-CB-CG", 115.3, 2.3},
    {"LEU", "CB-CG-CD1", 111.0, 1.7},
    {"LEU", "CB-CG-CD2", 111.0, 1.7},
    {"LEU", "CD1-CG-CD2", 110.5, 3.0},
    {"LEU", "N-CA-C", 111.0, 2.7},
    {"LEU", "CA-C-O", 120.1, 2.1},
    {"LYS", "N-CA-CB", 110.6, 1.8},
    {"LYS", "CB-CA-C", 110.4, 2.0},
    {"LYS", "CA-CB-CG", 113.4, 2.2},
    {"LYS", "CB-CG-CD", 111.6, 2.6},
    {"LYS", "CG-CD-CE", 111.9, 3.0},
    {"LYS", "CD-CE-NZ", 111.7, 2.3},
    {"LYS", "N-CA-C", 111.0, 2.7},
    {"LYS", "CA-C-O", 120.1, 2.1},
    {"MET", "N-CA-CB", 110.6, 1.8},
    {"MET", "CB-CA-C", 110.4, 2.0},
    {"MET", "CA-CB-CG", 113.3, 1.7},
    {"MET", "CB-CG-SD", 112.4, 3.0},
    {"MET", "CG-SD-CE", 100.2, 1.6},
    {"MET", "N-CA-C", 111.0, 2.7},
    {"MET", "CA-C-O", 120.1, 2.1},
    {"PHE", "N-CA-CB", 110.6, 1.8},
    {"PHE", "CB-CA-C", 110.4, 2.0},
    {"PHE", "CA-CB-CG", 113.9, 2.4},
    {"PHE", "CB-CG-CD1", 120.8, 0.7},
    {"PHE", "CB-CG-CD2", 120.8, 0.7},
    {"PHE", "CD1-CG-CD2", 118.3, 1.3},
    {"PHE", "CG-CD1-CE1", 120.8, 1.1},
    {"PHE", "CG-CD2-CE2", 120.8, 1.1},
    {"PHE", "CD1-CE1-CZ", 120.1, 1.2},
    {"PHE", "CD2-CE2-CZ", 120.1, 1.2},
    {"PHE", "CE1-CZ-CE2", 120.0, 1.8},
    {"PHE", "N-CA-C", 111.0, 2.7},
    {"PHE", "CA-C-O", 120.1, 2.1},
    {"PRO", "N-CA-CB", 103.3, 1.2},
    {"PRO", "CB-CA-C", 111.7, 2.1},
    {"PRO", "CA-CB-CG", 104.8, 1.9},
    {"PRO", "CB-CG-CD", 106.5, 3.9},
    {"PRO", "CG-CD-N", 103.2, 1.5},
    {"PRO", "CA-N-CD", 111.7, 1.4},
    {"PRO", "N-CA-C", 112.1, 2.6},
    {"PRO", "CA-C-O", 120.2, 2.4},
    {"SER", "N-CA-CB", 110.5, 1.5},
    {"SER", "CB-CA-C", 110.1, 1.9},
    {"SER", "CA-CB-OG", 111.2, 2.7},
    {"SER", "N-CA-C", 111.0, 2.7},
    {"SER", "CA-C-O", 120.1, 2.1},
    {"THR", "N-CA-CB", 110.3, 1.9},
    {"THR", "CB-CA-C", 111.6, 2.7},
    {"THR", "CA-CB-OG1", 109.0, 2.1},
    {"THR", "CA-CB-CG2", 112.4, 1.4},
    {"THR", "OG1-CB-CG2", 110.0, 2.3},
    {"THR", "N-CA-C", 111.0, 2.7},
    {"THR", "CA-C-O", 120.1, 2.1},
    {"TRP", "N-CA-CB", 110.6, 1.8},
    {"TRP", "CB-CA-C", 110.4, 2.0},
    {"TRP", "CA-CB-CG", 113.7, 1.9},
    {"TRP", "CB-CG-CD1", 127.0, 1.3},
    {"TRP", "CB-CG-CD2", 126.6, 1.3},
    {"TRP", "CD1-CG-CD2", 106.3, 0.8},
    {"TRP", "CG-CD1-NE1", 110.1, 1.0},
    {"TRP", "CD1-NE1-CE2", 109.0, 0.9},
    {"TRP", "NE1-CE2-CD2", 107.3, 1.0},
    {"TRP", "CE2-CD2-CG", 107.3, 0.8},
    {"TRP", "CG-CD2-CE3", 133.9, 0.9},
    {"TRP", "NE1-CE2-CZ2", 130.4, 1.1},
    {"TRP", "CE3-CD2-CE2", 118.7, 1.2},
    {"TRP", "CD2-CE2-CZ2", 122.3, 1.2},
    {"TRP", "CE2-CZ2-CH2", 117.4, 1.0},
    {"TRP", "CZ2-CH2-CZ3", 121.6, 1.2},
    {"TRP", "CH2-CZ3-CE3", 121.2, 1.1},
    {"TRP", "CZ3-CE3-CD2", 118.8, 1.3},
    {"TRP", "N-CA-C", 111.0, 2.7},
    {"TRP", "CA-C-O", 120.1, 2.1},
    {"TYR", "N-CA-CB", 110.6, 1.8},
    {"TYR", "CB-CA-C", 110.4, 2.0},
    {"TYR", "CA-CB-CG", 113.4, 1.9},
    {"TYR", "CB-CG-CD1", 121.0, 0.6},
    {"TYR", "CB-CG-CD2", 121.0, 0.6},
    {"TYR", "CD1-CG-CD2", 117.9, 1.1},
    {"TYR", "CG-CD1-CE1", 121.3, 0.8},
    {"TYR", "CG-CD2-CE2", 121.3, 0.8},
    {"TYR", "CD1-CE1-CZ", 119.8, 0.9},
    {"TYR", "CD2-CE2-CZ", 119.8, 0.9},
    {"TYR", "CE1-CZ-CE2", 119.8, 1.6},
    {"TYR", "CE1-CZ-OH", 120.1, 2.7},
    {"TYR", "CE2-CZ-OH", 120.1, 2.7},
    {"TYR", "N-CA-C", 111.0, 2.7},
    {"TYR", "CA-C-O", 120.1, 2.1},
    {"VAL", "N-CA-CB", 111.5, 2.2},
    {"VAL", "CB-CA-C", 111.4, 1.9},
    {"VAL", "CA-CB-CG1", 110.9, 1.5},
    {"VAL", "CA-CB-CG2", 110.9, 1.5},
    {"VAL", "CG1-CB-CG2", 110.9, 1.6},
    {"VAL", "N-CA-C", 111.0, 2.7},
    {"VAL", "CA-C-O", 120.1, 2.1},
};

std::vector<std::string> split_atoms(const char* atoms) {
    std::vector<std::string> out;
    std::string cur;
    for (const char* c = atoms; *c; ++c) {
        if (*c == '-') {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += *c;
        }
    }
    out.push_back(cur);
    return out;
}

}  // namespace

std::unique_ptr<Atom14DistBounds> atom14_dists_bounds(double overlap_tolerance, double bond_length_tolerance_factor) {
    auto b = std::make_unique<Atom14DistBounds>();
    std::memset(b.get(), 0, sizeof(Atom14DistBounds));
    for (int r = 0; r < kNumRestypes; ++r) {
        const auto& names = kRestypeAtom14Names[r];
        const std::string resname = kRestype3[r];
        auto set = [&](int a, int c, double lower, double upper, double stddev) {
            for (auto [i, j] : {std::pair{a, c}, std::pair{c, a}}) {
                b->lower[r][i][j] = static_cast<float>(lower);
                b->upper[r][i][j] = static_cast<float>(upper);
                b->stddev[r][i][j] = static_cast<float>(stddev);
            }
        };
        // Every pair of distinct atoms: no closer than their van der Waals radii less the tolerance.
        for (int a = 0; a < kAtom14; ++a) {
            if (!*names[a]) continue;
            for (int c = 0; c < kAtom14; ++c) {
                if (!*names[c] || a == c) continue;
                set(a, c, van_der_waals_radius(names[a][0]) + van_der_waals_radius(names[c][0]) - overlap_tolerance, 1e10,
                    0.0);
            }
        }
        // Bonds, and the 1-3 distances of bond angles (law of cosines, uncertainty propagated from both bonds and
        // the angle, uncorrelated): their lengths within the tolerance factor of their standard deviations.
        auto bond = [&](const std::string& x, const std::string& y) -> const StereoEntry& {
            for (const StereoEntry& e : kStereoBonds) {
                if (resname != e.resname) continue;
                const std::vector<std::string> at = split_atoms(e.atoms);
                if ((at[0] == x && at[1] == y) || (at[0] == y && at[1] == x)) return e;
            }
            AXF_FAIL("stereo-chemical tables: no %s-%s bond in %s", x.c_str(), y.c_str(), resname.c_str());
        };
        auto set_bond = [&](const std::string& x, const std::string& y, double length, double stddev) {
            set(atom14_index(r, x), atom14_index(r, y), length - bond_length_tolerance_factor * stddev,
                length + bond_length_tolerance_factor * stddev, stddev);
        };
        for (const StereoEntry& e : kStereoBonds) {
            if (resname != e.resname) continue;
            const std::vector<std::string> at = split_atoms(e.atoms);
            set_bond(at[0], at[1], e.mean, e.stddev);
        }
        for (const StereoEntry& e : kStereoAngles) {
            if (resname != e.resname) continue;
            const std::vector<std::string> at = split_atoms(e.atoms);
            const StereoEntry& b1 = bond(at[0], at[1]);
            const StereoEntry& b2 = bond(at[1], at[2]);
            const double gamma = e.mean / 180.0 * M_PI, gamma_sd = e.stddev / 180.0 * M_PI;
            const double l1 = b1.mean, l2 = b2.mean;
            const double length = std::sqrt(l1 * l1 + l2 * l2 - 2 * l1 * l2 * std::cos(gamma));
            const double outer = 0.5 / length;
            const double d_gamma = 2 * l1 * l2 * std::sin(gamma) * outer;
            const double d_b1 = (2 * l1 - 2 * l2 * std::cos(gamma)) * outer;
            const double d_b2 = (2 * l2 - 2 * l1 * std::cos(gamma)) * outer;
            const double stddev = std::sqrt(d_gamma * gamma_sd * d_gamma * gamma_sd + d_b1 * b1.stddev * d_b1 * b1.stddev +
                                            d_b2 * b2.stddev * d_b2 * b2.stddev);
            set_bond(at[0], at[2], length, stddev);
        }
    }
    return b;
}

}  // namespace axfold::rc
