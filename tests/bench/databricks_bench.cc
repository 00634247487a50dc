// databricks_bench: sink: databricks through both real services against the fake
// workspace (statements executed by the fake's SQL engine). Prints
//   1. SQL statements per 1,000 events under a burst,
//   2. rows/s into the fake with 50 ms statement latency,
//   3. webhook -> row latency p50/p99 at 100 events/s (batch.max_delay_ms = 1000).
//
//   databricks_bench [--events N] [--seconds S]
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/databricks_world.h"
#include "tests/support/services.h"

namespace {

using Clock = std::chrono::steady_clock;
using mlc::testing::DatabricksWorld;
using mlc::testing::Services;

constexpr char kEvents[] = "finance.freshbooks.freshbooks_events";

int64_t RowCount(DatabricksWorld& world) {
  if (!world.engine().TableInfo(kEvents).has_value()) return 0;
  auto v = world.Column(absl::StrCat("SELECT COUNT(*) FROM ", kEvents));
  return v.empty() ? 0 : std::stoll(v[0]);
}

// Sends `n` signed webhooks over `conns` keep-alive connections as fast as possible.
int64_t Burst(Services& s, int n, int conns, int start) {
  std::atomic<int> next{0};
  std::atomic<int64_t> ok{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", s.ingress_port());
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      const std::string path = "/webhooks/freshbooks/" + s.options().connection_id;
      for (int i = next++; i < n; i = next++) {
        const auto fields = mlc::testing::StandardEvent("invoice.update", absl::StrCat(start + i));
        httplib::Headers h = {
            {"X-FreshBooks-Hmac-SHA256", mlc::FreshBooksSignature(s.options().verifier, fields)}};
        auto res = client.Post(path, h, mlc::EncodeWebhookForm(fields),
                               "application/x-www-form-urlencoded");
        if (res && res->status == 202) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok;
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  int events = 20000;
  int seconds = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--events") events = std::atoi(argv[i + 1]);
    if (a == "--seconds") seconds = std::atoi(argv[i + 1]);
  }
  DatabricksWorld world;
  mlc::testing::ServicesOptions o;
  o.sink = "databricks";
  o.databricks_host = world.url();
  o.log_level = "warn";
  o.max_rows = 500;
  o.max_delay_ms = 1000;
  Services s(o);
  s.StartAll();
  mlc::testing::WaitFor([&] { return world.engine().TableInfo(kEvents).has_value(); });
  std::printf("databricks_bench: both services as processes, fake workspace (SQL on SQLite)\n");

  // 1. Statements per 1,000 events under a burst.
  {
    const int before = world.server().StatementsExecuted();
    const int64_t acked = Burst(s, events, 32, 0);
    mlc::testing::WaitFor([&] { return RowCount(world) >= acked; }, std::chrono::seconds(120));
    const int statements = world.server().StatementsExecuted() - before;
    std::printf(
        "burst: %lld events acknowledged, %d SQL statements -> %.2f statements per 1,000 "
        "events\n",
        static_cast<long long>(acked), statements,
        1000.0 * statements / static_cast<double>(std::max<int64_t>(acked, 1)));
  }

  // 2. Rows/s with 50 ms statement latency: a backlog drains through the sink.
  {
    world.server().SetStatementLatency(absl::Milliseconds(50));
    const int64_t base = RowCount(world);
    // Journal a backlog faster than the sink drains it, then time the drain.
    const auto t0 = Clock::now();
    const int64_t acked = Burst(s, events, 32, 1000000);
    mlc::testing::WaitFor([&] { return RowCount(world) - base >= acked; },
                          std::chrono::seconds(300));
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("50 ms statements: %lld rows in %.2f s -> %.0f rows/s (ingest and sink together)\n",
                static_cast<long long>(acked), secs, static_cast<double>(acked) / secs);
    world.server().SetStatementLatency(absl::ZeroDuration());
  }

  // 3. Webhook -> row latency at 100 events/s.
  {
    std::map<std::string, Clock::time_point> sent;
    std::mutex mu;
    std::atomic<bool> stop{false};
    std::vector<double> latencies;
    std::set<std::string> seen;
    std::thread poller([&] {
      while (!stop) {
        auto ids = world.Column(absl::StrCat("SELECT delivery_id FROM ", kEvents,
                                             " WHERE event_type = 'payment.create'"));
        const auto now = Clock::now();
        std::lock_guard<std::mutex> lock(mu);
        for (const std::string& id : ids) {
          if (seen.insert(id).second && sent.count(id) > 0) {
            latencies.push_back(std::chrono::duration<double, std::milli>(now - sent[id]).count());
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    const int total = 100 * seconds;
    const auto start = Clock::now();
    for (int i = 0; i < total; ++i) {
      std::this_thread::sleep_until(start + std::chrono::milliseconds(10 * i));
      const auto t = Clock::now();
      Services::Answer a =
          s.Send(mlc::testing::StandardEvent("payment.create", absl::StrCat("lat-", i)));
      if (a.status == 202) {
        std::lock_guard<std::mutex> lock(mu);
        sent[a.delivery_id] = t;
      }
    }
    mlc::testing::WaitFor(
        [&] {
          std::lock_guard<std::mutex> lock(mu);
          return latencies.size() >= sent.size();
        },
        std::chrono::seconds(30));
    stop = true;
    poller.join();
    std::lock_guard<std::mutex> lock(mu);
    std::printf(
        "100 events/s for %d s: webhook -> row p50 %.0f ms, p99 %.0f ms "
        "(batch.max_delay_ms %d; %zu of %zu rows seen)\n",
        seconds, Percentile(latencies, 0.50), Percentile(latencies, 0.99), o.max_delay_ms,
        latencies.size(), sent.size());
  }
  return 0;
}
