#include "serve/file_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/core.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/unique_fd.h"

namespace jailpool::serve {

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    throw Error("SHA-256 failed");
  }
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

bool valid_file_id(std::string_view id) {
  return id.size() == 64 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

FileCache::FileCache(std::string dir, uint64_t capacity_bytes)
    : dir_(std::move(dir)), capacity_(capacity_bytes) {
  if (::mkdir(dir_.c_str(), 0700) < 0 && errno != EEXIST) throw_errno("mkdir " + dir_);
  struct stat st {};
  if (::lstat(dir_.c_str(), &st) < 0) throw_errno("stat " + dir_);
  if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
    throw Error(fmt::format("{}: not a directory of jailpool's own", dir_));
  }
  // What a previous server left: its entries (oldest first into the LRU order), not its
  // temporary files.
  DIR* d = ::opendir(dir_.c_str());
  if (!d) throw_errno("opendir " + dir_);
  std::vector<std::pair<int64_t, Info>> found;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = path_of(name);
    struct stat fst {};
    if (valid_file_id(name) && ::lstat(path.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) {
      found.push_back({fst.st_mtim.tv_sec * 1000000000ll + fst.st_mtim.tv_nsec,
                       Info{name, static_cast<uint64_t>(fst.st_size), 0}});
    } else {
      ::unlink(path.c_str());
    }
  }
  ::closedir(d);
  std::sort(found.begin(), found.end(), [](auto& a, auto& b) { return a.first > b.first; });
  std::lock_guard lock(mu_);
  for (auto& [mtime, info] : found) {
    lru_.push_back(info.id);
    entries_[info.id] = Entry{info.size, 0, false, std::prev(lru_.end())};
    bytes_ += info.size;
  }
  evict_locked("");
}

std::string FileCache::put(std::string_view content) {
  if (content.size() > capacity_) {
    throw Error(
        fmt::format("{} bytes: larger than the file cache ({} bytes)", content.size(), capacity_));
  }
  std::string id = sha256_hex(content);
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      it->second.doomed = false;
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      return id;
    }
    ++tmp_serial_;
  }
  // Written beside its name, then renamed: a crash leaves a temporary file (removed at the next
  // start) or the whole entry. Two puts of the same bytes write the same file twice.
  std::string tmp = fmt::format("{}/tmp.{}.{}", dir_, ::gettid(), tmp_serial_);
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0555));
    if (!fd) throw_errno("create " + tmp);
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        throw SysError(err, "write " + tmp);
      }
      done += static_cast<size_t>(n);
    }
  }
  std::lock_guard lock(mu_);
  if (::rename(tmp.c_str(), path_of(id).c_str()) < 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SysError(err, "rename into " + path_of(id));
  }
  auto it = entries_.find(id);
  if (it != entries_.end()) {  // a concurrent put of the same bytes
    it->second.doomed = false;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return id;
  }
  lru_.push_front(id);
  entries_[id] = Entry{content.size(), 0, false, lru_.begin()};
  bytes_ += content.size();
  evict_locked(id);
  return id;
}

void FileCache::erase_locked(std::map<std::string, Entry>::iterator it) {
  ::unlink(path_of(it->first).c_str());
  bytes_ -= it->second.size;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void FileCache::evict_locked(const std::string& keep) {
  auto pos = lru_.end();
  while (bytes_ > capacity_ && pos != lru_.begin()) {
    --pos;
    auto it = entries_.find(*pos);
    if (it->second.pins > 0 || it->first == keep) continue;
    auto next = std::next(pos);
    erase_locked(it);
    ++evictions_;
    pos = next;
  }
}

std::optional<FileCache::Pin> FileCache::pin(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.doomed) {
    ++misses_;
    return std::nullopt;
  }
  ++hits_;
  ++it->second.pins;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return Pin(this, id, path_of(id));
}

void FileCache::unpin(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  if (--it->second.pins == 0) {
    if (it->second.doomed) {
      erase_locked(it);
    } else {
      evict_locked("");  // it may have been kept over the capacity while in use
    }
  }
}

FileCache::Pin& FileCache::Pin::operator=(Pin&& o) noexcept {
  if (this != &o) {
    reset();
    cache_ = o.cache_;
    id_ = std::move(o.id_);
    path_ = std::move(o.path_);
    o.cache_ = nullptr;
  }
  return *this;
}

void FileCache::Pin::reset() {
  if (cache_) cache_->unpin(id_);
  cache_ = nullptr;
}

bool FileCache::remove(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.doomed) return false;
  if (it->second.pins > 0) {
    it->second.doomed = true;
  } else {
    erase_locked(it);
  }
  return true;
}

std::vector<FileCache::Info> FileCache::list() const {
  std::lock_guard lock(mu_);
  std::vector<Info> out;
  for (const std::string& id : lru_) {
    const Entry& e = entries_.at(id);
    if (!e.doomed) out.push_back({id, e.size, e.pins});
  }
  return out;
}

FileCache::Stats FileCache::stats() const {
  std::lock_guard lock(mu_);
  return {bytes_, entries_.size(), capacity_, hits_, misses_, evictions_};
}

}  // namespace jailpool::serve
