// The chains of a complex (pipeline/complex.h) against multimer_small's data side: chains.fasta (A, B, C with
// C = A) gives merged_features.h5's per-residue features exactly (entity-major order A, C, B); ColabFold's `A:B`
// syntax gives the same chains as separate records; an empty chain is an error naming the line.
#include <gtest/gtest.h>

#include "io/hdf5_file.h"
#include "io/msa.h"
#include "pipeline/complex.h"
#include "test_util.h"

using namespace axfold;

TEST(Complex, chains_give_the_merged_residue_features) {
    const std::string dir = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small/data";
    const std::vector<pipeline::ComplexChain> chains =
        pipeline::complex_chains(io::read_fasta(dir + "/chains.fasta"), "chains.fasta");
    ASSERT_EQ(chains.size(), 3u);
    EXPECT_EQ(chains[0].name, "A");
    EXPECT_EQ(chains[1].name, "C");  // A's second copy comes before the next entity
    EXPECT_EQ(chains[2].name, "B");
    const auto f = pipeline::complex_residue_features(chains);
    const io::Hdf5File golden(dir + "/merged_features.h5");
    for (const char* k : {"aatype", "residue_index", "asym_id", "entity_id", "sym_id", "seq_mask", "target_feat"})
        EXPECT_EQ(test::compare(test::to_f64(f.at(k)), test::to_f64(golden.read(k)), 0, 0, k, 3).bad, 0) << k;

    // ColabFold's query syntax: one record, chains separated by ':'.
    const auto colabfold =
        pipeline::complex_chains(io::parse_fasta(">q\nMHEGRVNMC:WELGMCS:MHEGRVNMC\n", "q.fasta", true), "q.fasta");
    ASSERT_EQ(colabfold.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(colabfold[i].sequence, chains[i].sequence);
        EXPECT_EQ(colabfold[i].entity_id, chains[i].entity_id);
        EXPECT_EQ(colabfold[i].sym_id, chains[i].sym_id);
    }
    EXPECT_EQ(colabfold[1].name, "q_3");
    test::expect_error(
        [] { pipeline::complex_chains(io::parse_fasta(">a\nMK::MK\n", "bad.fasta", true), "bad.fasta"); },
        {"bad.fasta:1", "empty chain"});
}

// AlphaFold-Multimer names chains with 62 ids (A-Z, a-z, 0-9): a 63rd chain is an error, not a silent clash.
TEST(Complex, more_chains_than_chain_ids_is_an_error) {
    std::string fasta;
    for (int i = 0; i < 63; ++i)
        fasta += ">c" + std::to_string(i) + "\nMK" + std::string(1, "ACDEFGHIKL"[i % 10]) + "\n";
    const auto chains62 = pipeline::complex_chains(
        io::parse_fasta(fasta.substr(0, fasta.rfind(">c62")), "many.fasta", true), "many.fasta");
    EXPECT_EQ(chains62.size(), 62u);
    for (const pipeline::ComplexChain& c : chains62)  // ids by input order, whatever the merged order
        EXPECT_EQ(c.chain_id,
                  std::string(1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[c.input_index]));
    test::expect_error([&] { pipeline::complex_chains(io::parse_fasta(fasta, "many.fasta", true), "many.fasta"); },
                       {"many.fasta", "63 chains", "62 chain IDs"});
}
