// Tests of the pipeline (DESIGN.md §1 steps 5-6, §4): journaled deliveries become
// freshbooks_events rows, every outcome is visible in the journal's audit trail,
// transient sink failures retry with capped backoff until the rows are written
// exactly once, permanent ones (or ones past retry.max_age_hours) become dead
// letters, batches flush on size or age, and a restart picks up whatever was
// journaled but not yet written.
//
// The journal is real (a file in a temp dir); the sink is a fake with fault knobs.
#include "writer/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_deliveries.h"
#include "tests/support/test_util.h"
#include "writer/freshbooks_entities.h"
#include "writer/hydrator.h"
#include "writer/journal.h"
#include "writer/sink.h"
#include "writer/sqlite_db.h"
#include "writer/sqlite_sink.h"
#include "writer/table_spec.h"

namespace mlc::writer {
namespace {

using ::mlc::testing::TestDelivery;
using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Le;
using ::testing::SizeIs;

// A Sink that records what it is asked to write and can be told to fail or hold.
class FakeSink final : public Sink {
 public:
  std::string Name() const override { return "fake"; }
  absl::Status Start() override { return absl::OkStatus(); }
  absl::Status EnsureTable(const TableSpec& /*table*/) override { return absl::OkStatus(); }

  absl::Status Upsert(const TableSpec& table, const std::vector<Row>& rows) override {
    absl::MutexLock lock(&mu_);
    ++calls_;
    if (fail_next_ > 0) {
      --fail_next_;
      ++failed_calls_;
      return absl::UnavailableError("warehouse is starting");
    }
    if (!permanent_error_.empty()) {
      ++failed_calls_;
      return absl::FailedPreconditionError(permanent_error_);
    }
    if (auto it = table_errors_.find(table.name); it != table_errors_.end()) {
      ++failed_calls_;
      return absl::FailedPreconditionError(it->second);
    }
    ++in_flight_;
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    --in_flight_;
    tables_.push_back(table.name);
    batch_sizes_.push_back(static_cast<int>(rows.size()));
    for (const Row& row : rows) {
      rows_.push_back(row);
      if (!row.empty() && row[0].has_value()) ++writes_[*row[0]];
    }
    return absl::OkStatus();
  }

  // Knobs.
  void FailNext(int n) {
    absl::MutexLock lock(&mu_);
    fail_next_ = n;
  }
  void FailPermanently(std::string message) {
    absl::MutexLock lock(&mu_);
    permanent_error_ = std::move(message);
  }
  void FailTable(const std::string& table, std::string message) {
    absl::MutexLock lock(&mu_);
    table_errors_[table] = std::move(message);
  }
  // While held, successful writes block (a slow warehouse) until Release().
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    held_ = false;
  }

  // Observations.
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int failed_calls() const {
    absl::MutexLock lock(&mu_);
    return failed_calls_;
  }
  int in_flight() const {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }
  std::vector<int> batch_sizes() const {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }
  std::vector<std::string> tables() const {
    absl::MutexLock lock(&mu_);
    return tables_;
  }
  std::vector<Row> rows() const {
    absl::MutexLock lock(&mu_);
    return rows_;
  }
  // delivery_id -> number of successful writes of its row.
  std::map<std::string, int> writes() const {
    absl::MutexLock lock(&mu_);
    return writes_;
  }

 private:
  mutable absl::Mutex mu_;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  std::string permanent_error_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> table_errors_ ABSL_GUARDED_BY(mu_);
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  int failed_calls_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> tables_ ABSL_GUARDED_BY(mu_);
  std::vector<Row> rows_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> writes_ ABSL_GUARDED_BY(mu_);
};

// A Hydrator whose result per delivery id is scripted; unscripted ids are OK
// with a small JSON object.
class ScriptedHydrator final : public Hydrator {
 public:
  void FailFor(const std::string& id, absl::Status status) { errors_[id] = std::move(status); }
  void RowsFor(const std::string& id, std::vector<MappedRow> rows) { rows_[id] = std::move(rows); }

  std::vector<Hydrated> Hydrate(const std::vector<Delivery>& batch) override {
    std::vector<Hydrated> out(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      Hydrated& h = out[i];
      h.attempt.delivery_id = batch[i].delivery_id;
      h.attempt.stage = "hydrate";
      h.attempt.http_status = 200;
      auto it = errors_.find(batch[i].delivery_id);
      if (it != errors_.end()) {
        h.status = it->second;
        h.attempt.outcome = IsTransient(it->second) ? "retry" : "dead";
        h.attempt.http_status = IsTransient(it->second) ? 503 : 404;
        h.attempt.error = std::string(it->second.message());
      } else {
        h.attempt.outcome = "ok";
        h.data = absl::StrCat(R"({"id":")", batch[i].object_id, R"("})");
        if (auto r = rows_.find(batch[i].delivery_id); r != rows_.end()) h.rows = r->second;
      }
    }
    return out;
  }

 private:
  std::map<std::string, absl::Status> errors_;
  std::map<std::string, std::vector<MappedRow>> rows_;
};

std::vector<std::string> Ids(const std::vector<Delivery>& ds) {
  std::vector<std::string> out;
  for (const Delivery& d : ds) out.push_back(d.delivery_id);
  return out;
}

class PipelineTest : public ::testing::Test {
 protected:
  void OpenJournal(Clock* clock) {
    pipeline_.reset();
    journal_.reset();
    auto j = Journal::Open(dir_.File("journal.db"), clock);
    ASSERT_TRUE(j.ok()) << j.status();
    journal_ = std::move(*j);
  }

  void MakePipeline(Clock* clock, BatchConfig batch, RetryConfig retry,
                    Hydrator* hydrator = nullptr) {
    pipeline_ = std::make_unique<Pipeline>(journal_.get(), &sink_,
                                           hydrator != nullptr ? hydrator : &null_hydrator_, clock,
                                           batch, retry);
  }

  // Appends `n` deliveries "d-0".."d-<n-1>" and tells the pipeline (if any), as
  // the ingest service does once each is durable.
  void AppendN(int n, absl::Time received_at, int first = 0) {
    for (int i = first; i < first + n; ++i) {
      ASSERT_TRUE(journal_->AppendSync(TestDelivery(absl::StrCat("d-", i), received_at)).ok());
      if (pipeline_ != nullptr) pipeline_->Notify(1);
    }
  }

  Delivery MustGet(const std::string& id) {
    auto d = journal_->Get(id);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok() || !d->has_value()) {
      ADD_FAILURE() << "delivery " << id << " not found";
      return Delivery();
    }
    return **d;
  }

  std::vector<Attempt> MustAttempts(const std::string& id) {
    auto a = journal_->Attempts(id);
    EXPECT_TRUE(a.ok()) << a.status();
    return a.ok() ? *a : std::vector<Attempt>();
  }

  int64_t Count(DeliveryStatus status) {
    auto counts = journal_->CountByStatus();
    if (!counts.ok()) return -1;
    for (const auto& [s, n] : *counts) {
      if (s == status) return n;
    }
    return 0;
  }

  std::vector<Delivery> Due(absl::Time now) {
    auto due = journal_->FetchDue(now, 1000);
    EXPECT_TRUE(due.ok()) << due.status();
    return due.ok() ? *due : std::vector<Delivery>();
  }

  testing::TempDir dir_;
  FakeClock clock_;
  FakeSink sink_;
  NullHydrator null_hydrator_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Pipeline> pipeline_;  // destroyed first: it uses all of the above
};

RetryConfig Retry(int64_t initial_ms, int64_t max_ms, int64_t max_age_hours = 72) {
  RetryConfig r;
  r.initial_ms = initial_ms;
  r.max_ms = max_ms;
  r.max_age_hours = max_age_hours;
  return r;
}

BatchConfig Batch(int max_rows, int max_delay_ms) {
  BatchConfig b;
  b.max_rows = max_rows;
  b.max_delay_ms = max_delay_ms;
  return b;
}

// ---------------------------------------------------------------------------
// ProcessBatch, one batch at a time, on a fake clock.

TEST_F(PipelineTest, ProcessBatchWritesRowsAndMarksThemWritten) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000));
  const absl::Time received = clock_.Now() - absl::Seconds(2);
  AppendN(3, received);
  clock_.Advance(absl::Seconds(1));

  const std::vector<Delivery> due = Due(clock_.Now());
  ASSERT_THAT(due, SizeIs(3));
  EXPECT_EQ(pipeline_->ProcessBatch(due), 3);

  EXPECT_THAT(sink_.tables(), ElementsAre("freshbooks_events"));
  EXPECT_THAT(sink_.batch_sizes(), ElementsAre(3));
  const std::vector<Row> rows = sink_.rows();
  ASSERT_THAT(rows, SizeIs(3));
  const Row& r = rows[1];
  ASSERT_EQ(r.size(), FreshBooksEventsTable().columns.size());
  EXPECT_EQ(r[0], std::optional<std::string>("d-1"));
  EXPECT_EQ(r[1], std::optional<std::string>("acme"));
  EXPECT_EQ(r[2], std::optional<std::string>("invoice.update"));
  EXPECT_EQ(r[4], std::optional<std::string>("obj-d-1"));
  EXPECT_EQ(r[9], std::optional<std::string>(FormatTimestamp(received)));
  EXPECT_EQ(r[10], std::optional<std::string>(FormatTimestamp(clock_.Now())));
  EXPECT_EQ(r[11], std::nullopt) << "NullHydrator: data not fetched";

  for (const char* id : {"d-0", "d-1", "d-2"}) {
    SCOPED_TRACE(id);
    const Delivery d = MustGet(id);
    EXPECT_EQ(d.status, DeliveryStatus::kWritten);
    EXPECT_EQ(d.attempts, 0);
    const std::vector<Attempt> audit = MustAttempts(id);
    ASSERT_THAT(audit, SizeIs(2));
    EXPECT_EQ(audit[0].stage, "journal");
    EXPECT_EQ(audit[1].stage, "write");
    EXPECT_EQ(audit[1].outcome, "ok");
    EXPECT_EQ(audit[1].error, "");
    EXPECT_EQ(audit[1].at, clock_.Now());
  }
  EXPECT_THAT(Due(clock_.Now() + absl::Hours(1)), IsEmpty());
  EXPECT_EQ(Count(DeliveryStatus::kWritten), 3);
}

TEST_F(PipelineTest, ProcessBatchOfNothingDoesNothing) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000));
  EXPECT_EQ(pipeline_->ProcessBatch({}), 0);
  EXPECT_EQ(sink_.calls(), 0);
}

TEST_F(PipelineTest, TransientSinkFailureSchedulesRetriesWithinTheBackoffCap) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(100, 1000), Retry(/*initial_ms=*/2000, /*max_ms=*/5000));
  AppendN(4, clock_.Now());
  sink_.FailNext(1);

  const absl::Time t1 = clock_.Now();
  EXPECT_EQ(pipeline_->ProcessBatch(Due(t1)), 0);
  EXPECT_EQ(sink_.failed_calls(), 1);
  EXPECT_THAT(sink_.rows(), IsEmpty());
  bool any_in_future = false;
  for (int i = 0; i < 4; ++i) {
    const std::string id = absl::StrCat("d-", i);
    SCOPED_TRACE(id);
    const Delivery d = MustGet(id);
    EXPECT_EQ(d.status, DeliveryStatus::kPending);
    EXPECT_EQ(d.attempts, 1);
    EXPECT_EQ(d.last_error, "warehouse is starting");
    // Full jitter over [0, initial] for the first retry.
    EXPECT_THAT(d.available_at, Ge(t1));
    EXPECT_THAT(d.available_at, Le(t1 + absl::Seconds(2)));
    any_in_future |= d.available_at > t1;
    const std::vector<Attempt> audit = MustAttempts(id);
    ASSERT_THAT(audit, SizeIs(2));
    EXPECT_EQ(audit[1].stage, "write");
    EXPECT_EQ(audit[1].outcome, "retry");
    EXPECT_EQ(audit[1].error, "warehouse is starting");
    EXPECT_EQ(audit[1].at, t1);
  }
  EXPECT_TRUE(any_in_future) << "retries were not deferred";

  // The second failure doubles the cap; the cap never exceeds retry.max_ms.
  clock_.Advance(absl::Seconds(2));
  const absl::Time t2 = clock_.Now();
  std::vector<Delivery> due = Due(t2);
  ASSERT_THAT(Ids(due), ElementsAre("d-0", "d-1", "d-2", "d-3"));
  sink_.FailNext(1);
  EXPECT_EQ(pipeline_->ProcessBatch(due), 0);
  for (const Delivery& d : Due(t2 + absl::Hours(1))) {
    EXPECT_EQ(d.attempts, 2);
    EXPECT_THAT(d.available_at, Ge(t2));
    EXPECT_THAT(d.available_at, Le(t2 + absl::Seconds(4)));
  }
  for (int round = 0; round < 3; ++round) {
    clock_.Advance(absl::Seconds(5));
    const absl::Time t = clock_.Now();
    due = Due(t);
    ASSERT_THAT(due, SizeIs(4));
    sink_.FailNext(1);
    EXPECT_EQ(pipeline_->ProcessBatch(due), 0);
    for (const Delivery& d : Due(t + absl::Hours(1))) {
      EXPECT_THAT(d.available_at, Le(t + absl::Seconds(5))) << "cap is retry.max_ms";
    }
  }

  // Once the sink is back, the rows are written and the deliveries finished.
  clock_.Advance(absl::Seconds(5));
  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 4);
  EXPECT_EQ(Count(DeliveryStatus::kWritten), 4);
  EXPECT_EQ(MustGet("d-0").attempts, 5);
  EXPECT_EQ(MustAttempts("d-0").back().outcome, "ok");
}

TEST_F(PipelineTest, PermanentSinkFailureMakesDeliveriesDead) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000));
  AppendN(2, clock_.Now());
  sink_.FailPermanently("column amount: cannot cast STRING to DECIMAL(18,2)");

  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 0);
  for (const char* id : {"d-0", "d-1"}) {
    SCOPED_TRACE(id);
    const Delivery d = MustGet(id);
    EXPECT_EQ(d.status, DeliveryStatus::kDead);
    EXPECT_EQ(d.last_error, "column amount: cannot cast STRING to DECIMAL(18,2)");
    const std::vector<Attempt> audit = MustAttempts(id);
    ASSERT_THAT(audit, SizeIs(2));
    EXPECT_EQ(audit[1].stage, "write");
    EXPECT_EQ(audit[1].outcome, "dead");
    EXPECT_EQ(audit[1].error, "column amount: cannot cast STRING to DECIMAL(18,2)");
  }
  EXPECT_EQ(Count(DeliveryStatus::kDead), 2);
  EXPECT_THAT(Due(clock_.Now() + absl::Hours(100)), IsEmpty());
  auto next = journal_->NextAvailable();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->has_value());
}

TEST_F(PipelineTest, TransientFailurePastMaxAgeMakesDeliveriesDead) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000, /*max_age_hours=*/72));
  const absl::Time now = clock_.Now();
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("old", now - absl::Hours(73))).ok());
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("young", now - absl::Hours(71))).ok());
  sink_.FailNext(1);

  EXPECT_EQ(pipeline_->ProcessBatch(Due(now)), 0);
  const Delivery old = MustGet("old");
  EXPECT_EQ(old.status, DeliveryStatus::kDead);
  EXPECT_THAT(old.last_error, HasSubstr("warehouse is starting"));
  EXPECT_THAT(old.last_error, HasSubstr("72h"));
  EXPECT_EQ(MustAttempts("old").back().outcome, "dead");

  const Delivery young = MustGet("young");
  EXPECT_EQ(young.status, DeliveryStatus::kPending);
  EXPECT_EQ(young.attempts, 1);
  EXPECT_EQ(MustAttempts("young").back().outcome, "retry");
}

TEST_F(PipelineTest, AReplayedOldDeliveryGetsAFreshRetryBudget) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000, /*max_age_hours=*/72));
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("old", clock_.Now() - absl::Hours(100))).ok());
  sink_.FailNext(1);
  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 0);
  ASSERT_EQ(MustGet("old").status, DeliveryStatus::kDead);

  // The operator replays it: the budget now runs from the replay, not from its
  // arrival 100 hours ago, so a transient failure is retried again.
  ReplayRequest replay;
  replay.delivery_ids = {"old"};
  ASSERT_TRUE(journal_->Replay(replay).ok());
  clock_.Advance(absl::Hours(71));
  sink_.FailNext(1);
  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 0);
  Delivery d = MustGet("old");
  EXPECT_EQ(d.status, DeliveryStatus::kPending);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(MustAttempts("old").back().outcome, "retry");

  // ...until that budget is spent too.
  clock_.Advance(absl::Hours(2));
  sink_.FailNext(1);
  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 0);
  d = MustGet("old");
  EXPECT_EQ(d.status, DeliveryStatus::kDead);
  EXPECT_THAT(d.last_error, HasSubstr("72h"));
}

TEST_F(PipelineTest, AReplayedDeadLetterIsWrittenByTheRunningPipeline) {
  OpenJournal(RealClock::Get());
  MakePipeline(RealClock::Get(), Batch(1, 60000), Retry(1000, 60000));
  sink_.FailPermanently("column amount: type conflict");
  pipeline_->Start();
  AppendN(1, absl::Now());
  ASSERT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kDead) == 1; }));

  sink_.FailPermanently("");
  ReplayRequest replay;
  replay.filter.statuses = {DeliveryStatus::kDead};
  auto r = journal_->Replay(replay);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->replayed, 1);
  pipeline_->Notify(static_cast<int>(r->replayed));
  ASSERT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kWritten) == 1; },
                               std::chrono::seconds(5)));
  EXPECT_EQ(sink_.writes()["d-0"], 1);
  const std::vector<Attempt> audit = MustAttempts("d-0");
  std::vector<std::string> stages;
  for (const Attempt& a : audit) stages.push_back(a.stage + ":" + a.outcome);
  EXPECT_THAT(stages, ElementsAre("journal:ok", "write:dead", "replay:ok", "write:ok"));
}

TEST_F(PipelineTest, HydrationFailuresOnlyAffectTheirDelivery) {
  OpenJournal(&clock_);
  ScriptedHydrator hydrator;
  hydrator.FailFor("d-1", absl::UnavailableError("freshbooks: 503"));
  hydrator.FailFor("d-2", absl::NotFoundError("freshbooks: invoice 2 not found"));
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000), &hydrator);
  AppendN(4, clock_.Now());

  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 2);
  const std::vector<Row> rows = sink_.rows();
  ASSERT_THAT(rows, SizeIs(2));
  EXPECT_EQ(rows[0][0], std::optional<std::string>("d-0"));
  EXPECT_EQ(rows[0][11], std::optional<std::string>(R"({"id":"obj-d-0"})"));
  EXPECT_EQ(rows[1][0], std::optional<std::string>("d-3"));

  EXPECT_EQ(MustGet("d-0").status, DeliveryStatus::kWritten);
  EXPECT_EQ(MustGet("d-3").status, DeliveryStatus::kWritten);
  const Delivery retried = MustGet("d-1");
  EXPECT_EQ(retried.status, DeliveryStatus::kPending);
  EXPECT_EQ(retried.attempts, 1);
  EXPECT_EQ(retried.last_error, "freshbooks: 503");
  const Delivery dead = MustGet("d-2");
  EXPECT_EQ(dead.status, DeliveryStatus::kDead);
  EXPECT_EQ(dead.last_error, "freshbooks: invoice 2 not found");

  // The audit trail shows the hydrate step of every delivery and what came of it.
  std::vector<std::string> d0;
  for (const Attempt& a : MustAttempts("d-0")) d0.push_back(a.stage + ":" + a.outcome);
  EXPECT_THAT(d0, ElementsAre("journal:ok", "hydrate:ok", "write:ok"));
  std::vector<std::string> d1;
  for (const Attempt& a : MustAttempts("d-1")) d1.push_back(a.stage + ":" + a.outcome);
  // The hydrator's own attempt is recorded along with the pipeline's verdict.
  EXPECT_THAT(d1, ::testing::Contains("hydrate:retry"));
  EXPECT_THAT(d1, ::testing::Not(::testing::Contains("write:ok")));
}

TEST_F(PipelineTest, AFailingEntityTableFailsOnlyTheDeliveriesWithRowsInIt) {
  OpenJournal(&clock_);
  TableSpec good;
  good.name = "entity_good";
  TableSpec bad;
  bad.name = "entity_bad";
  sink_.FailTable("entity_bad", "column amount is STRING, the mapping says DECIMAL");
  ScriptedHydrator hydrator;
  hydrator.RowsFor("d-0", {{&good, {std::string("g0")}}});
  hydrator.RowsFor("d-1", {{&good, {std::string("g1")}}, {&bad, {std::string("b1")}}});
  // d-2 has no entity rows; d-3's connection waits for authorization.
  hydrator.FailFor("d-3", absl::UnauthenticatedError("connection \"acme\" is not authorized yet"));
  MakePipeline(&clock_, Batch(100, 1000), Retry(1000, 60000, 1), &hydrator);
  AppendN(4, clock_.Now() - absl::Hours(2));  // older than max_age_hours

  EXPECT_EQ(pipeline_->ProcessBatch(Due(clock_.Now())), 2);
  EXPECT_EQ(MustGet("d-0").status, DeliveryStatus::kWritten);
  EXPECT_EQ(MustGet("d-2").status, DeliveryStatus::kWritten);
  const Delivery dead = MustGet("d-1");
  EXPECT_EQ(dead.status, DeliveryStatus::kDead);
  EXPECT_THAT(dead.last_error, HasSubstr("table entity_bad: column amount is STRING"));
  std::vector<std::string> d1;
  for (const Attempt& a : MustAttempts("d-1")) d1.push_back(a.stage + ":" + a.outcome);
  EXPECT_THAT(d1, ElementsAre("journal:ok", "hydrate:ok", "write:dead"));
  // Waiting for authorization is never a reason to give up, however old.
  const Delivery waiting = MustGet("d-3");
  EXPECT_EQ(waiting.status, DeliveryStatus::kPending);
  std::vector<std::string> d3;
  for (const Attempt& a : MustAttempts("d-3")) d3.push_back(a.stage + ":" + a.outcome);
  EXPECT_THAT(d3, ::testing::Contains("hydrate:wait"));
  // Only the written deliveries have events rows.
  std::vector<std::string> events;
  for (const Row& r : sink_.rows()) {
    if (r.size() > 1 && r[0].has_value()) events.push_back(*r[0]);
  }
  EXPECT_THAT(events, ::testing::UnorderedElementsAre("d-0", "d-2"));
}

TEST_F(PipelineTest, ReprocessingABatchLeavesOneRowPerDelivery) {
  // A crash between the sink write and MarkWritten: the batch is processed again
  // after restart, and the upsert makes that a no-op.
  OpenJournal(&clock_);
  SqliteSink lakehouse(dir_.File("lakehouse.db"));
  ASSERT_TRUE(lakehouse.Start().ok());
  Pipeline pipeline(journal_.get(), &lakehouse, &null_hydrator_, &clock_, Batch(100, 1000),
                    Retry(1000, 60000));
  AppendN(3, clock_.Now());
  const std::vector<Delivery> due = Due(clock_.Now());
  EXPECT_EQ(pipeline.ProcessBatch(due), 3);
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(pipeline.ProcessBatch(due), 3);
  EXPECT_EQ(Count(DeliveryStatus::kWritten), 3);

  auto db = Db::Open(dir_.File("lakehouse.db"), Durability::kNormal);
  ASSERT_TRUE(db.ok()) << db.status();
  auto st = (*db)->Prepare("SELECT COUNT(*), COUNT(DISTINCT processed_at) FROM freshbooks_events");
  ASSERT_TRUE(st.ok()) << st.status();
  auto row = st->Step();
  ASSERT_TRUE(row.ok() && *row);
  EXPECT_EQ(st->ColumnInt(0), 3);
  EXPECT_EQ(st->ColumnInt(1), 1) << "the first write is kept";
}

// ---------------------------------------------------------------------------
// The running pipeline, on the real clock.

TEST_F(PipelineTest, FlushesAFullBatchWithoutWaitingForMaxDelay) {
  OpenJournal(RealClock::Get());
  MakePipeline(RealClock::Get(), Batch(/*max_rows=*/8, /*max_delay_ms=*/10000), Retry(1000, 60000));
  pipeline_->Start();
  const auto start = std::chrono::steady_clock::now();
  AppendN(8, absl::Now());

  EXPECT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kWritten) == 8; },
                               std::chrono::milliseconds(1500)))
      << "a full batch waited for max_delay_ms";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_THAT(sink_.batch_sizes(), ElementsAre(8)) << "one full batch, not pieces";
}

TEST_F(PipelineTest, FlushesAPartialBatchAfterMaxDelay) {
  OpenJournal(RealClock::Get());
  MakePipeline(RealClock::Get(), Batch(/*max_rows=*/100, /*max_delay_ms=*/200), Retry(1000, 60000));
  pipeline_->Start();
  const auto start = std::chrono::steady_clock::now();
  // A burst of three (one commit, most likely), then nothing more.
  absl::BlockingCounter journaled(3);
  for (int i = 0; i < 3; ++i) {
    journal_->Append(TestDelivery(absl::StrCat("d-", i), absl::Now()), [&](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      journaled.DecrementCount();
    });
  }
  journaled.Wait();
  pipeline_->Notify(3);

  ASSERT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kWritten) == 3; },
                               std::chrono::seconds(3)))
      << "a partial batch was never flushed";
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(190)) << "flushed before max_delay_ms";
  EXPECT_LT(elapsed, std::chrono::milliseconds(1500));
  std::vector<int> sizes = sink_.batch_sizes();
  int total = 0;
  for (int n : sizes) total += n;
  EXPECT_EQ(total, 3);
}

TEST_F(PipelineTest, AfterTransientFailuresEverythingIsWrittenExactlyOnce) {
  OpenJournal(RealClock::Get());
  MakePipeline(RealClock::Get(), Batch(/*max_rows=*/4, /*max_delay_ms=*/20),
               Retry(/*initial_ms=*/10, /*max_ms=*/40));
  sink_.FailNext(3);
  pipeline_->Start();
  constexpr int kDeliveries = 10;
  AppendN(kDeliveries, absl::Now());

  ASSERT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kWritten) == kDeliveries; },
                               std::chrono::seconds(10)))
      << "written: " << Count(DeliveryStatus::kWritten);
  EXPECT_EQ(sink_.failed_calls(), 3);
  EXPECT_EQ(Count(DeliveryStatus::kDead), 0);
  EXPECT_EQ(Count(DeliveryStatus::kPending), 0);
  const std::map<std::string, int> writes = sink_.writes();
  EXPECT_EQ(writes.size(), static_cast<size_t>(kDeliveries));
  for (const auto& [id, n] : writes) EXPECT_EQ(n, 1) << id;

  // d-0 is in the first batch, so it saw the first failure; the audit trail says so.
  const Delivery d0 = MustGet("d-0");
  EXPECT_GE(d0.attempts, 1);
  std::vector<std::string> outcomes;
  for (const Attempt& a : MustAttempts("d-0")) outcomes.push_back(a.stage + ":" + a.outcome);
  ASSERT_GE(outcomes.size(), 3u);
  EXPECT_EQ(outcomes.front(), "journal:ok");
  EXPECT_EQ(outcomes[1], "write:retry");
  EXPECT_EQ(outcomes.back(), "write:ok");
}

TEST_F(PipelineTest, RestartWritesWhatWasJournaledBefore) {
  OpenJournal(RealClock::Get());
  MakePipeline(RealClock::Get(), Batch(100, 50), Retry(10, 40));
  AppendN(5, absl::Now());  // notified, but the pipeline never runs
  pipeline_.reset();
  journal_.reset();
  EXPECT_EQ(sink_.calls(), 0);

  OpenJournal(RealClock::Get());  // a new process on the same data dir
  EXPECT_EQ(Count(DeliveryStatus::kPending), 5);
  MakePipeline(RealClock::Get(), Batch(100, 50), Retry(10, 40));
  pipeline_->Start();

  ASSERT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kWritten) == 5; },
                               std::chrono::seconds(5)));
  const std::map<std::string, int> writes = sink_.writes();
  EXPECT_EQ(writes.size(), 5u);
  for (const auto& [id, n] : writes) EXPECT_EQ(n, 1) << id;

  // And it keeps going with new deliveries.
  AppendN(2, absl::Now(), /*first=*/5);
  ASSERT_TRUE(testing::WaitFor([&] { return Count(DeliveryStatus::kWritten) == 7; },
                               std::chrono::seconds(5)));
}

TEST_F(PipelineTest, StopFinishesTheBatchInFlight) {
  OpenJournal(RealClock::Get());
  MakePipeline(RealClock::Get(), Batch(100, 0), Retry(10, 40));
  sink_.Hold();
  pipeline_->Start();
  AppendN(2, absl::Now());
  ASSERT_TRUE(testing::WaitFor([&] { return sink_.in_flight() == 1; }));

  absl::Notification stopped;
  std::thread stopper([&] {
    pipeline_->Stop();
    stopped.Notify();
  });
  // Stop waits for the slow write instead of abandoning it mid-way.
  EXPECT_FALSE(stopped.WaitForNotificationWithTimeout(absl::Milliseconds(100)));
  sink_.Release();
  stopper.join();
  const int written = static_cast<int>(Count(DeliveryStatus::kWritten));
  EXPECT_GE(written, 1);
  EXPECT_EQ(written + Count(DeliveryStatus::kPending), 2);

  // Nothing runs after Stop.
  const int calls = sink_.calls();
  AppendN(1, absl::Now(), /*first=*/2);
  EXPECT_EQ(sink_.calls(), calls);
  EXPECT_EQ(Count(DeliveryStatus::kPending), 2 - written + 1);
}

TEST_F(PipelineTest, DestroyingAnUnstartedPipelineIsSafe) {
  OpenJournal(&clock_);
  MakePipeline(&clock_, Batch(10, 10), Retry(10, 40));
  pipeline_->Notify(5);
  pipeline_->Stop();
  pipeline_.reset();
  EXPECT_EQ(sink_.calls(), 0);
}

}  // namespace
}  // namespace mlc::writer
