#include "common/error.h"

#include <fmt/core.h>

#include <cstring>

namespace jailpool {

SysError::SysError(int err, std::string_view context)
    : Error(fmt::format("{}: {}", context, std::strerror(err))), err_(err) {}

ConfigError::ConfigError(std::string_view field, std::string_view problem)
    : Error(fmt::format("{}: {}", field, problem)), field_(field) {}

void throw_errno(std::string_view context) {
  throw SysError(errno, context);
}
void throw_errno(int err, std::string_view context) {
  throw SysError(err, context);
}

}  // namespace jailpool
