// systemd's readiness protocol (Type=notify): a no-op without $NOTIFY_SOCKET.
#pragma once

#include <string>

namespace jailpool::serve {

// "READY=1", "STOPPING=1", "STATUS=...": through libsystemd's sd_notify where jailpool links it
// (a dynamic build), else the protocol itself (one datagram to $NOTIFY_SOCKET, sd_notify(3)):
// Debian's libsystemd has no static archive.
void notify_systemd(const std::string& state);

}  // namespace jailpool::serve
