// `axfold features`: FASTA + alignments -> AlphaFold2's raw features, or a complex's merged features (or, with
// --processed, the model inputs after AF2's transforms); and the input path shared with `axfold predict`.
#include "io/features.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>

#include "apps/commands.h"
#include "io/hdf5_file.h"
#include "io/msa.h"
#include "kernels/ops.h"
#include "model/run.h"
#include "pipeline/multimer_transforms.h"

namespace axfold::apps {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// A note on the input: to the target's log when there is one, else to stderr.
template <class... Args>
void note(const InputOptions& in, const char* fmt, Args... args) {
    const std::string line = strfmt(fmt, args...);
    if (in.note) {
        in.note(line);
    } else {
        std::fprintf(stderr, "%s\n", line.c_str());
    }
}

}  // namespace

namespace {

// Huge alignments are refused before they are read, like a protein too long for the model: their rows are counted
// (count_msa_rows, nothing kept) and the memory reading them takes is estimated against the machine's: the parsed
// rows (the aligned row, its deletion counts: 5 bytes a column, and ~64 bytes of bookkeeping), the raw features of
// the rows kept after each file's depth limit (MSA and deletion matrix: 8 bytes a column), and the largest file's
// text. The budget: --max-memory, else the machine's memory.
void check_alignments_fit(const std::vector<std::pair<std::string, int64_t>>& alignments, const InputOptions& in) {
    if (alignments.empty()) return;
    double parsed = 0, kept = 0, text = 0;
    std::string rows;
    for (const auto& [path, n_res] : alignments) {
        const int64_t r = io::count_msa_rows(path), cap = io::default_max_hits(path);
        parsed += static_cast<double>(r) * (5.0 * static_cast<double>(n_res) + 64);
        kept += 8.0 * static_cast<double>(n_res) * static_cast<double>(cap > 0 ? std::min(r, cap) : r);
        std::error_code ec;
        text = std::max(text, static_cast<double>(std::filesystem::file_size(path, ec)));
        rows += strfmt("%s%s: %lld rows x %lld columns", rows.empty() ? "" : ", ", path.c_str(), (long long)r,
                       (long long)n_res);
    }
    std::string what;
    RunSettings budget_settings;
    budget_settings.max_memory = in.max_memory;
    const size_t budget = host_budget(budget_settings, &what);
    const double need = parsed + kept + text;
    AXF_CHECK(need <= static_cast<double>(budget),
              "the alignments of %s (%s) need about %s to read, more than %s; trim them (AlphaFold keeps 10000 "
              "uniref90 and 501 mgnify hits) or use a machine with more memory",
              in.fasta.c_str(), rows.c_str(), format_bytes(static_cast<size_t>(need)).c_str(), what.c_str());
}

}  // namespace

pipeline::RawFeatures build_raw_features(const InputOptions& in) {
    if (in.fasta.empty()) {
        AXF_CHECK(!in.features.empty(), "give --fasta (with optional --msa files) or --features");
        AXF_CHECK(in.msas.empty(), "--msa needs --fasta (the query sequence); --features files carry their own MSA");
        return pipeline::read_raw_features_h5(in.features);
    }
    AXF_CHECK(in.features.empty(), "give either --fasta or --features, not both");
    const std::vector<io::FastaRecord> recs = io::read_fasta(in.fasta);
    AXF_CHECK(recs.size() == 1,
              "%s: %zu sequences (records at lines %d and %d ...); a monomer prediction takes exactly one",
              in.fasta.c_str(), recs.size(), recs[0].line, recs.size() > 1 ? recs[1].line : 0);
    std::vector<std::pair<std::string, int64_t>> alignments;
    for (const std::string& path : in.msas)
        alignments.emplace_back(path, static_cast<int64_t>(recs[0].sequence.size()));
    check_alignments_fit(alignments, in);
    std::vector<io::Msa> msas;
    for (const std::string& path : in.msas) {
        msas.push_back(io::read_msa(path));
        note(in, "  %s: %lld rows (depth limit %lld)", path.c_str(), (long long)msas.back().depth(),
             (long long)io::default_max_hits(path));
    }
    pipeline::RawFeatures raw = pipeline::make_raw_features(recs[0].sequence, recs[0].description, msas);
    raw.source = in.fasta;
    note(in, "  %s: N=%lld, %lld distinct MSA rows%s", in.fasta.c_str(), (long long)raw.num_res(),
         (long long)raw.msa_depth(), msas.empty() ? " (single-sequence mode)" : "");
    return raw;
}

bool is_complex_input(const InputOptions& in) {
    if (!in.msa_dir.empty()) return true;
    if (!in.fasta.empty()) return pipeline::is_complex_fasta(in.fasta);
    return !in.features.empty() && pipeline::detect_feature_file(in.features) == pipeline::FeatureFileKind::Raw &&
           io::Hdf5File(in.features).has_dataset("asym_id");
}

ComplexInput build_complex_input(const InputOptions& in) {
    if (in.fasta.empty()) {
        AXF_CHECK(!in.features.empty() && in.msa_dir.empty() && in.msas.empty(),
                  "a complex needs --fasta (one record per chain) with --msa-dir, or --features with merged features");
        return {{}, pipeline::read_merged_features_h5(in.features)};
    }
    AXF_CHECK(in.features.empty(), "give either --fasta or --features, not both");
    if (!in.msa_dir.empty()) {  // each distinct chain's alignments (msas/<its first chain's id>), sized before reading
        std::vector<std::pair<std::string, int64_t>> alignments;
        std::set<std::string> seen;
        std::vector<pipeline::ComplexChain> chains = pipeline::complex_chains(io::read_fasta(in.fasta, true), in.fasta);
        std::sort(chains.begin(), chains.end(),
                  [](const auto& a, const auto& b) { return a.input_index < b.input_index; });
        for (const pipeline::ComplexChain& ch : chains) {
            const std::string dir = (std::filesystem::path(in.msa_dir) / ch.chain_id).string();
            if (!seen.insert(ch.sequence).second || !std::filesystem::is_directory(dir)) continue;
            std::vector<std::string> files = pipeline::chain_alignment_files(dir);
            if (std::filesystem::is_regular_file(dir + "/uniprot_hits.sto")) files.push_back(dir + "/uniprot_hits.sto");
            for (const std::string& path : files)
                alignments.emplace_back(path, static_cast<int64_t>(ch.sequence.size()));
        }
        check_alignments_fit(alignments, in);
    }
    pipeline::ComplexFeatures c = pipeline::complex_features(in.fasta, in.msas, in.msa_dir);
    std::string summary;
    for (const pipeline::ComplexChain& ch : c.chains)
        summary += strfmt("%s%s (%s, %zu residues, entity %lld)", summary.empty() ? "" : ", ", ch.chain_id.c_str(),
                          ch.name.c_str(), ch.sequence.size(), (long long)ch.entity_id);
    note(in, "  %s: %zu chains: %s; merged MSA %lld rows (%s)", in.fasta.c_str(), c.chains.size(), summary.c_str(),
         (long long)c.merged.at("num_alignments").data<int32_t>()[0], c.mode.c_str());
    return {std::move(c.chains), std::move(c.merged)};
}

pipeline::TransformConfig transform_config(const InputOptions& in, const std::string& model_name, int num_recycle) {
    pipeline::TransformConfig c = pipeline::TransformConfig::for_model(model_name, in.seed, num_recycle);
    if (in.max_msa_clusters >= 0) c.max_msa_clusters = in.max_msa_clusters;
    if (in.max_extra_msa >= 0) c.max_extra_msa = in.max_extra_msa;
    c.pad_to_fixed_size = !in.no_msa_padding;
    return c;
}

pipeline::ProcessedFeatures model_features(const InputOptions& in, const std::string& model_name, int num_recycle) {
    if (in.fasta.empty() && !in.features.empty() &&
        pipeline::detect_feature_file(in.features) == pipeline::FeatureFileKind::Processed) {
        AXF_CHECK(in.msas.empty(), "--msa needs --fasta; '%s' holds processed features already", in.features.c_str());
        return io::read_features_h5(in.features);
    }
    const bool multimer = ModelPreset::from_name(model_name).multimer;
    AXF_CHECK(multimer == is_complex_input(in),
              "%s is %s model, but the input is %s: AlphaFold-Multimer models take complexes (--msa-dir, several "
              "chains), monomer models one chain",
              model_name.c_str(), multimer ? "an AlphaFold-Multimer" : "a monomer",
              multimer ? "one chain" : "a complex");
    if (multimer)
        return pipeline::process_multimer_features(build_complex_input(in).merged,
                                                   transform_config(in, model_name, num_recycle));
    auto t0 = Clock::now();
    pipeline::RawFeatures raw = build_raw_features(in);
    const double t_raw = since(t0);
    t0 = Clock::now();
    pipeline::ProcessedFeatures f = pipeline::process_features(raw, transform_config(in, model_name, num_recycle));
    note(in, "  features: raw %.3f s, transforms %.3f s (%lld iterations, msa_feat %s, extra_msa %s)", t_raw, since(t0),
         (long long)f.at("msa_feat").size(0), shape_str(f.at("msa_feat").shape()).c_str(),
         shape_str(f.at("extra_msa").shape()).c_str());
    return f;
}

int features_main(const FeaturesOptions& o) {
    AXF_CHECK(!o.out.empty(), "features: -o/--out is required");
    set_num_threads(o.threads);
    auto t0 = Clock::now();
    if (o.processed) {
        io::write_features_h5(o.out, model_features(o.in, o.model_name, o.num_recycle));
    } else if (is_complex_input(o.in)) {
        AXF_CHECK(!o.in.fasta.empty(), "features: --fasta is required (with --msa-dir for a complex's alignments)");
        io::Hdf5Writer w(o.out);
        for (const auto& [k, t] : build_complex_input(o.in).merged) w.write(k, t);
        w.commit();
    } else {
        AXF_CHECK(!o.in.fasta.empty(), "features: --fasta is required (or --features RAW.h5 with --processed)");
        pipeline::write_raw_features_h5(o.out, build_raw_features(o.in));
    }
    std::printf("axfold features: wrote %s (%s) in %.3f s\n", o.out.c_str(), o.processed ? "processed" : "raw",
                since(t0));
    return 0;
}

}  // namespace axfold::apps
