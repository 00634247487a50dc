#include "writer/table_spec.h"

namespace mlc::writer {

int TableSpec::ColumnIndex(const std::string& column) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == column) return static_cast<int>(i);
  }
  return -1;
}

std::string FormatTimestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

const TableSpec& FreshBooksEventsTable() {
  static const TableSpec* const kSpec = new TableSpec{
      "freshbooks_events",
      {
          {"delivery_id", SqlType::kString, 0, 0, "ml-connector delivery id (key)"},
          {"connection_id", SqlType::kString, 0, 0, "ml-connector connection"},
          {"event_type", SqlType::kString, 0, 0, "FreshBooks event name, e.g. invoice.create"},
          {"object_type", SqlType::kString, 0, 0, "e.g. invoice"},
          {"object_id", SqlType::kString, 0, 0, "FreshBooks id of the object"},
          {"account_id", SqlType::kString, 0, 0, "FreshBooks account id"},
          {"business_id", SqlType::kString, 0, 0, "FreshBooks business id"},
          {"identity_id", SqlType::kString, 0, 0, "FreshBooks identity that acted"},
          {"user_id", SqlType::kString, 0, 0, "FreshBooks user id"},
          {"received_at", SqlType::kTimestamp, 0, 0, "when the webhook arrived (UTC)"},
          {"processed_at", SqlType::kTimestamp, 0, 0, "when the row was written (UTC)"},
          {"data", SqlType::kString, 0, 0,
           "object as fetched for this event (JSON), NULL if not fetched"},
      },
      {"delivery_id"},
      "",
      true,
      "FreshBooks webhook deliveries, one row per accepted delivery (source: ml-connector)",
  };
  return *kSpec;
}

}  // namespace mlc::writer
