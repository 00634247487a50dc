// OAuth machine-to-machine access tokens for a Databricks workspace
// (DATABRICKS.md §1): a service principal's client_id and client_secret are
// exchanged at `<host>/oidc/v1/token` (client credentials grant, scope all-apis)
// for a bearer token that lives about an hour. There is no refresh token: a new
// token is simply requested again.
//
// DatabricksTokenSource caches one token and refreshes it the way the official
// SDKs do:
//  - A token counts as expired 40 s before `expires_in` ends (the server rejects
//    tokens close to their expiry).
//  - Once min(TTL / 2, 20 min) is left, the next caller of Token() refreshes it
//    synchronously while every other caller keeps using the still-valid token; if
//    that refresh fails, the old token is used and no refresh is tried again for a
//    minute.
//  - Without a valid token, exactly one caller requests a new one and concurrent
//    callers wait for its outcome (single flight): N threads, one token request.
//  - Invalidate(token) drops the cached token if it is still the current one (after
//    a 401, or a 403 "Invalid access token"), so the next Token() mints a new one.
//
// A token request is retried, with full-jitter backoff and honouring an integer
// Retry-After, only on 429, 5xx and network errors, for at most
// `max_attempts` tries. Errors (returned Status):
//  - Unauthenticated: the workspace rejected the credentials (HTTP 400/401, e.g.
//    invalid_client) — a configuration problem that retrying will not fix.
//  - FailedPrecondition: any other 4xx (a 404 means databricks.host is not a
//    workspace URL).
//  - Unavailable / DeadlineExceeded / ResourceExhausted: still failing after the
//    retries (transient).
//  - Internal: an answer that is not a token (bad JSON, no access_token).
// Messages never contain the client secret, the token or the request body.
// Metrics (optional): tokens minted, token requests that failed, and every HTTP
// call to the token endpoint by status (mlc_databricks_requests_total).
//
// Thread-safe. The HttpClient and Clock are not owned and must outlive the source.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "writer/databricks_requests.h"

namespace mlc::writer {

struct DatabricksTokenOptions {
  // The workspace URL, e.g. "https://adb-1234567890123456.7.azuredatabricks.net"
  // (a trailing slash is ignored).
  std::string host;
  std::string client_id;
  std::string client_secret;  // secret: never logged or put in errors

  absl::Duration request_timeout = absl::Seconds(30);
  int max_attempts = 5;
  BackoffPolicy backoff{absl::Milliseconds(500), absl::Seconds(30)};
  // A server's Retry-After is honoured up to this much.
  absl::Duration max_retry_after = absl::Minutes(2);
  // How long to wait before retrying a failed refresh-ahead (a valid token is
  // still in use meanwhile).
  absl::Duration failed_refresh_pause = absl::Minutes(1);
  // Waits between retries; absl::SleepFor if unset (tests record instead).
  std::function<void(absl::Duration)> sleep;
};

// Optional counters (null / default: not counted).
struct DatabricksTokenMetrics {
  Counter* refreshes = nullptr;  // tokens obtained
  Counter* failures = nullptr;   // token requests that ended in an error
  // Every HTTP call to the token endpoint, each retry included.
  DatabricksRequestCounter requests;
};

class DatabricksTokenSource {
 public:
  DatabricksTokenSource(DatabricksTokenOptions options, HttpClient* http, const Clock* clock,
                        DatabricksTokenMetrics metrics = {});
  DatabricksTokenSource(const DatabricksTokenSource&) = delete;
  DatabricksTokenSource& operator=(const DatabricksTokenSource&) = delete;

  // A bearer token valid for at least 40 s more (see the file comment).
  absl::StatusOr<std::string> Token();

  // Drops `token` if it is the cached one; a token already replaced is ignored, so
  // many callers reporting the same rejected token cause one new token, not many.
  void Invalidate(const std::string& token);

  // When the cached token stops being used (for tests and diagnostics);
  // InfinitePast() if there is none.
  absl::Time ExpiresAt() const;

 private:
  struct Minted {
    std::string token;
    absl::Duration ttl;
  };

  // The token request with retries; called without mu_ held.
  absl::StatusOr<Minted> Fetch();
  // One token request.
  absl::StatusOr<Minted> FetchOnce(bool* retryable, absl::Duration* retry_after);
  void Sleep(absl::Duration d) const;

  const DatabricksTokenOptions options_;
  const std::string token_url_;
  HttpClient* const http_;
  const Clock* const clock_;
  const DatabricksTokenMetrics metrics_;

  mutable absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time expires_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // early by 40 s
  absl::Time refresh_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time no_refresh_before_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar fetch_done_;
  // Bumped when a fetch ends; waiters compare it to know a fetch finished.
  uint64_t fetch_generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_fetch_status_ ABSL_GUARDED_BY(mu_);
};

// The token's effective lifetime rules, exposed for tests: a token minted at
// `minted` with `ttl` is used until the returned expiry and refreshed from
// `refresh_at` on.
struct TokenSchedule {
  absl::Time expires_at;
  absl::Time refresh_at;
};
TokenSchedule ScheduleFor(absl::Time minted, absl::Duration ttl);

}  // namespace mlc::writer
