// `axfold predict --input`: many targets in one job, for clusters' batch scripts.
//
// Targets: a directory (each *.fasta/*.fa/*.faa file one target, several records a complex; each *.a3m file one
// target whose first sequence is the query and the file its MSA, ColabFold's complex A3M included), a multi-record
// FASTA (each record a target, ':' separating a complex's chains) or a CSV/TSV of id,sequence (ColabFold's). With
// --msa-dir DIR, DIR/<target>/ holds a target's alignments in AlphaFold's msas layout. Ids name the output
// directories out/<target>/.
//
// Each model's parameters are loaded once for the job. A target's directory gets `done` last (its summary row);
// a rerun skips targets with one and redoes the others from an empty directory, so a killed job leaves no
// half-written result behind; --overwrite redoes all. A target that fails is logged (log.txt, error.txt) and the
// job goes on; the summary (summary.tsv) and the exit status (3) name the failures. --shard I/N (0 <= I < N; by
// default from SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN and SLURM_ARRAY_TASK_COUNT) takes a deterministic share,
// balanced by predicted cost; a shard's summary is summary.shard-I-of-N.tsv. Under an MPI launcher every target
// runs over all ranks (DAP); rank 0 writes.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "apps/predict.h"
#include "io/atomic_file.h"
#include "io/json_writer.h"
#include "io/msa.h"
#include "kernels/tensor.h"
#include "pipeline/msa_pairing.h"

namespace axfold::apps {

namespace {

namespace fs = std::filesystem;

// What an interrupted job left beside its summary: NAME.tmp.<pid> of a process that no longer runs (a SIGKILL
// while the summary was being replaced). A live process's temporaries are another shard's, and stay.
void remove_stale_temporaries(const fs::path& dir) {
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        const size_t at = name.rfind(".tmp.");
        if (at == std::string::npos) continue;
        const std::string pid = name.substr(at + 5);
        if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
        if (::kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) fs::remove(e.path());
    }
}

using Clock = std::chrono::steady_clock;

struct BatchTarget {
    std::string id, source;  // source: file (and line) it came from
    std::string fasta;       // the query as FASTA text (a complex: several records)
    std::string a3m;         // the target's own A3M (directory input), or empty
    int64_t length = 0;
    std::string error;  // a file of the input directory that could not be read: the target fails with this
};

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    AXF_CHECK(f, "--input: cannot read %s", path.c_str());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// An id usable as a directory name.
std::string clean_id(const std::string& raw) {
    std::string id = raw.substr(0, raw.find_first_of(" \t"));
    for (char& c : id)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
    return id.empty() || id == "." || id == ".." ? "target" : id;
}

int64_t residues(const std::string& fasta_text) {
    int64_t n = 0;
    for (const io::FastaRecord& r : io::parse_fasta(fasta_text, "query", true))
        for (char c : r.sequence) n += c != ':';
    return n;
}

BatchTarget fasta_target(const std::string& id, const std::string& source, const std::vector<io::FastaRecord>& recs) {
    BatchTarget t{clean_id(id), source, "", "", 0, ""};
    for (const io::FastaRecord& r : recs) t.fasta += ">" + r.description + "\n" + r.sequence + "\n";
    t.length = residues(t.fasta);
    return t;
}

// An A3M target: the query (ColabFold's complex header: its chains, each copy a record) and the file as its MSA.
BatchTarget a3m_target(const fs::path& path) {
    BatchTarget t{clean_id(path.stem().string()), path.string(), "", path.string(), 0, ""};
    if (io::has_colabfold_header(path.string())) {
        const io::ColabFoldMsa m = io::read_colabfold_a3m(path.string());
        char chain = 'A';
        for (size_t k = 0; k < m.queries.size(); ++k)
            for (int64_t c = 0; c < m.cardinalities[k]; ++c)
                t.fasta += std::string(">") + chain++ + "\n" + m.queries[k] + "\n";
    } else {
        const io::Msa m = io::read_msa(path.string());
        AXF_CHECK(m.depth() > 0, "%s: an empty alignment (the query is its first sequence)", path.c_str());
        t.fasta = ">" + m.descriptions[0] + "\n" + m.sequences[0] + "\n";
    }
    t.length = residues(t.fasta);
    return t;
}

std::vector<BatchTarget> read_targets(const std::string& input) {
    std::vector<BatchTarget> targets;
    AXF_CHECK(fs::exists(input), "--input %s: no such file or directory", input.c_str());
    const std::string ext = fs::path(input).extension().string();
    if (fs::is_directory(input)) {
        std::vector<fs::path> files;
        for (const auto& e : fs::directory_iterator(input))
            if (e.is_regular_file()) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        for (const fs::path& f : files) {
            const std::string x = f.extension().string();
            const bool a3m = x == ".a3m", fasta = x == ".fasta" || x == ".fa" || x == ".faa" || x == ".fas";
            if (!a3m && !fasta) continue;
            try {  // a bad file is that target's failure, not the job's
                targets.push_back(a3m ? a3m_target(f)
                                      : fasta_target(f.stem().string(), f.string(), io::read_fasta(f.string(), true)));
            } catch (const std::exception& e) {
                targets.push_back({clean_id(f.stem().string()), f.string(), "", "", 0, e.what()});
            }
        }
    } else if (ext == ".csv" || ext == ".tsv") {
        std::istringstream lines(read_file(input));
        int line_no = 0;
        for (std::string line; std::getline(lines, line);) {
            ++line_no;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty() || line[0] == '#') continue;
            const size_t sep = line.find(ext == ".tsv" ? '\t' : ',');
            AXF_CHECK(sep != std::string::npos, "%s:%d: expected id%ssequence, found '%s'", input.c_str(), line_no,
                      ext == ".tsv" ? "<TAB>" : ",", line.c_str());
            const std::string id = line.substr(0, sep), seq = line.substr(sep + 1);
            if (line_no == 1 && (id == "id" || id == "name") && (seq == "sequence" || seq == "seq"))
                continue;  // header
            const std::string src = input + ":" + std::to_string(line_no);
            targets.push_back(fasta_target(id, src, io::parse_fasta(">" + id + "\n" + seq + "\n", src, true)));
        }
    } else {
        for (const io::FastaRecord& r : io::read_fasta(input, true))
            targets.push_back(fasta_target(r.description, input + ":" + std::to_string(r.line), {r}));
    }
    AXF_CHECK(!targets.empty(),
              "--input %s: no targets (a directory of .fasta/.a3m files, a FASTA file, or a "
              ".csv/.tsv of id,sequence)",
              input.c_str());
    std::map<std::string, std::string> seen;
    for (const BatchTarget& t : targets) {
        auto [it, fresh] = seen.emplace(t.id, t.source);
        AXF_CHECK(fresh, "--input: two targets named '%s' (%s and %s); ids name the output directories", t.id.c_str(),
                  it->second.c_str(), t.source.c_str());
    }
    return targets;
}

// --shard I/N, or Slurm's array variables; {0, 1} without either.
std::pair<int, int> parse_shard(const std::string& arg) {
    std::string s = arg;
    if (s.empty()) {
        const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
        const char* count = std::getenv("SLURM_ARRAY_TASK_COUNT");
        const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
        if (!id || !count) return {0, 1};
        s = std::to_string(std::atoi(id) - (min ? std::atoi(min) : 0)) + "/" + count;
    }
    int i = -1, n = 0;
    char tail = 0;
    AXF_CHECK(std::sscanf(s.c_str(), "%d/%d%c", &i, &n, &tail) == 2 && n >= 1 && i >= 0 && i < n,
              "--shard '%s': expected I/N with 0 <= I < N%s", s.c_str(),
              arg.empty() ? " (from SLURM_ARRAY_TASK_*)" : "");
    return {i, n};
}

// A target's relative cost: the Evoformer's pair work grows as L^3, its MSA work as S L^2 (S ~ 512 clusters).
double predicted_cost(int64_t length) {
    const double l = static_cast<double>(length);
    return l * l * (l + 512.0);
}

std::vector<size_t> shard_targets(const std::vector<int64_t>& lengths, const std::vector<std::string>& ids, int shard,
                                  int shards) {
    // Longest processing time first: each target, costliest first (ties by id), to the least-loaded shard.
    std::vector<size_t> order(lengths.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const double ca = predicted_cost(lengths[a]), cb = predicted_cost(lengths[b]);
        return ca != cb ? ca > cb : ids[a] < ids[b];
    });
    std::vector<double> load(static_cast<size_t>(shards), 0.0);
    std::vector<size_t> mine;
    for (size_t t : order) {
        const size_t s = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
        load[s] += predicted_cost(lengths[t]);
        if (static_cast<int>(s) == shard) mine.push_back(t);
    }
    // Within the shard, shortest first (each length's memory plan once, results early), ties by id.
    std::sort(mine.begin(), mine.end(),
              [&](size_t a, size_t b) { return lengths[a] != lengths[b] ? lengths[a] < lengths[b] : ids[a] < ids[b]; });
    return mine;
}

// Every rank of a DAP job at the same point (the file system decisions are rank 0's).
void sync_ranks(Comm& comm) {
    if (comm.size() <= 1) return;
    comm.all_reduce_sum(Tensor::full({1}, 1.f))->wait();
}

std::string file_crc32(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    AXF_CHECK(f, "cannot read %s", path.c_str());
    uLong crc = crc32(0L, Z_NULL, 0);
    std::vector<char> buf(1 << 20);
    while (f) {
        f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(f.gcount()));
    }
    return strfmt("%08lx", crc);
}

const char* kSummaryHeader =
    "target\tlength\tchains\tpredictions\tbest\tranking_confidence\tmean_plddt\tptm\tiptm\tseconds\tpeak_memory_bytes\t"
    "status\n";

std::string summary_row(const std::string& id, const TargetOutcome& t, const std::string& status) {
    return strfmt("%s\t%lld\t%zu\t%zu\t%s\t%.4f\t%.2f\t%s\t%s\t%.2f\t%zu\t%s\n", id.c_str(), (long long)t.n_res,
                  t.chains, t.predictions, t.best.c_str(), t.best_confidence, t.mean_plddt,
                  t.has_ptm ? strfmt("%.4f", t.ptm).c_str() : "", t.has_iptm ? strfmt("%.4f", t.iptm).c_str() : "",
                  t.seconds, t.peak_bytes, status.c_str());
}

std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\t' || c == '\r') c = ' ';
    return s;
}

std::string config_json(const PredictOptions& o, const PredictJob& job, const BatchTarget& t, const InputOptions& in,
                        const std::vector<std::string>& crcs) {
    using io::json_string;
    std::string s = "{\n    \"target\": " + json_string(t.id) + ",\n    \"source\": " + json_string(t.source) +
                    strfmt(",\n    \"length\": %lld,\n    \"models\": [", (long long)t.length);
    for (size_t i = 0; i < job.models.size(); ++i)
        s += (i ? ", " : "") + std::string("{\"name\": ") + json_string(job.models[i]) +
             ", \"params\": " + json_string(fs::absolute(job.param_paths[i]).string()) +
             ", \"crc32\": " + json_string(crcs[i]) + "}";
    s += "],\n    \"msas\": [";
    for (size_t i = 0; i < in.msas.size(); ++i) s += (i ? ", " : "") + json_string(in.msas[i]);
    s += "],\n    \"msa_dir\": " + json_string(in.msa_dir) +
         strfmt(
             ",\n    \"seed\": %llu,\n    \"num_recycle\": %d,\n    \"num_predictions_per_model\": %d,\n    "
             "\"recycle_early_stop_tolerance\": %s,\n    \"max_msa_clusters\": %lld,\n    \"max_extra_msa\": %lld,\n"
             "    \"structure_module_layers\": %d,\n    \"save_outputs\": %s,\n",
             (unsigned long long)in.seed, o.num_recycle, o.num_predictions_per_model,
             io::json_number(o.run.recycle_early_stop_tolerance, "tolerance").c_str(), (long long)in.max_msa_clusters,
             (long long)in.max_extra_msa, o.structure_module_layers, o.save_outputs ? "true" : "false") +
         "    \"device\": " + json_string(o.run.device) + ",\n    \"precision\": " + json_string(o.run.precision) +
         ",\n    \"activations\": " + json_string(o.run.activations) +
         ",\n    \"max_memory\": " + json_string(o.run.max_memory) +
         strfmt(",\n    \"chunk_size\": %lld,\n    \"threads\": %d,\n    \"ranks\": %d\n}\n",
                (long long)o.run.chunk_size, o.run.threads, job.comm->size());
    return s;
}

std::string hms(double seconds) {
    const long s = static_cast<long>(seconds);
    return strfmt("%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
}

}  // namespace

int predict_batch(const PredictOptions& o) {
    AXF_CHECK(o.in.fasta.empty() && o.in.features.empty() && o.in.msas.empty(),
              "--input takes the targets (and --msa-dir their alignments); --fasta, --features and --msa are for one "
              "target");
    const auto t_job = Clock::now();
    PredictJob job(o);
    job.keep_all_models = true;
    Comm& comm = *job.comm;
    const bool root = comm.rank() == 0;
    const std::vector<BatchTarget> all = read_targets(o.input);
    const auto [shard, shards] = parse_shard(o.shard);
    std::vector<int64_t> lengths;
    std::vector<std::string> ids;
    for (const BatchTarget& t : all) {
        lengths.push_back(t.length);
        ids.push_back(t.id);
    }
    const std::vector<size_t> mine = shard_targets(lengths, ids, shard, shards);
    if (o.list_targets) {  // what this shard would run, in order
        for (size_t t : mine)
            std::printf("%s\t%lld\t%s\n", all[t].id.c_str(), (long long)all[t].length, all[t].source.c_str());
        return 0;
    }
    fs::create_directories(o.out_dir);
    if (root) remove_stale_temporaries(o.out_dir);
    const std::string summary_path =
        (fs::path(o.out_dir) / (shards == 1 ? "summary.tsv" : strfmt("summary.shard-%d-of-%d.tsv", shard, shards)))
            .string();
    std::vector<std::string> crcs;
    for (const std::string& p : job.param_paths) crcs.push_back(file_crc32(p));
    const bool tty = isatty(STDERR_FILENO) && !o.quiet;
    if (root && !o.quiet)
        std::fprintf(
            stderr, "axfold predict: %zu targets in %s%s, %zu models, into %s\n", mine.size(), o.input.c_str(),
            shards > 1 ? strfmt(" (shard %d of %d: %zu of %zu)", shard, shards, mine.size(), all.size()).c_str() : "",
            job.models.size(), o.out_dir.c_str());

    // The ETA: seconds per unit of predicted cost over the targets run so far, times the cost still to come.
    double total_cost = 0, done_cost = 0, run_cost = 0, run_seconds = 0;
    for (size_t t : mine) total_cost += predicted_cost(all[t].length);
    std::string summary = kSummaryHeader;
    std::vector<std::string> failed;
    for (size_t k = 0; k < mine.size(); ++k) {
        const BatchTarget& t = all[mine[k]];
        const fs::path dir = fs::path(o.out_dir) / t.id;
        const std::string label = strfmt("[%zu/%zu %s] ", k + 1, mine.size(), t.id.c_str());
        const bool finished = !o.overwrite && io::file_exists((dir / "done").string());
        sync_ranks(comm);
        if (finished) {
            if (root) {
                std::string row = read_file((dir / "done").string());
                summary += row;
                if (!o.quiet) std::fprintf(stderr, "%s%sdone earlier, skipped\n", tty ? "\r\033[K" : "", label.c_str());
            }
            done_cost += predicted_cost(t.length);
            continue;
        }
        InputOptions in = o.in;
        in.fasta = (dir / "input.fasta").string();
        in.msa_dir.clear();
        if (root) {
            fs::remove_all(dir);  // whatever an interrupted run left
            fs::create_directories(dir);
            io::write_file_atomic(in.fasta, t.fasta);
        }
        sync_ranks(comm);
        TargetLog log;
        log.target = t.id;
        log.prefix = label;
        log.quiet = o.quiet || !root;
        const auto t0 = Clock::now();
        if (tty) {
            log.quiet_stages = log.tty = true;
            log.progress = [&](const std::string& stage, int r, double) {
                const double rate = run_cost > 0 ? run_seconds / run_cost : 0;
                const double left = rate > 0 ? rate * (total_cost - done_cost) -
                                                   std::chrono::duration<double>(Clock::now() - t0).count()
                                             : -1;
                std::fprintf(stderr, "\r\033[K%siteration %d %s  elapsed %s  ETA %s", label.c_str(), r, stage.c_str(),
                             hms(std::chrono::duration<double>(Clock::now() - t_job).count()).c_str(),
                             left >= 0 ? hms(left).c_str() : "--");
            };
        }
        std::string status = "ok";
        TargetOutcome outcome;
        outcome.n_res = t.length;
        try {
            AXF_CHECK(t.error.empty(), "%s", t.error.c_str());
            if (!t.a3m.empty()) in.msas = {t.a3m};
            if (!o.in.msa_dir.empty()) {
                const fs::path msas = fs::path(o.in.msa_dir) / t.id;
                AXF_CHECK(fs::is_directory(msas), "no alignments for target %s: %s is not a directory", t.id.c_str(),
                          msas.c_str());
                if (pipeline::is_complex_fasta(in.fasta)) {
                    in.msa_dir = msas.string();
                } else {
                    for (const std::string& f : pipeline::chain_alignment_files(msas.string())) in.msas.push_back(f);
                    AXF_CHECK(!in.msas.empty(),
                              "no alignments for target %s in %s (uniref90_hits.sto, "
                              "bfd_uniref_hits.a3m, mgnify_hits.sto)",
                              t.id.c_str(), msas.c_str());
                }
            }
            if (root) io::write_file_atomic((dir / "config.json").string(), config_json(o, job, t, in, crcs));
            outcome = predict_target(job, o, in, dir.string(), true, log);
        } catch (const std::exception& e) {
            status = "failed: " + one_line(e.what());
            log.line("FAILED: %s", e.what());
            failed.push_back(t.id + " (" + one_line(e.what()) + ")");
        }
        if (tty) std::fprintf(stderr, "\r\033[K");
        done_cost += predicted_cost(t.length);
        run_cost += predicted_cost(t.length);
        run_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
        if (!root) continue;
        outcome.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
        io::write_file_atomic((dir / "log.txt").string(), log.text);
        const std::string row = summary_row(t.id, outcome, status);
        if (status == "ok") {
            io::write_file_atomic((dir / "done").string(), row);  // last: the target is finished
        } else {
            io::write_file_atomic((dir / "error.txt").string(), status.substr(8) + "\n");
        }
        summary += row;
        io::write_file_atomic(summary_path, summary);
        if (!o.quiet)
            std::fprintf(
                stderr, "%s%s in %.1f s%s\n", label.c_str(), status == "ok" ? "done" : "FAILED", outcome.seconds,
                status == "ok" ? strfmt(", best %s %.4f", outcome.best.c_str(), outcome.best_confidence).c_str() : "");
    }
    if (!root) return failed.empty() ? 0 : 3;
    io::write_file_atomic(summary_path, summary);
    std::printf("axfold predict: %zu targets, %zu failed, %.1f s  -> %s\n", mine.size(), failed.size(),
                std::chrono::duration<double>(Clock::now() - t_job).count(), summary_path.c_str());
    for (const std::string& f : failed) std::printf("axfold predict: FAILED %s\n", f.c_str());
    return failed.empty() ? 0 : 3;
}

}  // namespace axfold::apps
