// IngressServer over real loopback sockets with a fake writer: the routes and
// statuses FreshBooks and operators see (DESIGN.md §3.3), the body limit, and the
// read deadlines that keep slow or idle clients from holding workers (§5).
#include "ingress/http_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/webhook_signature.h"
#include "ingress/limits.h"
#include "tests/ingress/fake_writer_client.h"
#include "tests/support/test_util.h"

namespace mlc::ingress {
namespace {

using mlc::testing::FakeWriterClient;
using mlc::testing::WaitFor;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

constexpr char kForm[] = "application/x-www-form-urlencoded";
constexpr char kPath[] = "/webhooks/freshbooks/acme";
constexpr char kVerifier[] = "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd";

// How long a slow client may be held at most, with request_read_timeout and
// keep_alive_timeout at 300 ms (generous for sanitizer builds on shared cores).
constexpr milliseconds kSlowLimit{300};
constexpr milliseconds kCloseBound{1500};

FormFields EventFields() {
  return {{"name", "invoice.create"}, {"object_id", "1234567"}, {"account_id", "6BApk"},
          {"business_id", "6543"},    {"identity_id", "1234"},  {"user_id", "1"}};
}

milliseconds Since(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start);
}

Limits SlowClientLimits() {
  Limits limits;
  limits.request_read_timeout = kSlowLimit;
  limits.keep_alive_timeout = kSlowLimit;
  limits.worker_threads = 8;
  return limits;
}

Limits TestLimits() {
  Limits limits;
  limits.worker_threads = 8;
  return limits;
}

// An IngressServer on 127.0.0.1:0 in front of a FakeWriterClient that knows
// connection "acme" signed with kVerifier.
class Server {
 public:
  explicit Server(Limits limits = TestLimits(), int64_t max_body_bytes = 65536,
                  absl::Status list_status = absl::OkStatus()) {
    auto writer = std::make_unique<FakeWriterClient>();
    writer_ = writer.get();
    writer_->AddKey("acme", "callback:1", kVerifier);
    writer_->SetListStatus(std::move(list_status));
    IngressConfig config;
    config.listen = "127.0.0.1:0";
    config.writer = "127.0.0.1:1";  // unused: the fake is injected
    config.max_body_bytes = max_body_bytes;
    server_ = std::make_unique<IngressServer>(config, limits, std::move(writer));
    const absl::Status s = server_->Start();
    EXPECT_TRUE(s.ok()) << s;
    EXPECT_GT(server_->port(), 0);
  }

  int port() const { return server_->port(); }
  FakeWriterClient& writer() { return *writer_; }
  IngressServer& server() { return *server_; }

  std::unique_ptr<httplib::Client> Client() const {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", port());
    client->set_connection_timeout(5, 0);
    client->set_read_timeout(5, 0);
    client->set_write_timeout(5, 0);
    return client;
  }

  httplib::Result PostSigned(httplib::Client& client, const FormFields& fields = EventFields()) {
    const httplib::Headers headers = {
        {"X-FreshBooks-Hmac-SHA256", FreshBooksSignature(kVerifier, fields)}};
    return client.Post(kPath, headers, EncodeWebhookForm(fields), kForm);
  }

  std::string Metrics() {
    auto res = Client()->Get("/metrics");
    return res ? res->body : std::string();
  }

 private:
  FakeWriterClient* writer_ = nullptr;  // owned by server_
  std::unique_ptr<IngressServer> server_;
};

// A plain TCP client, for what httplib::Client cannot do: send slowly, stall, and
// notice when the server closes the connection.
class RawClient {
 public:
  enum class Read { kData, kClosed, kTimeout };

  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return connected_; }
  void ShutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  bool closed() const { return closed_; }
  const std::string& received() const { return received_; }

  // False once the peer has closed (EPIPE, ECONNRESET).
  bool Send(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        closed_ = true;
        return false;
      }
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Waits up to `timeout` for bytes or for the peer to close.
  Read ReadSome(milliseconds timeout) {
    if (closed_) return Read::kClosed;
    pollfd p{fd_, POLLIN, 0};
    int r;
    do {
      r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(timeout.count(), 0)));
    } while (r < 0 && errno == EINTR);
    if (r == 0) return Read::kTimeout;
    char buf[4096];
    ssize_t n;
    do {
      n = ::recv(fd_, buf, sizeof(buf), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {  // orderly close, or reset
      closed_ = true;
      return Read::kClosed;
    }
    received_.append(buf, static_cast<size_t>(n));
    return Read::kData;
  }

  // Reads until the server closes the connection; false if it has not within `timeout`.
  bool WaitClosed(milliseconds timeout) {
    const auto end = SteadyClock::now() + timeout;
    while (!closed_) {
      const auto left = std::chrono::duration_cast<milliseconds>(end - SteadyClock::now());
      if (left.count() <= 0) return false;
      ReadSome(left);
    }
    return true;
  }

  // Reads one complete response (headers and Content-Length body) and returns its
  // status code, consuming it from received(); -1 on timeout or close.
  int ReadResponse(milliseconds timeout) {
    const auto end = SteadyClock::now() + timeout;
    while (true) {
      const size_t header_end = received_.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        size_t length = 0;
        const std::string head = received_.substr(0, header_end);
        for (const char* name : {"Content-Length: ", "content-length: "}) {
          const size_t at = head.find(name);
          if (at != std::string::npos) {
            length = std::strtoul(head.c_str() + at + std::strlen(name), nullptr, 10);
          }
        }
        if (received_.size() >= header_end + 4 + length) {
          int status = -1;
          std::sscanf(head.c_str(), "HTTP/1.%*d %d", &status);
          last_response_ = received_.substr(0, header_end + 4 + length);
          received_.erase(0, header_end + 4 + length);
          return status;
        }
      }
      const auto left = std::chrono::duration_cast<milliseconds>(end - SteadyClock::now());
      if (left.count() <= 0 || ReadSome(left) == Read::kClosed) return -1;
    }
  }
  const std::string& last_response() const { return last_response_; }

  // Sends `data` one byte every `interval` while watching for the server to close
  // the connection. Returns the number of bytes sent before it did (data.size()
  // if it never did).
  size_t Trickle(const std::string& data, milliseconds interval) {
    for (size_t i = 0; i < data.size(); ++i) {
      if (!Send(data.substr(i, 1))) return i;
      const auto next = SteadyClock::now() + interval;
      while (true) {
        const auto left = std::chrono::duration_cast<milliseconds>(next - SteadyClock::now());
        if (left.count() <= 0) break;
        if (ReadSome(left) == Read::kClosed) return i + 1;
      }
    }
    return data.size();
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string received_;
  std::string last_response_;
};

std::string SignedRequestText(const std::string& extra_headers = "") {
  const std::string body = EncodeWebhookForm(EventFields());
  return absl::StrCat("POST ", kPath,
                      " HTTP/1.1\r\n"
                      "Host: 127.0.0.1\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      "X-FreshBooks-Hmac-SHA256: ",
                      FreshBooksSignature(kVerifier, EventFields()), "\r\n", extra_headers,
                      "Content-Length: ", body.size(), "\r\n\r\n", body);
}

// Request headers that take ~10 s to trickle in at one byte per 100 ms.
std::string SlowHeadersText() {
  return absl::StrCat("POST ", kPath,
                      " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      "application/x-www-form-urlencoded\r\nX-Padding: ",
                      std::string(40, 'p'), "\r\n\r\n");
}

bool IsSuccess(const std::string& response_bytes) {
  return absl::StartsWith(response_bytes, "HTTP/1.1 2") ||
         absl::StrContains(response_bytes, "\nHTTP/1.1 2");
}

// Runs `fn` on its own thread; false if it has not returned within `timeout`
// (the process is then ended: a hung Stop() cannot be recovered from).
bool ReturnsWithin(milliseconds timeout, std::function<void()> fn) {
  std::packaged_task<void()> task(std::move(fn));
  std::future<void> done = task.get_future();
  std::thread t(std::move(task));
  if (done.wait_for(timeout) != std::future_status::ready) {
    std::fprintf(stderr, "did not return within %lld ms; aborting\n",
                 static_cast<long long>(timeout.count()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  t.join();
  return true;
}

// ---------------------------------------------------------------------------
// Routes

TEST(HttpServerTest, ValidSignedWebhookIs202WithDeliveryId) {
  Server s;
  auto client = s.Client();
  auto res = s.PostSigned(*client);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 202);
  EXPECT_EQ(res->body, R"({"delivery_id":"dlv-1"})");
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  const auto submits = s.writer().submits();
  ASSERT_EQ(submits.size(), 1u);
  EXPECT_EQ(submits[0].event().connection_id(), "acme");
  EXPECT_EQ(submits[0].event().event_type(), "invoice.create");
  EXPECT_EQ(submits[0].event().signing_key_id(), "callback:1");
  EXPECT_GT(submits[0].event().received_at_unix_micros(), 0);
}

TEST(HttpServerTest, SignatureHeaderNameIsCaseInsensitive) {
  Server s;
  auto client = s.Client();
  const httplib::Headers headers = {
      {"x-freshbooks-hmac-sha256", FreshBooksSignature(kVerifier, EventFields())}};
  auto res = client->Post(kPath, headers, EncodeWebhookForm(EventFields()),
                          "application/x-www-form-urlencoded; charset=utf-8");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202);
}

TEST(HttpServerTest, BadOrMissingSignatureIs401) {
  Server s;
  auto client = s.Client();
  auto missing = client->Post(kPath, EncodeWebhookForm(EventFields()), kForm);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  const httplib::Headers wrong = {
      {"X-FreshBooks-Hmac-SHA256", FreshBooksSignature("wrong", EventFields())}};
  auto bad = client->Post(kPath, wrong, EncodeWebhookForm(EventFields()), kForm);
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 401);
  EXPECT_EQ(s.writer().submit_calls(), 0u);
}

TEST(HttpServerTest, UnknownConnectionIs404) {
  Server s;
  auto client = s.Client();
  for (const char* path : {"/webhooks/freshbooks/ghost", "/webhooks/freshbooks/BAD",
                           "/webhooks/freshbooks/", "/webhooks/freshbooks/a%2Fb"}) {
    auto res = client->Post(path, EncodeWebhookForm(EventFields()), kForm);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
  }
  EXPECT_EQ(s.writer().submit_calls(), 0u);
}

TEST(HttpServerTest, HandshakeIs200) {
  Server s;
  auto client = s.Client();
  auto res = client->Post(kPath, "verifier=abc&object_id=42", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const auto submits = s.writer().submits();
  ASSERT_EQ(submits.size(), 1u);
  EXPECT_EQ(submits[0].handshake().callback_id(), "42");
}

TEST(HttpServerTest, OtherMethodsOnTheWebhookPathAre405) {
  Server s;
  auto client = s.Client();
  auto get = client->Get(kPath);
  auto put = client->Put(kPath, "a=b", kForm);
  auto del = client->Delete(kPath);
  auto patch = client->Patch(kPath, "a=b", kForm);
  for (auto* res : {&get, &put, &del, &patch}) {
    ASSERT_TRUE(*res);
    EXPECT_EQ((*res)->status, 405);
    EXPECT_EQ((*res)->get_header_value("Allow"), "POST");
  }
  EXPECT_EQ(s.writer().submit_calls(), 0u);
}

TEST(HttpServerTest, WrongContentTypeIs415) {
  Server s;
  auto client = s.Client();
  const httplib::Headers headers = {
      {"X-FreshBooks-Hmac-SHA256", FreshBooksSignature(kVerifier, EventFields())}};
  auto res = client->Post(kPath, headers, EncodeWebhookForm(EventFields()), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 415);
  EXPECT_EQ(s.writer().submit_calls(), 0u);
}

TEST(HttpServerTest, MalformedFormIs400) {
  Server s;
  auto client = s.Client();
  auto res = client->Post(kPath, "name=a&name=b", kForm);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
}

TEST(HttpServerTest, WriterDownIs503) {
  Server s;
  s.writer().SetSubmitStatus(absl::UnavailableError("connection refused"));
  auto client = s.Client();
  auto res = s.PostSigned(*client);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
}

TEST(HttpServerTest, BodyOverMaxBodyBytesIs413AndCounted) {
  Server s(TestLimits(), /*max_body_bytes=*/1024);
  auto client = s.Client();

  // Exactly at the limit: accepted.
  FormFields fields = EventFields();
  fields.emplace_back("note", "");
  const size_t base = EncodeWebhookForm(fields).size();
  fields.back().second = std::string(1024 - base, 'x');
  ASSERT_EQ(EncodeWebhookForm(fields).size(), 1024u);
  auto at_limit = s.PostSigned(*client, fields);
  ASSERT_TRUE(at_limit);
  EXPECT_EQ(at_limit->status, 202);

  // One byte over: refused before the handler, nothing submitted.
  fields.back().second += "x";
  auto over = s.PostSigned(*client, fields);
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 413);
  auto big = client->Post(kPath, std::string(64 * 1024, 'a'), kForm);
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_EQ(s.writer().submit_calls(), 1u);

  EXPECT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(s.Metrics(), "mlc_webhooks_total{outcome=\"too_large\"} 2\n");
      },
      std::chrono::seconds(5)))
      << s.Metrics();
}

std::string ChunkedRequestText(const FormFields& fields, const std::string& body,
                               size_t chunk_size) {
  std::string text = absl::StrCat("POST ", kPath,
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Content-Type: application/x-www-form-urlencoded\r\n"
                                  "X-FreshBooks-Hmac-SHA256: ",
                                  FreshBooksSignature(kVerifier, fields),
                                  "\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t off = 0; off < body.size(); off += chunk_size) {
    const std::string chunk = body.substr(off, chunk_size);
    char size_hex[32];
    std::snprintf(size_hex, sizeof(size_hex), "%zx", chunk.size());
    absl::StrAppend(&text, size_hex, "\r\n", chunk, "\r\n");
  }
  absl::StrAppend(&text, "0\r\n\r\n");
  return text;
}

TEST(HttpServerTest, ChunkedBodyWithinMaxBodyBytesIsAccepted) {
  Server s(TestLimits(), /*max_body_bytes=*/1024);
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  const std::string body = EncodeWebhookForm(EventFields());
  ASSERT_TRUE(c.Send(ChunkedRequestText(EventFields(), body, 16)));
  EXPECT_EQ(c.ReadResponse(std::chrono::seconds(5)), 202) << c.last_response();
  EXPECT_EQ(s.writer().submits().size(), 1u);
}

TEST(HttpServerTest, ChunkedBodyOverMaxBodyBytesIs413) {
  Server s(TestLimits(), /*max_body_bytes=*/1024);
  FormFields fields = EventFields();
  fields.emplace_back("note", std::string(1000, 'x'));
  const std::string body = EncodeWebhookForm(fields);
  ASSERT_GT(body.size(), 1024u);
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(ChunkedRequestText(fields, body, 512)));
  EXPECT_EQ(c.ReadResponse(std::chrono::seconds(5)), 413) << c.last_response();
  EXPECT_EQ(s.writer().submit_calls(), 0u);
  EXPECT_TRUE(WaitFor([&] {
    return absl::StrContains(s.Metrics(), "mlc_webhooks_total{outcome=\"too_large\"} 1\n");
  }));
}

TEST(HttpServerTest, BodyWithoutContentLengthOverMaxBodyBytesIs413) {
  Server s(TestLimits(), /*max_body_bytes=*/1024);
  FormFields fields = EventFields();
  fields.emplace_back("note", std::string(1000, 'x'));
  const std::string body = EncodeWebhookForm(fields);
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  // No Content-Length: httplib reads the body until the client half-closes.
  ASSERT_TRUE(c.Send(absl::StrCat("POST ", kPath,
                                  " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Content-Type: application/x-www-form-urlencoded\r\n"
                                  "X-FreshBooks-Hmac-SHA256: ",
                                  FreshBooksSignature(kVerifier, fields), "\r\n\r\n", body)));
  c.ShutdownWrite();
  EXPECT_EQ(c.ReadResponse(std::chrono::seconds(5)), 413) << c.last_response();
  EXPECT_EQ(s.writer().submit_calls(), 0u);
}

TEST(HttpServerTest, HugeChunkedBodyIsNotBufferedWhole) {
  Server s(TestLimits(), /*max_body_bytes=*/1024);
  FormFields fields = EventFields();
  const std::string body = EncodeWebhookForm(fields) + "&note=" + std::string(4 << 20, 'x');
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  const auto start = SteadyClock::now();
  c.Send(ChunkedRequestText(fields, body, 64 * 1024));  // may fail once the server closes
  EXPECT_TRUE(c.WaitClosed(std::chrono::seconds(5)));
  EXPECT_LT(Since(start), std::chrono::seconds(3));
  EXPECT_FALSE(IsSuccess(c.received())) << c.received();
  EXPECT_EQ(s.writer().submit_calls(), 0u);
  // The server is fine afterwards.
  auto client = s.Client();
  auto res = s.PostSigned(*client);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202);
}

TEST(HttpServerTest, HealthzIs200) {
  Server s;
  auto res = s.Client()->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(HttpServerTest, ReadyzFollowsTheWriter) {
  Server s;
  auto client = s.Client();
  auto ready = client->Get("/readyz");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);

  s.writer().SetListStatus(absl::UnavailableError("connection refused"));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto res = client->Get("/readyz");
        return res && res->status == 503;
      },
      std::chrono::seconds(5)));
  EXPECT_NE(s.Metrics().find("mlc_ingress_ready 0\n"), std::string::npos);

  s.writer().SetListStatus(absl::OkStatus());
  EXPECT_TRUE(WaitFor(
      [&] {
        auto res = client->Get("/readyz");
        return res && res->status == 200;
      },
      std::chrono::seconds(5)));
  EXPECT_NE(s.Metrics().find("mlc_ingress_ready 1\n"), std::string::npos);
}

TEST(HttpServerTest, ReadyzIs503WhenTheWriterNeverAnswered) {
  Server s(TestLimits(), 65536, absl::UnavailableError("connection refused"));
  auto res = s.Client()->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  // And a webhook gets 503, not 404 or 401: FreshBooks retries.
  auto client = s.Client();
  auto hook = s.PostSigned(*client);
  ASSERT_TRUE(hook);
  EXPECT_EQ(hook->status, 503);
}

TEST(HttpServerTest, MetricsCountWebhooksByOutcome) {
  Server s;
  auto client = s.Client();
  ASSERT_TRUE(s.PostSigned(*client));
  ASSERT_TRUE(client->Post(kPath, EncodeWebhookForm(EventFields()), kForm));  // 401
  auto res = client->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("# TYPE mlc_webhooks_total counter"), std::string::npos);
  EXPECT_NE(res->body.find("mlc_webhooks_total{outcome=\"accepted\"} 1\n"), std::string::npos)
      << res->body;
  EXPECT_NE(res->body.find("mlc_webhooks_total{outcome=\"bad_signature\"} 1\n"), std::string::npos)
      << res->body;
  // Secrets never reach the metrics.
  EXPECT_EQ(res->body.find(kVerifier), std::string::npos);
}

// ---------------------------------------------------------------------------
// OAuth callback

constexpr char kCallbackPath[] = "/oauth/freshbooks/callback";
// Distinctive values, so a test can tell whether they leaked into logs or pages.
constexpr char kCode[] = "c0de-5ecret-7f3a9b";
constexpr char kState[] = "5tate-5ecret-a1b2c3";

httplib::Result CallbackGet(Server& s, const httplib::Params& params) {
  return s.Client()->Get(kCallbackPath, params, httplib::Headers{});
}

mlconnector::v1::CompleteAuthorizationResponse Connected(const std::string& business_name) {
  mlconnector::v1::CompleteAuthorizationResponse r;
  r.set_connection_id("acme");
  r.set_account_id("6BApk");
  r.set_business_name(business_name);
  return r;
}

void ExpectOAuthPageHeaders(const httplib::Response& res) {
  EXPECT_EQ(res.get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(res.get_header_value("Cache-Control"), "no-store");
  EXPECT_EQ(res.get_header_value("Referrer-Policy"), "no-referrer");
  EXPECT_EQ(res.body.rfind("<!DOCTYPE html>", 0), 0u) << res.body;
}

TEST(HttpServerTest, OAuthCallbackSuccessShowsTheConnectionEscaped) {
  Server s;
  s.writer().SetAuthorizationResult(Connected("Acme <script>alert(1)</script> & \"Co\""));
  auto res = CallbackGet(s, {{"code", kCode}, {"state", kState}});
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  ExpectOAuthPageHeaders(*res);
  EXPECT_NE(res->body.find("FreshBooks connected: connection acme, account 6BApk (Acme "
                           "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Co&quot;). "
                           "You can close this window."),
            std::string::npos)
      << res->body;
  EXPECT_EQ(res->body.find("<script>"), std::string::npos) << res->body;
  EXPECT_EQ(res->body.find(kCode), std::string::npos);
  EXPECT_EQ(res->body.find(kState), std::string::npos);

  ASSERT_EQ(s.writer().authorization_calls(), 1u);
  const auto sent = s.writer().last_authorization_request();
  EXPECT_EQ(sent.code(), kCode);
  EXPECT_EQ(sent.state(), kState);
  EXPECT_EQ(sent.error(), "");
  EXPECT_EQ(s.writer().last_authorization_deadline(), std::chrono::seconds(30));
}

TEST(HttpServerTest, OAuthCallbackWithoutCodeOrStateIs400WithoutCallingTheWriter) {
  Server s;
  s.writer().SetAuthorizationResult(Connected("Acme"));
  const std::string too_long(2049, 'x');
  const std::vector<httplib::Params> bad = {
      {},
      {{"state", kState}},
      {{"code", kCode}},
      {{"code", ""}, {"state", kState}},
      {{"code", kCode}, {"state", ""}},
      {{"code", too_long}, {"state", kState}},
      {{"code", kCode}, {"state", too_long}},
      {{"code", kCode}, {"code", "other"}, {"state", kState}},
      {{"error", "access_denied"}, {"error_description", too_long}, {"state", kState}},
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    auto res = CallbackGet(s, bad[i]);
    ASSERT_TRUE(res) << i;
    EXPECT_EQ(res->status, 400) << i;
    ExpectOAuthPageHeaders(*res);
    EXPECT_NE(res->body.find("mlc authorize --connection &lt;connection id&gt;"), std::string::npos)
        << i << ": " << res->body;
  }
  EXPECT_EQ(s.writer().authorization_calls(), 0u);

  // 2048 bytes each is still fine.
  const std::string longest(2048, 'y');
  auto res = CallbackGet(s, {{"code", longest}, {"state", longest}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(s.writer().authorization_calls(), 1u);
}

TEST(HttpServerTest, OAuthCallbackForwardsFreshBooksErrorsToTheWriter) {
  Server s;
  s.writer().SetAuthorizationResult(absl::InvalidArgumentError(
      "FreshBooks reported an error: access_denied (the user denied access)"));
  auto res = CallbackGet(s, {{"error", "access_denied"},
                             {"error_description", "The user denied access"},
                             {"state", kState}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  ExpectOAuthPageHeaders(*res);
  EXPECT_NE(res->body.find("FreshBooks reported an error: access_denied"), std::string::npos)
      << res->body;
  ASSERT_EQ(s.writer().authorization_calls(), 1u);
  const auto sent = s.writer().last_authorization_request();
  EXPECT_EQ(sent.error(), "access_denied");
  EXPECT_EQ(sent.error_description(), "The user denied access");
  EXPECT_EQ(sent.state(), kState);
  EXPECT_EQ(sent.code(), "");
}

TEST(HttpServerTest, OAuthCallbackWriterRefusalIs400WithItsMessage) {
  Server s;
  s.writer().SetAuthorizationResult(absl::InvalidArgumentError(
      "connection \"acme\": the authorization link expired <after 15 min> & was used"));
  auto res = CallbackGet(s, {{"code", kCode}, {"state", kState}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  ExpectOAuthPageHeaders(*res);
  EXPECT_NE(res->body.find("connection &quot;acme&quot;: the authorization link expired "
                           "&lt;after 15 min&gt; &amp; was used"),
            std::string::npos)
      << res->body;
  EXPECT_NE(res->body.find("mlc authorize --connection acme"), std::string::npos) << res->body;

  // Every refusal code is a 400; the hint is generic when no connection is named.
  for (const absl::Status& st :
       {absl::FailedPreconditionError("this FreshBooks business is not the configured one"),
        absl::NotFoundError("no such authorization"),
        absl::PermissionDeniedError("missing scope user:profile:read"),
        absl::UnauthenticatedError("FreshBooks rejected the code")}) {
    s.writer().SetAuthorizationResult(st);
    auto r = CallbackGet(s, {{"code", kCode}, {"state", kState}});
    ASSERT_TRUE(r) << st;
    EXPECT_EQ(r->status, 400) << st;
    EXPECT_NE(r->body.find(std::string(st.message())), std::string::npos) << r->body;
    EXPECT_NE(r->body.find("mlc authorize --connection &lt;connection id&gt;"), std::string::npos)
        << r->body;
  }
}

TEST(HttpServerTest, OAuthCallbackWriterUnavailableIs503) {
  Server s;
  for (const absl::Status& st :
       {absl::UnavailableError("connect: 127.0.0.1:50051 refused"),
        absl::DeadlineExceededError("deadline exceeded"), absl::InternalError("disk full")}) {
    s.writer().SetAuthorizationResult(st);
    auto res = CallbackGet(s, {{"code", kCode}, {"state", kState}});
    ASSERT_TRUE(res) << st;
    EXPECT_EQ(res->status, 503) << st;
    ExpectOAuthPageHeaders(*res);
    EXPECT_NE(res->body.find("could not complete the authorization right now; open the link again"),
              std::string::npos)
        << res->body;
    // Internal details stay in the log.
    EXPECT_EQ(res->body.find(std::string(st.message())), std::string::npos) << res->body;
  }
}

TEST(HttpServerTest, OtherMethodsOnTheOAuthCallbackAre405) {
  Server s;
  s.writer().SetAuthorizationResult(Connected("Acme"));
  auto client = s.Client();
  const std::string path = absl::StrCat(kCallbackPath, "?code=", kCode, "&state=", kState);
  auto post = client->Post(path, "code=x&state=y", kForm);
  auto put = client->Put(path, "a=b", kForm);
  auto del = client->Delete(path);
  auto head = client->Head(path);
  for (auto* res : {&post, &put, &del, &head}) {
    ASSERT_TRUE(*res);
    EXPECT_EQ((*res)->status, 405);
    EXPECT_EQ((*res)->get_header_value("Allow"), "GET");
    EXPECT_EQ((*res)->get_header_value("Cache-Control"), "no-store");
  }
  EXPECT_EQ(s.writer().authorization_calls(), 0u);
}

TEST(HttpServerTest, OAuthCallbacksAreCountedByOutcome) {
  Server s;
  s.writer().SetAuthorizationResult(Connected("Acme"));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  ASSERT_TRUE(CallbackGet(s, {{"state", kState}}));
  s.writer().SetAuthorizationResult(absl::InvalidArgumentError("state expired"));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  s.writer().SetAuthorizationResult(absl::UnavailableError("down"));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  ASSERT_TRUE(s.Client()->Post(kCallbackPath, "", kForm));

  const std::string metrics = s.Metrics();
  EXPECT_NE(metrics.find("# TYPE mlc_oauth_callbacks_total counter"), std::string::npos);
  for (const char* line : {"mlc_oauth_callbacks_total{outcome=\"connected\"} 1\n",
                           "mlc_oauth_callbacks_total{outcome=\"invalid_request\"} 1\n",
                           "mlc_oauth_callbacks_total{outcome=\"rejected\"} 1\n",
                           "mlc_oauth_callbacks_total{outcome=\"writer_unavailable\"} 2\n",
                           "mlc_oauth_callbacks_total{outcome=\"method_not_allowed\"} 1\n"}) {
    EXPECT_TRUE(absl::StrContains(metrics, line)) << line << "\n" << metrics;
  }
  const std::string calls = "mlc_writer_calls_total{method=\"CompleteAuthorization\",code=";
  for (const std::string& line :
       {absl::StrCat(calls, "\"ok\"} 1\n"), absl::StrCat(calls, "\"unavailable\"} 2\n")}) {
    EXPECT_TRUE(absl::StrContains(metrics, line)) << line << "\n" << metrics;
  }
  EXPECT_EQ(metrics.find(kCode), std::string::npos);
  EXPECT_EQ(metrics.find(kState), std::string::npos);
}

TEST(HttpServerTest, OAuthCallbackLogsOneLinePerOutcomeWithoutCodeOrState) {
  Server s;
  ::testing::internal::CaptureStderr();
  s.writer().SetAuthorizationResult(Connected("Acme"));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}}));
  s.writer().SetAuthorizationResult(absl::InvalidArgumentError("unknown or used state"));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  ASSERT_TRUE(CallbackGet(s, {{"error", "access_denied"}, {"state", kState}}));
  s.writer().SetAuthorizationResult(absl::UnavailableError("down"));
  ASSERT_TRUE(CallbackGet(s, {{"code", kCode}, {"state", kState}}));
  const std::string log = ::testing::internal::GetCapturedStderr();

  EXPECT_EQ(log.find(kCode), std::string::npos) << log;
  EXPECT_EQ(log.find(kState), std::string::npos) << log;
  size_t lines = 0;
  for (size_t at = log.find("\"msg\":\"oauth callback"); at != std::string::npos;
       at = log.find("\"msg\":\"oauth callback", at + 1)) {
    ++lines;
  }
  EXPECT_EQ(lines, 5u) << log;
  for (const char* want :
       {"\"outcome\":\"connected\"", "\"outcome\":\"invalid_request\"", "\"outcome\":\"rejected\"",
        "\"outcome\":\"writer_unavailable\"", "\"connection\":\"acme\"",
        "\"freshbooks_error\":\"access_denied\"", "\"code_bytes\":18", "\"state_bytes\":19"}) {
    EXPECT_NE(log.find(want), std::string::npos) << want << "\n" << log;
  }
}

// ---------------------------------------------------------------------------
// Keep-alive

TEST(HttpServerTest, SeveralRequestsOnOneKeepAliveConnection) {
  Server s;
  auto client = s.Client();
  client->set_keep_alive(true);
  for (int i = 0; i < 5; ++i) {
    auto res = s.PostSigned(*client);
    ASSERT_TRUE(res) << i << ": " << httplib::to_string(res.error());
    EXPECT_EQ(res->status, 202) << i;
  }
  EXPECT_EQ(s.writer().submits().size(), 5u);
}

TEST(HttpServerTest, PipelinedRequestsOnOneRawConnection) {
  Server s;
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  // Sequential requests on the same socket, then two sent back to back.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.Send(SignedRequestText()));
    EXPECT_EQ(c.ReadResponse(std::chrono::seconds(5)), 202) << i;
  }
  ASSERT_TRUE(c.Send(SignedRequestText() + SignedRequestText()));
  EXPECT_EQ(c.ReadResponse(std::chrono::seconds(5)), 202);
  EXPECT_EQ(c.ReadResponse(std::chrono::seconds(5)), 202);
  EXPECT_FALSE(c.closed());
  EXPECT_EQ(s.writer().submits().size(), 5u);
}

// ---------------------------------------------------------------------------
// Slow and idle clients

TEST(HttpServerTest, ClientTricklingHeadersIsCutOffAtTheRequestDeadline) {
  Server s(SlowClientLimits());
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  const std::string request = SlowHeadersText();
  const auto start = SteadyClock::now();
  const size_t sent = c.Trickle(request, milliseconds(100));
  const milliseconds held = Since(start);

  EXPECT_TRUE(c.closed());
  EXPECT_LT(sent, request.size()) << "the whole trickle was waited for";
  EXPECT_LT(held, kCloseBound);
  EXPECT_GE(held, kSlowLimit - milliseconds(50));
  EXPECT_FALSE(IsSuccess(c.received())) << c.received();
  EXPECT_EQ(s.writer().submit_calls(), 0u);
  EXPECT_TRUE(
      WaitFor([&] { return absl::StrContains(s.Metrics(), "mlc_http_read_timeouts_total 1\n"); }));
}

TEST(HttpServerTest, ClientStallingMidBodyIsClosed) {
  Server s(SlowClientLimits());
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  const std::string body = EncodeWebhookForm(EventFields());
  const auto start = SteadyClock::now();
  ASSERT_TRUE(c.Send(absl::StrCat(
      "POST ", kPath,
      " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
      "X-FreshBooks-Hmac-SHA256: ",
      FreshBooksSignature(kVerifier, EventFields()), "\r\nContent-Length: ", body.size(),
      "\r\n\r\n", body.substr(0, 10))));

  EXPECT_TRUE(c.WaitClosed(std::chrono::seconds(5)));
  EXPECT_LT(Since(start), kCloseBound);
  EXPECT_FALSE(IsSuccess(c.received())) << c.received();
  EXPECT_EQ(s.writer().submit_calls(), 0u);
}

TEST(HttpServerTest, ClientThatNeverSendsIsClosed) {
  Server s(SlowClientLimits());
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  const auto start = SteadyClock::now();
  EXPECT_TRUE(c.WaitClosed(std::chrono::seconds(5)));
  EXPECT_LT(Since(start), kCloseBound);
  EXPECT_EQ(c.received(), "");
}

TEST(HttpServerTest, IdleKeepAliveConnectionIsClosedAfterTheKeepAliveTimeout) {
  Server s(SlowClientLimits());
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(SignedRequestText()));
  ASSERT_EQ(c.ReadResponse(std::chrono::seconds(5)), 202);
  const auto idle_since = SteadyClock::now();

  EXPECT_TRUE(c.WaitClosed(std::chrono::seconds(5)));
  const milliseconds idle = Since(idle_since);
  EXPECT_GE(idle, kSlowLimit - milliseconds(50)) << "closed before keep_alive_timeout";
  EXPECT_LT(idle, kCloseBound);
  EXPECT_EQ(c.received(), "");
}

TEST(HttpServerTest, SlowClientsDoNotBlockANormalClient) {
  Server s(SlowClientLimits());
  std::atomic<int> started{0};
  std::vector<std::thread> slow;
  slow.reserve(5);
  for (int i = 0; i < 3; ++i) {
    slow.emplace_back([&s, &started] {
      RawClient c(s.port());
      started++;
      c.Trickle(SlowHeadersText(), milliseconds(100));
    });
  }
  slow.emplace_back([&s, &started] {
    RawClient c(s.port());
    c.Send(SignedRequestText().substr(0, 150));  // stalls mid-headers
    started++;
    c.WaitClosed(std::chrono::seconds(5));
  });
  slow.emplace_back([&s, &started] {
    RawClient c(s.port());
    c.Send(SignedRequestText());
    c.ReadResponse(std::chrono::seconds(5));
    started++;
    c.WaitClosed(std::chrono::seconds(5));  // idle keep-alive
  });
  ASSERT_TRUE(WaitFor([&] { return started == 5; }, std::chrono::seconds(5)));

  auto client = s.Client();
  const auto start = SteadyClock::now();
  auto res = s.PostSigned(*client);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 202);
  EXPECT_LT(Since(start), kSlowLimit) << "the normal client waited for the slow ones";
  for (auto& t : slow) t.join();
}

TEST(HttpServerTest, SlowClientsCannotHoldEveryWorker) {
  Limits limits = SlowClientLimits();
  limits.worker_threads = 2;
  Server s(limits);
  std::atomic<int> started{0};
  std::vector<std::thread> slow;
  slow.reserve(4);
  for (int i = 0; i < 4; ++i) {
    slow.emplace_back([&s, &started] {
      RawClient c(s.port());
      started++;
      c.Trickle(SlowHeadersText(), milliseconds(100));  // ~10 s if never cut off
    });
  }
  ASSERT_TRUE(WaitFor([&] { return started == 4; }, std::chrono::seconds(5)));
  auto client = s.Client();
  const auto start = SteadyClock::now();
  auto res = s.PostSigned(*client);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 202);
  // Two rounds of two slow clients at most, each cut off after 300 ms.
  EXPECT_LT(Since(start), std::chrono::seconds(3));
  for (auto& t : slow) t.join();
}

// ---------------------------------------------------------------------------
// Start and Stop

TEST(HttpServerTest, StopWithAnIdleKeepAliveConnectionReturnsPromptly) {
  Limits limits = TestLimits();
  limits.keep_alive_timeout = std::chrono::seconds(30);
  limits.request_read_timeout = std::chrono::seconds(30);
  Server s(limits);
  RawClient c(s.port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send(SignedRequestText()));
  ASSERT_EQ(c.ReadResponse(std::chrono::seconds(5)), 202);

  const auto start = SteadyClock::now();
  ReturnsWithin(std::chrono::seconds(10), [&] { s.server().Stop(); });
  EXPECT_LT(Since(start), std::chrono::seconds(2));
  EXPECT_TRUE(c.WaitClosed(std::chrono::seconds(2)));
  // Stop() twice (and the destructor after it) is harmless.
  s.server().Stop();
}

TEST(HttpServerTest, StopRightAfterStartReturns) {
  // httplib's stop() is a no-op until its listen loop has begun; with the CPU busy
  // the listen thread often has not run yet when Start() returns.
  std::atomic<bool> done{false};
  std::vector<std::thread> busy;
  busy.reserve(2);
  for (int i = 0; i < 2; ++i) {
    busy.emplace_back([&done] {
      volatile uint64_t spin = 0;
      while (!done) spin = spin + 1;
    });
  }
  for (int i = 0; i < 30; ++i) {
    Server s;
    const auto start = SteadyClock::now();
    ReturnsWithin(std::chrono::seconds(10), [&] { s.server().Stop(); });
    EXPECT_LT(Since(start), std::chrono::seconds(2)) << i;
  }
  done = true;
  for (auto& t : busy) t.join();
}

TEST(HttpServerTest, StartFailsWhenThePortIsTaken) {
  Server first;
  IngressConfig config;
  config.listen = absl::StrCat("127.0.0.1:", first.port());
  IngressServer second(config, TestLimits(), std::make_unique<FakeWriterClient>());
  const absl::Status s = second.Start();
  EXPECT_FALSE(s.ok());
  // The first one still serves.
  auto res = first.Client()->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace mlc::ingress
