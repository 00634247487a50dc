// FreshBooksHydrator: turns thin webhook events into full objects and typed rows
// (DESIGN.md §1 step 5, FRESHBOOKS.md §4-§5).
//
// For each batch it groups the events by (connection, entity, object id) and
// fetches each object once - several events about one invoice cost one GET - with
// the includes the entity needs (invoice lines), a few fetches in parallel (the
// client's per-connection budget and 429 handling keep it polite). The object as
// fetched becomes `freshbooks_events.data` of every event in the group and is
// mapped to entity rows (writer/freshbooks_entities.h). A 404, or a classic
// "not found" error, means the object is gone (hard-deleted): a tombstone row
// (`is_deleted`) is written.
//
// Connections without FreshBooks OAuth (only static verifiers) are not fetched:
// their events are written with `data` NULL, as before. A connection that is not
// authorized yet, or needs re-authorization, makes its events wait
// (Unauthenticated; the pipeline retries them, they never become dead). Events
// of objects without a table ("recurring") are written with data NULL.
//
// Hydrate is called from the pipeline thread only.
#pragma once

#include <vector>

#include "common/clock.h"
#include "common/metrics.h"
#include "writer/freshbooks_connections.h"
#include "writer/hydrator.h"

namespace mlc::writer {

struct HydratorMetrics {
  Family<Counter>* fetches = nullptr;  // {connection, outcome}: ok, not_found, error, waiting
  Counter* coalesced = nullptr;        // events served by another event's fetch
};

class FreshBooksHydrator final : public Hydrator {
 public:
  FreshBooksHydrator(FreshBooksConnections* connections, Clock* clock, int parallelism = 8,
                     HydratorMetrics metrics = {});
  std::vector<Hydrated> Hydrate(const std::vector<Delivery>& batch) override;

 private:
  FreshBooksConnections* connections_;
  Clock* clock_;
  int parallelism_;
  HydratorMetrics metrics_;
};

}  // namespace mlc::writer
