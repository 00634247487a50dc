#include "cli/delivery_filter.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mlc::cli {
namespace {

constexpr char kTimeForms[] =
    "an age back from now (30m, 2h, 7d, 1h30m) or an RFC 3339 time (2026-11-26T09:00:00Z)";

bool IsStatus(const std::string& s) {
  return std::any_of(std::begin(kDeliveryStatuses), std::end(kDeliveryStatuses),
                     [&](const char* known) { return s == known; });
}

// "invoice" or "invoice.create": lowercase words of letters, digits and '_'.
bool IsEventName(const std::string& s) {
  const std::vector<std::string> parts = absl::StrSplit(s, '.');
  if (parts.size() > 2) return false;
  return std::all_of(parts.begin(), parts.end(), [](const std::string& p) {
    return !p.empty() && std::all_of(p.begin(), p.end(), [](char c) {
      return absl::ascii_islower(static_cast<unsigned char>(c)) ||
             absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '_';
    });
  });
}

// The flag's value, or InvalidArgument when it was given empty.
absl::Status NonEmpty(const ParsedFlags& flags, const std::string& name, std::string* out) {
  std::optional<std::string> v = flags.Get(name);
  if (!v.has_value()) return absl::OkStatus();
  if (v->empty()) {
    const auto& specs = DeliveryFilterFlags();
    const auto spec =
        std::find_if(specs.begin(), specs.end(), [&](const FlagSpec& s) { return s.name == name; });
    return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value (--", name, " ",
                                                   spec == specs.end() ? "" : spec->value_name,
                                                   ")"));
  }
  *out = *std::move(v);
  return absl::OkStatus();
}

std::string FormatRfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
}

}  // namespace

const std::vector<FlagSpec>& DeliveryFilterFlags() {
  static const std::vector<FlagSpec> flags = {
      {"connection", "ID", "only this connection's deliveries"},
      {"event", "EVENT", "an object's events (invoice) or one event (invoice.create)"},
      {"object", "ID", "only this FreshBooks object (its object_id)"},
      {"status", "STATUS", "pending, written, dead or handshake; repeatable, or a comma list",
       true},
      {"since", "AGE|TIME", "received at or after: an age (30m, 2h, 7d) or an RFC 3339 time"},
      {"until", "AGE|TIME", "received before: an age or an RFC 3339 time"},
      {"error", "TEXT", "the last error contains TEXT (dead letters by reason)"},
  };
  return flags;
}

bool HasDeliveryFilterFlags(const ParsedFlags& flags) {
  const auto& specs = DeliveryFilterFlags();
  return std::any_of(specs.begin(), specs.end(),
                     [&](const FlagSpec& s) { return flags.Has(s.name); });
}

absl::StatusOr<absl::Duration> ParseAge(const std::string& text) {
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", text, "\" is not an age: use a number and a unit s, m, h, d or w (30m, 2h, 7d)"));
  };
  absl::Duration total = absl::ZeroDuration();
  size_t i = 0;
  if (text.empty()) return bad();
  while (i < text.size()) {
    const size_t start = i;
    while (i < text.size() && absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) ++i;
    // Nine digits are more than any sensible age and keep the arithmetic exact.
    if (i == start || i - start > 9 || i == text.size()) return bad();
    int64_t n = 0;
    if (!absl::SimpleAtoi(text.substr(start, i - start), &n)) return bad();
    switch (text[i]) {
      case 's':
        total += absl::Seconds(n);
        break;
      case 'm':
        total += absl::Minutes(n);
        break;
      case 'h':
        total += absl::Hours(n);
        break;
      case 'd':
        total += absl::Hours(24 * n);
        break;
      case 'w':
        total += absl::Hours(24 * 7 * n);
        break;
      default:
        return bad();
    }
    ++i;
  }
  if (total <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", text, "\" is not a positive age"));
  }
  return total;
}

absl::StatusOr<absl::Time> ParseTimeBound(const std::string& flag, const std::string& text,
                                          absl::Time now) {
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
      absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    return t;
  }
  if (absl::StatusOr<absl::Duration> age = ParseAge(text); age.ok()) {
    return absl::FromUnixSeconds(absl::ToUnixSeconds(now)) - *age;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, " wants ", kTimeForms, ", not \"", text, "\""));
}

absl::StatusOr<mlconnector::v1::DeliveryFilter> DeliveryFilterFromFlags(const ParsedFlags& flags,
                                                                        absl::Time now) {
  mlconnector::v1::DeliveryFilter filter;
  if (absl::Status s = NonEmpty(flags, "connection", filter.mutable_connection_id()); !s.ok()) {
    return s;
  }
  if (absl::Status s = NonEmpty(flags, "event", filter.mutable_event_type()); !s.ok()) return s;
  if (!filter.event_type().empty() && !IsEventName(filter.event_type())) {
    return absl::InvalidArgumentError(
        absl::StrCat("--event wants an object (invoice) or an event (invoice.create), not \"",
                     filter.event_type(), "\""));
  }
  if (absl::Status s = NonEmpty(flags, "object", filter.mutable_object_id()); !s.ok()) return s;
  if (absl::Status s = NonEmpty(flags, "error", filter.mutable_error_contains()); !s.ok()) {
    return s;
  }
  for (const std::string& value : flags.GetAll("status")) {
    const std::vector<std::string> statuses = absl::StrSplit(value, ',', absl::SkipWhitespace());
    if (statuses.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--status needs a value (", absl::StrJoin(kDeliveryStatuses, ", "), ")"));
    }
    for (const std::string& raw : statuses) {
      const std::string status(absl::StripAsciiWhitespace(raw));
      if (!IsStatus(status)) {
        return absl::InvalidArgumentError(absl::StrCat("--status wants one of ",
                                                       absl::StrJoin(kDeliveryStatuses, ", "),
                                                       ", not \"", status, "\""));
      }
      const auto& have = filter.statuses();
      if (std::find(have.begin(), have.end(), status) == have.end()) filter.add_statuses(status);
    }
  }
  std::optional<absl::Time> since;
  std::optional<absl::Time> until;
  if (std::optional<std::string> v = flags.Get("since"); v.has_value()) {
    absl::StatusOr<absl::Time> t = ParseTimeBound("since", *v, now);
    if (!t.ok()) return t.status();
    since = *t;
    *filter.mutable_received_after() = ToTimestamp(*t);
  }
  if (std::optional<std::string> v = flags.Get("until"); v.has_value()) {
    absl::StatusOr<absl::Time> t = ParseTimeBound("until", *v, now);
    if (!t.ok()) return t.status();
    until = *t;
    *filter.mutable_received_before() = ToTimestamp(*t);
  }
  if (since.has_value() && until.has_value() && *since >= *until) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--since (", FormatRfc3339(*since), ") must be before --until (", FormatRfc3339(*until),
        "); an age counts back from now, so --since 2d --until 1d is the day before yesterday"));
  }
  return filter;
}

std::vector<std::string> DeliveryFilterArgs(const mlconnector::v1::DeliveryFilter& filter) {
  std::vector<std::string> args;
  auto add = [&](const char* flag, const std::string& value) {
    args.emplace_back(flag);
    args.push_back(ShellQuote(value));
  };
  if (!filter.connection_id().empty()) add("--connection", filter.connection_id());
  if (!filter.event_type().empty()) add("--event", filter.event_type());
  if (!filter.object_id().empty()) add("--object", filter.object_id());
  for (const std::string& s : filter.statuses()) add("--status", s);
  if (filter.has_received_after()) {
    add("--since", FormatRfc3339(FromTimestamp(filter.received_after())));
  }
  if (filter.has_received_before()) {
    add("--until", FormatRfc3339(FromTimestamp(filter.received_before())));
  }
  if (!filter.error_contains().empty()) add("--error", filter.error_contains());
  return args;
}

std::string ShellQuote(const std::string& text) {
  const bool plain = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || absl::StrContains("_-.,:/=@%+", c);
  });
  if (plain) return text;
  std::string out = "'";
  for (const char c : text) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  out += "'";
  return out;
}

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  google::protobuf::Timestamp ts;
  const int64_t seconds = absl::ToUnixSeconds(t);
  ts.set_seconds(seconds);
  ts.set_nanos(static_cast<int32_t>((t - absl::FromUnixSeconds(seconds)) / absl::Nanoseconds(1)));
  return ts;
}

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

bool IsSet(const google::protobuf::Timestamp& ts) { return ts.seconds() != 0 || ts.nanos() != 0; }

}  // namespace mlc::cli
