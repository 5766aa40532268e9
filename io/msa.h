// Sequence and alignment parsers (FASTA, A3M, Stockholm) and AlphaFold2's merge of several alignments
// into the raw MSA features (AF2 `data/parsers.py` parse_fasta / parse_a3m / parse_stockholm and
// `data/pipeline.py` make_msa_features).
//
// Every alignment is reduced to the query's columns: row 0 is the query; each row has one letter per
// query residue (upper case or '-'), and deletion_matrix[i][j] counts the residues row i inserts before
// column j (A3M lower-case letters; Stockholm residues in columns where the query has a gap).
//
// Note: AF2 raises KeyError on '.' and lower-case letters in Stockholm rows and on '.' in A3M rows;
// here '.' is a gap (insert-column padding, as HMMER writes it) and lower-case Stockholm letters are read as
// upper case. Lines starting with '#' in FASTA/A3M (ColabFold's "#<lengths>\t<cardinalities>" header) and
// NUL bytes (ColabFold's record separators) are skipped. Letters outside the IUPAC amino-acid alphabet
// (e.g. '*', digits) are errors naming the file and line, where AF2 raises a bare KeyError.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axfold::io {

struct FastaRecord {
    std::string description;  // header without '>'
    std::string sequence;     // as written, whitespace removed
    int line = 0;             // 1-based line of the header
};

// Parses FASTA text (multi-record, blank lines, long headers). `source` names the file in errors. With
// chain_separators, ':' may separate the chains of a complex in one record (ColabFold's query syntax).
std::vector<FastaRecord> parse_fasta(const std::string& text, const std::string& source, bool chain_separators = false);
std::vector<FastaRecord> read_fasta(const std::string& path, bool chain_separators = false);

struct Msa {
    std::string source;                                 // file it came from
    std::vector<std::string> sequences;                 // [S] aligned rows, length N each
    std::vector<std::vector<int32_t>> deletion_matrix;  // [S][N]
    std::vector<std::string> descriptions;              // [S]
    int64_t depth() const { return static_cast<int64_t>(sequences.size()); }
};

Msa parse_a3m(const std::string& text, const std::string& source);
Msa parse_stockholm(const std::string& text, const std::string& source);
// Reads an alignment file, choosing the format by extension (.a3m, .sto/.stockholm) or, failing that, by
// content ("# STOCKHOLM" header).
Msa read_msa(const std::string& path);
// The rows of an alignment file, counted as read_msa would see them but without keeping them (A3M: its records;
// Stockholm: the distinct names of its first alignment), to size the reading before it happens.
int64_t count_msa_rows(const std::string& path);

// AF2's default per-source depth limit (rows including the query) for a file name: uniref90 10000,
// mgnify 501, uniprot 50000; 0 (unlimited) for everything else (BFD/UniRef30 A3M, ColabFold A3M).
int64_t default_max_hits(const std::string& path);

// Keeps the first max_rows rows (AF2 Msa.truncate); max_rows <= 0 keeps all.
Msa truncate_msa(const Msa& msa, int64_t max_rows);
// Columns [begin, end) of every row (the alignment of a residue range of the query; a training crop).
Msa crop_msa(const Msa& msa, int64_t begin, int64_t end);

// Checks that msa's first row is `query` (the FASTA sequence) and every row has its length; throws naming
// the file (and the row's header) otherwise.
void check_msa_query(const Msa& msa, const std::string& query);

// ColabFold's complex A3M (colabfold_batch input and MMseqs2-server output): a first line
// `#len_1,...,len_k<TAB>card_1,...,card_k` (the lengths and copy numbers of the k distinct chains), then records
// whose rows concatenate the k chains' alignments. As ColabFold's unserialize_msa reads it: a row (each distinct
// header and row once) with residues in two or more chains is a paired row, one row per chain, row i of every
// chain together; other rows are unpaired rows of the chains they have residues in (all rows, with one distinct
// chain). The query (the first record) is paired; each chain's unpaired MSA starts with its query.
struct ColabFoldMsa {
    std::vector<int64_t> lengths, cardinalities;  // per distinct chain
    std::vector<std::string> queries;             // per distinct chain
    std::vector<Msa> paired, unpaired;            // per distinct chain; paired rows aligned across chains
};
// Whether the file starts with ColabFold's `#lengths<TAB>cardinalities` line.
bool has_colabfold_header(const std::string& path);
// Throws naming the file and line for a malformed header or a row whose match columns do not add up to the
// chains' lengths.
ColabFoldMsa parse_colabfold_a3m(const std::string& text, const std::string& source);
ColabFoldMsa read_colabfold_a3m(const std::string& path);

// The UniProt species mnemonic of an alignment row's description (AF2 msa_identifiers.get_identifiers): the first
// word up to '/', matched as `tr|ACCESSION[_d]|NAME_SPECIES[_digits]` or `sp|...`; "" when it does not match
// (UniRef, BFD, MGnify and query names). AF-Multimer pairs rows of different chains by this mnemonic.
std::string uniprot_species(const std::string& description);

// HHblits alphabet index of a letter (A0 C1 D2 E3 F4 G5 H6 I7 K8 L9 M10 N11 P12 Q13 R14 S15 T16 V17 W18 Y19
// X20 -21; B->D, Z->E, U->C, J/O->X), or -1 if the letter is not in AF2's HHBLITS_AA_TO_ID.
int hhblits_index(char c);

}  // namespace axfold::io
