// Durability under SIGKILL: clients send webhooks and retry 503s as FreshBooks
// does while the writer is killed with SIGKILL and restarted several times.
// Afterwards every delivery that got a 202 is in freshbooks_events exactly once.
#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "tests/support/services.h"

namespace mlc::testing {
namespace {

TEST(CrashTest, EveryAcknowledgedDeliveryLandsExactlyOnceAcrossWriterKills) {
  ServicesOptions o;
  o.max_delay_ms = 20;
  o.max_rows = 64;
  Services s(o);
  s.StartAll();

  constexpr int kClients = 6;
  constexpr int kKills = 5;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::set<std::string> acked;
  std::atomic<int> unavailable{0};
  std::atomic<int> sent{0};

  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      std::mt19937 rng(static_cast<unsigned>(c));
      for (int i = 0; !stop; ++i) {
        const FormFields event = StandardEvent(i % 2 == 0 ? "invoice.update" : "payment.create",
                                               absl::StrCat(c * 1000000 + i));
        // Retry until acknowledged, as FreshBooks retries a failed delivery.
        while (!stop) {
          ++sent;
          Services::Answer a = s.Send(event);
          if (a.status == 202) {
            std::lock_guard<std::mutex> lock(mu);
            EXPECT_TRUE(acked.insert(a.delivery_id).second) << "delivery id reused";
            break;
          }
          EXPECT_TRUE(a.status == 503 || a.status == 0) << a.status << " " << a.body;
          ++unavailable;
          std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 30));
        }
      }
    });
  }

  std::mt19937 rng(42);
  for (int k = 0; k < kKills; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400 + rng() % 400));
    s.KillWriter(SIGKILL);
    s.WaitWriter();
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 200));
    s.StartWriter();
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  stop = true;
  for (auto& t : clients) t.join();

  ASSERT_GT(acked.size(), 200u) << "too little traffic to mean anything";
  EXPECT_GT(unavailable.load(), 0) << "the kills never hit traffic";

  // Everything acknowledged reaches the table, once.
  std::map<std::string, int> rows;
  const bool all_landed = WaitFor(
      [&] {
        rows.clear();
        for (const auto& [id, n] : s.EventRowCounts()) rows[id] = n;
        for (const std::string& id : acked) {
          if (rows.count(id) == 0) return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  ASSERT_TRUE(all_landed) << s.WriterLog();
  for (const std::string& id : acked) EXPECT_EQ(rows[id], 1) << id;
  // Rows land before the journal marks them written; the marks follow shortly.
  EXPECT_TRUE(WaitFor(
      [&] {
        return s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status != 'written'") ==
               "0";
      },
      std::chrono::seconds(30)))
      << s.Query("journal.db",
                 "SELECT group_concat(status) FROM deliveries WHERE status != "
                 "'written'");
  std::cout << "crash test: " << acked.size() << " acknowledged, " << unavailable.load()
            << " answered 503/refused during " << kKills << " SIGKILLs, " << rows.size()
            << " rows in freshbooks_events\n";
}

}  // namespace
}  // namespace mlc::testing
