// The `axfold` command end to end: predict on the small golden set writes every file, the files parse
// back to the prediction, existing results are protected, bad inputs fail with a clear message; and
// init-params writes parameters that predict accepts.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "golden_util.h"
#include "io/hdf5_file.h"
#include "io/params.h"
#include "kernels/device.h"
#include "template_model_util.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace axfold;

namespace {

const std::string kBin = AXFOLD_BINARY;
const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";

struct RunResult {
    int rc;
    std::string out;
};

RunResult run(const std::string& args) {
    std::string cmd = kBin + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    int st = p ? pclose(p) : -1;
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// `axfold train` on the small golden set's parameters and training examples, with the settings the tests share.
std::string train_small() {
    return "train --params " + kSmall + "/params.npz --model-name model_3_ptm --examples " + kSmall +
           "/loss_cases.h5 --structure-module-layers 2 --threads 1 --warmup-steps 0 --learning-rate 3e-4 ";
}

// Runs `axfold args` and kills it with SIGKILL as soon as `path` exists (within 120 s); its wait status.
int kill_when_exists(const std::string& args, const fs::path& path) {
    const pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", ("exec " + kBin + " " + args + " > /dev/null 2>&1").c_str(),
              static_cast<char*>(nullptr));
        _exit(127);
    }
    EXPECT_GE(pid, 0);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!fs::exists(path) && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

}  // namespace

TEST(Cli, PredictWritesEveryOutputAndTheyParseBack) {
    const test::TempDir tmp;
    const fs::path out = tmp / "predict";  // made by predict
    const std::string args = "predict --features " + kSmall + "/features.h5 --params " + kSmall +
                             "/params.npz --model-name model_3_ptm --structure-module-layers 2 --threads 1 --out-dir " +
                             out.string();
    RunResult r = run(args + " --save-outputs");
    ASSERT_EQ(r.rc, 0) << r.out;
    for (const char* f : {"model_3_ptm_unrelaxed.pdb", "model_3_ptm_unrelaxed.cif", "confidence_model_3_ptm.json",
                          "pae_model_3_ptm.json", "ranking_debug.json", "timings.json", "outputs_model_3_ptm.h5"})
        EXPECT_TRUE(fs::exists(out / f)) << f;
    for (auto& e : fs::directory_iterator(out))
        EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "temporary file left: " << e.path();

    // The saved outputs equal the golden outputs (same tolerance as the full-model golden test).
    io::Hdf5File ours((out / "outputs_model_3_ptm.h5").string()), golden(kSmall + "/outputs.h5");
    auto pos = test::to_f64(ours.read_f32("final_atom_positions"));
    auto gpos = test::to_f64(golden.read_f32("final_atom_positions"));
    auto res = test::compare(pos, gpos, 1e-2, 0, "final_atom_positions");
    EXPECT_EQ(res.bad, 0);

    // PDB ATOM records parse back to the saved atom37 positions and carry pLDDT as B-factor.
    Tensor mask = ours.read_f32("final_atom_mask"), plddt = ours.read_f32("plddt");
    std::istringstream pdb(test::read_text((out / "model_3_ptm_unrelaxed.pdb").string()));
    std::string line;
    std::vector<double> xyz, bf;
    while (std::getline(pdb, line))
        if (line.rfind("ATOM", 0) == 0) {
            for (int c = 0; c < 3; ++c) xyz.push_back(std::stod(line.substr(30 + 8 * c, 8)));
            bf.push_back(std::stod(line.substr(60, 6)));
        }
    std::vector<double> expect_xyz, expect_bf;
    const int64_t N = mask.size(0);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t a = 0; a < 37; ++a)
            if (mask.at({i, a}) > 0.5f) {
                for (int c = 0; c < 3; ++c) expect_xyz.push_back(pos[(i * 37 + a) * 3 + c]);
                expect_bf.push_back(plddt.f32()[i]);
            }
    ASSERT_EQ(xyz.size(), expect_xyz.size());
    EXPECT_EQ(test::compare(xyz, expect_xyz, 6e-4, 0, "pdb xyz").bad, 0);
    EXPECT_EQ(test::compare(bf, expect_bf, 6e-3, 0, "pdb b-factor").bad, 0);

    std::string pae = test::read_text((out / "pae_model_3_ptm.json").string());
    EXPECT_NE(pae.find("\"max_predicted_aligned_error\":31.75"), std::string::npos) << pae.substr(0, 200);
    EXPECT_NE(test::read_text((out / "ranking_debug.json").string()).find("\"plddts\""), std::string::npos);
    EXPECT_NE(test::read_text((out / "model_3_ptm_unrelaxed.cif").string()).find("_ma_qa_metric_local"),
              std::string::npos);

    // Existing results are not overwritten without --overwrite.
    RunResult again = run(args);
    EXPECT_NE(again.rc, 0);
    EXPECT_NE(again.out.find("--overwrite"), std::string::npos) << again.out;
    EXPECT_EQ(run(args + " --overwrite").rc, 0);
}

TEST(Cli, BadInputsAreClearErrors) {
    const test::TempDir tmp;
    const fs::path out = tmp / "bad";  // absent for the first two runs
    // Parameters of another model.
    RunResult r = run("predict --features " + kSmall + "/features.h5 --params " + kSmall +
                      "/params.npz --model-name model_4 --out-dir " + out.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("params.npz"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("predicted-aligned-error"), std::string::npos) << r.out;
    // Features that are not features.
    r = run("predict --features " + kSmall + "/params.h5 --params " + kSmall +
            "/params.npz --model-name model_3_ptm --out-dir " + out.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("params.h5"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("features"), std::string::npos) << r.out;
    // A feature with a wrong shape.
    fs::create_directories(out);
    {
        io::Hdf5File f(kSmall + "/features.h5");
        io::Hdf5Writer w((out / "bad.h5").string());
        for (const std::string& k : f.list("/", false)) {
            Tensor t = f.read(k);
            if (k == "msa_feat") t = t.slice(3, 0, 48).contiguous();
            w.write(k, t);
        }
        w.commit();
    }
    r = run("predict --features " + (out / "bad.h5").string() + " --params " + kSmall +
            "/params.npz --model-name model_3_ptm --out-dir " + out.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("msa_feat"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("49"), std::string::npos) << r.out;
    // And one missing a feature (the file with only the wrong shape fixed would report extra_msa).
    {
        io::Hdf5File f(kSmall + "/features.h5");
        io::Hdf5Writer w((out / "missing.h5").string());
        for (const std::string& k : f.list("/", false))
            if (k != "extra_msa") w.write(k, f.read(k));
        w.commit();
    }
    r = run("predict --features " + (out / "missing.h5").string() + " --params " + kSmall +
            "/params.npz --model-name model_3_ptm --out-dir " + out.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("missing feature 'extra_msa'"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out / "model_3_ptm_unrelaxed.pdb"));
}

// Values a feature cannot hold are refused before the model runs, naming the file and the feature: a mask of
// 3e38 (before: 'quaternion 0 is zero or not finite' from the structure module) and a residue number past PDB's
// resSeq (before: an error when writing the PDB, after the run).
TEST(Cli, FeatureValuesOutOfRangeAreRefusedBeforeTheRun) {
    const test::TempDir tmp;
    auto features_with = [&](const std::string& name, const std::string& key, double value) {
        const std::string path = (tmp / name).string();
        io::Hdf5File f(kSmall + "/features.h5");
        io::Hdf5Writer w(path);
        for (const std::string& k : f.list("/", false)) {
            Tensor t = f.read(k);
            if (k == key) {
                t = host_cast(t, DType::F64);
                t.data<double>()[t.numel() - 1] = value;
                t = host_cast(t, f.read(k).dtype());
            }
            w.write(k, t);
        }
        w.commit();
        return path;
    };
    struct Case {
        std::string key;
        double value;
        std::vector<std::string> needles;
    };
    for (const Case& c : {Case{"seq_mask", 3e38, {"seq_mask", "3e+38", "expected 0..1"}},
                          Case{"residue_index", 2147483647.0, {"residue_index", "resSeq"}}}) {
        const std::string path = features_with(c.key + ".h5", c.key, c.value);
        RunResult r = run("predict --features " + path + " --params " + kSmall +
                          "/params.npz --model-name model_3_ptm --structure-module-layers 2 --out-dir " +
                          (tmp / "out").string() + " --overwrite");
        EXPECT_NE(r.rc, 0);
        EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
        for (const std::string& n : c.needles) EXPECT_NE(r.out.find(n), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("recycle"), std::string::npos) << "the model ran: " << r.out;
    }
}

// --precision bf16 runs (emulated on the CPU) and stays within a pLDDT point of fp32; --device names what is
// missing when CUDA is not there, and unknown devices and precisions are rejected before any work.
TEST(Cli, PrecisionAndDeviceOptions) {
    const test::TempDir out;
    const std::string args = "predict --features " + kSmall + "/features.h5 --params " + kSmall +
                             "/params.npz --model-name model_3_ptm --threads 1 --overwrite --save-outputs --out-dir ";
    ASSERT_EQ(run(args + (out / "fp32").string()).rc, 0);
    RunResult r = run(args + (out / "bf16").string() + " --precision bf16");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("bf16 GEMMs"), std::string::npos) << r.out;
    io::Hdf5File a((out / "fp32" / "outputs_model_3_ptm.h5").string()),
        b((out / "bf16" / "outputs_model_3_ptm.h5").string());
    auto d = test::compare(test::to_f64(b.read_f32("plddt")), test::to_f64(a.read_f32("plddt")), 1.0, 0, "plddt");
    EXPECT_EQ(d.bad, 0);
    EXPECT_GT(d.max_abs, 0.0) << "bf16 changed nothing";

    r = run(args + (out / "x").string() + " --precision fp16");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("expected fp32, tf32 or bf16"), std::string::npos) << r.out;
    r = run(args + (out / "x").string() + " --device tpu");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("--device tpu: expected cpu or cuda"), std::string::npos) << r.out;
    if (!cuda_available()) {
        r = run(args + (out / "x").string() + " --device cuda");
        EXPECT_NE(r.rc, 0);
        EXPECT_NE(r.out.find("--device cuda: "), std::string::npos) << r.out;
        EXPECT_FALSE(fs::exists(out / "x" / "model_3_ptm_unrelaxed.pdb"));
    }
}

TEST(Cli, InitParamsWritesAf2LayoutThatPredictAccepts) {
    const test::TempDir out;
    const std::string params = (out / "p.npz").string();
    RunResult r =
        run("init-params --model-name model_5_ptm --out " + params + " --evoformer-blocks 1 --extra-msa-blocks 1");
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run("predict --features " + std::string(AXFOLD_TEST_DATA_DIR) + "/../../data/example/features.h5 --params " +
            params + " --model-name model_5_ptm --num-recycle 0 --structure-module-layers 2 --out-dir " +
            (out / "o").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(fs::exists(out / "o" / "model_5_ptm_unrelaxed.pdb"));
}

// Several models in one job, as AlphaFold runs its five: each model's files, then ranked_<i>.pdb/.cif by mean
// pLDDT (best first) and ranking_debug.json over all of them. --params as AlphaFold's params directory or one
// file per model give the same result; mismatched lists fail clearly.
TEST(Cli, PredictRanksSeveralModels) {
    const test::TempDir dir;
    fs::create_directories(dir / "params");
    fs::copy_file(kSmall + "/params.npz", dir / "params" / "params_model_3_ptm.npz");
    RunResult r =
        run("init-params --model-name model_4_ptm --out " + (dir / "params" / "params_model_4_ptm.npz").string() +
            " --evoformer-blocks 1 --extra-msa-blocks 1 --seed 7");
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string common = "predict --features " + kSmall + "/features.h5 --structure-module-layers 2 --threads 1";
    r = run(common + " --params " + (dir / "params").string() + " --model-name model_3_ptm,model_4_ptm --out-dir " +
            (dir / "a").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    // Each model's mean pLDDT from its summary line.
    auto mean_plddt = [&](const std::string& name) {
        const size_t at = r.out.find("axfold predict: " + name + "  ");
        EXPECT_NE(at, std::string::npos) << r.out;
        const size_t m = r.out.find("mean pLDDT ", at);
        return at == std::string::npos || m == std::string::npos ? 0.0 : std::stod(r.out.substr(m + 11));
    };
    const double p3 = mean_plddt("model_3_ptm"), p4 = mean_plddt("model_4_ptm");
    ASSERT_NE(p3, p4) << r.out;
    const std::string best = p3 > p4 ? "model_3_ptm" : "model_4_ptm", other = p3 > p4 ? "model_4_ptm" : "model_3_ptm";
    const fs::path a = dir / "a";
    for (const char* f :
         {"ranked_0.pdb", "ranked_0.cif", "ranked_1.pdb", "ranked_1.cif", "ranking_debug.json", "timings.json",
          "model_3_ptm_unrelaxed.pdb", "model_4_ptm_unrelaxed.pdb", "pae_model_3_ptm.json", "pae_model_4_ptm.json"})
        EXPECT_TRUE(fs::exists(a / f)) << f;
    EXPECT_EQ(test::read_text((a / "ranked_0.pdb").string()),
              test::read_text((a / (best + "_unrelaxed.pdb")).string()));
    EXPECT_EQ(test::read_text((a / "ranked_1.pdb").string()),
              test::read_text((a / (other + "_unrelaxed.pdb")).string()));
    const std::string ranking = test::read_text((a / "ranking_debug.json").string());
    const size_t order = ranking.find("\"order\"");
    ASSERT_NE(order, std::string::npos) << ranking;
    EXPECT_LT(ranking.find("\"" + best + "\"", order), ranking.find("\"" + other + "\"", order)) << ranking;
    const std::string timings = test::read_text((a / "timings.json").string());
    for (const char* k : {"\"predict_model_3_ptm\"", "\"predict_model_4_ptm\"", "\"ranking\""})
        EXPECT_NE(timings.find(k), std::string::npos) << k << timings;

    // One file per model, --model-name repeated: the same ranking.
    r = run(common + " --params " + (dir / "params" / "params_model_3_ptm.npz").string() + " --params " +
            (dir / "params" / "params_model_4_ptm.npz").string() +
            " --model-name model_3_ptm --model-name model_4_ptm --out-dir " + (dir / "b").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(test::read_text((dir / "b" / "ranking_debug.json").string()), ranking);

    // Mismatched lists, a model the directory lacks, a model twice.
    r = run(common + " --params " + (dir / "params" / "params_model_3_ptm.npz").string() +
            " --model-name model_3_ptm,model_4_ptm --out-dir " + (dir / "c").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("1 --params for 2 models"), std::string::npos) << r.out;
    r = run(common + " --params " + (dir / "params").string() + " --model-name model_5_ptm --out-dir " +
            (dir / "c").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("params_model_5_ptm.npz"), std::string::npos) << r.out;
    r = run(common + " --params " + (dir / "params").string() + " --model-name model_3_ptm,model_3_ptm --out-dir " +
            (dir / "c").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("model_3_ptm given twice"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "c" / "ranking_debug.json"));
}

// `axfold plan --device cuda` plans the GPU's share of a --device cuda run (no GPU needed with
// --max-memory): below the whole-process CPU plan, which also holds the features and the parameters' load.
TEST(Cli, PlanForTheGpuModel) {
    auto peak_after = [](const std::string& out, const std::string& label) {
        const size_t at = out.find(label);
        EXPECT_NE(at, std::string::npos) << out;
        return at == std::string::npos ? 0.0 : std::stod(out.substr(at + label.size()));
    };
    RunResult gpu = run("plan --n-res 3000 --device cuda --max-memory 60G");
    ASSERT_EQ(gpu.rc, 0) << gpu.out;
    RunResult cpu = run("plan --n-res 3000 --max-memory 60G");
    ASSERT_EQ(cpu.rc, 0) << cpu.out;
    const double g = peak_after(gpu.out, "predicted device peak "), c = peak_after(cpu.out, "predicted peak ");
    EXPECT_GT(g, 5.0) << gpu.out;  // GiB: MSA + pair alone are ~7 GiB at this size
    EXPECT_LT(g, c) << gpu.out << cpu.out;
    RunResult small = run("plan --n-res 3000 --device cuda --max-memory 4G");
    EXPECT_NE(small.rc, 0);
    EXPECT_NE(small.out.find("too small"), std::string::npos) << small.out;
    // Offload: parking the MSA (512 x 1024 x 256 floats = 0.5 GiB) during the extra-MSA stack lowers that stack's
    // peak by exactly its size; "auto" parks only when that lets a faster chunk size fit (here: unchunked in 11G).
    RunResult roomy = run("plan --n-res 1024 --device cuda --max-memory 80G");
    RunResult tight = run("plan --n-res 1024 --device cuda --max-memory 11G");
    RunResult forced = run("plan --n-res 1024 --device cuda --max-memory 80G --offload on");
    for (const RunResult* r : {&roomy, &tight, &forced}) ASSERT_EQ(r->rc, 0) << r->out;
    EXPECT_NE(roomy.out.find("offload             none"), std::string::npos) << roomy.out;
    EXPECT_NE(tight.out.find("the MSA parked"), std::string::npos) << tight.out;
    EXPECT_NE(tight.out.find("(unchunked)"), std::string::npos) << tight.out;
    EXPECT_NEAR(peak_after(roomy.out, "predicted device peak ") - peak_after(forced.out, "predicted device peak "), 0.5,
                0.011);
    RunResult bad = run("plan --n-res 1024 --device cuda --max-memory 80G --offload maybe");
    EXPECT_NE(bad.rc, 0);
    EXPECT_NE(bad.out.find("expected auto, on or off"), std::string::npos) << bad.out;
}

// A template model trains from the command line: model_1_ptm at tiny widths with random parameters, on the golden
// loss case with random templates added to its features; two updates move the template embedding's and the angle
// rows' parameters as well as the trunk's, and the run resumes bit for bit.
TEST(Cli, TrainsATemplateModel) {
    const test::TempDir tmp;
    std::mt19937 rng(9);
    ParamStore store;
    for (auto& [k, t] : init_model_params(ModelPreset::from_name("model_1_ptm"), test::tiny_template_model_dims(), 4))
        store.insert(k, t);
    const std::string params = (tmp / "params_model_1_ptm.npz").string(), example = (tmp / "ex.h5").string();
    store.save_npz(params);
    const io::Hdf5File cases(kSmall + "/loss_cases.h5");
    const auto base = test::read_group(cases, "features");
    const auto features = test::with_templates(base, test::random_raw_templates(3, base.at("aatype").size(1), rng));
    {
        io::Hdf5Writer w(example);
        for (const auto& [k, t] : features) w.write("features/" + k, t);
        for (const auto& [k, t] : test::read_group(cases, "batch")) w.write("batch/" + k, t);
        w.commit();
    }
    const std::string common = "train --params " + params + " --model-name model_1_ptm --examples " + example +
                               " --structure-module-layers 2 --threads 1 --warmup-steps 0 --learning-rate 1e-3 ";
    RunResult r = run(common + "--steps 2 --out-dir " + (tmp / "a").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run(common + "--steps 1 --out-dir " + (tmp / "b").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run(common + "--steps 2 --resume " + (tmp / "b" / "checkpoint-000001").string() + " --out-dir " +
            (tmp / "b").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string trained = "checkpoint-000002/params_model_1_ptm.npz";
    EXPECT_EQ(test::read_text((tmp / "a" / trained).string()), test::read_text((tmp / "b" / trained).string()));
    const ParamStore after = ParamStore::load((tmp / "a" / trained).string());
    const std::string evo = "alphafold/alphafold_iteration/evoformer/";
    for (const std::string& key : {evo + "template_embedding/single_template_embedding/embedding2d//weights",
                                   evo + "template_embedding/attention//query_w", evo + "template_projection//weights",
                                   evo + "preprocess_msa//weights"})
        EXPECT_GT(test::rel_diff(after.get(key), store.get(key)), 1e-6) << key;
}

// `plan --training`: one update's terms (training/training_plan.h; its measured agreement is in
// docs/TRAINING.md). The checkpoints are exactly blocks x (S N c_m + N^2 c_z) floats: 48 x (128 x 256 x 256 +
// 256^2 x 128) x 4 B = 3.0 GiB at crop 256, half of it per rank under DAP 2; the moving average is one parameter
// set (0.35 GiB); a budget below the peak is an error naming both.
TEST(Cli, PlanForATrainingUpdate) {
    auto value_after = [](const std::string& out, const std::string& label) {
        const size_t at = out.find(label);
        EXPECT_NE(at, std::string::npos) << out;
        return at == std::string::npos ? 0.0 : std::stod(out.substr(at + label.size()));
    };
    const RunResult r = run("plan --training --crop-size 256 --device cuda");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NEAR(value_after(r.out, "Evoformer checkpoints (blocks x inputs)"), 3.0, 0.005) << r.out;
    const double peak = value_after(r.out, "predicted device peak ");
    EXPECT_GT(peak, 5.0) << r.out;
    const RunResult bigger = run("plan --training --crop-size 384"),
                    no_ema = run("plan --training --n-res 256 --no-ema");
    ASSERT_EQ(bigger.rc, 0) << bigger.out;
    ASSERT_EQ(no_ema.rc, 0) << no_ema.out;
    EXPECT_GT(value_after(bigger.out, "predicted peak "), 1.4 * peak) << bigger.out;
    EXPECT_NEAR(peak - value_after(no_ema.out, "predicted peak "), 0.35 * 1.05, 0.02) << no_ema.out;
    // DAP over 2 ranks: each keeps half of every block's input.
    const RunResult dap = run("plan --training --crop-size 256 --dap 2");
    ASSERT_EQ(dap.rc, 0) << dap.out;
    EXPECT_NEAR(value_after(dap.out, "Evoformer checkpoints (blocks x inputs)"), 1.5, 0.005) << dap.out;
    EXPECT_LT(value_after(dap.out, "predicted peak "), peak) << dap.out;
    const RunResult tight = run("plan --training --crop-size 256 --max-memory 4G");
    EXPECT_NE(tight.rc, 0);
    EXPECT_NE(tight.out.find("more than --max-memory 4G"), std::string::npos) << tight.out;
    const RunResult loose = run("plan --crop-size 256");
    EXPECT_NE(loose.rc, 0);
    EXPECT_NE(loose.out.find("--crop-size goes with --training"), std::string::npos) << loose.out;
}

// `plan --longest`: the longest protein (or training crop) whose plan fits the budget: one residue more does not.
TEST(Cli, PlanFindsTheLongestThatFits) {
    for (const char* settings :
         {"--max-memory 22G --threads 1", "--device cuda --max-memory 40G", "--training --max-memory 8G"}) {
        const RunResult r = run(std::string("plan --longest ") + settings);
        ASSERT_EQ(r.rc, 0) << r.out;
        const size_t at = r.out.find("residues");
        ASSERT_NE(at, std::string::npos) << r.out;
        const long n = std::stol(r.out.substr(r.out.rfind(' ', at - 2) + 1));
        EXPECT_GT(n, 200) << r.out;
        const std::string size = std::strstr(settings, "--training") ? " --crop-size " : " --n-res ";
        EXPECT_EQ(run("plan" + size + std::to_string(n) + " " + settings).rc, 0) << settings;
        EXPECT_NE(run("plan" + size + std::to_string(n + 1) + " " + settings).rc, 0) << settings;
    }
    EXPECT_NE(run("plan --longest").out.find("give the budget with --max-memory"), std::string::npos);
}

// `--precision bf16` stores the trunk's MSA and pair in bfloat16: at one chunk size the planned trunk peak
// drops by exactly half the larger stack's activations (the extra-MSA stack here: 5120 x 3000 x 64 and
// 3000 x 3000 x 128 elements, 2 bytes each saved = 3.977 GiB), on the GPU and on the CPU.
TEST(Cli, PlanWithBf16ActivationsHalvesTheTrunkActivations) {
    auto gib_after = [](const std::string& out, const std::string& label) {
        const size_t at = out.find(label);
        EXPECT_NE(at, std::string::npos) << out;
        return at == std::string::npos ? 0.0 : std::stod(out.substr(at + label.size()));
    };
    const double saved = (5120.0 * 3000 * 64 + 3000.0 * 3000 * 128) * 2 / (1u << 30);
    for (const std::string device : {"cuda", "cpu"}) {
        const std::string base =
            "plan --n-res 3000 --n-seq 512 --n-extra 5120 --chunk-size 128 --threads 1 "
            "--max-memory 60G --device " +
            device;
        RunResult f = run(base), s = run(base + " --activations bf16");
        ASSERT_EQ(f.rc, 0) << f.out;
        ASSERT_EQ(s.rc, 0) << s.out;
        EXPECT_NE(s.out.find("bfloat16 activations"), std::string::npos) << s.out;
        const std::string label = " trunk ";
        EXPECT_NEAR(gib_after(f.out, label) - gib_after(s.out, label), saved, 0.011) << f.out << s.out;
        // --precision bf16 stores the same as --activations bf16, and --activations fp32 undoes its storage. On
        // a GPU its GEMMs also hold bfloat16 operand copies (the same with either storage); the CPU's emulation
        // rounds small blocks in place.
        RunResult b = run(base + " --precision bf16"), u = run(base + " --precision bf16 --activations fp32");
        ASSERT_EQ(b.rc, 0) << b.out;
        ASSERT_EQ(u.rc, 0) << u.out;
        EXPECT_NE(b.out.find("bfloat16 activations"), std::string::npos) << b.out;
        const double copies = gib_after(b.out, label) - gib_after(s.out, label);
        if (device == "cuda") {
            EXPECT_GT(copies, 0.1) << b.out << s.out;
            EXPECT_NEAR(gib_after(u.out, label) - gib_after(f.out, label), copies, 0.011) << u.out << f.out;
        } else {
            EXPECT_EQ(copies, 0.0) << b.out << s.out;
            EXPECT_EQ(gib_after(u.out, label), gib_after(f.out, label)) << u.out;
        }
    }
    // --save-outputs keeps every iteration's pair (3 more at 4 iterations) and the heads' [N, N, 64] tensors.
    RunResult lean = run("plan --n-res 1000 --threads 1"), kept = run("plan --n-res 1000 --threads 1 --save-outputs");
    ASSERT_EQ(lean.rc, 0) << lean.out;
    ASSERT_EQ(kept.rc, 0) << kept.out;
    EXPECT_GE(gib_after(kept.out, "predicted peak ") - gib_after(lean.out, "predicted peak "),
              3 * 1000.0 * 1000 * 128 * 4 / (1u << 30) - 0.011)  // printed to 0.01 GiB
        << lean.out << kept.out;
    // Template models plan their template embedding as a phase of its own: at least the four templates'
    // [N, N, 64] activations beside the float32 pair, blocks that shrink with the chunk size; model_3 has none.
    for (const std::string device : {"cpu", "cuda"}) {
        const std::string base = "plan --n-res 1000 --threads 1 --max-memory 60G --device " + device;
        RunResult t = run(base + " --model-name model_1_ptm"),
                  tc = run(base + " --model-name model_1_ptm --chunk-size 32");
        RunResult none = run(base + " --model-name model_3_ptm");
        ASSERT_EQ(t.rc, 0) << t.out;
        ASSERT_EQ(tc.rc, 0) << tc.out;
        ASSERT_EQ(none.rc, 0) << none.out;
        EXPECT_EQ(none.out.find("templates "), std::string::npos) << none.out;
        const double act = 4 * 1000.0 * 1000 * 64 * 4 / (1u << 30), pair = 1000.0 * 1000 * 128 * 4 / (1u << 30);
        EXPECT_GT(gib_after(t.out, "templates "), act + pair) << t.out;
        EXPECT_GT(gib_after(tc.out, "templates "), act + pair) << tc.out;
        EXPECT_LT(gib_after(tc.out, "templates "), gib_after(t.out, "templates ")) << t.out << tc.out;
    }
    // A budget the trunk's chunk size meets but the template phase does not: a smaller chunk size is chosen.
    RunResult fit =
        run("plan --n-res 2048 --n-seq 508 --n-extra 5120 --threads 1 --model-name model_1_ptm "
            "--activations bf16 --max-memory 10.25G");
    ASSERT_EQ(fit.rc, 0) << fit.out;
    EXPECT_NE(fit.out.find("chunk size          64"), std::string::npos) << fit.out;
    EXPECT_LE(gib_after(fit.out, "predicted peak "), 10.25) << fit.out;
    RunResult bad = run("plan --n-res 100 --precision fp16");
    EXPECT_NE(bad.rc, 0);
    EXPECT_NE(bad.out.find("expected fp32, tf32 or bf16"), std::string::npos) << bad.out;
    RunResult bad_act = run("plan --n-res 100 --activations fp16");
    EXPECT_NE(bad_act.rc, 0);
    EXPECT_NE(bad_act.out.find("--activations fp16: expected fp32 or bf16"), std::string::npos) << bad_act.out;
}

// `axfold train --device cuda` without a GPU, under device emulation (AXFOLD_EMULATE_DEVICE=1, kernels/device.h):
// the parameters, their moving average and Adam's state live on the device and give the host run's checkpoints
// bit for bit (the same CPU kernels: what differs is only where the tensors live), also across a resume; and
// --precision bf16 (bfloat16 GEMM operands) trains within 1 % of the float32 loss.
TEST(Cli, TrainsOnTheDeviceAsOnTheHost) {
    if (cuda_available()) GTEST_SKIP() << "a GPU is present: the GPU checks compare it with the host";
    const test::TempDir tmp;
    const fs::path host = tmp / "host", dev = tmp / "dev", bf16 = tmp / "bf16";
    const std::string common = train_small();
    RunResult r = run(common + "--steps 2 --out-dir " + host.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run(common + "--steps 1 --device cuda --out-dir " + dev.string());
    EXPECT_NE(r.rc, 0);  // no GPU and no emulation
    EXPECT_TRUE(r.out.find("--device cuda: no CUDA device is visible") != std::string::npos ||
                r.out.find("--device cuda: this axfold was built without CUDA") != std::string::npos)
        << r.out;
    setenv("AXFOLD_EMULATE_DEVICE", "1", 1);
    r = run(common + "--steps 1 --device cuda --out-dir " + dev.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("fp32 GEMMs on cuda"), std::string::npos) << r.out;
    r = run(common + "--steps 2 --device cuda --resume " + (dev / "checkpoint-000001").string() + " --out-dir " +
            dev.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    const RunResult rb = run(common + "--steps 1 --device cuda --precision bf16 --out-dir " + bf16.string());
    unsetenv("AXFOLD_EMULATE_DEVICE");
    ASSERT_EQ(rb.rc, 0) << rb.out;
    for (const char* f : {"params_model_3_ptm.npz", "params_model_3_ptm_ema.npz"})
        EXPECT_EQ(test::read_text((host / "checkpoint-000002" / f).string()),
                  test::read_text((dev / "checkpoint-000002" / f).string()))
            << f;
    auto losses = [](const fs::path& log) {
        std::vector<double> v;
        std::istringstream in(test::read_text(log.string()));
        for (std::string line; std::getline(in, line);)
            v.push_back(std::stod(line.substr(line.find("\"loss\": ") + 8)));
        return v;
    };
    const std::vector<double> lh = losses(host / "training_log.jsonl"), lb = losses(bf16 / "training_log.jsonl");
    EXPECT_EQ(losses(dev / "training_log.jsonl"), lh);
    ASSERT_EQ(lb.size(), 1u);
    EXPECT_NEAR(lb[0], lh[0], 0.01 * lh[0]);
    EXPECT_NE(lb[0], lh[0]) << "bf16 changed nothing";
}

// `axfold train`: two updates in one run equal one update, a resume from its checkpoint and a second update
// (bit for bit: the parameters and the logged losses), predict reads the trained parameters, and bad
// training input is a clear error.
TEST(Cli, TrainResumesExactlyAndPredictReadsItsCheckpoint) {
    const test::TempDir tmp;
    const fs::path a = tmp / "train_a", b = tmp / "train_b";  // made by train
    const std::string common = train_small();
    RunResult r = run(common + "--steps 2 --out-dir " + a.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    ASSERT_TRUE(fs::exists(a / "checkpoint-000002" / "params_model_3_ptm.npz")) << r.out;
    EXPECT_FALSE(fs::exists(a / "checkpoint-000001"));  // --save-every 0: the last update only
    r = run(common + "--steps 1 --save-gradients --out-dir " + b.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    {  // The update's gradient and losses, as its log line reports them.
        const io::Hdf5File g((b / "gradients-000001.h5").string());
        double sq = 0;
        for (const std::string& k : g.list("gradients"))
            for (double x : host_float64(g.read(k))) sq += x * x;
        const std::string line = test::read_text((b / "training_log.jsonl").string());
        auto logged = [&](const char* key) { return std::stod(line.substr(line.find(key) + std::strlen(key))); };
        EXPECT_NEAR(std::sqrt(sq), logged("\"grad_norm\": "), 1e-9 * std::sqrt(sq));
        EXPECT_NEAR(host_float64(g.read("loss/total"))[0], logged("\"loss\": "), 1e-9);
        EXPECT_GT(g.list("gradients").size(), 200u);
    }
    r = run(common + "--steps 2 --resume " + (b / "checkpoint-000001").string() + " --out-dir " + b.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(test::read_text((a / "checkpoint-000002" / "params_model_3_ptm.npz").string()),
              test::read_text((b / "checkpoint-000002" / "params_model_3_ptm.npz").string()));
    // The moving average resumes exactly too, and lags the parameters.
    const std::string ema_a = test::read_text((a / "checkpoint-000002" / "params_model_3_ptm_ema.npz").string());
    EXPECT_FALSE(ema_a.empty());
    EXPECT_EQ(ema_a, test::read_text((b / "checkpoint-000002" / "params_model_3_ptm_ema.npz").string()));
    EXPECT_NE(ema_a, test::read_text((a / "checkpoint-000002" / "params_model_3_ptm.npz").string()));
    // The log keeps the first run's record; the losses agree; the loss fell.
    const std::string la = test::read_text((a / "training_log.jsonl").string()),
                      lb = test::read_text((b / "training_log.jsonl").string());
    auto losses = [](const std::string& log) {
        std::vector<double> v;
        std::istringstream in(log);
        for (std::string line; std::getline(in, line);)
            v.push_back(std::stod(line.substr(line.find("\"loss\": ") + 8)));
        return v;
    };
    ASSERT_EQ(losses(la).size(), 2u) << la;
    EXPECT_EQ(losses(la), losses(lb));
    EXPECT_LT(losses(la)[1], losses(la)[0]);
    // The trained parameters differ from the start and predict reads them.
    EXPECT_NE(test::read_text((a / "checkpoint-000002" / "params_model_3_ptm.npz").string()),
              test::read_text(kSmall + "/params.npz"));
    r = run("predict --features " + kSmall + "/features.h5 --params " +
            (a / "checkpoint-000002" / "params_model_3_ptm.npz").string() +
            " --model-name model_3_ptm --structure-module-layers 2 --threads 1 --out-dir " + (a / "pred").string());
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(fs::exists(a / "pred" / "model_3_ptm_unrelaxed.pdb"));

    // Bad input: an example without ground truth, a DAP size the ranks do not divide, nothing left to train.
    r = run(common + "--steps 1 --out-dir " + (a / "bad").string() + " --examples " + kSmall + "/features.h5");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("features.h5: no 'features' group"), std::string::npos) << r.out;
    r = run(common + "--steps 1 --dap 2 --out-dir " + (a / "bad").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("1 ranks do not split into DAP groups of 2"), std::string::npos) << r.out;
    r = run(common + "--steps 2 --resume " + (a / "checkpoint-000002").string() + " --out-dir " + (a / "bad").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("at update 2, --steps 2"), std::string::npos) << r.out;
    // A refused resume removes nothing; a trailing slash is fine; continuing from update 1 again replaces the
    // later checkpoint with an identical one.
    r = run(common + "--steps 2 --clip-norm 0.5 --resume " + (b / "checkpoint-000001").string() + "/ --out-dir " +
            b.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_TRUE(fs::exists(b / "checkpoint-000002"));
    r = run(common + "--steps 2 --resume " + (b / "checkpoint-000001").string() + "/ --out-dir " + b.string());
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(test::read_text((a / "checkpoint-000002" / "params_model_3_ptm.npz").string()),
              test::read_text((b / "checkpoint-000002" / "params_model_3_ptm.npz").string()));
    // A checkpoint of another directory does not continue into this one without --overwrite.
    r = run(common + "--steps 3 --resume " + (a / "checkpoint-000002").string() + " --out-dir " + b.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("already holds a run"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(b / "checkpoint-000001"));
    // Another run's results are not mixed in: a fresh run into a used directory needs --overwrite.
    r = run(common + "--steps 1 --out-dir " + a.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("already holds a run"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::exists(a / "checkpoint-000002"));
    // A resume with another clipping norm is refused, naming the setting, unless allowed.
    r = run(common + "--steps 3 --clip-norm 0.5 --resume " + (a / "checkpoint-000002").string() + " --out-dir " +
            a.string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("clip_norm: 0.1, now 0.5"), std::string::npos) << r.out;
    r = run(common + "--steps 3 --clip-norm 0.5 --allow-changed-settings --resume " +
            (a / "checkpoint-000002").string() + " --out-dir " + a.string());
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(losses(test::read_text((a / "training_log.jsonl").string())).size(), 3u);
    // Validation: the moving average's prediction scored by the chain's lDDT-Ca, after updates 1 and 2.
    r = run(common + "--steps 2 --validate " + kSmall + "/loss_cases.h5 --validate-every 1 --out-dir " +
            (a / "val").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    {
        std::istringstream in(test::read_text((a / "val" / "validation_log.jsonl").string()));
        int lines = 0;
        for (std::string line; std::getline(in, line); ++lines) {
            const double lddt = std::stod(line.substr(line.find("\"lddt_ca\": ") + 11));
            EXPECT_GT(lddt, 0.0) << line;
            EXPECT_LE(lddt, 1.0) << line;
            EXPECT_NE(line.find("\"step\": " + std::to_string(lines + 1)), std::string::npos) << line;
        }
        EXPECT_EQ(lines, 2);
    }
    // Every example is checked before the first update: a ground truth of the wrong length names the file
    // and the dataset.
    {
        const io::Hdf5File cases(kSmall + "/loss_cases.h5");
        io::Hdf5Writer w((a / "short_gt.h5").string());
        for (const char* g : {"features", "batch"})
            for (const std::string& k : cases.list(g)) {
                Tensor t = cases.read(k);
                if (k == "batch/all_atom_positions") t = t.slice(0, 0, t.size(0) - 1).contiguous();
                w.write(k, t);
            }
        w.commit();
    }
    r = run(common + "--steps 1 --out-dir " + (a / "bad2").string() + " --examples " + kSmall + "/loss_cases.h5 " +
            (a / "short_gt.h5").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("short_gt.h5: batch/all_atom_positions is"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("expected 24 residues"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(a / "bad2" / "training_log.jsonl"));
}

// `axfold training-example` from PDB 2Q2K chain A (residues 18..41, the golden loss case's crop) and its
// alignments: the ground truth equals the golden batch's, the features have the asked sizes, and
// `axfold train` trains on the example.
TEST(Cli, TrainingExampleFromMmcifTrains) {
    const test::TempDir out;
    const std::string real = std::string(AXFOLD_TEST_DATA_DIR) + "/realdata";
    const std::string ali = real + "/alignments/2q2k_A/";
    const std::string ex = (out / "ex.h5").string();
    RunResult r = run("training-example --mmcif " + real + "/2q2k.cif --chain A --residues 18:42 --msa " + ali +
                      "uniref90_hits.sto " + ali + "bfd_uniclust_hits.a3m " + ali +
                      "mgnify_hits.sto --num-recycle 1 --max-msa-clusters 6 --max-extra-msa 8 --threads 1 -o " + ex);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("HMDKKETKHLLKIKKEDYPQIFDF"), std::string::npos) << r.out;
    const io::Hdf5File made(ex), golden(kSmall + "/loss_cases.h5");
    EXPECT_EQ(made.shape("features/msa_feat"), Shape({2, 6, 24, 49}));
    EXPECT_EQ(made.shape("features/extra_msa"), Shape({2, 8, 24}));
    for (const char* k : {"aatype", "residue_index", "all_atom_positions", "all_atom_mask", "atom14_gt_positions",
                          "atom14_alt_gt_positions", "rigidgroups_gt_frames", "backbone_rigid_tensor",
                          "chi_angles_sin_cos", "pseudo_beta", "resolution", "seq_length"}) {
        const auto a = test::to_f64(made.read(std::string("batch/") + k));
        const auto b = test::to_f64(golden.read(std::string("batch/") + k));
        ASSERT_EQ(a.size(), b.size()) << k;
        double d = 0;
        for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
        EXPECT_LE(d, 1e-4) << k;
    }
    const std::string train = "train --params " + kSmall + "/params.npz --model-name model_3_ptm --examples " + ex +
                              " --structure-module-layers 2 --threads 1 --warmup-steps 0 --learning-rate 3e-4 ";
    r = run(train + "--steps 2 --out-dir " + (out / "run").string());
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(fs::exists(out / "run" / "checkpoint-000002" / "params_model_3_ptm.npz"));
    auto log_losses = [](const fs::path& dir) {
        std::vector<double> v;
        std::istringstream in(test::read_text((dir / "training_log.jsonl").string()));
        for (std::string line; std::getline(in, line);)
            v.push_back(std::stod(line.substr(line.find("\"loss\": ") + 8)));
        return v;
    };
    // The example's raw features sampled again with its own seed and the whole range reproduce its stored
    // sample: the same losses.
    r = run(train + "--steps 2 --crop-size 24 --out-dir " + (out / "same").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(log_losses(out / "same"), log_losses(out / "run"));
    // Resampling with random crops of 16: deterministic for a seed, the crops in the log, other losses.
    r = run(train + "--steps 2 --resample --crop-size 16 --seed 5 --out-dir " + (out / "rs1").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run(train + "--steps 1 --resample --crop-size 16 --seed 5 --out-dir " + (out / "rs2").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run(train + "--steps 2 --resample --crop-size 16 --seed 5 --resume " +
            (out / "rs2" / "checkpoint-000001").string() + " --out-dir " + (out / "rs2").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(log_losses(out / "rs1"), log_losses(out / "rs2"));
    EXPECT_NE(log_losses(out / "rs1"), log_losses(out / "run"));
    EXPECT_EQ(test::read_text((out / "rs1" / "checkpoint-000002" / "params_model_3_ptm.npz").string()),
              test::read_text((out / "rs2" / "checkpoint-000002" / "params_model_3_ptm.npz").string()));
    EXPECT_NE(test::read_text((out / "rs1" / "training_log.jsonl").string()).find("\"crop\": ["), std::string::npos);
    // AF2's sampled iteration count: 1 or 2 of the example's 2, drawn per update (both occur for seed 5).
    r = run(train + "--steps 4 --sample-recycles --seed 5 --out-dir " + (out / "recycles").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    {
        std::set<int> seen;
        std::istringstream in(test::read_text((out / "recycles" / "training_log.jsonl").string()));
        for (std::string line; std::getline(in, line);)
            seen.insert(std::stoi(line.substr(line.find("\"iterations\": ") + 14)));
        EXPECT_EQ(seen, (std::set<int>{1, 2}));
    }
    // An example without raw features cannot be resampled.
    r = run("train --params " + kSmall + "/params.npz --examples " + kSmall + "/loss_cases.h5 --resample --out-dir " +
            (out / "bad").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("loss_cases.h5: no raw/ features"), std::string::npos) << r.out;
    // Bad input: a chain the file lacks, a range past the SEQRES.
    r = run("training-example --mmcif " + real + "/2q2k.cif --chain Z -o " + (out / "bad.h5").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("2q2k.cif"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Z"), std::string::npos) << r.out;
    r = run("training-example --mmcif " + real + "/2q2k.cif --chain A --residues 60:80 -o " +
            (out / "bad.h5").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("--residues 60:80: expected 0 <= BEGIN < END <= 70"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out / "bad.h5"));
}

// A complex (AlphaFold-Multimer, multimer_small's processed features): one chain per asym_id in the PDB (A, B, C,
// each closed by TER) and mmCIF (entities by sequence), ipTM in the scores and AF2's "iptm+ptm" ranking, the
// early stop's tolerance, and monomer parameters refused for a multimer model name.
TEST(Cli, PredictsAComplex) {
    const std::string mm = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small";
    const test::TempDir tmp;
    const std::string args = "predict --features " + mm + "/features.h5 --params " + mm +
                             "/params.npz --model-name model_1_multimer_v3 --structure-module-layers 2 --threads 1 "
                             "--out-dir " +
                             tmp.str();
    RunResult r = run(args + " --recycle-early-stop-tolerance 25");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("iterations=2"), std::string::npos) << r.out;  // the change after iteration 0 is 20 A
    EXPECT_NE(r.out.find("ipTM"), std::string::npos) << r.out;
    const std::string pdb = test::read_text((tmp / "model_1_multimer_v3_pred_0_unrelaxed.pdb").string());
    std::vector<std::string> ters;
    std::istringstream lines(pdb);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind("TER", 0) == 0) ters.push_back(line.substr(21, 1));
    EXPECT_EQ(ters, (std::vector<std::string>{"A", "B", "C"})) << pdb.substr(0, 400);
    const std::string cif = test::read_text((tmp / "model_1_multimer_v3_pred_0_unrelaxed.cif").string());
    EXPECT_NE(cif.find("_struct_asym.entity_id\nA 1\nB 1\nC 2\n"), std::string::npos);
    EXPECT_NE(test::read_text((tmp / "ranking_debug.json").string()).find("\"iptm+ptm\""), std::string::npos);
    EXPECT_NE(test::read_text((tmp / "scores_model_1_multimer_v3_pred_0.json").string()).find("\"iptm\": "),
              std::string::npos);
    r = run("predict --features " + mm + "/features.h5 --params " + kSmall +
            "/params.npz --model-name model_1_multimer_v3 --overwrite --out-dir " + tmp.str());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("monomer"), std::string::npos) << r.out;
    // Random parameters in the official multimer layout (init-params) run on the same features.
    const std::string params = (tmp / "random_multimer.npz").string();
    r = run("init-params --model-name model_1_multimer_v3 --evoformer-blocks 1 --extra-msa-blocks 1 --out " + params);
    ASSERT_EQ(r.rc, 0) << r.out;
    r = run("predict --features " + mm + "/features.h5 --params " + params +
            " --model-name model_1_multimer_v3 --num-recycle 0 --threads 1 --overwrite --out-dir " + tmp.str());
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("ipTM"), std::string::npos) << r.out;
}

// A complex from its chains and alignments (AF2's msas/ layout): `axfold features` writes multimer_small's merged
// features exactly, and `predict --model-preset multimer` runs the five models (named <model>_pred_0, ranked by
// 0.8 ipTM + 0.2 pTM). Bad input is named: a chain without alignments, a monomer model for a complex, one chain's
// --msa for a complex.
TEST(Cli, PredictsAComplexFromItsAlignments) {
    const std::string data = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small/data";
    const test::TempDir tmp;
    const io::Hdf5File chain_features(data + "/chain_features.h5");
    for (const char* chain : {"A", "B"}) {  // the stored alignments, and the template hits as AF2's features
        const fs::path dir = tmp / "msas" / chain;
        fs::create_directories(dir);
        for (const auto& e : fs::directory_iterator(data + "/alignments/" + chain))
            fs::copy_file(e.path(), dir / e.path().filename());
        io::Hdf5Writer w((dir / "template_features.h5").string());
        for (const char* k : {"template_aatype", "template_all_atom_positions", "template_all_atom_masks"})
            w.write(k, chain_features.read(std::string("raw/") + chain + "/" + k));
        w.commit();
    }
    const std::string input = "--fasta " + data + "/chains.fasta --msa-dir " + (tmp / "msas").string();
    RunResult r = run("features " + input + " -o " + (tmp / "merged.h5").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    const io::Hdf5File ours((tmp / "merged.h5").string()), golden(data + "/merged_features.h5");
    for (const std::string& k : golden.list("/", false))
        EXPECT_EQ(test::rel_diff(ours.read(k), golden.read(k)), 0.0) << k;

    fs::create_directories(tmp / "params");
    for (int i = 1; i <= 5; ++i)
        fs::create_symlink(data + "/../params.npz",
                           tmp / "params" / ("params_model_" + std::to_string(i) + "_multimer_v3.npz"));
    const std::string predict = "predict " + input + " --params " + (tmp / "params").string() +
                                " --num-recycle 1 --structure-module-layers 2 --threads 1 --out-dir " +
                                (tmp / "out").string();
    r = run(predict + " --model-preset multimer --num-predictions-per-model 1");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("3 chains"), std::string::npos) << r.out;
    const std::string ranking = test::read_text((tmp / "out" / "ranking_debug.json").string());
    for (int i = 1; i <= 5; ++i) {
        const std::string name = "model_" + std::to_string(i) + "_multimer_v3_pred_0";
        EXPECT_NE(ranking.find("\"" + name + "\""), std::string::npos) << ranking;
        EXPECT_TRUE(fs::exists(tmp / "out" / (name + "_unrelaxed.cif")));
    }
    EXPECT_TRUE(fs::exists(tmp / "out" / "ranked_4.pdb"));

    r = run("predict " + input + " --params " + kSmall + "/params.npz --model-name model_1_ptm --out-dir " +
            (tmp / "out").string() + " --overwrite");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("is a complex"), std::string::npos) << r.out;
    r = run("predict --fasta " + data + "/chains.fasta --msa " + data + "/alignments/A/mgnify_hits.sto --params " +
            (tmp / "params").string() + " --model-preset multimer --overwrite --out-dir " + (tmp / "out").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("--msa-dir"), std::string::npos) << r.out;
    fs::remove_all(tmp / "msas" / "B");
    r = run(predict + " --model-preset multimer --overwrite");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("chain B ('B', FASTA line 3): no alignment directory"), std::string::npos) << r.out;
}

// A run killed part-way (SIGKILL, after its first prediction's files) leaves its marker: the same command then
// replaces its files without --overwrite and removes its temporaries; a finished directory still needs --overwrite;
// a directory another live run writes into is refused.
TEST(Cli, AKilledPredictIsRerunWithoutOverwrite) {
    const test::TempDir tmp;
    std::ofstream(tmp / "q.fasta") << ">q\nMKVLAAGIVALLLAAGCS\n";
    const fs::path out = tmp / "out";
    const std::string args = "predict --fasta " + (tmp / "q.fasta").string() + " --params " + kSmall +
                             "/params.npz --model-name model_3_ptm --structure-module-layers 2 --threads 1 "
                             "--num-recycle 1 --num-predictions-per-model 3 --out-dir " +
                             out.string();
    kill_when_exists(args, out / "model_3_ptm_pred_0_unrelaxed.pdb");
    ASSERT_TRUE(fs::exists(out / ".axfold-running"));
    ASSERT_FALSE(fs::exists(out / "ranking_debug.json")) << "the run finished before it was killed";
    std::ofstream(out / "scores_model_3_ptm_pred_1.json.tmp.999999") << "left by the killed run";

    RunResult r = run(args);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("an interrupted run's files: they are replaced"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(out / ".axfold-running"));
    for (const auto& e : fs::directory_iterator(out))
        EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << "temporary file left: " << e.path();
    EXPECT_TRUE(fs::exists(out / "ranked_2.pdb"));

    r = run(args);  // finished: results are kept unless --overwrite
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("already exists; pass --overwrite"), std::string::npos) << r.out;
    std::ofstream(out / ".axfold-running") << getpid() << "\n";  // a live process writes there
    r = run(args + " --overwrite");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("another axfold predict (pid " + std::to_string(getpid()) + ")"), std::string::npos) << r.out;
}

// Training killed with SIGKILL part-way resumes from its last checkpoint to the same parameters, bit for bit, as a
// run that was never interrupted (checkpoints are written under temporary names, so the kill leaves whole ones).
TEST(Cli, AKilledTrainResumesBitExactly) {
    const test::TempDir tmp;
    const fs::path a = tmp / "whole", b = tmp / "killed";
    const std::string common = train_small() + "--save-every 1 --steps 4 ";
    RunResult r = run(common + "--out-dir " + a.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    const int status = kill_when_exists(common + "--out-dir " + b.string(), b / "checkpoint-000002");
    ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it was killed";
    ASSERT_FALSE(fs::exists(b / "checkpoint-000004"));
    r = run(common + "--resume " + (b / "checkpoint-000002").string() + " --out-dir " + b.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    for (const char* f : {"params_model_3_ptm.npz", "params_model_3_ptm_ema.npz"})
        EXPECT_EQ(test::read_text((a / "checkpoint-000004" / f).string()),
                  test::read_text((b / "checkpoint-000004" / f).string()))
            << f;
}

// Alignments too large for the memory are refused before they are read, from their row counts, naming each file's.
TEST(Cli, HugeAlignmentsAreRefusedBeforeTheyAreRead) {
    const test::TempDir tmp;
    const std::string query = std::string(5000, 'A');
    std::ofstream(tmp / "q.fasta") << ">q\n" << query << "\n";
    {
        std::ofstream a3m(tmp / "bfd_uniref_hits.a3m");
        a3m << ">q\n" << query << "\n";
        for (int i = 0; i < 200000; ++i) a3m << ">hit\nA\n";  // rows too short: only reading them would say so
    }
    const RunResult r = run("features --fasta " + (tmp / "q.fasta").string() + " --msa " +
                            (tmp / "bfd_uniref_hits.a3m").string() + " --max-memory 2G -o " + (tmp / "f.h5").string());
    EXPECT_NE(r.rc, 0);
    for (const std::string& n : {(tmp / "bfd_uniref_hits.a3m").string() + ": 200001 rows", std::string("need about"),
                                 std::string("--max-memory 2G")})
        EXPECT_NE(r.out.find(n), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(tmp / "f.h5"));
    // A complex's alignments (--msa-dir), every chain's files, against a budget they exceed.
    const std::string data = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/multimer_small/data";
    const RunResult c = run("features --fasta " + data + "/chains.fasta --msa-dir " + data +
                            "/alignments --max-memory 20000 -o " + (tmp / "f.h5").string());
    EXPECT_NE(c.rc, 0);
    for (const std::string& n : {std::string("alignments/A/uniref90_hits.sto: 151 rows x 9 columns"),
                                 std::string("alignments/B/uniprot_hits.sto: 61 rows x 7 columns")})
        EXPECT_NE(c.out.find(n), std::string::npos) << c.out;
}

// The plan comes first: a protein that cannot fit is refused before its features are built or the parameters read,
// with the budget that would fit; without --max-memory the machine's memory is the budget. (Its time and memory,
// 0.3 s and 230 MB, are in docs/RELIABILITY.md.)
TEST(Cli, ATooLongProteinIsRefusedBeforeAnythingIsBuilt) {
    const test::TempDir tmp;
    for (const auto& [n, budget] : {std::pair<int, std::string>{5000, " --max-memory 2G"}, {70000, ""}}) {
        const fs::path fasta = tmp / ("long" + std::to_string(n) + ".fasta");
        std::ofstream(fasta) << ">long\n" << std::string(n, 'A') << "\n";
        const RunResult r = run("predict --fasta " + fasta.string() + " --params " + kSmall +
                                "/params.npz --model-name model_3_ptm --out-dir " + (tmp / "out").string() + budget);
        EXPECT_EQ(r.rc, 1) << r.out;
        EXPECT_NE(r.out.find(fasta.string() + ": " + std::to_string(n) + " residues do not fit"), std::string::npos)
            << r.out;
        EXPECT_NE(r.out.find(budget.empty() ? "this machine's memory" : "--max-memory 2G"), std::string::npos) << r.out;
        EXPECT_NE(r.out.find("pass --max-memory"), std::string::npos) << r.out;
        EXPECT_EQ(r.out.find("features for"), std::string::npos) << r.out;  // the log line of a feature build
        EXPECT_FALSE(fs::exists(tmp / "out" / "model_3_ptm_unrelaxed.pdb"));
    }
}
