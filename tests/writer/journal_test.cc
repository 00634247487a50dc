// Tests of the journal (DESIGN.md §1 step 3, §4): a delivery is acknowledged only
// once it is durably committed, concurrent appends share commits (group commit),
// the pipeline's queries see exactly the pending, due deliveries in arrival
// order, and everything - deliveries and the audit trail - survives a restart.
#include "writer/journal.h"

#include <sqlite3.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_deliveries.h"
#include "tests/support/test_util.h"

namespace mlc::writer {
namespace {

using ::mlc::testing::TestDelivery;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::vector<std::string> Ids(const std::vector<Delivery>& ds) {
  std::vector<std::string> out;
  out.reserve(ds.size());
  for (const Delivery& d : ds) out.push_back(d.delivery_id);
  return out;
}

// Reads one delivery's status through a connection of its own (not the journal's),
// i.e. what any other process would see on disk. nullopt if the row is absent.
std::optional<std::string> StatusOnDisk(const std::string& path, const std::string& id) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return std::nullopt;
  }
  sqlite3_busy_timeout(db, 5000);
  std::optional<std::string> out;
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT status FROM deliveries WHERE delivery_id = ?1", -1, &st,
                         nullptr) == SQLITE_OK) {
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

class JournalTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    journal_.reset();
    auto j = Journal::Open(path_, &clock_);
    ASSERT_TRUE(j.ok()) << j.status();
    journal_ = std::move(*j);
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

  std::vector<Delivery> MustFetchDue(int limit = 100) {
    auto due = journal_->FetchDue(clock_.Now(), limit);
    EXPECT_TRUE(due.ok()) << due.status();
    return due.ok() ? *due : std::vector<Delivery>();
  }

  testing::TempDir dir_;
  const std::string path_ = dir_.File("journal.db");
  FakeClock clock_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(JournalTest, AppendThenGetReturnsEveryField) {
  const absl::Time received = clock_.Now() - absl::Seconds(3);
  Delivery in = TestDelivery("d-1", received);
  in.kind = "handshake";
  in.status = DeliveryStatus::kHandshake;
  ASSERT_TRUE(journal_->AppendSync(in).ok());

  const Delivery out = MustGet("d-1");
  EXPECT_GT(out.seq, 0);
  EXPECT_EQ(out.delivery_id, "d-1");
  EXPECT_EQ(out.connection_id, "acme");
  EXPECT_EQ(out.kind, "handshake");
  EXPECT_EQ(out.event_type, "invoice.update");
  EXPECT_EQ(out.object_type, "invoice");
  EXPECT_EQ(out.object_id, "obj-d-1");
  EXPECT_EQ(out.account_id, "6BApk");
  EXPECT_EQ(out.business_id, "77");
  EXPECT_EQ(out.identity_id, "88");
  EXPECT_EQ(out.user_id, "99");
  EXPECT_EQ(out.received_at, received);
  EXPECT_EQ(out.journaled_at, clock_.Now());
  EXPECT_EQ(out.payload, in.payload);
  EXPECT_EQ(out.status, DeliveryStatus::kHandshake);
  EXPECT_EQ(out.attempts, 0);
  EXPECT_EQ(out.available_at, clock_.Now());  // InfinitePast means "at journal time"
  EXPECT_EQ(out.last_error, "");

  auto missing = journal_->Get("nope");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
}

TEST_F(JournalTest, AppendKeepsExplicitStateAndMicrosecondTimes) {
  Delivery in = TestDelivery("d-1", absl::FromUnixMicros(1767225600123456));
  in.attempts = 2;
  in.available_at = clock_.Now() + absl::Minutes(5);
  in.last_error = "earlier failure";
  ASSERT_TRUE(journal_->AppendSync(in).ok());

  const Delivery out = MustGet("d-1");
  EXPECT_EQ(out.received_at, absl::FromUnixMicros(1767225600123456));
  EXPECT_EQ(out.attempts, 2);
  EXPECT_EQ(out.available_at, clock_.Now() + absl::Minutes(5));
  EXPECT_EQ(out.last_error, "earlier failure");
}

TEST_F(JournalTest, AppendRecordsAJournalAttempt) {
  const absl::Time received = clock_.Now() - absl::Milliseconds(250);
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("d-1", received)).ok());

  auto attempts = journal_->Attempts("d-1");
  ASSERT_TRUE(attempts.ok()) << attempts.status();
  ASSERT_EQ(attempts->size(), 1u);
  const Attempt& a = (*attempts)[0];
  EXPECT_EQ(a.delivery_id, "d-1");
  EXPECT_EQ(a.stage, "journal");
  EXPECT_EQ(a.outcome, "ok");
  EXPECT_EQ(a.http_status, 0);
  EXPECT_EQ(a.error, "");
  EXPECT_EQ(a.at, clock_.Now());
  EXPECT_EQ(a.duration, absl::Milliseconds(250));  // received -> journaled
}

TEST_F(JournalTest, DoneFiresOnlyOnceTheRowIsCommitted) {
  // The callback itself checks what another connection sees: if `done` ran
  // before COMMIT, the row would not be visible there yet.
  constexpr int kAppends = 20;
  absl::Mutex mu;
  std::vector<std::pair<std::string, std::optional<std::string>>> seen;
  absl::BlockingCounter pending(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    const std::string id = absl::StrCat("d-", i);
    journal_->Append(TestDelivery(id, clock_.Now()), [&, id](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      std::optional<std::string> status = StatusOnDisk(path_, id);
      {
        absl::MutexLock lock(&mu);
        seen.emplace_back(id, std::move(status));
      }
      pending.DecrementCount();
    });
  }
  pending.Wait();
  absl::MutexLock lock(&mu);
  ASSERT_EQ(seen.size(), static_cast<size_t>(kAppends));
  for (const auto& [id, status] : seen) {
    EXPECT_EQ(status, std::optional<std::string>("pending")) << id;
  }

  // And a second Journal on the same file (another process after a crash) sees it.
  FakeClock other_clock;
  auto other = Journal::Open(path_, &other_clock);
  ASSERT_TRUE(other.ok()) << other.status();
  auto d = (*other)->Get("d-0");
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->has_value());
  EXPECT_EQ((*d)->status, DeliveryStatus::kPending);
}

TEST_F(JournalTest, ConcurrentAppendsShareCommits) {
  Counter commits;
  Histogram group_size({1, 2, 4, 8, 16, 32, 64, 128});
  JournalMetrics metrics;
  metrics.commits = &commits;
  metrics.group_size = &group_size;
  journal_.reset();
  auto j = Journal::Open(path_, RealClock::Get(), metrics);
  ASSERT_TRUE(j.ok()) << j.status();
  journal_ = std::move(*j);

  // Each thread behaves like a stream of Submit calls: append, wait, append again.
  constexpr int kThreads = 64;
  constexpr int kPerThread = 4;
  constexpr int kAppends = kThreads * kPerThread;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  absl::Notification go;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.WaitForNotification();
      for (int i = 0; i < kPerThread; ++i) {
        absl::Status s =
            journal_->AppendSync(TestDelivery(absl::StrCat("d-", t, "-", i), absl::Now()));
        (s.ok() ? ok : failed).fetch_add(1);
      }
    });
  }
  go.Notify();
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(ok.load(), kAppends);
  EXPECT_EQ(failed.load(), 0);
  const int64_t n = journal_->commits();
  EXPECT_GT(n, 0);
  EXPECT_LT(n, kAppends) << "every append paid for its own commit";
  EXPECT_LE(n, kAppends / 2) << "group commit barely grouped";
  EXPECT_EQ(commits.Value(), static_cast<double>(n));
  EXPECT_EQ(group_size.Count(), static_cast<uint64_t>(n));
  EXPECT_EQ(group_size.Sum(), static_cast<double>(kAppends));

  auto counts = journal_->CountByStatus();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_THAT(*counts, ElementsAre(Pair(DeliveryStatus::kPending, kAppends)));
}

TEST_F(JournalTest, DuplicateDeliveryFailsAloneAndKeepsTheFirst) {
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("dup", clock_.Now())).ok());

  // Queue a burst with one duplicate inside: it fails, its neighbours do not.
  constexpr int kAppends = 9;
  absl::Mutex mu;
  std::vector<std::pair<std::string, absl::Status>> results;
  absl::BlockingCounter pending(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    const std::string id = i == 4 ? "dup" : absl::StrCat("d-", i);
    Delivery d = TestDelivery(id, clock_.Now());
    if (id == "dup") d.object_id = "second-copy";
    journal_->Append(std::move(d), [&, id](absl::Status s) {
      absl::MutexLock lock(&mu);
      results.emplace_back(id, std::move(s));
      pending.DecrementCount();
    });
  }
  pending.Wait();
  absl::MutexLock lock(&mu);
  for (const auto& [id, s] : results) {
    if (id == "dup") {
      EXPECT_FALSE(s.ok());
    } else {
      EXPECT_TRUE(s.ok()) << id << ": " << s;
    }
  }
  EXPECT_EQ(MustGet("dup").object_id, "obj-dup");
  EXPECT_EQ(MustFetchDue().size(), static_cast<size_t>(kAppends));  // 8 new + the first dup
}

TEST_F(JournalTest, FetchDueReturnsPendingAvailableDeliveriesInSeqOrder) {
  const absl::Time now = clock_.Now();
  // Interleave what must and must not be returned; ids are not in seq order.
  std::vector<Delivery> in;
  in.push_back(TestDelivery("z-due", now));
  in.push_back(TestDelivery("later", now));
  in.back().available_at = now + absl::Seconds(30);
  in.push_back(TestDelivery("a-due", now));
  in.back().available_at = now - absl::Hours(1);
  in.push_back(TestDelivery("written", now));
  in.back().status = DeliveryStatus::kWritten;
  in.push_back(TestDelivery("m-due", now));
  in.back().available_at = now;  // exactly now counts as due
  in.push_back(TestDelivery("dead", now));
  in.back().status = DeliveryStatus::kDead;
  in.push_back(TestDelivery("handshake", now));
  in.back().status = DeliveryStatus::kHandshake;
  in.push_back(TestDelivery("b-due", now));
  for (Delivery& d : in) ASSERT_TRUE(journal_->AppendSync(std::move(d)).ok());

  const std::vector<Delivery> due = MustFetchDue();
  EXPECT_THAT(Ids(due), ElementsAre("z-due", "a-due", "m-due", "b-due"));
  for (size_t i = 1; i < due.size(); ++i) EXPECT_LT(due[i - 1].seq, due[i].seq);
  for (const Delivery& d : due) EXPECT_EQ(d.status, DeliveryStatus::kPending);

  EXPECT_THAT(Ids(MustFetchDue(2)), ElementsAre("z-due", "a-due"));
  EXPECT_THAT(Ids(MustFetchDue(1)), ElementsAre("z-due"));

  clock_.Advance(absl::Seconds(30));
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("z-due", "later", "a-due", "m-due", "b-due"));
}

TEST_F(JournalTest, FetchDueOnAnEmptyJournal) { EXPECT_THAT(MustFetchDue(), IsEmpty()); }

TEST_F(JournalTest, MarkWrittenSyncFinishesDeliveriesAndRecordsAttempts) {
  for (const char* id : {"d-1", "d-2", "d-3"}) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(id, clock_.Now())).ok());
  }
  clock_.Advance(absl::Seconds(2));
  std::vector<Attempt> attempts;
  for (const char* id : {"d-1", "d-3"}) {
    Attempt a;
    a.delivery_id = id;
    a.stage = "write";
    a.outcome = "ok";
    a.duration = absl::Milliseconds(12);
    a.at = clock_.Now();
    attempts.push_back(a);
  }
  ASSERT_TRUE(journal_->MarkWrittenSync({"d-1", "d-3"}, attempts).ok());

  EXPECT_EQ(MustGet("d-1").status, DeliveryStatus::kWritten);
  EXPECT_EQ(MustGet("d-2").status, DeliveryStatus::kPending);
  EXPECT_EQ(MustGet("d-3").status, DeliveryStatus::kWritten);
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-2"));

  auto audit = journal_->Attempts("d-3");
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 2u);
  EXPECT_EQ((*audit)[0].stage, "journal");
  EXPECT_EQ((*audit)[1].stage, "write");
  EXPECT_EQ((*audit)[1].outcome, "ok");
  EXPECT_EQ((*audit)[1].duration, absl::Milliseconds(12));
  EXPECT_EQ((*audit)[1].at, clock_.Now());
}

TEST_F(JournalTest, MarkRetrySyncDefersTheDelivery) {
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("d-1", clock_.Now())).ok());
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("d-2", clock_.Now())).ok());
  const absl::Time retry_at = clock_.Now() + absl::Seconds(10);
  Attempt a;
  a.delivery_id = "d-1";
  a.stage = "write";
  a.outcome = "retry";
  a.http_status = 503;
  a.error = "warehouse starting";
  a.at = clock_.Now();
  ASSERT_TRUE(journal_->MarkRetrySync({{"d-1", retry_at}}, "warehouse starting", {a}).ok());

  Delivery d = MustGet("d-1");
  EXPECT_EQ(d.status, DeliveryStatus::kPending);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.available_at, retry_at);
  EXPECT_EQ(d.last_error, "warehouse starting");

  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-2"));
  clock_.Advance(absl::Seconds(10) - absl::Microseconds(1));
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-2"));
  clock_.Advance(absl::Microseconds(1));
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-1", "d-2"));  // still in arrival order

  // A second failure counts again.
  ASSERT_TRUE(
      journal_->MarkRetrySync({{"d-1", clock_.Now() + absl::Seconds(20)}}, "again", {}).ok());
  d = MustGet("d-1");
  EXPECT_EQ(d.attempts, 2);
  EXPECT_EQ(d.last_error, "again");

  auto audit = journal_->Attempts("d-1");
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 2u);
  EXPECT_EQ((*audit)[1].outcome, "retry");
  EXPECT_EQ((*audit)[1].http_status, 503);
  EXPECT_EQ((*audit)[1].error, "warehouse starting");
}

TEST_F(JournalTest, MarkDeadSyncKeepsTheReasonAndStopsProcessing) {
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("d-1", clock_.Now())).ok());
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("d-2", clock_.Now())).ok());
  Attempt a;
  a.delivery_id = "d-1";
  a.stage = "write";
  a.outcome = "dead";
  a.error = "column amount: type conflict";
  a.at = clock_.Now();
  ASSERT_TRUE(journal_->MarkDeadSync({"d-1"}, "column amount: type conflict", {a}).ok());

  Delivery d = MustGet("d-1");
  EXPECT_EQ(d.status, DeliveryStatus::kDead);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.last_error, "column amount: type conflict");
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-2"));

  // A late retry for a dead delivery does not bring it back.
  ASSERT_TRUE(journal_->MarkRetrySync({{"d-1", clock_.Now()}}, "late", {}).ok());
  d = MustGet("d-1");
  EXPECT_EQ(d.status, DeliveryStatus::kDead);
  EXPECT_EQ(d.attempts, 1);
  EXPECT_EQ(d.last_error, "column amount: type conflict");

  auto audit = journal_->Attempts("d-1");
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 2u);
  EXPECT_EQ((*audit)[1].outcome, "dead");
  EXPECT_EQ((*audit)[1].error, "column amount: type conflict");
}

TEST_F(JournalTest, CountByStatus) {
  auto empty = journal_->CountByStatus();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_THAT(*empty, IsEmpty());

  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
  }
  Delivery hs = TestDelivery("hs", clock_.Now());
  hs.kind = "handshake";
  hs.status = DeliveryStatus::kHandshake;
  ASSERT_TRUE(journal_->AppendSync(hs).ok());
  ASSERT_TRUE(journal_->MarkWrittenSync({"d-0", "d-1", "d-2"}, {}).ok());
  ASSERT_TRUE(journal_->MarkDeadSync({"d-3"}, "bad", {}).ok());

  auto counts = journal_->CountByStatus();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_THAT(*counts, UnorderedElementsAre(
                           Pair(DeliveryStatus::kPending, 2), Pair(DeliveryStatus::kWritten, 3),
                           Pair(DeliveryStatus::kDead, 1), Pair(DeliveryStatus::kHandshake, 1)));
}

TEST_F(JournalTest, NextAvailableIsTheEarliestPendingTime) {
  auto none = journal_->NextAvailable();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  const absl::Time now = clock_.Now();
  Delivery early_but_written = TestDelivery("w", now);
  early_but_written.available_at = now - absl::Hours(2);
  early_but_written.status = DeliveryStatus::kWritten;
  ASSERT_TRUE(journal_->AppendSync(early_but_written).ok());
  none = journal_->NextAvailable();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value()) << "only pending deliveries count";

  Delivery later = TestDelivery("later", now);
  later.available_at = now + absl::Minutes(5);
  Delivery sooner = TestDelivery("sooner", now);
  sooner.available_at = now + absl::Minutes(1);
  ASSERT_TRUE(journal_->AppendSync(later).ok());
  ASSERT_TRUE(journal_->AppendSync(sooner).ok());
  auto next = journal_->NextAvailable();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, std::optional<absl::Time>(now + absl::Minutes(1)));

  ASSERT_TRUE(journal_->MarkWrittenSync({"sooner"}, {}).ok());
  next = journal_->NextAvailable();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, std::optional<absl::Time>(now + absl::Minutes(5)));
}

TEST_F(JournalTest, ReopenAfterRestartKeepsEverything) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
  }
  Attempt w;
  w.delivery_id = "d-0";
  w.stage = "write";
  w.outcome = "ok";
  w.at = clock_.Now();
  ASSERT_TRUE(journal_->MarkWrittenSync({"d-0"}, {w}).ok());
  ASSERT_TRUE(journal_->MarkDeadSync({"d-1"}, "permission denied", {}).ok());
  const absl::Time retry_at = clock_.Now() + absl::Minutes(3);
  ASSERT_TRUE(journal_->MarkRetrySync({{"d-2", retry_at}}, "throttled", {}).ok());
  const int64_t last_seq = MustGet("d-4").seq;

  Reopen();

  EXPECT_EQ(MustGet("d-0").status, DeliveryStatus::kWritten);
  EXPECT_EQ(MustGet("d-1").status, DeliveryStatus::kDead);
  EXPECT_EQ(MustGet("d-1").last_error, "permission denied");
  const Delivery d2 = MustGet("d-2");
  EXPECT_EQ(d2.status, DeliveryStatus::kPending);
  EXPECT_EQ(d2.attempts, 1);
  EXPECT_EQ(d2.available_at, retry_at);
  EXPECT_EQ(d2.last_error, "throttled");
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-3", "d-4"));
  auto audit = journal_->Attempts("d-0");
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->size(), 2u);
  EXPECT_EQ((*audit)[0].stage, "journal");
  EXPECT_EQ((*audit)[1].stage, "write");

  // New deliveries continue the arrival order.
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("d-5", clock_.Now())).ok());
  EXPECT_GT(MustGet("d-5").seq, last_seq);
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-3", "d-4", "d-5"));
}

TEST_F(JournalTest, DestructorCommitsEverythingAlreadyQueued) {
  constexpr int kAppends = 200;
  std::atomic<int> ok{0};
  std::atomic<int> callbacks{0};
  for (int i = 0; i < kAppends; ++i) {
    journal_->Append(TestDelivery(absl::StrCat("d-", i), clock_.Now()), [&](absl::Status s) {
      if (s.ok()) ok.fetch_add(1);
      callbacks.fetch_add(1);
    });
  }
  journal_.reset();  // returns only once the queue is drained
  EXPECT_EQ(callbacks.load(), kAppends);
  EXPECT_EQ(ok.load(), kAppends);

  Reopen();
  auto counts = journal_->CountByStatus();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_THAT(*counts, ElementsAre(Pair(DeliveryStatus::kPending, kAppends)));
}

// ---------------------------------------------------------------------------
// Operators' queries: List, Replay, Compact, Stats, and the v1 -> v2 migration.

// Runs SQL on the file through a connection of its own (set-up of old files).
void ExecOnDisk(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
            SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  EXPECT_EQ(rc, SQLITE_OK) << (err != nullptr ? err : "") << "\n" << sql;
  sqlite3_free(err);
  sqlite3_close(db);
}

// One integer from a query on the file (through its own connection).
int64_t IntOnDisk(const std::string& path, const std::string& sql) {
  std::vector<testing::SqlRow> rows = testing::QueryRows(path, sql);
  if (rows.empty() || rows[0].empty() || !rows[0][0].has_value()) return -1;
  return std::stoll(*rows[0][0]);
}

class JournalQueryTest : public JournalTest {
 protected:
  // Appends a delivery with the given shape; `status` other than pending is set
  // through the journal's own transitions (MarkWritten / MarkDead) as in life.
  void Add(const std::string& id, const std::string& connection, const std::string& event,
           const std::string& object_id, DeliveryStatus status, absl::Time received,
           const std::string& error = "") {
    Delivery d = TestDelivery(id, received);
    d.connection_id = connection;
    d.event_type = event;
    d.object_type = event.substr(0, event.find('.'));
    d.object_id = object_id;
    if (status == DeliveryStatus::kHandshake) {
      d.kind = "handshake";
      d.status = DeliveryStatus::kHandshake;
    }
    ASSERT_TRUE(journal_->AppendSync(d).ok());
    if (status == DeliveryStatus::kWritten) {
      ASSERT_TRUE(journal_->MarkWrittenSync({id}, {}).ok());
    } else if (status == DeliveryStatus::kDead) {
      ASSERT_TRUE(journal_->MarkDeadSync({id}, error, {}).ok());
    } else if (!error.empty()) {
      ASSERT_TRUE(journal_->MarkRetrySync({{id, clock_.Now()}}, error, {}).ok());
    }
  }

  std::vector<std::string> ListIds(const DeliveryQuery& q, int page_size = 1000) {
    DeliveryPageRequest page;
    page.page_size = page_size;
    auto r = journal_->List(q, page);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? Ids(r->deliveries) : std::vector<std::string>{"<error>"};
  }

  // A small world: two connections, several events, every status.
  void AddWorld() {
    const absl::Time t0 = clock_.Now();
    Add("a1", "acme", "invoice.create", "10", DeliveryStatus::kWritten, t0 - absl::Hours(5));
    Add("a2", "acme", "invoice.update", "10", DeliveryStatus::kDead, t0 - absl::Hours(4),
        "table freshbooks_invoices: column amount: type conflict");
    Add("a3", "acme", "payment.create", "20", DeliveryStatus::kPending, t0 - absl::Hours(3));
    Add("a4", "acme", "invoices.create", "10", DeliveryStatus::kWritten, t0 - absl::Hours(2));
    Add("a5", "acme", "invoice.delete", "11", DeliveryStatus::kDead, t0 - absl::Hours(1),
        "PERMISSION_DENIED: no MODIFY on schema");
    Add("b1", "beta", "invoice.create", "10", DeliveryStatus::kPending, t0 - absl::Minutes(30),
        "warehouse starting");
    Add("b2", "beta", "callback.verify", "cb-1", DeliveryStatus::kHandshake,
        t0 - absl::Minutes(20));
  }
};

TEST_F(JournalQueryTest, ListIsNewestFirstWithoutPayload) {
  AddWorld();
  auto page = journal_->List(DeliveryQuery{});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(page->deliveries), ElementsAre("b2", "b1", "a5", "a4", "a3", "a2", "a1"));
  EXPECT_EQ(page->next_page_token, "");
  for (const Delivery& d : page->deliveries) {
    EXPECT_EQ(d.payload, "") << d.delivery_id;
    EXPECT_EQ(d.replays, 0);
    EXPECT_FALSE(d.replayed_at.has_value());
  }
  const Delivery& a2 = page->deliveries[5];
  EXPECT_EQ(a2.status, DeliveryStatus::kDead);
  EXPECT_EQ(a2.last_error, "table freshbooks_invoices: column amount: type conflict");
  EXPECT_EQ(a2.finished_at, std::optional<absl::Time>(clock_.Now()));
  EXPECT_FALSE(page->deliveries[1].finished_at.has_value()) << "pending is not finished";
  EXPECT_EQ(page->deliveries[0].finished_at, std::optional<absl::Time>(clock_.Now()))
      << "a handshake is finished when journaled";
  EXPECT_EQ(MustGet("a2").payload, TestDelivery("x", clock_.Now()).payload)
      << "Get still returns the payload";
}

TEST_F(JournalQueryTest, ListFiltersByEachFieldAndTheirCombination) {
  AddWorld();
  const absl::Time t0 = clock_.Now();
  DeliveryQuery q;
  q.connection_id = "beta";
  EXPECT_THAT(ListIds(q), ElementsAre("b2", "b1"));

  q = {};
  q.event_type = "invoice.create";  // exact
  EXPECT_THAT(ListIds(q), ElementsAre("b1", "a1"));
  q.event_type = "invoice";  // every invoice.* event, not "invoices.*"
  EXPECT_THAT(ListIds(q), ElementsAre("b1", "a5", "a2", "a1"));
  q.event_type = "invoice.";
  EXPECT_THAT(ListIds(q), IsEmpty());
  q.event_type = "invoic";
  EXPECT_THAT(ListIds(q), IsEmpty()) << "an object name matches whole names only";

  q = {};
  q.object_id = "10";
  EXPECT_THAT(ListIds(q), ElementsAre("b1", "a4", "a2", "a1"));

  q = {};
  q.statuses = {DeliveryStatus::kDead};
  EXPECT_THAT(ListIds(q), ElementsAre("a5", "a2"));
  q.statuses = {DeliveryStatus::kPending, DeliveryStatus::kHandshake, DeliveryStatus::kPending};
  EXPECT_THAT(ListIds(q), ElementsAre("b2", "b1", "a3"));

  q = {};
  q.received_after = t0 - absl::Hours(4);   // inclusive
  q.received_before = t0 - absl::Hours(1);  // exclusive
  EXPECT_THAT(ListIds(q), ElementsAre("a4", "a3", "a2"));
  q.received_before.reset();
  EXPECT_THAT(ListIds(q), ElementsAre("b2", "b1", "a5", "a4", "a3", "a2"));

  q = {};
  q.error_contains = "TYPE CONFLICT";  // case-insensitive
  EXPECT_THAT(ListIds(q), ElementsAre("a2"));
  q.error_contains = "warehouse";  // a pending delivery's last error counts too
  EXPECT_THAT(ListIds(q), ElementsAre("b1"));

  // Combined: ANDed.
  q = {};
  q.connection_id = "acme";
  q.event_type = "invoice";
  q.statuses = {DeliveryStatus::kDead};
  q.object_id = "10";
  EXPECT_THAT(ListIds(q), ElementsAre("a2"));
  q.error_contains = "permission";
  EXPECT_THAT(ListIds(q), IsEmpty());
}

TEST_F(JournalQueryTest, FilterValuesAreDataNotSql) {
  AddWorld();
  for (const char* evil :
       {"acme' OR '1'='1", "acme\" OR 1=1 --", "%", "_", "'; DROP TABLE deliveries; --"}) {
    SCOPED_TRACE(evil);
    DeliveryQuery q;
    q.connection_id = evil;
    EXPECT_THAT(ListIds(q), IsEmpty());
    q = {};
    q.event_type = evil;
    EXPECT_THAT(ListIds(q), IsEmpty());
    q = {};
    q.object_id = evil;
    EXPECT_THAT(ListIds(q), IsEmpty());
  }
  DeliveryQuery q;
  q.error_contains = "%";  // a literal percent sign, not a wildcard
  EXPECT_THAT(ListIds(q), IsEmpty());
  EXPECT_EQ(ListIds(DeliveryQuery{}).size(), 7u) << "the table is intact";
}

TEST_F(JournalQueryTest, PagesAreStableWhileDeliveriesArrive) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
  }
  DeliveryPageRequest page;
  page.page_size = 10;
  auto first = journal_->List({}, page);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->deliveries.size(), 10u);
  EXPECT_EQ(first->deliveries.front().delivery_id, "d-24");
  EXPECT_EQ(first->deliveries.back().delivery_id, "d-15");
  ASSERT_FALSE(first->next_page_token.empty());

  // New deliveries arrive between pages: they are newer than the cursor.
  for (int i = 25; i < 30; ++i) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
  }
  std::vector<std::string> seen = Ids(first->deliveries);
  page.page_token = first->next_page_token;
  int pages = 1;
  while (!page.page_token.empty()) {
    auto next = journal_->List({}, page);
    ASSERT_TRUE(next.ok()) << next.status();
    for (const Delivery& d : next->deliveries) seen.push_back(d.delivery_id);
    page.page_token = next->next_page_token;
    ASSERT_LT(++pages, 10);
  }
  EXPECT_EQ(pages, 3);
  std::vector<std::string> want;
  for (int i = 24; i >= 0; --i) want.push_back(absl::StrCat("d-", i));
  EXPECT_EQ(seen, want) << "no duplicates, no gaps, newest first";

  // A page that ends exactly at the last delivery has no next token.
  page.page_size = 30;
  page.page_token = "";
  auto all = journal_->List({}, page);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->deliveries.size(), 30u);
  EXPECT_EQ(all->next_page_token, "");
  // The default page size is 50.
  for (int i = 30; i < 60; ++i) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
  }
  auto dflt = journal_->List({});
  ASSERT_TRUE(dflt.ok()) << dflt.status();
  EXPECT_EQ(dflt->deliveries.size(), 50u);
  EXPECT_FALSE(dflt->next_page_token.empty());
}

TEST_F(JournalQueryTest, ListRejectsBadPageSizesAndTokens) {
  for (int size : {-1, 1001, 1 << 30}) {
    DeliveryPageRequest page;
    page.page_size = size;
    auto r = journal_->List({}, page);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << size;
    EXPECT_THAT(r.status().message(), HasSubstr("page_size"));
  }
  for (const std::string& token :
       std::vector<std::string>{"garbage", "c2VxOg", EncodePageToken(0), "seq:5", "!!!"}) {
    DeliveryPageRequest page;
    page.page_token = token;
    auto r = journal_->List({}, page);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << token;
    EXPECT_THAT(r.status().message(), HasSubstr("page_token"));
  }
  EXPECT_EQ(DecodePageToken(EncodePageToken(42)), std::optional<int64_t>(42));
  DeliveryPageRequest max;
  max.page_size = DeliveryPageRequest::kMaxPageSize;
  EXPECT_TRUE(journal_->List({}, max).ok());
}

TEST_F(JournalQueryTest, ReplayByIdsMakesDeliveriesPendingAndAudits) {
  AddWorld();
  const Delivery before = MustGet("a2");
  ASSERT_EQ(before.status, DeliveryStatus::kDead);
  ASSERT_EQ(before.attempts, 1);
  clock_.Advance(absl::Minutes(7));

  ReplayRequest r;
  r.delivery_ids = {"a2", "nope", "a1", "a2", "b2", "also-missing"};
  auto result = journal_->Replay(r);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->matched, 3);
  EXPECT_EQ(result->replayed, 2);
  EXPECT_THAT(result->delivery_ids, ElementsAre("a1", "a2", "b2")) << "oldest first, once each";
  EXPECT_THAT(result->not_found, ElementsAre("nope", "also-missing"));
  ASSERT_THAT(result->skipped, ::testing::SizeIs(1));
  EXPECT_THAT(result->skipped[0], HasSubstr("b2: "));
  EXPECT_THAT(result->skipped[0], HasSubstr("handshake"));
  EXPECT_FALSE(result->truncated);

  const Delivery after = MustGet("a2");
  EXPECT_EQ(after.status, DeliveryStatus::kPending);
  EXPECT_EQ(after.attempts, 0);
  EXPECT_EQ(after.available_at, clock_.Now());
  EXPECT_FALSE(after.finished_at.has_value());
  EXPECT_EQ(after.replays, 1);
  EXPECT_EQ(after.replayed_at, std::optional<absl::Time>(clock_.Now()));
  EXPECT_EQ(after.last_error, before.last_error) << "kept until the next outcome";
  EXPECT_EQ(MustGet("a1").status, DeliveryStatus::kPending) << "a written one is replayable";
  EXPECT_EQ(MustGet("b2").status, DeliveryStatus::kHandshake);
  EXPECT_EQ(MustGet("b2").replays, 0);
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("a1", "a2", "a3", "b1"));

  auto audit = journal_->Attempts("a2");
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_FALSE(audit->empty());
  const Attempt& replay = audit->back();
  EXPECT_EQ(replay.stage, "replay");
  EXPECT_EQ(replay.outcome, "ok");
  EXPECT_EQ(replay.error, "");
  EXPECT_EQ(replay.http_status, 0);
  EXPECT_EQ(replay.at, clock_.Now());
  auto hs_audit = journal_->Attempts("b2");
  ASSERT_TRUE(hs_audit.ok());
  EXPECT_EQ(hs_audit->back().stage, "journal") << "a skipped handshake gets no replay attempt";

  // The next outcome replaces the old error; a second replay counts again.
  ASSERT_TRUE(journal_->MarkWrittenSync({"a2"}, {}).ok());
  EXPECT_EQ(MustGet("a2").last_error, "");
  clock_.Advance(absl::Minutes(1));
  ASSERT_TRUE(journal_->Replay(r).ok());
  EXPECT_EQ(MustGet("a2").replays, 2);
  EXPECT_EQ(MustGet("a2").replayed_at, std::optional<absl::Time>(clock_.Now()));
}

TEST_F(JournalQueryTest, ReplayByFilterTakesTheOldestUpToTheLimit) {
  const absl::Time t0 = clock_.Now();
  for (int i = 0; i < 8; ++i) {
    Add(absl::StrCat("dead-", i), "acme", "invoice.create", absl::StrCat(i), DeliveryStatus::kDead,
        t0 - absl::Hours(8 - i), i % 2 == 0 ? "type conflict" : "other");
  }
  Add("written", "acme", "invoice.create", "w", DeliveryStatus::kWritten, t0);
  Add("other-conn", "beta", "invoice.create", "x", DeliveryStatus::kDead, t0, "type conflict");

  ReplayRequest r;
  r.filter.connection_id = "acme";
  r.filter.statuses = {DeliveryStatus::kDead};
  r.filter.error_contains = "type conflict";
  r.limit = 3;
  auto result = journal_->Replay(r);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->matched, 3);
  EXPECT_EQ(result->replayed, 3);
  EXPECT_TRUE(result->truncated);
  EXPECT_THAT(result->delivery_ids, ElementsAre("dead-0", "dead-2", "dead-4"));

  // Again: the replayed ones are no longer dead, so the rest follows.
  result = journal_->Replay(r);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->matched, 1);
  EXPECT_FALSE(result->truncated);
  EXPECT_THAT(result->delivery_ids, ElementsAre("dead-6"));
  EXPECT_EQ(MustGet("dead-1").status, DeliveryStatus::kDead);
  EXPECT_EQ(MustGet("other-conn").status, DeliveryStatus::kDead);
  EXPECT_EQ(MustGet("written").status, DeliveryStatus::kWritten);

  // Exactly `limit` matches is not truncated.
  ReplayRequest exact;
  exact.filter.statuses = {DeliveryStatus::kDead};
  exact.filter.connection_id = "acme";
  exact.limit = 4;
  exact.dry_run = true;
  result = journal_->Replay(exact);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->matched, 4);
  EXPECT_FALSE(result->truncated);
}

TEST_F(JournalQueryTest, DryRunReportsTheSameMatchesAndChangesNothing) {
  AddWorld();
  ReplayRequest r;
  r.filter.event_type = "invoice";
  r.dry_run = true;
  const int64_t commits = journal_->commits();
  auto dry = journal_->Replay(r);
  ASSERT_TRUE(dry.ok()) << dry.status();
  EXPECT_EQ(dry->matched, 4);
  EXPECT_EQ(dry->replayed, 0);
  EXPECT_THAT(dry->delivery_ids, ElementsAre("a1", "a2", "a5", "b1"));
  EXPECT_EQ(journal_->commits(), commits) << "a dry run commits nothing";
  EXPECT_EQ(MustGet("a2").status, DeliveryStatus::kDead);
  EXPECT_EQ(MustGet("a2").replays, 0);
  auto audit = journal_->Attempts("a2");
  ASSERT_TRUE(audit.ok());
  EXPECT_NE(audit->back().stage, "replay");

  r.dry_run = false;
  auto real = journal_->Replay(r);
  ASSERT_TRUE(real.ok()) << real.status();
  EXPECT_EQ(real->matched, dry->matched);
  EXPECT_EQ(real->delivery_ids, dry->delivery_ids);
  EXPECT_EQ(real->replayed, 4);

  ReplayRequest by_ids;
  by_ids.delivery_ids = {"b2", "zzz"};
  by_ids.dry_run = true;
  auto hs = journal_->Replay(by_ids);
  ASSERT_TRUE(hs.ok()) << hs.status();
  EXPECT_EQ(hs->matched, 1);
  EXPECT_THAT(hs->not_found, ElementsAre("zzz"));
  EXPECT_THAT(hs->skipped, ::testing::SizeIs(1));
}

TEST_F(JournalQueryTest, ReplayRefusesAnUnboundedRequest) {
  AddWorld();
  ReplayRequest none;
  auto r = journal_->Replay(none);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  none.dry_run = true;
  EXPECT_EQ(journal_->Replay(none).status().code(), absl::StatusCode::kInvalidArgument);
  ReplayRequest bad_limit;
  bad_limit.filter.statuses = {DeliveryStatus::kDead};
  for (int limit : {-1, ReplayRequest::kMaxLimit + 1}) {
    bad_limit.limit = limit;
    auto s = journal_->Replay(bad_limit);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << limit;
    EXPECT_THAT(s.status().message(), HasSubstr("limit"));
  }
  EXPECT_EQ(MustGet("a2").status, DeliveryStatus::kDead);
}

TEST_F(JournalQueryTest, CompactRemovesOnlyOldWrittenAndHandshakesWithTheirAttempts) {
  const absl::Time t0 = clock_.Now();
  // Very old deliveries of every status.
  Add("old-written", "acme", "invoice.create", "1", DeliveryStatus::kWritten,
      t0 - absl::Hours(24 * 400));
  Add("old-handshake", "acme", "callback.verify", "cb", DeliveryStatus::kHandshake,
      t0 - absl::Hours(24 * 400));
  Add("old-dead", "acme", "invoice.create", "2", DeliveryStatus::kDead, t0 - absl::Hours(24 * 400),
      "type conflict");
  Add("old-pending", "acme", "invoice.create", "3", DeliveryStatus::kPending,
      t0 - absl::Hours(24 * 400), "throttled");
  for (int i = 0; i < 5; ++i) {
    Add(absl::StrCat("w-", i), "acme", "invoice.update", "4", DeliveryStatus::kWritten, t0);
  }
  const auto attempts_of = [&](const std::string& id) {
    return IntOnDisk(path_,
                     absl::StrCat("SELECT COUNT(*) FROM attempts WHERE delivery_id = '", id, "'"));
  };
  ASSERT_EQ(attempts_of("old-written"), 1);
  ASSERT_EQ(attempts_of("w-0"), 1);

  // Ten days later, with a 7-day cutoff: the first batch is older (it finished at
  // t0, as finished_at counts, not received_at).
  clock_.Advance(absl::Hours(24 * 3));
  Add("recent", "acme", "invoice.update", "5", DeliveryStatus::kWritten, clock_.Now());
  clock_.Advance(absl::Hours(24 * 7));
  auto removed = journal_->Compact(clock_.Now() - absl::Hours(24 * 7), /*max_rows_per_txn=*/2);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 7);  // old-written, old-handshake, w-0..w-4
  for (const char* gone : {"old-written", "old-handshake", "w-0", "w-4"}) {
    auto d = journal_->Get(gone);
    ASSERT_TRUE(d.ok());
    EXPECT_FALSE(d->has_value()) << gone;
    EXPECT_EQ(attempts_of(gone), 0) << gone;
  }
  for (const char* kept : {"old-dead", "old-pending", "recent"}) {
    auto d = journal_->Get(kept);
    ASSERT_TRUE(d.ok());
    EXPECT_TRUE(d->has_value()) << kept;
    EXPECT_GE(attempts_of(kept), 1) << kept;
  }
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("old-pending"));

  // Nothing left to do: a second run removes nothing.
  removed = journal_->Compact(clock_.Now() - absl::Hours(24 * 7), 2);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 0);
  // Even a cutoff in the future never touches pending or dead deliveries.
  removed = journal_->Compact(clock_.Now() + absl::Hours(24 * 1000), 100);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);  // "recent"
  auto counts = journal_->CountByStatus();
  ASSERT_TRUE(counts.ok());
  EXPECT_THAT(*counts, UnorderedElementsAre(Pair(DeliveryStatus::kPending, 1),
                                            Pair(DeliveryStatus::kDead, 1)));
  EXPECT_FALSE(journal_->Compact(clock_.Now(), 0).ok());
}

TEST_F(JournalQueryTest, CompactWorksInChunksAndStopsBetweenThem) {
  for (int i = 0; i < 10; ++i) {
    Add(absl::StrCat("w-", i), "acme", "invoice.update", "1", DeliveryStatus::kWritten,
        clock_.Now());
  }
  clock_.Advance(absl::Hours(1));
  const int64_t commits = journal_->commits();
  int asked = 0;
  auto removed = journal_->Compact(clock_.Now(), 3, [&] { return ++asked > 2; });
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 6) << "two chunks of 3, then stopped";
  EXPECT_EQ(journal_->commits() - commits, 2) << "one transaction per chunk";
  removed = journal_->Compact(clock_.Now(), 3);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 4);
}

TEST_F(JournalQueryTest, StatsPerConnection) {
  AddWorld();
  // One more: a retrying pending delivery received within the hour.
  Add("a6", "acme", "invoice.create", "12", DeliveryStatus::kPending,
      clock_.Now() - absl::Minutes(10), "throttled");
  Add("a7", "acme", "invoice.create", "13", DeliveryStatus::kDead, clock_.Now(),
      "table freshbooks_invoices: column amount: type conflict");
  clock_.Advance(absl::Minutes(5));
  auto stats = journal_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->connections.size(), 2u);
  EXPECT_GT(stats->journal_bytes, 0);
  const ConnectionStats& acme = stats->connections[0];
  EXPECT_EQ(acme.connection_id, "acme");
  EXPECT_EQ(acme.pending, 2);
  EXPECT_EQ(acme.written, 2);
  EXPECT_EQ(acme.dead, 3);
  EXPECT_EQ(acme.handshakes, 0);
  EXPECT_EQ(acme.retrying, 1);
  const absl::Time t0 = clock_.Now() - absl::Minutes(5);
  EXPECT_EQ(acme.oldest_pending_received_at, std::optional<absl::Time>(t0 - absl::Hours(3)));
  EXPECT_EQ(acme.last_written_at, std::optional<absl::Time>(t0));
  EXPECT_EQ(acme.received_last_hour, 2);  // a6, a7 (a5 was received 65 minutes ago)
  EXPECT_EQ(acme.written_last_hour, 2);
  ASSERT_EQ(acme.dead_letters.size(), 2u);
  EXPECT_EQ(acme.dead_letters[0].reason, "table freshbooks_invoices: column amount: type conflict");
  EXPECT_EQ(acme.dead_letters[0].count, 2);
  EXPECT_EQ(acme.dead_letters[0].latest, t0);
  EXPECT_EQ(acme.dead_letters[1].reason, "PERMISSION_DENIED: no MODIFY on schema");
  EXPECT_EQ(acme.dead_letters[1].count, 1);

  const ConnectionStats& beta = stats->connections[1];
  EXPECT_EQ(beta.connection_id, "beta");
  EXPECT_EQ(beta.pending, 1);
  EXPECT_EQ(beta.retrying, 1);
  EXPECT_EQ(beta.handshakes, 1);
  EXPECT_EQ(beta.written, 0);
  EXPECT_FALSE(beta.last_written_at.has_value());
  EXPECT_EQ(beta.received_last_hour, 2);
  EXPECT_THAT(beta.dead_letters, IsEmpty());

  auto one = journal_->Stats("beta");
  ASSERT_TRUE(one.ok()) << one.status();
  ASSERT_EQ(one->connections.size(), 1u);
  EXPECT_EQ(one->connections[0].pending, 1);
  EXPECT_EQ(one->connections[0].received_last_hour, 2);
  auto nobody = journal_->Stats("nobody");
  ASSERT_TRUE(nobody.ok()) << nobody.status();
  EXPECT_THAT(nobody->connections, IsEmpty());

  // An hour later nothing is "last hour" any more.
  clock_.Advance(absl::Hours(1));
  stats = journal_->Stats("acme");
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->connections[0].received_last_hour, 0);
  EXPECT_EQ(stats->connections[0].written_last_hour, 0);
}

// The first release's DDL, verbatim: what a v1 journal.db on disk looks like.
constexpr char kV1Schema[] = R"sql(
CREATE TABLE deliveries (
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
CREATE INDEX deliveries_pending ON deliveries(seq) WHERE status = 'pending';
CREATE INDEX deliveries_by_object ON deliveries(connection_id, object_type, object_id);
CREATE TABLE attempts (
  id          INTEGER PRIMARY KEY,
  delivery_id TEXT NOT NULL,
  stage       TEXT NOT NULL,
  outcome     TEXT NOT NULL,
  http_status INTEGER NOT NULL DEFAULT 0,
  error       TEXT NOT NULL DEFAULT '',
  duration_us INTEGER NOT NULL,
  at_us       INTEGER NOT NULL
);
CREATE INDEX attempts_by_delivery ON attempts(delivery_id);
PRAGMA user_version=1;
)sql";

TEST(JournalMigrationTest, AV1FileOpensAndKeepsItsRows) {
  testing::TempDir dir;
  const std::string path = dir.File("journal.db");
  ExecOnDisk(path, kV1Schema);
  ExecOnDisk(path, R"sql(
    INSERT INTO deliveries (delivery_id, connection_id, kind, event_type, object_type, object_id,
      account_id, business_id, identity_id, user_id, received_at_us, journaled_at_us, payload,
      status, attempts, available_at_us, last_error, finished_at_us) VALUES
    ('p', 'acme', 'event', 'invoice.create', 'invoice', '1', 'A', 'B', 'I', 'U', 1000000, 1000001,
     '[["name","invoice.create"]]', 'pending', 2, 5000000, 'throttled', NULL),
    ('w', 'acme', 'event', 'invoice.update', 'invoice', '1', 'A', 'B', 'I', 'U', 2000000, 2000001,
     '[]', 'written', 0, 2000001, '', 3000000),
    ('d', 'acme', 'event', 'payment.create', 'payment', '2', 'A', 'B', 'I', 'U', 4000000, 4000001,
     '[]', 'dead', 1, 4000001, 'type conflict', 4500000),
    ('h', 'acme', 'handshake', 'callback.verify', 'callback', 'cb', 'A', 'B', 'I', 'U', 6000000,
     6000001, '[]', 'handshake', 0, 6000001, '', NULL);
    INSERT INTO attempts (delivery_id, stage, outcome, duration_us, at_us) VALUES
      ('p', 'journal', 'ok', 1, 1000001), ('w', 'journal', 'ok', 1, 2000001),
      ('w', 'write', 'ok', 5, 3000000), ('d', 'write', 'dead', 5, 4500000);
  )sql");

  FakeClock clock(absl::FromUnixSeconds(100));
  auto j = Journal::Open(path, &clock);
  ASSERT_TRUE(j.ok()) << j.status();
  Journal& journal = **j;
  EXPECT_EQ(IntOnDisk(path, "PRAGMA user_version"), 2);
  for (const char* index : {"deliveries_received", "deliveries_finished"}) {
    EXPECT_EQ(IntOnDisk(path, absl::StrCat("SELECT COUNT(*) FROM sqlite_master WHERE name = '",
                                           index, "'")),
              1)
        << index;
  }

  auto p = journal.Get("p");
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->status, DeliveryStatus::kPending);
  EXPECT_EQ((*p)->attempts, 2);
  EXPECT_EQ((*p)->last_error, "throttled");
  EXPECT_EQ((*p)->payload, R"([["name","invoice.create"]])");
  EXPECT_EQ((*p)->replays, 0);
  EXPECT_FALSE((*p)->replayed_at.has_value());
  EXPECT_FALSE((*p)->finished_at.has_value());
  auto h = journal.Get("h");
  ASSERT_TRUE(h.ok() && h->has_value());
  EXPECT_EQ((*h)->finished_at, std::optional<absl::Time>(absl::FromUnixMicros(6000001)))
      << "v1 handshakes get finished_at = journaled_at";
  auto w = journal.Get("w");
  ASSERT_TRUE(w.ok() && w->has_value());
  EXPECT_EQ((*w)->finished_at, std::optional<absl::Time>(absl::FromUnixMicros(3000000)));
  auto audit = journal.Attempts("w");
  ASSERT_TRUE(audit.ok());
  EXPECT_EQ(audit->size(), 2u);

  // The new operations work on migrated rows.
  ReplayRequest r;
  r.delivery_ids = {"d"};
  auto replayed = journal.Replay(r);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_EQ(replayed->replayed, 1);
  auto compacted = journal.Compact(absl::FromUnixSeconds(50));
  ASSERT_TRUE(compacted.ok()) << compacted.status();
  EXPECT_EQ(*compacted, 2);  // w and h
  EXPECT_EQ(IntOnDisk(path, "SELECT COUNT(*) FROM deliveries"), 2);
  ASSERT_TRUE(journal.AppendSync(TestDelivery("new", clock.Now())).ok());
  auto page = journal.List({});
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(Ids(page->deliveries), ElementsAre("new", "d", "p"));

  // Opening again is a no-op (already v2).
  j->reset();
  auto again = Journal::Open(path, &clock);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(IntOnDisk(path, "SELECT COUNT(*) FROM deliveries"), 3);
}

TEST(JournalMigrationTest, AFileFromANewerWriterIsRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("journal.db");
  ExecOnDisk(path, "CREATE TABLE deliveries (seq INTEGER PRIMARY KEY); PRAGMA user_version=9;");
  FakeClock clock;
  auto j = Journal::Open(path, &clock);
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(j.status().message(), HasSubstr("version 9"));
}

TEST(DeliveryStatusTest, NamesRoundTrip) {
  for (DeliveryStatus s : {DeliveryStatus::kPending, DeliveryStatus::kWritten,
                           DeliveryStatus::kDead, DeliveryStatus::kHandshake}) {
    EXPECT_EQ(ParseDeliveryStatus(DeliveryStatusName(s)), std::optional<DeliveryStatus>(s));
  }
  EXPECT_EQ(ParseDeliveryStatus("bogus"), std::nullopt);
  EXPECT_THAT(std::string(DeliveryStatusName(DeliveryStatus::kDead)), HasSubstr("dead"));
}

}  // namespace
}  // namespace mlc::writer
