// DatabricksTokenSource against the fake workspace's /oidc/v1/token
// (DATABRICKS.md §1, DESIGN.md §4-§5): tokens are cached and refreshed ahead of
// expiry on the SDKs' schedule (FakeClock, no sleeping), N concurrent callers
// cause one token request, 429/5xx/network errors are retried with Retry-After
// honoured while a rejected client is not, and no error carries the secret.
#include "writer/databricks_token.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "tests/fakes/fake_databricks.h"
#include "tests/support/test_util.h"

namespace mlc::writer {
namespace {

using ::testing::Each;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Not;
using Endpoint = testing::FakeDatabricks::Endpoint;
using Scope = testing::FakeDatabricks::Scope;

// Records the delays the source would sleep, without sleeping.
class SleepRecorder {
 public:
  std::function<void(absl::Duration)> Fn() {
    return [this](absl::Duration d) {
      std::lock_guard<std::mutex> lock(mu_);
      delays_.push_back(d);
    };
  }
  std::vector<absl::Duration> delays() {
    std::lock_guard<std::mutex> lock(mu_);
    return delays_;
  }

 private:
  std::mutex mu_;
  std::vector<absl::Duration> delays_;
};

// Delays every request, so concurrent callers really overlap a token request.
class SlowHttpClient final : public HttpClient {
 public:
  SlowHttpClient(HttpClient* inner, absl::Duration delay) : inner_(inner), delay_(delay) {}
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    absl::SleepFor(delay_);
    return inner_->Send(request);
  }

 private:
  HttpClient* inner_;
  absl::Duration delay_;
};

class DatabricksTokenTest : public ::testing::Test {
 protected:
  DatabricksTokenTest() : fake_(FakeOptions(&clock_)) {}

  static testing::FakeDatabricks::Options FakeOptions(const Clock* clock) {
    testing::FakeDatabricks::Options o;
    o.client_id = "7a1c5b0e-sp-client";
    o.client_secret = "dose0123456789abcdefSECRET";
    o.clock = clock;
    return o;
  }

  void SetUp() override { ASSERT_TRUE(fake_.Start().ok()); }

  DatabricksTokenOptions Options() {
    DatabricksTokenOptions o;
    o.host = fake_.url() + "/";  // a trailing slash is tolerated
    o.client_id = fake_.options().client_id;
    o.client_secret = fake_.options().client_secret;
    o.max_attempts = 4;
    o.backoff = {absl::Milliseconds(100), absl::Seconds(1)};
    o.sleep = sleeps_.Fn();
    return o;
  }

  DatabricksTokenMetrics Metrics() {
    return DatabricksTokenMetrics{&refreshes_, &failures_,
                                  DatabricksRequestCounter(requests_, "acme")};
  }

  std::unique_ptr<DatabricksTokenSource> Source(HttpClient* http = nullptr) {
    return std::make_unique<DatabricksTokenSource>(Options(), http ? http : &http_, &clock_,
                                                   Metrics());
  }

  // mlc_databricks_requests_total{connection="acme", status}.
  double Requests(const std::string& status) { return requests_->With({"acme", status})->Value(); }

  FakeClock clock_;
  testing::FakeDatabricks fake_;
  HttplibClient http_;
  SleepRecorder sleeps_;
  Counter refreshes_;
  Counter failures_;
  Registry registry_;
  Family<Counter>* requests_ =
      registry_.AddCounter("mlc_databricks_requests_total", "requests", {"connection", "status"});
};

TEST(TokenScheduleTest, FollowsTheSdkRules) {
  const absl::Time t0 = absl::FromUnixSeconds(1000000);
  // One hour: refresh with 20 min left (TTL/2 would be 30), stop using 40 s early.
  TokenSchedule s = ScheduleFor(t0, absl::Hours(1));
  EXPECT_EQ(s.refresh_at, t0 + absl::Minutes(40));
  EXPECT_EQ(s.expires_at, t0 + absl::Hours(1) - absl::Seconds(40));
  // Ten minutes: refresh at half-life.
  s = ScheduleFor(t0, absl::Minutes(10));
  EXPECT_EQ(s.refresh_at, t0 + absl::Minutes(5));
  EXPECT_EQ(s.expires_at, t0 + absl::Minutes(10) - absl::Seconds(40));
  // Very short: never refreshed after it stopped being usable.
  s = ScheduleFor(t0, absl::Seconds(60));
  EXPECT_EQ(s.expires_at, t0 + absl::Seconds(20));
  EXPECT_LE(s.refresh_at, s.expires_at);
}

TEST_F(DatabricksTokenTest, MintsOnceAndCaches) {
  auto source = Source();
  absl::StatusOr<std::string> a = source->Token();
  ASSERT_TRUE(a.ok()) << a.status();
  absl::StatusOr<std::string> b = source->Token();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(fake_.TokensMinted(), 1);
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 1);
  EXPECT_EQ(source->ExpiresAt(), clock_.Now() + absl::Hours(1) - absl::Seconds(40));
  EXPECT_EQ(refreshes_.Value(), 1);
  EXPECT_EQ(failures_.Value(), 0);
}

TEST_F(DatabricksTokenTest, RefreshesAheadWithTwentyMinutesLeft) {
  auto source = Source();
  const std::string first = *source->Token();
  clock_.Advance(absl::Minutes(40) - absl::Seconds(1));
  EXPECT_EQ(*source->Token(), first);
  EXPECT_EQ(fake_.TokensMinted(), 1);
  clock_.Advance(absl::Seconds(2));
  const std::string second = *source->Token();
  EXPECT_NE(second, first);
  EXPECT_EQ(fake_.TokensMinted(), 2);
  EXPECT_EQ(*source->Token(), second);
  EXPECT_EQ(fake_.TokensMinted(), 2);
}

TEST_F(DatabricksTokenTest, RefreshesAheadAtHalfLifeForShortTokens) {
  fake_.SetTokenTtl(absl::Minutes(10));
  auto source = Source();
  const std::string first = *source->Token();
  clock_.Advance(absl::Minutes(5) - absl::Seconds(1));
  EXPECT_EQ(*source->Token(), first);
  clock_.Advance(absl::Seconds(2));
  EXPECT_NE(*source->Token(), first);
  EXPECT_EQ(fake_.TokensMinted(), 2);
}

TEST_F(DatabricksTokenTest, FailedRefreshAheadKeepsTheValidTokenAndPausesAMinute) {
  auto source = Source();
  const std::string first = *source->Token();
  clock_.Advance(absl::Minutes(41));            // refresh due, token still valid
  fake_.UnavailableNext(4, -1, Scope::kToken);  // exactly one failed refresh (4 attempts)
  EXPECT_EQ(*source->Token(), first);
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 1 + 4);
  EXPECT_EQ(failures_.Value(), 1);
  clock_.Advance(absl::Seconds(59));  // within the pause: no new attempt
  EXPECT_EQ(*source->Token(), first);
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 1 + 4);
  clock_.Advance(absl::Seconds(2));
  const std::string second = *source->Token();
  EXPECT_NE(second, first);
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 1 + 4 + 1);
  EXPECT_EQ(fake_.TokensMinted(), 2);
}

TEST_F(DatabricksTokenTest, SingleFlightManyCallersOneRequest) {
  SlowHttpClient slow(&http_, absl::Milliseconds(150));
  auto source = Source(&slow);
  constexpr int kThreads = 16;
  absl::Barrier* barrier = new absl::Barrier(kThreads);
  std::vector<std::string> tokens(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      if (barrier->Block()) delete barrier;
      absl::StatusOr<std::string> t = source->Token();
      tokens[i] = t.ok() ? *t : "error: " + t.status().ToString();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 1);
  EXPECT_EQ(fake_.TokensMinted(), 1);
  EXPECT_THAT(tokens, Each(tokens[0]));
  EXPECT_THAT(tokens[0], Not(HasSubstr("error")));
}

TEST_F(DatabricksTokenTest, SingleFlightSharesAFailure) {
  SlowHttpClient slow(&http_, absl::Milliseconds(150));
  DatabricksTokenOptions o = Options();
  o.client_secret = "wrong-secret-value-42";
  DatabricksTokenSource source(o, &slow, &clock_);
  constexpr int kThreads = 8;
  absl::Barrier* barrier = new absl::Barrier(kThreads);
  std::atomic<int> unauthenticated{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      if (barrier->Block()) delete barrier;
      if (absl::IsUnauthenticated(source.Token().status())) ++unauthenticated;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(unauthenticated.load(), kThreads);
  // Callers that waited took the shared outcome; any that arrived after it asked
  // again (a failure is not cached), but never all at once.
  EXPECT_LT(fake_.Requests(Endpoint::kToken), kThreads);
}

TEST_F(DatabricksTokenTest, RetriesThrottlingAndServerErrorsHonouringRetryAfter) {
  fake_.ThrottleNext(1, /*retry_after_seconds=*/7, Scope::kToken);
  fake_.UnavailableNext(2, -1, Scope::kToken);
  auto source = Source();
  absl::StatusOr<std::string> token = source->Token();
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 4);
  const std::vector<absl::Duration> delays = sleeps_.delays();
  ASSERT_EQ(delays.size(), 3u);
  EXPECT_GE(delays[0], absl::Seconds(7));  // after the 429: its Retry-After
  EXPECT_LE(delays[1], absl::Seconds(1));  // backoff capped by the policy
  EXPECT_LE(delays[2], absl::Seconds(1));
}

TEST_F(DatabricksTokenTest, EveryTokenRequestIsCountedByStatus) {
  fake_.ThrottleNext(1, /*retry_after_seconds=*/1, Scope::kToken);
  fake_.UnavailableNext(2, -1, Scope::kToken);
  auto source = Source();
  ASSERT_TRUE(source->Token().ok());
  EXPECT_EQ(Requests("429"), 1);
  EXPECT_EQ(Requests("503"), 2);
  EXPECT_EQ(Requests("200"), 1);
  EXPECT_EQ(refreshes_.Value(), 1);
  // A cached token costs no request.
  ASSERT_TRUE(source->Token().ok());
  EXPECT_EQ(Requests("200"), 1);

  // Rejected credentials are counted with their status too.
  DatabricksTokenOptions o = Options();
  o.client_secret = "dose-wrong-secret-do-not-print";
  DatabricksTokenSource rejected(o, &http_, &clock_, Metrics());
  EXPECT_FALSE(rejected.Token().ok());
  EXPECT_EQ(Requests("401") + Requests("400"), 1);
  EXPECT_EQ(failures_.Value(), 1);
  EXPECT_THAT(registry_.Render(), Not(HasSubstr(o.client_secret)));
}

TEST_F(DatabricksTokenTest, GivesUpAfterMaxAttempts) {
  fake_.UnavailableNext(100, -1, Scope::kToken);
  auto source = Source();
  absl::StatusOr<std::string> token = source->Token();
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("gave up after 4 attempts"));
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 4);
  EXPECT_EQ(sleeps_.delays().size(), 3u);
  EXPECT_EQ(failures_.Value(), 1);
}

TEST_F(DatabricksTokenTest, InvalidClientIsNotRetriedAndHidesTheSecret) {
  DatabricksTokenOptions o = Options();
  o.client_secret = "dose-wrong-secret-do-not-print";
  DatabricksTokenSource source(o, &http_, &clock_);
  absl::StatusOr<std::string> token = source.Token();
  ASSERT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(token.status().message(),
            "databricks: token request rejected (invalid_client): check the service principal's "
            "client_id and client_secret");
  EXPECT_THAT(token.status().ToString(), Not(HasSubstr(o.client_secret)));
  EXPECT_EQ(fake_.Requests(Endpoint::kToken), 1);
  EXPECT_TRUE(sleeps_.delays().empty());
}

TEST_F(DatabricksTokenTest, NetworkErrorsAreRetriedThenReportedWithoutSecrets) {
  DatabricksTokenOptions o = Options();
  o.host = absl::StrCat("http://127.0.0.1:", testing::PickFreePort());
  o.max_attempts = 3;
  DatabricksTokenSource source(o, &http_, &clock_, Metrics());
  absl::StatusOr<std::string> token = source.Token();
  ASSERT_EQ(token.status().code(), absl::StatusCode::kUnavailable) << token.status();
  EXPECT_THAT(std::string(token.status().message()), HasSubstr("/oidc/v1/token"));
  EXPECT_THAT(token.status().ToString(), Not(HasSubstr(o.client_secret)));
  EXPECT_EQ(sleeps_.delays().size(), 2u);
  EXPECT_EQ(Requests("network"), 3);  // every attempt
}

TEST_F(DatabricksTokenTest, InvalidateDropsOnlyTheCurrentToken) {
  auto source = Source();
  const std::string first = *source->Token();
  source->Invalidate("some-other-token");
  EXPECT_EQ(*source->Token(), first);
  source->Invalidate(first);
  const std::string second = *source->Token();
  EXPECT_NE(second, first);
  source->Invalidate(first);  // a late report about the old token: ignored
  EXPECT_EQ(*source->Token(), second);
  EXPECT_EQ(fake_.TokensMinted(), 2);
}

TEST_F(DatabricksTokenTest, ExpiredTokenIsReplacedBeforeUse) {
  auto source = Source();
  const std::string first = *source->Token();
  clock_.Advance(absl::Hours(2));
  const std::string second = *source->Token();
  EXPECT_NE(second, first);
  EXPECT_EQ(fake_.TokensMinted(), 2);
}

}  // namespace
}  // namespace mlc::writer
