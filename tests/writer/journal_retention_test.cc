// Tests of audit retention (writer.audit_retention_days): JournalRetention
// compacts old written deliveries and handshakes away, never pending or dead ones,
// reports what it did, stops promptly - and under steady traffic the journal stops
// growing once retention is in steady state (rows and the database's page count).
#include "writer/journal_retention.h"

#include <sqlite3.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_deliveries.h"
#include "tests/support/test_util.h"
#include "writer/journal.h"

namespace mlc::writer {
namespace {

using ::mlc::testing::TestDelivery;
using ::mlc::testing::TestWriteAttempts;

int64_t IntOnDisk(const std::string& path, const std::string& sql) {
  std::vector<testing::SqlRow> rows = testing::QueryRows(path, sql);
  if (rows.empty() || rows[0].empty() || !rows[0][0].has_value()) return -1;
  return std::stoll(*rows[0][0]);
}

class JournalRetentionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto j = Journal::Open(path_, &clock_);
    ASSERT_TRUE(j.ok()) << j.status();
    journal_ = std::move(*j);
  }

  // Appends `n` deliveries and marks them written with a write attempt each, as
  // the pipeline does, plus `dead` dead letters. Everything is queued at once, so
  // the committer applies it in one or two group commits (as it would for
  // concurrent webhooks).
  void AppendWritten(const std::string& prefix, int n, int dead = 0) {
    absl::BlockingCounter pending(n + dead + 1 + (dead > 0 ? 1 : 0));
    auto done = [&pending](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      pending.DecrementCount();
    };
    std::vector<std::string> ids;
    std::vector<std::string> dead_ids;
    ids.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n + dead; ++i) {
      const std::string id = absl::StrCat(prefix, i < n ? "-" : "-dead-", i);
      journal_->Append(TestDelivery(id, clock_.Now()), done);
      (i < n ? ids : dead_ids).push_back(id);
    }
    journal_->MarkWritten(ids, TestWriteAttempts(ids, clock_.Now()), done);
    if (dead > 0) journal_->MarkDead(dead_ids, "column amount: type conflict", {}, done);
    pending.Wait();
  }

  void AppendDead(const std::string& id) {
    ASSERT_TRUE(journal_->AppendSync(TestDelivery(id, clock_.Now())).ok());
    ASSERT_TRUE(journal_->MarkDeadSync({id}, "column amount: type conflict", {}).ok());
  }

  int64_t Rows(const std::string& where = "") {
    return IntOnDisk(path_, absl::StrCat("SELECT COUNT(*) FROM deliveries", where));
  }

  testing::TempDir dir_;
  const std::string path_ = dir_.File("journal.db");
  FakeClock clock_;
  std::unique_ptr<Journal> journal_;
};

TEST_F(JournalRetentionTest, RunOnceRemovesWhatIsOlderThanTheRetention) {
  Counter compacted;
  Gauge bytes;
  JournalRetention retention(journal_.get(), &clock_, /*retention_days=*/7, absl::Hours(1),
                             RetentionMetrics{&compacted, &bytes});
  EXPECT_FALSE(retention.status().last_compaction.has_value());
  AppendWritten("old", 5);
  AppendDead("old-dead");
  ASSERT_TRUE(journal_->AppendSync(TestDelivery("old-pending", clock_.Now())).ok());
  clock_.Advance(absl::Hours(24 * 6));
  AppendWritten("young", 3);

  auto removed = retention.RunOnce();  // day 6: nothing is 7 days old yet
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 0);
  EXPECT_EQ(retention.status().last_compaction, std::optional<absl::Time>(clock_.Now()));

  clock_.Advance(absl::Hours(24) + absl::Seconds(1));
  removed = retention.RunOnce();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 5);
  EXPECT_EQ(Rows(), 5);  // old-dead, old-pending, young-0..2
  EXPECT_EQ(Rows(" WHERE status IN ('dead', 'pending')"), 2);
  const RetentionStatus st = retention.status();
  EXPECT_EQ(st.retention_days, 7);
  EXPECT_EQ(st.compacted_total, 5);
  EXPECT_EQ(st.last_compaction, std::optional<absl::Time>(clock_.Now()));
  EXPECT_EQ(compacted.Value(), 5.0);
  EXPECT_EQ(bytes.Value(), static_cast<double>(journal_->FileBytes()));
  EXPECT_GT(bytes.Value(), 0.0);
}

TEST_F(JournalRetentionTest, ZeroDaysKeepsEverythingAndStartsNoThread) {
  JournalRetention retention(journal_.get(), &clock_, /*retention_days=*/0);
  AppendWritten("w", 3);
  clock_.Advance(absl::Hours(24 * 10000));
  retention.Start();
  auto removed = retention.RunOnce();
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 0);
  EXPECT_EQ(Rows(), 3);
  EXPECT_EQ(retention.status().retention_days, 0);
  retention.Stop();
}

TEST_F(JournalRetentionTest, CompactsAtStartAndStopsPromptly) {
  Counter compacted;
  AppendWritten("w", 4);
  clock_.Advance(absl::Hours(24 * 2));
  JournalRetention retention(journal_.get(), &clock_, /*retention_days=*/1, absl::Hours(1),
                             RetentionMetrics{&compacted, nullptr});
  retention.Start();
  // The startup compaction runs at once, not after the first hour.
  ASSERT_TRUE(testing::WaitFor([&] { return retention.status().last_compaction.has_value(); }));
  EXPECT_EQ(retention.status().compacted_total, 4);
  EXPECT_EQ(Rows(), 0);
  // Stop wakes the hour-long wait.
  const absl::Time t0 = absl::Now();
  retention.Stop();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(2));
  retention.Stop();  // idempotent
}

// 60 simulated days of steady traffic (2,000 deliveries a day, a few dead ones)
// with 7-day retention compacting every simulated hour: after the first week the
// journal holds about a week of deliveries, and its file stops growing because
// new rows reuse the pages compaction freed. Every dead letter is still there.
TEST_F(JournalRetentionTest, JournalStaysBoundedUnderSteadyLoad) {
  constexpr int kDays = 60;
  constexpr int kPerHour = 84;  // ~2,000 a day
  constexpr int kDeadPerDay = 3;
  JournalRetention retention(journal_.get(), &clock_, /*retention_days=*/7);
  int64_t dead = 0;
  int64_t rows_day14 = 0;
  int64_t pages_day14 = 0;
  std::vector<std::string> trace;
  const auto t_start = std::chrono::steady_clock::now();
  for (int day = 1; day <= kDays; ++day) {
    for (int hour = 0; hour < 24; ++hour) {
      clock_.Advance(absl::Hours(1));
      // The hourly compaction runs while the hour's traffic is journaled, as in
      // the writer (it is also what keeps this test within seconds: fewer commits).
      std::thread compaction([&retention] {
        auto removed = retention.RunOnce();
        EXPECT_TRUE(removed.ok()) << removed.status();
      });
      const int dead_now = hour < kDeadPerDay ? 1 : 0;
      AppendWritten(absl::StrCat("d", day, "h", hour), kPerHour, dead_now);
      dead += dead_now;
      compaction.join();
    }
    const int64_t rows = Rows();
    const int64_t pages = IntOnDisk(path_, "PRAGMA page_count");
    if (day % 7 == 0 || day == kDays) {
      trace.push_back(absl::StrCat("day ", day, ": rows ", rows, ", pages ", pages, ", free ",
                                   IntOnDisk(path_, "PRAGMA freelist_count"), ", bytes ",
                                   journal_->FileBytes()));
    }
    if (day == 14) {
      rows_day14 = rows;
      pages_day14 = pages;
    }
    if (day >= 8) {
      // A week of written deliveries (retention is checked hourly), plus every
      // dead letter so far.
      EXPECT_LE(rows, 7 * 24 * kPerHour + kPerHour + dead) << "day " << day;
      EXPECT_GE(rows, 7 * 24 * kPerHour - kPerHour + dead) << "day " << day;
    }
  }
  const int64_t pages_day60 = IntOnDisk(path_, "PRAGMA page_count");
  for (const std::string& line : trace) std::cout << "  " << line << "\n";
  std::cout << "  simulated " << kDays << " days in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now() - t_start)
                   .count()
            << " ms, " << journal_->commits() << " commits\n";
  EXPECT_LE(static_cast<double>(pages_day60), 1.2 * static_cast<double>(pages_day14))
      << "the file kept growing: day 14 " << pages_day14 << " pages, day 60 " << pages_day60;
  EXPECT_LE(Rows(), rows_day14 + (kDays - 14) * kDeadPerDay + kPerHour);
  EXPECT_EQ(Rows(" WHERE status = 'dead'"), dead) << "retention never removes dead letters";
  EXPECT_EQ(IntOnDisk(path_,
                      "SELECT COUNT(*) FROM attempts WHERE delivery_id NOT IN "
                      "(SELECT delivery_id FROM deliveries)"),
            0)
      << "no orphaned attempts";
  EXPECT_EQ(retention.status().compacted_total,
            static_cast<int64_t>(kDays) * 24 * kPerHour - (Rows() - dead));
}

}  // namespace
}  // namespace mlc::writer
