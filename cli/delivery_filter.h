// `mlc`'s delivery filter flags (--connection, --event, --object, --status,
// --since, --until, --error), shared by `mlc deliveries` and `mlc replay`: their
// FlagSpecs, their translation into the Admin API's DeliveryFilter, and the way
// back into flags for the commands `mlc` suggests ("more: mlc deliveries ...
// --page-token X", "mlc replay --status dead --connection acme").
//
// --since/--until take an age back from now ("30m", "2h", "7d", "1h30m") or an
// RFC 3339 time ("2026-11-26T09:00:00Z"; a date alone means its midnight UTC).
// Ages count back from `now` truncated to whole seconds, so the filter printed back
// into a hint is exactly the one that was used, and its next page is the next page.
//
// Pure functions on values; safe to call from any thread.
#pragma once

#include <google/protobuf/timestamp.pb.h>

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cli/flags.h"
#include "mlconnector/v1/admin.pb.h"

namespace mlc::cli {

// The statuses a delivery can have (DeliveryFilter.statuses).
inline constexpr const char* kDeliveryStatuses[] = {"pending", "written", "dead", "handshake"};

// The filter flags, in usage order, with --connection first.
const std::vector<FlagSpec>& DeliveryFilterFlags();

// True when any filter flag was given (even with a value the filter would reject).
bool HasDeliveryFilterFlags(const ParsedFlags& flags);

// "45s", "30m", "2h", "7d", "2w" or a sum of them ("1h30m"): a positive age.
// InvalidArgument otherwise.
absl::StatusOr<absl::Duration> ParseAge(const std::string& text);

// A --since/--until value: `now` (whole seconds) minus an age, or an RFC 3339 time
// or a date. InvalidArgument whose message names `flag` and the accepted forms.
absl::StatusOr<absl::Time> ParseTimeBound(const std::string& flag, const std::string& text,
                                          absl::Time now);

// The filter the flags ask for. --status may repeat and takes comma lists
// ("pending,dead"). InvalidArgument (the message names the flag) for an empty
// value, an unknown status, a malformed --event, an unparsable time, or a --since
// that is not before --until.
absl::StatusOr<mlconnector::v1::DeliveryFilter> DeliveryFilterFromFlags(const ParsedFlags& flags,
                                                                        absl::Time now);

// The flags that select `filter` again, as shell words ("--connection", "acme",
// "--since", "2026-11-26T10:00:00+00:00", "--error", "'HTTP 500'").
std::vector<std::string> DeliveryFilterArgs(const mlconnector::v1::DeliveryFilter& filter);

// `text` as one shell word: unchanged when it holds only characters no shell
// treats specially, else in single quotes.
std::string ShellQuote(const std::string& text);

// Conversions between google.protobuf.Timestamp and absl::Time. An unset (zero)
// Timestamp is the Unix epoch; IsSet tells them apart.
google::protobuf::Timestamp ToTimestamp(absl::Time t);
absl::Time FromTimestamp(const google::protobuf::Timestamp& ts);
bool IsSet(const google::protobuf::Timestamp& ts);

}  // namespace mlc::cli
