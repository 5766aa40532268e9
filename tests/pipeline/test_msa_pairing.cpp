// AlphaFold-Multimer's data side (pipeline/msa_pairing.h) against multimer_small's data/: each chain's alignment
// directory gives chain_features.h5's raw MSA and species features exactly, and the three chains' directories
// (with their template features) give merged_features.h5 exactly: pairing, de-duplication, block-diagonal rows,
// masks, deletion means, profile and templates.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/hdf5_file.h"
#include "io/msa.h"
#include "pipeline/msa_pairing.h"
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
