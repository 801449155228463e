// The file cache of `jailpool serve`: content-addressed (SHA-256, lowercase hex), one file per
// entry under the server's own directory, capped in bytes with least-recently-used eviction.
// A job that uses an entry pins it: it is neither evicted nor deleted until the job has ended
// (the executor opens it by path when the job starts). Thread-safe.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace jailpool::serve {

// SHA-256 of `data`, lowercase hex.
std::string sha256_hex(std::string_view data);
// 64 lowercase hex digits.
bool valid_file_id(std::string_view id);

class FileCache {
 public:
  // dir: created (0700) when missing. What a previous server left there is kept (entries are
  // named by their content) up to the capacity; temporary files are removed.
  FileCache(std::string dir, uint64_t capacity_bytes);
  FileCache(const FileCache&) = delete;
  FileCache& operator=(const FileCache&) = delete;

  // Stores `content` (or finds it stored) and returns its id. Evicts unpinned entries, least
  // recently used first, to stay under the capacity. Throws Error when the content is larger
  // than the capacity or cannot be written.
  std::string put(std::string_view content);

  // An entry kept until the Pin is gone.
  class Pin {
   public:
    Pin() = default;
    Pin(FileCache* cache, std::string id, std::string path)
        : cache_(cache), id_(std::move(id)), path_(std::move(path)) {}
    Pin(Pin&& o) noexcept { *this = std::move(o); }
    Pin& operator=(Pin&& o) noexcept;
    ~Pin() { reset(); }
    void reset();
    const std::string& path() const { return path_; }
    const std::string& id() const { return id_; }

   private:
    FileCache* cache_ = nullptr;
    std::string id_, path_;
  };
  // The entry, pinned and marked as used; nullopt when there is none (a miss).
  std::optional<Pin> pin(const std::string& id);

  // Removes the entry (once unpinned, if a job uses it); false when there is none.
  bool remove(const std::string& id);

  struct Info {
    std::string id;
    uint64_t size = 0;
    uint32_t pins = 0;
  };
  std::vector<Info> list() const;  // most recently used first

  struct Stats {
    uint64_t bytes = 0, entries = 0, capacity = 0;
    uint64_t hits = 0, misses = 0, evictions = 0;
  };
  Stats stats() const;
  const std::string& dir() const { return dir_; }

 private:
  struct Entry {
    uint64_t size = 0;
    uint32_t pins = 0;
    // Deleted while pinned: unlinked at the last unpin unless put again meanwhile; a miss.
    bool doomed = false;
    std::list<std::string>::iterator lru;  // position in lru_ (front: most recent)
  };
  void unpin(const std::string& id);
  void evict_locked(const std::string& keep);
  void erase_locked(std::map<std::string, Entry>::iterator it);
  std::string path_of(const std::string& id) const { return dir_ + "/" + id; }

  std::string dir_;
  uint64_t capacity_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::list<std::string> lru_;
  uint64_t bytes_ = 0;
  uint64_t hits_ = 0, misses_ = 0, evictions_ = 0;
  uint64_t tmp_serial_ = 0;
};

}  // namespace jailpool::serve
