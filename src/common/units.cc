#include "common/units.h"

#include <fmt/core.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "common/error.h"

namespace jailpool {
namespace {

// A non-negative decimal number split at its suffix: "1.5GiB" -> whole 1, fraction "5",
// suffix "GiB". Only digits and one '.'; no sign, exponent, whitespace, "inf" or "nan".
struct Decimal {
  uint64_t whole = 0;
  std::string_view fraction;  // digits after the '.', possibly empty
  std::string_view suffix;
};

enum class ParseResult { kOk, kBad, kNegative, kOverflow };

ParseResult split_decimal(std::string_view text, Decimal& out) {
  if (text.empty()) return ParseResult::kBad;
  if (text.front() == '-') return ParseResult::kNegative;
  size_t i = 0;
  size_t digits = 0;
  bool overflow = false;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    const uint64_t d = static_cast<uint64_t>(text[i] - '0');
    if (out.whole > (std::numeric_limits<uint64_t>::max() - d) / 10) overflow = true;
    if (!overflow) out.whole = out.whole * 10 + d;
    ++i;
    ++digits;
  }
  if (i < text.size() && text[i] == '.') {
    ++i;
    const size_t start = i;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
    out.fraction = text.substr(start, i - start);
    digits += out.fraction.size();
  }
  if (digits == 0) return ParseResult::kBad;
  out.suffix = text.substr(i);
  return overflow ? ParseResult::kOverflow : ParseResult::kOk;
}

// whole * unit + fraction * unit, truncated. Returns false on overflow.
bool scale(const Decimal& d, uint64_t unit, uint64_t& result) {
  if (d.whole != 0 && unit > std::numeric_limits<uint64_t>::max() / d.whole) return false;
  const uint64_t base = d.whole * unit;
  // 18 fraction digits are plenty (the units are at most 3.6e9 or 2^40) and keep
  // fraction * unit within 128 bits.
  const std::string_view frac = d.fraction.substr(0, 18);
  unsigned __int128 num = 0;
  unsigned __int128 den = 1;
  for (char c : frac) {
    num = num * 10 + static_cast<unsigned>(c - '0');
    den *= 10;
  }
  const unsigned __int128 part = num * unit / den;  // < unit
  if (part > std::numeric_limits<uint64_t>::max() - base) return false;
  result = base + static_cast<uint64_t>(part);
  return true;
}

// split_decimal, with its failures turned into the ConfigError of a `kind` ("duration", "size").
template <typename Bad>
Decimal split_or_throw(std::string_view text, std::string_view field, const char* kind,
                       const Bad& bad) {
  Decimal d;
  switch (split_decimal(text, d)) {
    case ParseResult::kOk:
      break;
    case ParseResult::kBad:
      throw bad();
    case ParseResult::kNegative:
      throw ConfigError(field, fmt::format("negative {} \"{}\"", kind, text));
    case ParseResult::kOverflow:
      throw ConfigError(field, fmt::format("{} \"{}\" is too large", kind, text));
  }
  return d;
}

}  // namespace

uint64_t parse_duration_us(std::string_view text, std::string_view field) {
  const auto bad = [&] {
    return ConfigError(field, fmt::format("bad duration \"{}\" (expected e.g. 250ms, 1.5s)", text));
  };
  Decimal d = split_or_throw(text, field, "duration", bad);
  uint64_t unit = 0;
  if (d.suffix.empty() || d.suffix == "s") {
    unit = 1'000'000;
  } else if (d.suffix == "ms") {
    unit = 1'000;
  } else if (d.suffix == "us") {
    unit = 1;
  } else if (d.suffix == "m") {
    unit = 60'000'000;
  } else if (d.suffix == "h") {
    unit = 3'600'000'000;
  } else {
    throw bad();
  }
  uint64_t us = 0;
  if (!scale(d, unit, us)) {
    throw ConfigError(field, fmt::format("duration \"{}\" is too large", text));
  }
  return us;
}

uint64_t parse_size_bytes(std::string_view text, std::string_view field) {
  const auto bad = [&] {
    return ConfigError(
        field, fmt::format("bad size \"{}\" (expected e.g. 4096, 512K, 64MiB, 1.5G)", text));
  };
  Decimal d = split_or_throw(text, field, "size", bad);
  // "", "B": bytes. K/M/G/T (either case) alone or with "iB": binary; with "B": decimal.
  uint64_t unit = 1;
  std::string_view suffix = d.suffix;
  if (!suffix.empty() && suffix != "B") {
    int power = 0;
    switch (suffix.front()) {
      case 'k':
      case 'K':
        power = 1;
        break;
      case 'm':
      case 'M':
        power = 2;
        break;
      case 'g':
      case 'G':
        power = 3;
        break;
      case 't':
      case 'T':
        power = 4;
        break;
      default:
        throw bad();
    }
    suffix.remove_prefix(1);
    uint64_t base = 0;
    if (suffix.empty() || suffix == "iB") {
      base = 1024;
    } else if (suffix == "B") {
      base = 1000;
    } else {
      throw bad();
    }
    for (int i = 0; i < power; ++i) unit *= base;
  } else if (!d.fraction.empty()) {
    throw ConfigError(field, fmt::format("bad size \"{}\" (a byte count is a whole number)", text));
  }
  uint64_t bytes = 0;
  if (!scale(d, unit, bytes)) {
    throw ConfigError(field, fmt::format("size \"{}\" is too large", text));
  }
  return bytes;
}

}  // namespace jailpool
