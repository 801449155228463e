// Shared test fixtures: the per-run cgroup parent name and paths of the helper programs.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>

namespace jailpool::testing_env {

// jailpool-test-<pid>: unique per test process (gtest_discover_tests runs one process per
// test, so tests never share a parent).
inline const std::string& cgroup_parent() {
  static const std::string name = "jailpool-test-" + std::to_string(::getpid());
  return name;
}

inline std::string prog(const std::string& name) { return std::string(JAILPOOL_TEST_PROGS) + "/" + name; }

class Environment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "the jailpool tests run as root";
  }
};

}  // namespace jailpool::testing_env
