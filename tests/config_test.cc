// Units, profiles (text format, validation, the shipped configs), jobs (JSON, merging) and
// results (JSON). No sandbox is started: these tests need neither root nor cgroups.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/units.h"
#include "config/profile.h"

namespace jailpool {
namespace {

// EXPECT_CONTAINS(text, part): text contains part (no gmock in the test build).
::testing::AssertionResult Contains(const char* text_expr, const char* part_expr,
                                    std::string_view text, std::string_view part) {
  if (text.find(part) != std::string_view::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << text_expr << " (\"" << text << "\") does not contain "
                                       << part_expr << " (\"" << part << "\")";
}
#define EXPECT_CONTAINS(text, part) EXPECT_PRED_FORMAT2(Contains, text, part)

// Runs fn, expects a ConfigError and returns it (field and message) for inspection.
ConfigError config_error(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got: " << e.what();
    return ConfigError("<wrong exception>", e.what());
  }
  ADD_FAILURE() << "expected ConfigError, nothing was thrown";
  return ConfigError("<nothing thrown>", "");
}

std::string source_path(const std::string& rel) {
  return std::string(JAILPOOL_SOURCE_DIR) + "/" + rel;
}

// A minimal valid profile to break one field at a time.
Profile base_profile() {
  Profile p;
  p.set_name("test");
  p.add_bind()->set_src("/usr");
  p.set_cwd("/box");
  p.add_env("PATH=/usr/bin:/bin");
  return p;
}

JobSpec base_job() {
  JobSpec j;
  j.add_argv("/bin/true");
  return j;
}

// --- units ---------------------------------------------------------------------------------

// The built-in profile is read from its wire encoding (made by protoc at configure time): it
// must be exactly the text's.
TEST(DefaultProfile, WireEncodingIsTheText) {
  EXPECT_FALSE(kDefaultProfileWire.empty()) << "the build could not encode the default profile";
  Profile from_text = parse_profile_text(kDefaultProfileText, "test");
  EXPECT_EQ(default_profile().SerializeAsString(), from_text.SerializeAsString());
  EXPECT_EQ(default_profile().DebugString(), from_text.DebugString());
}

TEST(Units, Durations) {
  EXPECT_EQ(parse_duration_us("250ms", "f"), 250'000u);
  EXPECT_EQ(parse_duration_us("1.5s", "f"), 1'500'000u);
  EXPECT_EQ(parse_duration_us("2m", "f"), 120'000'000u);
  EXPECT_EQ(parse_duration_us("100us", "f"), 100u);
  EXPECT_EQ(parse_duration_us("1h", "f"), 3'600'000'000u);
  EXPECT_EQ(parse_duration_us("3", "f"), 3'000'000u);
  EXPECT_EQ(parse_duration_us("0.25", "f"), 250'000u);
  EXPECT_EQ(parse_duration_us("0", "f"), 0u);
  EXPECT_EQ(parse_duration_us(".5s", "f"), 500'000u);
  EXPECT_EQ(parse_duration_us("1.0000001s", "f"), 1'000'000u);  // below 1us: truncated
}

TEST(Units, BadDurations) {
  for (const char* bad : {"", "ms", "s", ".", "1.5.s", "10 ms", " 1s", "1s ", "1x", "1sec", "1MS",
                          "+1s", "1e3", "nan", "NaN", "inf", "0x10", "1,5s"}) {
    const ConfigError e = config_error([&] { parse_duration_us(bad, "--wall-time"); });
    EXPECT_EQ(e.field(), "--wall-time") << bad;
    EXPECT_EQ(std::string(e.what()),
              "--wall-time: bad duration \"" + std::string(bad) + "\" (expected e.g. 250ms, 1.5s)")
        << bad;
  }
  EXPECT_EQ(std::string(config_error([] { parse_duration_us("-1s", "--wall-time"); }).what()),
            "--wall-time: negative duration \"-1s\"");
  EXPECT_CONTAINS(config_error([] { parse_duration_us("99999999999h", "t"); }).what(), "too large");
  EXPECT_CONTAINS(config_error([] { parse_duration_us("99999999999999999999999", "t"); }).what(),
                  "too large");
  EXPECT_EQ(parse_duration_us("18446744073709551615us", "t"), UINT64_MAX);
  EXPECT_CONTAINS(config_error([] { parse_duration_us("18446744073709551616us", "t"); }).what(),
                  "too large");
  EXPECT_CONTAINS(config_error([] { parse_duration_us("18446744073709551615.5s", "t"); }).what(),
                  "too large");
}

TEST(Units, Sizes) {
  EXPECT_EQ(parse_size_bytes("64M", "f"), 64u << 20);
  EXPECT_EQ(parse_size_bytes("64MiB", "f"), 64u << 20);
  EXPECT_EQ(parse_size_bytes("64MB", "f"), 64'000'000u);
  EXPECT_EQ(parse_size_bytes("1G", "f"), 1u << 30);
  EXPECT_EQ(parse_size_bytes("4096", "f"), 4096u);
  EXPECT_EQ(parse_size_bytes("4096B", "f"), 4096u);
  EXPECT_EQ(parse_size_bytes("512k", "f"), 512u << 10);
  EXPECT_EQ(parse_size_bytes("512K", "f"), 512u << 10);
  EXPECT_EQ(parse_size_bytes("512KiB", "f"), 512u << 10);
  EXPECT_EQ(parse_size_bytes("512kB", "f"), 512'000u);
  EXPECT_EQ(parse_size_bytes("1.5G", "f"), 3u << 29);
  EXPECT_EQ(parse_size_bytes("2T", "f"), uint64_t{2} << 40);
  EXPECT_EQ(parse_size_bytes("0", "f"), 0u);
  EXPECT_EQ(parse_size_bytes("16777215T", "f"), uint64_t{16777215} << 40);
}

TEST(Units, BadSizes) {
  for (const char* bad : {"", "M", "1.2.3M", "64 M", "64Mb", "64MIB", "64X", "64MiBs", "1e6", "nan",
                          "+5", "0x100", "64iB", "5P"}) {
    const ConfigError e = config_error([&] { parse_size_bytes(bad, "--memory"); });
    EXPECT_EQ(e.field(), "--memory") << bad;
    EXPECT_CONTAINS(e.what(), "--memory: bad size \"" + std::string(bad) + "\"") << bad;
  }
  EXPECT_EQ(std::string(config_error([] { parse_size_bytes("-1M", "--memory"); }).what()),
            "--memory: negative size \"-1M\"");
  EXPECT_CONTAINS(config_error([] { parse_size_bytes("1.5", "--memory"); }).what(), "whole number");
  EXPECT_CONTAINS(config_error([] { parse_size_bytes("16777216T", "--memory"); }).what(),
                  "too large");
  EXPECT_CONTAINS(config_error([] { parse_size_bytes("99999999999999999999", "--memory"); }).what(),
                  "too large");
}

// --- profiles: text format -----------------------------------------------------------------

TEST(ProfileText, Parses) {
  const Profile p = parse_profile_text(
      "name: \"x\"\n"
      "bind { src: \"/usr\" }\n"
      "tmpfs { dst: \"/tmp\" mode: 01777 }\n"
      "uid: 1000\n"
      "limits { pids: 10 }\n"
      "seccomp: SECCOMP_NONE\n",
      "test");
  EXPECT_EQ(p.name(), "x");
  ASSERT_EQ(p.bind_size(), 1);
  EXPECT_EQ(p.tmpfs(0).mode(), 01777u);
  EXPECT_TRUE(p.has_uid());
  EXPECT_FALSE(p.has_gid());
  EXPECT_TRUE(p.limits().has_pids());
  EXPECT_FALSE(p.limits().has_cpu_time_ms());
  EXPECT_EQ(p.seccomp(), SECCOMP_NONE);
}

TEST(ProfileText, UnknownFieldNamesFieldAndLine) {
  const ConfigError e = config_error([] {
    parse_profile_text("name: \"x\"\n# comment\n  bogus_field: 3\n", "profile p.textproto");
  });
  EXPECT_EQ(e.field(), "profile p.textproto:3:3");
  EXPECT_CONTAINS(e.what(), "bogus_field");
  EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
}

TEST(ProfileText, UnknownNestedField) {
  const ConfigError e =
      config_error([] { parse_profile_text("limits {\n  cpu_time: 5\n}\n", "p"); });
  EXPECT_CONTAINS(e.field(), "p:2:");
  EXPECT_CONTAINS(e.what(), "cpu_time");
}

TEST(ProfileText, BadEnum) {
  // Protobuf reports the position of the token after the bad value (here on line 5).
  const ConfigError e = config_error([] {
    parse_profile_text("name: \"x\"\n\tseccomp: SECCOMP_MAYBE  # SECCOMP_MAYBE\n\n# c\nuid: 5\n",
                       "p");
  });
  EXPECT_EQ(e.field(), "p:2:11");
  EXPECT_CONTAINS(e.what(), "SECCOMP_MAYBE");
  EXPECT_CONTAINS(e.what(), "seccomp");
}

TEST(ProfileText, UnknownFieldInBlock) {
  const ConfigError e = config_error([] {
    parse_profile_text("bind { src: \"/usr\" }\nbind {\n  src: \"/x\"\n  optinal: true\n}\n", "p");
  });
  EXPECT_EQ(e.field(), "p:4:3");
  EXPECT_CONTAINS(e.what(), "optinal");
}

TEST(ProfileText, SyntaxErrorsAreOneLine) {
  for (const char* text : {"bind { src: \"/usr\"\n", "name: \"unterminated\n", "uid: -1\n",
                           "uid: 1\nuid: 2\n", "limits { pids: 99999999999 }\n"}) {
    const ConfigError e = config_error([&] { parse_profile_text(text, "p"); });
    EXPECT_CONTAINS(e.field(), "p:") << text;
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << text;
  }
}

TEST(ProfileText, DefaultProfile) {
  const Profile p = default_profile();
  EXPECT_EQ(p.name(), "default");
  EXPECT_EQ(p.cwd(), "/box");
  EXPECT_TRUE(p.limits().has_cpu_time_ms());
  EXPECT_GT(p.bind_size(), 0);
}

// --- profiles: the shipped configs ---------------------------------------------------------

class ShippedConfig : public ::testing::TestWithParam<const char*> {};

TEST_P(ShippedConfig, LoadsAndValidates) {
  const std::string path = source_path(std::string("configs/") + GetParam());
  Profile p;
  try {
    p = load_profile_file(path);
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
  EXPECT_FALSE(p.name().empty());
  EXPECT_EQ(p.seccomp(), SECCOMP_DEFAULT);
  EXPECT_TRUE(p.has_uid());
  EXPECT_TRUE(p.limits().has_memory_bytes());
  EXPECT_TRUE(p.limits().has_pids());
}

INSTANTIATE_TEST_SUITE_P(Configs, ShippedConfig,
                         ::testing::Values("default.textproto", "cpp.textproto",
                                           "python3.textproto", "java.textproto", "ci.textproto"));

TEST(ShippedConfigs, SpecificLimits) {
  const Profile cpp = load_profile_file(source_path("configs/cpp.textproto"));
  EXPECT_EQ(cpp.limits().memory_bytes(), uint64_t{1} << 30);
  EXPECT_EQ(cpp.limits().pids(), 64u);
  EXPECT_EQ(cpp.limits().cpu_time_ms(), 30000u);
  EXPECT_EQ(cpp.limits().wall_time_ms(), 60000u);
  const Profile py = load_profile_file(source_path("configs/python3.textproto"));
  EXPECT_EQ(py.limits().memory_bytes(), uint64_t{256} << 20);
  const JobSpec none;
  const auto py_env = effective_env(py, none);
  EXPECT_NE(std::find(py_env.begin(), py_env.end(), "PYTHONDONTWRITEBYTECODE=1"), py_env.end());
  const Profile java = load_profile_file(source_path("configs/java.textproto"));
  EXPECT_EQ(java.limits().pids(), 256u);
  EXPECT_EQ(java.limits().memory_bytes(), uint64_t{2} << 30);
  const Profile ci = load_profile_file(source_path("configs/ci.textproto"));
  EXPECT_EQ(ci.cwd(), "/workspace");
  EXPECT_EQ(ci.cwd_size_bytes(), uint64_t{2} << 30);
  EXPECT_EQ(ci.limits().pids(), 512u);
  const auto ci_env = effective_env(ci, none);
  EXPECT_NE(std::find(ci_env.begin(), ci_env.end(), "CI=true"), ci_env.end());
}

// --- profiles: files -----------------------------------------------------------------------

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("jailpool-config-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  std::filesystem::path dir_;
};

TEST_F(TempDir, LoadProfileFile) {
  const std::string path =
      write("ok.textproto", "name: \"ok\"\nbind { src: \"/usr\" }\ncwd: \"/box\"\n");
  EXPECT_EQ(load_profile_file(path).name(), "ok");
}

TEST_F(TempDir, MissingProfileFile) {
  const ConfigError e = config_error([&] { load_profile_file((dir_ / "nope").string()); });
  EXPECT_EQ(e.field(), "--profile");
  EXPECT_CONTAINS(e.what(), "No such file or directory");
}

TEST_F(TempDir, ProfileFileParseErrorNamesFileAndLine) {
  const std::string path = write("bad.textproto", "name: \"bad\"\n\nbindd { src: \"/usr\" }\n");
  const ConfigError e = config_error([&] { load_profile_file(path); });
  EXPECT_EQ(e.field(), path + ":3:1");
  EXPECT_CONTAINS(e.what(), "bindd");
}

TEST_F(TempDir, ProfileFileValidationErrorNamesFileAndField) {
  const std::string path =
      write("bad.textproto", "cwd: \"/box\"\nbind { src: \"/nonexistent-jp\" }\n");
  const ConfigError e = config_error([&] { load_profile_file(path); });
  EXPECT_EQ(e.field(), path + ": bind[0].src");
  EXPECT_EQ(std::string(e.what()),
            path + ": bind[0].src: /nonexistent-jp: No such file or directory");
}

TEST_F(TempDir, SymlinkBindSourceIsFine) {
  const std::string link = (dir_ / "link").string();
  std::filesystem::create_symlink("/nonexistent-target", link);  // dangling is fine too
  Profile p = base_profile();
  Bind* b = p.add_bind();
  b->set_src(link);
  b->set_dst("/link");
  EXPECT_NO_THROW(validate_profile(p));
}

// --- profiles: validation ------------------------------------------------------------------

std::string profile_error_field(const Profile& p) {
  return config_error([&] { validate_profile(p); }).field();
}

TEST(ValidateProfile, BaseIsValid) {
  EXPECT_NO_THROW(validate_profile(base_profile()));
}

TEST(ValidateProfile, MissingBindSource) {
  Profile p = base_profile();
  p.add_bind()->set_src("/nonexistent-jailpool/x");
  const ConfigError e = config_error([&] { validate_profile(p); });
  EXPECT_EQ(e.field(), "bind[1].src");
  EXPECT_EQ(std::string(e.what()),
            "bind[1].src: /nonexistent-jailpool/x: No such file or directory");
  p.mutable_bind(1)->set_optional(true);
  EXPECT_NO_THROW(validate_profile(p));
}

TEST(ValidateProfile, BadPaths) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"usr", "not an absolute path"},  {"/usr/../etc", "\"..\""},    {"/usr/./lib", "\".\""},
      {"/usr//lib", "empty component"}, {"/usr/", "empty component"}, {"", "empty path"}};
  for (const auto& [path, problem] : cases) {
    Profile p = base_profile();
    p.add_bind()->set_src(path);
    const ConfigError e = config_error([&] { validate_profile(p); });
    EXPECT_EQ(e.field(), "bind[1].src") << path;
    EXPECT_CONTAINS(e.what(), problem) << path;
  }
}

TEST(ValidateProfile, RelativeDestination) {
  Profile p = base_profile();
  Bind* b = p.add_bind();
  b->set_src("/etc");
  b->set_dst("etc");
  const ConfigError e = config_error([&] { validate_profile(p); });
  EXPECT_EQ(e.field(), "bind[1].dst");
  EXPECT_CONTAINS(e.what(), "not an absolute path");

  Profile t = base_profile();
  t.add_tmpfs()->set_dst("tmp");
  EXPECT_EQ(profile_error_field(t), "tmpfs[0].dst");
  Profile r = base_profile();
  r.add_tmpfs()->set_dst("/");
  EXPECT_EQ(profile_error_field(r), "tmpfs[0].dst");
}

// A writable filesystem inside another (its mount point would have to be made in the outer
// tmpfs for every job): refused, naming the inner one.
TEST(ValidateProfile, NestedWritableFilesystems) {
  Profile p = base_profile();
  p.add_tmpfs()->set_dst("/tmp");
  p.add_tmpfs()->set_dst("/tmp/inner");
  const ConfigError e = config_error([&] { validate_profile(p); });
  EXPECT_EQ(e.field(), "tmpfs[1].dst");
  EXPECT_EQ(std::string(e.what()),
            "tmpfs[1].dst: \"/tmp/inner\" lies inside tmpfs[0] (/tmp): writable filesystems "
            "cannot nest");
  Profile c = base_profile();
  c.set_cwd("/tmp/box");
  c.add_tmpfs()->set_dst("/tmp");
  EXPECT_EQ(profile_error_field(c), "cwd");
  Profile apart = base_profile();
  apart.add_tmpfs()->set_dst("/tmp");
  apart.add_tmpfs()->set_dst("/tmpfoo");
  EXPECT_NO_THROW(validate_profile(apart));
}

TEST(ValidateProfile, DuplicateDestinations) {
  {
    Profile p = base_profile();
    Bind* b = p.add_bind();
    b->set_src("/etc");
    b->set_dst("/usr");
    const ConfigError e = config_error([&] { validate_profile(p); });
    EXPECT_EQ(e.field(), "bind[1].dst");
    EXPECT_CONTAINS(e.what(), "bind[0]");
  }
  {
    Profile p = base_profile();
    p.add_bind()->set_src("/usr");  // same dst (defaulted) as bind[0]
    EXPECT_EQ(profile_error_field(p), "bind[1].src");
  }
  {
    Profile p = base_profile();
    p.add_tmpfs()->set_dst("/tmp");
    p.add_tmpfs()->set_dst("/tmp");
    EXPECT_EQ(profile_error_field(p), "tmpfs[1].dst");
  }
  {
    Profile p = base_profile();
    p.add_tmpfs()->set_dst("/box");  // the cwd
    const ConfigError e = config_error([&] { validate_profile(p); });
    EXPECT_EQ(e.field(), "tmpfs[0].dst");
    EXPECT_CONTAINS(e.what(), "cwd");
  }
  {
    Profile p = base_profile();
    p.set_dev_shm(true);
    p.add_tmpfs()->set_dst("/dev/shm");
    EXPECT_EQ(profile_error_field(p), "tmpfs[0].dst");
  }
  {
    Profile p = base_profile();  // nested destinations are fine
    Bind* b = p.add_bind();
    b->set_src("/etc");
    b->set_dst("/usr/etc");
    EXPECT_NO_THROW(validate_profile(p));
  }
}

TEST(ValidateProfile, Tmpfs) {
  Profile p = base_profile();
  Tmpfs* t = p.add_tmpfs();
  t->set_dst("/tmp");
  t->set_mode(01777);
  EXPECT_NO_THROW(validate_profile(p));
  t->set_mode(010000);
  EXPECT_EQ(profile_error_field(p), "tmpfs[0].mode");
  t->set_mode(0);
  t->set_size_bytes(100);
  EXPECT_EQ(profile_error_field(p), "tmpfs[0].size_bytes");
  t->set_size_bytes(0);
  t->set_nr_inodes(1);
  EXPECT_EQ(profile_error_field(p), "tmpfs[0].nr_inodes");
}

TEST(ValidateProfile, Cwd) {
  Profile p = base_profile();
  p.set_cwd("/");
  EXPECT_EQ(profile_error_field(p), "cwd");
  p.set_cwd("box");
  EXPECT_EQ(profile_error_field(p), "cwd");
  p.set_cwd("");
  EXPECT_EQ(profile_error_field(p), "cwd");
}

TEST(ValidateProfile, UidGid) {
  Profile p = base_profile();
  p.set_uid(0);
  const ConfigError e = config_error([&] { validate_profile(p); });
  EXPECT_EQ(e.field(), "uid");
  EXPECT_CONTAINS(e.what(), "0");
  p.set_uid(1000);
  p.set_gid(0);
  EXPECT_EQ(profile_error_field(p), "gid");
  p.set_gid(1000);
  EXPECT_NO_THROW(validate_profile(p));
}

TEST(ValidateProfile, Env) {
  Profile p = base_profile();
  p.add_env("NOEQUALS");
  const ConfigError e = config_error([&] { validate_profile(p); });
  EXPECT_EQ(e.field(), "env[1]");
  EXPECT_CONTAINS(e.what(), "NOEQUALS");
  p.set_env(1, "=value");
  EXPECT_EQ(profile_error_field(p), "env[1]");
  p.set_env(1, "EMPTY=");
  EXPECT_NO_THROW(validate_profile(p));
  p.set_env(1, "A=b=c");
  EXPECT_NO_THROW(validate_profile(p));
}

TEST(ValidateProfile, Seccomp) {
  Profile p = base_profile();
  p.set_seccomp(SECCOMP_ALLOW_LIST);
  EXPECT_EQ(profile_error_field(p), "seccomp_allow");
  p.add_seccomp_allow("read");
  EXPECT_NO_THROW(validate_profile(p));
  p.add_seccomp_allow("bad name");
  EXPECT_EQ(profile_error_field(p), "seccomp_allow[1]");
}

TEST(ValidateProfile, ZeroLimit) {
  Profile p = base_profile();
  p.mutable_limits()->set_memory_bytes(0);
  EXPECT_EQ(profile_error_field(p), "limits.memory_bytes");
}

// --- jobs ----------------------------------------------------------------------------------

std::string job_error_field(const JobSpec& j) {
  return config_error([&] { validate_job(j); }).field();
}

TEST(ValidateJob, Checks) {
  EXPECT_NO_THROW(validate_job(base_job()));
  EXPECT_EQ(job_error_field(JobSpec()), "argv");
  {
    JobSpec j;
    j.add_argv("");
    EXPECT_EQ(job_error_field(j), "argv[0]");
  }
  {
    JobSpec j = base_job();
    j.add_env("X");
    EXPECT_EQ(job_error_field(j), "env[0]");
  }
  {
    JobSpec j = base_job();
    j.set_cwd("rel");
    EXPECT_EQ(job_error_field(j), "cwd");
  }
  {
    JobSpec j = base_job();
    j.add_bind()->set_src("/nonexistent-jailpool");
    EXPECT_EQ(job_error_field(j), "bind[0].src");
  }
  {
    JobSpec j = base_job();
    j.mutable_limits()->set_cpu_time_ms(0);
    EXPECT_EQ(job_error_field(j), "limits.cpu_time_ms");
  }
  {
    JobSpec j = base_job();
    j.mutable_stdout()->set_path("");
    EXPECT_EQ(job_error_field(j), "stdout.path");
  }
  {
    JobSpec j = base_job();
    j.mutable_stdin()->set_path("/dev/null");
    j.mutable_stdout()->set_capture(true);
    j.mutable_stderr()->set_inherit(true);
    EXPECT_NO_THROW(validate_job(j));
  }
}

TEST(Merge, EffectiveLimits) {
  Profile p;
  p.mutable_limits()->set_cpu_time_ms(1000);
  p.mutable_limits()->set_memory_bytes(1 << 20);
  JobSpec j;
  j.mutable_limits()->set_cpu_time_ms(5);
  j.mutable_limits()->set_pids(3);
  const Limits l = effective_limits(p, j);
  EXPECT_EQ(l.cpu_time_ms(), 5u);         // job wins
  EXPECT_EQ(l.memory_bytes(), 1u << 20);  // from the profile
  EXPECT_EQ(l.pids(), 3u);                // job only
  EXPECT_FALSE(l.has_wall_time_ms());     // neither
  EXPECT_FALSE(l.has_open_files());
  EXPECT_FALSE(l.has_stack_bytes());
  EXPECT_FALSE(l.has_output_bytes());
}

TEST(Merge, EffectiveEnv) {
  Profile p;
  p.add_env("PATH=/usr/bin");
  p.add_env("HOME=/box");
  p.add_env("LANG=C");
  JobSpec j;
  j.add_env("HOME=/tmp");
  j.add_env("NEW=1");
  j.add_env("LANG=C.UTF-8");
  j.add_env("NEW=2");
  EXPECT_EQ(effective_env(p, j),
            (std::vector<std::string>{"PATH=/usr/bin", "HOME=/tmp", "LANG=C.UTF-8", "NEW=2"}));
  EXPECT_EQ(effective_env(p, JobSpec()),
            (std::vector<std::string>{"PATH=/usr/bin", "HOME=/box", "LANG=C"}));
}

TEST(JobJson, Parses) {
  const JobSpec j = parse_job_json(
      R"({"id":"a1","argv":["/bin/echo","hi"],"env":["X=1"],"cwd":"/box",)"
      R"("stdout":{"path":"/tmp/out","append":true},"stderr":{"capture":true},)"
      R"("limits":{"cpu_time_ms":"1500","memory_bytes":67108864,"pids":8},"profile":"p"})",
      "job line 1");
  EXPECT_EQ(j.id(), "a1");
  ASSERT_EQ(j.argv_size(), 2);
  EXPECT_EQ(j.argv(1), "hi");
  EXPECT_EQ(j.stdout().path(), "/tmp/out");
  EXPECT_TRUE(j.stdout().append());
  EXPECT_EQ(j.stderr().target_case(), Stream::kCapture);
  EXPECT_EQ(j.limits().cpu_time_ms(), 1500u);
  EXPECT_EQ(j.limits().memory_bytes(), 64u << 20);
  EXPECT_FALSE(j.limits().has_wall_time_ms());
  EXPECT_EQ(j.profile(), "p");
}

TEST(JobJson, RoundTrip) {
  JobSpec j = base_job();
  j.set_id("rt");
  j.add_argv("x y");
  j.add_env("A=1");
  j.mutable_limits()->set_wall_time_ms(2500);
  j.mutable_stdin()->set_path("/dev/null");
  Bind* b = j.add_bind();
  b->set_src("/usr");
  b->set_dst("/opt/usr");
  std::string json;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(j, &json, opts).ok());
  const JobSpec back = parse_job_json(json, "job line 1");
  EXPECT_EQ(back.SerializeAsString(), j.SerializeAsString()) << json;
}

TEST(JobJson, UnknownFieldIsError) {
  const ConfigError e =
      config_error([] { parse_job_json(R"({"argv":["/bin/true"],"timeout":5})", "job line 7"); });
  EXPECT_EQ(e.field(), "job line 7");
  EXPECT_CONTAINS(e.what(), "timeout");
  EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
}

TEST(JobJson, BadJson) {
  for (const char* bad :
       {"", "not json", "[1,2]", R"({"limits":{"pids":-1}})", R"({"argv":["a"]} trailing)"}) {
    const ConfigError e = config_error([&] { parse_job_json(bad, "job line 2"); });
    EXPECT_EQ(e.field(), "job line 2") << bad;
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << bad;
  }
}

TEST(JobJson, ValidationErrorNamesLineAndField) {
  const ConfigError e = config_error([] { parse_job_json(R"({"argv":[]})", "job line 3"); });
  EXPECT_EQ(e.field(), "job line 3: argv");
  const ConfigError e2 =
      config_error([] { parse_job_json(R"({"argv":["a"],"env":["NOPE"]})", "job line 4"); });
  EXPECT_EQ(e2.field(), "job line 4: env[0]");
}

// --- results -------------------------------------------------------------------------------

TEST(ResultJson, EnumNamesAndSnakeCase) {
  JobResult r;
  r.set_id("j1");
  r.set_status(OK);
  r.set_cpu_time_us(1234);
  r.set_memory_peak_source(CGROUP_V2_MEMORY_PEAK);
  r.set_stdout("hello\n");
  const std::string json = result_to_json(r);
  EXPECT_EQ(json.find('\n'), std::string::npos) << json;
  EXPECT_CONTAINS(json, R"("status":"OK")");
  EXPECT_CONTAINS(json, R"("memory_peak_source":"CGROUP_V2_MEMORY_PEAK")");
  EXPECT_CONTAINS(json, R"("cpu_time_us":"1234")");  // uint64: a string in proto3 JSON
  EXPECT_CONTAINS(json, R"("exit_code":0)");         // printed although 0
  EXPECT_CONTAINS(json, R"("stderr_truncated":false)");
  EXPECT_CONTAINS(json, R"("stdout":"hello\n")");
  EXPECT_EQ(json.find("cpuTimeUs"), std::string::npos);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

TEST(ResultJson, InvalidUtf8IsReplaced) {
  JobResult r;
  r.set_status(NONZERO_EXIT);
  r.set_stdout(
      std::string("a\xff"
                  "b\xc3\xa9",
                  5));                           // a, invalid byte, b, e-acute
  r.set_stderr(std::string("\xed\xa0\x80", 3));  // an encoded surrogate
  const std::string json = result_to_json(r);
  EXPECT_CONTAINS(json,
                  "\"stdout\":\"a\xef\xbf\xbd"
                  "b\xc3\xa9\"");
  EXPECT_CONTAINS(json, "\"stderr\":\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
  EXPECT_CONTAINS(json, R"("status":"NONZERO_EXIT")");
}

// --- --bind --------------------------------------------------------------------------------

TEST(BindFlag, Forms) {
  Bind b = parse_bind_flag("/data");
  EXPECT_EQ(b.src(), "/data");
  EXPECT_EQ(b.dst(), "");
  EXPECT_FALSE(b.rw());
  b = parse_bind_flag("/data:/in");
  EXPECT_EQ(b.src(), "/data");
  EXPECT_EQ(b.dst(), "/in");
  EXPECT_FALSE(b.rw());
  b = parse_bind_flag("/data:/in:rw");
  EXPECT_TRUE(b.rw());
  b = parse_bind_flag("/data:/in:ro");
  EXPECT_FALSE(b.rw());
}

TEST(BindFlag, Bad) {
  for (const char* bad : {"", ":", "/a:", ":/b", "/a:/b:", "/a:/b:rx", "/a:/b:rw:x", "/a::rw",
                          "rel:/b", "/a:rel", "/a:/"}) {
    const ConfigError e = config_error([&] { parse_bind_flag(bad); });
    EXPECT_EQ(e.field(), "--bind") << bad;
  }
}

}  // namespace
}  // namespace jailpool
