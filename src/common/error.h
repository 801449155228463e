// Errors: jailpool reports every failure as an exception carrying a one-line message.
// Functions of the library throw; the front ends catch at the boundary and print the message.
// Code that runs in a cloned child (spawn.cc) never throws: it reports (stage, errno) instead.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <string_view>

namespace jailpool {

// Any failure that ends an operation. what() is one line and names what failed.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A failed system call: the context says what was attempted, errno says why.
class SysError : public Error {
 public:
  SysError(int err, std::string_view context);
  int err() const { return err_; }

 private:
  int err_;
};

// Bad input (profile, job spec, command line): names the field and the problem.
class ConfigError : public Error {
 public:
  ConfigError(std::string_view field, std::string_view problem);
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

// Throws SysError(errno, context). Use as `if (rc < 0) throw_errno("mkdir " + path);`.
[[noreturn]] void throw_errno(std::string_view context);
[[noreturn]] void throw_errno(int err, std::string_view context);

// Returns rc, or throws SysError(errno, context) when rc < 0.
template <typename T>
T check_sys(T rc, std::string_view context) {
  if (rc < 0) throw_errno(context);
  return rc;
}

}  // namespace jailpool
