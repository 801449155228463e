// A Redis connection for the worker front ends: URL parsing (redis://, unix://; rediss:// is
// refused, see parse_redis_url), AUTH from a file, commands and pipelines over hiredis (Debian's
// libhiredis), and reconnection with backoff. hiredis stays inside src/worker/*.cc: callers see
// replies as plain values.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"

struct redisContext;

namespace jailpool::worker {

struct RedisUrl {
  std::string host;              // TCP: host name or address (brackets of an IPv6 literal removed)
  int port = 6379;               // TCP
  std::string unix_path;         // unix://PATH: the socket's path
  int db = 0;                    // /N (TCP) or ?db=N (unix)
  std::string user;              // redis://USER@host: AUTH USER PASSWORD (ACLs, Redis 6+)
  std::string password;          // from --auth-file, never from the URL
  std::string describe() const;  // for messages: no password
};

// Parses redis://[USER@]HOST[:PORT][/DB] and unix://PATH[?db=N]. A password in the URL is
// refused (it would show in `ps` and in shell histories: --auth-file). rediss:// is refused with
// the reason: Debian 12's hiredis (0.14) has no TLS. Throws ConfigError(flag, problem).
RedisUrl parse_redis_url(std::string_view url, std::string_view flag = "--redis");

// Reads the password (first line, without its newline) from `path`; throws
// ConfigError(flag, ...) when the file cannot be read or is empty.
std::string read_auth_file(const std::string& path, std::string_view flag = "--auth-file");

// The server went away or could not be reached (I/O error, EOF, timeout): reconnect and retry.
class RedisDown : public Error {
 public:
  using Error::Error;
};

// One reply, copied out of hiredis's.
struct Reply {
  enum class Type { kString, kArray, kInteger, kNil, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // string, status, error
  long long integer = 0;
  std::vector<Reply> elements;

  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
  bool is_array() const { return type == Type::kArray; }
  // Throws Error("CONTEXT: <the server's error>") when this is an error reply.
  const Reply& check(std::string_view context) const;
};

using Command = std::vector<std::string>;

class RedisClient {
 public:
  // Connects (and AUTHs, SELECTs) or throws RedisDown naming the server.
  // io_timeout: a command (other than a blocking read's own BLOCK time) that takes longer is a
  // lost server.
  explicit RedisClient(RedisUrl url,
                       std::chrono::milliseconds io_timeout = std::chrono::milliseconds(10000));
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // One command. Error replies are returned (check()), a lost connection throws RedisDown and
  // leaves the client disconnected (connected() false) until reconnect().
  Reply command(const Command& argv);
  // Several commands in one round trip; their replies in order.
  std::vector<Reply> pipeline(const std::vector<Command>& commands);

  bool connected() const { return ctx_ != nullptr; }
  // Connects again (throws RedisDown on failure).
  void reconnect();
  // Reconnects with exponential backoff (100 ms doubling to 5 s, with jitter) until it works or
  // `give_up()` says so (then false). `on_failure` is told each failed attempt's reason.
  bool reconnect_with_backoff(const std::function<bool()>& give_up,
                              const std::function<void(const std::string&)>& on_failure);

  const RedisUrl& url() const { return url_; }

 private:
  void connect();
  void drop();
  [[noreturn]] void lost(std::string_view what);

  RedisUrl url_;
  std::chrono::milliseconds io_timeout_;
  redisContext* ctx_ = nullptr;
};

// XGROUP CREATE STREAM GROUP 0 MKSTREAM, unless the group exists. From id 0: entries added
// before the first worker started are delivered too.
void ensure_group(RedisClient& redis, const std::string& stream, const std::string& group);

// A stream entry: its id and its field/value pairs.
struct StreamEntry {
  std::string id;
  std::vector<std::pair<std::string, std::string>> fields;
  const std::string* field(std::string_view name) const;
};
// The entries of an XRANGE/XCLAIM reply ([id, [k, v, ...]] each), or of one stream of an
// XREAD/XREADGROUP reply. Entries whose fields are nil (deleted, in a pending list) are skipped.
std::vector<StreamEntry> parse_entries(const Reply& list);

}  // namespace jailpool::worker
