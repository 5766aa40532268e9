// AlphaFold-Multimer's data side (pipeline/msa_pairing.h) against multimer_small's data/: each chain's alignment
// directory gives chain_features.h5's raw MSA and species features exactly, and the three chains' directories
// (with their template features) give merged_features.h5 exactly: pairing, de-duplication, block-diagonal rows,
// masks, deletion means, profile and templates.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "io/hdf5_file.h"
#include "io/msa.h"
#include "pipeline/msa_pairing.h"
#include "structure/residue_constants.h"
#include "test_util.h"

using namespace axfold;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small/data";

void expect_same(const Tensor& ours, const Tensor& golden, const std::string& what) {
    ASSERT_EQ(ours.numel(), golden.numel())
        << what << ": " << shape_str(ours.shape()) << " vs " << shape_str(golden.shape());
    EXPECT_EQ(test::compare(test::to_f64(ours), test::to_f64(golden), 0, 0, what, 3).bad, 0) << what;
}

// An AF2 msas/ directory for chains.fasta: the stored alignments, and each chain's template hits written as AF2's
// template featurizer output (the golden set gives them as features, not as mmCIF files).
std::string make_msa_dir(const test::TempDir& tmp) {
    const std::string dir = tmp.str() + "/msas";
    const io::Hdf5File golden(kData + "/chain_features.h5");
    for (const char* chain : {"A", "B"}) {
        fs::create_directories(dir + "/" + chain);
        for (const auto& e : fs::directory_iterator(kData + "/alignments/" + chain))
            fs::copy_file(e.path(), dir + "/" + chain + "/" + e.path().filename().string());
        io::Hdf5Writer w(dir + "/" + chain + "/template_features.h5");
        for (const char* k : {"template_aatype", "template_all_atom_positions", "template_all_atom_masks"})
            w.write(k, golden.read(std::string("raw/") + chain + "/" + k));
        w.commit();
    }
    return dir;
}

}  // namespace

TEST(MsaPairing, uniprot_species_follows_af2) {
    EXPECT_EQ(io::uniprot_species("tr|A0A88B6QHU|A0A88B6QHU_HUMAN/33-40"), "HUMAN");
    EXPECT_EQ(io::uniprot_species("sp|P89918|QZCN_DANRE/33-40 DE desc"), "DANRE");
    EXPECT_EQ(io::uniprot_species("sp|P89918_1|QZCN_DANRE"), "DANRE");  // isoform suffix
    EXPECT_EQ(io::uniprot_species("tr|A0A0B1|X_ECOLI_12"), "ECOLI");    // BFD's trailing number
    EXPECT_EQ(io::uniprot_species("UniRef90_A0A0B1"), "");
    EXPECT_EQ(io::uniprot_species("tr|A0A|X_HUMAN"), "");                   // accession too short
    EXPECT_EQ(io::uniprot_species("tr|A0A88B6QHU|A0A88B6QHU_HUMANS"), "");  // mnemonic longer than 5
    EXPECT_EQ(io::uniprot_species(""), "");
}

TEST(MsaPairing, chain_directories_give_the_chain_features) {
    const auto chains = pipeline::complex_chains(io::read_fasta(kData + "/chains.fasta"), "chains.fasta");
    const io::Hdf5File golden(kData + "/chain_features.h5");
    for (const pipeline::ComplexChain& c : chains) {
        if (c.chain_id == "C") continue;  // C reuses A's directory
        const pipeline::RawFeatures raw =
            pipeline::chain_msa_features(c, kData + "/alignments/" + c.chain_id, /*pairing=*/true);
        const std::string g = "raw/" + c.chain_id + "/";
        for (const char* k : {"msa", "deletion_matrix_int", "msa_all_seq", "deletion_matrix_int_all_seq", "aatype"})
            expect_same(raw.at(k), golden.read(g + k), g + k);
        EXPECT_EQ(raw.strings.at("msa_species_identifiers"), golden.read_strings(g + "msa_species_identifiers"));
        EXPECT_EQ(raw.strings.at("msa_species_identifiers_all_seq"),
                  golden.read_strings(g + "msa_species_identifiers_all_seq"));
    }
}

TEST(MsaPairing, chains_and_alignments_give_the_merged_features) {
    test::TempDir tmp;
    const std::string msas = make_msa_dir(tmp);
    const auto chains = pipeline::complex_chains(io::read_fasta(kData + "/chains.fasta"), "chains.fasta");
    const pipeline::MergedFeatures f = pipeline::pair_and_merge(chains, pipeline::complex_msa_features(chains, msas));
    const io::Hdf5File golden(kData + "/merged_features.h5");
    for (const std::string& k : golden.list("/", false)) {
        ASSERT_TRUE(f.count(k)) << k;
        expect_same(f.at(k), golden.read(k), k);
    }
    EXPECT_EQ(f.size(), golden.list("/", false).size());
}

TEST(MsaPairing, bad_alignment_directories_are_named) {
    test::TempDir tmp;
    const std::string msas = make_msa_dir(tmp);
    const auto chains = pipeline::complex_chains(io::read_fasta(kData + "/chains.fasta"), "chains.fasta");
    fs::remove_all(msas + "/B");
    test::expect_error([&] { pipeline::complex_msa_features(chains, msas); },
                       {"chain B", "FASTA line 3", msas + "/B", "uniref90_hits.sto"});
    fs::create_directories(msas + "/B");
    test::expect_error([&] { pipeline::complex_msa_features(chains, msas); }, {"chain B", "holds none of"});
    fs::copy_file(kData + "/alignments/B/mgnify_hits.sto", msas + "/B/mgnify_hits.sto");
    test::expect_error([&] { pipeline::complex_msa_features(chains, msas); }, {"chain B", "uniprot_hits.sto"});
}

// ColabFold's complex A3M: rows with residues in two chains are paired as given (insertions become deletions of the
// next column), the others are their chain's unpaired rows; an entity's copies share its rows side by side, and
// unpaired rows equal to a paired one are dropped as AF2 does.
TEST(MsaPairing, colabfold_a3m_pairs_rows_as_given) {
    const std::string a3m =
        "#9,7\t2,1\n"
        ">101\t102\nMHEGRVNMCWELGMCS\n"
        ">UniRef100_X\tUniRef100_Y\nMHaEGRVNM-WEL-MCS\n"
        ">UniRef100_Z\tUniRef100_W\nMHDGRVNMCWQLGMCA\n"
        ">101\nMHEGRVNMC-------\n"
        ">hitA1\nMHEGKVNMC-------\n"
        ">102\n---------WELGMCS\n"
        ">hitB1\n---------WELGMCA\n";
    const io::ColabFoldMsa msa = io::parse_colabfold_a3m(a3m, "complex.a3m");
    ASSERT_EQ(msa.queries, (std::vector<std::string>{"MHEGRVNMC", "WELGMCS"}));
    EXPECT_EQ(msa.paired[0].depth(), 3);
    EXPECT_EQ(msa.unpaired[1].sequences, (std::vector<std::string>{"WELGMCS", "WELGMCA"}));
    const auto chains = pipeline::complex_chains(io::read_fasta(kData + "/chains.fasta"), "chains.fasta");
    const pipeline::MergedFeatures f = pipeline::pair_and_merge(
        chains, pipeline::colabfold_msa_features(chains, msa, "complex.a3m"), pipeline::Pairing::Given);
    auto tokens = [](const std::string& s) {
        std::vector<int64_t> v;
        for (char c : s) v.push_back(c == '-' ? 21 : rc::restype_index(c));
        return v;
    };
    const std::vector<std::string> expected = {
        "MHEGRVNMC"
        "MHEGRVNMC"
        "WELGMCS",  // the query rows, paired
        "MHEGRVNM-"
        "MHEGRVNM-"
        "WEL-MCS",
        "MHDGRVNMC"
        "MHDGRVNMC"
        "WQLGMCA",
        "MHEGKVNMC"
        "MHEGKVNMC"
        "-------",  // A's unpaired block (its query dropped: a paired row)
        "---------"
        "---------"
        "WELGMCA"};
    const std::vector<int64_t> got = host_int64(f.at("msa"));
    const int64_t N = 25;
    for (size_t r = 0; r < expected.size(); ++r)
        EXPECT_EQ(std::vector<int64_t>(got.begin() + r * N, got.begin() + (r + 1) * N), tokens(expected[r])) << r;
    EXPECT_EQ(f.at("msa").size(0), 512);  // padded as AF2's pad_msa
    EXPECT_EQ(f.at("num_alignments").data<int32_t>()[0], 5);
    const std::vector<double> del = test::to_f64(f.at("deletion_matrix")), bert = test::to_f64(f.at("bert_mask")),
                              bias = test::to_f64(f.at("cluster_bias_mask"));
    EXPECT_EQ(del[1 * N + 2], 1.0);  // 'a' before E, in both copies
    EXPECT_EQ(del[1 * N + 11], 1.0);
    EXPECT_EQ(std::accumulate(del.begin(), del.end(), 0.0), 2.0);
    EXPECT_EQ(bert[3 * N + 17], 1.0);  // own-entity block
    EXPECT_EQ(bert[3 * N + 18], 0.0);
    EXPECT_EQ(bias[0], 1.0);
    EXPECT_EQ(std::accumulate(bias.begin(), bias.end(), 0.0), 1.0);

    test::expect_error(
        [] { io::parse_colabfold_a3m("#9,7\t2,1\n>q\nMHEGRVNMCWELGMCS\n>h\nMHEGRVNMCWELGMC\n", "bad.a3m"); },
        {"bad.a3m:4", "15 match columns", "16"});
    test::expect_error([] { io::parse_colabfold_a3m("#9,8\t2,1\n>q\nMHEGRVNMCWELGMCS\n", "bad.a3m"); },
                       {"bad.a3m", "summing to 17", "16 residues"});
    const io::ColabFoldMsa other = io::parse_colabfold_a3m("#9,7\t1,1\n>q\nMHEGRVNMCWELGMCS\n", "one_copy.a3m");
    test::expect_error([&] { pipeline::colabfold_msa_features(chains, other, "one_copy.a3m"); },
                       {"one_copy.a3m", "1 copies, the FASTA 2"});
}
