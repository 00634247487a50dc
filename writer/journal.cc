#include "writer/journal.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

constexpr int kSchemaVersion = 2;
// Bounds one transaction so a burst cannot make one commit arbitrarily long.
constexpr size_t kMaxOpsPerCommit = 4096;
// The WAL is rewound after each checkpoint but keeps its largest size; past this
// it is truncated, so a burst (or a large replay) does not leave a big file behind.
constexpr int64_t kWalSizeLimitBytes = 64 << 20;

// The tables as of the current version (new files). A v1 file is brought here by
// Migrate(): the columns v2 added come last, as ALTER TABLE ADD COLUMN puts them.
constexpr char kTables[] = R"sql(
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
  finished_at_us  INTEGER,
  replays         INTEGER NOT NULL DEFAULT 0,
  replayed_at_us  INTEGER
);
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
)sql";

// Every index earns its keep on a named query; each one costs every append a
// b-tree insert, so there are no speculative ones.
constexpr char kIndexes[] = R"sql(
-- FetchDue / NextAvailable: the pipeline's queue, small however big the journal.
CREATE INDEX IF NOT EXISTS deliveries_pending ON deliveries(seq) WHERE status = 'pending';
-- List by connection (and object); its connection_id prefix serves GetStats for one
-- connection too.
CREATE INDEX IF NOT EXISTS deliveries_by_object ON deliveries(connection_id, object_type, object_id);
-- GetAttempts, and Compact deleting a removed delivery's attempts.
CREATE INDEX IF NOT EXISTS attempts_by_delivery ON attempts(delivery_id);
-- v2: List's received_at range filter and Stats' "received in the last hour".
CREATE INDEX IF NOT EXISTS deliveries_received ON deliveries(received_at_us);
-- v2: Compact (status IN (written, handshake) AND finished_at_us < cutoff, a range
-- scan per status instead of a scan of the table every hour), Stats' "last
-- written" / "written in the last hour", and the dead letters (status = 'dead').
CREATE INDEX IF NOT EXISTS deliveries_finished ON deliveries(status, finished_at_us);
)sql";

constexpr char kSelectColumns[] =
    "seq, delivery_id, connection_id, kind, event_type, object_type, object_id, account_id, "
    "business_id, identity_id, user_id, received_at_us, journaled_at_us, payload, status, "
    "attempts, available_at_us, last_error, finished_at_us, replays, replayed_at_us";
// The same columns without the payload (List), so a page does not read every body.
constexpr char kListColumns[] =
    "seq, delivery_id, connection_id, kind, event_type, object_type, object_id, account_id, "
    "business_id, identity_id, user_id, received_at_us, journaled_at_us, '', status, "
    "attempts, available_at_us, last_error, finished_at_us, replays, replayed_at_us";

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
  if (!s.ColumnIsNull(18)) d.finished_at = absl::FromUnixMicros(s.ColumnInt(18));
  d.replays = static_cast<int>(s.ColumnInt(19));
  if (!s.ColumnIsNull(20)) d.replayed_at = absl::FromUnixMicros(s.ColumnInt(20));
  return d;
}

// A WHERE clause built from a DeliveryQuery: the SQL holds only `?` placeholders;
// every value the caller gave is in `args`, bound in order.
struct Where {
  using Arg = std::variant<int64_t, std::string>;
  std::vector<std::string> terms;
  std::vector<Arg> args;

  void Add(std::string term, std::vector<Arg> values) {
    terms.push_back(std::move(term));
    for (Arg& v : values) args.push_back(std::move(v));
  }
  std::string Sql() const {
    return terms.empty() ? std::string() : absl::StrCat(" WHERE ", absl::StrJoin(terms, " AND "));
  }
  // Binds args to ?1.. and returns the next free index.
  int Bind(Stmt& st) const {
    int i = 1;
    for (const Arg& a : args) {
      if (const int64_t* v = std::get_if<int64_t>(&a)) {
        st.BindInt(i++, *v);
      } else {
        st.BindText(i++, std::get<std::string>(a));
      }
    }
    return i;
  }
};

Where BuildWhere(const DeliveryQuery& q) {
  Where w;
  if (!q.connection_id.empty()) w.Add("connection_id = ?", {q.connection_id});
  if (!q.event_type.empty()) {
    if (absl::StrContains(q.event_type, '.')) {
      w.Add("event_type = ?", {q.event_type});
    } else {
      // Every "<object>.*": the byte range ["<object>.", "<object>/") - '/' is the
      // byte after '.' - which, unlike LIKE, has no wildcard characters to escape.
      w.Add("event_type >= ? AND event_type < ?",
            {absl::StrCat(q.event_type, "."), absl::StrCat(q.event_type, "/")});
    }
  }
  if (!q.object_id.empty()) w.Add("object_id = ?", {q.object_id});
  if (!q.statuses.empty()) {
    std::set<std::string> names;
    for (DeliveryStatus st : q.statuses) names.insert(DeliveryStatusName(st));
    std::vector<std::string> marks(names.size(), "?");
    std::vector<Where::Arg> values(names.begin(), names.end());
    w.Add(absl::StrCat("status IN (", absl::StrJoin(marks, ", "), ")"), std::move(values));
  }
  if (q.received_after.has_value()) {
    w.Add("received_at_us >= ?", {Micros(*q.received_after)});
  }
  if (q.received_before.has_value()) {
    w.Add("received_at_us < ?", {Micros(*q.received_before)});
  }
  if (!q.error_contains.empty()) {
    w.Add("instr(lower(last_error), ?) > 0", {absl::AsciiStrToLower(q.error_contains)});
  }
  return w;
}

absl::StatusOr<int64_t> ScalarInt(Db* db, const std::string& sql) {
  MLC_ASSIGN_OR_RETURN(Stmt st, db->Prepare(sql));
  MLC_ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.ColumnInt(0) : 0;
}

// Brings the file to kSchemaVersion in one transaction (a crash mid-way leaves
// the old version intact).
absl::Status Migrate(Db* db) {
  MLC_ASSIGN_OR_RETURN(const int64_t version, ScalarInt(db, "PRAGMA user_version"));
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        db->path(), ": journal schema version ", version, " is newer than this writer's (",
        kSchemaVersion, "); run the writer version that wrote it (or newer)"));
  }
  MLC_RETURN_IF_ERROR(db->Exec("BEGIN IMMEDIATE"));
  absl::Status s = [&]() -> absl::Status {
    MLC_RETURN_IF_ERROR(db->Exec(kTables));
    std::set<std::string> columns;
    MLC_ASSIGN_OR_RETURN(Stmt info, db->Prepare("PRAGMA table_info(deliveries)"));
    while (true) {
      MLC_ASSIGN_OR_RETURN(bool row, info.Step());
      if (!row) break;
      columns.insert(info.ColumnText(1));
    }
    if (columns.count("replays") == 0) {
      MLC_RETURN_IF_ERROR(
          db->Exec("ALTER TABLE deliveries ADD COLUMN replays INTEGER NOT NULL DEFAULT 0"));
    }
    if (columns.count("replayed_at_us") == 0) {
      MLC_RETURN_IF_ERROR(db->Exec("ALTER TABLE deliveries ADD COLUMN replayed_at_us INTEGER"));
    }
    if (version < 2) {
      // v1 left finished_at unset for handshakes (and for deliveries appended
      // already finished); retention counts from it.
      MLC_RETURN_IF_ERROR(
          db->Exec("UPDATE deliveries SET finished_at_us = journaled_at_us "
                   "WHERE status <> 'pending' AND finished_at_us IS NULL"));
    }
    MLC_RETURN_IF_ERROR(db->Exec(kIndexes));
    return db->Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion));
  }();
  if (!s.ok()) {
    (void)db->Exec("ROLLBACK");
    return s;
  }
  MLC_RETURN_IF_ERROR(db->Exec("COMMIT"));
  if (version != 0 && version < kSchemaVersion) {
    log::Info("journal: schema migrated",
              {{"file", db->path()}, {"from", version}, {"to", int64_t{kSchemaVersion}}});
  }
  return absl::OkStatus();
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

bool DeliveryQuery::empty() const {
  return connection_id.empty() && event_type.empty() && object_id.empty() && statuses.empty() &&
         !received_after.has_value() && !received_before.has_value() && error_contains.empty();
}

namespace {
constexpr char kPageTokenPrefix[] = "seq:";
}  // namespace

std::string EncodePageToken(int64_t last_seq) {
  return absl::WebSafeBase64Escape(absl::StrCat(kPageTokenPrefix, last_seq));
}

std::optional<int64_t> DecodePageToken(const std::string& token) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return std::nullopt;
  if (!absl::StartsWith(raw, kPageTokenPrefix)) return std::nullopt;
  int64_t seq = 0;
  if (!absl::SimpleAtoi(raw.substr(sizeof(kPageTokenPrefix) - 1), &seq) || seq <= 0) {
    return std::nullopt;
  }
  return seq;
}

// Prepared statements of the committer connection (used on that thread only).
struct Journal::Statements {
  Stmt insert_delivery;
  Stmt insert_attempt;
  Stmt mark_written;
  Stmt mark_retry;
  Stmt mark_dead;
  Stmt compact_select;
  Stmt delete_attempts;
  Stmt delete_delivery;
};

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& path, Clock* clock,
                                                       JournalMetrics metrics) {
  MLC_ASSIGN_OR_RETURN(auto write_db, Db::Open(path, Durability::kFull));
  MLC_RETURN_IF_ERROR(Migrate(write_db.get()));
  MLC_RETURN_IF_ERROR(
      write_db->Exec(absl::StrCat("PRAGMA journal_size_limit=", kWalSizeLimitBytes)));
  MLC_ASSIGN_OR_RETURN(auto read_db, Db::Open(path, Durability::kNormal));
  std::unique_ptr<Journal> j(
      new Journal(path, std::move(write_db), std::move(read_db), clock, metrics));
  MLC_RETURN_IF_ERROR(j->Prepare());
  j->committer_ = std::thread([p = j.get()] { p->CommitterLoop(); });
  return j;
}

Journal::Journal(std::string path, std::unique_ptr<Db> write_db, std::unique_ptr<Db> read_db,
                 Clock* clock, JournalMetrics metrics)
    : path_(std::move(path)),
      write_db_(std::move(write_db)),
      read_db_(std::move(read_db)),
      clock_(clock),
      metrics_(metrics) {}

absl::Status Journal::Prepare() {
  MLC_ASSIGN_OR_RETURN(
      Stmt insert_delivery,
      write_db_->Prepare(
          "INSERT INTO deliveries (delivery_id, connection_id, kind, event_type, object_type, "
          "object_id, account_id, business_id, identity_id, user_id, received_at_us, "
          "journaled_at_us, payload, status, attempts, available_at_us, last_error, "
          "finished_at_us) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, "
          "?18)"));
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
  MLC_ASSIGN_OR_RETURN(
      Stmt compact_select,
      write_db_->Prepare("SELECT seq, delivery_id FROM deliveries WHERE status IN ('written', "
                         "'handshake') AND finished_at_us < ?1 LIMIT ?2"));
  MLC_ASSIGN_OR_RETURN(Stmt delete_attempts,
                       write_db_->Prepare("DELETE FROM attempts WHERE delivery_id = ?1"));
  MLC_ASSIGN_OR_RETURN(Stmt delete_delivery,
                       write_db_->Prepare("DELETE FROM deliveries WHERE seq = ?1"));
  stmts_ = std::make_unique<Statements>(
      Statements{std::move(insert_delivery), std::move(insert_attempt), std::move(mark_written),
                 std::move(mark_retry), std::move(mark_dead), std::move(compact_select),
                 std::move(delete_attempts), std::move(delete_delivery)});
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
    // A handshake (or a delivery appended already finished) is finished when
    // journaled; retention counts from finished_at.
    if (d.status == DeliveryStatus::kPending) {
      st.BindNull(18);
    } else {
      st.BindInt(18, Micros(now));
    }
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

absl::StatusOr<DeliveryPage> Journal::List(const DeliveryQuery& query,
                                           const DeliveryPageRequest& page) {
  if (page.page_size < 0 || page.page_size > DeliveryPageRequest::kMaxPageSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", page.page_size, ": use 1..", DeliveryPageRequest::kMaxPageSize,
                     " (0 for the default ", DeliveryPageRequest::kDefaultPageSize, ")"));
  }
  const int size = page.page_size == 0 ? DeliveryPageRequest::kDefaultPageSize : page.page_size;
  Where where = BuildWhere(query);
  if (!page.page_token.empty()) {
    std::optional<int64_t> below = DecodePageToken(page.page_token);
    if (!below.has_value()) {
      return absl::InvalidArgumentError(
          "page_token: not a token from a previous response; omit it to start from the newest");
    }
    where.Add("seq < ?", {*below});
  }
  absl::MutexLock lock(&read_mu_);
  MLC_ASSIGN_OR_RETURN(Stmt st,
                       read_db_->Prepare(absl::StrCat("SELECT ", kListColumns, " FROM deliveries",
                                                      where.Sql(), " ORDER BY seq DESC LIMIT ?")));
  // One row more than the page tells whether another page follows.
  st.BindInt(where.Bind(st), size + 1);
  DeliveryPage out;
  while (true) {
    MLC_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    if (static_cast<int>(out.deliveries.size()) == size) {
      out.next_page_token = EncodePageToken(out.deliveries.back().seq);
      break;
    }
    out.deliveries.push_back(ReadDelivery(st));
  }
  return out;
}

namespace {
// Runs `body` in one read transaction on `db` (a consistent snapshot across its
// statements).
absl::Status InReadTransaction(Db* db, const std::function<absl::Status()>& body) {
  MLC_RETURN_IF_ERROR(db->Exec("BEGIN"));
  absl::Status s = body();
  if (!s.ok()) {
    (void)db->Exec("ROLLBACK");
    return s;
  }
  return db->Exec("COMMIT");
}

constexpr char kHandshakeSkipReason[] =
    "a verification handshake has nothing to write; replay does not apply";
}  // namespace

absl::Status Journal::ApplyReplay(Db* db, const ReplayRequest& request, absl::Time now,
                                  ReplayResult* result) {
  // Reset: after a failed group commit the committer applies this op again.
  *result = ReplayResult();
  struct Match {
    int64_t seq;
    std::string id;
    bool handshake;
  };
  std::vector<Match> matches;
  if (!request.delivery_ids.empty()) {
    MLC_ASSIGN_OR_RETURN(
        Stmt find,
        db->Prepare("SELECT seq, delivery_id, kind FROM deliveries WHERE delivery_id = ?1"));
    std::set<std::string> seen;
    for (const std::string& id : request.delivery_ids) {
      if (!seen.insert(id).second) continue;
      find.BindText(1, id);
      MLC_ASSIGN_OR_RETURN(bool row, find.Step());
      if (row) {
        matches.push_back(
            Match{find.ColumnInt(0), find.ColumnText(1), find.ColumnText(2) == "handshake"});
      } else {
        result->not_found.push_back(id);
      }
      find.Reset();
    }
    std::sort(matches.begin(), matches.end(),
              [](const Match& a, const Match& b) { return a.seq < b.seq; });
  } else {
    const int limit = request.limit == 0 ? ReplayRequest::kDefaultLimit : request.limit;
    const Where where = BuildWhere(request.filter);
    MLC_ASSIGN_OR_RETURN(Stmt st,
                         db->Prepare(absl::StrCat("SELECT seq, delivery_id, kind FROM deliveries",
                                                  where.Sql(), " ORDER BY seq LIMIT ?")));
    st.BindInt(where.Bind(st), int64_t{limit} + 1);
    while (true) {
      MLC_ASSIGN_OR_RETURN(bool row, st.Step());
      if (!row) break;
      if (static_cast<int>(matches.size()) == limit) {
        result->truncated = true;
        break;
      }
      matches.push_back(Match{st.ColumnInt(0), st.ColumnText(1), st.ColumnText(2) == "handshake"});
    }
  }
  result->matched = static_cast<int64_t>(matches.size());

  std::optional<Stmt> update;
  if (!request.dry_run) {
    MLC_ASSIGN_OR_RETURN(
        Stmt u, db->Prepare("UPDATE deliveries SET status = 'pending', available_at_us = ?2, "
                            "attempts = 0, finished_at_us = NULL, replays = replays + 1, "
                            "replayed_at_us = ?2 WHERE seq = ?1"));
    update.emplace(std::move(u));
  }
  std::vector<Attempt> attempts;
  for (const Match& m : matches) {
    if (result->delivery_ids.size() < ReplayResult::kMaxIdsReported) {
      result->delivery_ids.push_back(m.id);
    }
    if (m.handshake) {
      if (result->skipped.size() < ReplayResult::kMaxIdsReported) {
        result->skipped.push_back(absl::StrCat(m.id, ": ", kHandshakeSkipReason));
      }
      continue;
    }
    if (!update.has_value()) continue;  // dry run
    update->BindInt(1, m.seq);
    update->BindInt(2, Micros(now));
    MLC_RETURN_IF_ERROR(update->Run());
    Attempt a;
    a.delivery_id = m.id;
    a.stage = "replay";
    a.outcome = "ok";
    a.duration = absl::ZeroDuration();
    a.at = now;
    attempts.push_back(std::move(a));
    ++result->replayed;
  }
  if (!attempts.empty()) MLC_RETURN_IF_ERROR(InsertAttempts(attempts));
  return absl::OkStatus();
}

absl::StatusOr<ReplayResult> Journal::Replay(const ReplayRequest& request) {
  if (request.delivery_ids.empty() && request.filter.empty()) {
    return absl::InvalidArgumentError(
        "replay needs delivery_ids or a filter with at least one field set (for example "
        "statuses: [dead] and a connection_id); replaying everything is not allowed");
  }
  if (request.delivery_ids.size() > ReplayRequest::kMaxIds) {
    return absl::InvalidArgumentError(absl::StrCat("delivery_ids: ", request.delivery_ids.size(),
                                                   " ids; at most ", ReplayRequest::kMaxIds,
                                                   " per call"));
  }
  if (request.limit < 0 || request.limit > ReplayRequest::kMaxLimit) {
    return absl::InvalidArgumentError(absl::StrCat("limit ", request.limit, ": use 1..",
                                                   ReplayRequest::kMaxLimit, " (0 for the default ",
                                                   ReplayRequest::kDefaultLimit, ")"));
  }
  ReplayResult result;
  if (request.dry_run) {
    // Changes nothing, so it need not wait for (or hold up) the committer.
    absl::MutexLock lock(&read_mu_);
    MLC_RETURN_IF_ERROR(InReadTransaction(read_db_.get(), [&] {
      return ApplyReplay(read_db_.get(), request, clock_->Now(), &result);
    }));
    return result;
  }
  MLC_RETURN_IF_ERROR(RunSync([&](Done done) {
    Op op;
    op.apply = [this, &request, &result] {
      return ApplyReplay(write_db_.get(), request, clock_->Now(), &result);
    };
    op.done = std::move(done);
    Enqueue(std::move(op));
  }));
  return result;
}

absl::StatusOr<int64_t> Journal::Compact(absl::Time cutoff, int max_rows_per_txn,
                                         const std::function<bool()>& stop) {
  if (max_rows_per_txn <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_rows_per_txn ", max_rows_per_txn, ": must be positive"));
  }
  int64_t total = 0;
  while (stop == nullptr || !stop()) {
    int64_t removed = 0;
    absl::Status s = RunSync([&](Done done) {
      Op op;
      op.apply = [this, cutoff, max_rows_per_txn, &removed]() -> absl::Status {
        removed = 0;
        std::vector<std::pair<int64_t, std::string>> victims;
        victims.reserve(static_cast<size_t>(max_rows_per_txn));
        Stmt& select = stmts_->compact_select;
        select.BindInt(1, Micros(cutoff));
        select.BindInt(2, max_rows_per_txn);
        while (true) {
          absl::StatusOr<bool> row = select.Step();
          if (!row.ok() || !*row) {
            select.Reset();
            if (!row.ok()) return row.status();
            break;
          }
          victims.emplace_back(select.ColumnInt(0), select.ColumnText(1));
        }
        for (const auto& [seq, id] : victims) {
          stmts_->delete_attempts.BindText(1, id);
          MLC_RETURN_IF_ERROR(stmts_->delete_attempts.Run());
          stmts_->delete_delivery.BindInt(1, seq);
          MLC_RETURN_IF_ERROR(stmts_->delete_delivery.Run());
        }
        removed = static_cast<int64_t>(victims.size());
        return absl::OkStatus();
      };
      op.done = std::move(done);
      Enqueue(std::move(op));
    });
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("compaction stopped after removing ", total,
                                                 " deliveries: ", s.message()));
    }
    total += removed;
    if (removed < max_rows_per_txn) break;
  }
  return total;
}

absl::StatusOr<JournalStats> Journal::Stats(const std::string& connection_id) {
  const int64_t hour_ago = Micros(clock_->Now() - absl::Hours(1));
  const bool one = !connection_id.empty();
  std::map<std::string, ConnectionStats> by_id;
  auto entry = [&by_id](const std::string& id) -> ConnectionStats& {
    ConnectionStats& c = by_id[id];
    c.connection_id = id;
    return c;
  };
  absl::MutexLock lock(&read_mu_);
  Db* db = read_db_.get();
  MLC_RETURN_IF_ERROR(InReadTransaction(db, [&]() -> absl::Status {
    // Counts per status, with what each status adds: retrying and the oldest
    // received_at for pending, the newest finished_at for written.
    MLC_ASSIGN_OR_RETURN(
        Stmt counts,
        db->Prepare(absl::StrCat("SELECT connection_id, status, COUNT(*), SUM(attempts > 0), "
                                 "MIN(received_at_us), MAX(finished_at_us) FROM deliveries",
                                 one ? " WHERE connection_id = ?1" : "",
                                 " GROUP BY connection_id, status")));
    if (one) counts.BindText(1, connection_id);
    while (true) {
      MLC_ASSIGN_OR_RETURN(bool row, counts.Step());
      if (!row) break;
      ConnectionStats& c = entry(counts.ColumnText(0));
      const std::optional<DeliveryStatus> status = ParseDeliveryStatus(counts.ColumnText(1));
      const int64_t n = counts.ColumnInt(2);
      if (!status.has_value()) continue;
      switch (*status) {
        case DeliveryStatus::kPending:
          c.pending = n;
          c.retrying = counts.ColumnInt(3);
          c.oldest_pending_received_at = absl::FromUnixMicros(counts.ColumnInt(4));
          break;
        case DeliveryStatus::kWritten:
          c.written = n;
          if (!counts.ColumnIsNull(5))
            c.last_written_at = absl::FromUnixMicros(counts.ColumnInt(5));
          break;
        case DeliveryStatus::kDead:
          c.dead = n;
          break;
        case DeliveryStatus::kHandshake:
          c.handshakes = n;
          break;
      }
    }
    const std::string and_one = one ? " AND connection_id = ?2" : "";
    MLC_ASSIGN_OR_RETURN(Stmt received,
                         db->Prepare(absl::StrCat("SELECT connection_id, COUNT(*) FROM deliveries "
                                                  "WHERE received_at_us >= ?1",
                                                  and_one, " GROUP BY connection_id")));
    MLC_ASSIGN_OR_RETURN(
        Stmt written, db->Prepare(absl::StrCat("SELECT connection_id, COUNT(*) FROM deliveries "
                                               "WHERE status = 'written' AND finished_at_us >= ?1",
                                               and_one, " GROUP BY connection_id")));
    for (auto [st, field] : {std::pair(&received, &ConnectionStats::received_last_hour),
                             std::pair(&written, &ConnectionStats::written_last_hour)}) {
      st->BindInt(1, hour_ago);
      if (one) st->BindText(2, connection_id);
      while (true) {
        MLC_ASSIGN_OR_RETURN(bool row, st->Step());
        if (!row) break;
        entry(st->ColumnText(0)).*field = st->ColumnInt(1);
      }
    }
    MLC_ASSIGN_OR_RETURN(Stmt dead,
                         db->Prepare(absl::StrCat(
                             "SELECT connection_id, last_error, COUNT(*), MAX(finished_at_us) "
                             "FROM deliveries WHERE status = 'dead'",
                             one ? " AND connection_id = ?1" : "",
                             " GROUP BY connection_id, last_error "
                             "ORDER BY connection_id, COUNT(*) DESC, MAX(finished_at_us) DESC")));
    if (one) dead.BindText(1, connection_id);
    while (true) {
      MLC_ASSIGN_OR_RETURN(bool row, dead.Step());
      if (!row) break;
      ConnectionStats& c = entry(dead.ColumnText(0));
      if (c.dead_letters.size() >= JournalStats::kMaxDeadLetterGroups) continue;
      DeadLetterGroup g;
      g.reason = dead.ColumnText(1);
      g.count = dead.ColumnInt(2);
      g.latest = absl::FromUnixMicros(dead.ColumnInt(3));
      c.dead_letters.push_back(std::move(g));
    }
    return absl::OkStatus();
  }));
  JournalStats out;
  out.connections.reserve(by_id.size());
  for (auto& [id, c] : by_id) out.connections.push_back(std::move(c));
  out.journal_bytes = FileBytes();
  return out;
}

int64_t Journal::FileBytes() const {
  int64_t total = 0;
  for (const std::string& file : {path_, path_ + "-wal"}) {
    std::error_code ec;
    const uintmax_t n = std::filesystem::file_size(file, ec);
    if (!ec) total += static_cast<int64_t>(n);
  }
  return total;
}

int64_t Journal::commits() const {
  absl::MutexLock lock(&mu_);
  return commits_;
}

}  // namespace mlc::writer
