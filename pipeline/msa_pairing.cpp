// AlphaFold-Multimer's chain features, pairing and merging; see msa_pairing.h.
#include "pipeline/msa_pairing.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "io/hdf5_file.h"
#include "pipeline/transforms.h"
#include "structure/residue_constants.h"

namespace axfold::pipeline {

namespace fs = std::filesystem;

namespace {

constexpr int kGap = 21;  // HHblits and AF order alike
constexpr int64_t kMsaCropSize = 2048, kMaxTemplates = 4, kMinMsaRows = 512, kMaxSpeciesRows = 600;
constexpr int64_t kMaxUniprotHits = 50000;

using Row = std::vector<int32_t>;

// One chain on its way through pair_and_merge.
struct ChainBlock {
    int64_t n = 0;
    std::vector<Row> msa, msa_all;                              // HHblits tokens
    std::vector<Row> del, del_all;                              // deletion counts
    std::vector<std::string> species_all;                       // per msa_all row
    std::vector<float> deletion_mean;                           // [n], over the chain's whole unpaired MSA
    Tensor template_aatype, template_positions, template_mask;  // [T, n] AF order, [T, n, 37, 3], [T, n, 37]
};

std::vector<Row> rows_of(const Tensor& t) {
    const std::vector<int64_t> v = host_int64(t);
    const int64_t n = t.size(1);
    std::vector<Row> rows(static_cast<size_t>(t.size(0)));
    for (size_t r = 0; r < rows.size(); ++r) rows[r].assign(v.begin() + r * n, v.begin() + (r + 1) * n);
    return rows;
}

ChainBlock chain_block(const RawFeatures& raw) {
    ChainBlock b;
    b.n = raw.num_res();
    b.msa = rows_of(raw.at("msa"));
    b.del = rows_of(raw.at(raw.has("deletion_matrix_int") ? "deletion_matrix_int" : "deletion_matrix"));
    b.deletion_mean.assign(static_cast<size_t>(b.n), 0.f);
    for (int64_t j = 0; j < b.n; ++j) {
        double sum = 0;
        for (const Row& d : b.del) sum += d[j];
        b.deletion_mean[j] = static_cast<float>(sum / static_cast<double>(b.del.size()));
    }
    if (raw.has("msa_all_seq")) {
        b.msa_all = rows_of(raw.at("msa_all_seq"));
        b.del_all = rows_of(raw.at("deletion_matrix_int_all_seq"));
        auto it = raw.strings.find("msa_species_identifiers_all_seq");
        AXF_CHECK(it != raw.strings.end() && it->second.size() == b.msa_all.size(),
                  "%s: 'msa_species_identifiers_all_seq' must name the species of each of the %zu msa_all_seq rows",
                  raw.source.c_str(), b.msa_all.size());
        b.species_all = it->second;
    }
    // convert_monomer_features: one-hot HHblits template_aatype -> AF index.
    const int64_t T = raw.has("template_aatype") ? raw.at("template_aatype").size(0) : 0;
    b.template_aatype = Tensor::zeros({T, b.n}, DType::I64);
    if (T > 0) {
        const Tensor& aa = raw.at("template_aatype");
        AXF_CHECK(aa.dim() == 3 && aa.size(1) == b.n && aa.size(2) == 22,
                  "%s: 'template_aatype' has shape %s, expected [T, %lld, 22] (one-hot, HHblits order)",
                  raw.source.c_str(), shape_str(aa.shape()).c_str(), (long long)b.n);
        const std::vector<float> v = [&] {
            const Tensor c = host_cast(aa, DType::F32);
            return std::vector<float>(c.f32(), c.f32() + c.numel());
        }();
        for (int64_t i = 0; i < T * b.n; ++i)
            b.template_aatype.data<int64_t>()[i] =
                hhblits_to_af(static_cast<int>(std::max_element(&v[i * 22], &v[i * 22 + 22]) - &v[i * 22]));
        b.template_positions = host_cast(raw.at("template_all_atom_positions"), DType::F32);
        b.template_mask =
            host_cast(raw.at(raw.has("template_all_atom_masks") ? "template_all_atom_masks" : "template_all_atom_mask"),
                      DType::F32);
        AXF_CHECK(
            b.template_positions.shape() == Shape({T, b.n, 37, 3}) && b.template_mask.shape() == Shape({T, b.n, 37}),
            "%s: template atoms have shapes %s and %s, expected [%lld, %lld, 37, 3] and [%lld, %lld, 37]",
            raw.source.c_str(), shape_str(b.template_positions.shape()).c_str(),
            shape_str(b.template_mask.shape()).c_str(), (long long)T, (long long)b.n, (long long)T, (long long)b.n);
    } else {
        b.template_positions = Tensor::zeros({0, b.n, 37, 3});
        b.template_mask = Tensor::zeros({0, b.n, 37});
    }
    return b;
}

int64_t identity_to_query(const std::vector<Row>& msa, size_t r) {
    int64_t same = 0;
    for (size_t j = 0; j < msa[0].size(); ++j) same += msa[r][j] == msa[0][j];
    return same;
}

// AF2 pair_sequences + reorder_paired_rows: rows of the paired MSA, one index per chain (-1: a gap row).
std::vector<std::vector<int64_t>> paired_rows(const std::vector<ChainBlock>& chains) {
    const size_t C = chains.size();
    std::vector<std::map<std::string, std::vector<size_t>>> by_species(C);
    std::set<std::string> species;
    for (size_t c = 0; c < C; ++c)
        for (size_t r = 0; r < chains[c].species_all.size(); ++r) {
            by_species[c][chains[c].species_all[r]].push_back(r);
            species.insert(chains[c].species_all[r]);
        }
    std::vector<std::vector<std::vector<int64_t>>> groups(C + 1);  // by the number of chains that have the species
    groups[C].push_back(std::vector<int64_t>(C, 0));               // the query rows
    for (const std::string& s : species) {
        if (s.empty()) continue;
        size_t present = 0, take = SIZE_MAX;
        bool too_many = false;
        for (size_t c = 0; c < C; ++c) {
            auto it = by_species[c].find(s);
            if (it == by_species[c].end()) continue;
            ++present;
            take = std::min(take, it->second.size());
            too_many |= static_cast<int64_t>(it->second.size()) > kMaxSpeciesRows;
        }
        if (present <= 1 || too_many) continue;
        std::vector<std::vector<int64_t>> rows(take, std::vector<int64_t>(C, -1));
        for (size_t c = 0; c < C; ++c) {
            auto it = by_species[c].find(s);
            if (it == by_species[c].end()) continue;
            std::vector<size_t> sorted = it->second;
            std::stable_sort(sorted.begin(), sorted.end(), [&](size_t a, size_t b) {
                return identity_to_query(chains[c].msa_all, a) > identity_to_query(chains[c].msa_all, b);
            });
            for (size_t k = 0; k < take; ++k) rows[k][c] = static_cast<int64_t>(sorted[k]);
        }
        groups[present].insert(groups[present].end(), rows.begin(), rows.end());
    }
    std::vector<std::vector<int64_t>> out;
    for (size_t present = C + 1; present-- > 0;) {
        std::vector<std::vector<int64_t>>& g = groups[present];
        auto product = [](const std::vector<int64_t>& r) {  // numpy's int64 product, wrapping like it
            uint64_t p = 1;
            for (int64_t v : r) p *= static_cast<uint64_t>(v);
            const int64_t s = static_cast<int64_t>(p);
            return s < 0 ? -static_cast<uint64_t>(s) : static_cast<uint64_t>(s);
        };
        std::stable_sort(g.begin(), g.end(), [&](const auto& a, const auto& b) { return product(a) < product(b); });
        out.insert(out.end(), g.begin(), g.end());
    }
    return out;
}

// create_paired_features + deduplicate_unpaired_sequences + crop_chains (the MSA part).
void pair_chains(std::vector<ChainBlock>& chains, Pairing how) {
    std::vector<std::vector<int64_t>> paired;
    if (how == Pairing::Species) {
        paired = paired_rows(chains);
    } else {
        for (const ChainBlock& b : chains)
            AXF_CHECK(b.msa_all.size() == chains[0].msa_all.size(), "given pairing: %zu and %zu paired rows",
                      chains[0].msa_all.size(), b.msa_all.size());
        for (size_t r = 0; r < chains[0].msa_all.size(); ++r)
            paired.push_back(std::vector<int64_t>(chains.size(), static_cast<int64_t>(r)));
    }
    for (size_t c = 0; c < chains.size(); ++c) {
        ChainBlock& b = chains[c];
        const Row gap(static_cast<size_t>(b.n), kGap), zero(static_cast<size_t>(b.n), 0);
        std::vector<Row> msa, del;
        for (const std::vector<int64_t>& p : paired) {
            msa.push_back(p[c] < 0 ? gap : b.msa_all[static_cast<size_t>(p[c])]);
            del.push_back(p[c] < 0 ? zero : b.del_all[static_cast<size_t>(p[c])]);
        }
        b.msa_all = std::move(msa);
        b.del_all = std::move(del);
        const std::set<Row> seen(b.msa_all.begin(), b.msa_all.end());
        std::vector<Row> keep_msa, keep_del;
        for (size_t r = 0; r < b.msa.size(); ++r)
            if (!seen.count(b.msa[r])) {
                keep_msa.push_back(b.msa[r]);
                keep_del.push_back(b.del[r]);
            }
        b.msa = std::move(keep_msa);
        b.del = std::move(keep_del);
    }
}

void crop_chain(ChainBlock& b, bool pairing) {
    int64_t unpaired = std::min<int64_t>(static_cast<int64_t>(b.msa.size()), kMsaCropSize);
    if (pairing) {
        const int64_t paired = std::min<int64_t>(static_cast<int64_t>(b.msa_all.size()), kMsaCropSize / 2);
        b.msa_all.resize(static_cast<size_t>(paired));
        b.del_all.resize(static_cast<size_t>(paired));
        int64_t non_gap = 0;
        for (const Row& r : b.msa_all) non_gap += std::any_of(r.begin(), r.end(), [](int32_t v) { return v != kGap; });
        unpaired = std::min<int64_t>(static_cast<int64_t>(b.msa.size()), std::max<int64_t>(kMsaCropSize - non_gap, 0));
    }
    b.msa.resize(static_cast<size_t>(unpaired));
    b.del.resize(static_cast<size_t>(unpaired));
}

Tensor scalar_i32(int64_t v) {
    Tensor t = Tensor::zeros({}, DType::I32);
    t.data<int32_t>()[0] = static_cast<int32_t>(v);
    return t;
}

template <class T>
T* at(Tensor& t, int64_t i) {
    return t.data<T>() + i;
}

// The merged dict's MSA part: paired rows, then each entity's block (its copies side by side), AF order.
void merge_msa(const std::vector<ComplexChain>& chains, const std::vector<ChainBlock>& blocks, bool pairing, int64_t N,
               MergedFeatures& f) {
    const int64_t P = pairing ? static_cast<int64_t>(blocks[0].msa_all.size()) : 0;
    std::vector<int64_t> offset(blocks.size() + 1, 0);  // residue offset of each chain
    for (size_t c = 0; c < blocks.size(); ++c) offset[c + 1] = offset[c] + blocks[c].n;
    // Entity blocks: [first chain, end chain) in the merged order, and their first MSA row.
    std::vector<size_t> entity_start;
    for (size_t c = 0; c < chains.size(); ++c)
        if (c == 0 || chains[c].entity_id != chains[c - 1].entity_id) entity_start.push_back(c);
    entity_start.push_back(chains.size());
    std::vector<int64_t> row_start(entity_start.size(), P);
    for (size_t e = 0; e + 1 < entity_start.size(); ++e) {
        const size_t first = entity_start[e];
        for (size_t c = first; c < entity_start[e + 1]; ++c)
            AXF_CHECK(blocks[c].msa.size() == blocks[first].msa.size() &&
                          blocks[c].msa_all.size() == blocks[first].msa_all.size(),
                      "copies of entity %lld have different MSAs", (long long)chains[c].entity_id);
        row_start[e + 1] = row_start[e] + static_cast<int64_t>(blocks[first].msa.size());
    }
    const int64_t M = row_start.back(), M_out = std::max(M, kMinMsaRows);
    Tensor msa = Tensor::zeros({M_out, N}, DType::I32), del = Tensor::zeros({M_out, N}),
           bert = Tensor::zeros({M_out, N}), mask = Tensor::zeros({M_out, N}), bias = Tensor::zeros({M_out});
    for (int64_t r = 0; r < M; ++r)
        for (int64_t j = 0; j < N; ++j) {
            *at<int32_t>(msa, r * N + j) = kGap;
            *at<float>(mask, r * N + j) = 1.f;
            *at<float>(bert, r * N + j) = r < P ? 1.f : 0.f;
        }
    for (size_t e = 0; e + 1 < entity_start.size(); ++e) {
        if (!pairing) *at<float>(bias, row_start[e]) = 1.f;
        for (size_t c = entity_start[e]; c < entity_start[e + 1]; ++c) {
            const ChainBlock& b = blocks[c];
            auto put = [&](int64_t r, const Row& tokens, const Row& dels) {
                for (int64_t j = 0; j < b.n; ++j) {
                    *at<int32_t>(msa, r * N + offset[c] + j) = hhblits_to_af(tokens[j]);
                    *at<float>(del, r * N + offset[c] + j) = static_cast<float>(dels[j]);
                }
            };
            for (int64_t p = 0; p < P; ++p) put(p, b.msa_all[p], b.del_all[p]);
            for (size_t u = 0; u < b.msa.size(); ++u) put(row_start[e] + static_cast<int64_t>(u), b.msa[u], b.del[u]);
            for (int64_t r = row_start[e]; r < row_start[e + 1]; ++r)
                for (int64_t j = offset[entity_start[e]]; j < offset[entity_start[e + 1]]; ++j)
                    *at<float>(bert, r * N + j) = 1.f;
        }
    }
    if (pairing) *at<float>(bias, 0) = 1.f;
    f["msa"] = msa;
    f["deletion_matrix"] = del;
    f["bert_mask"] = bert;
    f["msa_mask"] = mask;
    f["cluster_bias_mask"] = bias;
    f["num_alignments"] = scalar_i32(M);
}

}  // namespace

bool needs_pairing(const std::vector<ComplexChain>& chains) {
    for (const ComplexChain& c : chains)
        if (c.entity_id != chains[0].entity_id) return true;
    return false;
}

std::vector<std::string> chain_alignment_files(const std::string& chain_dir) {
    std::vector<std::string> files;
    for (const char* name : {"uniref90_hits.sto", "bfd_uniref_hits.a3m", "small_bfd_hits.sto", "mgnify_hits.sto"})
        if (fs::is_regular_file(fs::path(chain_dir) / name)) files.push_back((fs::path(chain_dir) / name).string());
    return files;
}

RawFeatures chain_msa_features(const ComplexChain& chain, const std::string& chain_dir, bool pairing) {
    const std::string where =
        "chain " + chain.chain_id + " ('" + chain.name + "', FASTA line " + std::to_string(chain.line) + ")";
    AXF_CHECK(fs::is_directory(chain_dir),
              "%s: no alignment directory %s (AlphaFold's msas/<chain_id>/ layout: "
              "uniref90_hits.sto, bfd_uniref_hits.a3m, mgnify_hits.sto%s)",
              where.c_str(), chain_dir.c_str(), pairing ? ", uniprot_hits.sto" : "");
    const std::vector<std::string> files = chain_alignment_files(chain_dir);
    const std::string uniprot = (fs::path(chain_dir) / "uniprot_hits.sto").string();
    AXF_CHECK(!files.empty(),
              "%s: %s holds none of uniref90_hits.sto, bfd_uniref_hits.a3m, small_bfd_hits.sto, "
              "mgnify_hits.sto",
              where.c_str(), chain_dir.c_str());
    std::vector<io::Msa> msas;
    for (const std::string& path : files) msas.push_back(io::read_msa(path));
    RawFeatures raw = make_raw_features(chain.sequence, chain.name, msas);
    raw.source = chain_dir;
    if (pairing) {
        AXF_CHECK(fs::is_regular_file(uniprot),
                  "%s: %s is missing; pairing the chains of a heteromer needs each "
                  "chain's UniProt hits (with species in the names)",
                  where.c_str(), uniprot.c_str());
        const RawFeatures all =
            make_raw_features(chain.sequence, chain.name, {io::truncate_msa(io::read_msa(uniprot), kMaxUniprotHits)});
        raw.arrays["msa_all_seq"] = all.at("msa");
        raw.arrays["deletion_matrix_int_all_seq"] = all.at("deletion_matrix_int");
        raw.strings["msa_species_identifiers_all_seq"] = all.strings.at("msa_species_identifiers");
    }
    const fs::path templates = fs::path(chain_dir) / "template_features.h5";
    if (fs::is_regular_file(templates)) {
        const io::Hdf5File f(templates.string());
        for (const char* k : {"template_aatype", "template_all_atom_positions", "template_all_atom_masks"}) {
            AXF_CHECK(f.has_dataset(k), "%s: missing dataset '%s' (AF2's template features)", templates.c_str(), k);
            raw.arrays[k] = f.read(k);
        }
    }
    return raw;
}

std::vector<RawFeatures> complex_msa_features(const std::vector<ComplexChain>& chains, const std::string& msa_dir) {
    const bool pairing = needs_pairing(chains);
    std::map<std::string, RawFeatures> by_sequence;  // AF2 searches once per distinct sequence
    std::vector<RawFeatures> out;
    for (const ComplexChain& c : chains) {
        if (!by_sequence.count(c.sequence)) {
            // The directory of a sequence is named after its first chain in input order.
            ComplexChain owner = c;
            for (const ComplexChain& o : chains)
                if (o.sequence == c.sequence && o.input_index < owner.input_index) owner = o;
            by_sequence[c.sequence] = chain_msa_features(owner, (fs::path(msa_dir) / owner.chain_id).string(), pairing);
        }
        out.push_back(by_sequence[c.sequence]);
    }
    return out;
}

std::vector<RawFeatures> colabfold_msa_features(const std::vector<ComplexChain>& chains, const io::ColabFoldMsa& msa,
                                                const std::string& source) {
    std::vector<RawFeatures> out;
    for (const ComplexChain& c : chains) {
        const auto it = std::find(msa.queries.begin(), msa.queries.end(), c.sequence);
        AXF_CHECK(it != msa.queries.end(),
                  "%s: chain %s ('%s', %zu residues) is not among the file's %zu query chains "
                  "(lengths from its '#' header); the A3M belongs to another complex",
                  source.c_str(), c.chain_id.c_str(), c.name.c_str(), c.sequence.size(), msa.queries.size());
        const size_t n = static_cast<size_t>(it - msa.queries.begin());
        int64_t copies = 0;
        for (const ComplexChain& o : chains) copies += o.sequence == c.sequence;
        AXF_CHECK(copies == msa.cardinalities[n], "%s: the header gives chain %zu %lld copies, the FASTA %lld",
                  source.c_str(), n + 1, (long long)msa.cardinalities[n], (long long)copies);
        RawFeatures raw = make_raw_features(c.sequence, c.name, {msa.unpaired[n]});
        raw.source = source;
        const int64_t P = msa.paired[n].depth(), N = static_cast<int64_t>(c.sequence.size());
        Tensor tokens = Tensor::zeros({P, N}, DType::I32), dels = Tensor::zeros({P, N}, DType::I32);
        for (int64_t r = 0; r < P; ++r)
            for (int64_t j = 0; j < N; ++j) {
                tokens.data<int32_t>()[r * N + j] = io::hhblits_index(msa.paired[n].sequences[r][j]);
                dels.data<int32_t>()[r * N + j] = msa.paired[n].deletion_matrix[r][j];
            }
        raw.arrays["msa_all_seq"] = tokens;
        raw.arrays["deletion_matrix_int_all_seq"] = dels;
        raw.strings["msa_species_identifiers_all_seq"] = std::vector<std::string>(static_cast<size_t>(P));
        out.push_back(raw);
    }
    return out;
}

MergedFeatures pair_and_merge(const std::vector<ComplexChain>& chains, const std::vector<RawFeatures>& raw,
                              Pairing how) {
    AXF_CHECK(!chains.empty() && chains.size() == raw.size(), "pair_and_merge: %zu chains, %zu feature sets",
              chains.size(), raw.size());
    const bool pairing = needs_pairing(chains);
    std::vector<ChainBlock> blocks;
    int64_t N = 0;
    for (size_t c = 0; c < chains.size(); ++c) {
        blocks.push_back(chain_block(raw[c]));
        AXF_CHECK(blocks.back().n == static_cast<int64_t>(chains[c].sequence.size()),
                  "%s: features for %lld residues, but chain %s has %zu", raw[c].source.c_str(),
                  (long long)blocks.back().n, chains[c].chain_id.c_str(), chains[c].sequence.size());
        AXF_CHECK(!pairing || !blocks.back().msa_all.empty(),
                  "%s: no UniProt alignment (msa_all_seq) for chain %s; pairing needs one per chain",
                  raw[c].source.c_str(), chains[c].chain_id.c_str());
        N += blocks.back().n;
    }
    if (pairing) pair_chains(blocks, how);
    for (ChainBlock& b : blocks) crop_chain(b, pairing);

    MergedFeatures f = complex_residue_features(chains);
    merge_msa(chains, blocks, pairing, N, f);
    f["aatype"] = host_cast(f["aatype"], DType::I32);
    f["residue_index"] = host_cast(f["residue_index"], DType::I32);
    Tensor entity_mask = Tensor::zeros({N}, DType::I32), deletion_mean = Tensor::zeros({N}),
           atom_mask = Tensor::zeros({N, 37});
    Tensor t_aatype = Tensor::zeros({kMaxTemplates, N}, DType::I64), t_pos = Tensor::zeros({kMaxTemplates, N, 37, 3}),
           t_mask = Tensor::zeros({kMaxTemplates, N, 37});
    const rc::RigidGroupTables& groups = rc::rigid_group_tables();
    int64_t i0 = 0;
    for (const ChainBlock& b : blocks) {
        const int64_t T = std::min(b.template_aatype.size(0), kMaxTemplates);
        for (int64_t i = 0; i < b.n; ++i) {
            const int64_t i_out = i0 + i;
            *at<int32_t>(entity_mask, i_out) = 1;
            *at<float>(deletion_mean, i_out) = b.deletion_mean[i];
            const int32_t aa = f["aatype"].data<int32_t>()[i_out];
            for (int k = 0; k < 37; ++k) *at<float>(atom_mask, i_out * 37 + k) = groups.atom37_mask[aa][k];
            for (int64_t t = 0; t < T; ++t) {
                *at<int64_t>(t_aatype, t * N + i_out) = b.template_aatype.data<int64_t>()[t * b.n + i];
                std::copy_n(b.template_positions.f32() + (t * b.n + i) * 111, 111, t_pos.f32() + (t * N + i_out) * 111);
                std::copy_n(b.template_mask.f32() + (t * b.n + i) * 37, 37, t_mask.f32() + (t * N + i_out) * 37);
            }
        }
        i0 += b.n;
    }
    f["entity_mask"] = entity_mask;
    f["deletion_mean"] = deletion_mean;
    f["all_atom_mask"] = atom_mask;
    f["all_atom_positions"] = Tensor::zeros({N, 37, 3});
    f["template_aatype"] = t_aatype;
    f["template_all_atom_positions"] = t_pos;
    f["template_all_atom_mask"] = t_mask;
    f["num_templates"] = scalar_i32(std::min(blocks[0].template_aatype.size(0), kMaxTemplates));
    f["seq_length"] = scalar_i32(N);
    f["assembly_num_chains"] = Tensor::zeros({}, DType::I64);
    f["assembly_num_chains"].data<int64_t>()[0] = static_cast<int64_t>(chains.size());
    // make_msa_profile (OpenFold's masked_mean, eps 1e-4), in float32 as the reference computes it.
    const int64_t M = f["msa"].size(0);
    Tensor profile = Tensor::zeros({N, 22});
    for (int64_t j = 0; j < N; ++j) {
        float count = 0.f;
        std::vector<float> sum(22, 0.f);
        for (int64_t r = 0; r < M; ++r) {
            const float m = f["msa_mask"].f32()[r * N + j];
            count += m;
            sum[static_cast<size_t>(f["msa"].data<int32_t>()[r * N + j])] += m;
        }
        for (int k = 0; k < 22; ++k) profile.f32()[j * 22 + k] = sum[k] / (1e-4f + count);
    }
    f["msa_profile"] = profile;
    return f;
}

ComplexFeatures complex_features(const std::string& fasta, const std::vector<std::string>& msa_paths,
                                 const std::string& msa_dir) {
    const bool colabfold = msa_paths.size() == 1 && io::has_colabfold_header(msa_paths[0]);
    AXF_CHECK(msa_paths.empty() || (colabfold && msa_dir.empty()),
              "%s: a complex's alignments are one ColabFold complex A3M (first line "
              "'#len1,len2<TAB>copies1,copies2') or AlphaFold's alignment directory (--msa-dir DIR, with "
              "DIR/<chain_id>/uniref90_hits.sto, bfd_uniref_hits.a3m, mgnify_hits.sto, uniprot_hits.sto); got %zu "
              "alignment file(s)%s",
              fasta.c_str(), msa_paths.size(),
              colabfold ? " and an alignment directory" : " without ColabFold's header");
    ComplexFeatures c;
    c.chains = complex_chains(io::read_fasta(fasta, true), fasta);
    if (colabfold) {
        c.mode = "ColabFold's paired + unpaired A3M";
        c.merged = pair_and_merge(c.chains,
                                  colabfold_msa_features(c.chains, io::read_colabfold_a3m(msa_paths[0]), msa_paths[0]),
                                  Pairing::Given);
        return c;
    }
    std::vector<RawFeatures> raw;
    if (msa_dir.empty()) {
        c.mode = "single-sequence mode";
        for (const ComplexChain& ch : c.chains) {
            RawFeatures r = make_raw_features(ch.sequence, ch.name, {});
            r.arrays["msa_all_seq"] = r.at("msa");
            r.arrays["deletion_matrix_int_all_seq"] = r.at("deletion_matrix_int");
            r.strings["msa_species_identifiers_all_seq"] = r.strings.at("msa_species_identifiers");
            raw.push_back(r);
        }
    } else {
        c.mode = "alignments from " + msa_dir;
        raw = complex_msa_features(c.chains, msa_dir);
    }
    c.merged = pair_and_merge(c.chains, raw);
    return c;
}

MergedFeatures read_merged_features_h5(const std::string& path) {
    const io::Hdf5File f(path);
    AXF_CHECK(f.has_dataset("asym_id") && f.has_dataset("msa") && f.has_dataset("cluster_bias_mask"),
              "%s: not AlphaFold-Multimer features (needs asym_id, msa, cluster_bias_mask: the merged features "
              "`axfold features` writes for a complex, or AF2's multimer features.pkl converted)",
              path.c_str());
    MergedFeatures m;
    for (const std::string& k : f.list("/", false))
        if (!f.is_string_dataset(k)) m[k] = f.read(k);
    return m;
}

bool is_complex_fasta(const std::string& path) {
    const std::vector<io::FastaRecord> recs = io::read_fasta(path, true);
    return recs.size() > 1 || (recs.size() == 1 && recs[0].sequence.find(':') != std::string::npos);
}

}  // namespace axfold::pipeline
