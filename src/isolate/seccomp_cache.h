// The compiled seccomp program of a profile, kept on disk between runs, as crun does: a one-off
// `jailpool run` then loads ~1 KiB instead of starting libseccomp (its kernel probes, its
// allocations, its code paged in), which was ~10 % of a no-op run's CPU.
//
// Trust: only root's own directory is used (created 0700, opened without following links,
// refused unless owned by jailpool's euid and writable by nobody else), never a path a job
// can reach. A file is used only when it holds exactly the key of this compilation: the whole
// profile (deterministic serialization), the reporting mode, this binary's build id (libseccomp
// is linked in: a new build or library is a new key), the kernel's release and version (libseccomp
// probes the kernel's seccomp API) and the architecture. Anything else (a short, foreign or
// corrupt file) is ignored and replaced. Writes are atomic (a unique temporary, then rename).
#pragma once

#include <string>

#include "isolate/seccomp.h"
#include "jailpool.pb.h"

namespace jailpool::isolate {

// Where `jailpool run` keeps them: tmpfs, root's, emptied at boot.
inline constexpr const char* kDefaultSeccompCacheDir = "/run/jailpool/seccomp";

// compile_seccomp(profile, reporting), through the cache in `dir` ("" = no cache). Cache
// problems (no such directory and none can be made, wrong owner, full disk) only cost the
// compilation; policy errors throw ConfigError as compile_seccomp does (and are never cached).
SeccompProgram compile_seccomp_cached(const Profile& profile, const SeccompReporting& reporting,
                                      const std::string& dir);

// For tests: the file of this compilation in `dir`, whether or not it exists yet.
std::string seccomp_cache_path(const Profile& profile, const SeccompReporting& reporting,
                               const std::string& dir);

}  // namespace jailpool::isolate
