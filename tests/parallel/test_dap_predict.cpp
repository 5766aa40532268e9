// `axfold predict` under mpiexec -n 2 and -n 3 writes the same structures as on one rank: the final atom
// positions within 1e-3 A (HDF5 outputs) and in the PDB file, rank 0 alone writes, and every golden
// full-model tolerance is met by the multi-rank outputs; and `axfold train` on two ranks (DAP, data parallel)
// logs what one rank logs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "golden_util.h"
#include "io/hdf5_file.h"
#include "test_util.h"

using namespace axfold;
namespace fs = std::filesystem;

namespace {

const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

int run(const std::string& cmd) {
    std::printf("$ %s\n", cmd.c_str());
    std::fflush(stdout);
    int rc = std::system(cmd.c_str());
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

std::string predict_args(const fs::path& out, int layers) {
    fs::create_directories(out);
    return " predict --features " + kSmall + "/features.h5 --params " + kSmall +
           "/params.npz --model-name model_3_ptm --threads 1 --save-outputs --overwrite --structure-module-layers " +
           std::to_string(layers) + " --out-dir " + out.string() + " > " + (out / "log.txt").string() + " 2>&1";
}

// The log a run wrote into `dir` (its directory is removed at the end of the test, so a failure prints it).
std::string log_of(const fs::path& dir) {
    std::ifstream in(dir / "log.txt");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::vector<double> pdb_coords(const fs::path& pdb) {
    std::ifstream in(pdb);
    std::vector<double> xyz;
    for (std::string line; std::getline(in, line);)
        if (line.rfind("ATOM", 0) == 0)
            for (int c : {30, 38, 46}) xyz.push_back(std::stod(line.substr(c, 8)));
    return xyz;
}

double tol_for(const std::string& key, bool* absolute) {
    const std::string name = key.substr(key.rfind('/') + 1);
    *absolute = true;
    if (name.find("final_atom_positions") != std::string::npos || name.find("atom14_positions") != std::string::npos)
        return 1e-2;
    if (name == "plddt") return 1e-2;
    if (name == "ptm") return 1e-4;
    *absolute = false;
    return 1e-3;
}

}  // namespace

TEST(DapPredict, TwoAndThreeRanksWriteTheSameStructures) {
    io::Hdf5File golden(kSmall + "/outputs.h5");
    const int layers = static_cast<int>(golden.shape("structure_module/traj")[0]);
    const test::TempDir root;
    ASSERT_EQ(run(std::string(AXFOLD_EXE) + predict_args(root / "np1", layers)), 0) << log_of(root / "np1");
    io::Hdf5File one((root / "np1" / "outputs_model_3_ptm.h5").string());
    const Tensor x1 = one.read_f32("final_atom_positions");
    const std::vector<double> pdb1 = pdb_coords(root / "np1" / "model_3_ptm_unrelaxed.pdb");
    for (int np : {2, 3}) {
        const fs::path dir = root / ("np" + std::to_string(np));
        const std::string cmd = std::string(AXFOLD_MPIEXEC) + " -n " + std::to_string(np) +
                                " --oversubscribe --allow-run-as-root " + AXFOLD_EXE + predict_args(dir, layers);
        ASSERT_EQ(run(cmd), 0) << (dir / "log.txt") << ":\n" << log_of(dir);
        io::Hdf5File many((dir / "outputs_model_3_ptm.h5").string());
        auto res = test::compare(test::to_f64(many.read_f32("final_atom_positions")), test::to_f64(x1), 0, 0,
                                 "final_atom_positions", 0);
        std::printf("%d ranks vs 1: final_atom_positions max abs %.3e A\n", np, res.max_abs);
        EXPECT_LE(res.max_abs, 1e-3) << np << " ranks";
        const std::vector<double> pdb = pdb_coords(dir / "model_3_ptm_unrelaxed.pdb");
        ASSERT_EQ(pdb.size(), pdb1.size());
        double worst = 0;
        for (size_t i = 0; i < pdb.size(); ++i) worst = std::max(worst, std::fabs(pdb[i] - pdb1[i]));
        EXPECT_LE(worst, 1e-3 + 1e-6) << np << " ranks: PDB coordinates (3 decimals)";
        int compared = 0;
        for (const std::string& key : golden.list("/", true)) {
            Tensor g = golden.read_f32(key);
            Tensor o = many.read_f32(key);
            ASSERT_EQ(o.shape(), g.shape()) << key;
            auto r = test::compare(test::to_f64(o), test::to_f64(g), 0, 0, key, 0);
            bool absolute = false;
            const double t = tol_for(key, &absolute);
            EXPECT_LE(absolute ? r.max_abs : r.rel(), t) << np << " ranks, golden " << key;
            ++compared;
        }
        EXPECT_GT(compared, 40);
    }
}

// `axfold train` under mpiexec -n 2: DAP over both ranks (--dap 2, dropout on: the shards draw one rank's
// masks), and two data-parallel replicas on the same example (--dap 1 --no-dropout; their average is that
// example's gradient, a sum would double the logged norm), log the same losses and gradient norms as one rank,
// and write one checkpoint; so does DAP with the model on an (emulated) device.
TEST(DapTrain, TwoRanksTrainAsOne) {
    const test::TempDir root;
    auto train = [&](const fs::path& out, const std::string& extra) {
        fs::create_directories(out);
        return std::string(" train --params ") + kSmall + "/params.npz --model-name model_3_ptm --threads 1 " +
               "--structure-module-layers 2 --warmup-steps 0 --learning-rate 3e-4 --steps 2 --out-dir " + out.string() +
               " " + extra + " > " + (out / "log.txt").string() + " 2>&1";
    };
    auto read_log = [](const fs::path& dir) {
        std::ifstream in(dir / "training_log.jsonl");
        std::vector<std::pair<double, double>> v;  // loss, grad_norm
        for (std::string line; std::getline(in, line);)
            v.emplace_back(std::stod(line.substr(line.find("\"loss\": ") + 8)),
                           std::stod(line.substr(line.find("\"grad_norm\": ") + 13)));
        return v;
    };
    const std::string ex = kSmall + "/loss_cases.h5";
    ASSERT_EQ(run(std::string(AXFOLD_EXE) + train(root / "np1", "--examples " + ex)), 0) << log_of(root / "np1");
    const auto one = read_log(root / "np1");
    ASSERT_EQ(run(std::string(AXFOLD_EXE) + train(root / "np1_nodrop", "--no-dropout --examples " + ex)), 0)
        << log_of(root / "np1_nodrop");
    const auto one_nodrop = read_log(root / "np1_nodrop");
    ASSERT_EQ(one_nodrop.size(), 2u);
    EXPECT_NE(one_nodrop[1].first, one[1].first);  // dropout moves the loss
    ASSERT_EQ(one.size(), 2u);
    std::vector<std::pair<std::string, std::string>> runs = {
        {"dap2", "--dap 2 --examples " + ex}, {"dp2", "--dap 1 --no-dropout --examples " + ex + " " + ex}};
    // The same DAP run with the model on an emulated device (kernels/device.h; MPI stands in for NCCL there): the
    // DAP stacks' device shards, the gradient's broadcast from device buffers.
    if (!cuda_available()) runs.push_back({"dap2_device", "--dap 2 --device cuda --examples " + ex});
    for (const auto& [name, extra] : runs) {
        const fs::path dir = root / name;
        const std::string cmd = std::string(name == "dap2_device" ? "AXFOLD_EMULATE_DEVICE=1 " : "") +
                                AXFOLD_MPIEXEC + " -n 2 --oversubscribe --allow-run-as-root " + AXFOLD_EXE +
                                train(dir, extra);
        ASSERT_EQ(run(cmd), 0) << (dir / "log.txt") << ":\n" << log_of(dir);
        const auto many = read_log(dir);
        const auto& ref = name == "dp2" ? one_nodrop : one;  // replicas draw different dropout masks
        ASSERT_EQ(many.size(), ref.size()) << name;
        for (size_t s = 0; s < ref.size(); ++s) {
            EXPECT_NEAR(many[s].first, ref[s].first, 1e-4 * std::fabs(ref[s].first)) << name << " update " << s + 1;
            EXPECT_NEAR(many[s].second, ref[s].second, 1e-4 * ref[s].second) << name << " update " << s + 1;
        }
        EXPECT_TRUE(fs::exists(dir / "checkpoint-000002" / "params_model_3_ptm.npz")) << name;
    }
}

// A complex (AlphaFold-Multimer, multimer_small): `axfold predict` on 2 ranks writes the structure one rank
// writes (the final atoms within 1e-3 A) and the same ranking confidence.
TEST(DapPredict, MultimerOnTwoRanks) {
    const std::string mm = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small";
    const test::TempDir root;
    auto args = [&](const fs::path& out) {
        fs::create_directories(out);
        return " predict --features " + mm + "/features.h5 --params " + mm +
               "/params.npz --model-name model_1_multimer_v3 --threads 1 --save-outputs --overwrite "
               "--structure-module-layers 2 --out-dir " +
               out.string() + " > " + (out / "log.txt").string() + " 2>&1";
    };
    ASSERT_EQ(run(std::string(AXFOLD_EXE) + args(root / "np1")), 0) << log_of(root / "np1");
    const std::string cmd =
        std::string(AXFOLD_MPIEXEC) + " -n 2 --oversubscribe --allow-run-as-root " + AXFOLD_EXE + args(root / "np2");
    ASSERT_EQ(run(cmd), 0) << log_of(root / "np2");
    io::Hdf5File one((root / "np1" / "outputs_model_1_multimer_v3_pred_0.h5").string()),
        two((root / "np2" / "outputs_model_1_multimer_v3_pred_0.h5").string());
    for (const char* k : {"final_atom_positions", "weighted_ptm_score", "iptm"}) {
        const auto res = test::compare(test::to_f64(two.read_f32(k)), test::to_f64(one.read_f32(k)), 1e-3, 0, k, 3);
        EXPECT_EQ(res.bad, 0) << k;
    }
}

// A batch job (--input) under the launcher: every target runs over both ranks, rank 0 writes each target's files,
// and the structures equal a one-rank job's.
TEST(DapPredict, BatchOnTwoRanks) {
    const test::TempDir root;
    std::ofstream(root / "targets.fasta") << ">a\nMKVLAAGIVALLLAAGCS\n>b\nMSTNPKPQRKTKRNTNRR\n>c\nMKKLLPTAAAGLLLLAAQ\n";
    auto args = [&](const fs::path& out) {
        return " predict --input " + (root / "targets.fasta").string() + " --params " + kSmall +
               "/params.npz --model-name model_3_ptm --structure-module-layers 2 --num-recycle 0 --max-msa-clusters 8 "
               "--max-extra-msa 8 --threads 1 --quiet --out-dir " +
               out.string() + " > " + (root / (out.filename().string() + ".log")).string() + " 2>&1";
    };
    ASSERT_EQ(run(std::string(AXFOLD_EXE) + args(root / "np1")), 0);
    ASSERT_EQ(run(std::string(AXFOLD_MPIEXEC) + " -n 2 --oversubscribe --allow-run-as-root " + AXFOLD_EXE +
                  args(root / "np2")),
              0)
        << test::read_text((root / "np2.log").string());
    for (const char* t : {"a", "b", "c"}) {
        ASSERT_TRUE(fs::exists(root / "np2" / t / "done")) << t;
        auto ca = [](const fs::path& pdb) {
            std::vector<double> xyz;
            std::istringstream lines(test::read_text(pdb.string()));
            for (std::string l; std::getline(lines, l);)
                if (l.rfind("ATOM", 0) == 0 && l.substr(12, 4) == " CA ")
                    for (int k = 0; k < 3; ++k) xyz.push_back(std::stod(l.substr(30 + 8 * k, 8)));
            return xyz;
        };
        const auto one = ca(root / "np1" / t / "ranked_0.pdb"), two = ca(root / "np2" / t / "ranked_0.pdb");
        ASSERT_EQ(one.size(), two.size());
        EXPECT_EQ(test::compare(two, one, 2e-3, 0, t, 3).bad, 0) << t;  // PDB coordinates have 3 decimals
    }
}
