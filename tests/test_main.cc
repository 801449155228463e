// Test entry point: the suite runs as root and gives every run its own cgroup parent
// (jailpool-test-<pid>), removed at the end.
#include <gtest/gtest.h>

#include "test_env.h"

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  testing::AddGlobalTestEnvironment(new jailpool::testing_env::Environment());
  return RUN_ALL_TESTS();
}
