// mlc-fake-freshbooks: the fake FreshBooks (tests/fakes/fake_freshbooks.h) as a
// process, for the demo and scripts. It serves the OAuth, identity, resource and
// callback endpoints FreshBooks would, sends signed webhooks to verified
// callbacks, and adds control endpoints (no auth):
//   POST /_fake/seed?count=N[&spread_hours=H]  N objects of every entity, no
//        webhooks (history for a backfill); last modified spread over H hours
//        -> {"created": <total>}
//   POST /_fake/activity?count=N  N random user actions with webhooks (new
//        invoices, payments against them, expenses, edits, a few deletes)
//        -> {"events": ["invoice.create 51", ...]}
//   POST /_fake/emit?event=invoice.sendByEmail&object_id=7  one webhook
//   GET  /_fake/stats   counters: requests by pattern and status, token
//        refreshes, webhooks sent/acked/failed/dropped/pending, objects, callbacks
//   POST /_fake/faults  JSON knobs, e.g. {"throttle":{"count":3,"retry_after":2},
//        "fail_5xx":{"count":1,"status":503}, "latency_ms":200,
//        "expire_access_tokens":true, "revoke_refresh_tokens":true,
//        "webhook_drop_probability":0.1, "drop_next_webhooks":2,
//        "webhook_duplicate_probability":0.2, "webhook_reorder_window_ms":500,
//        "pause_webhooks":true, "deny_authorization":false, "scopes":[...],
//        "classic_not_found":{"client":true}}  -> {"ok":true} or 400 {"error":..}
//
// Usage: mlc-fake-freshbooks [--port N] [--client-id ID] [--client-secret S]
//          [--redirect-uri URI] [--account-id A] [--seed N]
// The first line on stdout is "listening on http://127.0.0.1:PORT". Exits 0 on
// SIGTERM or SIGINT.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/fakes/fake_freshbooks.h"

namespace {

constexpr char kUsage[] =
    "usage: mlc-fake-freshbooks [--port N] [--client-id ID] [--client-secret S]\n"
    "                           [--redirect-uri URI] [--account-id A] [--seed N]\n";

}  // namespace

int main(int argc, char** argv) {
  mlc::testing::FakeFreshBooks::Options options;
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (i + 1 >= argc) {
      std::cerr << "missing value for " << flag << "\n" << kUsage;
      return 2;
    }
    const std::string value = argv[++i];
    bool ok = true;
    if (flag == "--port") {
      ok = absl::SimpleAtoi(value, &port) && port >= 0 && port <= 65535;
    } else if (flag == "--client-id") {
      options.client_id = value;
    } else if (flag == "--client-secret") {
      options.client_secret = value;
    } else if (flag == "--redirect-uri") {
      options.redirect_uri = value;
    } else if (flag == "--account-id") {
      options.account_id = value;
    } else if (flag == "--seed") {
      ok = absl::SimpleAtoi(value, &options.seed);
    } else {
      std::cerr << "unknown flag " << flag << "\n" << kUsage;
      return 2;
    }
    if (!ok) {
      std::cerr << "bad value for " << flag << ": \"" << value << "\"\n";
      return 2;
    }
  }
  options.listen = absl::StrCat("127.0.0.1:", port);

  // Block the shutdown signals before any thread starts, so every thread
  // inherits the mask and only sigwait below sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  mlc::testing::FakeFreshBooks fake(options);
  if (absl::Status s = fake.Start(); !s.ok()) {
    std::cerr << "mlc-fake-freshbooks: " << s << "\n";
    return 1;
  }
  std::cout << "listening on " << fake.url() << std::endl;  // flushes
  int sig = 0;
  sigwait(&signals, &sig);
  std::cerr << "mlc-fake-freshbooks: " << strsignal(sig) << ", stopping\n";
  fake.Stop();
  return 0;
}
