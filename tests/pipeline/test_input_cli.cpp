// The input path end to end through the `axfold` binary: features from FASTA + alignments, AlphaFold's
// features.pkl through scripts/features_pkl_to_h5.py, the transforms and `axfold predict` (on the reduced-width
// golden parameters), and bad input failing with the file named.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/hdf5_file.h"
#include "pipeline/raw_features.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace axfold;

namespace {

const std::string kBin = AXFOLD_BINARY;
const std::string kReal = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata";
const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
const std::string kOf = kReal + "/alignments/openfold_test/";

struct RunResult {
    int rc;
    std::string out;
};

RunResult run(const std::string& cmd) {
    FILE* p = popen((cmd + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    const int st = p ? pclose(p) : -1;
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// Small model settings: the reduced-width golden parameters (model_3_ptm), 2 structure-module layers.
const std::string kSmallModel = " --params " + kSmall +
                                "/params.npz --model-name model_3_ptm --structure-module-layers 2 --threads 2"
                                " --num-recycle 1 --max-msa-clusters 16 --max-extra-msa 32";

}  // namespace

TEST(InputCli, FeaturesFromFastaAndAlignments) {
    const test::TempDir d;
    const std::string raw = (d / "q.features.h5").string(), proc = (d / "q.processed.h5").string();
    RunResult r = run(kBin + " features --fasta " + kReal + "/short.fasta --msa " + kOf + "uniref90_hits.sto --msa " +
                      kOf + "bfd_uniclust_hits.a3m --msa " + kOf + "mgnify_hits.sto -o " + raw);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(pipeline::detect_feature_file(raw), pipeline::FeatureFileKind::Raw);
    EXPECT_EQ(pipeline::read_raw_features_h5(raw).msa_depth(), 1136);
    r = run(kBin + " features --features " + raw + " --processed --model-name model_3 --num-recycle 1 --seed 7 -o " +
            proc);
    ASSERT_EQ(r.rc, 0) << r.out;
    io::Hdf5File f(proc);
    EXPECT_EQ(f.shape("msa_feat"), (Shape{2, 512, 73, 49}));
    EXPECT_EQ(f.shape("extra_msa"), (Shape{2, 5120, 73}));
    EXPECT_EQ(pipeline::detect_feature_file(proc), pipeline::FeatureFileKind::Processed);
}

TEST(InputCli, BadInputNamesTheFile) {
    const test::TempDir d;
    const std::string fa = (d / "other.fasta").string();
    std::ofstream(fa) << ">other\nMKVLAAGG\n";
    RunResult r =
        run(kBin + " features --fasta " + fa + " --msa " + kOf + "bfd_uniclust_hits.a3m -o " + (d / "x.h5").string());
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("bfd_uniclust_hits.a3m"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FASTA sequence"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(d / "x.h5"));
    r = run(kBin + " predict --features " + kSmall + "/params.h5 --out-dir " + (d / "o").string() + kSmallModel);
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("neither processed features"), std::string::npos) << r.out;
    const std::string two = (d / "two.fasta").string();
    std::ofstream(two) << ">a\nMKV\n>b\nMKV\n";
    // Two records are a complex: a monomer model's features refuse it, naming both kinds.
    r = run(kBin + " features --processed --model-name model_1_ptm --fasta " + two + " -o " + (d / "y.h5").string());
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("model_1_ptm is a monomer model, but the input is a complex"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(d / "y.h5"));
}

TEST(InputCli, PredictFromFastaAndAlignments) {
    const test::TempDir d;
    RunResult r = run(kBin + " predict --fasta " + kReal + "/short.fasta --msa " + kOf + "uniref90_hits.sto --msa " +
                      kOf + "mgnify_hits.sto --seed 3 --out-dir " + d.str() + kSmallModel);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(fs::exists(d / "model_3_ptm_unrelaxed.pdb"));
    EXPECT_NE(r.out.find("N=73"), std::string::npos) << r.out;
}

// Two models from one FASTA job: the alignments are read once, each model's features use AlphaFold's per-model
// seed (model index + seed x models), and the ranking covers both.
TEST(InputCli, PredictSeveralModelsFromFastaUsesPerModelSeeds) {
    const test::TempDir d;
    const std::string params = " --params " + kSmall + "/params.npz";
    RunResult r = run(kBin + " predict --fasta " + kReal + "/short.fasta --msa " + kOf + "uniref90_hits.sto --seed 3" +
                      params + params +
                      " --model-name model_3_ptm,model_4_ptm --num-recycle 0 "
                      "--structure-module-layers 2 --threads 1 --out-dir " +
                      d.str());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("features for model_3_ptm: transforms"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("seed 6 ("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("seed 7 ("), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("uniref90_hits.sto: "), r.out.rfind("uniref90_hits.sto: ")) << "alignments read twice\n"
                                                                                     << r.out;
    EXPECT_TRUE(fs::exists(d / "ranked_1.pdb"));
}

TEST(InputCli, FeaturesPklConvertsAndPredicts) {
    const std::string pkl = std::string(AXFOLD_SHARED_REALDATA_DIR) + "/alphafold_feature_dict.pickle";
    if (run("/usr/bin/python3 -c 'import numpy, h5py'").rc != 0)
        GTEST_SKIP() << "/usr/bin/python3 lacks numpy/h5py (apt-get install python3-numpy python3-h5py)";
    if (!fs::exists(pkl)) GTEST_SKIP() << pkl << " not present";
    const test::TempDir d;
    const std::string h5 = (d / "features.h5").string();
    RunResult r = run(std::string(AXFOLD_SOURCE_DIR) + "/scripts/features_pkl_to_h5.py " + pkl + " " + h5);
    ASSERT_EQ(r.rc, 0) << r.out;
    // Same keys, dtypes and values as the golden raw_features.h5 (copied into tests/data/realdata).
    const pipeline::RawFeatures a = pipeline::read_raw_features_h5(h5),
                                b = pipeline::read_raw_features_h5(kReal + "/alphafold_raw_features.h5");
    ASSERT_EQ(a.arrays.size(), b.arrays.size());
    for (const auto& [k, t] : b.arrays) {
        ASSERT_TRUE(a.has(k)) << k;
        ASSERT_EQ(a.at(k).shape(), t.shape()) << k;
        ASSERT_EQ(a.at(k).dtype(), t.dtype()) << k;
        EXPECT_EQ(std::memcmp(a.at(k).raw(), t.raw(), t.numel() * dtype_size(t.dtype())), 0) << k;
    }
    EXPECT_EQ(a.strings.at("template_sequence"), b.strings.at("template_sequence"));
    r = run(kBin + " predict --features " + h5 + " --out-dir " + (d / "out").string() + kSmallModel);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(fs::exists(d / "out" / "model_3_ptm_unrelaxed.pdb"));
    // Bad input to the converter: a missing file and a non-pickle.
    r = run(std::string(AXFOLD_SOURCE_DIR) + "/scripts/features_pkl_to_h5.py " + (d / "none.pkl").string() + " " + h5);
    EXPECT_EQ(r.rc, 1);
    EXPECT_NE(r.out.find("none.pkl"), std::string::npos) << r.out;
}
