#include "writer/journal.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

constexpr int kSchemaVersion = 1;
// Bounds one transaction so a burst cannot make one commit arbitrarily long.
constexpr size_t kMaxOpsPerCommit = 4096;

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS deliveries (
  seq             INTEGER PRIMARY KEY,
  delivery_id     TEXT NOT NULL UNIQUE,
  connection_id   TEXT NOT NULL,
  kind            TEXT NOT NULL,
  event_type      TEXT NOT NULL,
  object_type     TEXT NOT NULL,
  object_id       TEXT NOT NULL,
  account_id      TEXT NOT NULL,
  business_id     TEXT NOT NULL,
  identity_id     TEXT NOT NULL,
  user_id         TEXT NOT NULL,
  received_at_us  INTEGER NOT NULL,
  journaled_at_us INTEGER NOT NULL,
  payload         TEXT NOT NULL,
  status          TEXT NOT NULL,
  attempts        INTEGER NOT NULL DEFAULT 0,
  available_at_us INTEGER NOT NULL,
  last_error      TEXT NOT NULL DEFAULT '',
  finished_at_us  INTEGER
);
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS deliveries_by_object ON deliveries(connection_id, object_type, object_id);
CREATE TABLE IF NOT EXISTS attempts (
  id          INTEGER PRIMARY KEY,
  delivery_id TEXT NOT NULL,
  stage       TEXT NOT NULL,
  outcome     TEXT NOT NULL,
  http_status INTEGER NOT NULL DEFAULT 0,
  error       TEXT NOT NULL DEFAULT '',
  duration_us INTEGER NOT NULL,
  at_us       INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts(delivery_id);
)sql";

constexpr char kSelectColumns[] =
    "seq, delivery_id, connection_id, kind, event_type, object_type, object_id, account_id, "
    "business_id, identity_id, user_id, received_at_us, journaled_at_us, payload, status, "
    "attempts, available_at_us, last_error";

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

Delivery ReadDelivery(const Stmt& s) {
  Delivery d;
  d.seq = s.ColumnInt(0);
  d.delivery_id = s.ColumnText(1);
  d.connection_id = s.ColumnText(2);
  d.kind = s.ColumnText(3);
  d.event_type = s.ColumnText(4);
  d.object_type = s.ColumnText(5);
  d.object_id = s.ColumnText(6);
  d.account_id = s.ColumnText(7);
  d.business_id = s.ColumnText(8);
  d.identity_id = s.ColumnText(9);
  d.user_id = s.ColumnText(10);
  d.received_at = absl::FromUnixMicros(s.ColumnInt(11));
  d.journaled_at = absl::FromUnixMicros(s.ColumnInt(12));
  d.payload = s.ColumnText(13);
  d.status = ParseDeliveryStatus(s.ColumnText(14)).value_or(DeliveryStatus::kPending);
  d.attempts = static_cast<int>(s.ColumnInt(15));
  d.available_at = absl::FromUnixMicros(s.ColumnInt(16));
  d.last_error = s.ColumnText(17);
  return d;
}

}  // namespace

const char* DeliveryStatusName(DeliveryStatus s) {
  switch (s) {
    case DeliveryStatus::kPending:
      return "pending";
    case DeliveryStatus::kWritten:
      return "written";
    case DeliveryStatus::kDead:
      return "dead";
    case DeliveryStatus::kHandshake:
      return "handshake";
  }
  return "pending";
}

std::optional<DeliveryStatus> ParseDeliveryStatus(std::string_view s) {
  if (s == "pending") return DeliveryStatus::kPending;
  if (s == "written") return DeliveryStatus::kWritten;
  if (s == "dead") return DeliveryStatus::kDead;
  if (s == "handshake") return DeliveryStatus::kHandshake;
  return std::nullopt;
}

// Prepared statements of the committer connection (used on that thread only).
struct Journal::Statements {
  Stmt insert_delivery;
  Stmt insert_attempt;
  Stmt mark_written;
  Stmt mark_retry;
  Stmt mark_dead;
};

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& path, Clock* clock,
                                                       JournalMetrics metrics) {
  MLC_ASSIGN_OR_RETURN(auto write_db, Db::Open(path, Durability::kFull));
  MLC_RETURN_IF_ERROR(write_db->Exec(kSchema));
  MLC_RETURN_IF_ERROR(write_db->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion)));
  MLC_ASSIGN_OR_RETURN(auto read_db, Db::Open(path, Durability::kNormal));
  std::unique_ptr<Journal> j(new Journal(std::move(write_db), std::move(read_db), clock, metrics));
  MLC_RETURN_IF_ERROR(j->Prepare());
  j->committer_ = std::thread([p = j.get()] { p->CommitterLoop(); });
  return j;
}

Journal::Journal(std::unique_ptr<Db> write_db, std::unique_ptr<Db> read_db, Clock* clock,
                 JournalMetrics metrics)
    : write_db_(std::move(write_db)),
      read_db_(std::move(read_db)),
      clock_(clock),
      metrics_(metrics) {}

absl::Status Journal::Prepare() {
  MLC_ASSIGN_OR_RETURN(
      Stmt insert_delivery,
      write_db_->Prepare(
          "INSERT INTO deliveries (delivery_id, connection_id, kind, event_type, object_type, "
          "object_id, account_id, business_id, identity_id, user_id, received_at_us, "
          "journaled_at_us, payload, status, attempts, available_at_us, last_error) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"));
  MLC_ASSIGN_OR_RETURN(
      Stmt insert_attempt,
      write_db_->Prepare("INSERT INTO attempts (delivery_id, stage, outcome, http_status, error, "
                         "duration_us, at_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  MLC_ASSIGN_OR_RETURN(
      Stmt mark_written,
      write_db_->Prepare("UPDATE deliveries SET status = 'written', last_error = '', "
                         "finished_at_us = ?2 WHERE delivery_id = ?1"));
  MLC_ASSIGN_OR_RETURN(
      Stmt mark_retry,
      write_db_->Prepare("UPDATE deliveries SET attempts = attempts + 1, available_at_us = ?2, "
                         "last_error = ?3 WHERE delivery_id = ?1 AND status = 'pending'"));
  MLC_ASSIGN_OR_RETURN(
      Stmt mark_dead,
      write_db_->Prepare("UPDATE deliveries SET status = 'dead', attempts = attempts + 1, "
                         "last_error = ?2, finished_at_us = ?3 WHERE delivery_id = ?1"));
  stmts_ = std::make_unique<Statements>(
      Statements{std::move(insert_delivery), std::move(insert_attempt), std::move(mark_written),
                 std::move(mark_retry), std::move(mark_dead)});
  return absl::OkStatus();
}

Journal::~Journal() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (committer_.joinable()) committer_.join();
}

void Journal::Enqueue(Op op) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      queue_.push_back(std::move(op));
      return;
    }
  }
  op.done(absl::UnavailableError("journal is shutting down"));
}

void Journal::CommitterLoop() {
  while (true) {
    std::vector<Op> group;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](Journal* j)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(j->mu_) { return j->stopping_ || !j->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // stopping and drained
      const size_t n = std::min(queue_.size(), kMaxOpsPerCommit);
      group.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    const absl::Time start = absl::Now();
    absl::Status s = ApplyGroup(group);
    if (!s.ok() && group.size() > 1) {
      // One bad operation must not fail its neighbours: retry each on its own.
      log::Warn("journal group commit failed; retrying operations one by one",
                {{"error", s.ToString()}, {"ops", static_cast<int64_t>(group.size())}});
      for (Op& op : group) {
        std::vector<Op> single;
        single.push_back(std::move(op));
        absl::Status one = ApplyGroup(single);
        single[0].done(one);
      }
      continue;
    }
    if (metrics_.commit_seconds != nullptr) {
      metrics_.commit_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - start));
    }
    if (metrics_.group_size != nullptr) {
      metrics_.group_size->Observe(static_cast<double>(group.size()));
    }
    for (Op& op : group) op.done(s);
  }
}

absl::Status Journal::ApplyGroup(std::vector<Op>& ops) {
  absl::Status s = write_db_->Exec("BEGIN IMMEDIATE");
  if (s.ok()) {
    for (Op& op : ops) {
      s = op.apply();
      if (!s.ok()) break;
    }
  }
  if (s.ok()) s = write_db_->Exec("COMMIT");
  if (!s.ok()) {
    (void)write_db_->Exec("ROLLBACK");
    if (metrics_.commit_failures != nullptr) metrics_.commit_failures->Inc();
    log::Error("journal commit failed", {{"error", s.ToString()}});
    return s;
  }
  if (metrics_.commits != nullptr) metrics_.commits->Inc();
  absl::MutexLock lock(&mu_);
  ++commits_;
  return absl::OkStatus();
}

absl::Status Journal::InsertAttempts(const std::vector<Attempt>& attempts) {
  Stmt& st = stmts_->insert_attempt;
  for (const Attempt& a : attempts) {
    st.BindText(1, a.delivery_id);
    st.BindText(2, a.stage);
    st.BindText(3, a.outcome);
    st.BindInt(4, a.http_status);
    st.BindText(5, a.error);
    st.BindInt(6, absl::ToInt64Microseconds(a.duration));
    st.BindInt(7, Micros(a.at));
    MLC_RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

void Journal::Append(Delivery d, Done done) {
  Op op;
  op.apply = [this, d = std::move(d)]() -> absl::Status {
    const absl::Time now = clock_->Now();
    Stmt& st = stmts_->insert_delivery;
    st.BindText(1, d.delivery_id);
    st.BindText(2, d.connection_id);
    st.BindText(3, d.kind);
    st.BindText(4, d.event_type);
    st.BindText(5, d.object_type);
    st.BindText(6, d.object_id);
    st.BindText(7, d.account_id);
    st.BindText(8, d.business_id);
    st.BindText(9, d.identity_id);
    st.BindText(10, d.user_id);
    st.BindInt(11, Micros(d.received_at));
    st.BindInt(12, Micros(now));
    st.BindText(13, d.payload);
    st.BindText(14, DeliveryStatusName(d.status));
    st.BindInt(15, d.attempts);
    st.BindInt(16, Micros(d.available_at == absl::InfinitePast() ? now : d.available_at));
    st.BindText(17, d.last_error);
    MLC_RETURN_IF_ERROR(st.Run());
    Attempt a;
    a.delivery_id = d.delivery_id;
    a.stage = "journal";
    a.outcome = "ok";
    a.duration = now - d.received_at;
    a.at = now;
    return InsertAttempts({a});
  };
  op.done = std::move(done);
  Enqueue(std::move(op));
}

void Journal::MarkWritten(const std::vector<std::string>& delivery_ids,
                          std::vector<Attempt> attempts, Done done) {
  Op op;
  op.apply = [this, ids = delivery_ids, attempts = std::move(attempts)]() -> absl::Status {
    Stmt& st = stmts_->mark_written;
    const int64_t now = Micros(clock_->Now());
    for (const std::string& id : ids) {
      st.BindText(1, id);
      st.BindInt(2, now);
      MLC_RETURN_IF_ERROR(st.Run());
    }
    return InsertAttempts(attempts);
  };
  op.done = std::move(done);
  Enqueue(std::move(op));
}

void Journal::MarkRetry(const std::vector<std::pair<std::string, absl::Time>>& retries,
                        const std::string& error, std::vector<Attempt> attempts, Done done) {
  Op op;
  op.apply = [this, retries, error, attempts = std::move(attempts)]() -> absl::Status {
    Stmt& st = stmts_->mark_retry;
    for (const auto& [id, at] : retries) {
      st.BindText(1, id);
      st.BindInt(2, Micros(at));
      st.BindText(3, error);
      MLC_RETURN_IF_ERROR(st.Run());
    }
    return InsertAttempts(attempts);
  };
  op.done = std::move(done);
  Enqueue(std::move(op));
}

void Journal::MarkDead(const std::vector<std::string>& delivery_ids, const std::string& reason,
                       std::vector<Attempt> attempts, Done done) {
  Op op;
  op.apply = [this, ids = delivery_ids, reason, attempts = std::move(attempts)]() -> absl::Status {
    Stmt& st = stmts_->mark_dead;
    const int64_t now = Micros(clock_->Now());
    for (const std::string& id : ids) {
      st.BindText(1, id);
      st.BindText(2, reason);
      st.BindInt(3, now);
      MLC_RETURN_IF_ERROR(st.Run());
    }
    return InsertAttempts(attempts);
  };
  op.done = std::move(done);
  Enqueue(std::move(op));
}

namespace {
// Runs an asynchronous journal operation and waits for its completion.
absl::Status RunSync(const std::function<void(Journal::Done)>& start) {
  absl::Mutex mu;
  bool finished = false;
  absl::Status result;
  start([&](absl::Status s) {
    absl::MutexLock lock(&mu);
    result = std::move(s);
    finished = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&finished));
  return result;
}
}  // namespace

absl::Status Journal::AppendSync(Delivery d) {
  return RunSync([&](Done done) { Append(std::move(d), std::move(done)); });
}

absl::Status Journal::MarkWrittenSync(const std::vector<std::string>& ids,
                                      std::vector<Attempt> attempts) {
  return RunSync([&](Done done) { MarkWritten(ids, std::move(attempts), std::move(done)); });
}

absl::Status Journal::MarkRetrySync(const std::vector<std::pair<std::string, absl::Time>>& retries,
                                    const std::string& error, std::vector<Attempt> attempts) {
  return RunSync(
      [&](Done done) { MarkRetry(retries, error, std::move(attempts), std::move(done)); });
}

absl::Status Journal::MarkDeadSync(const std::vector<std::string>& ids, const std::string& reason,
                                   std::vector<Attempt> attempts) {
  return RunSync([&](Done done) { MarkDead(ids, reason, std::move(attempts), std::move(done)); });
}

absl::StatusOr<std::vector<Delivery>> Journal::FetchDue(absl::Time now, int limit) {
  absl::MutexLock lock(&read_mu_);
  MLC_ASSIGN_OR_RETURN(
      Stmt st, read_db_->Prepare(absl::StrCat("SELECT ", kSelectColumns,
                                              " FROM deliveries WHERE status = 'pending' AND "
                                              "available_at_us <= ?1 ORDER BY seq LIMIT ?2")));
  st.BindInt(1, Micros(now));
  st.BindInt(2, limit);
  std::vector<Delivery> out;
  while (true) {
    MLC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadDelivery(st));
  }
  return out;
}

absl::StatusOr<std::optional<absl::Time>> Journal::NextAvailable() {
  absl::MutexLock lock(&read_mu_);
  MLC_ASSIGN_OR_RETURN(
      Stmt st,
      read_db_->Prepare("SELECT MIN(available_at_us) FROM deliveries WHERE status = 'pending'"));
  MLC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row || st.ColumnIsNull(0)) return std::optional<absl::Time>();
  return std::optional<absl::Time>(absl::FromUnixMicros(st.ColumnInt(0)));
}

absl::StatusOr<std::optional<Delivery>> Journal::Get(const std::string& delivery_id) {
  absl::MutexLock lock(&read_mu_);
  MLC_ASSIGN_OR_RETURN(Stmt st,
                       read_db_->Prepare(absl::StrCat("SELECT ", kSelectColumns,
                                                      " FROM deliveries WHERE delivery_id = ?1")));
  st.BindText(1, delivery_id);
  MLC_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<Delivery>();
  return std::optional<Delivery>(ReadDelivery(st));
}

absl::StatusOr<std::vector<Attempt>> Journal::Attempts(const std::string& delivery_id) {
  absl::MutexLock lock(&read_mu_);
  MLC_ASSIGN_OR_RETURN(Stmt st,
                       read_db_->Prepare("SELECT delivery_id, stage, outcome, http_status, error, "
                                         "duration_us, at_us FROM attempts WHERE delivery_id = ?1 "
                                         "ORDER BY id"));
  st.BindText(1, delivery_id);
  std::vector<Attempt> out;
  while (true) {
    MLC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    Attempt a;
    a.delivery_id = st.ColumnText(0);
    a.stage = st.ColumnText(1);
    a.outcome = st.ColumnText(2);
    a.http_status = static_cast<int>(st.ColumnInt(3));
    a.error = st.ColumnText(4);
    a.duration = absl::Microseconds(st.ColumnInt(5));
    a.at = absl::FromUnixMicros(st.ColumnInt(6));
    out.push_back(std::move(a));
  }
  return out;
}

absl::StatusOr<std::vector<std::pair<DeliveryStatus, int64_t>>> Journal::CountByStatus() {
  absl::MutexLock lock(&read_mu_);
  MLC_ASSIGN_OR_RETURN(
      Stmt st, read_db_->Prepare("SELECT status, COUNT(*) FROM deliveries GROUP BY status"));
  std::vector<std::pair<DeliveryStatus, int64_t>> out;
  while (true) {
    MLC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    auto status = ParseDeliveryStatus(st.ColumnText(0));
    if (status.has_value()) out.emplace_back(*status, st.ColumnInt(1));
  }
  return out;
}

int64_t Journal::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

}  // namespace mlc::writer
