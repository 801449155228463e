// Shared test fixtures: the per-run cgroup parent name and paths of the helper programs.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace jailpool::testing_env {

// jailpool-test-<pid>: unique per test process (gtest_discover_tests runs one process per
// test, so tests never share a parent).
inline const std::string& cgroup_parent() {
  static const std::string name = "jailpool-test-" + std::to_string(::getpid());
  return name;
}

inline std::string prog(const std::string& name) { return std::string(JAILPOOL_TEST_PROGS) + "/" + name; }

// Every directory the test parent can have: /sys/fs/cgroup/<parent> (pure v2) and
// /sys/fs/cgroup/<hierarchy>/<parent> (v1 hierarchies, hybrid's unified), existing or not.
inline std::vector<std::string> cgroup_parent_candidates() {
  namespace fs = std::filesystem;
  const fs::path root = "/sys/fs/cgroup";
  std::vector<std::string> out{(root / cgroup_parent()).string()};
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (entry.path().filename() == cgroup_parent()) continue;
    if (entry.is_directory(ec) && !entry.is_symlink(ec)) out.push_back((entry.path() / cgroup_parent()).string());
  }
  return out;
}

// The job-* cgroup directories below the test parent, in any hierarchy.
inline std::vector<std::string> job_cgroups_left() {
  namespace fs = std::filesystem;
  std::vector<std::string> out;
  for (const std::string& parent : cgroup_parent_candidates()) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(parent, ec)) {
      if (entry.is_directory(ec) && entry.path().filename().string().rfind("job-", 0) == 0) {
        out.push_back(entry.path().string());
      }
    }
  }
  return out;
}

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the jailpool tests run as root";
  }

  // Removes the test parent in every hierarchy (rmdir only: empty job-* directories a failed
  // test left first, then the parent itself; anything still busy stays and is reported).
  void TearDown() override {
    namespace fs = std::filesystem;
    for (const std::string& parent : cgroup_parent_candidates()) {
      std::error_code ec;
      if (!fs::is_directory(parent, ec)) continue;
      for (const auto& entry : fs::directory_iterator(parent, ec)) {
        if (entry.is_directory(ec) && entry.path().filename().string().rfind("job-", 0) == 0) {
          ::rmdir(entry.path().c_str());
        }
      }
      if (::rmdir(parent.c_str()) != 0 && errno != ENOENT) {
        ADD_FAILURE() << "cannot remove the test cgroup parent " << parent << ": " << std::strerror(errno);
      }
    }
  }
};

}  // namespace jailpool::testing_env
