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
#include "tests/support/test_util.h"

namespace mlc::writer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

Delivery MakeDelivery(const std::string& id, absl::Time received_at) {
  Delivery d;
  d.delivery_id = id;
  d.connection_id = "acme";
  d.kind = "event";
  d.event_type = "invoice.update";
  d.object_type = "invoice";
  d.object_id = absl::StrCat("obj-", id);
  d.account_id = "6BApk";
  d.business_id = "77";
  d.identity_id = "88";
  d.user_id = "99";
  d.received_at = received_at;
  d.payload = R"([["name","invoice.update"],["object_id","1"]])";
  d.status = DeliveryStatus::kPending;
  d.available_at = absl::InfinitePast();  // "now", as the ingest service asks
  return d;
}

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
  Delivery in = MakeDelivery("d-1", received);
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
  Delivery in = MakeDelivery("d-1", absl::FromUnixMicros(1767225600123456));
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
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("d-1", received)).ok());

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
    journal_->Append(MakeDelivery(id, clock_.Now()), [&, id](absl::Status s) {
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
            journal_->AppendSync(MakeDelivery(absl::StrCat("d-", t, "-", i), absl::Now()));
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
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("dup", clock_.Now())).ok());

  // Queue a burst with one duplicate inside: it fails, its neighbours do not.
  constexpr int kAppends = 9;
  absl::Mutex mu;
  std::vector<std::pair<std::string, absl::Status>> results;
  absl::BlockingCounter pending(kAppends);
  for (int i = 0; i < kAppends; ++i) {
    const std::string id = i == 4 ? "dup" : absl::StrCat("d-", i);
    Delivery d = MakeDelivery(id, clock_.Now());
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
  in.push_back(MakeDelivery("z-due", now));
  in.push_back(MakeDelivery("later", now));
  in.back().available_at = now + absl::Seconds(30);
  in.push_back(MakeDelivery("a-due", now));
  in.back().available_at = now - absl::Hours(1);
  in.push_back(MakeDelivery("written", now));
  in.back().status = DeliveryStatus::kWritten;
  in.push_back(MakeDelivery("m-due", now));
  in.back().available_at = now;  // exactly now counts as due
  in.push_back(MakeDelivery("dead", now));
  in.back().status = DeliveryStatus::kDead;
  in.push_back(MakeDelivery("handshake", now));
  in.back().status = DeliveryStatus::kHandshake;
  in.push_back(MakeDelivery("b-due", now));
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
    ASSERT_TRUE(journal_->AppendSync(MakeDelivery(id, clock_.Now())).ok());
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
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("d-1", clock_.Now())).ok());
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("d-2", clock_.Now())).ok());
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
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("d-1", clock_.Now())).ok());
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("d-2", clock_.Now())).ok());
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
    ASSERT_TRUE(journal_->AppendSync(MakeDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
  }
  Delivery hs = MakeDelivery("hs", clock_.Now());
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
  Delivery early_but_written = MakeDelivery("w", now);
  early_but_written.available_at = now - absl::Hours(2);
  early_but_written.status = DeliveryStatus::kWritten;
  ASSERT_TRUE(journal_->AppendSync(early_but_written).ok());
  none = journal_->NextAvailable();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value()) << "only pending deliveries count";

  Delivery later = MakeDelivery("later", now);
  later.available_at = now + absl::Minutes(5);
  Delivery sooner = MakeDelivery("sooner", now);
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
    ASSERT_TRUE(journal_->AppendSync(MakeDelivery(absl::StrCat("d-", i), clock_.Now())).ok());
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
  ASSERT_TRUE(journal_->AppendSync(MakeDelivery("d-5", clock_.Now())).ok());
  EXPECT_GT(MustGet("d-5").seq, last_seq);
  EXPECT_THAT(Ids(MustFetchDue()), ElementsAre("d-3", "d-4", "d-5"));
}

TEST_F(JournalTest, DestructorCommitsEverythingAlreadyQueued) {
  constexpr int kAppends = 200;
  std::atomic<int> ok{0};
  std::atomic<int> callbacks{0};
  for (int i = 0; i < kAppends; ++i) {
    journal_->Append(MakeDelivery(absl::StrCat("d-", i), clock_.Now()), [&](absl::Status s) {
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
