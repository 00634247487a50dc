// webhook_bench: signed FreshBooks webhooks over keep-alive HTTP through both real
// services (mlc-ingress -> mlc-writer, durable group commits, SQLite sink) at
// several concurrency levels. Prints acks/s, ack latency p50/p99/p999, journal
// commits (fsyncs) per 1,000 acks, and each service's peak RSS.
//
//   webhook_bench [--seconds N] [--levels 1,8,32,128]
#include <httplib.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>

#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/support/services.h"

namespace {

using Clock = std::chrono::steady_clock;
using mlc::testing::Services;

long PeakRssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// CPU time (user + system) a process has used, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  std::getline(in, stat);
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; fields >> f; ++i) {
    if (i == 14) utime = std::atof(f.c_str());
    if (i == 15) {
      stime = std::atof(f.c_str());
      break;
    }
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double Metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::atof(line.c_str() + name.size() + 1);
  }
  return 0;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(i), v.end());
  return v[i];
}

struct Payload {
  std::string body;
  std::string signature;
};

}  // namespace

int main(int argc, char** argv) {
  int seconds = 5;
  std::vector<int> levels = {1, 8, 32, 128};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atoi(argv[++i]);
    } else if (a == "--levels" && i + 1 < argc) {
      levels.clear();
      for (absl::string_view p : absl::StrSplit(argv[++i], ',')) {
        int n = 0;
        if (absl::SimpleAtoi(p, &n)) levels.push_back(n);
      }
    } else {
      std::fprintf(stderr, "usage: webhook_bench [--seconds N] [--levels 1,8,32,128]\n");
      return 2;
    }
  }

  mlc::testing::ServicesOptions options;
  options.log_level = "warn";
  options.max_rows = 500;
  options.max_delay_ms = 200;
  Services services(options);
  services.StartAll();

  // Pre-signed payloads, so the load generator spends its CPU on HTTP, not HMAC.
  std::vector<Payload> payloads;
  for (int i = 0; i < 4096; ++i) {
    const auto fields = mlc::testing::StandardEvent(
        i % 3 == 0 ? "invoice.update" : "payment.create", absl::StrCat(100000 + i));
    payloads.push_back(
        {mlc::EncodeWebhookForm(fields), mlc::FreshBooksSignature(options.verifier, fields)});
  }
  const std::string path = "/webhooks/freshbooks/" + options.connection_id;

  std::printf("webhook_bench: %d s per level, both services as processes, durable commits\n",
              seconds);
  std::printf("%6s %9s %8s %8s %8s %8s %7s %9s %s\n", "conns", "acks", "acks/s", "p50 ms", "p99 ms",
              "p999 ms", "errors", "fsync/1k", "CPU us/ack: ingress writer client");
  for (int conns : levels) {
    const double commits_before =
        Metric(services.HttpGet(services.metrics_port(), "/metrics"), "mlc_journal_commits_total");
    const double ingress_cpu0 = CpuSeconds(services.ingress()->pid());
    const double writer_cpu0 = CpuSeconds(services.writer()->pid());
    const double self_cpu0 = CpuSeconds(getpid());
    std::atomic<bool> stop{false};
    std::atomic<long> errors{0};
    std::vector<std::vector<double>> lat(static_cast<size_t>(conns));
    std::vector<std::thread> threads;
    const auto start = Clock::now();
    for (int c = 0; c < conns; ++c) {
      threads.emplace_back([&, c] {
        httplib::Client client("127.0.0.1", services.ingress_port());
        client.set_keep_alive(true);
        client.set_tcp_nodelay(true);
        client.set_read_timeout(15, 0);
        auto& mine = lat[static_cast<size_t>(c)];
        mine.reserve(200000);
        size_t k = static_cast<size_t>(c) * 131;
        while (!stop.load(std::memory_order_relaxed)) {
          const Payload& p = payloads[k++ % payloads.size()];
          httplib::Headers headers = {{"X-FreshBooks-Hmac-SHA256", p.signature}};
          const auto t0 = Clock::now();
          auto res =
              client.Post(path.c_str(), headers, p.body, "application/x-www-form-urlencoded");
          const auto t1 = Clock::now();
          if (res && res->status == 202) {
            mine.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
          } else {
            ++errors;
          }
        }
      });
    }
    std::this_thread::sleep_for(std::chrono::seconds(seconds));
    stop = true;
    for (auto& t : threads) t.join();
    const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::vector<double> all;
    for (auto& v : lat) all.insert(all.end(), v.begin(), v.end());
    const double commits_after =
        Metric(services.HttpGet(services.metrics_port(), "/metrics"), "mlc_journal_commits_total");
    const double acks = static_cast<double>(all.size());
    // Pipeline commits (marking rows written) share the journal; count them all.
    const double per_1k = acks > 0 ? (commits_after - commits_before) * 1000.0 / acks : 0;
    const double us = acks > 0 ? 1e6 / acks : 0;
    std::printf("%6d %9.0f %8.0f %8.2f %8.2f %8.2f %7ld %9.1f %7.0f %7.0f %7.0f\n", conns, acks,
                acks / elapsed, Percentile(all, 0.50), Percentile(all, 0.99),
                Percentile(all, 0.999), errors.load(), per_1k,
                (CpuSeconds(services.ingress()->pid()) - ingress_cpu0) * us,
                (CpuSeconds(services.writer()->pid()) - writer_cpu0) * us,
                (CpuSeconds(getpid()) - self_cpu0) * us);
    std::fflush(stdout);
  }
  // Let the pipeline drain so the figures include a full run, then report memory.
  mlc::testing::WaitFor(
      [&] {
        return services.Query("journal.db",
                              "SELECT COUNT(*) FROM deliveries WHERE status='pending'") == "0";
      },
      std::chrono::seconds(60));
  std::printf("peak RSS: ingress %.1f MiB, writer %.1f MiB\n",
              static_cast<double>(PeakRssKb(services.ingress()->pid())) / 1024.0,
              static_cast<double>(PeakRssKb(services.writer()->pid())) / 1024.0);
  std::printf("rows in freshbooks_events: %s\n",
              services.Query("lakehouse.db", "SELECT COUNT(*) FROM freshbooks_events").c_str());
  return 0;
}
