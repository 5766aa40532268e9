// `axfold predict --input` (apps/batch.cpp): many targets in one job. Twenty targets give the same files as twenty
// separate calls, bit for bit, with each model's parameters read once; a job killed with SIGKILL and rerun finishes
// without redoing finished targets or leaving a truncated file; 1-4 shards cover every target once; a bad target
// fails alone, named in the summary and the exit status; the report's plots are well-formed and sized by N.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <thread>

#include "io/report.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace axfold;

namespace {

const std::string kBin = AXFOLD_BINARY;
const std::string kSmall = std::string(AXFOLD_TEST_DATA_DIR) + "/golden/small";
const std::string kModel = " --params " + kSmall +
                           "/params.npz --model-name model_3_ptm --structure-module-layers 2 --threads 1"
                           " --num-recycle 0 --max-msa-clusters 8 --max-extra-msa 8";

struct RunResult {
    int rc;
    std::string out;
};

RunResult run(const std::string& args) {
    FILE* p = popen((kBin + " " + args + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    while (p && fgets(buf, sizeof buf, p)) out += buf;
    const int st = p ? pclose(p) : -1;
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// n random sequences of 8-20 residues as a multi-record FASTA (ids t00, t01, ...).
std::string targets_fasta(int n, std::map<std::string, std::string>* sequences = nullptr) {
    std::mt19937 rng(11);
    const std::string aa = "ACDEFGHIKLMNPQRSTVWY";
    std::string fasta;
    for (int i = 0; i < n; ++i) {
        std::string seq;
        const int len = 8 + static_cast<int>(rng() % 13);
        for (int k = 0; k < len; ++k) seq += aa[rng() % 20];
        const std::string id = strfmt("t%02d", i);
        fasta += ">" + id + " target " + std::to_string(i) + "\n" + seq + "\n";
        if (sequences) (*sequences)[id] = seq;
    }
    return fasta;
}

void write(const fs::path& p, const std::string& text) {
    std::ofstream(p) << text;
}

std::vector<std::string> leftover_temporaries(const fs::path& dir) {
    std::vector<std::string> found;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.path().filename().string().find(".tmp") != std::string::npos) found.push_back(e.path().string());
    return found;
}

// A PNG's size, after checking the signature, every chunk's CRC and that the pixels inflate to height rows of
// 1 + 3 width bytes (8-bit RGB).
std::pair<int, int> png_size(const std::string& png) {
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n"));
    auto u32 = [&](size_t at) {
        return (static_cast<uint32_t>(static_cast<uint8_t>(png[at])) << 24) |
               (static_cast<uint32_t>(static_cast<uint8_t>(png[at + 1])) << 16) |
               (static_cast<uint32_t>(static_cast<uint8_t>(png[at + 2])) << 8) | static_cast<uint8_t>(png[at + 3]);
    };
    int w = 0, h = 0;
    std::string idat;
    for (size_t at = 8; at + 12 <= png.size();) {
        const uint32_t len = u32(at);
        const std::string type = png.substr(at + 4, 4);
        const std::string body = png.substr(at + 4, 4 + len);
        EXPECT_EQ(u32(at + 8 + len), crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())) << type;
        if (type == "IHDR") {
            w = static_cast<int>(u32(at + 8));
            h = static_cast<int>(u32(at + 12));
            EXPECT_EQ(png[at + 16], 8);  // bit depth
            EXPECT_EQ(png[at + 17], 2);  // RGB
        }
        if (type == "IDAT") idat += png.substr(at + 8, len);
        at += 12 + len;
    }
    std::string raw(static_cast<size_t>(h) * (1 + 3 * static_cast<size_t>(w)), '\0');
    uLongf size = raw.size();
    EXPECT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &size, reinterpret_cast<const Bytef*>(idat.data()),
                         idat.size()),
              Z_OK);
    EXPECT_EQ(size, raw.size());
    return {w, h};
}

}  // namespace

TEST(Batch, TwentyTargetsEqualSeparateCallsAndReadParametersOnce) {
    const test::TempDir tmp;
    std::map<std::string, std::string> seqs;
    write(tmp / "targets.fasta", targets_fasta(20, &seqs));
    RunResult r =
        run("predict --input " + (tmp / "targets.fasta").string() + kModel + " --out-dir " + (tmp / "batch").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(count(r.out, "loaded the parameters of model_3_ptm"), 1u) << r.out;
    EXPECT_NE(r.out.find("20 targets, 0 failed"), std::string::npos) << r.out;
    const std::string summary = test::read_text((tmp / "batch" / "summary.tsv").string());
    EXPECT_EQ(count(summary, "\tok\n"), 20u) << summary;
    for (const auto& [id, seq] : seqs) {  // the same target alone, by the single-target command
        const fs::path one = tmp / "single" / id;
        fs::create_directories(one);
        write(one / "q.fasta", ">" + id + "\n" + seq + "\n");
        r = run("predict --fasta " + (one / "q.fasta").string() + kModel + " --out-dir " + one.string());
        ASSERT_EQ(r.rc, 0) << r.out;
        for (const char* f : {"model_3_ptm_unrelaxed.pdb", "model_3_ptm_unrelaxed.cif", "confidence_model_3_ptm.json",
                              "pae_model_3_ptm.json", "scores_model_3_ptm.json", "ranking_debug.json", "ranked_0.pdb",
                              "plddt.png", "pae.png"})
            EXPECT_EQ(test::read_text((one / f).string()), test::read_text((tmp / "batch" / id / f).string()))
                << id << "/" << f;
        const std::string log = test::read_text((tmp / "batch" / id / "log.txt").string());
        EXPECT_NE(log.find("model_3_ptm recycle=0 pLDDT="), std::string::npos) << log;
        const std::string config = test::read_text((tmp / "batch" / id / "config.json").string());
        EXPECT_NE(config.find("\"crc32\": \""), std::string::npos) << config;
    }
    EXPECT_TRUE(leftover_temporaries(tmp.path()).empty());
}

TEST(Batch, AKilledJobResumesWithoutRedoingFinishedTargets) {
    const test::TempDir tmp;
    write(tmp / "targets.fasta", targets_fasta(12));
    const fs::path out = tmp / "out";
    const std::string cmd = kBin + " predict --quiet --input " + (tmp / "targets.fasta").string() + kModel +
                            " --out-dir " + out.string() + " > /dev/null 2>&1";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    auto finished = [&] {
        std::map<std::string, fs::file_time_type> done;
        if (!fs::exists(out)) return done;
        for (const auto& e : fs::directory_iterator(out))
            if (fs::exists(e.path() / "done"))
                done[e.path().filename().string()] = fs::last_write_time(e.path() / "done");
        return done;
    };
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (finished().size() < 3 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    const auto before = finished();
    ASSERT_GE(before.size(), 3u);
    ASSERT_LT(before.size(), 12u) << "the job finished before it was killed";

    RunResult r = run("predict --input " + (tmp / "targets.fasta").string() + kModel + " --out-dir " + out.string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(count(r.out, "done earlier, skipped"), before.size()) << r.out;
    const auto after = finished();
    EXPECT_EQ(after.size(), 12u);
    for (const auto& [id, t] : before) EXPECT_EQ(after.at(id), t) << id << " was redone";
    EXPECT_TRUE(leftover_temporaries(out).empty());
    const std::string summary = test::read_text((out / "summary.tsv").string());
    EXPECT_EQ(count(summary, "\tok\n"), 12u) << summary;
    // Every finished target has its full set of files.
    for (const auto& [id, t] : after)
        for (const char* f : {"ranked_0.pdb", "ranking_debug.json", "report.html", "log.txt", "config.json"})
            EXPECT_TRUE(fs::exists(out / id / f)) << id << "/" << f;
}

TEST(Batch, ShardsCoverEveryTargetOnce) {
    const test::TempDir tmp;
    write(tmp / "targets.fasta", targets_fasta(20));
    for (int n = 1; n <= 4; ++n) {
        std::multiset<std::string> seen;
        for (int i = 0; i < n; ++i) {
            const RunResult r = run(strfmt("predict --list-targets --shard %d/%d --input ", i, n) +
                                    (tmp / "targets.fasta").string() + kModel + " --out-dir " + (tmp / "o").string());
            ASSERT_EQ(r.rc, 0) << r.out;
            std::istringstream lines(r.out);
            size_t here = 0;
            for (std::string line; std::getline(lines, line);)
                if (line.rfind("t", 0) == 0) {
                    seen.insert(line.substr(0, line.find('\t')));
                    ++here;
                }
            EXPECT_GE(here, static_cast<size_t>(20 / n - 2)) << "shard " << i << "/" << n << " is unbalanced";
        }
        EXPECT_EQ(seen.size(), 20u) << n << " shards";
        EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 20u) << n << " shards";
    }
    // Slurm's array variables choose the shard when --shard is not given.
    const RunResult a = run("predict --list-targets --input " + (tmp / "targets.fasta").string() + kModel +
                            " --out-dir " + (tmp / "o").string());
    const std::string env = "SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_COUNT=2 ";
    FILE* p = popen((env + kBin + " predict --list-targets --input " + (tmp / "targets.fasta").string() + kModel +
                     " --out-dir " + (tmp / "o").string())
                        .c_str(),
                    "r");
    std::string slurm;
    char buf[4096];
    while (fgets(buf, sizeof buf, p)) slurm += buf;
    pclose(p);
    const RunResult b = run("predict --list-targets --shard 1/2 --input " + (tmp / "targets.fasta").string() + kModel +
                            " --out-dir " + (tmp / "o").string());
    EXPECT_EQ(slurm, b.out);
    EXPECT_NE(slurm, a.out);
    EXPECT_NE(run("predict --list-targets --shard 2/2 --input " + (tmp / "targets.fasta").string() + kModel +
                  " --out-dir " + (tmp / "o").string())
                  .out.find("--shard '2/2': expected I/N with 0 <= I < N"),
              std::string::npos);
}

TEST(Batch, ABadTargetFailsAloneAndIsNamed) {
    const test::TempDir tmp;
    const fs::path in = tmp / "in";
    fs::create_directories(in);
    write(in / "good1.fasta", ">good1\nMKVLAAGIVALL\n");
    write(in / "bad_residue.fasta", ">bad\nMKV*LAAG\n");
    write(in / "empty.a3m", "");
    write(in / "good2.a3m", ">query\nMSTNPKPQRK\n>hit\nMSTNaPKP-RK\n");
    write(in / "notes.txt", "not a target\n");
    const RunResult r = run("predict --input " + in.string() + kModel + " --out-dir " + (tmp / "out").string());
    EXPECT_EQ(r.rc, 3) << r.out;
    EXPECT_NE(r.out.find("4 targets, 2 failed"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FAILED bad_residue"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FAILED empty"), std::string::npos) << r.out;
    const std::string summary = test::read_text((tmp / "out" / "summary.tsv").string());
    EXPECT_NE(summary.find("good1\t12\t"), std::string::npos) << summary;
    EXPECT_NE(summary.find("good2\t10\t"), std::string::npos) << summary;
    EXPECT_NE(summary.find("bad_residue\t"), std::string::npos);
    EXPECT_NE(summary.find("failed: "), std::string::npos);
    EXPECT_TRUE(fs::exists(tmp / "out" / "good2" / "done"));
    EXPECT_FALSE(fs::exists(tmp / "out" / "bad_residue" / "done"));
    EXPECT_TRUE(fs::exists(tmp / "out" / "bad_residue" / "error.txt"));
    // The A3M target's alignment is its MSA: the report's coverage shows both rows.
    const std::string report = test::read_text((tmp / "out" / "good2" / "report.html").string());
    EXPECT_NE(report.find("2 sequences"), std::string::npos);
}

TEST(Batch, TheReportsPlotsAreWellFormedAndSizedByN) {
    const test::TempDir tmp;
    write(tmp / "t.fasta", ">t\nMKVLAAGIVALLLAAGCS\n");  // N = 18
    const RunResult r =
        run("predict --fasta " + (tmp / "t.fasta").string() + kModel + " --out-dir " + (tmp / "out").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    const std::string html = test::read_text((tmp / "out" / "report.html").string());
    const std::smatch m = [&] {
        std::smatch s;
        std::regex_search(html, s, std::regex("class=\"plddt-line\"[^>]*points=\"([^\"]*)\""));
        return s;
    }();
    ASSERT_FALSE(m.empty()) << html.substr(0, 500);
    EXPECT_EQ(count(m[1].str(), ","), 18u);  // one x,y pair per residue
    EXPECT_NE(html.find("<table id=\"ranking\">"), std::string::npos);
    EXPECT_EQ(html.find("http"), html.find("http://www.w3.org/2000/svg"));  // no network: only the SVG namespace
    const auto pae = png_size(test::read_text((tmp / "out" / "pae.png").string()));
    EXPECT_EQ(pae, std::make_pair(io::pae_image_size(18), io::pae_image_size(18)));
    EXPECT_EQ(io::pae_image_size(18), 18 * 23);
    EXPECT_EQ(io::pae_image_size(2000), 2000);
    EXPECT_EQ(io::pae_image_size(5000), 1667);  // blocks of 3 residues averaged
    const auto plddt = png_size(test::read_text((tmp / "out" / "plddt.png").string()));
    EXPECT_EQ(plddt, std::make_pair(800, 300));
    // The embedded images decode the same way.
    EXPECT_EQ(count(html, "data:image/png;base64,"), 2u);  // PAE and MSA coverage
}
