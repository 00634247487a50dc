// Hydration: turning a thin webhook event into the full FreshBooks object. The
// pipeline calls a Hydrator for each batch before mapping rows; the FreshBooks API
// client plugs in here. Until a connection has FreshBooks API credentials, the
// NullHydrator is used and events are written with `data` NULL ("not fetched",
// DESIGN.md §2) - that is a real state of the product, not a placeholder result.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "writer/freshbooks_entities.h"
#include "writer/journal.h"

namespace mlc::writer {

struct Hydrated {
  // OK: `data` is the object (JSON) or nullopt when this hydrator does not fetch.
  // Transient errors retry the delivery; Unauthenticated means "the connection
  // waits for (re-)authorization" (retried, never dead); others make it dead
  // with this message.
  absl::Status status;
  std::optional<std::string> data;
  // Typed entity rows to upsert with this delivery. When several deliveries of a
  // batch are about the same object the rows go with one of them only.
  std::vector<MappedRow> rows;
  Attempt attempt;  // recorded in the audit trail when stage is non-empty
};

class Hydrator {
 public:
  virtual ~Hydrator() = default;
  // One result per delivery, same order. Thread-compatible: called from the
  // pipeline thread only.
  virtual std::vector<Hydrated> Hydrate(const std::vector<Delivery>& batch) = 0;
};

// Fetches nothing: every event is written with data NULL and no hydrate attempt.
class NullHydrator final : public Hydrator {
 public:
  std::vector<Hydrated> Hydrate(const std::vector<Delivery>& batch) override {
    return std::vector<Hydrated>(batch.size());
  }
};

}  // namespace mlc::writer
