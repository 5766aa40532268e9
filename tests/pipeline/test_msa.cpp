// FASTA / A3M / Stockholm parsers and raw AlphaFold features: hand-made cases with known answers, every real
// alignment in tests/data/realdata, AlphaFold's own features.pkl reproduced from its alignments, and bad input
// failing with the file and line or key.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "io/hdf5_file.h"
#include "io/msa.h"
#include "pipeline/raw_features.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace axfold;
using namespace axfold::io;
using namespace axfold::pipeline;

namespace {

const std::string kReal = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata";

// Writes `content` to <dir>/<name> and returns its path.
std::string tmp_file(const test::TempDir& dir, const std::string& name, const std::string& content) {
    const fs::path p = dir / name;
    std::ofstream(p) << content;
    return p.string();
}

int32_t at(const Tensor& t, int64_t i, int64_t j) {
    return t.data<int32_t>()[i * t.size(1) + j];
}

}  // namespace

TEST(Fasta, MultiRecordBlankLinesLongHeaders) {
    const auto recs = parse_fasta("\n>a first one\nACDE\n\nFGH\n>b\r\nmkv\n\n", "x.fasta");
    ASSERT_EQ(recs.size(), 2u);
    EXPECT_EQ(recs[0].description, "a first one");
    EXPECT_EQ(recs[0].sequence, "ACDEFGH");
    EXPECT_EQ(recs[0].line, 2);
    EXPECT_EQ(recs[1].sequence, "MKV");
    const auto up = read_fasta(kReal + "/P54025.fasta");
    ASSERT_EQ(up.size(), 1u);
    EXPECT_GT(up[0].description.size(), 150u);
    EXPECT_EQ(up[0].sequence, "MIPIKRSSRRWKKKGRMRWKWYKKRLRRLKRERKRARS");
}

TEST(Fasta, BadInputNamesFileAndLine) {
    test::expect_error([] { parse_fasta("", "e.fasta"); }, {"e.fasta", "no FASTA records"});
    test::expect_error([] { parse_fasta("ACDE\n>x\nAC\n", "f.fasta"); }, {"f.fasta:1", "before the first"});
    test::expect_error([] { parse_fasta(">x\nAC\nA1C\n", "g.fasta"); }, {"g.fasta:3", "'1'"});
    test::expect_error([] { parse_fasta(">x\n>y\nAC\n", "h.fasta"); }, {"h.fasta:1", "no sequence"});
    test::expect_error([] { read_fasta("/nonexistent/q.fasta"); }, {"/nonexistent/q.fasta", "not found"});
}

TEST(A3m, LowerCaseInsertionsBecomeDeletionCounts) {
    const Msa m = parse_a3m("#12\t1\n>query\nACDEF\n>hit1 desc\nAaaC-EF\n>hit2\nA.CDeFgh-\n", "t.a3m");
    ASSERT_EQ(m.depth(), 3);
    EXPECT_EQ(m.sequences[1], "AC-EF");
    EXPECT_EQ(m.deletion_matrix[1], (std::vector<int32_t>{0, 2, 0, 0, 0}));
    EXPECT_EQ(m.descriptions[1], "hit1 desc");
    EXPECT_EQ(m.sequences[2], "ACDF-");
    EXPECT_EQ(m.deletion_matrix[2], (std::vector<int32_t>{0, 0, 0, 1, 2}));
}

TEST(A3m, BadInputNamesFileAndLine) {
    test::expect_error([] { parse_a3m(">q\nACDEF\n>h\nACD\n", "w.a3m"); }, {"w.a3m:3", "3 match columns", "5"});
    test::expect_error([] { parse_a3m(">q\nACDEF\n>h\nAC*EF\n", "u.a3m"); }, {"u.a3m:4", "'*'"});
    test::expect_error([] { read_msa(kReal + "/a3m/empty.a3m"); }, {"empty.a3m", "no A3M records"});
    test::expect_error([] { parse_a3m(">q\n\n>h\nAC\n", "n.a3m"); }, {"n.a3m:1", "no sequence"});
}

TEST(Stockholm, WrappedBlocksMarkupAndQueryGapColumns) {
    const std::string sto =
        "# STOCKHOLM 1.0\n\n#=GF ID test\n#=GS q DE query\n#=GS h1/1-9 DE hit\n\n"
        "q      MK-LV\nh1/1-9 MKALV\nh2     -KG.V\n#=GC RF xx.xx\n\n"
        "q      A-C\nh1/1-9 AWC\nh2     a-C\n#=GC RF x.x\n//\n";
    const Msa m = parse_stockholm(sto, "t.sto");
    ASSERT_EQ(m.depth(), 3);
    EXPECT_EQ(m.descriptions[1], "h1/1-9");
    EXPECT_EQ(m.sequences[0], "MKLVAC");
    EXPECT_EQ(m.sequences[1], "MKLVAC");
    EXPECT_EQ(m.deletion_matrix[1], (std::vector<int32_t>{0, 0, 1, 0, 0, 1}));
    EXPECT_EQ(m.sequences[2], "-K-VAC");
    EXPECT_EQ(m.deletion_matrix[2], (std::vector<int32_t>{0, 0, 1, 0, 0, 0}));
}

TEST(Stockholm, BadInputNamesFileAndLine) {
    test::expect_error([] { parse_stockholm("# STOCKHOLM 1.0\nq MKV extra\n//\n", "m.sto"); },
                       {"m.sto:2", "malformed"});
    test::expect_error([] { parse_stockholm("# STOCKHOLM 1.0\nq MKV\nh MK\n//\n", "l.sto"); },
                       {"l.sto:3", "'h'", "2 columns"});
    test::expect_error([] { parse_stockholm("# STOCKHOLM 1.0\nq MKV\nh M#V\n//\n", "c.sto"); }, {"c.sto:3", "'#'"});
    test::expect_error([] { parse_stockholm("# STOCKHOLM 1.0\n//\n", "e.sto"); }, {"e.sto", "no Stockholm sequences"});
}

TEST(RealAlignments, EveryFileParses) {
    int n = 0;
    for (const auto& e : fs::recursive_directory_iterator(kReal)) {
        const std::string p = e.path().string(), ext = e.path().extension().string();
        if (ext != ".a3m" && ext != ".sto") continue;
        if (e.path().filename() == "empty.a3m") continue;
        const Msa m = read_msa(p);
        EXPECT_GT(m.depth(), 0) << p;
        EXPECT_EQ(count_msa_rows(p), m.depth()) << p;  // what the memory check counts before reading
        for (int64_t r = 0; r < m.depth(); ++r) {
            ASSERT_EQ(m.sequences[r].size(), m.sequences[0].size()) << p << " row " << r;
            ASSERT_EQ(m.deletion_matrix[r].size(), m.sequences[0].size()) << p << " row " << r;
        }
        ++n;
    }
    EXPECT_EQ(n, 9);
}

TEST(RealAlignments, TwoQ2kDeletionCountsAndDedup) {
    const std::string dir = kReal + "/alignments/2q2k_A/";
    const Msa uniref = read_msa(dir + "uniref90_hits.sto");
    // Query columns 16 and 25 are gaps: a residue there is an insertion before query residues 16 and 24.
    int found = 0;
    for (int64_t r = 0; r < uniref.depth(); ++r) {
        if (uniref.descriptions[r] != "UniRef90_UPI000B802FE5/1-42") continue;
        ++found;
        const auto& d = uniref.deletion_matrix[r];
        for (size_t j = 0; j < d.size(); ++j) EXPECT_EQ(d[j], (j == 16 || j == 24) ? 1 : 0) << "column " << j;
    }
    EXPECT_EQ(found, 1);
    const Msa bfd = read_msa(dir + "bfd_uniclust_hits.a3m"), mgnify = read_msa(dir + "mgnify_hits.sto");
    const RawFeatures raw = make_raw_features(bfd.sequences[0], "2q2k_A", {uniref, bfd, mgnify});
    // 16 + 4 + 7 rows, 20 distinct; restricted to residues 18..41 (the golden loss case's crop) 15 distinct,
    // the golden README's count.
    EXPECT_EQ(uniref.depth() + bfd.depth() + mgnify.depth(), 27);
    EXPECT_EQ(raw.msa_depth(), 20);
    EXPECT_EQ(raw.at("num_alignments").data<int32_t>()[0], 20);
    EXPECT_EQ(raw.at("msa").shape(), (Shape{20, 70}));
    std::set<std::vector<int32_t>> cropped;
    for (int64_t r = 0; r < 20; ++r) {
        const int32_t* row = raw.at("msa").data<int32_t>() + r * 70;
        cropped.insert(std::vector<int32_t>(row + 18, row + 42));
    }
    EXPECT_EQ(cropped.size(), 15u);
}

TEST(RealAlignments, ReproducesAlphaFoldsFeaturesPkl) {
    const std::string dir = kReal + "/alignments/openfold_test/";
    const auto q = read_fasta(kReal + "/short.fasta");
    const RawFeatures raw =
        make_raw_features(q[0].sequence, q[0].description,
                          {read_msa(dir + "uniref90_hits.sto"), read_msa(dir + "bfd_uniclust_hits.a3m"),
                           read_msa(dir + "mgnify_hits.sto")});
    const RawFeatures af = read_raw_features_h5(kReal + "/alphafold_raw_features.h5");
    for (const char* key : {"aatype", "msa", "deletion_matrix_int", "residue_index", "seq_length", "num_alignments",
                            "between_segment_residues"}) {
        const Tensor& a = raw.at(key);
        const Tensor& b = af.at(key);
        ASSERT_EQ(a.shape(), b.shape()) << key;
        ASSERT_EQ(b.dtype(), DType::I32) << key;
        int64_t diff = 0;
        for (int64_t i = 0; i < a.numel(); ++i) diff += a.data<int32_t>()[i] != b.data<int32_t>()[i];
        EXPECT_EQ(diff, 0) << key;
    }
    EXPECT_EQ(raw.msa_depth(), 1136);
    EXPECT_EQ(af.strings.at("sequence")[0], q[0].sequence);
    EXPECT_EQ(af.strings.at("template_domain_names").size(), 8u);
    // Raw HDF5 round trip, strings included.
    const test::TempDir tmp;
    const std::string p = tmp_file(tmp, "raw.h5", "");
    write_raw_features_h5(p, raw);
    EXPECT_EQ(detect_feature_file(p), FeatureFileKind::Raw);
    const RawFeatures back = read_raw_features_h5(p);
    EXPECT_EQ(back.strings.at("sequence")[0], q[0].sequence);
    EXPECT_EQ(back.strings.at("domain_name")[0], "query");
    EXPECT_EQ(at(back.at("deletion_matrix_int"), 5, 40), at(raw.at("deletion_matrix_int"), 5, 40));
}

TEST(RawFeatures, SingleSequenceModeAndColabFoldA3m) {
    const RawFeatures single = make_raw_features("MKVB", "q", {});
    EXPECT_EQ(single.at("msa").shape(), (Shape{1, 4}));
    EXPECT_EQ(at(single.at("msa"), 0, 3), 2);                        // B -> D in the HHblits alphabet
    EXPECT_EQ(single.at("aatype").data<int32_t>()[3 * 21 + 20], 1);  // and X in aatype (AF2)
    const Msa dup = read_msa(kReal + "/a3m/6A5J.a3m");
    EXPECT_EQ(dup.depth(), 2);
    EXPECT_EQ(make_raw_features(dup.sequences[0], "6A5J", {dup}).msa_depth(), 1);  // identical rows once
}

TEST(RawFeatures, BadInputNamesFileAndKey) {
    const Msa m = parse_a3m(">q\nACDEF\n>h\nAC-EF\n", "other.a3m");
    test::expect_error([&] { make_raw_features("ACDEG", "q", {m}); }, {"other.a3m", "differs", "residue 5"});
    test::expect_error([&] { make_raw_features("ACDEFG", "q", {m}); }, {"other.a3m", "5 residues", "6"});
    const test::TempDir tmp;
    const std::string p = tmp_file(tmp, "nomsa.h5", "");
    {
        Hdf5Writer w(p);
        w.write("aatype", Tensor::zeros({3, 21}, DType::I32));
        w.write("deletion_matrix_int", Tensor::zeros({1, 3}, DType::I32));
        w.commit();
    }
    test::expect_error([&] { detect_feature_file(p); }, {p, "neither", "aatype"});
    test::expect_error([&] { read_raw_features_h5(p); }, {p, "aatype"});
    {
        Hdf5Writer w(p);
        w.write("msa", Tensor::zeros({2, 3}, DType::I32));
        w.write("deletion_matrix_int", Tensor::zeros({2, 3}, DType::I32));
        w.commit();
    }
    test::expect_error([&] { read_raw_features_h5(p); }, {p, "missing raw feature 'aatype'"});
}
