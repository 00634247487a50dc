// Identifiers minted by ml-connector. FreshBooks deliveries carry no id of their
// own, so the writer gives each accepted delivery one: "d_" + 12 hex digits of
// milliseconds since the epoch + 16 hex random digits. Ids sort by creation time,
// are unique without coordination, and are safe in URLs, logs and SQL.
#pragma once

#include <string>

#include "absl/time/time.h"

namespace mlc {

std::string NewDeliveryId(absl::Time now);

}  // namespace mlc
