// Files crossing the sandbox boundary (copy_in, copy_out): validation of the job spec, the
// host-side primitives against real symlinks, FIFOs, sockets, devices, hard links, mount points
// and a path swapped while it is collected, then end-to-end jobs (fresh and pooled jails, the
// CLI, batch) whose hostile outputs must each give a per-file error, never a host read, with the
// job's verdict unaffected and the working directory gone after every job.
#include "isolate/files.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "config/profile.h"
#include "isolate/jail.h"
#include "pool/template_pool.h"
#include "sched/executor.h"
#include "test_support.h"

namespace jailpool {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using isolate::Resolve;
using testing_env::count_own_fds;
using testing_env::describe;
using testing_env::in_jail;
using testing_env::join;
using testing_env::kProgsInJail;
using testing_env::leftover_processes;
using testing_env::poll_until_empty;
using testing_env::read_file;
using testing_env::TempDir;

constexpr const char* kSecret = "HOST SECRET, never to be read for a job\n";

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

// The lines of the host's mount table that mention `text`.
std::set<std::string> host_mounts_with(const std::string& text) {
  std::set<std::string> out;
  std::string table = read_file("/proc/self/mountinfo");
  size_t pos = 0;
  while (pos < table.size()) {
    size_t end = table.find('\n', pos);
    if (end == std::string::npos) end = table.size();
    std::string line = table.substr(pos, end - pos);
    if (line.find(text) != std::string::npos) out.insert(line);
    pos = end + 1;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Validation of copy_in / copy_out in job specs and of the CLI flags.

JobSpec job_with_argv() {
  JobSpec spec;
  spec.add_argv("/bin/true");
  return spec;
}

TEST(FilesConfigTest, CopyOutPathMustStayInTheWorkingDirectory) {
  for (const char* bad : {"../x", "/etc/passwd", "a/../../x", "./x", "a//b", "a/", ""}) {
    JobSpec spec = job_with_argv();
    spec.add_copy_out()->set_path(bad);
    ConfigError e = config_error([&] { validate_job(spec); });
    EXPECT_EQ(e.field(), "copy_out[0].path") << bad;
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  JobSpec spec = job_with_argv();
  spec.add_copy_out()->set_path("out/result.txt");
  EXPECT_NO_THROW(validate_job(spec));
}

TEST(FilesConfigTest, CopyInNeedsASourceARelativeDstAndNoWriteBits) {
  JobSpec spec = job_with_argv();
  spec.add_copy_in()->set_dst("in.txt");
  EXPECT_EQ(config_error([&] { validate_job(spec); }).field(), "copy_in[0]");

  spec = job_with_argv();
  CopyIn* c = spec.add_copy_in();
  c->set_content("x");
  c->set_dst("../in.txt");
  EXPECT_EQ(config_error([&] { validate_job(spec); }).field(), "copy_in[0].dst");

  c->set_dst("in.txt");
  c->set_mode(0644);
  ConfigError e = config_error([&] { validate_job(spec); });
  EXPECT_EQ(e.field(), "copy_in[0].mode");
  EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();

  c->set_mode(0555);
  EXPECT_NO_THROW(validate_job(spec));
  CopyIn* again = spec.add_copy_in();
  again->set_content("y");
  again->set_dst("in.txt");
  e = config_error([&] { validate_job(spec); });
  EXPECT_EQ(e.field(), "copy_in[1].dst");
  EXPECT_NE(std::string(e.what()).find("copy_in[0]"), std::string::npos) << e.what();
}

TEST(FilesConfigTest, JsonJobSpecsCarryFiles) {
  JobSpec spec = parse_job_json(
      R"({"argv":["/bin/cat","in.txt"],"copy_in":[{"content":"aGVsbG8=","dst":"in.txt"}],)"
      R"("copy_out":[{"path":"out.txt","max_bytes":"1024","dst":"/tmp/x"}]})",
      "job line 1");
  ASSERT_EQ(spec.copy_in_size(), 1);
  EXPECT_EQ(spec.copy_in(0).content(), "hello");
  ASSERT_EQ(spec.copy_out_size(), 1);
  EXPECT_EQ(spec.copy_out(0).max_bytes(), 1024u);
  ConfigError e = config_error([] {
    parse_job_json(R"({"argv":["/bin/true"],"copy_out":[{"path":"../x"}]})", "job line 2");
  });
  EXPECT_EQ(e.field(), "job line 2: copy_out[0].path");
}

TEST(FilesConfigTest, CliFlags) {
  CopyIn in = parse_copy_in_flag("/data/input.txt");
  EXPECT_EQ(in.src(), "/data/input.txt");
  EXPECT_EQ(in.dst(), "input.txt");
  in = parse_copy_in_flag("input.txt:sub/in.txt");
  EXPECT_EQ(in.src(), "input.txt");
  EXPECT_EQ(in.dst(), "sub/in.txt");
  CopyOut out = parse_copy_out_flag("out.txt");
  EXPECT_EQ(out.path(), "out.txt");
  EXPECT_EQ(out.dst(), "");
  out = parse_copy_out_flag("out.txt:/tmp/result.txt");
  EXPECT_EQ(out.dst(), "/tmp/result.txt");
  for (const char* bad : {"x:../y", "x:", ":y", "x:/abs"}) {
    EXPECT_EQ(config_error([&] { parse_copy_in_flag(bad); }).field(), "--copy-in") << bad;
  }
  for (const char* bad : {"../out", "/etc/shadow", "out:", "a:b:c"}) {
    EXPECT_EQ(config_error([&] { parse_copy_out_flag(bad); }).field(), "--copy-out") << bad;
  }
}

// ---------------------------------------------------------------------------------------------
// The primitives, on a host directory standing for a job's working directory ("box"), next to
// a secret the job must never get read.

class FilesPrimitiveTest : public ::testing::TestWithParam<Resolve> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    secret_ = dir_.write("secret", kSecret);
    ASSERT_EQ(::mkdir(dir_.file("box").c_str(), 0755), 0);
    box_.reset(::open(dir_.file("box").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(box_);
  }

  std::string box(const std::string& name) const { return dir_.file("box/" + name); }

  FileResult collect(const std::string& path, uint64_t max_bytes = 1 << 20) {
    CopyOut c;
    c.set_path(path);
    c.set_max_bytes(max_bytes);
    FileResult r = isolate::collect_file(box_.get(), c, 0, GetParam());
    EXPECT_EQ(r.content().find("HOST SECRET"), std::string::npos) << r.ShortDebugString();
    return r;
  }

  TempDir dir_{"jailpool-files-test"};
  std::string secret_;
  UniqueFd box_;
};

TEST_P(FilesPrimitiveTest, RegularFileIsCollected) {
  ASSERT_EQ(::mkdir(box("sub").c_str(), 0755), 0);
  dir_.write("box/sub/out.txt", "result\n");
  FileResult r = collect("sub/out.txt");
  EXPECT_EQ(r.error(), "");
  EXPECT_EQ(r.content(), "result\n");
  EXPECT_EQ(r.size(), 7u);
}

TEST_P(FilesPrimitiveTest, EachHostileKindHasItsError) {
  ASSERT_EQ(::symlink(secret_.c_str(), box("abs_link").c_str()), 0);
  ASSERT_EQ(::symlink("../secret", box("rel_link").c_str()), 0);
  ASSERT_EQ(::symlink(dir_.path().c_str(), box("dir_link").c_str()), 0);
  ASSERT_EQ(::mkfifo(box("fifo").c_str(), 0666), 0);
  ASSERT_EQ(::mknod(box("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(::mknod(box("block").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
  ASSERT_EQ(::mkdir(box("dir").c_str(), 0755), 0);
  // A hard link to a "host" file (one the job could see through a bind).
  ASSERT_EQ(::link(secret_.c_str(), box("hardlink").c_str()), 0);
  dir_.write("box/big", std::string(10 << 20, 'x'));
  dir_.write("box/exact", std::string(1024, 'y'));

  EXPECT_EQ(collect("abs_link").error(), "symlink");
  EXPECT_EQ(collect("rel_link").error(), "symlink");
  EXPECT_EQ(collect("dir_link/secret").error(), "symlink in the path");
  EXPECT_EQ(collect("fifo").error(), "not a regular file (fifo)");  // and no hang
  EXPECT_EQ(collect("null").error(), "not a regular file (character device)");
  EXPECT_EQ(collect("block").error(), "not a regular file (block device)");
  EXPECT_EQ(collect("dir").error(), "not a regular file (directory)");
  EXPECT_EQ(collect("hardlink").error(), "hard link (nlink 2)");
  EXPECT_EQ(collect("missing").error(), "missing");
  EXPECT_EQ(collect("exact/x").error(), "missing (a component of the path is not a directory)");
  EXPECT_EQ(collect("big", 1024).error(), "larger than max_bytes 1024 (10485760 bytes)");
  FileResult exact = collect("exact", 1024);
  EXPECT_EQ(exact.error(), "");
  EXPECT_EQ(exact.size(), 1024u);
  // Paths the spec validation refuses are refused here too.
  EXPECT_NE(collect("../secret").error(), "");
  EXPECT_NE(collect(secret_).error(), "");
}

TEST_P(FilesPrimitiveTest, OpenBeneathNeverLeavesTheDirectory) {
  ASSERT_EQ(::symlink(secret_.c_str(), box("link").c_str()), 0);
  dir_.write("box/file", "x");
  auto open = [&](const char* path, int flags) {
    int fd = isolate::open_beneath(box_.get(), path, flags, 0, GetParam());
    if (fd >= 0) ::close(fd);
    return fd >= 0 ? 0 : fd;
  };
  EXPECT_EQ(open("file", O_RDONLY), 0);
  EXPECT_EQ(open("link", O_RDONLY), -ELOOP);
  EXPECT_EQ(open("link/x", O_PATH), -ELOOP);
  for (const char* bad : {"../secret", "/etc/passwd", "", "./file", "a//b", "file/"}) {
    EXPECT_EQ(open(bad, O_RDONLY), -EINVAL) << bad;
  }
  // With O_PATH the symlink itself is opened: fstat tells what it is, nothing is followed.
  int fd = isolate::open_beneath(box_.get(), "link", O_PATH, 0, GetParam());
  ASSERT_GE(fd, 0);
  struct stat st;
  EXPECT_EQ(::fstat(fd, &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ::close(fd);
  // O_CREAT through a symlink does not create its target.
  std::string target = dir_.file("created_by_link");
  ASSERT_EQ(::symlink(target.c_str(), box("dangling").c_str()), 0);
  EXPECT_LT(isolate::open_beneath(box_.get(), "dangling", O_WRONLY | O_CREAT, 0644, GetParam()), 0);
  EXPECT_FALSE(fs::exists(target));
}

TEST_P(FilesPrimitiveTest, MountPointsAreNotCrossed) {
  UniqueFd root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root);
  // /proc is a mount of its own below /.
  int fd = isolate::open_beneath(root.get(), "proc/version", O_RDONLY, 0, GetParam());
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(fd, -EXDEV);
}

// A job (here: a thread) swaps its output between a regular file and a symlink to the secret,
// and a directory of the path between a real one and a symlink to the secret's directory,
// while jailpool collects: every collection gets the regular file or an error, never the secret.
TEST_P(FilesPrimitiveTest, SwapRaceNeverReadsTheTarget) {
  ASSERT_EQ(::mkdir(box("d").c_str(), 0755), 0);
  dir_.write("box/d/out", "regular\n");
  dir_.write("secret_dir_out", kSecret);
  ASSERT_EQ(::mkdir(dir_.file("secret_dir").c_str(), 0755), 0);
  dir_.write("secret_dir/out", kSecret);
  std::atomic<bool> stop{false};
  std::thread swapper([&] {
    const std::string out = box("out"), d = box("d");
    for (unsigned i = 0; !stop.load(std::memory_order_relaxed); ++i) {
      std::string file_tmp = box("out.file"), link_tmp = box("out.link");
      std::string dir_tmp = box("d.dir"), dirlink_tmp = box("d.link");
      // out: a regular file, then a symlink to the secret.
      dir_.write("box/out.file", "regular\n");
      ::rename(file_tmp.c_str(), out.c_str());
      ::unlink(link_tmp.c_str());
      ::symlink(secret_.c_str(), link_tmp.c_str());
      ::rename(link_tmp.c_str(), out.c_str());
      // d: the real directory, then a symlink to the secret's directory.
      if (i % 2 == 0) {
        ::unlink(dirlink_tmp.c_str());
        ::symlink(dir_.file("secret_dir").c_str(), dirlink_tmp.c_str());
        ::rename(d.c_str(), dir_tmp.c_str());
        ::rename(dirlink_tmp.c_str(), d.c_str());
      } else {
        ::rename(d.c_str(), dirlink_tmp.c_str());
        ::rename(dir_tmp.c_str(), d.c_str());
      }
    }
  });
  std::map<std::string, int> outcomes;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  int collections = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    for (const char* path : {"out", "d/out"}) {
      FileResult r = collect(path);  // asserts the secret never shows
      ++collections;
      ++outcomes[r.error().empty() ? "ok: " + r.content() : r.error()];
      if (r.error().empty()) {
        EXPECT_EQ(r.content(), "regular\n");
      }
    }
    bool both = outcomes.count("ok: regular\n") && outcomes.count("symlink") &&
                outcomes.count("symlink in the path");
    if (both && collections >= 20000) break;
  }
  stop = true;
  swapper.join();
  std::string seen;
  for (const auto& [what, n] : outcomes) seen += what + " x" + std::to_string(n) + "\n";
  // The race did happen both ways (else the test proves nothing).
  EXPECT_TRUE(outcomes.count("ok: regular\n")) << seen;
  EXPECT_TRUE(outcomes.count("symlink")) << seen;
  EXPECT_TRUE(outcomes.count("symlink in the path")) << seen;
  for (const auto& [what, n] : outcomes) {
    // "missing" and "changed while being collected": caught between two renames of the swap.
    EXPECT_TRUE(what == "ok: regular\n" || what == "symlink" || what == "symlink in the path" ||
                what == "missing" || what == "changed while being collected")
        << seen;
  }
}

INSTANTIATE_TEST_SUITE_P(Resolve, FilesPrimitiveTest,
                         ::testing::Values(Resolve::kAuto, Resolve::kWalk), [](const auto& info) {
                           return info.param == Resolve::kAuto ? std::string("Openat2")
                                                               : std::string("Walk");
                         });

TEST(FilesHostTest, Openat2IsProbed) {
  // This machine's kernel has it (5.6+); the walk is covered by the Walk instances.
  EXPECT_TRUE(isolate::openat2_available());
}

TEST(FilesHostTest, HostOutputFileIsNeverWrittenThroughALinkOrIntoAFifo) {
  TempDir dir("jailpool-files-test");
  std::string victim = dir.write("victim", "unchanged\n");
  std::string link = dir.file("link");
  ASSERT_EQ(::symlink(victim.c_str(), link.c_str()), 0);
  EXPECT_THROW(isolate::create_host_file(link), Error);
  EXPECT_EQ(read_file(victim), "unchanged\n");
  std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  EXPECT_THROW(isolate::create_host_file(fifo), Error);  // refused, and no hang
  // A regular file is truncated, a new one created 0644.
  std::string existing = dir.write("existing", "old content\n");
  { UniqueFd fd = isolate::create_host_file(existing); }
  EXPECT_EQ(read_file(existing), "");
  std::string fresh = dir.file("fresh");
  { UniqueFd fd = isolate::create_host_file(fresh); }
  struct stat st;
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
}

TEST(FilesHostTest, ScratchFsIsADetachedTmpfsOwnedByTheJob) {
  auto mounts_before = host_mounts_with("tmpfs");
  Profile profile = default_profile();
  isolate::ScratchFs scratch = isolate::ScratchFs::create(profile);
  struct statfs sfs;
  ASSERT_EQ(::fstatfs(scratch.fd(), &sfs), 0);
  EXPECT_EQ(static_cast<unsigned long>(sfs.f_type), static_cast<unsigned long>(TMPFS_MAGIC));
  EXPECT_EQ(static_cast<uint64_t>(sfs.f_blocks) * sfs.f_bsize, profile.cwd_size_bytes());
  struct stat st;
  ASSERT_EQ(::fstat(scratch.fd(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(host_mounts_with("tmpfs"), mounts_before) << "the scratch tmpfs is on the host";
}

TEST(FilesHostTest, CopyInMakesReadOnlyFilesAndJobOwnedParents) {
  TempDir dir("jailpool-files-test");
  isolate::ScratchFs scratch = isolate::ScratchFs::create(default_profile());
  CopyIn content;
  content.set_content("from the spec\n");
  content.set_dst("a/b/in.txt");
  isolate::copy_in(scratch.fd(), content, "copy_in[0]", 65534, 65534);
  CopyIn from_host;
  from_host.set_src(dir.write("host.txt", "from the host\n"));
  from_host.set_dst("a/prog");
  from_host.set_mode(0555);
  isolate::copy_in(scratch.fd(), from_host, "copy_in[1]", 65534, 65534);

  struct stat st;
  ASSERT_EQ(::fstatat(scratch.fd(), "a/b/in.txt", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0444u);
  ASSERT_EQ(::fstatat(scratch.fd(), "a/prog", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  CopyIn executable;
  executable.set_src(testing_env::prog("exit_code"));
  executable.set_dst("exit_code");
  isolate::copy_in(scratch.fd(), executable, "copy_in[2]", 65534, 65534);
  ASSERT_EQ(::fstatat(scratch.fd(), "exit_code", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  ASSERT_EQ(::fstatat(scratch.fd(), "a/b", &st, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  CopyOut back;
  back.set_path("a/b/in.txt");
  EXPECT_EQ(isolate::collect_file(scratch.fd(), back, 1024).content(), "from the spec\n");
  back.set_path("a/prog");
  EXPECT_EQ(isolate::collect_file(scratch.fd(), back, 1024).content(), "from the host\n");

  // A source that is a symlink, a FIFO or missing is the source's error; a dst given twice the
  // dst's.
  std::string link = dir.file("link");
  ASSERT_EQ(::symlink(dir.file("host.txt").c_str(), link.c_str()), 0);
  std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
  for (const std::string& src : {link, fifo, dir.file("missing")}) {
    CopyIn bad;
    bad.set_src(src);
    bad.set_dst("x");
    ConfigError e = config_error([&] { isolate::copy_in(scratch.fd(), bad, "copy_in[2]", 1, 1); });
    EXPECT_EQ(e.field(), "copy_in[2].src") << src;
  }
  ConfigError e =
      config_error([&] { isolate::copy_in(scratch.fd(), content, "copy_in[3]", 65534, 65534); });
  EXPECT_EQ(e.field(), "copy_in[3].dst");
}

// ---------------------------------------------------------------------------------------------
// End to end through the executor, in fresh jails and in pooled ones.

class FilesJobTest : public ::testing::TestWithParam<bool> {
 protected:
  bool pooled() const { return GetParam(); }

  void SetUp() override {
    // The test programs are bound by the profile, so that the jobs (no binds of their own) can
    // start from templates.
    profile_ = default_profile();
    Bind* bind = profile_.add_bind();
    bind->set_src(JAILPOOL_TEST_PROGS);
    bind->set_dst(kProgsInJail);
    sched::ExecutorOptions options;
    options.cgroup_parent = testing_env::cgroup_parent();
    options.use_pool = pooled();
    // These jobs start from templates (a job with files never runs in a slot); so does the
    // warm-up job below.
    options.use_slots = false;
    executor_ = std::make_unique<sched::Executor>(options);
    // A first job without files builds the template, so that fds counted from now on are the
    // jobs' only.
    JobSpec warm = job({"/bin/true"});
    ASSERT_EQ(executor_->run_one(warm, profile_).status(), OK);
    fds_ = count_own_fds();
    mounts_ = host_mounts_with("tmpfs");
  }

  void TearDown() override {
    if (pooled()) {
      auto stats = executor_->templates()->stats();
      EXPECT_GT(stats.reused, 0u) << "the jobs did not run from a template";
    }
    executor_.reset();
    auto dirs = poll_until_empty(testing_env::job_cgroups_left, 1000ms);
    EXPECT_TRUE(dirs.empty()) << "job cgroups left behind:\n" << join(dirs);
    auto procs = poll_until_empty(leftover_processes, 1000ms);
    EXPECT_TRUE(procs.empty()) << "processes left behind:\n" << join(procs);
  }

  JobSpec job(std::vector<std::string> argv) const {
    JobSpec spec;
    spec.set_id("files-test");
    for (const auto& a : argv) spec.add_argv(a);
    spec.add_env(testing_env::job_marker());
    return spec;
  }

  static void add_out(JobSpec& spec, const std::string& path, uint64_t max_bytes = 0,
                      const std::string& dst = "") {
    CopyOut* c = spec.add_copy_out();
    c->set_path(path);
    c->set_max_bytes(max_bytes);
    c->set_dst(dst);
  }

  // Runs the job, then checks that its working directory is gone: jailpool holds no fd more
  // than before (the tmpfs's last reference was that fd; the jail, its other holder, is dead)
  // and the host's mount table did not change.
  JobResult run(const JobSpec& spec) {
    JobResult r = executor_->run_one(spec, profile_);
    EXPECT_EQ(count_own_fds(), fds_) << "an fd of the job (its working directory?) is left";
    EXPECT_EQ(host_mounts_with("tmpfs"), mounts_) << "a tmpfs appeared in the host's mounts";
    return r;
  }

  Profile profile_;
  std::unique_ptr<sched::Executor> executor_;
  int fds_ = 0;
  std::set<std::string> mounts_;
};

TEST_P(FilesJobTest, CopyInTransformCopyOut) {
  TempDir dir("jailpool-files-test");
  JobSpec spec = job({in_jail("files_trick"), "upper", "data/in.txt", "out.txt"});
  CopyIn* in = spec.add_copy_in();
  in->set_src(dir.write("in.txt", "hello, jail\n"));
  in->set_dst("data/in.txt");
  add_out(spec, "out.txt");
  add_out(spec, "out.txt", 0, dir.file("result.txt"));
  add_out(spec, "data/in.txt");
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), OK) << describe(r);
  ASSERT_EQ(r.files_size(), 3) << describe(r);
  EXPECT_EQ(r.files(0).path(), "out.txt");
  EXPECT_EQ(r.files(0).error(), "");
  EXPECT_EQ(r.files(0).content(), "HELLO, JAIL\n");
  EXPECT_EQ(r.files(0).size(), 12u);
  EXPECT_EQ(r.files(1).error(), "");
  EXPECT_EQ(r.files(1).content(), "");
  EXPECT_EQ(r.files(1).dst(), dir.file("result.txt"));
  EXPECT_EQ(read_file(dir.file("result.txt")), "HELLO, JAIL\n");
  EXPECT_EQ(r.files(2).content(), "hello, jail\n");
}

TEST_P(FilesJobTest, CopiedInFilesAreReadOnlyForTheJob) {
  JobSpec spec = job({"/bin/sh", "-c", "echo changed > in.txt; cat in.txt; echo new > fresh.txt"});
  CopyIn* in = spec.add_copy_in();
  in->set_content("original\n");
  in->set_dst("in.txt");
  add_out(spec, "fresh.txt");
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), OK) << describe(r);  // the shell goes on after the failed redirection
  EXPECT_EQ(r.stdout(), "original\n") << describe(r);
  EXPECT_NE(r.stderr().find("Permission denied"), std::string::npos) << describe(r);
  ASSERT_EQ(r.files_size(), 1);
  EXPECT_EQ(r.files(0).content(), "new\n");
}

TEST_P(FilesJobTest, CopiedInProgramRuns) {
  JobSpec spec = job({"./prog", "7"});
  CopyIn* in = spec.add_copy_in();
  in->set_src(testing_env::prog("exit_code"));  // executable: copied in as 0555
  in->set_dst("prog");
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), NONZERO_EXIT) << describe(r);
  EXPECT_EQ(r.exit_code(), 7);
}

struct Trick {
  std::vector<std::string> args;  // after files_trick
  std::string error;
};

TEST_P(FilesJobTest, HostileOutputsGetPerFileErrorsAndTheVerdictStands) {
  const std::vector<Trick> tricks = {
      {{"symlink", "out.txt", "/etc/shadow"}, "symlink"},
      {{"symlink", "out.txt", "/etc/passwd"}, "symlink"},
      {{"dirlink", "etc", "/etc"}, "symlink in the path"},
      {{"fifo", "out.txt"}, "not a regular file (fifo)"},
      {{"socket", "out.txt"}, "not a regular file (socket)"},
      {{"hardlink", "out.txt"}, "hard link (nlink 2)"},
      {{"big", "out.txt", std::to_string(10 << 20)}, "larger than max_bytes 1024 (10485760 bytes)"},
  };
  for (const Trick& t : tricks) {
    std::vector<std::string> argv{in_jail("files_trick")};
    argv.insert(argv.end(), t.args.begin(), t.args.end());
    JobSpec spec = job(argv);
    const std::string path = t.args[0] == "dirlink" ? "etc/shadow" : "out.txt";
    add_out(spec, path, 1024);
    add_out(spec, "missing.txt");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), OK) << describe(r);
    ASSERT_EQ(r.files_size(), 2) << describe(r);
    EXPECT_EQ(r.files(0).error(), t.error) << t.args[0] << ": " << describe(r);
    EXPECT_EQ(r.files(0).content(), "") << t.args[0];
    EXPECT_EQ(r.files(0).size(), 0u) << t.args[0];
    EXPECT_EQ(r.files(1).error(), "missing");
  }
}

TEST_P(FilesJobTest, HostileOutputIsNeverWrittenToTheHostDst) {
  TempDir dir("jailpool-files-test");
  const std::string dst = dir.write("result.txt", "previous\n");
  JobSpec spec = job({in_jail("files_trick"), "symlink", "out.txt", "/etc/shadow"});
  add_out(spec, "out.txt", 0, dst);
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), OK) << describe(r);
  ASSERT_EQ(r.files_size(), 1);
  EXPECT_EQ(r.files(0).error(), "symlink");
  EXPECT_EQ(read_file(dst), "previous\n");  // not even truncated
}

TEST_P(FilesJobTest, SwappingJobIsCollectedAfterItsDeath) {
  JobSpec spec = job({in_jail("files_trick"), "swap", "out.txt", "/etc/shadow"});
  spec.mutable_limits()->set_wall_time_ms(300);
  add_out(spec, "out.txt");
  JobResult r = run(spec);
  EXPECT_EQ(r.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r);
  ASSERT_EQ(r.files_size(), 1);
  const FileResult& f = r.files(0);
  EXPECT_TRUE((f.error().empty() && f.content() == "regular\n") || f.error() == "symlink")
      << f.ShortDebugString();
}

TEST_P(FilesJobTest, FilesAreCollectedAfterTimeLimitAndKills) {
  {
    JobSpec spec = job({in_jail("files_trick"), "write_then_sleep", "out.txt"});
    spec.mutable_limits()->set_wall_time_ms(300);
    add_out(spec, "out.txt");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), WALL_TIME_LIMIT_EXCEEDED) << describe(r);
    ASSERT_EQ(r.files_size(), 1);
    EXPECT_EQ(r.files(0).content(), "before the kill\n");
  }
  {
    JobSpec spec = job({"/bin/sh", "-c", "echo partial > out.txt; exec /progs/burn_cpu"});
    spec.mutable_limits()->set_cpu_time_ms(200);
    add_out(spec, "out.txt");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), TIME_LIMIT_EXCEEDED) << describe(r);
    ASSERT_EQ(r.files_size(), 1);
    EXPECT_EQ(r.files(0).content(), "partial\n");
  }
  {
    // Killed by jailpool for its output.
    JobSpec spec = job({"/bin/sh", "-c", "echo partial > out.txt; exec /progs/flood_output"});
    spec.mutable_limits()->set_output_bytes(1 << 20);
    add_out(spec, "out.txt");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), OUTPUT_LIMIT_EXCEEDED) << describe(r);
    ASSERT_EQ(r.files_size(), 1);
    EXPECT_EQ(r.files(0).content(), "partial\n");
  }
}

TEST_P(FilesJobTest, SetupErrorsReleaseTheWorkingDirectory) {
  {
    // The second input cannot be read: the first was already copied into the tmpfs.
    JobSpec spec = job({"/bin/true"});
    CopyIn* good = spec.add_copy_in();
    good->set_content("x");
    good->set_dst("a.txt");
    CopyIn* bad = spec.add_copy_in();
    bad->set_src("/nonexistent/input.txt");
    bad->set_dst("b.txt");
    add_out(spec, "a.txt");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), SETUP_ERROR) << describe(r);
    EXPECT_NE(r.message().find("copy_in[1].src"), std::string::npos) << describe(r);
    EXPECT_EQ(r.files_size(), 0);
  }
  {
    // Fails inside the jail: a copied-in "program" that is not one.
    JobSpec spec = job({"./prog"});
    CopyIn* in = spec.add_copy_in();
    in->set_content("not an executable\n");
    in->set_dst("prog");
    in->set_mode(0555);
    add_out(spec, "prog");
    JobResult r = run(spec);
    EXPECT_EQ(r.status(), SETUP_ERROR) << describe(r);
    EXPECT_NE(r.message().find("Exec format error"), std::string::npos) << describe(r);
    EXPECT_EQ(r.files_size(), 0);
  }
}

TEST_P(FilesJobTest, JobsDoNotSeeEachOthersFiles) {
  JobSpec first = job({"/bin/sh", "-c", "echo one > left.txt"});
  add_out(first, "left.txt");
  ASSERT_EQ(run(first).status(), OK);
  JobSpec second = job({"/bin/sh", "-c", "ls -A; test ! -e left.txt"});
  add_out(second, "left.txt");
  JobResult r = run(second);
  EXPECT_EQ(r.status(), OK) << describe(r);
  EXPECT_EQ(r.stdout(), "") << describe(r);
  ASSERT_EQ(r.files_size(), 1);
  EXPECT_EQ(r.files(0).error(), "missing");
}

INSTANTIATE_TEST_SUITE_P(Jails, FilesJobTest, ::testing::Values(false, true), [](const auto& info) {
  return info.param ? std::string("Pooled") : std::string("Fresh");
});

// ---------------------------------------------------------------------------------------------
// The CLI.

TEST(FilesCliTest, RunCopiesInAndOut) {
  TempDir dir("jailpool-files-test");
  std::string in = dir.write("in.txt", "cli input\n");
  std::string out = dir.file("out.txt");
  auto r =
      testing_env::run_cli({"run", "--copy-in", in + ":sub/in.txt", "--copy-out", "out.txt:" + out,
                            "--", "/bin/sh", "-c", "tr a-z A-Z < sub/in.txt > out.txt"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(read_file(out), "CLI INPUT\n");

  r = testing_env::run_cli(
      {"run", "--copy-out", "out.txt:" + out, "--", "/bin/sh", "-c", "ln -s /etc/shadow out.txt"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.err.find("copy-out out.txt: symlink"), std::string::npos) << r.describe();
  EXPECT_EQ(read_file(out), "CLI INPUT\n");

  r = testing_env::run_cli(
      {"run", "--json", "--copy-out", "out.txt", "--", "/bin/sh", "-c", "printf abc > out.txt"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find(R"("files":[{"path":"out.txt","error":"","size":"3","content":"YWJj")"),
            std::string::npos)
      << r.describe();

  // Without HOSTDST the content goes into the result: only with --json. Nothing starts.
  r = testing_env::run_cli({"run", "--copy-out", "out.txt", "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
  EXPECT_NE(r.err.find("--copy-out"), std::string::npos) << r.describe();
  r = testing_env::run_cli({"run", "--copy-out", "../x:" + out, "--", "/bin/true"});
  EXPECT_EQ(r.exit_code, 125) << r.describe();
}

TEST(FilesCliTest, BatchJobsCopyInAndOutThroughThePool) {
  TempDir dir("jailpool-files-test");
  std::string profile = read_file(std::string(JAILPOOL_SOURCE_DIR) + "/configs/default.textproto");
  ASSERT_FALSE(profile.empty());
  std::string profile_path = dir.write("profile.textproto", profile);
  std::string jobs;
  for (int i = 0; i < 6; ++i) {
    // "aGVsbG8K" is "hello\n"; odd jobs leave a symlink instead of their output.
    std::string script = i % 2 == 0 ? "tr a-z A-Z < in.txt > out.txt" : "ln -s /etc/shadow out.txt";
    jobs += R"({"id":"j)" + std::to_string(i) + R"(","argv":["/bin/sh","-c",")" + script +
            R"("],"copy_in":[{"content":"aGVsbG8K","dst":"in.txt"}],)" +
            R"("copy_out":[{"path":"out.txt","dst":")" + dir.file("out" + std::to_string(i)) +
            R"("}]})" + "\n";
  }
  std::string input = dir.write("jobs.jsonl", jobs);
  std::string output = dir.file("results.jsonl");
  auto r = testing_env::run_cli(
      {"batch", "-j", "2", "--profile", profile_path, "--input", input, "--output", output});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  std::string results = read_file(output);
  for (int i = 0; i < 6; ++i) {
    std::string id = R"("id":"j)" + std::to_string(i) + "\"";
    size_t at = results.find(id);
    ASSERT_NE(at, std::string::npos) << results;
    std::string line = results.substr(at, results.find('\n', at) - at);
    EXPECT_NE(line.find(R"("status":"OK")"), std::string::npos) << line;
    if (i % 2 == 0) {
      EXPECT_NE(line.find(R"("error":"")"), std::string::npos) << line;
      EXPECT_EQ(read_file(dir.file("out" + std::to_string(i))), "HELLO\n");
    } else {
      EXPECT_NE(line.find(R"("error":"symlink")"), std::string::npos) << line;
      EXPECT_FALSE(fs::exists(dir.file("out" + std::to_string(i))));
    }
  }
}

}  // namespace
}  // namespace jailpool
