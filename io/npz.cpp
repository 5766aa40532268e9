// NumPy .npz reader and writer: ZIP central directory (with ZIP64) + .npy payloads, via zlib.
#include "io/npz.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>
#include <vector>

namespace axfold::io {

static_assert(std::endian::native == std::endian::little,
              "the .npz reader copies little-endian payloads verbatim and needs a little-endian host");

namespace {

constexpr uint32_t kLocalHeaderSig = 0x04034b50;
constexpr uint32_t kCentralHeaderSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kEocdSize = 22;
constexpr size_t kZip64LocatorSize = 20;
constexpr size_t kZip64EocdSize = 56;
constexpr size_t kLocalHeaderSize = 30;
constexpr size_t kCentralHeaderSize = 46;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kMax32 = 0xffffffffu;
constexpr uint16_t kMax16 = 0xffffu;
// Deflate cannot expand data by more than about 1032:1; a larger claim means a corrupt header, and
// believing it would mean a huge allocation.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr size_t kIoChunk = size_t{4} << 20;

uint16_t rd16(const unsigned char* p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}
uint32_t rd32(const unsigned char* p) {
    return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
           (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t rd64(const unsigned char* p) {
    return static_cast<uint64_t>(rd32(p)) | (static_cast<uint64_t>(rd32(p + 4)) << 32);
}

void wr16(std::string& s, uint16_t v) {
    s.push_back(static_cast<char>(v & 0xff));
    s.push_back(static_cast<char>(v >> 8));
}
void wr32(std::string& s, uint32_t v) {
    wr16(s, static_cast<uint16_t>(v & 0xffff));
    wr16(s, static_cast<uint16_t>(v >> 16));
}
void wr64(std::string& s, uint64_t v) {
    wr32(s, static_cast<uint32_t>(v & kMax32));
    wr32(s, static_cast<uint32_t>(v >> 32));
}

// zlib takes uInt lengths; feed large buffers in pieces.
uint32_t crc32_update(uint32_t crc, const void* data, size_t n) {
    const auto* p = static_cast<const Bytef*>(data);
    uLong c = crc;
    while (n > 0) {
        uInt k = static_cast<uInt>(std::min<size_t>(n, size_t{1} << 30));
        c = crc32(c, p, k);
        p += k;
        n -= k;
    }
    return static_cast<uint32_t>(c);
}

// Read-only file with positioned reads; every short read is an error that names the file.
class InputFile {
public:
    explicit InputFile(const std::string& path) : path_(path) {
        fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        AXF_CHECK(fd_ >= 0, "cannot open '%s': %s", path.c_str(), std::strerror(errno));
        struct stat st {};
        if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
            ::close(fd_);
            fd_ = -1;
            AXF_FAIL("'%s' is not a regular file", path.c_str());
        }
        size_ = static_cast<uint64_t>(st.st_size);
    }
    ~InputFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    uint64_t size() const { return size_; }

    void read_at(uint64_t offset, void* dst, size_t n, const std::string& what) const {
        AXF_CHECK(offset <= size_ && n <= size_ - offset,
                  "'%s' is truncated or corrupt: %s needs bytes [%llu, %llu) but the file has %llu bytes",
                  path_.c_str(), what.c_str(), static_cast<unsigned long long>(offset),
                  static_cast<unsigned long long>(offset + n), static_cast<unsigned long long>(size_));
        auto* p = static_cast<char*>(dst);
        while (n > 0) {
            ssize_t r = ::pread(fd_, p, std::min(n, kIoChunk), static_cast<off_t>(offset));
            if (r < 0 && errno == EINTR) continue;
            AXF_CHECK(r > 0, "read error in '%s' while reading %s: %s", path_.c_str(), what.c_str(),
                      r < 0 ? std::strerror(errno) : "unexpected end of file");
            p += r;
            offset += static_cast<uint64_t>(r);
            n -= static_cast<size_t>(r);
        }
    }

private:
    std::string path_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

struct ZipEntry {
    std::string name;
    uint16_t flags = 0;
    uint16_t method = 0;
    uint32_t crc = 0;
    uint64_t comp_size = 0;
    uint64_t uncomp_size = 0;
    uint64_t local_offset = 0;
};

struct CentralDirectory {
    uint64_t offset = 0;
    uint64_t size = 0;
    uint64_t entries = 0;
};

CentralDirectory find_central_directory(const InputFile& f, const std::string& path) {
    const uint64_t size = f.size();
    AXF_CHECK(size > 0, "'%s' is empty (0 bytes); expected a NumPy .npz (zip) archive", path.c_str());
    unsigned char head[4] = {0, 0, 0, 0};
    f.read_at(0, head, std::min<uint64_t>(4, size), "the file signature");
    const bool starts_like_zip = rd32(head) == kLocalHeaderSig || rd32(head) == kEocdSig;
    AXF_CHECK(size >= kEocdSize,
              "'%s' is not a NumPy .npz archive: only %llu bytes, smaller than a zip end-of-central-directory "
              "record",
              path.c_str(), static_cast<unsigned long long>(size));

    // The EOCD record sits at the end, followed only by an archive comment of at most 65535 bytes.
    const size_t tail_len = static_cast<size_t>(std::min<uint64_t>(size, kEocdSize + kMax16));
    std::vector<unsigned char> tail(tail_len);
    const uint64_t tail_start = size - tail_len;
    f.read_at(tail_start, tail.data(), tail_len, "the zip end-of-central-directory record");
    size_t eocd = std::numeric_limits<size_t>::max();
    for (size_t i = tail_len - kEocdSize + 1; i-- > 0;) {
        if (rd32(&tail[i]) == kEocdSig && i + kEocdSize + rd16(&tail[i + 20]) <= tail_len) {
            eocd = i;
            break;
        }
    }
    AXF_CHECK(eocd != std::numeric_limits<size_t>::max(),
              starts_like_zip ? "'%s' is truncated: it starts like a zip archive but has no end-of-central-directory "
                                "record (an interrupted download or copy?)"
                              : "'%s' is not a NumPy .npz archive (no zip signature and no end-of-central-directory "
                                "record)",
              path.c_str());
    const unsigned char* e = &tail[eocd];
    const uint64_t eocd_pos = tail_start + eocd;
    CentralDirectory cd;
    uint16_t disk = rd16(e + 4), cd_disk = rd16(e + 6);
    cd.entries = rd16(e + 10);
    cd.size = rd32(e + 12);
    cd.offset = rd32(e + 16);
    AXF_CHECK(disk == 0 && cd_disk == 0 && rd16(e + 8) == rd16(e + 10),
              "'%s' is a multi-volume zip archive, which is not supported", path.c_str());

    // A ZIP64 locator directly before the EOCD points at the ZIP64 EOCD with the 64-bit counts.
    bool zip64_needed = cd.entries == kMax16 || cd.size == kMax32 || cd.offset == kMax32;
    bool has_locator = false;
    unsigned char loc[kZip64LocatorSize];
    if (eocd_pos >= kZip64LocatorSize) {
        f.read_at(eocd_pos - kZip64LocatorSize, loc, kZip64LocatorSize, "the ZIP64 end-of-central-directory locator");
        has_locator = rd32(loc) == kZip64LocatorSig;
    }
    AXF_CHECK(has_locator || !zip64_needed,
              "'%s' is corrupt: the end-of-central-directory record needs ZIP64 but the ZIP64 locator is missing",
              path.c_str());
    if (has_locator) {
        const uint64_t z64_pos = rd64(loc + 8);
        unsigned char z[kZip64EocdSize];
        f.read_at(z64_pos, z, kZip64EocdSize, "the ZIP64 end-of-central-directory record");
        AXF_CHECK(rd32(z) == kZip64EocdSig,
                  "'%s' is corrupt: bad ZIP64 end-of-central-directory signature at offset %llu", path.c_str(),
                  static_cast<unsigned long long>(z64_pos));
        AXF_CHECK(rd32(z + 16) == 0 && rd32(z + 20) == 0, "'%s' is a multi-volume zip archive, which is not supported",
                  path.c_str());
        cd.entries = rd64(z + 32);
        cd.size = rd64(z + 40);
        cd.offset = rd64(z + 48);
    }
    AXF_CHECK(cd.offset <= eocd_pos && cd.size <= eocd_pos - cd.offset,
              "'%s' is truncated or corrupt: the central directory (offset %llu, %llu bytes) lies outside the file "
              "(%llu bytes)",
              path.c_str(), static_cast<unsigned long long>(cd.offset), static_cast<unsigned long long>(cd.size),
              static_cast<unsigned long long>(size));
    return cd;
}

std::vector<ZipEntry> read_central_directory(const InputFile& f, const CentralDirectory& cd, const std::string& path) {
    std::vector<unsigned char> buf(static_cast<size_t>(cd.size));
    f.read_at(cd.offset, buf.data(), buf.size(), "the zip central directory");
    std::vector<ZipEntry> entries;
    size_t p = 0;
    while (p < buf.size()) {
        AXF_CHECK(buf.size() - p >= kCentralHeaderSize && rd32(&buf[p]) == kCentralHeaderSig,
                  "'%s' is corrupt: bad zip central directory header #%zu at offset %llu", path.c_str(), entries.size(),
                  static_cast<unsigned long long>(cd.offset + p));
        const unsigned char* h = &buf[p];
        ZipEntry e;
        e.flags = rd16(h + 8);
        e.method = rd16(h + 10);
        e.crc = rd32(h + 16);
        e.comp_size = rd32(h + 20);
        e.uncomp_size = rd32(h + 24);
        const size_t name_len = rd16(h + 28), extra_len = rd16(h + 30), comment_len = rd16(h + 32);
        const uint16_t disk = rd16(h + 34);
        e.local_offset = rd32(h + 42);
        AXF_CHECK(buf.size() - p - kCentralHeaderSize >= name_len + extra_len + comment_len,
                  "'%s' is corrupt: zip central directory entry #%zu runs past the directory", path.c_str(),
                  entries.size());
        e.name.assign(reinterpret_cast<const char*>(h + kCentralHeaderSize), name_len);

        // ZIP64 extra field: 64-bit values, present only for the fields saturated in the header, in this order.
        const unsigned char* x = h + kCentralHeaderSize + name_len;
        const unsigned char* x_end = x + extra_len;
        while (x_end - x >= 4) {
            const uint16_t id = rd16(x), len = rd16(x + 2);
            AXF_CHECK(x_end - x - 4 >= len, "'%s' is corrupt: extra field of entry '%s' runs past its header",
                      path.c_str(), e.name.c_str());
            if (id == kZip64ExtraId) {
                const unsigned char* v = x + 4;
                const unsigned char* v_end = v + len;
                auto take = [&](uint64_t& field) {
                    AXF_CHECK(v_end - v >= 8, "'%s' is corrupt: short ZIP64 extra field in entry '%s'", path.c_str(),
                              e.name.c_str());
                    field = rd64(v);
                    v += 8;
                };
                if (e.uncomp_size == kMax32) take(e.uncomp_size);
                if (e.comp_size == kMax32) take(e.comp_size);
                if (e.local_offset == kMax32) take(e.local_offset);
            }
            x += 4 + len;
        }
        AXF_CHECK(disk == 0 || disk == kMax16, "'%s': entry '%s' lives on another zip volume (unsupported)",
                  path.c_str(), e.name.c_str());
        entries.push_back(std::move(e));
        p += kCentralHeaderSize + name_len + extra_len + comment_len;
    }
    AXF_CHECK(entries.size() == cd.entries, "'%s' is corrupt: the zip directory announces %llu entries but holds %zu",
              path.c_str(), static_cast<unsigned long long>(cd.entries), entries.size());
    return entries;
}

// The uncompressed bytes of one entry, CRC-checked; with max_bytes below its size, only its first max_bytes (not
// checked: the rest is not read).
std::vector<unsigned char> read_entry(const InputFile& f, const ZipEntry& e, uint64_t data_limit,
                                      const std::string& path, uint64_t max_bytes = UINT64_MAX) {
    const bool partial = max_bytes < e.uncomp_size;
    const std::string what = "entry '" + e.name + "'";
    AXF_CHECK(!(e.flags & 1), "'%s': %s is encrypted; encrypted zip archives are not supported", path.c_str(),
              what.c_str());
    unsigned char lh[kLocalHeaderSize];
    f.read_at(e.local_offset, lh, kLocalHeaderSize, "the local header of " + what);
    AXF_CHECK(rd32(lh) == kLocalHeaderSig, "'%s' is corrupt: bad local header signature for %s at offset %llu",
              path.c_str(), what.c_str(), static_cast<unsigned long long>(e.local_offset));
    const uint64_t data_offset = e.local_offset + kLocalHeaderSize + rd16(lh + 26) + rd16(lh + 28);
    AXF_CHECK(data_offset <= data_limit && e.comp_size <= data_limit - data_offset,
              "'%s' is truncated or corrupt: the data of %s (offset %llu, %llu bytes) runs past the archive data",
              path.c_str(), what.c_str(), static_cast<unsigned long long>(data_offset),
              static_cast<unsigned long long>(e.comp_size));

    std::vector<unsigned char> out;
    if (e.method == 0) {
        AXF_CHECK(e.comp_size == e.uncomp_size, "'%s' is corrupt: stored %s has compressed size %llu != size %llu",
                  path.c_str(), what.c_str(), static_cast<unsigned long long>(e.comp_size),
                  static_cast<unsigned long long>(e.uncomp_size));
        out.resize(static_cast<size_t>(std::min(e.uncomp_size, max_bytes)));
        f.read_at(data_offset, out.data(), out.size(), "the data of " + what);
    } else if (e.method == 8) {
        AXF_CHECK(e.uncomp_size <= e.comp_size * kMaxDeflateRatio + 1024,
                  "'%s' is corrupt: deflated %s claims %llu bytes from %llu compressed bytes", path.c_str(),
                  what.c_str(), static_cast<unsigned long long>(e.uncomp_size),
                  static_cast<unsigned long long>(e.comp_size));
        out.resize(static_cast<size_t>(std::min(e.uncomp_size, max_bytes)));
        z_stream zs{};
        AXF_CHECK(inflateInit2(&zs, -MAX_WBITS) == Z_OK, "zlib inflateInit2 failed while reading '%s'", path.c_str());
        struct InflateGuard {
            z_stream* s;
            ~InflateGuard() { inflateEnd(s); }
        } guard{&zs};
        std::vector<unsigned char> in(static_cast<size_t>(std::min<uint64_t>(e.comp_size, kIoChunk)));
        uint64_t in_pos = 0;
        size_t out_pos = 0;
        int rc = Z_OK;
        while (rc != Z_STREAM_END && !(partial && out_pos == out.size())) {
            if (zs.avail_in == 0 && in_pos < e.comp_size) {
                const size_t k = static_cast<size_t>(std::min<uint64_t>(in.size(), e.comp_size - in_pos));
                f.read_at(data_offset + in_pos, in.data(), k, "the data of " + what);
                in_pos += k;
                zs.next_in = in.data();
                zs.avail_in = static_cast<uInt>(k);
            }
            // One spare byte of room, so that data longer than announced shows up as an error, not a stall.
            unsigned char spare = 0;
            const size_t room = out.size() - out_pos;
            zs.next_out = room > 0 ? out.data() + out_pos : &spare;
            zs.avail_out = room > 0 ? static_cast<uInt>(std::min<size_t>(room, size_t{1} << 30)) : 1;
            const uInt avail_before = zs.avail_out;
            rc = inflate(&zs, Z_NO_FLUSH);
            AXF_CHECK(
                rc == Z_OK || rc == Z_STREAM_END || (rc == Z_BUF_ERROR && zs.avail_in == 0 && in_pos < e.comp_size),
                "'%s' is corrupt: inflating %s failed (zlib: %s)", path.c_str(), what.c_str(),
                zs.msg ? zs.msg : (rc == Z_BUF_ERROR ? "compressed data ends early" : "error"));
            const size_t produced = avail_before - zs.avail_out;
            AXF_CHECK(room > 0 || produced == 0, "'%s' is corrupt: %s inflates to more than its declared %llu bytes",
                      path.c_str(), what.c_str(), static_cast<unsigned long long>(e.uncomp_size));
            out_pos += produced;
            AXF_CHECK(rc == Z_STREAM_END || zs.avail_in > 0 || in_pos < e.comp_size || produced > 0,
                      "'%s' is truncated or corrupt: the compressed data of %s ends early", path.c_str(), what.c_str());
        }
        AXF_CHECK(partial || out_pos == out.size(), "'%s' is corrupt: %s inflates to %zu bytes, its header says %llu",
                  path.c_str(), what.c_str(), out_pos, static_cast<unsigned long long>(e.uncomp_size));
    } else {
        AXF_FAIL("'%s': %s uses zip compression method %u; only stored (0) and deflate (8) are supported", path.c_str(),
                 what.c_str(), static_cast<unsigned>(e.method));
    }
    if (partial) return out;
    const uint32_t crc = crc32_update(0, out.data(), out.size());
    AXF_CHECK(crc == e.crc, "'%s' is corrupt: CRC-32 mismatch in %s (stored %08x, computed %08x)", path.c_str(),
              what.c_str(), e.crc, crc);
    return out;
}

// Just enough of a Python literal parser for the .npy header dict.
class HeaderParser {
public:
    HeaderParser(const std::string& s, const std::string& what) : s_(s), what_(what) {}

    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
    }
    bool peek(char c) {
        ws();
        return i_ < s_.size() && s_[i_] == c;
    }
    void expect(char c) {
        AXF_CHECK(peek(c), "%s: malformed .npy header (expected '%c' at column %zu): %s", what_.c_str(), c, i_,
                  s_.c_str());
        ++i_;
    }
    std::string string_lit() {
        ws();
        AXF_CHECK(i_ < s_.size() && (s_[i_] == '\'' || s_[i_] == '"'),
                  "%s: malformed .npy header (expected a string at column %zu): %s", what_.c_str(), i_, s_.c_str());
        const char q = s_[i_++];
        const size_t end = s_.find(q, i_);
        AXF_CHECK(end != std::string::npos, "%s: malformed .npy header (unterminated string): %s", what_.c_str(),
                  s_.c_str());
        std::string r = s_.substr(i_, end - i_);
        i_ = end + 1;
        return r;
    }
    std::string word() {
        ws();
        size_t b = i_;
        while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-'))
            ++i_;
        AXF_CHECK(i_ > b, "%s: malformed .npy header (unexpected character at column %zu): %s", what_.c_str(), b,
                  s_.c_str());
        return s_.substr(b, i_ - b);
    }
    bool bool_lit() {
        std::string w = word();
        AXF_CHECK(w == "True" || w == "False", "%s: malformed .npy header (expected True or False, got '%s')",
                  what_.c_str(), w.c_str());
        return w == "True";
    }
    Shape shape_tuple() {
        Shape shape;
        expect('(');
        while (!peek(')')) {
            std::string w = word();
            if (!w.empty() && (w.back() == 'L' || w.back() == 'l')) w.pop_back();  // Python 2 longs
            char* end = nullptr;
            errno = 0;
            long long v = std::strtoll(w.c_str(), &end, 10);
            AXF_CHECK(!w.empty() && *end == '\0' && errno == 0 && v >= 0,
                      "%s: malformed .npy header (bad dimension '%s' in shape)", what_.c_str(), w.c_str());
            shape.push_back(v);
            if (!peek(')')) expect(',');
        }
        expect(')');
        return shape;
    }
    // Skips a value of a key this reader does not know (future numpy versions).
    void skip_value() {
        ws();
        if (peek('\'') || peek('"')) {
            string_lit();
        } else if (peek('(') || peek('[') || peek('{')) {
            int depth = 0;
            do {
                const char c = s_[i_];
                if (c == '\'' || c == '"') {
                    string_lit();
                    continue;
                }
                if (c == '(' || c == '[' || c == '{') ++depth;
                if (c == ')' || c == ']' || c == '}') --depth;
                ++i_;
            } while (depth > 0 && i_ < s_.size());
            AXF_CHECK(depth == 0, "%s: malformed .npy header (unbalanced brackets): %s", what_.c_str(), s_.c_str());
        } else {
            word();
        }
    }

private:
    const std::string& s_;
    const std::string& what_;
    size_t i_ = 0;
};

DType npy_dtype(const std::string& descr, const std::string& what) {
    AXF_CHECK(descr.size() >= 3, "%s: unsupported .npy dtype '%s'", what.c_str(), descr.c_str());
    const char order = descr[0];
    const std::string code = descr.substr(1);
    AXF_CHECK(order != '>' || code == "u1" || code == "b1",
              "%s: big-endian .npy dtype '%s' is not supported; re-save the array as little-endian ('<')", what.c_str(),
              descr.c_str());
    AXF_CHECK(order == '<' || order == '|' || order == '=' || order == '>', "%s: unsupported .npy dtype '%s'",
              what.c_str(), descr.c_str());
    if (code == "f4") return DType::F32;
    if (code == "f8") return DType::F64;
    if (code == "i4") return DType::I32;
    if (code == "i8") return DType::I64;
    if (code == "u1" || code == "b1") return DType::U8;
    AXF_FAIL("%s: unsupported .npy dtype '%s' (supported: <f4, <f8, <i4, <i8, |u1, |b1)", what.c_str(), descr.c_str());
}

std::string npy_descr(DType t) {
    switch (t) {
        case DType::F32:
            return "<f4";
        case DType::F64:
            return "<f8";
        case DType::I32:
            return "<i4";
        case DType::I64:
            return "<i8";
        case DType::U8:
            return "|u1";
        case DType::BF16:
            break;  // .npy has no bfloat16: callers convert to float32 first
    }
    AXF_FAIL("no .npy dtype for %s", dtype_name(t));
}

std::string npy_header(const Tensor& t) {
    std::string dict = "{'descr': '" + npy_descr(t.dtype()) + "', 'fortran_order': False, 'shape': (";
    for (int d = 0; d < t.dim(); ++d)
        dict += std::to_string(t.size(d)) + (t.dim() == 1 ? "," : d + 1 < t.dim() ? ", " : "");
    dict += "), }";
    // numpy pads with spaces and a final newline so that the data starts 64-byte aligned.
    auto padded = [&](size_t prefix) {
        std::string h = dict;
        const size_t total = prefix + h.size() + 1;
        h.append((64 - total % 64) % 64, ' ');
        h.push_back('\n');
        return h;
    };
    std::string h = padded(10);
    std::string out;
    if (h.size() <= kMax16) {
        out = std::string("\x93NUMPY\x01\x00", 8);
        wr16(out, static_cast<uint16_t>(h.size()));
    } else {
        h = padded(12);
        out = std::string("\x93NUMPY\x02\x00", 8);
        wr32(out, static_cast<uint32_t>(h.size()));
    }
    return out + h;
}

// Owns a FILE* for writing; removes the temporary file unless committed.
class OutputFile {
public:
    OutputFile(const std::string& tmp, const std::string& final_path) : tmp_(tmp), final_(final_path) {
        f_ = std::fopen(tmp.c_str(), "wb");
        AXF_CHECK(f_, "cannot create '%s' (writing '%s'): %s", tmp.c_str(), final_path.c_str(), std::strerror(errno));
    }
    ~OutputFile() {
        if (f_) std::fclose(f_);
        if (!committed_) std::remove(tmp_.c_str());
    }
    OutputFile(const OutputFile&) = delete;
    OutputFile& operator=(const OutputFile&) = delete;

    void write(const void* p, size_t n) {
        if (n == 0) return;
        AXF_CHECK(std::fwrite(p, 1, n, f_) == n, "write error on '%s': %s", tmp_.c_str(), std::strerror(errno));
        pos_ += n;
    }
    void write(const std::string& s) { write(s.data(), s.size()); }
    uint64_t pos() const { return pos_; }

    void commit() {
        bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
        const int err = errno;
        ok = (std::fclose(f_) == 0) && ok;
        f_ = nullptr;
        AXF_CHECK(ok, "write error on '%s': %s", tmp_.c_str(), std::strerror(err ? err : errno));
        AXF_CHECK(std::rename(tmp_.c_str(), final_.c_str()) == 0, "cannot rename '%s' to '%s': %s", tmp_.c_str(),
                  final_.c_str(), std::strerror(errno));
        committed_ = true;
    }

private:
    std::string tmp_, final_;
    std::FILE* f_ = nullptr;
    uint64_t pos_ = 0;
    bool committed_ = false;
};

// A .npy header: the array's dtype and shape, and where its data starts.
struct NpyHeader {
    DType dtype = DType::F32;
    Shape shape;
    size_t data_offset = 0;
    uint64_t data_bytes = 0;  // what the shape and dtype need
};

// size: the bytes present (a whole .npy, or at least its header).
NpyHeader parse_npy_header(const unsigned char* b, size_t size, const std::string& what) {
    AXF_CHECK(size >= 10 && std::memcmp(b, "\x93NUMPY", 6) == 0, "%s is not a .npy array (bad magic)", what.c_str());
    const int major = b[6], minor = b[7];
    size_t hstart = 0, hlen = 0;
    if (major == 1) {
        hstart = 10;
        hlen = rd16(b + 8);
    } else if (major == 2 || major == 3) {
        AXF_CHECK(size >= 12, "%s: truncated .npy header", what.c_str());
        hstart = 12;
        hlen = rd32(b + 8);
    } else {
        AXF_FAIL("%s: unsupported .npy format version %d.%d (supported: 1.0, 2.0, 3.0)", what.c_str(), major, minor);
    }
    AXF_CHECK(hlen <= size - hstart, "%s: truncated .npy header (%zu header bytes announced, %zu present)",
              what.c_str(), hlen, size - hstart);
    const std::string header(reinterpret_cast<const char*>(b + hstart), hlen);

    HeaderParser p(header, what);
    std::string descr;
    bool fortran = false, have_descr = false, have_shape = false, have_order = false;
    Shape shape;
    p.expect('{');
    while (!p.peek('}')) {
        const std::string key = p.string_lit();
        p.expect(':');
        if (key == "descr") {
            AXF_CHECK(!p.peek('[') && !p.peek('('),
                      "%s: structured .npy dtypes are not supported (descr is a record type)", what.c_str());
            descr = p.string_lit();
            have_descr = true;
        } else if (key == "fortran_order") {
            fortran = p.bool_lit();
            have_order = true;
        } else if (key == "shape") {
            shape = p.shape_tuple();
            have_shape = true;
        } else {
            p.skip_value();
        }
        if (!p.peek('}')) p.expect(',');
    }
    p.expect('}');
    AXF_CHECK(have_descr && have_shape && have_order, "%s: .npy header lacks 'descr', 'shape' or 'fortran_order': %s",
              what.c_str(), header.c_str());
    AXF_CHECK(!fortran,
              "%s: Fortran-order (column-major) arrays are not supported; re-save it with np.ascontiguousarray",
              what.c_str());
    const DType dtype = npy_dtype(descr, what);

    uint64_t numel = 1;
    const uint64_t max_numel = (uint64_t{1} << 62) / dtype_size(dtype);
    for (int64_t d : shape) {
        AXF_CHECK(d == 0 || numel <= max_numel / static_cast<uint64_t>(d), "%s: .npy shape %s is too large",
                  what.c_str(), shape_str(shape).c_str());
        numel *= static_cast<uint64_t>(d);
    }
    return {dtype, shape, hstart + hlen, numel * dtype_size(dtype)};
}

// Enough of an entry to hold any .npy header (format 1.0 headers are < 64 KiB; later ones are far smaller in practice).
constexpr uint64_t kNpyHeaderBytes = 70000;

}  // namespace

Tensor parse_npy(const unsigned char* b, size_t size, const std::string& what) {
    const NpyHeader h = parse_npy_header(b, size, what);
    const uint64_t have = size - h.data_offset;
    AXF_CHECK(have == h.data_bytes, "%s: .npy payload has %llu bytes, but shape %s of %s needs %llu", what.c_str(),
              static_cast<unsigned long long>(have), shape_str(h.shape).c_str(), dtype_name(h.dtype),
              static_cast<unsigned long long>(h.data_bytes));
    Tensor t = Tensor::empty(h.shape, h.dtype);
    if (h.data_bytes > 0) std::memcpy(t.raw(), b + h.data_offset, static_cast<size_t>(h.data_bytes));
    return t;
}

namespace {

// Each array entry's key (its name without ".npy") and bytes: the whole entry, or its first max_bytes.
template <class F>
void for_each_npy(const std::string& path, uint64_t max_bytes, F&& f) {
    InputFile file(path);
    const CentralDirectory cd = find_central_directory(file, path);
    std::set<std::string> seen;
    for (const ZipEntry& e : read_central_directory(file, cd, path)) {
        if (!e.name.empty() && e.name.back() == '/') continue;  // directory entries
        std::string key = e.name;
        if (key.size() >= 4 && key.compare(key.size() - 4, 4, ".npy") == 0) key.resize(key.size() - 4);
        AXF_CHECK(seen.insert(key).second, "'%s' holds two entries named '%s'", path.c_str(), e.name.c_str());
        const std::vector<unsigned char> bytes = read_entry(file, e, cd.offset, path, max_bytes);
        f(key, bytes, "'" + path + "' entry '" + e.name + "'");
    }
}

}  // namespace

std::map<std::string, Tensor> read_npz(const std::string& path) {
    std::map<std::string, Tensor> out;
    for_each_npy(path, UINT64_MAX,
                 [&](const std::string& key, const std::vector<unsigned char>& b, const std::string& what) {
                     out[key] = parse_npy(b.data(), b.size(), what);
                 });
    return out;
}

std::map<std::string, Shape> read_npz_shapes(const std::string& path) {
    std::map<std::string, Shape> out;
    for_each_npy(path, kNpyHeaderBytes,
                 [&](const std::string& key, const std::vector<unsigned char>& b, const std::string& what) {
                     out[key] = parse_npy_header(b.data(), b.size(), what).shape;
                 });
    return out;
}

void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays) {
    struct Written {
        std::string name;
        uint32_t crc;
        uint64_t size;
        uint64_t offset;
    };
    std::vector<Written> written;
    OutputFile out(path + ".tmp", path);
    constexpr uint16_t kDosDate1980 = (1 << 5) | 1;  // 1980-01-01, as np.savez writes
    for (const auto& [key, tensor] : arrays) {
        AXF_CHECK(!key.empty(), "write_npz('%s'): empty array name", path.c_str());
        AXF_CHECK(tensor.defined(), "write_npz('%s'): array '%s' is an undefined tensor", path.c_str(), key.c_str());
        const std::string name = key + ".npy";
        AXF_CHECK(name.size() < kMax16, "write_npz('%s'): array name '%s' is too long", path.c_str(), key.c_str());
        const Tensor t = tensor.to(Device::CPU).contiguous();
        const std::string header = npy_header(t);
        const size_t data_bytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
        const uint64_t size = header.size() + data_bytes;
        uint32_t crc = crc32_update(0, header.data(), header.size());
        if (data_bytes > 0) crc = crc32_update(crc, t.raw(), data_bytes);
        const bool zip64 = size >= kMax32;
        const uint64_t offset = out.pos();

        std::string lh;
        wr32(lh, kLocalHeaderSig);
        wr16(lh, zip64 ? 45 : 20);
        wr16(lh, 0);  // flags
        wr16(lh, 0);  // stored
        wr16(lh, 0);  // time
        wr16(lh, kDosDate1980);
        wr32(lh, crc);
        wr32(lh, zip64 ? kMax32 : static_cast<uint32_t>(size));
        wr32(lh, zip64 ? kMax32 : static_cast<uint32_t>(size));
        wr16(lh, static_cast<uint16_t>(name.size()));
        wr16(lh, zip64 ? 20 : 0);
        lh += name;
        if (zip64) {
            wr16(lh, kZip64ExtraId);
            wr16(lh, 16);
            wr64(lh, size);
            wr64(lh, size);
        }
        out.write(lh);
        out.write(header);
        if (data_bytes > 0) out.write(t.raw(), data_bytes);
        written.push_back({name, crc, size, offset});
    }

    const uint64_t cd_offset = out.pos();
    for (const Written& w : written) {
        const bool big_size = w.size >= kMax32, big_offset = w.offset >= kMax32;
        std::string extra;
        if (big_size || big_offset) {
            std::string v;
            if (big_size) {
                wr64(v, w.size);
                wr64(v, w.size);
            }
            if (big_offset) wr64(v, w.offset);
            wr16(extra, kZip64ExtraId);
            wr16(extra, static_cast<uint16_t>(v.size()));
            extra += v;
        }
        std::string ch;
        wr32(ch, kCentralHeaderSig);
        wr16(ch, (3 << 8) | 45);  // made by: unix, zip 4.5
        wr16(ch, extra.empty() ? 20 : 45);
        wr16(ch, 0);
        wr16(ch, 0);
        wr16(ch, 0);
        wr16(ch, kDosDate1980);
        wr32(ch, w.crc);
        wr32(ch, big_size ? kMax32 : static_cast<uint32_t>(w.size));
        wr32(ch, big_size ? kMax32 : static_cast<uint32_t>(w.size));
        wr16(ch, static_cast<uint16_t>(w.name.size()));
        wr16(ch, static_cast<uint16_t>(extra.size()));
        wr16(ch, 0);            // comment
        wr16(ch, 0);            // disk
        wr16(ch, 0);            // internal attributes
        wr32(ch, 0600u << 16);  // external attributes: rw-------, like np.savez
        wr32(ch, big_offset ? kMax32 : static_cast<uint32_t>(w.offset));
        ch += w.name;
        ch += extra;
        out.write(ch);
    }
    const uint64_t cd_size = out.pos() - cd_offset;
    const uint64_t n = written.size();
    const bool zip64 = n >= kMax16 || cd_size >= kMax32 || cd_offset >= kMax32;
    std::string tail;
    if (zip64) {
        const uint64_t z64_offset = out.pos();
        wr32(tail, kZip64EocdSig);
        wr64(tail, kZip64EocdSize - 12);
        wr16(tail, (3 << 8) | 45);
        wr16(tail, 45);
        wr32(tail, 0);
        wr32(tail, 0);
        wr64(tail, n);
        wr64(tail, n);
        wr64(tail, cd_size);
        wr64(tail, cd_offset);
        wr32(tail, kZip64LocatorSig);
        wr32(tail, 0);
        wr64(tail, z64_offset);
        wr32(tail, 1);
    }
    wr32(tail, kEocdSig);
    wr16(tail, 0);
    wr16(tail, 0);
    wr16(tail, zip64 ? kMax16 : static_cast<uint16_t>(n));
    wr16(tail, zip64 ? kMax16 : static_cast<uint16_t>(n));
    wr32(tail, zip64 ? kMax32 : static_cast<uint32_t>(cd_size));
    wr32(tail, zip64 ? kMax32 : static_cast<uint32_t>(cd_offset));
    wr16(tail, 0);
    out.write(tail);
    out.commit();
}

}  // namespace axfold::io
