// DatabricksTokenSource: OAuth M2M tokens with refresh-ahead and single flight.
#include "writer/databricks_token.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/logging.h"

namespace mlc::writer {
namespace {

using json = nlohmann::json;

// The server rejects tokens within 30 s of their expiry; the SDKs stop using them
// 40 s early.
constexpr absl::Duration kExpiryMargin = absl::Seconds(40);
constexpr absl::Duration kMaxRefreshAhead = absl::Minutes(20);
constexpr char kTokenPath[] = "/oidc/v1/token";
constexpr char kTokenBody[] = "grant_type=client_credentials&scope=all-apis";

std::string TrimHost(std::string host) {
  while (!host.empty() && host.back() == '/') host.pop_back();
  return host;
}

// At most `n` bytes of server-provided text for an error message.
std::string Clip(std::string_view s, size_t n = 300) {
  if (s.size() <= n) return std::string(s);
  return absl::StrCat(absl::string_view(s.data(), n), "...");
}

// A member of a JSON object, via the underlying std::map (nlohmann's iterators trip
// GCC's -Wnull-dereference at -O2).
const json* Member(const json& j, const char* name) {
  const auto* object = j.get_ptr<const json::object_t*>();
  if (object == nullptr) return nullptr;
  const auto it = object->find(name);
  return it == object->end() ? nullptr : &it->second;
}

}  // namespace

TokenSchedule ScheduleFor(absl::Time minted, absl::Duration ttl) {
  TokenSchedule s;
  s.expires_at = minted + ttl - kExpiryMargin;
  s.refresh_at = std::min(minted + ttl - std::min(ttl / 2, kMaxRefreshAhead), s.expires_at);
  return s;
}

DatabricksTokenSource::DatabricksTokenSource(DatabricksTokenOptions options, HttpClient* http,
                                             const Clock* clock, DatabricksTokenMetrics metrics)
    : options_(std::move(options)),
      token_url_(absl::StrCat(TrimHost(options_.host), kTokenPath)),
      http_(http),
      clock_(clock),
      metrics_(std::move(metrics)) {}

absl::Time DatabricksTokenSource::ExpiresAt() const {
  absl::MutexLock lock(&mu_);
  return token_.empty() ? absl::InfinitePast() : expires_at_;
}

void DatabricksTokenSource::Invalidate(const std::string& token) {
  absl::MutexLock lock(&mu_);
  if (!token_.empty() && ConstantTimeEquals(token_, token)) {
    token_.clear();
    expires_at_ = absl::InfinitePast();
    refresh_at_ = absl::InfinitePast();
    no_refresh_before_ = absl::InfinitePast();
    log::Info("databricks: access token invalidated; a new one will be requested",
              {{"host", options_.host}});
  }
}

absl::StatusOr<std::string> DatabricksTokenSource::Token() {
  absl::MutexLock lock(&mu_);
  while (true) {
    const absl::Time now = clock_->Now();
    const bool valid = !token_.empty() && now < expires_at_;
    if (valid && (now < refresh_at_ || fetching_ || now < no_refresh_before_)) return token_;
    if (!valid && fetching_) {
      // Single flight: wait for the fetch in progress and take its outcome.
      const uint64_t generation = fetch_generation_;
      while (fetching_ && fetch_generation_ == generation) fetch_done_.Wait(&mu_);
      if (fetch_generation_ != generation && !last_fetch_status_.ok()) {
        const bool usable = !token_.empty() && clock_->Now() < expires_at_;
        if (!usable) return last_fetch_status_;
      }
      continue;
    }

    // This caller fetches: either there is no valid token, or it is time to
    // refresh ahead (the others keep using the valid one meanwhile).
    fetching_ = true;
    const absl::Time started = now;
    mu_.Unlock();
    absl::StatusOr<Minted> minted = Fetch();
    mu_.Lock();
    fetching_ = false;
    ++fetch_generation_;
    last_fetch_status_ = minted.status();
    fetch_done_.SignalAll();
    if (minted.ok()) {
      const TokenSchedule schedule = ScheduleFor(started, minted->ttl);
      token_ = std::move(minted->token);
      expires_at_ = schedule.expires_at;
      refresh_at_ = schedule.refresh_at;
      no_refresh_before_ = absl::InfinitePast();
      return token_;  // fresh, even if its TTL is shorter than the 40 s margin
    }
    if (!token_.empty() && clock_->Now() < expires_at_) {
      // A failed refresh-ahead: keep the valid token, try again in a while.
      no_refresh_before_ = clock_->Now() + options_.failed_refresh_pause;
      log::Warn("databricks: token refresh failed; using the current token until it expires",
                {{"host", options_.host}, {"error", std::string(minted.status().message())}});
      return token_;
    }
    return minted.status();
  }
}

void DatabricksTokenSource::Sleep(absl::Duration d) const {
  if (options_.sleep) {
    options_.sleep(d);
  } else {
    absl::SleepFor(d);
  }
}

absl::StatusOr<DatabricksTokenSource::Minted> DatabricksTokenSource::Fetch() {
  absl::BitGen gen;
  const int attempts = std::max(options_.max_attempts, 1);
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    bool retryable = false;
    absl::Duration retry_after = absl::ZeroDuration();
    absl::StatusOr<Minted> minted = FetchOnce(&retryable, &retry_after);
    if (minted.ok()) {
      if (metrics_.refreshes != nullptr) metrics_.refreshes->Inc();
      log::Info("databricks: access token obtained",
                {{"host", options_.host},
                 {"expires_in_s", static_cast<int64_t>(absl::ToInt64Seconds(minted->ttl))}});
      return minted;
    }
    last = minted.status();
    if (!retryable) break;
    if (attempt + 1 < attempts) {
      const absl::Duration delay = FullJitterDelay(options_.backoff, attempt, gen,
                                                   std::min(retry_after, options_.max_retry_after));
      log::Warn("databricks: token request failed; retrying",
                {{"host", options_.host},
                 {"attempt", attempt + 1},
                 {"delay_ms", static_cast<int64_t>(absl::ToInt64Milliseconds(delay))},
                 {"error", std::string(last.message())}});
      Sleep(delay);
    } else {
      last = absl::Status(last.code(),
                          absl::StrCat(last.message(), " (gave up after ", attempts, " attempts)"));
    }
  }
  if (metrics_.failures != nullptr) metrics_.failures->Inc();
  return last;
}

absl::StatusOr<DatabricksTokenSource::Minted> DatabricksTokenSource::FetchOnce(
    bool* retryable, absl::Duration* retry_after) {
  *retryable = false;
  HttpRequest request;
  request.method = "POST";
  request.url = token_url_;
  request.timeout = options_.request_timeout;
  request.headers.emplace(
      "Authorization", absl::StrCat("Basic ", Base64Encode(absl::StrCat(options_.client_id, ":",
                                                                        options_.client_secret))));
  request.headers.emplace("Content-Type", "application/x-www-form-urlencoded");
  request.headers.emplace("Accept", "application/json");
  request.body = kTokenBody;

  absl::StatusOr<HttpResponse> response = http_->Send(request);
  metrics_.requests.Count(response);
  if (!response.ok()) {
    *retryable = true;
    return absl::Status(response.status().code(), absl::StrCat("databricks: token request failed: ",
                                                               response.status().message()));
  }
  // The server's own words, minus anything that looks like our secret.
  const auto scrub = [this](std::string_view text) {
    std::string s = Clip(text);
    if (!options_.client_secret.empty()) {
      s = absl::StrReplaceAll(s, {{options_.client_secret, "[redacted]"}});
    }
    return s;
  };
  const int status = response->status;
  if (status == 429 || status >= 500) {
    *retryable = true;
    if (auto ra = response->Header("Retry-After"); ra.has_value()) {
      *retry_after = ParseRetryAfter(*ra).value_or(absl::ZeroDuration());
    }
    const std::string what = absl::StrCat("databricks: token endpoint ", options_.host, kTokenPath,
                                          " answered HTTP ", status);
    return status == 429 ? absl::ResourceExhaustedError(what) : absl::UnavailableError(what);
  }

  const json body = json::parse(response->body, nullptr, false);
  const auto field = [&body](const char* name) -> std::string {
    const json* v = Member(body, name);
    const auto* s = v == nullptr ? nullptr : v->get_ptr<const std::string*>();
    return s == nullptr ? "" : *s;
  };
  if (status == 400 || status == 401) {
    const std::string error = field("error");
    if (error == "invalid_client" || (error.empty() && status == 401)) {
      return absl::UnauthenticatedError(
          "databricks: token request rejected (invalid_client): check the service principal's "
          "client_id and client_secret");
    }
    return absl::UnauthenticatedError(absl::StrCat("databricks: token request rejected (HTTP ",
                                                   status, " ", scrub(error),
                                                   "): ", scrub(field("error_description"))));
  }
  if (status == 404) {
    return absl::FailedPreconditionError(
        absl::StrCat("databricks: ", options_.host, kTokenPath,
                     " answered HTTP 404: is databricks.host the workspace URL?"));
  }
  if (status != 200) {
    return absl::FailedPreconditionError(absl::StrCat(
        "databricks: token request failed (HTTP ", status, "): ",
        scrub(field("error_description").empty() ? field("message") : field("error_description"))));
  }
  if (!body.is_object()) {
    return absl::InternalError("databricks: token endpoint answered 200 without a JSON object");
  }
  Minted minted;
  minted.token = field("access_token");
  if (minted.token.empty()) {
    return absl::InternalError("databricks: token endpoint answered 200 without access_token");
  }
  const std::string type = field("token_type");
  if (!type.empty() && !absl::EqualsIgnoreCase(type, "Bearer")) {
    return absl::InternalError(absl::StrCat("databricks: token endpoint returned token_type \"",
                                            scrub(type), "\", expected Bearer"));
  }
  minted.ttl = absl::Hours(1);  // OAuth makes expires_in optional; Databricks sends it
  if (const json* expires_in = Member(body, "expires_in"); expires_in != nullptr) {
    int64_t seconds = -1;
    if (expires_in->is_number_integer()) {
      seconds = expires_in->get<int64_t>();
    } else if (expires_in->is_number()) {
      seconds = static_cast<int64_t>(expires_in->get<double>());
    } else if (const auto* text = expires_in->get_ptr<const std::string*>();
               text != nullptr && !absl::SimpleAtoi(*text, &seconds)) {
      seconds = -1;
    }
    if (seconds <= 0) {
      return absl::InternalError("databricks: token endpoint returned a bad expires_in");
    }
    minted.ttl = absl::Seconds(seconds);
  }
  return minted;
}

}  // namespace mlc::writer
