// The ingress HTTP adapter over cpp-httplib: routes, limits and timeouts.
//
// cpp-httplib's own timeouts are per read, so a client that sends one byte every
// few seconds could hold a worker thread forever. IngressServer replaces its
// per-connection loop with one whose reads share a deadline per request
// (Limits::request_read_timeout from the first byte of a request to the last), an
// idle keep-alive timeout, and a cap on requests per connection. Everything else
// (HTTP parsing, keep-alive, chunked bodies) stays cpp-httplib's.
//
// Routes: POST /webhooks/freshbooks/{connection_id} (other methods: 405),
// GET /oauth/freshbooks/callback (the end of FreshBooks OAuth: hands code and
// state, or FreshBooks' error, to the writer and answers the user's browser with
// a small HTML page; other methods, HEAD included, 405), GET /healthz, GET
// /readyz (the writer answers with our token), GET /metrics. Every route goes
// through the same deadline-bounded reads and body limits.
// Start() binds and serves on a background thread; Stop() stops accepting and
// waits for requests in flight. Thread-safe.
#pragma once

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/grpc_tls.h"
#include "common/metrics.h"
#include "ingress/key_cache.h"
#include "ingress/limits.h"
#include "ingress/webhook_handler.h"
#include "ingress/writer_client.h"

namespace mlc::ingress {

// httplib::Server with deadline-bounded request reads (see above).
class DeadlineServer : public httplib::Server {
 public:
  explicit DeadlineServer(Limits limits) : limits_(limits) {}
  // Counts requests cut off because they did not arrive within the deadline.
  void set_read_timeout_counter(Counter* c) { read_timeouts_ = c; }
  // cpp-httplib 0.11 listens with a backlog of 5, which drops SYNs when many
  // clients connect at once; call after binding to raise it.
  void RaiseListenBacklog(int backlog);

 private:
  bool process_and_close_socket(socket_t sock) override;
  Limits limits_;
  Counter* read_timeouts_ = nullptr;
};

class IngressServer {
 public:
  // `writer` may be injected (tests); by default a GrpcWriterClient for
  // config.writer with config.internal_token.
  IngressServer(const IngressConfig& config, Limits limits,
                std::unique_ptr<WriterClient> writer = nullptr);
  ~IngressServer();

  absl::Status Start();
  void Stop();
  int port() const { return port_; }
  Registry* registry() { return &registry_; }

 private:
  void Route();
  void Ready(httplib::Response& res);
  void OAuthCallback(const httplib::Request& req, httplib::Response& res);

  IngressConfig config_;
  Limits limits_;
  Registry registry_;
  std::unique_ptr<TlsFileMonitor> tls_monitor_;  // ingress.writer_tls files: log and gauges
  std::unique_ptr<WriterClient> writer_;
  std::unique_ptr<KeyCache> keys_;
  std::unique_ptr<WebhookHandler> handler_;
  DeadlineServer http_;
  std::thread thread_;
  int port_ = 0;
  Gauge* ready_gauge_ = nullptr;
  Family<Counter>* http_requests_ = nullptr;
  Family<Counter>* oauth_callbacks_ = nullptr;  // {outcome}
  Family<Counter>* writer_calls_ = nullptr;     // {method, code}

  absl::Mutex ready_mu_;
  absl::Time ready_checked_ ABSL_GUARDED_BY(ready_mu_) = absl::InfinitePast();
  absl::Status ready_status_ ABSL_GUARDED_BY(ready_mu_);
  std::atomic<bool> stopped_{false};
};

}  // namespace mlc::ingress
