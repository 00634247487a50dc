// The journal: the writer's durable record of every delivery and of every attempt
// to process it (the audit trail), in SQLite (`<data_dir>/journal.db`, WAL mode,
// synchronous=FULL).
//
// All mutations go through one committer thread. It takes every operation queued
// while the previous commit was being fsync'd and applies them in one transaction
// (group commit), then completes each operation's callback. So a caller learns
// that its delivery is durable exactly when the fsync that covers it returned,
// and N concurrent submits cost one fsync, not N. Reads use their own connection
// and never block the committer.
//
// Journal is thread-safe. Callbacks run on the committer thread and must not
// block on the journal.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "writer/sqlite_db.h"

namespace mlc::writer {

enum class DeliveryStatus { kPending, kWritten, kDead, kHandshake };
const char* DeliveryStatusName(DeliveryStatus s);
std::optional<DeliveryStatus> ParseDeliveryStatus(std::string_view s);

struct Delivery {
  int64_t seq = 0;  // assigned by the journal; order of arrival
  std::string delivery_id;
  std::string connection_id;
  std::string kind;  // "event" or "handshake"
  std::string event_type;
  std::string object_type;
  std::string object_id;
  std::string account_id;
  std::string business_id;
  std::string identity_id;
  std::string user_id;
  absl::Time received_at;
  absl::Time journaled_at;
  // The delivery as received: JSON array of [name, value] form fields. Never holds
  // a secret (a handshake's verifier is redacted before it gets here).
  std::string payload;
  DeliveryStatus status = DeliveryStatus::kPending;
  int attempts = 0;  // failed processing attempts so far
  absl::Time available_at;
  std::string last_error;
};

// One step of processing, as the audit trail shows it.
struct Attempt {
  std::string delivery_id;
  std::string stage;    // "journal", "hydrate", "write", ...
  std::string outcome;  // "ok", "retry", "dead", "skipped"
  int http_status = 0;  // 0 when not an HTTP call
  std::string error;
  absl::Duration duration;
  absl::Time at;
};

struct JournalMetrics {
  Counter* commits = nullptr;  // transactions committed (one fsync each)
  Counter* commit_failures = nullptr;
  Histogram* commit_seconds = nullptr;
  Histogram* group_size = nullptr;  // operations per commit
};

class Journal {
 public:
  using Done = std::function<void(absl::Status)>;

  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& path, Clock* clock,
                                                       JournalMetrics metrics = {});
  ~Journal();  // drains queued operations, then stops the committer
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends a new delivery (status, attempts and available_at taken from `d`;
  // journaled_at set now) and a "journal" attempt; `done` runs once durable.
  void Append(Delivery d, Done done);

  // The delivery was written: status written, attempts recorded.
  void MarkWritten(const std::vector<std::string>& delivery_ids, std::vector<Attempt> attempts,
                   Done done);
  // Processing failed and will be retried at `available_at` (attempts + 1).
  void MarkRetry(const std::vector<std::pair<std::string, absl::Time>>& retries,
                 const std::string& error, std::vector<Attempt> attempts, Done done);
  // Processing failed for good: status dead, reason kept.
  void MarkDead(const std::vector<std::string>& delivery_ids, const std::string& reason,
                std::vector<Attempt> attempts, Done done);

  // Blocking convenience wrappers for the pipeline and tests.
  absl::Status AppendSync(Delivery d);
  absl::Status MarkWrittenSync(const std::vector<std::string>& ids, std::vector<Attempt> attempts);
  absl::Status MarkRetrySync(const std::vector<std::pair<std::string, absl::Time>>& retries,
                             const std::string& error, std::vector<Attempt> attempts);
  absl::Status MarkDeadSync(const std::vector<std::string>& ids, const std::string& reason,
                            std::vector<Attempt> attempts);

  // Pending deliveries available at `now`, oldest first.
  absl::StatusOr<std::vector<Delivery>> FetchDue(absl::Time now, int limit);
  // Earliest available_at among pending deliveries, if any.
  absl::StatusOr<std::optional<absl::Time>> NextAvailable();
  absl::StatusOr<std::optional<Delivery>> Get(const std::string& delivery_id);
  absl::StatusOr<std::vector<Attempt>> Attempts(const std::string& delivery_id);
  // Number of deliveries per status.
  absl::StatusOr<std::vector<std::pair<DeliveryStatus, int64_t>>> CountByStatus();

  int64_t commits() const;

 private:
  struct Op {
    std::function<absl::Status()> apply;  // runs inside the transaction
    Done done;
  };
  struct Statements;

  Journal(std::unique_ptr<Db> write_db, std::unique_ptr<Db> read_db, Clock* clock,
          JournalMetrics metrics);
  absl::Status Prepare();
  void Enqueue(Op op);
  void CommitterLoop();
  absl::Status ApplyGroup(std::vector<Op>& ops);
  absl::Status InsertAttempts(const std::vector<Attempt>& attempts);

  std::unique_ptr<Db> write_db_;  // committer thread only
  std::unique_ptr<Db> read_db_;   // guarded by read_mu_
  std::unique_ptr<Statements> stmts_;
  Clock* clock_;
  JournalMetrics metrics_;

  mutable absl::Mutex mu_;
  std::deque<Op> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int64_t commits_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex read_mu_;
  std::thread committer_;
};

}  // namespace mlc::writer
