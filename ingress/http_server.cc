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

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
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
  // stopping server is noticed. False on timeout, EOF-free idle end, or stop -
  // but once the server is stopping, a request whose bytes have already arrived
  // is still served: only connections with nothing to read are closed.
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
    return Poll(POLLIN, 0) > 0;
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

// ---------------------------------------------------------------------------
// GET /oauth/freshbooks/callback

constexpr char kOAuthCallbackPath[] = "/oauth/freshbooks/callback";
// Each query parameter the callback reads; FreshBooks' codes and our states are
// far shorter. (httplib refuses request lines over 8 KiB with 414 before routing.)
constexpr size_t kMaxOAuthParamBytes = 2048;
// The writer exchanges the code with FreshBooks and reads /users/me before it
// answers, so this is much longer than a webhook's writer deadline.
constexpr std::chrono::milliseconds kAuthorizationDeadline{30000};

std::string HtmlEscape(absl::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// The answer to the user's browser: a self-contained page (no scripts, styles or
// external resources, which the CSP also forbids) that is never cached and never
// leaks the URL, which carried the authorization code, as a Referer.
// `title` is plain text; `body_html` must already be escaped.
void SetOAuthPage(httplib::Response& res, int status, absl::string_view title,
                  const std::string& body_html) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  const std::string t = HtmlEscape(title);
  res.set_content(
      absl::StrCat("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>",
                   t, "</title></head>\n<body><h1>", t, "</h1>\n", body_html, "\n</body></html>\n"),
      "text/html; charset=utf-8");
}

// Writer messages name a connection as `connection "acme"` (STYLE.md); the id
// makes the hint copy-pasteable. Empty when the message names none.
std::string ConnectionNamedIn(absl::string_view message) {
  constexpr absl::string_view kMarker = "connection \"";
  const size_t at = message.find(kMarker);
  if (at == absl::string_view::npos) return "";
  const size_t start = at + kMarker.size();
  const size_t end = message.find('"', start);
  if (end == absl::string_view::npos) return "";
  std::string id(message.substr(start, end - start));
  return ValidConnectionId(id) ? id : "";
}

std::string RestartHint(const std::string& connection_id) {
  return absl::StrCat("<p>Start again with <code>mlc authorize --connection ",
                      connection_id.empty() ? "&lt;connection id&gt;" : HtmlEscape(connection_id),
                      "</code> and open the new link.</p>");
}

// Lower-case gRPC code name ("invalid_argument"): a bounded metric label.
std::string CodeLabel(absl::StatusCode code) {
  return absl::AsciiStrToLower(absl::StatusCodeToString(code));
}

// What the callback read from its query string; values are never logged.
struct OAuthParams {
  mlconnector::v1::CompleteAuthorizationRequest request;
  std::string problem;  // why the query is refused; empty if it is usable
};

OAuthParams ReadOAuthParams(const httplib::Request& req) {
  OAuthParams p;
  const auto read = [&req, &p](const char* name, std::string* out) {
    const size_t n = req.get_param_value_count(name);
    if (n == 0 || !p.problem.empty()) return;
    if (n > 1) {
      p.problem = absl::StrCat("the link has more than one \"", name, "\" parameter");
      return;
    }
    *out = req.get_param_value(name);
    if (out->size() > kMaxOAuthParamBytes) {
      p.problem = absl::StrCat("the link's \"", name, "\" parameter is longer than ",
                               kMaxOAuthParamBytes, " bytes");
    }
  };
  auto& r = p.request;
  read("code", r.mutable_code());
  read("state", r.mutable_state());
  read("error", r.mutable_error());
  read("error_description", r.mutable_error_description());
  // FreshBooks' own error (the user denied access, ...) goes to the writer even
  // without code: the writer consumes the state and words the answer.
  if (p.problem.empty() && r.error().empty() && (r.code().empty() || r.state().empty())) {
    p.problem = "the link is missing its \"code\" or \"state\" parameter";
  }
  return p;
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
  oauth_callbacks_ = registry_.AddCounter("mlc_oauth_callbacks_total",
                                          "FreshBooks OAuth callbacks by outcome", {"outcome"});
  writer_calls_ = wm.writer_calls;
  http_.set_read_timeout_counter(
      registry_
          .AddCounter("mlc_http_read_timeouts_total",
                      "Connections closed because a request did not arrive within the deadline")
          ->With({}));
  tls_monitor_ = TlsFileMonitor::ForClient(
      config_.writer_tls, TlsClientSettings::ConfigKeys("ingress.writer_tls"), &registry_);
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

  // OAuthCallback answers every method itself: only GET may reach the writer.
  auto oauth = [this](const httplib::Request& req, httplib::Response& res) {
    OAuthCallback(req, res);
  };
  http_.Get(kOAuthCallbackPath, oauth);
  http_.Post(kOAuthCallbackPath, oauth);
  http_.Put(kOAuthCallbackPath, oauth);
  http_.Delete(kOAuthCallbackPath, oauth);
  http_.Patch(kOAuthCallbackPath, oauth);
  http_.Options(kOAuthCallbackPath, oauth);

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

void IngressServer::OAuthCallback(const httplib::Request& req, httplib::Response& res) {
  // The state is single-use: only a GET spends it. httplib also routes HEAD
  // here, and a HEAD (a link previewer, say) must not spend it either.
  if (req.method != "GET") {
    res.set_header("Allow", "GET");
    SetOAuthPage(res, 405, "Method not allowed",
                 "<p>Open the authorization link in a browser (GET).</p>");
    oauth_callbacks_->With({"method_not_allowed"})->Inc();
    log::Warn("oauth callback rejected", {{"outcome", "method_not_allowed"},
                                          {"status", 405},
                                          {"method", req.method},
                                          {"remote", req.remote_addr}});
    return;
  }
  const OAuthParams params = ReadOAuthParams(req);
  const auto& request = params.request;
  // Lengths only: the code and the state are credentials until they are spent.
  const auto code_bytes = static_cast<int64_t>(request.code().size());
  const auto state_bytes = static_cast<int64_t>(request.state().size());
  // FreshBooks' error is a short OAuth error code ("access_denied"), not a secret.
  const std::string fb_error = request.error().substr(0, 64);

  if (!params.problem.empty()) {
    SetOAuthPage(res, 400, "FreshBooks authorization failed",
                 absl::StrCat("<p>", HtmlEscape(params.problem), ".</p>\n", RestartHint("")));
    oauth_callbacks_->With({"invalid_request"})->Inc();
    log::Warn("oauth callback rejected", {{"outcome", "invalid_request"},
                                          {"status", 400},
                                          {"cause", params.problem},
                                          {"code_bytes", code_bytes},
                                          {"state_bytes", state_bytes},
                                          {"freshbooks_error", fb_error},
                                          {"remote", req.remote_addr}});
    return;
  }

  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> done =
      writer_->CompleteAuthorization(request, kAuthorizationDeadline);
  const auto elapsed_ms =
      static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - start)
                               .count());
  const absl::StatusCode code = done.status().code();
  writer_calls_->With({"CompleteAuthorization", CodeLabel(code)})->Inc();

  if (done.ok()) {
    const std::string business =
        done->business_name().empty() ? "" : absl::StrCat(" (", done->business_name(), ")");
    SetOAuthPage(
        res, 200, "FreshBooks connected",
        absl::StrCat("<p>",
                     HtmlEscape(absl::StrCat(
                         "FreshBooks connected: connection ", done->connection_id(), ", account ",
                         done->account_id(), business, ". You can close this window.")),
                     "</p>"));
    oauth_callbacks_->With({"connected"})->Inc();
    log::Info("oauth callback: freshbooks connected", {{"outcome", "connected"},
                                                       {"status", 200},
                                                       {"connection", done->connection_id()},
                                                       {"account_id", done->account_id()},
                                                       {"elapsed_ms", elapsed_ms},
                                                       {"remote", req.remote_addr}});
    return;
  }

  const std::string message(done.status().message());
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kUnauthenticated: {
      // The writer words these for the user and keeps secrets out of them.
      SetOAuthPage(res, 400, "FreshBooks authorization failed",
                   absl::StrCat("<p>", HtmlEscape(message), "</p>\n",
                                RestartHint(ConnectionNamedIn(message))));
      oauth_callbacks_->With({"rejected"})->Inc();
      log::Warn("oauth callback rejected by the writer", {{"outcome", "rejected"},
                                                          {"status", 400},
                                                          {"writer_code", CodeLabel(code)},
                                                          {"cause", message},
                                                          {"code_bytes", code_bytes},
                                                          {"state_bytes", state_bytes},
                                                          {"freshbooks_error", fb_error},
                                                          {"elapsed_ms", elapsed_ms},
                                                          {"remote", req.remote_addr}});
      return;
    }
    default:
      SetOAuthPage(res, 503, "FreshBooks authorization not completed",
                   "<p>The writer could not complete the authorization right now; open the "
                   "link again.</p>");
      oauth_callbacks_->With({"writer_unavailable"})->Inc();
      log::Warn("oauth callback: writer unavailable", {{"outcome", "writer_unavailable"},
                                                       {"status", 503},
                                                       {"writer_code", CodeLabel(code)},
                                                       {"cause", message},
                                                       {"code_bytes", code_bytes},
                                                       {"state_bytes", state_bytes},
                                                       {"elapsed_ms", elapsed_ms},
                                                       {"remote", req.remote_addr}});
      return;
  }
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
