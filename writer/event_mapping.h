// Maps a journaled delivery to its freshbooks_events row (DESIGN.md §2).
#pragma once

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "writer/journal.h"
#include "writer/table_spec.h"

namespace mlc::writer {

// `data` is the object as fetched for this event (JSON) or nullopt if not fetched.
Row FreshBooksEventRow(const Delivery& d, const std::optional<std::string>& data,
                       absl::Time processed_at);

}  // namespace mlc::writer
