// `jailpool serve`: jailpool as a long-running gRPC service (proto/service.proto) over one
// executor and its warm pool. The CLI calls cmd_serve; nothing of gRPC shows here.
#pragma once

#include <cstdint>
#include <string>

namespace jailpool::serve {

struct ServeOptions {
  // unix:PATH (default: unix:/run/jailpool/serve.sock) or HOST:PORT (needs token_file; port 0:
  // the kernel picks one, printed on stdout as "listening on HOST:PORT").
  std::string listen;
  unsigned jobs = 2;              // jobs at once (the executor's parallelism)
  unsigned queue = 256;           // requests waiting beyond those: more are RESOURCE_EXHAUSTED
  std::string profile_dir;        // NAME.textproto: the profiles a JobSpec.profile may name
  std::string token_file;         // bearer token ("authorization: Bearer TOKEN")
  std::string tls_cert, tls_key;  // PEM files: TLS on TCP
  std::string metrics;            // HOST:PORT of the Prometheus endpoint ("": none)
  std::string state_dir;          // the server's own directory ("": derived from listen)
  uint64_t cache_bytes = 1ull << 30;
  std::string socket_owner, socket_group;  // of the unix socket (default: root's)
  uint32_t socket_mode = 0660;
  bool allow_host_paths = false;  // jobs may name host paths (binds, src, path, dst)
  bool use_slots = true;
  unsigned drain_timeout_s = 300;  // then SIGTERM kills the running jobs
  std::string cgroup_parent = "jailpool";
};

int cmd_serve(const ServeOptions& options);

}  // namespace jailpool::serve
