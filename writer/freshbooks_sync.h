// Reconcile and backfill (FRESHBOOKS.md §4-§5, DESIGN.md §4 "missed webhook"):
// webhooks can be lost (FreshBooks gives up, a callback gets disabled) and some
// entities have none at all (bill payments, journal entry details, chart of
// accounts, other income). A sync run pages through each entity's list endpoint
// and upserts what it finds, with `_source` "sync", into the same entity tables
// the webhooks feed; last-write-wins by updated_at makes both paths converge.
//
// Per (connection, entity) a watermark is persisted in the credential store's
// state table ("sync/<connection>/<entity>/watermark", the run's start date,
// YYYY-MM-DD in UTC). The next run asks for `search[updated_min]` one day before
// it (the filter has day granularity, so windows overlap; upserts make the overlap
// harmless). No watermark, or `full`, reads the whole history: the first run is
// the backfill. Deleted objects are hidden from lists by default, so entities
// that support it are listed a second time with `search[vis_state]=1`. Entities
// whose lists take no filter (chart of accounts, journal entry details) are read
// in full every run. A watermark only advances after every page of that entity
// was written, so a failed run is repeated, never skipped.
//
// Progress goes to logs (one line per 10 pages and per entity) and metrics:
// mlc_sync_objects_total{connection,entity}, mlc_sync_runs_total{connection,outcome},
// mlc_sync_last_success_timestamp_seconds{connection}, mlc_sync_running{connection}.
//
// Syncer::Run is thread-safe; runs of one connection are serialised (a second
// caller waits). SyncScheduler owns one thread that runs every connection every
// sync_interval_minutes: a connection is due `interval` after its last fully
// successful run (persisted, so a restart does not resync early) or after its
// last attempt, and `first_delay` after Start when it never synced. A connection
// whose target is not available yet (not authorized) is looked at again every
// 30 s or on Nudge(). Time comes from the Syncer's clock; with a fake clock,
// Nudge() after advancing it. Stop() cancels a run in progress between pages.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "writer/credential_store.h"
#include "writer/freshbooks_client.h"
#include "writer/freshbooks_connections.h"
#include "writer/sink.h"

namespace mlc::writer {

struct EntitySpec;

struct SyncOptions {
  std::vector<std::string> entities;  // entity names; empty: all
  bool full = false;                  // ignore watermarks (backfill)
  int per_page = 100;                 // clamped to [1, 100] (FreshBooks' cap)
  // Polled between pages; once it returns true the run stops, and the entities
  // not finished report Cancelled (their watermarks stay). Unset: never.
  std::function<bool()> cancelled;
};

struct EntitySyncResult {
  std::string entity;
  int64_t objects = 0;  // rows upserted for top-level objects (incl. deleted)
  int64_t deleted = 0;  // of which vis_state 1
  int64_t pages = 0;
  // Objects that could not be mapped (logged with entity, id and error, never the
  // object) and were left out; they do not fail the entity.
  int64_t skipped = 0;
  std::string updated_min;  // filter used; "" for a full read
  absl::Status status;
};

struct SyncReport {
  std::vector<EntitySyncResult> entities;
  absl::Duration took;
};

// What a run needs for one connection.
struct SyncTarget {
  FreshBooksClient* client = nullptr;
  FreshBooksIdentity identity;
  Sink* sink = nullptr;
};

class Syncer {
 public:
  Syncer(CredentialStore* store, Clock* clock, Registry* registry);

  // Runs every requested entity (an entity's failure is reported in its result
  // and does not stop the others). Errors: InvalidArgument for an unknown entity
  // name. Unauthenticated (connection needs authorization) is reported per entity.
  absl::StatusOr<SyncReport> Run(const std::string& connection_id, const SyncTarget& target,
                                 const SyncOptions& options);

  // Unix seconds of the connection's last fully successful run (every entity
  // requested and synced; state "sync/<connection>/last_success"), 0 if none.
  int64_t LastSuccess(const std::string& connection_id);

  Clock* clock() const { return clock_; }

 private:
  EntitySyncResult SyncEntity(const std::string& connection_id, const SyncTarget& target,
                              const EntitySpec& entity, const SyncOptions& options,
                              absl::Time run_start);
  absl::Mutex* ConnectionMutex(const std::string& connection_id);

  CredentialStore* store_;
  Clock* clock_;
  Family<Counter>* objects_ = nullptr;
  Family<Counter>* runs_ = nullptr;
  Family<Gauge>* last_success_ = nullptr;
  Family<Gauge>* running_ = nullptr;
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<absl::Mutex>> conn_mu_ ABSL_GUARDED_BY(mu_);
};

class SyncScheduler {
 public:
  // `target_for` returns nullopt while a connection cannot sync (not authorized).
  using TargetFor = std::function<std::optional<SyncTarget>(const std::string& connection_id)>;
  struct Entry {
    std::string connection_id;
    absl::Duration interval;
  };
  SyncScheduler(Syncer* syncer, std::vector<Entry> entries, TargetFor target_for,
                absl::Duration first_delay = absl::Seconds(5));
  ~SyncScheduler();  // Stop()
  void Start();
  // Wakes the thread so that a connection that just became ready syncs now (a
  // connection that is not due yet still waits for its interval).
  void Nudge();
  // Cancels a run in progress (between pages) and joins the thread. Idempotent.
  void Stop();

 private:
  void Loop();
  Syncer* syncer_;
  std::vector<Entry> entries_;
  TargetFor target_for_;
  absl::Duration first_delay_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool nudged_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<bool> cancel_{false};  // read by a run in progress, between pages
  std::thread thread_;
};

}  // namespace mlc::writer
