// Atomic whole-file writes for output files (PDB, mmCIF, JSON).
//
// The content goes to a temporary file in the same directory (path + ".tmp.<pid>"), is flushed to disk
// with fsync, and is renamed over `path`. rename() within one file system is atomic, so a reader (or a
// run killed midway) sees either the previous file or the complete new one, never a half-written one.
#pragma once

#include <string>

namespace axfold::io {

// Writes `content` to `path` atomically (see above). On any failure the temporary file is removed,
// whatever was at `path` before is left untouched, and axfold::Error names the path and the errno text.
// LIMITATION: two threads of one process writing the same path at once would share a temporary name;
// callers write each output file from one thread.
void write_file_atomic(const std::string& path, const std::string& content);

// True when `path` names an existing regular file (symbolic links followed); false for directories,
// other special files and missing paths.
bool file_exists(const std::string& path);

}  // namespace axfold::io
