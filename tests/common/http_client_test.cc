// HttplibClient over real loopback sockets: what callers of HttpClient rely on
// (common/http_client.h) — every HTTP answer is a value, failures without an
// answer are Unavailable / DeadlineExceeded with messages that name the host and
// never a secret, connect failures are marked "not sent", keep-alive connections
// are reused safely across threads — plus the URL and Retry-After parsers.
#include "common/http_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/http_server_util.h"
#include "tests/support/test_util.h"

namespace mlc {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "dose-very-secret-0123456789";

// ---------------------------------------------------------------------------
// Pure helpers

TEST(ParseHttpUrlTest, SplitsAbsoluteUrls) {
  absl::StatusOr<HttpUrl> u = ParseHttpUrl("https://adb-123.4.azuredatabricks.net/api/2.0/x?a=1");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "adb-123.4.azuredatabricks.net");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->origin, "https://adb-123.4.azuredatabricks.net:443");
  EXPECT_EQ(u->target, "/api/2.0/x?a=1");

  u = ParseHttpUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->port, 8080);
  EXPECT_EQ(u->target, "/");

  u = ParseHttpUrl("HTTP://example.com?q=1#frag");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->port, 80);
  EXPECT_EQ(u->target, "/?q=1");

  u = ParseHttpUrl("http://[::1]:9000/p");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->origin, "http://[::1]:9000");
}

TEST(ParseHttpUrlTest, RejectsWhatIsNotAnAbsoluteHttpUrl) {
  for (const char* bad :
       {"", "example.com/x", "ftp://example.com", "http://", "http://:80/", "http://host:0/",
        "http://host:65536/", "http://host:12ab/", "http://user:pw@host/", "http://[::1/"}) {
    const absl::StatusOr<HttpUrl> u = ParseHttpUrl(bad);
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  // The error shows the URL without its query, which may carry a secret.
  const absl::StatusOr<HttpUrl> u = ParseHttpUrl(absl::StrCat("ftp://h/p?token=", kSecret));
  EXPECT_THAT(std::string(u.status().message()), Not(HasSubstr(kSecret)));
}

TEST(ParseRetryAfterTest, IntegerSecondsOnly) {
  EXPECT_EQ(ParseRetryAfter("5"), absl::Seconds(5));
  EXPECT_EQ(ParseRetryAfter(" 12 "), absl::Seconds(12));
  EXPECT_EQ(ParseRetryAfter("0"), absl::ZeroDuration());
  for (const char* bad :
       {"", " ", "-1", "1.5", "5s", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999"}) {
    EXPECT_FALSE(ParseRetryAfter(bad).has_value()) << bad;
  }
}

TEST(HttpHeadersTest, LookupIsCaseInsensitive) {
  HttpResponse r;
  r.headers.emplace("Retry-After", "3");
  r.headers.emplace("content-type", "application/json");
  EXPECT_EQ(r.Header("retry-after"), "3");
  EXPECT_EQ(r.Header("CONTENT-TYPE"), "application/json");
  EXPECT_FALSE(r.Header("Location").has_value());
}

TEST(RequestNotSentTest, MarksOnlyErrors) {
  EXPECT_TRUE(RequestNotSent(MarkRequestNotSent(absl::UnavailableError("x"))));
  EXPECT_FALSE(RequestNotSent(absl::UnavailableError("x")));
  EXPECT_FALSE(RequestNotSent(MarkRequestNotSent(absl::OkStatus())));
}

// ---------------------------------------------------------------------------
// Against a real server

class HttplibClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::signal(SIGPIPE, SIG_IGN);  // as both mains do
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      std::string out = absl::StrCat(req.method, " ", req.target, "\n");
      absl::StrAppend(&out, "x-test=", req.get_header_value("X-Test"), "\n");
      absl::StrAppend(&out, "content-type=", req.get_header_value("Content-Type"), "\n");
      absl::StrAppend(&out, req.body);
      res.set_header("X-Reply", "yes");
      res.set_content(out, "text/plain");
    });
    server_.Get("/status/([0-9]+)", [](const httplib::Request& req, httplib::Response& res) {
      res.status = std::stoi(req.matches[1]);
      res.set_header("Retry-After", "2");
      res.set_content("{\"error_code\":\"X\"}", "application/json");
    });
    server_.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      for (int i = 0; i < 300 && !stopping_; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      res.set_content("late", "text/plain");
    });
    server_.Get("/count", [this](const httplib::Request& req, httplib::Response& res) {
      ++served_;
      res.set_content(absl::StrCat(req.remote_port), "text/plain");
    });
    absl::StatusOr<int> port = StartHttpServer(&server_, "test", "127.0.0.1:0", &thread_);
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
  }
  void TearDown() override {
    stopping_ = true;
    StopHttpServer(&server_, &thread_);
  }
  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int> served_{0};
};

TEST_F(HttplibClientTest, SendsMethodTargetHeadersAndBody) {
  HttplibClient client;
  HttpRequest req;
  req.method = "POST";
  req.url = Url("/echo?a=1&b=%20x");
  req.headers.emplace("x-test", "hello");
  req.headers.emplace("Content-Type", "application/json");
  req.body = "{\"k\":1}";
  absl::StatusOr<HttpResponse> res = client.Send(req);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body,
            "POST /echo?a=1&b=%20x\nx-test=hello\ncontent-type=application/json\n{\"k\":1}");
  EXPECT_EQ(res->Header("x-reply"), "yes");
}

TEST_F(HttplibClientTest, ErrorStatusesAreAnswersNotErrors) {
  HttplibClient client;
  for (int status : {400, 403, 429, 503}) {
    HttpRequest req;
    req.url = Url(absl::StrCat("/status/", status));
    absl::StatusOr<HttpResponse> res = client.Send(req);
    ASSERT_TRUE(res.ok()) << res.status();
    EXPECT_EQ(res->status, status);
    EXPECT_EQ(res->Header("Retry-After"), "2");
    EXPECT_EQ(res->body, "{\"error_code\":\"X\"}");
  }
}

TEST_F(HttplibClientTest, ReusesKeepAliveConnections) {
  HttplibClient client;
  std::string first_port;
  for (int i = 0; i < 3; ++i) {
    HttpRequest req;
    req.url = Url("/count");
    absl::StatusOr<HttpResponse> res = client.Send(req);
    ASSERT_TRUE(res.ok()) << res.status();
    if (i == 0) first_port = res->body;
    EXPECT_EQ(res->body, first_port) << "request " << i << " used a new connection";
  }
}

TEST_F(HttplibClientTest, ConcurrentCallsToOneOriginAllSucceed) {
  HttplibClient client;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 15; ++i) {
        HttpRequest req;
        req.method = "POST";
        req.url = Url("/echo");
        req.body = "x";
        absl::StatusOr<HttpResponse> res = client.Send(req);
        if (res.ok() && res->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 90);
}

TEST_F(HttplibClientTest, IdleConnectionClosedByTheServerIsNotAnError) {
  server_.set_keep_alive_timeout(1);  // the server drops idle connections after 1 s
  HttplibClient client;
  HttpRequest req;
  req.url = Url("/count");
  ASSERT_TRUE(client.Send(req).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  absl::StatusOr<HttpResponse> res = client.Send(req);
  ASSERT_TRUE(res.ok()) << res.status();
  EXPECT_EQ(res->status, 200);
}

TEST_F(HttplibClientTest, TimeoutIsDeadlineExceeded) {
  HttplibClient client;
  HttpRequest req;
  req.url = Url("/slow");
  req.timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpResponse> res = client.Send(req);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kDeadlineExceeded) << res.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("127.0.0.1"));
  EXPECT_FALSE(RequestNotSent(res.status()));  // it was sent: outcome unknown
}

TEST(HttplibClientErrorsTest, ConnectionRefusedIsUnavailableNotSentAndSecretFree) {
  const int port = testing::PickFreePort();  // nothing listens there
  HttplibClient client;
  HttpRequest req;
  req.method = "POST";
  req.url = absl::StrCat("http://127.0.0.1:", port, "/oidc/v1/token?client_secret=", kSecret);
  req.headers.emplace("Authorization", absl::StrCat("Bearer ", kSecret));
  req.body = absl::StrCat("client_secret=", kSecret);
  absl::StatusOr<HttpResponse> res = client.Send(req);
  ASSERT_EQ(res.status().code(), absl::StatusCode::kUnavailable) << res.status();
  EXPECT_TRUE(RequestNotSent(res.status()));
  const std::string message(res.status().message());
  EXPECT_THAT(message, HasSubstr(absl::StrCat("127.0.0.1:", port, "/oidc/v1/token")));
  EXPECT_THAT(message, HasSubstr("cannot connect"));
  EXPECT_THAT(message, Not(HasSubstr(kSecret)));
}

// A raw TCP server on loopback for faults httplib cannot be made to produce: it
// accepts one connection, runs `serve` on its socket, and closes it.
class OneShotTcpServer {
 public:
  explicit OneShotTcpServer(std::function<void(int conn)> serve) {
    std::signal(SIGPIPE, SIG_IGN);
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    EXPECT_GE(listener_, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listener_, 4), 0);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, serve = std::move(serve)] {
      const int conn = ::accept(listener_, nullptr, nullptr);
      if (conn < 0) return;
      serve(conn);
      ::close(conn);
    });
  }
  ~OneShotTcpServer() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
    if (listener_ >= 0) ::close(listener_);
    listener_ = -1;
  }
  int port() const { return port_; }

 private:
  int listener_ = -1;
  int port_ = 0;
  std::thread thread_;
};

// A statement POST to `port` with a bearer token, as the Databricks client sends.
HttpRequest StatementPost(int port, std::string body) {
  HttpRequest req;
  req.method = "POST";
  req.url = absl::StrCat("http://127.0.0.1:", port, "/api/2.0/sql/statements");
  req.headers.emplace("Authorization", absl::StrCat("Bearer ", kSecret));
  req.body = std::move(body);
  return req;
}

TEST(HttplibClientErrorsTest, ConnectionDroppedBeforeAnAnswerIsUnavailable) {
  // The server reads the whole request (headers and the "{}" body, which may
  // come in separate segments) and closes without answering, so the client
  // sees the close while waiting for the answer, not while still sending.
  OneShotTcpServer server([](int conn) {
    std::string seen;
    char buf[4096];
    while (seen.find("\r\n\r\n{}") == std::string::npos) {
      const ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) break;
      seen.append(buf, static_cast<size_t>(n));
    }
  });
  HttplibClient client;
  absl::StatusOr<HttpResponse> res = client.Send(StatementPost(server.port(), "{}"));
  server.Join();
  ASSERT_EQ(res.status().code(), absl::StatusCode::kUnavailable) << res.status();
  EXPECT_FALSE(RequestNotSent(res.status()));
  EXPECT_THAT(std::string(res.status().message()), HasSubstr("connection closed"));
  EXPECT_THAT(std::string(res.status().message()), Not(HasSubstr(kSecret)));
}

TEST(HttplibClientErrorsTest, ConnectionDroppedWhileSendingIsUnavailableAndMayHaveBeenSeen) {
  // The server reads a little and closes while an 8 MiB body is still being
  // sent: the client's write fails.
  OneShotTcpServer server([](int conn) {
    char buf[1024];
    (void)::recv(conn, buf, sizeof(buf), 0);
  });
  HttplibClient client;
  absl::StatusOr<HttpResponse> res =
      client.Send(StatementPost(server.port(), std::string(8 << 20, 'x')));
  server.Join();
  ASSERT_EQ(res.status().code(), absl::StatusCode::kUnavailable) << res.status();
  // Part of the request reached the server, so a retry must be safe to repeat.
  EXPECT_FALSE(RequestNotSent(res.status()));
  EXPECT_THAT(std::string(res.status().message()),
              HasSubstr("connection lost while sending the request"));
  EXPECT_THAT(std::string(res.status().message()), Not(HasSubstr(kSecret)));
}

TEST_F(HttplibClientTest, HttpsToAPlainServerFailsTheHandshake) {
  HttplibClient client;
  HttpRequest req;
  req.url = absl::StrCat("https://127.0.0.1:", port_, "/count");
  req.timeout = absl::Seconds(5);
  absl::StatusOr<HttpResponse> res = client.Send(req);
  EXPECT_EQ(res.status().code(), absl::StatusCode::kUnavailable) << res.status();
  EXPECT_TRUE(RequestNotSent(res.status()));
}

TEST(HttplibClientErrorsTest, BadUrlIsInvalidArgument) {
  HttplibClient client;
  HttpRequest req;
  req.url = "not a url";
  EXPECT_EQ(client.Send(req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mlc
