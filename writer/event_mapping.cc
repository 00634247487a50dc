#include "writer/event_mapping.h"

namespace mlc::writer {

Row FreshBooksEventRow(const Delivery& d, const std::optional<std::string>& data,
                       absl::Time processed_at) {
  // Order must match FreshBooksEventsTable().columns.
  return Row{d.delivery_id,
             d.connection_id,
             d.event_type,
             d.object_type,
             d.object_id,
             d.account_id,
             d.business_id,
             d.identity_id,
             d.user_id,
             FormatTimestamp(d.received_at),
             FormatTimestamp(processed_at),
             data};
}

}  // namespace mlc::writer
