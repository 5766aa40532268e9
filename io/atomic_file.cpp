// Atomic whole-file writes: temporary file, fsync, rename.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "kernels/error.h"

namespace axfold::io {
namespace {

std::string parent_dir(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

// Removes the temporary file and throws; errno text is captured by the caller before cleanup.
[[noreturn]] void fail_and_cleanup(int fd, const std::string& tmp, const std::string& msg) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    AXF_FAIL("%s", msg.c_str());
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
    AXF_CHECK(!path.empty(), "write_file_atomic: empty output path");
    AXF_CHECK(path.back() != '/', "cannot write %s: the path names a directory", path.c_str());
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
        AXF_FAIL("cannot write %s: the path is a directory", path.c_str());

    const std::string tmp = path + ".tmp." + std::to_string(static_cast<long>(::getpid()));
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0)
        AXF_FAIL("cannot write %s: creating temporary file %s failed: %s", path.c_str(), tmp.c_str(),
                 std::strerror(errno));

    const char* p = content.data();
    size_t left = content.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail_and_cleanup(
                fd, tmp,
                strfmt("cannot write %s: writing temporary file %s failed after %zu of %zu bytes: %s", path.c_str(),
                       tmp.c_str(), content.size() - left, content.size(), std::strerror(errno)));
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0)
        fail_and_cleanup(
            fd, tmp,
            strfmt("cannot write %s: fsync of %s failed: %s", path.c_str(), tmp.c_str(), std::strerror(errno)));
    if (::close(fd) != 0)
        fail_and_cleanup(
            -1, tmp, strfmt("cannot write %s: closing %s failed: %s", path.c_str(), tmp.c_str(), std::strerror(errno)));
    if (::rename(tmp.c_str(), path.c_str()) != 0)
        fail_and_cleanup(
            -1, tmp,
            strfmt("cannot write %s: renaming %s over it failed: %s", path.c_str(), tmp.c_str(), std::strerror(errno)));

    // Make the rename itself durable. Best effort: some file systems refuse fsync on directories, and
    // the new file is already complete and in place.
    const int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace axfold::io
