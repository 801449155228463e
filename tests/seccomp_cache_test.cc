// The on-disk cache of compiled seccomp programs: a hit gives exactly what compiling gives, and
// nothing it did not write itself for exactly this compilation is ever used.
#include "isolate/seccomp_cache.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.h"
#include "config/profile.h"
#include "test_support.h"

namespace jailpool::isolate {
namespace {

bool same_insns(const std::vector<sock_filter>& a, const std::vector<sock_filter>& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), a.size() * sizeof(sock_filter)) == 0;
}

// The main filter and the lock ban (the second filter a jail without overlays installs).
bool same(const SeccompProgram& a, const SeccompProgram& b) {
  return a.notifies() == b.notifies() && a.logs_allowed() == b.logs_allowed() &&
         same_insns(a.instructions(), b.instructions()) &&
         same_insns(a.lock_ban_instructions(), b.lock_ban_instructions());
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

class SeccompCacheTest : public ::testing::Test {
 protected:
  Profile profile = default_profile();
  SeccompReporting reporting{.name_violations = true, .log_allowed = false};
  testing_env::TempDir tmp{"jailpool-seccomp-cache"};
  std::string dir() const { return tmp.file("cache"); }
  std::string path() const { return seccomp_cache_path(profile, reporting, dir()); }
};

TEST_F(SeccompCacheTest, AHitIsWhatCompilingGives) {
  SeccompProgram fresh = compile_seccomp(profile, reporting);
  SeccompProgram first = compile_seccomp_cached(profile, reporting, dir());
  ASSERT_FALSE(path().empty()) << "no build id: the cache is off";
  struct stat st;
  ASSERT_EQ(stat(path().c_str(), &st), 0) << "the first compilation is stored";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(stat(dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  SeccompProgram second = compile_seccomp_cached(profile, reporting, dir());
  ASSERT_FALSE(fresh.lock_ban_instructions().empty()) << "the default policy has a lock ban";
  EXPECT_TRUE(same(fresh, first));
  EXPECT_TRUE(same(fresh, second));
}

TEST_F(SeccompCacheTest, KeyedByPolicyAndReporting) {
  compile_seccomp_cached(profile, reporting, dir());
  std::string before = path();
  SeccompReporting learning{.name_violations = true, .log_allowed = true};
  EXPECT_NE(seccomp_cache_path(profile, learning, dir()), before);
  SeccompProgram learned = compile_seccomp_cached(profile, learning, dir());
  EXPECT_TRUE(learned.logs_allowed());
  EXPECT_TRUE(same(learned, compile_seccomp(profile, learning)));
  // A slot's spawner filter lets unshare(CLONE_NEWCGROUP) through: never the same file.
  SeccompReporting slot{.name_violations = true, .slot_spawner = true};
  EXPECT_NE(seccomp_cache_path(profile, slot, dir()), before);
  SeccompProgram spawner = compile_seccomp_cached(profile, slot, dir());
  EXPECT_TRUE(same(spawner, compile_seccomp(profile, slot)));
  EXPECT_FALSE(same(spawner, compile_seccomp(profile, reporting)));
  profile.add_seccomp_deny("getpid");
  EXPECT_NE(path(), before);
  SeccompProgram denied = compile_seccomp_cached(profile, reporting, dir());
  EXPECT_TRUE(same(denied, compile_seccomp(profile, reporting)));
}

TEST_F(SeccompCacheTest, ATamperedFileIsRecompiledAndReplaced) {
  SeccompProgram fresh = compile_seccomp(profile, reporting);
  compile_seccomp_cached(profile, reporting, dir());
  std::string good = read_file(path());
  ASSERT_GT(good.size(), 64u);
  // One instruction changed (the last: a return action), everything else intact.
  std::string bad = good;
  bad[bad.size() - 1] ^= 0x7f;
  write_file(path(), bad);
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, dir()), fresh));
  EXPECT_EQ(read_file(path()), good) << "the bad file is replaced";
  // Truncated; then garbage.
  write_file(path(), good.substr(0, good.size() - 8));
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, dir()), fresh));
  write_file(path(), std::string(good.size(), 'x'));
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, dir()), fresh));
  EXPECT_EQ(read_file(path()), good);
}

TEST_F(SeccompCacheTest, ADirectoryOthersMayWriteIsNotUsed) {
  ASSERT_EQ(mkdir(dir().c_str(), 0700), 0);
  ASSERT_EQ(chmod(dir().c_str(), 0777), 0);
  SeccompProgram fresh = compile_seccomp(profile, reporting);
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, dir()), fresh));
  EXPECT_NE(access(path().c_str(), F_OK), 0) << "nothing written there";
  // A good file placed there by someone else is not read either: a tampered one would be.
  ASSERT_EQ(chmod(dir().c_str(), 0700), 0);
  compile_seccomp_cached(profile, reporting, dir());
  std::string good = read_file(path());
  std::string bad = good;
  bad[bad.size() - 1] ^= 0x7f;
  write_file(path(), bad);
  ASSERT_EQ(chmod(dir().c_str(), 0777), 0);
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, dir()), fresh));
  EXPECT_EQ(read_file(path()), bad) << "left alone";
}

TEST_F(SeccompCacheTest, LinksAreNotFollowed) {
  // The directory as a symlink to a real one: refused.
  std::string real = tmp.file("real");
  ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
  ASSERT_EQ(symlink(real.c_str(), dir().c_str()), 0);
  SeccompProgram fresh = compile_seccomp(profile, reporting);
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, dir()), fresh));
  std::string name = path().substr(dir().size());
  EXPECT_NE(access((real + name).c_str(), F_OK), 0);
  // The file as a symlink to a good file: not read, and replaced by a file of its own.
  std::string other = tmp.file("cache2");
  std::string good_path = seccomp_cache_path(profile, reporting, other);
  compile_seccomp_cached(profile, reporting, other);
  std::string bad = read_file(good_path);
  bad[bad.size() - 1] ^= 0x7f;
  write_file(good_path, bad);
  std::string link_path = seccomp_cache_path(profile, reporting, real);
  ASSERT_EQ(symlink(good_path.c_str(), link_path.c_str()), 0);
  EXPECT_TRUE(same(compile_seccomp_cached(profile, reporting, real), fresh));
  struct stat st;
  ASSERT_EQ(lstat(link_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(read_file(good_path), bad) << "the link's target is not written through";
}

TEST_F(SeccompCacheTest, PolicyErrorsStillThrow) {
  profile.add_seccomp_allow("no_such_call");
  profile.set_seccomp(SECCOMP_ALLOW_LIST);
  EXPECT_THROW(compile_seccomp_cached(profile, reporting, dir()), ConfigError);
}

}  // namespace
}  // namespace jailpool::isolate
