// Outbound HTTP as a dependency. Everything that talks to a remote HTTP API
// (Databricks, FreshBooks) sends through an HttpClient, so tests can swap in a
// fake and production code never touches a socket library directly.
//
// Contract of HttpClient::Send:
//  - Any HTTP answer, whatever its status (2xx, 4xx, 5xx), is an OK StatusOr:
//    interpreting statuses is the caller's business.
//  - A request that got no complete answer is an error: DeadlineExceeded when the
//    request's timeout ran out, Unavailable otherwise (cannot resolve, connection
//    refused, TLS failure, connection dropped before or while the answer came).
//    The message names the method, the origin and path (never the query) and the
//    cause; never header values or bodies, which may carry secrets. An error for
//    which nothing reached the server (connect failures) carries a payload that
//    RequestNotSent() detects: such a request is safe to resend even if it is not
//    idempotent.
//  - Implementations are thread-safe; Send may be called concurrently.
//
// HttplibClient is the real implementation over cpp-httplib (http and https, the
// system's CA store, TCP_NODELAY). It keeps a small pool of idle keep-alive
// connections per origin: a call takes one (or opens one), uses it exclusively and
// puts it back, so concurrent calls to one host never wait for each other and
// each call gets its own timeout. An idle connection the server has since closed
// is detected and replaced before use. Like any socket code, it needs SIGPIPE
// ignored in the process (both mains do) so a write to a closed connection is an
// error instead of a signal.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace httplib {
class Client;
}  // namespace httplib

namespace mlc {

// Case-insensitive ordering for header names (HTTP field names are).
struct CaseInsensitiveLess {
  bool operator()(const std::string& a, const std::string& b) const;
};

// Header fields; a name may repeat.
using HttpHeaders = std::multimap<std::string, std::string, CaseInsensitiveLess>;

// The first value of header `name` (case-insensitive), if present.
std::optional<std::string> FindHeader(const HttpHeaders& headers, const std::string& name);

struct HttpRequest {
  std::string method = "GET";
  // Absolute: http(s)://host[:port]/path[?query]. The path and query are sent as
  // given (already percent-encoded).
  std::string url;
  HttpHeaders headers;  // Content-Type goes here too; Content-Length is computed
  std::string body;
  // Bounds connecting and each read and write of this request.
  absl::Duration timeout = absl::Seconds(30);
};

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;
  std::string body;

  // The first value of header `name` (case-insensitive).
  std::optional<std::string> Header(const std::string& name) const {
    return FindHeader(headers, name);
  }
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // See the contract at the top of this file.
  virtual absl::StatusOr<HttpResponse> Send(const HttpRequest& request) = 0;
};

// True if `status` is a Send error for a request that never reached the server.
bool RequestNotSent(const absl::Status& status);
// Marks `status` as "never reached the server" (for HttpClient fakes).
absl::Status MarkRequestNotSent(absl::Status status);

// An absolute http(s) URL split into its parts.
struct HttpUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6 literals
  int port = 0;        // explicit or the scheme's default
  std::string origin;  // scheme://host[:port] as cpp-httplib wants it
  std::string target;  // path and query; "/" if the URL has none
};

// Parses `url`; InvalidArgument (naming the URL without its query) if it is not an
// absolute http(s) URL with a host.
absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

// Parses a Retry-After value given in (non-negative, integer) seconds. HTTP dates
// and anything else yield nullopt: callers fall back to their own backoff.
std::optional<absl::Duration> ParseRetryAfter(std::string_view value);

class HttplibClient final : public HttpClient {
 public:
  struct Options {
    // Cap on connecting, whatever the request's timeout.
    absl::Duration connect_timeout = absl::Seconds(10);
    // An idle connection older than this is closed instead of reused, so it is
    // never one the server is about to time out (servers commonly close idle
    // keep-alive connections after 5 s or more).
    absl::Duration max_idle = absl::Seconds(4);
    // Idle connections kept per origin.
    size_t max_idle_per_origin = 8;
    // For https: a PEM CA bundle to trust instead of the system's store (tests).
    std::string ca_cert_path;
  };

  HttplibClient();
  explicit HttplibClient(Options options);
  ~HttplibClient() override;
  HttplibClient(const HttplibClient&) = delete;
  HttplibClient& operator=(const HttplibClient&) = delete;

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;

 private:
  struct Idle {
    std::unique_ptr<httplib::Client> client;
    absl::Time since;
  };

  std::unique_ptr<httplib::Client> Acquire(const HttpUrl& url);
  void Release(const std::string& origin, std::unique_ptr<httplib::Client> client);

  const Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::vector<Idle>> idle_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mlc
