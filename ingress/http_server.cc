#include "ingress/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/http_server_util.h"
#include "common/logging.h"

namespace mlc::ingress {
namespace {

using SteadyClock = std::chrono::steady_clock;

void SockAddrToIpPort(const sockaddr_storage& addr, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
    port = ntohs(a->sin6_port);
  }
  ip = buf;
}

// A socket stream whose reads give up at a deadline shared by the whole request,
// instead of a timeout that restarts with every byte. Buffered, like httplib's.
class DeadlineStream final : public httplib::Stream {
 public:
  DeadlineStream(socket_t sock, std::chrono::milliseconds write_timeout)
      : sock_(sock), write_timeout_(write_timeout) {}

  void set_deadline(SteadyClock::time_point d) { deadline_ = d; }
  bool deadline_hit() const { return deadline_hit_; }
  // Caps the bytes the rest of the current request may read (SIZE_MAX: no cap).
  void set_read_budget(size_t bytes) { budget_ = bytes; }
  bool budget_hit() const { return budget_hit_; }
  bool has_buffered() const { return pos_ < len_; }

  // Waits up to `timeout` for the next request's first byte, in slices so a
  // stopping server is noticed. False on timeout, EOF-free idle end, or stop.
  bool WaitForRequest(std::chrono::milliseconds timeout, const std::atomic<socket_t>& svr_sock) {
    if (has_buffered()) return true;
    const auto end = SteadyClock::now() + timeout;
    while (svr_sock != INVALID_SOCKET) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(end - SteadyClock::now());
      if (left.count() <= 0) return false;
      const int r = Poll(POLLIN, std::min<int64_t>(left.count(), 100));
      if (r > 0) return true;
      if (r < 0) return false;
    }
    return false;
  }

  bool is_readable() const override {
    if (has_buffered()) return true;
    return const_cast<DeadlineStream*>(this)->PollRead() > 0;
  }
  bool is_writable() const override {
    return const_cast<DeadlineStream*>(this)->Poll(POLLOUT,
                                                   static_cast<int>(write_timeout_.count())) > 0;
  }

  ssize_t read(char* ptr, size_t size) override {
    if (!out_.empty() && !Flush()) return -1;
    if (budget_ == 0) {
      budget_hit_ = true;
      return -1;
    }
    size = std::min(size, budget_);
    if (!has_buffered()) {
      // Try first, wait only if nothing is there: saves a poll() per request.
      ssize_t n;
      do {
        n = ::recv(sock_, buf_, sizeof(buf_), MSG_DONTWAIT);
      } while (n < 0 && errno == EINTR);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (PollRead() <= 0) return -1;
        do {
          n = ::recv(sock_, buf_, sizeof(buf_), 0);
        } while (n < 0 && errno == EINTR);
      }
      if (n <= 0) return n;
      pos_ = 0;
      len_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, len_ - pos_);
    std::memcpy(ptr, buf_ + pos_, n);
    pos_ += n;
    if (budget_ != SIZE_MAX) budget_ -= n;
    return static_cast<ssize_t>(n);
  }

  // cpp-httplib writes a response piecewise (status line, each header, body);
  // with TCP_NODELAY every piece would be its own segment and syscall. Writes are
  // buffered and sent in one go by Flush(): before the next read (so an
  // "100 Continue" goes out before we wait for the body) and after each request.
  ssize_t write(const char* ptr, size_t size) override {
    out_.append(ptr, size);
    if (out_.size() >= kMaxBufferedOutput && !Flush()) return -1;
    return static_cast<ssize_t>(size);
  }

  // Sends the buffered output, each wait bounded by the write timeout.
  bool Flush() {
    size_t sent = 0;
    while (sent < out_.size()) {
      if (Poll(POLLOUT, static_cast<int>(write_timeout_.count())) <= 0) {
        out_.clear();
        return false;
      }
      ssize_t n;
      do {
        n = ::send(sock_, out_.data() + sent, out_.size() - sent, MSG_NOSIGNAL);
      } while (n < 0 && errno == EINTR);
      if (n <= 0) {
        out_.clear();
        return false;
      }
      sent += static_cast<size_t>(n);
    }
    out_.clear();
    return true;
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getpeername(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      SockAddrToIpPort(addr, ip, port);
    }
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    if (::getsockname(sock_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      SockAddrToIpPort(addr, ip, port);
    }
  }
  socket_t socket() const override { return sock_; }

 private:
  int PollRead() {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - SteadyClock::now());
    if (left.count() <= 0) {
      deadline_hit_ = true;
      return 0;
    }
    const int r = Poll(POLLIN, static_cast<int>(left.count()));
    if (r == 0) deadline_hit_ = true;
    return r;
  }
  int Poll(int16_t events, int timeout_ms) {
    pollfd p{sock_, events, 0};
    int r;
    do {
      r = ::poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r;
  }

  socket_t sock_;
  std::chrono::milliseconds write_timeout_;
  SteadyClock::time_point deadline_ = SteadyClock::now();
  bool deadline_hit_ = false;
  size_t budget_ = SIZE_MAX;
  bool budget_hit_ = false;
  static constexpr size_t kMaxBufferedOutput = 64 * 1024;
  char buf_[4096];
  size_t pos_ = 0;
  size_t len_ = 0;
  std::string out_;
};

std::string Header(const httplib::Request& req, const char* name, bool* present = nullptr) {
  // httplib stores headers in a case-insensitive multimap.
  const bool has = req.has_header(name);
  if (present != nullptr) *present = has;
  return has ? req.get_header_value(name) : std::string();
}

}  // namespace

void DeadlineServer::RaiseListenBacklog(int backlog) {
  const socket_t s = svr_sock_;
  if (s != INVALID_SOCKET) ::listen(s, backlog);  // Linux updates the backlog in place
}

bool DeadlineServer::process_and_close_socket(socket_t sock) {
  // Responses go out in several writes (status line and headers, then body); with
  // Nagle on, the second waits for the peer's delayed ACK (~40 ms).
  const int one = 1;
  ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  DeadlineStream strm(sock, limits_.write_timeout);
  bool ok = true;
  for (size_t served = 0; served < limits_.max_requests_per_connection; ++served) {
    const auto idle = served == 0 ? limits_.request_read_timeout : limits_.keep_alive_timeout;
    if (!strm.WaitForRequest(idle, svr_sock_)) break;
    strm.set_deadline(SteadyClock::now() + limits_.request_read_timeout);
    bool connection_closed = false;
    const bool last =
        served + 1 == limits_.max_requests_per_connection || svr_sock_ == INVALID_SOCKET;
    // cpp-httplib 0.11 applies payload_max_length only to a body with a
    // Content-Length: a chunked body, or one read until EOF, would be buffered
    // whole. Cap those (chunk framing included); the webhook route answers 413 to
    // one over max_body_bytes that fits, and a connection over the cap is closed.
    strm.set_read_budget(SIZE_MAX);
    const size_t cap =
        payload_max_length_ < SIZE_MAX / 4 ? 2 * payload_max_length_ + 65536 : SIZE_MAX - 1;
    ok = process_request(strm, last, connection_closed, [&strm, cap](httplib::Request& req) {
      if (!req.has_header("Content-Length")) strm.set_read_budget(cap);
    });
    ok = strm.Flush() && ok;
    if (strm.budget_hit()) {
      std::string ip;
      int port = 0;
      strm.get_remote_ip_and_port(ip, port);
      log::Warn("http: closed a connection whose body without Content-Length exceeded the limit",
                {{"remote", ip}});
      break;
    }
    if (strm.deadline_hit()) {
      if (read_timeouts_ != nullptr) read_timeouts_->Inc();
      std::string ip;
      int port = 0;
      strm.get_remote_ip_and_port(ip, port);
      log::Warn("http: closed a connection whose request did not arrive in time",
                {{"remote", ip},
                 {"timeout_ms", static_cast<int64_t>(limits_.request_read_timeout.count())}});
      break;
    }
    if (!ok || connection_closed || last) break;
  }
  ::shutdown(sock, SHUT_RDWR);
  ::close(sock);
  return ok;
}

IngressServer::IngressServer(const IngressConfig& config, Limits limits,
                             std::unique_ptr<WriterClient> writer)
    : config_(config), limits_(limits), writer_(std::move(writer)), http_(limits) {
  if (writer_ == nullptr) {
    writer_ = std::make_unique<GrpcWriterClient>(config_.writer, config_.internal_token);
  }
  keys_ = std::make_unique<KeyCache>(writer_.get(), limits_);
  WebhookMetrics wm;
  wm.webhooks =
      registry_.AddCounter("mlc_webhooks_total", "Webhook requests by outcome", {"outcome"});
  wm.ack_seconds = registry_
                       .AddHistogram("mlc_webhook_ack_seconds",
                                     "Accepted webhooks: request read to 202 (journaled)")
                       ->With({});
  wm.writer_calls = registry_.AddCounter("mlc_writer_calls_total",
                                         "Calls from ingress to the writer by method and result",
                                         {"method", "code"});
  handler_ = std::make_unique<WebhookHandler>(keys_.get(), writer_.get(), limits_, wm);
  ready_gauge_ =
      registry_.AddGauge("mlc_ingress_ready", "1 when the writer answers ingress")->With({});
  http_requests_ = registry_.AddCounter(
      "mlc_http_requests_total", "HTTP requests answered by ingress, by status class", {"code"});
  http_.set_read_timeout_counter(
      registry_
          .AddCounter("mlc_http_read_timeouts_total",
                      "Connections closed because a request did not arrive within the deadline")
          ->With({}));
}

IngressServer::~IngressServer() { Stop(); }

void IngressServer::Route() {
  const std::string webhook = R"(/webhooks/freshbooks/([^/]*))";
  http_.Post(webhook, [this](const httplib::Request& req, httplib::Response& res) {
    WebhookRequest w;
    w.received_at = absl::Now();
    w.connection_id = req.matches[1];
    w.content_type = Header(req, "Content-Type");
    w.signature = Header(req, "X-FreshBooks-Hmac-SHA256", &w.has_signature);
    if (req.body.size() > static_cast<size_t>(config_.max_body_bytes)) {
      // A chunked body (or one without Content-Length), which httplib does not
      // check: refuse it as httplib refuses the others; the logger counts it.
      res.status = 413;
      return;
    }
    w.body = req.body;
    w.remote_addr = req.remote_addr;
    WebhookResponse r = handler_->Handle(w);
    res.status = r.status;
    res.set_content(r.body, "application/json");
  });
  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "POST");
    res.set_content(R"({"error":"method not allowed: use POST"})", "application/json");
  };
  http_.Get(webhook, not_allowed);
  http_.Put(webhook, not_allowed);
  http_.Delete(webhook, not_allowed);
  http_.Patch(webhook, not_allowed);
  http_.Options(webhook, not_allowed);

  http_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  http_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { Ready(res); });
  http_.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry_.Render(), "text/plain; version=0.0.4");
  });

  // Bodies over max_body_bytes are refused by httplib with 413 before any handler
  // runs; the logger is where they become a log line and a counter.
  http_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    http_requests_->With({absl::StrCat(res.status / 100, "xx")})->Inc();
    if (res.status == 413) {
      WebhookRequest w;
      w.remote_addr = req.remote_addr;
      w.connection_id = req.path;
      handler_->Record(w, WebhookResponse{413, "", "too_large"},
                       absl::StrCat("body over max_body_bytes (", config_.max_body_bytes, ")"));
    }
  });
  http_.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.body.empty()) {
      res.set_content(absl::StrCat(R"({"error":"http )", res.status, "\"}"), "application/json");
    }
  });
}

void IngressServer::Ready(httplib::Response& res) {
  absl::Status status;
  {
    absl::MutexLock lock(&ready_mu_);
    if (absl::Now() - ready_checked_ > absl::Seconds(1)) {
      ready_checked_ = absl::Now();
      ready_status_ = keys_->Refresh();
    }
    status = ready_status_;
  }
  ready_gauge_->Set(status.ok() ? 1 : 0);
  if (status.ok()) {
    res.set_content("ready\n", "text/plain");
  } else {
    res.status = 503;
    res.set_content(absl::StrCat("not ready: writer: ", status.message(), "\n"), "text/plain");
  }
}

absl::Status IngressServer::Start() {
  Route();
  http_.set_payload_max_length(static_cast<size_t>(config_.max_body_bytes));
  const size_t threads = limits_.worker_threads;
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  absl::StatusOr<int> port = StartHttpServer(&http_, "ingress.listen", config_.listen, &thread_);
  if (!port.ok()) return port.status();
  port_ = *port;
  http_.RaiseListenBacklog(1024);
  (void)keys_->Refresh();  // best effort; the refresher keeps trying
  keys_->StartRefresher();
  log::Info("ingress started", {{"listen", config_.listen},
                                {"port", port_},
                                {"writer", config_.writer},
                                {"max_body_bytes", config_.max_body_bytes}});
  return absl::OkStatus();
}

void IngressServer::Stop() {
  if (stopped_.exchange(true)) return;
  // Stop accepting; httplib then waits for its workers, i.e. requests in flight.
  StopHttpServer(&http_, &thread_);
  keys_.reset();
  log::Info("ingress stopped");
}

}  // namespace mlc::ingress
