// HttplibClient and the small URL / header helpers of http_client.h.
#include "common/http_client.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace mlc {
namespace {

constexpr char kNotSentPayload[] = "type.mlc/http.request_not_sent";

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// The URL without its query and fragment: what errors may show.
std::string Redacted(std::string_view url) {
  const size_t cut = url.find_first_of("?#");
  return std::string(url.substr(0, cut));
}

// cpp-httplib's timeouts are (seconds, microseconds) pairs.
std::pair<time_t, time_t> SecUsec(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  const int64_t us = absl::ToInt64Microseconds(d);
  return {static_cast<time_t>(us / 1000000), static_cast<time_t>(us % 1000000)};
}

}  // namespace

bool CaseInsensitiveLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(
      a.begin(), a.end(), b.begin(), b.end(),
      [](unsigned char x, unsigned char y) { return std::tolower(x) < std::tolower(y); });
}

std::optional<std::string> FindHeader(const HttpHeaders& headers, const std::string& name) {
  const auto it = headers.find(name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

bool RequestNotSent(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kNotSentPayload).has_value();
}

absl::Status MarkRequestNotSent(absl::Status status) {
  if (!status.ok()) status.SetPayload(kNotSentPayload, absl::Cord("1"));
  return status;
}

absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  const auto bad = [&url](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("url \"", Redacted(url), "\": ", why));
  };
  HttpUrl out;
  std::string_view rest;
  if (absl::StartsWithIgnoreCase(ToAbsl(url), "https://")) {
    out.scheme = "https";
    out.port = 443;
    rest = url.substr(8);
  } else if (absl::StartsWithIgnoreCase(ToAbsl(url), "http://")) {
    out.scheme = "http";
    out.port = 80;
    rest = url.substr(7);
  } else {
    return bad("must start with http:// or https://");
  }
  const size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  if (const size_t hash = target.find('#'); hash != std::string::npos) target.resize(hash);
  if (target.empty() || target[0] != '/') target.insert(0, "/");
  if (absl::StrContains(absl::string_view(authority.data(), authority.size()), '@')) {
    return bad("credentials in the URL are not supported");
  }
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("garbage after the IPv6 address");
      port = after.substr(1);
    }
  } else if (const size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return bad("has no host");
  for (const char c : host) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return bad("host contains whitespace or control characters");
    }
  }
  if (!port.empty()) {
    int p = 0;
    if (!absl::SimpleAtoi(ToAbsl(port), &p) || p <= 0 || p > 65535) return bad("bad port");
    out.port = p;
  }
  out.host = std::string(host);
  const bool ipv6 = absl::StrContains(out.host, ':');
  out.origin =
      absl::StrCat(out.scheme, "://", ipv6 ? "[" : "", out.host, ipv6 ? "]" : "", ":", out.port);
  out.target = std::move(target);
  return out;
}

std::optional<absl::Duration> ParseRetryAfter(std::string_view value) {
  const absl::string_view v = absl::StripAsciiWhitespace(ToAbsl(value));
  if (v.empty() || v.size() > 9) return std::nullopt;  // > 9 digits: nonsense, ignore
  for (const char c : v) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return std::nullopt;
  }
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(v, &seconds)) return std::nullopt;
  return absl::Seconds(seconds);
}

HttplibClient::HttplibClient() : HttplibClient(Options()) {}

HttplibClient::HttplibClient(Options options) : options_(std::move(options)) {}

HttplibClient::~HttplibClient() = default;

std::unique_ptr<httplib::Client> HttplibClient::Acquire(const HttpUrl& url) {
  {
    absl::MutexLock lock(&mu_);
    auto it = idle_.find(url.origin);
    if (it != idle_.end()) {
      const absl::Time now = absl::Now();
      auto& pool = it->second;
      while (!pool.empty()) {
        Idle idle = std::move(pool.back());
        pool.pop_back();
        if (now - idle.since <= options_.max_idle) return std::move(idle.client);
        // Too old: dropped here (its destructor closes the socket).
      }
    }
  }
  auto client = std::make_unique<httplib::Client>(url.origin);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_url_encode(false);
  client->set_follow_location(false);
  if (url.scheme == "https") {
    client->enable_server_certificate_verification(true);
    if (!options_.ca_cert_path.empty()) client->set_ca_cert_path(options_.ca_cert_path);
  }
  return client;
}

void HttplibClient::Release(const std::string& origin, std::unique_ptr<httplib::Client> client) {
  absl::MutexLock lock(&mu_);
  auto& pool = idle_[origin];
  if (pool.size() >= options_.max_idle_per_origin) return;  // dropped, socket closed
  pool.push_back(Idle{std::move(client), absl::Now()});
}

absl::StatusOr<HttpResponse> HttplibClient::Send(const HttpRequest& request) {
  absl::StatusOr<HttpUrl> url = ParseHttpUrl(request.url);
  if (!url.ok()) return url.status();
  std::unique_ptr<httplib::Client> client = Acquire(*url);
  if (!client->is_valid()) {
    return absl::FailedPreconditionError(
        absl::StrCat("http: ", url->origin, ": cannot create a client (TLS setup failed?)"));
  }

  const absl::Duration timeout = std::max(request.timeout, absl::Milliseconds(1));
  const auto [conn_s, conn_us] = SecUsec(std::min(timeout, options_.connect_timeout));
  const auto [io_s, io_us] = SecUsec(timeout);
  client->set_connection_timeout(conn_s, conn_us);
  client->set_read_timeout(io_s, io_us);
  client->set_write_timeout(io_s, io_us);

  httplib::Request req;
  req.method = request.method;
  req.path = url->target;
  for (const auto& [name, value] : request.headers) req.headers.emplace(name, value);
  if (!req.has_header("User-Agent")) req.set_header("User-Agent", "ml-connector");
  req.body = request.body;

  httplib::Response res;
  httplib::Error error = httplib::Error::Success;
  const absl::Time start = absl::Now();
  const bool ok = client->send(req, res, error);
  if (ok && error == httplib::Error::Success) {
    HttpResponse out;
    out.status = res.status;
    for (auto& [name, value] : res.headers) out.headers.emplace(name, std::move(value));
    out.body = std::move(res.body);
    const auto connection = out.Header("Connection");
    if (!connection.has_value() || !absl::EqualsIgnoreCase(*connection, "close")) {
      Release(url->origin, std::move(client));
    }
    return out;
  }

  // No complete answer: the client is discarded (its socket may be half-used).
  const std::string where = absl::StrCat(request.method, " ", url->origin, Redacted(url->target));
  const bool timed_out = absl::Now() - start >= timeout - timeout / 10;
  switch (error) {
    case httplib::Error::ConnectionTimeout:
      return MarkRequestNotSent(absl::DeadlineExceededError(
          absl::StrCat("http: ", where, ": connect timed out after ",
                       absl::FormatDuration(std::min(timeout, options_.connect_timeout)))));
    case httplib::Error::Connection:
      return MarkRequestNotSent(absl::UnavailableError(absl::StrCat(
          "http: ", where, ": cannot connect (host unknown, refused or unreachable)")));
    case httplib::Error::SSLConnection:
      return MarkRequestNotSent(
          absl::UnavailableError(absl::StrCat("http: ", where, ": TLS handshake failed")));
    case httplib::Error::SSLServerVerification:
      return MarkRequestNotSent(absl::UnavailableError(
          absl::StrCat("http: ", where, ": server certificate verification failed")));
    case httplib::Error::SSLLoadingCerts:
      return MarkRequestNotSent(absl::UnavailableError(
          absl::StrCat("http: ", where, ": cannot load the CA certificates")));
    case httplib::Error::Read:
      if (timed_out) {
        return absl::DeadlineExceededError(
            absl::StrCat("http: ", where, ": no answer within ", absl::FormatDuration(timeout)));
      }
      return absl::UnavailableError(
          absl::StrCat("http: ", where, ": connection closed before a complete answer"));
    case httplib::Error::Write:
      if (timed_out) {
        return absl::DeadlineExceededError(absl::StrCat(
            "http: ", where, ": request not sent within ", absl::FormatDuration(timeout)));
      }
      return absl::UnavailableError(
          absl::StrCat("http: ", where, ": connection lost while sending the request"));
    default:
      return absl::UnavailableError(
          absl::StrCat("http: ", where, ": request failed (", httplib::to_string(error), ")"));
  }
}

}  // namespace mlc
