// CliEnv: the outside world of one `mlc` invocation — its output streams, its
// environment variables and its clock — passed in by main() so the command code
// never reaches for std::cout, getenv or absl::Now directly. A CliEnv is owned by
// the caller and must outlive the call it is passed to; it is not shared between
// threads.
#pragma once

#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mlc::cli {

struct CliEnv {
  std::ostream* out = &std::cout;
  std::ostream* err = &std::cerr;
  // Returns the variable's value, or nullopt when it is unset.
  std::function<std::optional<std::string>(const std::string&)> getenv =
      [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe)
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

}  // namespace mlc::cli
