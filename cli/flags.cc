#include "cli/flags.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace mlc::cli {

std::optional<std::string> ParsedFlags::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> ParsedFlags::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return {};
  return it->second;
}

absl::StatusOr<ParsedFlags> ParseFlags(const std::vector<std::string>& args,
                                       const std::vector<FlagSpec>& specs, bool stop_at_positional,
                                       size_t* consumed) {
  ParsedFlags parsed;
  size_t i = 0;
  bool flags_ended = false;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_ended || arg == "-" || !absl::StartsWith(arg, "-")) {
      if (stop_at_positional) break;
      parsed.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_ended = true;
      continue;
    }
    std::string name = arg == "-h" ? "help" : arg.substr(absl::StartsWith(arg, "--") ? 2 : 1);
    std::optional<std::string> inline_value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name.resize(eq);
    }
    const auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    if (spec == specs.end() || (!absl::StartsWith(arg, "--") && arg != "-h")) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    }
    std::vector<std::string>& values = parsed.values_[name];
    if (spec->value_name.empty()) {
      if (inline_value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      values.emplace_back();
      continue;
    }
    if (!values.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " is given more than once"));
    }
    if (inline_value.has_value()) {
      values.push_back(*inline_value);
    } else if (i + 1 < args.size()) {
      values.push_back(args[++i]);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " needs a value (--", name, " ", spec->value_name, ")"));
    }
  }
  if (consumed != nullptr) *consumed = i;
  return parsed;
}

std::string DescribeFlags(const std::vector<FlagSpec>& specs, int indent) {
  std::vector<std::string> lefts;
  size_t width = 0;
  for (const FlagSpec& s : specs) {
    std::string left = s.name == "help" ? "-h, --help" : absl::StrCat("--", s.name);
    if (!s.value_name.empty()) absl::StrAppend(&left, " ", s.value_name);
    if (s.repeated) absl::StrAppend(&left, " ...");
    width = std::max(width, left.size());
    lefts.push_back(std::move(left));
  }
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppend(&out, std::string(static_cast<size_t>(indent), ' '), lefts[i],
                    std::string(width - lefts[i].size() + 2, ' '), specs[i].help, "\n");
  }
  return out;
}

}  // namespace mlc::cli
