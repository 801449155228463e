// Parsing of the human units used on the command line and in job specs.
#pragma once

#include <cstdint>
#include <string_view>

namespace jailpool {

// "250ms", "1.5s", "2m", "100us", "3" (seconds). Returns microseconds.
// Throws ConfigError(field, ...) on anything else, on negative values and on overflow.
uint64_t parse_duration_us(std::string_view text, std::string_view field);

// "64M", "64MiB", "64MB", "1G", "4096", "512k". K/M/G/T are binary (1024) unless written
// "kB"/"MB"/"GB"/"TB" (decimal). Returns bytes. Throws ConfigError(field, ...).
uint64_t parse_size_bytes(std::string_view text, std::string_view field);

}  // namespace jailpool
