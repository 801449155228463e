// Profiles and job specs: loading (protobuf text format / JSON), validation and merging.
// Every problem is reported as ConfigError naming the field (e.g. "bind[2].src") or the file
// and line, with a one-line problem description.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "jailpool.pb.h"

namespace jailpool {

// configs/default.textproto, compiled in (generated default_profile.cc).
extern const char* const kDefaultProfileText;
// kDefaultProfileText in the wire format (empty when the build could not encode it).
extern const std::string_view kDefaultProfileWire;

// The built-in default profile, parsed and validated.
Profile default_profile();

// Parses protobuf text format. `origin` names the source in errors ("profile default.textproto").
// Unknown fields, bad enum names and syntax errors are ConfigError("ORIGIN:LINE:COL", problem).
Profile parse_profile_text(std::string_view text, std::string_view origin);

// Reads and parses a profile file, then validates it. Throws ConfigError("--profile", ...) when
// the file cannot be read.
Profile load_profile_file(const std::string& path);

// Checks what the kernel will not: absolute paths without "..", existing bind sources (unless
// optional), no duplicate destinations, sane sizes and modes, env entries of the form K=V,
// uid/gid not 0. Throws ConfigError naming the field, e.g. ConfigError("bind[1].src",
// "/nonexistent: No such file or directory").
void validate_profile(const Profile& profile);

// Checks a job: non-empty argv, env K=V, cwd absolute, extra binds as in profiles, limits
// non-zero where set, stream paths non-empty. Throws ConfigError("argv", ...),
// ConfigError("bind[0].src", ...) etc.
void validate_job(const JobSpec& job);

// The job's limits: each field from the job if set, else from the profile if set, else unset.
Limits effective_limits(const Profile& profile, const JobSpec& job);

// The job's environment: the profile's env, then the job's env (later K overrides earlier K).
std::vector<std::string> effective_env(const Profile& profile, const JobSpec& job);

// One JSON object (one line of JSON Lines) to a JobSpec, proto field names (snake_case).
// Unknown fields are errors: ConfigError("job line N", problem). Then validate_job().
JobSpec parse_job_json(std::string_view json, std::string_view origin);

// A JobResult as one line of JSON, proto field names, every field printed (no newline).
std::string result_to_json(const JobResult& result);

// Parses a "--bind SRC:DST[:rw]" value ("SRC" alone binds SRC at the same path, read-only).
Bind parse_bind_flag(std::string_view value);

// Parses a "--copy-in SRC[:DST]" value (DST defaults to SRC's last component).
CopyIn parse_copy_in_flag(std::string_view value);

// Parses a "--copy-out PATH[:HOSTDST]" value (no HOSTDST: the file goes into the result).
CopyOut parse_copy_out_flag(std::string_view value);

}  // namespace jailpool
