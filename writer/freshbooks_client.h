// FreshBooksClient: one connection's authenticated access to the FreshBooks API
// (FRESHBOOKS.md §3-§5). It owns the connection's OAuth tokens:
//  - ExchangeCode turns an authorization code into tokens (stored encrypted).
//  - Every call uses the stored access token, refreshing it first when it is
//    expired or expires within a minute. Refreshes are single-flight per
//    connection (concurrent callers wait for the one in progress), and the
//    rotated refresh token is stored durably - together with the new access
//    token, in one transaction - BEFORE the new access token is used, because
//    FreshBooks refresh tokens are single-use.
//  - A 401 on a call refreshes once and retries the call once.
//  - A refresh that FreshBooks rejects for good (400/401 invalid_grant and the
//    like) marks the connection "needs re-authorization": state
//    "freshbooks/<id>/needs_reauth" holds the reason, a loud error log names the
//    fix (`mlc authorize`), the mlc_freshbooks_needs_reauth{connection} gauge
//    goes to 1, and every call fails fast with Unauthenticated until
//    ExchangeCode succeeds again (the state is read at construction, so it
//    survives restarts). Transient refresh failures (network, 5xx, 429) are
//    Unavailable after the retries and do not mark anything; callers that were
//    waiting for a failed refresh share its outcome instead of retrying at once.
//  - If storing a rotated grant fails, the call fails (Unavailable) and the new
//    access token is not used; the grant is kept in memory and storing it is
//    retried first thing next time (its refresh token is the only live one).
//
// Politeness: a per-connection request budget (token bucket,
// requests_per_second with a burst; it paces real requests, so it runs on real
// time - absl::Now/SleepFor - whatever Clock is injected), 429 honouring
// Retry-After and 5xx/network errors retried with exponential backoff and full
// jitter up to max_attempts; only then Unavailable (or ResourceExhausted for
// 429). A POST/PATCH (not idempotent: e.g. registering a callback) is resent
// only when the server cannot have acted on it (429, 503, connection refused);
// after another 5xx or a dropped connection it fails with "outcome unknown".
// The token endpoint counts against the budget too.
//
// Errors (absl::Status) a caller acts on:
//   NotFound          404, or a classic error with HTTP 200 saying the object
//                     does not exist (errno 1012 / message "... not found")
//   Unauthenticated   no tokens yet, needs re-authorization, or a 401 again
//                     right after a successful refresh
//   PermissionDenied  403 (the message names the missing scope if FreshBooks did)
//   InvalidArgument   another 4xx or classic error (message from FreshBooks),
//                     or a 2xx answer that is not JSON
//   FailedPrecondition configuration: client_id empty, client secret missing
//                     from the store, token endpoint not found (api_url)
//   Unavailable / ResourceExhausted / DeadlineExceeded: transient, after retries
// Messages name the method and path (never the query's values, tokens or
// bodies; a token or secret FreshBooks echoes back is replaced by
// "[redacted]"). FreshBooks's error shapes (§5) are all recognised, including
// `response.errors` in an HTTP 200 answer. Token expiry is judged by the
// injected Clock.
//
// Secrets (client secret, tokens) live in the CredentialStore under
//   freshbooks/<connection>/client_secret, .../access_token, .../refresh_token
// and state freshbooks/<connection>/access_expires_at (unix seconds),
// .../scope, .../needs_reauth.
//
// Thread-safe: many threads may call at once (the hydrator fetches in parallel).
// Refreshes are single-flight per client object, so a process must use one
// client per connection (the writer owns them).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "writer/credential_store.h"

namespace mlc::writer {

struct FreshBooksClientOptions {
  std::string connection_id;
  std::string api_url = "https://api.freshbooks.com";  // no trailing slash
  std::string client_id;
  std::string redirect_uri;
  // The client secret is read from the store (the writer puts the config value
  // there at startup): freshbooks/<connection>/client_secret.
  double requests_per_second = 10;
  int burst = 20;
  int max_attempts = 5;  // per call, counting the first
  absl::Duration initial_backoff = absl::Milliseconds(500);
  absl::Duration max_backoff = absl::Seconds(30);
  absl::Duration timeout = absl::Seconds(30);  // per HTTP request
  // A server's Retry-After is honoured up to this much.
  absl::Duration max_retry_after = absl::Minutes(2);
  // Waits between retries; absl::SleepFor if unset (tests record instead). The
  // request budget always waits in real time (see TakeBudget).
  std::function<void(absl::Duration)> sleep;
};

struct FreshBooksMetrics {
  // Every HTTP request, token endpoint included, by {connection, status}: the
  // HTTP status ("200", "429", ...) or "network" when no answer came (refused,
  // timed out, dropped).
  Family<Counter>* requests = nullptr;
  Counter* refreshes = nullptr;  // successful token refreshes
  Counter* refresh_failures = nullptr;
  Gauge* needs_reauth = nullptr;  // 1 while the connection needs re-authorization
};

struct FreshBooksResponse {
  int http_status = 0;
  nlohmann::json body;  // parsed JSON (null for an empty body)
};

class FreshBooksClient {
 public:
  // `http`, `store` and `clock` are not owned and must outlive the client. Reads
  // the connection's needs_reauth state (and sets the gauge) right away.
  FreshBooksClient(FreshBooksClientOptions options, HttpClient* http, CredentialStore* store,
                   const Clock* clock, FreshBooksMetrics metrics = {});
  FreshBooksClient(const FreshBooksClient&) = delete;
  FreshBooksClient& operator=(const FreshBooksClient&) = delete;

  const std::string& connection_id() const { return options_.connection_id; }

  // grant_type=authorization_code; stores access and refresh token, expiry and
  // scope, and clears needs_reauth, in one transaction. Returns the granted
  // scope string. A code FreshBooks rejects (400/401: used, expired, wrong
  // redirect_uri) is InvalidArgument; transient failures are Unavailable.
  absl::StatusOr<std::string> ExchangeCode(const std::string& code);

  // An authenticated call. `path_and_query` is relative to api_url and already
  // percent-encoded ("/auth/api/v1/users/me", "/accounting/account/X/invoices/
  // invoices?page=2&per_page=100"). `body`, if set, is sent as JSON. Returns the
  // parsed answer of a 2xx response; errors as described above.
  absl::StatusOr<FreshBooksResponse> Call(const std::string& method,
                                          const std::string& path_and_query,
                                          const std::optional<nlohmann::json>& body = std::nullopt);

  // True once ExchangeCode has stored tokens (even if they later need a refresh
  // or were rejected: see NeedsReauthorization).
  bool HasTokens();
  // The reason the connection needs re-authorization, if it does (read from the
  // store, so another client's ExchangeCode is seen).
  std::optional<std::string> NeedsReauthorization();
  // The scope string FreshBooks granted at the last code exchange or refresh
  // (state freshbooks/<id>/scope, space-separated), if it reported one.
  std::optional<std::string> GrantedScope();

 private:
  // What the token endpoint answered.
  struct Grant {
    std::string access_token;
    std::string refresh_token;  // empty: FreshBooks did not rotate it (keep ours)
    absl::Duration expires_in;
    std::optional<std::string> scope;
  };
  // Tokens as stored (and cached).
  struct Stored {
    std::string access_token;
    std::string refresh_token;
    absl::Time expires_at = absl::InfinitePast();
    std::optional<std::string> needs_reauth;
  };

  // A valid access token (refreshing if needed); `stale` is a token a 401 just
  // rejected, so a refresh is forced unless another thread already replaced it.
  absl::StatusOr<std::string> AccessToken(const std::string& stale = "");
  // Reads the connection's tokens and needs_reauth state from the store and
  // updates the cache (and the gauge).
  absl::StatusOr<Stored> LoadStored() ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_);
  // grant_type=refresh_token; persists the result before returning it.
  absl::StatusOr<std::string> Refresh(const std::string& refresh_token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_);
  // Posts `body` to the token endpoint with retries on 429/5xx/network errors.
  // On a 400/401 sets *rejected to FreshBooks' reason (error code and
  // description, secrets scrubbed) and returns Unauthenticated.
  absl::StatusOr<Grant> RequestToken(const nlohmann::json& body, const std::string& what,
                                     const std::vector<std::string>& secrets,
                                     std::string* rejected);
  // Stores `grant` (obtained at `obtained`) in one transaction and then caches it.
  absl::Status Persist(const Grant& grant, absl::Time obtained)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(refresh_mu_);
  absl::StatusOr<std::string> ClientSecret();
  void MarkNeedsReauth(const std::string& reason);
  // Waits for the request budget. The budget paces real requests, so it runs on
  // real time (absl::Now / absl::SleepFor), not on the injected clock, which
  // governs token expiry.
  void TakeBudget();
  void Sleep(absl::Duration d) const;
  void CountRequest(const std::string& status) const;
  std::string Name(const char* suffix) const;

  const FreshBooksClientOptions options_;
  const std::string base_url_;  // api_url without trailing slashes
  HttpClient* const http_;
  CredentialStore* const store_;
  const Clock* const clock_;
  const FreshBooksMetrics metrics_;

  absl::Mutex refresh_mu_ ABSL_ACQUIRED_BEFORE(mu_);  // serialises refreshes (single flight)
  // A rotated grant whose Persist failed: its refresh token is the only live one,
  // so the next attempt stores it again instead of refreshing with the old one.
  std::optional<std::pair<Grant, absl::Time>> unsaved_ ABSL_GUARDED_BY(refresh_mu_);
  absl::Mutex mu_;
  std::optional<std::string> access_token_ ABSL_GUARDED_BY(mu_);  // cache of the stored one
  absl::Time access_expires_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::optional<std::string> needs_reauth_ ABSL_GUARDED_BY(mu_);  // cache of the state
  // Bumped when a refresh ends; a caller that waited for a refresh which failed
  // shares its outcome instead of trying again at once.
  uint64_t refresh_generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status last_refresh_status_ ABSL_GUARDED_BY(mu_);
  double budget_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time budget_at_ ABSL_GUARDED_BY(mu_);
};

// Parses any FreshBooks error shape (§5) in `body` into a message, or nullopt if
// the body carries no error. Exposed for tests.
std::optional<std::string> FreshBooksErrorMessage(const nlohmann::json& body);

}  // namespace mlc::writer
