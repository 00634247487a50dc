// JournalRetention: the journal's audit retention (writer.audit_retention_days).
// A background thread compacts the journal at startup and then every `interval`
// (an hour in the writer): written deliveries and handshakes that finished more
// than `retention_days` ago are removed with their attempts; pending and dead
// deliveries are kept however old (Journal::Compact). retention_days 0 keeps
// everything and starts no thread.
//
// Stop() is prompt: it wakes the idle wait at once and a compaction in progress
// stops after its current chunk (one short transaction). status() feeds GetStats.
// Thread-safe; Start/Stop are called from one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "writer/journal.h"

namespace mlc::writer {

struct RetentionMetrics {
  Counter* compacted = nullptr;    // deliveries removed
  Gauge* journal_bytes = nullptr;  // journal.db + WAL, after each compaction
};

struct RetentionStatus {
  int retention_days = 0;                     // 0: keep forever
  std::optional<absl::Time> last_compaction;  // when the last run finished
  int64_t compacted_total = 0;                // deliveries removed since start
};

class JournalRetention {
 public:
  // Deliveries per compaction transaction. A webhook journaled meanwhile shares
  // or follows one such transaction: 250 keeps its wait at ~4 ms p50 / ~20 ms p99
  // while ~44,000 old deliveries/s are removed (tests/bench/journal_bench; 2,000
  // per transaction made it ~32 / ~84 ms).
  static constexpr int kRowsPerTransaction = 250;

  JournalRetention(Journal* journal, Clock* clock, int retention_days,
                   absl::Duration interval = absl::Hours(1), RetentionMetrics metrics = {});
  ~JournalRetention();  // Stop()
  JournalRetention(const JournalRetention&) = delete;
  JournalRetention& operator=(const JournalRetention&) = delete;

  void Start();
  void Stop();

  // One compaction now (what the thread does each interval). Returns the number
  // of deliveries removed; 0 without doing anything when retention is off.
  absl::StatusOr<int64_t> RunOnce();

  RetentionStatus status() const;

 private:
  void Loop();
  bool stopping() const;

  Journal* journal_;
  Clock* clock_;
  const int retention_days_;
  const absl::Duration interval_;
  RetentionMetrics metrics_;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<absl::Time> last_compaction_ ABSL_GUARDED_BY(mu_);
  int64_t compacted_total_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;
};

}  // namespace mlc::writer
