// The pipeline moves journaled deliveries into the sink: fetch due deliveries in
// arrival order, batch them (flush at batch.max_rows or when the oldest has waited
// batch.max_delay_ms), hydrate, map to rows, upsert, and mark them written - every
// step recorded as an attempt in the audit trail. Failures retry with exponential
// backoff and full jitter; a permanent failure, or one older than
// retry.max_age_hours, makes the delivery dead (kept and replayable). The age
// counts from the later of received_at and the latest replay, so a replayed old
// delivery gets a fresh retry budget. Whoever replays calls Notify() so the
// replayed deliveries are picked up at once.
//
// Entity rows (from hydration) are written per table before the events rows; a
// table that fails (say, a type conflict) fails only the deliveries that had rows
// for it, the others are written. A delivery whose connection waits for
// authorization (Unauthenticated from the hydrator) is retried every
// kAuthorizationWait and never becomes dead for that.
//
// Because the journal, not memory, is the queue, a restart resumes exactly where
// the last run stopped: rows written but not yet marked are written again, and the
// idempotent upsert makes that a no-op. One pipeline thread; Notify() is
// thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/metrics.h"
#include "writer/hydrator.h"
#include "writer/journal.h"
#include "writer/sink.h"

namespace mlc::writer {

struct PipelineMetrics {
  Family<Counter>* deliveries = nullptr;  // {outcome}: written, retry, dead
  Histogram* batch_rows = nullptr;
  Histogram* sink_seconds = nullptr;
  Histogram* end_to_end_seconds = nullptr;  // received -> in table
  Gauge* sink_up = nullptr;                 // 1 when the last sink write succeeded
};

class Pipeline {
 public:
  // Which sink a connection's rows go to; nullptr: the connection is unknown
  // (its deliveries become dead with that reason).
  using SinkFor = std::function<Sink*(const std::string& connection_id)>;

  // One sink for every connection (the embedded default).
  Pipeline(Journal* journal, Sink* sink, Hydrator* hydrator, Clock* clock, BatchConfig batch,
           RetryConfig retry, PipelineMetrics metrics = {});
  Pipeline(Journal* journal, SinkFor sink_for, Hydrator* hydrator, Clock* clock, BatchConfig batch,
           RetryConfig retry, PipelineMetrics metrics = {});
  ~Pipeline();  // Stop()

  void Start();
  // Finishes the batch in flight (or abandons it safely: it stays pending) and joins.
  void Stop();
  // Tells the pipeline that `n` deliveries were journaled.
  void Notify(int n = 1);

  // Processes one batch of deliveries (exposed for tests). Returns the number
  // written.
  int ProcessBatch(const std::vector<Delivery>& batch);

 private:
  struct WriteGroup {
    std::vector<Delivery> deliveries;
    std::vector<std::optional<std::string>> data;  // per delivery
    std::vector<std::vector<MappedRow>> rows;      // entity rows, per delivery
    std::vector<Attempt> attempts;                 // earlier stages' successes
  };
  void Loop();
  // Writes one sink's share of a batch; returns the number written.
  int Write(Sink* sink, WriteGroup& group);
  // Waits until notified about `want` new deliveries, stopped, or `deadline`.
  void WaitFor(absl::Time deadline, int64_t want);
  // Records the failure of `stage` for `batch` (retry or dead), together with
  // `prior` attempts of earlier stages that succeeded.
  void Fail(const std::vector<Delivery>& batch, const absl::Status& status,
            const std::string& stage, absl::Duration took, int http_status = 0,
            std::vector<Attempt> prior = {}, const std::string& sink_name = "");

  Journal* journal_;
  SinkFor sink_for_;
  Hydrator* hydrator_;
  Clock* clock_;
  BatchConfig batch_;
  RetryConfig retry_;
  BackoffPolicy backoff_;
  PipelineMetrics metrics_;
  absl::BitGen gen_;

  absl::Mutex mu_;
  int64_t notified_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace mlc::writer
