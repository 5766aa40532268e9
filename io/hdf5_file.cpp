// HDF5 reader/writer wrappers; every HDF5 call is checked and failures name the file and object.
#include "io/hdf5_file.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

namespace axfold::io {

static_assert(std::is_same_v<hid_t, int64_t>, "axfold needs HDF5 >= 1.10 (64-bit hid_t)");

namespace {

// Owns one HDF5 identifier and closes it with the matching H5?close.
class Id {
public:
    Id() = default;
    explicit Id(hid_t id) : id_(id) {}
    ~Id() { reset(); }
    Id(Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
    Id& operator=(Id&& o) noexcept {
        if (this != &o) {
            reset();
            id_ = std::exchange(o.id_, H5I_INVALID_HID);
        }
        return *this;
    }
    Id(const Id&) = delete;
    Id& operator=(const Id&) = delete;

    hid_t get() const { return id_; }
    bool valid() const { return id_ >= 0; }
    void reset() {
        if (id_ < 0) return;
        switch (H5Iget_type(id_)) {
            case H5I_FILE:
                H5Fclose(id_);
                break;
            case H5I_GROUP:
                H5Gclose(id_);
                break;
            case H5I_DATASET:
                H5Dclose(id_);
                break;
            case H5I_DATASPACE:
                H5Sclose(id_);
                break;
            case H5I_DATATYPE:
                H5Tclose(id_);
                break;
            case H5I_ATTR:
                H5Aclose(id_);
                break;
            case H5I_GENPROP_LST:
                H5Pclose(id_);
                break;
            default:
                H5Idec_ref(id_);
                break;
        }
        id_ = H5I_INVALID_HID;
    }

private:
    hid_t id_ = H5I_INVALID_HID;
};

// Before the library's first use: no automatic error printing, and no library shutdown at exit. A file whose close
// failed (a full disk) stays open inside libhdf5 1.10, and its shutdown then flushes it again and crashes
// (H5F__close_cb); without the shutdown the process exits normally and the system closes the file.
void silence_hdf5() {
    static const bool once = [] {
        H5dont_atexit();
        return true;
    }();
    (void)once;
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

// The innermost description on HDF5's error stack (then cleared), e.g. " (HDF5: unable to open file)".
std::string hdf5_detail() {
    std::string desc;
    H5Ewalk2(
        H5E_DEFAULT, H5E_WALK_DOWNWARD,
        [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
            auto* s = static_cast<std::string*>(data);
            if (n == 0 && err && err->desc) *s = err->desc;
            return 0;
        },
        &desc);
    H5Eclear2(H5E_DEFAULT);
    return desc.empty() ? std::string() : " (HDF5: " + desc + ")";
}

[[noreturn]] void h5_fail(const char* file, int line, const std::string& msg) {
    throw_error(file, line, msg + hdf5_detail());
}

#define H5_CHECK(cond, ...)                                                      \
    do {                                                                         \
        if (!(cond)) h5_fail(__FILE__, __LINE__, ::axfold::strfmt(__VA_ARGS__)); \
    } while (0)

// "/a/b/" -> "a/b"; "" or "/" -> "".
std::string norm_path(const std::string& p) {
    size_t b = 0, e = p.size();
    while (b < e && p[b] == '/') ++b;
    while (e > b && p[e - 1] == '/') --e;
    return p.substr(b, e - b);
}

// "a/b" -> "/a/b". Built by append: GCC 12 gives a false -Wrestrict for "/" + std::string at -O2.
std::string abs_path(const std::string& p) {
    std::string r("/");
    r.append(norm_path(p));
    return r;
}

// H5Lexists fails on a missing intermediate group, so walk the path one link at a time.
bool path_exists(hid_t loc, const std::string& path) {
    const std::string p = norm_path(path);
    if (p.empty()) return true;
    size_t pos = 0;
    while (true) {
        const size_t slash = p.find('/', pos);
        const std::string prefix = p.substr(0, slash);
        if (slash != pos) {  // skip empty components from "a//b"
            if (H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) {
                H5Eclear2(H5E_DEFAULT);
                return false;
            }
        }
        if (slash == std::string::npos) break;
        pos = slash + 1;
    }
    const htri_t ok = H5Oexists_by_name(loc, p.c_str(), H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return ok > 0;
}

struct MemType {
    DType dtype;
    hid_t mem;  // predefined native type, or invalid for "read with a copy of the file type"
};

// Which Tensor dtype a file datatype is read into.
MemType mem_type_for(hid_t ftype, const std::string& what) {
    const H5T_class_t cls = H5Tget_class(ftype);
    const size_t size = H5Tget_size(ftype);
    if (cls == H5T_FLOAT) {
        return size <= 4 ? MemType{DType::F32, H5T_NATIVE_FLOAT} : MemType{DType::F64, H5T_NATIVE_DOUBLE};
    }
    if (cls == H5T_INTEGER) {
        const bool is_signed = H5Tget_sign(ftype) == H5T_SGN_2;
        if (!is_signed && size == 1) return {DType::U8, H5T_NATIVE_UINT8};
        if ((is_signed && size <= 4) || (!is_signed && size <= 2)) return {DType::I32, H5T_NATIVE_INT32};
        return {DType::I64, H5T_NATIVE_INT64};
    }
    if (cls == H5T_ENUM && size == 1) return {DType::U8, H5I_INVALID_HID};  // h5py bool
    static const char* names[] = {"integer",  "float",     "time", "string",          "bitfield", "opaque",
                                  "compound", "reference", "enum", "variable-length", "array"};
    const char* name = cls >= 0 && cls < static_cast<int>(std::size(names)) ? names[cls] : "unknown";
    AXF_FAIL("%s has HDF5 type class '%s' (%zu bytes); expected a numeric array", what.c_str(), name, size);
}

// The in-memory type for reading a variable-length string stored with file type `ftype` (same charset).
Id variable_string_type(const Id& ftype, const std::string& what) {
    Id mem(H5Tcopy(H5T_C_S1));
    H5_CHECK(mem.valid() && H5Tset_size(mem.get(), H5T_VARIABLE) >= 0 &&
                 H5Tset_cset(mem.get(), H5Tget_cset(ftype.get())) >= 0,
             "%s: cannot make string type", what.c_str());
    return mem;
}

// --- Variable-length strings, read from the file's bytes --------------------------------------------------
// libhdf5 1.10.8 trusts a file's global heap, where variable-length strings live: neither an object's size in
// a heap collection nor the length and heap index stored with each string is checked, so one flipped bit
// makes H5Dread copy past a buffer (tests/fuzz/regressions/features). A contiguous dataset of such strings
// (h5py's layout) is therefore read here from the file (HDF5 format spec, "Global Heap" and
// "Variable-length data"), every size and reference checked; other layouts and attributes go through the
// library after every heap collection in the file has been checked the same way.

struct FileLayout {
    uint64_t base = 0;  // the base address (after any user block)
    size_t sizeof_addr = 8, sizeof_size = 8;
};

FileLayout file_layout(hid_t file, const std::string& path) {
    Id fcpl(H5Fget_create_plist(file));
    size_t sa = 0, ss = 0;
    hsize_t userblock = 0;
    H5_CHECK(fcpl.valid() && H5Pget_sizes(fcpl.get(), &sa, &ss) >= 0 && H5Pget_userblock(fcpl.get(), &userblock) >= 0,
             "'%s': cannot read the file's creation properties", path.c_str());
    AXF_CHECK(sa >= 2 && sa <= 8 && ss >= 2 && ss <= 8, "'%s': unsupported address/length sizes %zu/%zu bytes",
              path.c_str(), sa, ss);
    return {userblock, sa, ss};
}

uint64_t decode_le(const unsigned char* p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    return v;
}

// A file mapped read-only (nothing copied); at() hands out byte ranges, refusing one past the end.
class MappedFile {
public:
    explicit MappedFile(const std::string& path) : path_(path) {
        std::error_code ec;
        size_ = std::filesystem::file_size(path, ec);
        AXF_CHECK(!ec, "cannot stat '%s': %s", path.c_str(), ec.message().c_str());
        if (size_ == 0) return;
        const int fd = ::open(path.c_str(), O_RDONLY);
        AXF_CHECK(fd >= 0, "cannot open '%s': %s", path.c_str(), std::strerror(errno));
        data_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
        ::close(fd);
        AXF_CHECK(data_ != MAP_FAILED, "cannot map '%s': %s", path.c_str(), std::strerror(errno));
    }
    ~MappedFile() {
        if (size_ > 0) ::munmap(data_, size_);
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    std::string_view bytes() const { return {static_cast<const char*>(data_), size_}; }
    // The bytes [offset, offset + n), or an error naming what they were to hold.
    std::string_view at(uint64_t offset, uint64_t n, const char* what) const {
        AXF_CHECK(offset <= size_ && n <= size_ - offset,
                  "'%s' is corrupt: its %s (%llu bytes at offset %llu) lies beyond its end (%llu bytes)", path_.c_str(),
                  what, (unsigned long long)n, (unsigned long long)offset, (unsigned long long)size_);
        return bytes().substr(offset, n);
    }

private:
    std::string path_;
    uint64_t size_ = 0;
    void* data_ = nullptr;
};

struct HeapObject {
    uint64_t offset = 0, size = 0;  // the data's place in its collection's bytes
};
using HeapObjects = std::map<uint64_t, HeapObject>;  // by object index

// The objects of the global heap collection whose bytes (signature on) are `c`. Walks the collection as libhdf5
// does (H5HG__cache_heap_deserialize) and refuses anything it would read past the collection's end with.
HeapObjects heap_objects(std::string_view c, const FileLayout& l, uint64_t addr, const std::string& path) {
    auto align8 = [](uint64_t n) { return (n + 7) / 8 * 8; };
    const uint64_t hdr = align8(8 + l.sizeof_size), objhdr = align8(8 + l.sizeof_size);
    auto corrupt = [&](const char* why, uint64_t at) {
        AXF_FAIL(
            "'%s' is corrupt: the global heap collection at address %llu (where variable-length strings are "
            "kept) %s at byte %llu of its %zu",
            path.c_str(), (unsigned long long)addr, why, (unsigned long long)at, c.size());
    };
    const auto* b = reinterpret_cast<const unsigned char*>(c.data());
    if (c.size() < hdr || std::memcmp(b, "GCOL", 4) != 0 || b[4] != 1) corrupt("has no GCOL version 1 header", 0);
    HeapObjects objects;
    uint64_t p = hdr;
    while (p + objhdr <= c.size()) {  // a remainder too small for an object is free space
        const uint64_t idx = decode_le(b + p, 2), size = decode_le(b + p + 8, l.sizeof_size);
        if (idx == 0) {  // the free space, its size counting its header
            if (size < objhdr || size > c.size() - p) corrupt("has a free-space record of the wrong size", p);
            p += size;
            continue;
        }
        if (size > c.size() - p - objhdr) corrupt("has an object larger than the collection", p);
        objects[idx] = {p + objhdr, size};
        p += objhdr + align8(size);  // the padding of the last object may pass the end, as libhdf5 allows
    }
    return objects;
}

// The bytes of the global heap collection at address `addr` (its size from its header).
std::string_view heap_collection(const MappedFile& file, const FileLayout& l, uint64_t addr) {
    const std::string_view head = file.at(l.base + addr, 8 + l.sizeof_size, "global heap header");
    const uint64_t size = decode_le(reinterpret_cast<const unsigned char*>(head.data()) + 8, l.sizeof_size);
    return file.at(l.base + addr, size, "global heap collection");
}

// Every global heap collection in the file (found by its signature) checked, before libhdf5 reads one.
void check_heap_collections(hid_t file, const std::string& path) {
    const FileLayout l = file_layout(file, path);
    const MappedFile mapped(path);
    const std::string_view all = mapped.bytes(), sig("GCOL\x01\0\0\0", 8);
    for (size_t at = all.find(sig); at != std::string_view::npos; at = all.find(sig, at + 1))
        if (at >= l.base) heap_objects(heap_collection(mapped, l, at - l.base), l, at - l.base, path);
}

// A contiguous dataset of n variable-length strings, read from the file's bytes; nullopt for another layout.
std::optional<std::vector<std::string>> read_contiguous_vlen_strings(hid_t file, hid_t ds, size_t n,
                                                                     const std::string& path, const std::string& what) {
    Id dcpl(H5Dget_create_plist(ds));
    H5_CHECK(dcpl.valid(), "%s: cannot get its creation properties", what.c_str());
    // Contiguous in this file (external storage lies elsewhere: the library reads it, after the heap check).
    if (H5Pget_layout(dcpl.get()) != H5D_CONTIGUOUS || H5Pget_external_count(dcpl.get()) != 0) return std::nullopt;
    const FileLayout l = file_layout(file, path);
    std::vector<std::string> out(n);
    const haddr_t offset = H5Dget_offset(ds);
    H5Eclear2(H5E_DEFAULT);
    if (offset == HADDR_UNDEF) return out;  // never written: every string empty
    const MappedFile mapped(path);
    const uint64_t elem = 4 + l.sizeof_addr + 4;
    // H5Dget_offset is from the start of the file; heap addresses are from the base address (after a user block).
    const auto* r = reinterpret_cast<const unsigned char*>(mapped.at(offset, elem * n, "string references").data());
    std::map<uint64_t, std::pair<std::string_view, HeapObjects>> heaps;  // by address
    for (size_t i = 0; i < n; ++i) {
        const unsigned char* e = r + i * elem;
        const uint64_t len = decode_le(e, 4), addr = decode_le(e + 4, l.sizeof_addr),
                       idx = decode_le(e + 4 + l.sizeof_addr, 4);
        if (addr == 0 && len == 0) continue;  // an empty string
        auto heap = heaps.find(addr);
        if (heap == heaps.end()) {
            const std::string_view c = heap_collection(mapped, l, addr);
            heap = heaps.emplace(addr, std::make_pair(c, heap_objects(c, l, addr, path))).first;
        }
        const auto& [bytes, objects] = heap->second;
        const auto obj = objects.find(idx);
        AXF_CHECK(obj != objects.end() && obj->second.size == len,
                  "%s is corrupt: string %zu refers to object %llu of %llu bytes in the global heap at address %llu, "
                  "which %s",
                  what.c_str(), i, (unsigned long long)idx, (unsigned long long)len, (unsigned long long)addr,
                  obj == objects.end() ? "does not hold it"
                                       : strfmt("holds %llu bytes", (unsigned long long)obj->second.size).c_str());
        out[i] = std::string(bytes.substr(obj->second.offset, len));
    }
    return out;
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
// Hdf5File

Hdf5File::Hdf5File(const std::string& path) : path_(path) {
    silence_hdf5();
    std::error_code ec;
    AXF_CHECK(std::filesystem::exists(path, ec), "HDF5 file '%s' not found", path.c_str());
    AXF_CHECK(std::filesystem::is_regular_file(path, ec), "'%s' is not a regular file", path.c_str());
    const htri_t is_h5 = H5Fis_hdf5(path.c_str());
    H5Eclear2(H5E_DEFAULT);
    AXF_CHECK(is_h5 > 0, "'%s' is not an HDF5 file (no HDF5 signature; empty, truncated or another format?)",
              path.c_str());
    file_ = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    H5_CHECK(file_ >= 0, "cannot open HDF5 file '%s' for reading", path.c_str());
}

Hdf5File::~Hdf5File() {
    if (file_ >= 0) H5Fclose(file_);
}

Hdf5File::Hdf5File(Hdf5File&& o) noexcept
    : path_(std::move(o.path_)), file_(std::exchange(o.file_, -1)), heaps_checked_(o.heaps_checked_) {}

Hdf5File& Hdf5File::operator=(Hdf5File&& o) noexcept {
    if (this != &o) {
        if (file_ >= 0) H5Fclose(file_);
        path_ = std::move(o.path_);
        file_ = std::exchange(o.file_, -1);
        heaps_checked_ = o.heaps_checked_;
    }
    return *this;
}

void Hdf5File::check_heap_collections_once() const {
    if (!heaps_checked_) check_heap_collections(file_, path_);
    heaps_checked_ = true;
}

bool Hdf5File::has(const std::string& path) const {
    AXF_CHECK(file_ >= 0, "Hdf5File used after being moved from");
    return path_exists(file_, path);
}

bool Hdf5File::has_dataset(const std::string& path) const {
    if (!has(path)) return false;
    Id obj(H5Oopen(file_, abs_path(path).c_str(), H5P_DEFAULT));
    H5Eclear2(H5E_DEFAULT);
    return obj.valid() && H5Iget_type(obj.get()) == H5I_DATASET;
}

namespace {

Id open_dataset(hid_t file, const std::string& file_path, const std::string& path) {
    const std::string p = abs_path(path);
    AXF_CHECK(path_exists(file, p), "'%s' has no dataset '%s'", file_path.c_str(), path.c_str());
    Id ds(H5Dopen2(file, p.c_str(), H5P_DEFAULT));
    H5_CHECK(ds.valid(), "'%s': '%s' is not a readable dataset", file_path.c_str(), path.c_str());
    return ds;
}

Shape dataset_shape(hid_t ds, const std::string& what) {
    Id space(H5Dget_space(ds));
    H5_CHECK(space.valid(), "%s: cannot get dataspace", what.c_str());
    const H5S_class_t cls = H5Sget_simple_extent_type(space.get());
    if (cls == H5S_SCALAR) return {};
    AXF_CHECK(cls == H5S_SIMPLE, "%s has no data (null dataspace)", what.c_str());
    const int nd = H5Sget_simple_extent_ndims(space.get());
    H5_CHECK(nd >= 0, "%s: cannot get rank", what.c_str());
    std::vector<hsize_t> dims(static_cast<size_t>(nd));
    H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) >= 0, "%s: cannot get dimensions",
             what.c_str());
    return Shape(dims.begin(), dims.end());
}

}  // namespace

Shape Hdf5File::shape(const std::string& path) const {
    Id ds = open_dataset(file_, path_, path);
    return dataset_shape(ds.get(), "dataset '" + path + "' in '" + path_ + "'");
}

Tensor Hdf5File::read(const std::string& path) const {
    const std::string what = "dataset '" + path + "' in '" + path_ + "'";
    Id ds = open_dataset(file_, path_, path);
    const Shape shape = dataset_shape(ds.get(), what);
    Id ftype(H5Dget_type(ds.get()));
    H5_CHECK(ftype.valid(), "%s: cannot get datatype", what.c_str());
    const MemType mt = mem_type_for(ftype.get(), what);
    Id own_mem;
    hid_t mem = mt.mem;
    if (mem < 0) {
        own_mem = Id(H5Tget_native_type(ftype.get(), H5T_DIR_ASCEND));
        H5_CHECK(own_mem.valid(), "%s: cannot get native datatype", what.c_str());
        mem = own_mem.get();
    }
    Tensor t = Tensor::empty(shape, mt.dtype);
    if (t.numel() > 0) {
        H5_CHECK(H5Dread(ds.get(), mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) >= 0,
                 "failed to read %s (corrupt or truncated file?)", what.c_str());
    }
    return t;
}

Tensor Hdf5File::read_f32(const std::string& path) const {
    return host_cast(read(path), DType::F32);
}

bool Hdf5File::is_string_dataset(const std::string& path) const {
    if (!has_dataset(path)) return false;
    Id ds = open_dataset(file_, path_, path);
    Id ftype(H5Dget_type(ds.get()));
    H5_CHECK(ftype.valid(), "dataset '%s' in '%s': cannot get datatype", path.c_str(), path_.c_str());
    return H5Tget_class(ftype.get()) == H5T_STRING;
}

std::vector<std::string> Hdf5File::read_strings(const std::string& path) const {
    const std::string what = "dataset '" + path + "' in '" + path_ + "'";
    Id ds = open_dataset(file_, path_, path);
    const Shape shape = dataset_shape(ds.get(), what);
    const size_t n = static_cast<size_t>(shape_numel(shape));
    Id ftype(H5Dget_type(ds.get()));
    H5_CHECK(ftype.valid(), "%s: cannot get datatype", what.c_str());
    AXF_CHECK(H5Tget_class(ftype.get()) == H5T_STRING, "%s is not a string dataset", what.c_str());
    std::vector<std::string> out(n);
    if (n == 0) return out;
    const htri_t is_var = H5Tis_variable_str(ftype.get());
    H5_CHECK(is_var >= 0, "%s: cannot inspect string type", what.c_str());
    if (is_var > 0) {
        if (auto strings = read_contiguous_vlen_strings(file_, ds.get(), n, path_, what)) return std::move(*strings);
        check_heap_collections_once();
        const Id mem = variable_string_type(ftype, what);
        std::vector<char*> ptrs(n, nullptr);
        H5_CHECK(H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) >= 0, "failed to read %s",
                 what.c_str());
        for (size_t i = 0; i < n; ++i) {
            out[i] = ptrs[i] ? ptrs[i] : "";
            if (ptrs[i]) H5free_memory(ptrs[i]);
        }
        return out;
    }
    const size_t w = H5Tget_size(ftype.get());
    std::string buf(w * n, '\0');
    H5_CHECK(H5Dread(ds.get(), ftype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) >= 0, "failed to read %s",
             what.c_str());
    for (size_t i = 0; i < n; ++i) {
        std::string s = buf.substr(i * w, w);
        s.resize(std::strlen(s.c_str()));
        if (H5Tget_strpad(ftype.get()) == H5T_STR_SPACEPAD)
            while (!s.empty() && s.back() == ' ') s.pop_back();
        out[i] = s;
    }
    return out;
}

std::vector<std::string> Hdf5File::list(const std::string& group, bool recursive) const {
    const std::string g = norm_path(group);
    AXF_CHECK(path_exists(file_, g), "'%s' has no group '%s'", path_.c_str(), group.c_str());
    Id grp(H5Gopen2(file_, abs_path(g).c_str(), H5P_DEFAULT));
    H5_CHECK(grp.valid(), "'%s': '%s' is not a group", path_.c_str(), group.c_str());

    struct Ctx {
        std::string prefix;
        std::vector<std::string> out;
        bool failed = false;
    } ctx{g.empty() ? std::string() : g + "/", {}, false};
    auto cb = [](hid_t loc, const char* name, const H5L_info_t* info, void* data) -> herr_t {
        auto* c = static_cast<Ctx*>(data);
        if (info->type != H5L_TYPE_HARD) return 0;  // soft/external links: not followed
        const hid_t obj = H5Oopen(loc, name, H5P_DEFAULT);
        if (obj < 0) {
            c->failed = true;
            return -1;
        }
        const bool is_ds = H5Iget_type(obj) == H5I_DATASET;
        H5Oclose(obj);
        try {
            if (is_ds) c->out.push_back(c->prefix + name);
        } catch (...) {
            c->failed = true;
            return -1;
        }
        return 0;
    };
    // Native order, sorted here: in increasing order libhdf5 1.10 first copies a dense group's links into a table
    // sized by the count its B-tree header claims, and frees every entry of it on any failure, filled or not; a
    // corrupt file made that an invalid free (tests/fuzz/regressions/features). Native order walks the B-tree.
    herr_t rc = recursive ? H5Lvisit(grp.get(), H5_INDEX_NAME, H5_ITER_NATIVE, cb, &ctx)
                          : H5Literate(grp.get(), H5_INDEX_NAME, H5_ITER_NATIVE, nullptr, cb, &ctx);
    H5_CHECK(rc >= 0 && !ctx.failed, "failed to list datasets under '%s' in '%s'", group.c_str(), path_.c_str());
    std::sort(ctx.out.begin(), ctx.out.end());
    return std::move(ctx.out);
}

bool Hdf5File::has_attr(const std::string& obj_path, const std::string& name) const {
    const std::string p = abs_path(obj_path);
    if (!path_exists(file_, p)) return false;
    const htri_t r = H5Aexists_by_name(file_, p.c_str(), name.c_str(), H5P_DEFAULT);
    H5Eclear2(H5E_DEFAULT);
    return r > 0;
}

double Hdf5File::read_double_attr(const std::string& obj_path, const std::string& name) const {
    const std::string p = abs_path(obj_path);
    const std::string what = "attribute '" + name + "' of '" + obj_path + "' in '" + path_ + "'";
    AXF_CHECK(path_exists(file_, p) && has_attr(obj_path, name), "'%s' has no %s", path_.c_str(),
              ("attribute '" + name + "' on '" + obj_path + "'").c_str());
    Id attr(H5Aopen_by_name(file_, p.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(attr.valid(), "cannot open %s", what.c_str());
    Id ftype(H5Aget_type(attr.get()));
    H5_CHECK(ftype.valid(), "%s: cannot get datatype", what.c_str());
    const H5T_class_t cls = H5Tget_class(ftype.get());
    AXF_CHECK(cls == H5T_FLOAT || cls == H5T_INTEGER, "%s is not a number", what.c_str());
    Id space(H5Aget_space(attr.get()));
    H5_CHECK(space.valid(), "%s: cannot get dataspace", what.c_str());
    AXF_CHECK(H5Sget_simple_extent_npoints(space.get()) == 1, "%s holds %lld values, expected one", what.c_str(),
              (long long)H5Sget_simple_extent_npoints(space.get()));
    double v = 0;
    H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v) >= 0, "failed to read %s", what.c_str());
    return v;
}

std::string Hdf5File::read_string_attr(const std::string& obj_path, const std::string& name) const {
    const std::string p = abs_path(obj_path);
    const std::string what = "attribute '" + name + "' of '" + obj_path + "' in '" + path_ + "'";
    AXF_CHECK(path_exists(file_, p), "'%s' has no object '%s' (looking for its attribute '%s')", path_.c_str(),
              obj_path.c_str(), name.c_str());
    AXF_CHECK(has_attr(obj_path, name), "'%s' has no %s", path_.c_str(),
              ("attribute '" + name + "' on '" + obj_path + "'").c_str());
    Id attr(H5Aopen_by_name(file_, p.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(attr.valid(), "cannot open %s", what.c_str());
    Id ftype(H5Aget_type(attr.get()));
    H5_CHECK(ftype.valid(), "%s: cannot get datatype", what.c_str());
    AXF_CHECK(H5Tget_class(ftype.get()) == H5T_STRING, "%s is not a string", what.c_str());
    Id space(H5Aget_space(attr.get()));
    H5_CHECK(space.valid(), "%s: cannot get dataspace", what.c_str());
    AXF_CHECK(H5Sget_simple_extent_npoints(space.get()) == 1, "%s is an array of strings, expected one string",
              what.c_str());

    const htri_t is_var = H5Tis_variable_str(ftype.get());
    H5_CHECK(is_var >= 0, "%s: cannot inspect string type", what.c_str());
    if (is_var > 0) {
        check_heap_collections_once();
        const Id mem = variable_string_type(ftype, what);
        char* s = nullptr;
        H5_CHECK(H5Aread(attr.get(), mem.get(), &s) >= 0, "failed to read %s", what.c_str());
        std::string r = s ? s : "";
        if (s) H5free_memory(s);
        return r;
    }
    // Fixed length: read the raw bytes (no conversion, so a full-width NULLPAD string keeps its last byte).
    const size_t n = H5Tget_size(ftype.get());
    std::string r(n, '\0');
    if (n > 0) H5_CHECK(H5Aread(attr.get(), ftype.get(), r.data()) >= 0, "failed to read %s", what.c_str());
    r.resize(std::strlen(r.c_str()));
    if (H5Tget_strpad(ftype.get()) == H5T_STR_SPACEPAD) {
        while (!r.empty() && r.back() == ' ') r.pop_back();
    }
    return r;
}

// ---------------------------------------------------------------------------------------------------
// Hdf5Writer

Hdf5Writer::Hdf5Writer(const std::string& path)
    : path_(path), tmp_path_(path + ".tmp." + std::to_string(static_cast<long>(::getpid()))) {
    silence_hdf5();
    // The 1.8 object format: compact link storage (a fifth smaller than the 1.6 default for parameter
    // files with hundreds of small groups), still readable by any libhdf5 >= 1.8.
    Id fapl(H5Pcreate(H5P_FILE_ACCESS));
    H5_CHECK(fapl.valid() && H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_LATEST) >= 0,
             "cannot set up HDF5 file access for '%s'", path.c_str());
    file_ = H5Fcreate(tmp_path_.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
    H5_CHECK(file_ >= 0, "cannot create HDF5 file '%s' (writing '%s'; is the directory writable?)", tmp_path_.c_str(),
             path.c_str());
}

Hdf5Writer::~Hdf5Writer() {
    if (file_ >= 0) H5Fclose(file_);
    if (!committed_) std::remove(tmp_path_.c_str());
}

void Hdf5Writer::write(const std::string& path, const Tensor& tensor) {
    AXF_CHECK(file_ >= 0 && !committed_, "Hdf5Writer('%s'): write after commit", path_.c_str());
    const std::string p = norm_path(path);
    const std::string what = "dataset '" + path + "' in '" + path_ + "'";
    AXF_CHECK(!p.empty(), "Hdf5Writer('%s'): empty dataset path", path_.c_str());
    AXF_CHECK(tensor.defined(), "cannot write %s: undefined tensor", what.c_str());
    AXF_CHECK(!path_exists(file_, p), "cannot write %s: the path already exists", what.c_str());
    // bfloat16 activations are written as float32 (HDF5 has no standard bfloat16 type).
    const Tensor t =
        tensor.dtype() == DType::BF16 ? host_cast(tensor, DType::F32) : tensor.to(Device::CPU).contiguous();

    hid_t ftype = H5T_IEEE_F32LE, mtype = H5T_NATIVE_FLOAT;
    switch (t.dtype()) {
        case DType::F32:
            ftype = H5T_IEEE_F32LE;
            mtype = H5T_NATIVE_FLOAT;
            break;
        case DType::F64:
            ftype = H5T_IEEE_F64LE;
            mtype = H5T_NATIVE_DOUBLE;
            break;
        case DType::I32:
            ftype = H5T_STD_I32LE;
            mtype = H5T_NATIVE_INT32;
            break;
        case DType::I64:
            ftype = H5T_STD_I64LE;
            mtype = H5T_NATIVE_INT64;
            break;
        case DType::U8:
            ftype = H5T_STD_U8LE;
            mtype = H5T_NATIVE_UINT8;
            break;
        case DType::BF16:
            AXF_FAIL("internal: %s reached the writer as bfloat16", what.c_str());
    }
    const std::vector<hsize_t> dims(t.shape().begin(), t.shape().end());
    Id space(t.dim() == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(t.dim(), dims.data(), nullptr));
    H5_CHECK(space.valid(), "cannot create the dataspace of %s (shape %s)", what.c_str(), shape_str(t.shape()).c_str());
    Id lcpl(H5Pcreate(H5P_LINK_CREATE));
    H5_CHECK(lcpl.valid() && H5Pset_create_intermediate_group(lcpl.get(), 1) >= 0, "cannot set up %s", what.c_str());
    Id dcpl(H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK(dcpl.valid(), "cannot set up %s", what.c_str());
    if (t.dim() > 0 && t.numel() >= 1024) {
        H5_CHECK(H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0 && H5Zfilter_avail(H5Z_FILTER_SHUFFLE) > 0,
                 "cannot write %s: this HDF5 library lacks the deflate or shuffle filter", what.c_str());
        // Chunks of at most ~1 MiB, halving the largest dimension, as h5py does.
        std::vector<hsize_t> chunk = dims;
        const size_t es = dtype_size(t.dtype());
        auto chunk_bytes = [&] {
            size_t b = es;
            for (hsize_t c : chunk) b *= c;
            return b;
        };
        while (chunk_bytes() > (size_t{1} << 20)) {
            auto it = std::max_element(chunk.begin(), chunk.end());
            if (*it <= 1) break;
            *it = (*it + 1) / 2;
        }
        H5_CHECK(H5Pset_chunk(dcpl.get(), t.dim(), chunk.data()) >= 0 && H5Pset_shuffle(dcpl.get()) >= 0 &&
                     H5Pset_deflate(dcpl.get(), 4) >= 0,
                 "cannot set compression for %s", what.c_str());
    }
    Id ds(H5Dcreate2(file_, p.c_str(), ftype, space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT));
    H5_CHECK(ds.valid(), "cannot create %s (does a dataset sit where a group is needed?)", what.c_str());
    if (t.numel() > 0) {
        H5_CHECK(H5Dwrite(ds.get(), mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) >= 0,
                 "failed to write %s (disk full?)", what.c_str());
    }
}

void Hdf5Writer::write_strings(const std::string& path, const std::vector<std::string>& values) {
    AXF_CHECK(file_ >= 0 && !committed_, "Hdf5Writer('%s'): write after commit", path_.c_str());
    const std::string p = norm_path(path);
    const std::string what = "dataset '" + path + "' in '" + path_ + "'";
    AXF_CHECK(!p.empty(), "Hdf5Writer('%s'): empty dataset path", path_.c_str());
    AXF_CHECK(!path_exists(file_, p), "cannot write %s: the path already exists", what.c_str());
    Id type(H5Tcopy(H5T_C_S1));
    H5_CHECK(type.valid() && H5Tset_size(type.get(), H5T_VARIABLE) >= 0 && H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0,
             "cannot make the string type for %s", what.c_str());
    const hsize_t dims[1] = {values.size()};
    Id space(H5Screate_simple(1, dims, nullptr));
    Id lcpl(H5Pcreate(H5P_LINK_CREATE));
    H5_CHECK(space.valid() && lcpl.valid() && H5Pset_create_intermediate_group(lcpl.get(), 1) >= 0, "cannot set up %s",
             what.c_str());
    Id ds(H5Dcreate2(file_, p.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(ds.valid(), "cannot create %s", what.c_str());
    std::vector<const char*> ptrs;
    for (const std::string& s : values) ptrs.push_back(s.c_str());
    if (!ptrs.empty())
        H5_CHECK(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) >= 0, "failed to write %s",
                 what.c_str());
}

void Hdf5Writer::write_string_attr(const std::string& obj_path, const std::string& name, const std::string& value) {
    AXF_CHECK(file_ >= 0 && !committed_, "Hdf5Writer('%s'): write after commit", path_.c_str());
    const std::string p = abs_path(obj_path);
    const std::string what = "attribute '" + name + "' of '" + obj_path + "' in '" + path_ + "'";
    AXF_CHECK(path_exists(file_, p), "cannot write %s: no such object", what.c_str());
    Id obj(H5Oopen(file_, p.c_str(), H5P_DEFAULT));
    H5_CHECK(obj.valid(), "cannot write %s: cannot open the object", what.c_str());
    const htri_t exists = H5Aexists(obj.get(), name.c_str());
    H5_CHECK(exists >= 0, "cannot write %s", what.c_str());
    if (exists > 0) H5_CHECK(H5Adelete(obj.get(), name.c_str()) >= 0, "cannot replace %s", what.c_str());
    // Fixed length, kept in the object header: reading it back needs no global heap (see read_strings).
    Id type(H5Tcopy(H5T_C_S1));
    H5_CHECK(type.valid() && H5Tset_size(type.get(), value.size() + 1) >= 0 &&
                 H5Tset_strpad(type.get(), H5T_STR_NULLTERM) >= 0 && H5Tset_cset(type.get(), H5T_CSET_UTF8) >= 0,
             "cannot make the string type for %s", what.c_str());
    Id space(H5Screate(H5S_SCALAR));
    Id attr(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(attr.valid(), "cannot create %s", what.c_str());
    H5_CHECK(H5Awrite(attr.get(), type.get(), value.c_str()) >= 0, "failed to write %s", what.c_str());
}

void Hdf5Writer::commit() {
    AXF_CHECK(file_ >= 0 && !committed_, "Hdf5Writer('%s'): commit called twice", path_.c_str());
    const herr_t rc = H5Fclose(file_);
    file_ = -1;
    H5_CHECK(rc >= 0, "failed to finish writing '%s' (disk full?)", tmp_path_.c_str());
    AXF_CHECK(std::rename(tmp_path_.c_str(), path_.c_str()) == 0, "cannot rename '%s' to '%s': %s", tmp_path_.c_str(),
              path_.c_str(), std::strerror(errno));
    committed_ = true;
}

}  // namespace axfold::io
