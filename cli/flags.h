// A small declarative flag parser for `mlc`: each command lists its flags as
// FlagSpecs, and the same list drives parsing and the usage text, so a flag cannot
// be accepted without being documented. Forms: `--name VALUE`, `--name=VALUE`,
// `--switch`, `-h`/`--help`; `--` ends the flags. Pure functions on values; safe
// to use from any thread.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace mlc::cli {

struct FlagSpec {
  std::string name;        // without the leading "--"
  std::string value_name;  // "ID", "SECONDS"; empty for a switch
  std::string help;        // one line
  bool repeated = false;   // may be given more than once (values accumulate)
};

class ParsedFlags {
 public:
  bool Has(const std::string& name) const { return values_.contains(name); }
  // The flag's value, or nullopt when it was not given.
  std::optional<std::string> Get(const std::string& name) const;
  // Every value of a repeated flag, in order (empty when not given).
  std::vector<std::string> GetAll(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                                const std::vector<FlagSpec>& specs,
                                                bool stop_at_positional, size_t* consumed);
  absl::flat_hash_map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Parses `args` against `specs`. Unknown flags, a missing value, a value given to a
// switch and a non-repeated valued flag given twice are InvalidArgument errors whose
// message names the flag. With `stop_at_positional`, parsing stops at the first
// positional argument and `*consumed` (if not null) says how many args were read.
absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::vector<FlagSpec>& specs,
                                       bool stop_at_positional = false, size_t* consumed = nullptr);

// "--name VALUE  help" lines, aligned and indented by `indent` spaces, for usage texts.
std::string DescribeFlags(const std::vector<FlagSpec>& specs, int indent = 2);

}  // namespace mlc::cli
