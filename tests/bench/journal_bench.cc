// journal_bench: what audit retention costs the webhook path. A journal holding
// --old written deliveries (each with its journal and write attempts) that have
// passed the retention period is compacted while --appenders threads keep
// appending new deliveries as the ingest service does (each waits for its
// durable commit). Prints
//   1. append latency p50/p99/max and appends/s with no compaction running,
//   2. the same while the compaction runs, and the compaction's rows/s,
//   3. journal size before and after, and pages reused by the next appends
//      (SQLite keeps freed pages for reuse: the file does not shrink, it stops
//      growing), and the process's peak RSS.
//
//   journal_bench [--old N] [--appenders K] [--seconds S]
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "tests/support/test_deliveries.h"
#include "tests/support/test_util.h"
#include "writer/journal.h"
#include "writer/journal_retention.h"

namespace {

using Steady = std::chrono::steady_clock;
using mlc::writer::Journal;

double Millis(Steady::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Latencies {
  std::vector<double> ms;
  double seconds = 0;
  void Print(const char* what) {
    std::sort(ms.begin(), ms.end());
    if (ms.empty()) {
      std::printf("  %-34s no appends\n", what);
      return;
    }
    auto at = [&](double q) {
      return ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
    };
    std::printf("  %-34s %7.0f appends/s  p50 %6.2f ms  p99 %6.2f ms  max %7.2f ms\n", what,
                static_cast<double>(ms.size()) / seconds, at(0.50), at(0.99), ms.back());
  }
};

// Appends from `threads` threads until `done()`; each append waits for its commit.
Latencies AppendWhile(Journal* journal, mlc::Clock* clock, int threads, const std::string& prefix,
                      const std::function<bool()>& done) {
  absl::Mutex mu;
  Latencies out;
  std::atomic<int64_t> next{0};
  const Steady::time_point start = Steady::now();
  std::vector<std::thread> workers;
  workers.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::vector<double> mine;
      while (!done()) {
        const std::string id = absl::StrCat(prefix, next++);
        const Steady::time_point t0 = Steady::now();
        absl::Status s = journal->AppendSync(mlc::testing::TestDelivery(id, clock->Now()));
        if (!s.ok()) {
          std::fprintf(stderr, "append failed: %s\n", s.ToString().c_str());
          std::exit(1);
        }
        mine.push_back(Millis(Steady::now() - t0));
      }
      absl::MutexLock lock(&mu);
      out.ms.insert(out.ms.end(), mine.begin(), mine.end());
    });
  }
  for (std::thread& w : workers) w.join();
  out.seconds = std::chrono::duration<double>(Steady::now() - start).count();
  return out;
}

int64_t PageCount(const std::string& path, const char* pragma) {
  auto rows = mlc::testing::QueryRows(path, absl::StrCat("PRAGMA ", pragma));
  return rows.empty() || rows[0].empty() || !rows[0][0].has_value() ? -1 : std::stoll(*rows[0][0]);
}

}  // namespace

int main(int argc, char** argv) {
  int64_t old_rows = 200000;
  int appenders = 8;
  double seconds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--old") old_rows = std::atoll(argv[i + 1]);
    if (flag == "--appenders") appenders = std::atoi(argv[i + 1]);
    if (flag == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  mlc::testing::TempDir dir;
  const std::string path = dir.File("journal.db");
  mlc::FakeClock clock;
  auto opened = Journal::Open(path, &clock);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Journal> journal = std::move(*opened);

  // The history: old_rows deliveries, journaled and written 31 days ago.
  std::printf(
      "journal_bench: %lld written deliveries older than the 30-day retention, %d appenders\n",
      static_cast<long long>(old_rows), appenders);
  const Steady::time_point fill_start = Steady::now();
  constexpr int64_t kChunk = 4000;
  for (int64_t base = 0; base < old_rows; base += kChunk) {
    const int64_t n = std::min(kChunk, old_rows - base);
    std::atomic<int64_t> left{n};
    std::vector<std::string> ids;
    ids.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      ids.push_back(absl::StrCat("old-", base + i));
      journal->Append(mlc::testing::TestDelivery(ids.back(), clock.Now()), [&](absl::Status s) {
        if (!s.ok()) std::exit(1);
        --left;
      });
    }
    if (!journal->MarkWrittenSync(ids, mlc::testing::TestWriteAttempts(ids, clock.Now())).ok()) {
      return 1;
    }
    while (left.load() > 0) std::this_thread::yield();
  }
  std::printf("  filled in %.1f s; journal %.1f MiB, %lld pages\n",
              std::chrono::duration<double>(Steady::now() - fill_start).count(),
              static_cast<double>(journal->FileBytes()) / (1 << 20),
              static_cast<long long>(PageCount(path, "page_count")));
  clock.Advance(absl::Hours(24 * 31));

  // 1. Appends alone.
  const Steady::time_point until = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                                       std::chrono::duration<double>(seconds));
  Latencies alone = AppendWhile(journal.get(), &clock, appenders, "new-a-",
                                [&] { return Steady::now() >= until; });

  // 2. Appends while the retention thread's compaction runs.
  mlc::writer::JournalRetention retention(journal.get(), &clock, 30);
  std::atomic<bool> compacting{true};
  int64_t removed = 0;
  Steady::duration took{};
  std::thread compactor([&] {
    const Steady::time_point t0 = Steady::now();
    absl::StatusOr<int64_t> r = retention.RunOnce();
    took = Steady::now() - t0;
    if (!r.ok()) {
      std::fprintf(stderr, "compaction: %s\n", r.status().ToString().c_str());
      std::exit(1);
    }
    removed = *r;
    compacting = false;
  });
  Latencies during =
      AppendWhile(journal.get(), &clock, appenders, "new-b-", [&] { return !compacting.load(); });
  compactor.join();
  const int64_t pages_after_compaction = PageCount(path, "page_count");
  const int64_t free_after_compaction = PageCount(path, "freelist_count");

  // 3. New appends reuse the freed pages.
  const Steady::time_point until2 = Steady::now() + std::chrono::duration_cast<Steady::duration>(
                                                        std::chrono::duration<double>(seconds));
  Latencies after = AppendWhile(journal.get(), &clock, appenders, "new-c-",
                                [&] { return Steady::now() >= until2; });

  std::printf("append latency (each waits for its fsync'd group commit):\n");
  alone.Print("no compaction");
  during.Print("during compaction");
  after.Print("after compaction");
  std::printf(
      "compaction: removed %lld deliveries (+ %lld attempts) in %.2f s = %.0f deliveries/s, "
      "%d per transaction\n",
      static_cast<long long>(removed), static_cast<long long>(2 * removed),
      std::chrono::duration<double>(took).count(),
      static_cast<double>(removed) / std::max(1e-9, std::chrono::duration<double>(took).count()),
      mlc::writer::JournalRetention::kRowsPerTransaction);
  std::printf(
      "journal file: %lld pages after compaction (%lld free), %lld pages after %zu more "
      "appends (%lld free)\n",
      static_cast<long long>(pages_after_compaction), static_cast<long long>(free_after_compaction),
      static_cast<long long>(PageCount(path, "page_count")), after.ms.size(),
      static_cast<long long>(PageCount(path, "freelist_count")));
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("peak RSS: %.1f MiB\n", static_cast<double>(ru.ru_maxrss) / 1024);
  return 0;
}
