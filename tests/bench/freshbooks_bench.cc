// freshbooks_bench: the FreshBooks side through both real services and the fake
// FreshBooks (every API request delayed by --latency-ms, default 50). Prints
//   1. hydration throughput: distinct objects fetched and written per second,
//   2. FreshBooks calls per 1,000 events when a third of the events repeat an
//      object of the same batch (coalescing),
//   3. backfill: objects/s of a full sync of a seeded account.
//
//   freshbooks_bench [--objects N] [--latency-ms L] [--rps R] [--seed-per-entity K]
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/freshbooks_world.h"

namespace {

using Clock = std::chrono::steady_clock;
using mlc::testing::FreshBooksWorld;
using mlc::testing::FreshBooksWorldOptions;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Sends one signed webhook per (event, object id) over `conns` connections;
// returns how many were acknowledged.
int Send(FreshBooksWorld& w, const std::vector<int64_t>& ids, const std::string& event, int conns) {
  std::atomic<size_t> next{0};
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  const auto& s = w.services();
  for (int c = 0; c < conns; ++c) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", s.ingress_port());
      client.set_keep_alive(true);
      const std::string path = "/webhooks/freshbooks/" + s.options().connection_id;
      for (size_t i = next++; i < ids.size(); i = next++) {
        const auto fields = mlc::testing::StandardEvent(event, std::to_string(ids[i]));
        httplib::Headers h = {
            {"X-FreshBooks-Hmac-SHA256", mlc::FreshBooksSignature(s.options().verifier, fields)}};
        auto res = client.Post(path, h, mlc::EncodeWebhookForm(fields),
                               "application/x-www-form-urlencoded");
        if (res && res->status == 202) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  return ok.load();
}

std::string Pending(FreshBooksWorld& w) {
  return w.services().Query("journal.db",
                            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'");
}

bool WaitDrained(FreshBooksWorld& w, int seconds) {
  return mlc::testing::WaitFor([&] { return Pending(w) == "0"; }, std::chrono::seconds(seconds));
}

}  // namespace

int main(int argc, char** argv) {
  int objects = 600, latency_ms = 50, rps = 100, seed_per_entity = 300;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--objects") objects = v;
    if (a == "--latency-ms") latency_ms = v;
    if (a == "--rps") rps = v;
    if (a == "--seed-per-entity") seed_per_entity = v;
  }
  FreshBooksWorldOptions o;
  o.services.log_level = "warn";
  o.services.max_rows = 500;
  o.services.max_delay_ms = 200;
  o.services.freshbooks_requests_per_second = rps;
  o.services.freshbooks_events = {"client"};  // registration is not measured here
  FreshBooksWorld w(o);
  w.StartAuthorized();
  std::mt19937_64 rng(1);
  std::printf(
      "freshbooks_bench: FreshBooks latency %d ms per request, budget %d requests/s, "
      "8 parallel fetches\n",
      latency_ms, rps);

  // 1. Hydration throughput.
  std::vector<int64_t> ids;
  for (int i = 0; i < objects; ++i) {
    nlohmann::json inv = w.fb().Create("invoice", mlc::testing::NewSample("invoice", rng), false);
    ids.push_back(inv["id"].get<int64_t>());
  }
  w.fb().SetLatency(absl::Milliseconds(latency_ms));
  const int gets0 = w.fb().Requests("GET invoice");
  auto t0 = Clock::now();
  const int acked = Send(w, ids, "invoice.update", 8);
  if (!WaitDrained(w, 600)) {
    std::fprintf(stderr, "hydration did not drain\n%s", w.services().WriterLog().c_str());
    return 1;
  }
  const double hydrate_s = Seconds(Clock::now() - t0);
  const int gets = w.fb().Requests("GET invoice") - gets0;
  std::printf(
      "1. hydration: %d events (distinct invoices with lines) acked, %d fetches, "
      "written in %.2f s = %.1f objects/s\n",
      acked, gets, hydrate_s, gets / hydrate_s);

  // 2. Coalescing: 1,000 distinct objects + 500 repeats, sent together.
  std::vector<int64_t> fresh;
  for (int i = 0; i < 1000; ++i) {
    nlohmann::json p = w.fb().Create("payment", mlc::testing::NewSample("payment", rng), false);
    fresh.push_back(p["id"].get<int64_t>());
  }
  std::vector<int64_t> events;
  for (size_t i = 0; i < fresh.size(); ++i) {
    events.push_back(fresh[i]);
    if (i % 2 == 1) events.push_back(fresh[i - 1]);  // every other object twice: 1/3 repeats
  }
  const int pgets0 = w.fb().Requests("GET payment");
  t0 = Clock::now();
  const int sent = Send(w, events, "payment.update", 8);
  if (!WaitDrained(w, 600)) {
    std::fprintf(stderr, "coalescing run did not drain\n");
    return 1;
  }
  const int pgets = w.fb().Requests("GET payment") - pgets0;
  std::printf(
      "2. coalescing: %d events (%zu distinct payments, a third repeats) -> %d fetches = "
      "%.0f FreshBooks calls per 1,000 events (%.2f s)\n",
      sent, fresh.size(), pgets, 1000.0 * pgets / sent, Seconds(Clock::now() - t0));

  // 3. Backfill: every entity, the whole history.
  const int seeded = w.fb().Seed(seed_per_entity);
  t0 = Clock::now();
  std::string out;
  const int rc = w.services().RunCli(
      {"--json", "--timeout", "1800", "sync", "--connection", "acme", "--full"}, &out);
  const double backfill_s = Seconds(Clock::now() - t0);
  int64_t synced = 0, pages = 0;
  const size_t open = out.find('{');
  nlohmann::json report = nlohmann::json::parse(
      open == std::string::npos ? std::string("null") : out.substr(open), nullptr, false);
  if (rc != 0 || !report.is_object()) {
    std::fprintf(stderr, "backfill failed (exit %d): %s\n", rc, out.c_str());
    return 1;
  }
  for (const nlohmann::json& e : report.value("entities", nlohmann::json::array())) {
    // int64 fields are JSON strings in proto3's JSON mapping.
    auto num = [](const nlohmann::json& v) {
      return v.is_string() ? std::stoll(v.get<std::string>()) : v.get<int64_t>();
    };
    if (e.contains("objects")) synced += num(e["objects"]);
    if (e.contains("pages")) pages += num(e["pages"]);
  }
  std::printf(
      "3. backfill: %d objects seeded across every entity; full sync read %lld objects "
      "in %lld pages in %.2f s = %.0f objects/s\n",
      seeded, static_cast<long long>(synced), static_cast<long long>(pages), backfill_s,
      synced / backfill_s);
  return 0;
}
