#include "worker/redis_client.h"

#include <fmt/core.h>
#include <hiredis/hiredis.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <random>
#include <thread>

namespace jailpool::worker {
namespace {

int parse_int(std::string_view s, std::string_view flag, std::string_view what, int lo, int hi) {
  int v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) {
    throw ConfigError(flag, fmt::format("\"{}\" is not a valid {} ({}..{})", s, what, lo, hi));
  }
  return v;
}

Reply copy_reply(const redisReply* r) {
  Reply out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
      break;
    default:
      out.type = Reply::Type::kNil;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(void* r) const { freeReplyObject(r); }
};

}  // namespace

std::string RedisUrl::describe() const {
  std::string where = unix_path.empty() ? fmt::format("redis://{}:{}", host, port)
                                        : fmt::format("unix://{}", unix_path);
  return db != 0 ? fmt::format("{} db {}", where, db) : where;
}

RedisUrl parse_redis_url(std::string_view url, std::string_view flag) {
  RedisUrl out;
  auto starts = [&](std::string_view p) { return url.substr(0, p.size()) == p; };
  if (starts("rediss://")) {
    throw ConfigError(flag,
                      "rediss:// (TLS) is not supported: Debian 12's hiredis (0.14) has no TLS; "
                      "reach Redis over a unix socket, a loopback port or a tunnel (stunnel, ssh)");
  }
  if (starts("unix://")) {
    std::string_view rest = url.substr(7);
    auto q = rest.find('?');
    std::string_view path = rest.substr(0, q);
    if (path.empty() || path.front() != '/') {
      throw ConfigError(flag, fmt::format("\"{}\": unix:// needs an absolute socket path, e.g. "
                                          "unix:///run/redis/redis.sock",
                                          url));
    }
    out.unix_path = std::string(path);
    if (q != std::string_view::npos) {
      std::string_view query = rest.substr(q + 1);
      if (query.substr(0, 3) != "db=") {
        throw ConfigError(flag, fmt::format("\"{}\": the only query is ?db=N", url));
      }
      out.db = parse_int(query.substr(3), flag, "database number", 0, 1 << 20);
    }
    return out;
  }
  if (!starts("redis://")) {
    throw ConfigError(flag, fmt::format("\"{}\" is not a redis://HOST[:PORT][/DB] or "
                                        "unix://PATH URL",
                                        url));
  }
  std::string_view rest = url.substr(8);
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) out.db = parse_int(db, flag, "database number", 0, 1 << 20);
  }
  auto at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    if (userinfo.find(':') != std::string_view::npos) {
      throw ConfigError(flag,
                        "a password in the URL would show in `ps`: put it in a file "
                        "given with --auth-file");
    }
    out.user = std::string(userinfo);
    authority = authority.substr(at + 1);
  }
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      throw ConfigError(flag, fmt::format("\"{}\": unclosed [ in the host", url));
    }
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') throw ConfigError(flag, fmt::format("\"{}\": bad host", url));
      port = after.substr(1);
    }
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) throw ConfigError(flag, fmt::format("\"{}\" names no host", url));
  out.host = std::string(host);
  if (!port.empty()) out.port = parse_int(port, flag, "port", 1, 65535);
  return out;
}

std::string read_auth_file(const std::string& path, std::string_view flag) {
  std::ifstream in(path);
  if (!in) throw ConfigError(flag, fmt::format("{}: {}", path, std::strerror(errno)));
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) throw ConfigError(flag, fmt::format("{}: the first line is empty", path));
  return line;
}

const Reply& Reply::check(std::string_view context) const {
  if (is_error()) throw Error(fmt::format("{}: {}", context, str));
  return *this;
}

const std::string* StreamEntry::field(std::string_view name) const {
  for (const auto& [k, v] : fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::vector<StreamEntry> parse_entries(const Reply& list) {
  std::vector<StreamEntry> out;
  if (!list.is_array()) return out;
  for (const Reply& e : list.elements) {
    if (!e.is_array() || e.elements.size() < 2 || !e.elements[1].is_array()) continue;
    StreamEntry entry;
    entry.id = e.elements[0].str;
    const auto& kv = e.elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2)
      entry.fields.emplace_back(kv[i].str, kv[i + 1].str);
    out.push_back(std::move(entry));
  }
  return out;
}

RedisClient::RedisClient(RedisUrl url, std::chrono::milliseconds io_timeout)
    : url_(std::move(url)), io_timeout_(io_timeout) {
  connect();
}

RedisClient::~RedisClient() {
  drop();
}

void RedisClient::drop() {
  if (ctx_) redisFree(ctx_);
  ctx_ = nullptr;
}

void RedisClient::lost(std::string_view what) {
  std::string reason = ctx_ && ctx_->err ? ctx_->errstr : "connection lost";
  if (ctx_ && ctx_->err == REDIS_ERR_IO && errno == EAGAIN) reason = "timed out";
  drop();
  throw RedisDown(fmt::format("{} {}: {}", what, url_.describe(), reason));
}

void RedisClient::connect() {
  drop();
  timeval tv{};
  tv.tv_sec = 2;
  ctx_ = url_.unix_path.empty() ? redisConnectWithTimeout(url_.host.c_str(), url_.port, tv)
                                : redisConnectUnixWithTimeout(url_.unix_path.c_str(), tv);
  if (ctx_ == nullptr) throw RedisDown(fmt::format("connect {}: out of memory", url_.describe()));
  if (ctx_->err) lost("connect");
  timeval io{};
  io.tv_sec = io_timeout_.count() / 1000;
  io.tv_usec = (io_timeout_.count() % 1000) * 1000;
  redisSetTimeout(ctx_, io);
  if (url_.unix_path.empty()) redisEnableKeepAlive(ctx_);
  if (!url_.password.empty()) {
    Command auth = url_.user.empty() ? Command{"AUTH", url_.password}
                                     : Command{"AUTH", url_.user, url_.password};
    Reply r = command(auth);
    if (r.is_error()) {
      drop();
      // A wrong password is not a lost server: no retry helps.
      throw ConfigError("--auth-file",
                        fmt::format("{} refused the password: {}", url_.describe(), r.str));
    }
  }
  if (url_.db != 0) {
    Reply r = command({"SELECT", std::to_string(url_.db)});
    if (r.is_error()) {
      drop();
      throw ConfigError("--redis", fmt::format("SELECT {}: {}", url_.db, r.str));
    }
  }
}

void RedisClient::reconnect() {
  connect();
}

bool RedisClient::reconnect_with_backoff(
    const std::function<bool()>& give_up,
    const std::function<void(const std::string&)>& on_failure) {
  std::mt19937 rng(std::random_device{}());
  std::chrono::milliseconds delay(100);
  for (;;) {
    if (give_up && give_up()) return false;
    try {
      connect();
      return true;
    } catch (const Error& e) {
      // Also a refused password (the server came back with another one): keep trying, the
      // operator sees why.
      if (on_failure) on_failure(e.what());
    }
    // Sleep in small steps so that give_up() is heard; jitter spreads a fleet's reconnects.
    auto wait = delay + std::chrono::milliseconds(rng() % (delay.count() / 2 + 1));
    auto until = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < until) {
      if (give_up && give_up()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
  }
}

Reply RedisClient::command(const Command& argv) {
  auto replies = pipeline({argv});
  return std::move(replies.front());
}

std::vector<Reply> RedisClient::pipeline(const std::vector<Command>& commands) {
  if (!ctx_) throw RedisDown(fmt::format("{}: not connected", url_.describe()));
  std::vector<const char*> args;
  std::vector<size_t> lens;
  for (const Command& c : commands) {
    args.clear();
    lens.clear();
    for (const auto& a : c) {
      args.push_back(a.data());
      lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(ctx_, static_cast<int>(args.size()), args.data(), lens.data()) !=
        REDIS_OK) {
      lost("send to");
    }
  }
  std::vector<Reply> out;
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_, &raw) != REDIS_OK || raw == nullptr) lost("read from");
    std::unique_ptr<void, ReplyDeleter> owned(raw);
    out.push_back(copy_reply(static_cast<redisReply*>(raw)));
  }
  for (const Reply& r : out) {
    // A restarted server answers LOADING until its append-only file is read: not there yet.
    if (r.is_error() && r.str.rfind("LOADING", 0) == 0) {
      drop();
      throw RedisDown(fmt::format("{}: {}", url_.describe(), r.str));
    }
    if (r.is_error() && r.str.rfind("NOAUTH", 0) == 0) {
      drop();
      throw ConfigError("--auth-file",
                        fmt::format("{} requires a password: {}", url_.describe(), r.str));
    }
  }
  return out;
}

void ensure_group(RedisClient& redis, const std::string& stream, const std::string& group) {
  Reply r = redis.command({"XGROUP", "CREATE", stream, group, "0", "MKSTREAM"});
  if (r.is_error() && r.str.rfind("BUSYGROUP", 0) != 0) {
    throw Error(fmt::format("XGROUP CREATE {} {}: {}", stream, group, r.str));
  }
}

}  // namespace jailpool::worker
