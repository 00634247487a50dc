// The fake FreshBooks over real loopback sockets, through the same HttplibClient
// production code uses: it must honour FRESHBOOKS.md (OAuth with single-use codes
// and rotating refresh tokens, identity, envelopes, paging and filters, error
// shapes, callbacks and their handshake, signed deliveries in varying field
// order) and its knobs must do what tests of the connector rely on.
#include "tests/fakes/fake_freshbooks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/http_server_util.h"
#include "common/webhook_signature.h"
#include "tests/fakes/freshbooks_samples.h"
#include "tests/support/test_util.h"

namespace mlc::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr std::chrono::seconds kWait(5);

// A webhook receiver: records every POST to /hook; can fail the first N.
class Receiver {
 public:
  struct Hit {
    std::string body;
    std::string signature;
    std::string content_type;
  };

  Receiver() {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      hits_.push_back(Hit{req.body, req.get_header_value("X-FreshBooks-Hmac-SHA256"),
                          req.get_header_value("Content-Type")});
      if (fail_next_ > 0) {
        --fail_next_;
        res.status = 503;
        return;
      }
      res.status = 200;
    });
    const absl::StatusOr<int> port = StartHttpServer(&server_, "receiver", "127.0.0.1:0", &thread_);
    EXPECT_TRUE(port.ok()) << port.status();
    port_ = port.value_or(0);
  }
  ~Receiver() { StopHttpServer(&server_, &thread_); }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_, "/hook"); }
  std::vector<Hit> hits() const {
    absl::MutexLock lock(&mu_);
    return hits_;
  }
  size_t count() const {
    absl::MutexLock lock(&mu_);
    return hits_.size();
  }
  void FailNext(int n) {
    absl::MutexLock lock(&mu_);
    fail_next_ = n;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable absl::Mutex mu_;
  std::vector<Hit> hits_ ABSL_GUARDED_BY(mu_);
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
};

// The value of `key` in decoded form fields ("" if absent).
std::string Field(const FormFields& fields, const std::string& key) {
  for (const auto& [k, v] : fields) {
    if (k == key) return v;
  }
  return "";
}

std::vector<std::string> Keys(const FormFields& fields) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : fields) keys.push_back(k);
  return keys;
}

class FakeFreshBooksTest : public ::testing::Test {
 protected:
  void SetUp() override { StartFake(FakeFreshBooks::Options()); }

  void StartFake(FakeFreshBooks::Options options) {
    options.clock = &clock_;
    fake_ = std::make_unique<FakeFreshBooks>(std::move(options));
    ASSERT_TRUE(fake_->Start().ok());
  }

  HttpResponse Send(const std::string& method, const std::string& path, const std::string& token,
                    const std::string& body = "", const std::string& content_type = "") {
    HttpRequest request;
    request.method = method;
    request.url = fake_->url() + path;
    if (!token.empty()) request.headers.emplace("Authorization", "Bearer " + token);
    if (!content_type.empty()) request.headers.emplace("Content-Type", content_type);
    request.body = body;
    request.timeout = absl::Seconds(5);
    absl::StatusOr<HttpResponse> response = http_.Send(request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.value_or(HttpResponse{});
  }

  json SendJson(const std::string& method, const std::string& path, const std::string& token,
                int want_status, const json& body = nullptr) {
    const HttpResponse r = Send(method, path, token, body.is_null() ? "" : body.dump(),
                                body.is_null() ? "" : "application/json");
    EXPECT_EQ(r.status, want_status) << method << " " << path << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }

  std::string Token() { return fake_->IssueTokens()["access_token"].get<std::string>(); }

  std::string Acct(const std::string& rest) {
    return absl::StrCat("/accounting/account/", fake_->options().account_id, "/", rest);
  }
  std::string Callbacks(const std::string& rest = "") {
    return absl::StrCat("/events/account/", fake_->options().account_id, "/events/callbacks", rest);
  }

  // Registers a callback for `event` to receiver_ and verifies it with the
  // verifier of the handshake it received. Returns the callback id.
  int64_t RegisterVerified(const std::string& event, const std::string& token) {
    const size_t before = receiver_.count();
    const json created = SendJson("POST", Callbacks(), token, 200,
                                  json{{"callback", {{"event", event}, {"uri", receiver_.url()}}}});
    const int64_t id = created["response"]["result"]["callback"]["callbackid"].get<int64_t>();
    EXPECT_TRUE(WaitFor([&] { return receiver_.count() > before; }, kWait));
    const absl::StatusOr<FormFields> handshake = ParseWebhookForm(receiver_.hits().back().body);
    EXPECT_TRUE(handshake.ok());
    const std::string verifier = Field(*handshake, "verifier");
    SendJson("PUT", Callbacks(absl::StrCat("/", id)), token, 200,
             json{{"callback", {{"verifier", verifier}}}});
    EXPECT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
    return id;
  }

  // Outlives the fake, whose sender keeps connections to it until it stops.
  Receiver receiver_;
  FakeClock clock_;
  std::unique_ptr<FakeFreshBooks> fake_;
  // Destroyed before the fake, so its keep-alive connections do not hold up the
  // fake's shutdown.
  HttplibClient http_;
  std::mt19937_64 rng_{7};
};

// --- OAuth -----------------------------------------------------------------------

TEST_F(FakeFreshBooksTest, AuthorizeRedirectsWithCodeThatExchangesOnce) {
  const FakeFreshBooks::Options& o = fake_->options();
  const std::string query = EncodeWebhookForm({{"client_id", o.client_id},
                                               {"response_type", "code"},
                                               {"redirect_uri", o.redirect_uri},
                                               {"scope", "user:profile:read user:invoices:read"},
                                               {"state", "st ate/1"}});
  const HttpResponse r = Send("GET", "/oauth/authorize?" + query, "");
  ASSERT_EQ(r.status, 302);
  const std::string location = r.Header("Location").value_or("");
  ASSERT_THAT(location, StartsWith(o.redirect_uri + "?"));
  const absl::StatusOr<FormFields> params =
      ParseWebhookForm(location.substr(o.redirect_uri.size() + 1));
  ASSERT_TRUE(params.ok()) << params.status();
  EXPECT_EQ(Field(*params, "state"), "st ate/1");
  const std::string code = Field(*params, "code");
  ASSERT_FALSE(code.empty());

  const json grant = {{"grant_type", "authorization_code"},
                      {"client_id", o.client_id},
                      {"client_secret", o.client_secret},
                      {"code", code},
                      {"redirect_uri", o.redirect_uri}};
  const json tokens = SendJson("POST", "/auth/oauth/token", "", 200, grant);
  EXPECT_EQ(tokens["token_type"], "Bearer");
  EXPECT_EQ(tokens["expires_in"], 43200);
  EXPECT_FALSE(tokens["access_token"].get<std::string>().empty());
  EXPECT_FALSE(tokens["refresh_token"].get<std::string>().empty());
  EXPECT_THAT(tokens["scope"].get<std::string>(), HasSubstr("user:invoices:read"));
  EXPECT_EQ(tokens["created_at"], absl::ToUnixSeconds(clock_.Now()));
  // The token works.
  SendJson("GET", "/auth/api/v1/users/me", tokens["access_token"], 200);

  // A code is single-use.
  const json reused = SendJson("POST", "/auth/oauth/token", "", 400, grant);
  EXPECT_EQ(reused["error"], "invalid_grant");
  EXPECT_EQ(fake_->Requests("AUTHORIZE"), 1);
  EXPECT_EQ(fake_->Requests("TOKEN authorization_code"), 2);
}

TEST_F(FakeFreshBooksTest, TokenEndpointChecksClientCodeAgeAndRedirect) {
  const FakeFreshBooks::Options& o = fake_->options();
  const auto form = [&](const std::string& code, const std::string& secret,
                        const std::string& redirect) {
    return EncodeWebhookForm({{"grant_type", "authorization_code"},
                              {"client_id", o.client_id},
                              {"client_secret", secret},
                              {"code", code},
                              {"redirect_uri", redirect}});
  };
  constexpr char kForm[] = "application/x-www-form-urlencoded";
  HttpResponse r = Send("POST", "/auth/oauth/token", "",
                        form(fake_->IssueAuthorizationCode(), "wrong", o.redirect_uri), kForm);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body)["error"], "invalid_client");

  r = Send("POST", "/auth/oauth/token", "",
           form(fake_->IssueAuthorizationCode(), o.client_secret, "https://evil.example/cb"),
           kForm);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error"], "invalid_grant");

  const std::string old_code = fake_->IssueAuthorizationCode();
  clock_.Advance(absl::Minutes(11));
  r = Send("POST", "/auth/oauth/token", "", form(old_code, o.client_secret, o.redirect_uri), kForm);
  EXPECT_EQ(r.status, 400) << "codes expire after 10 minutes";

  // A form body works as well as JSON.
  r = Send("POST", "/auth/oauth/token", "",
           form(fake_->IssueAuthorizationCode(), o.client_secret, o.redirect_uri), kForm);
  EXPECT_EQ(r.status, 200) << r.body;

  // Wrong client or redirect at authorize: no redirect at all.
  r = Send("GET", "/oauth/authorize?client_id=nope&response_type=code&redirect_uri=x", "");
  EXPECT_EQ(r.status, 400);
  fake_->DenyAuthorization(true);
  r = Send("GET",
           "/oauth/authorize?" + EncodeWebhookForm({{"client_id", o.client_id},
                                                    {"response_type", "code"},
                                                    {"redirect_uri", o.redirect_uri},
                                                    {"state", "s"}}),
           "");
  EXPECT_EQ(r.status, 302);
  EXPECT_THAT(r.Header("Location").value_or(""), HasSubstr("?error=access_denied&"));
  EXPECT_THAT(r.Header("Location").value_or(""), HasSubstr("&state=s"));
}

TEST_F(FakeFreshBooksTest, RefreshTokensRotateAndAreSingleUse) {
  const FakeFreshBooks::Options& o = fake_->options();
  const json first = fake_->IssueTokens();
  const auto refresh = [&](const std::string& token, int want) {
    return SendJson("POST", "/auth/oauth/token", "", want,
                    json{{"grant_type", "refresh_token"},
                         {"client_id", o.client_id},
                         {"client_secret", o.client_secret},
                         {"refresh_token", token}});
  };
  const json second = refresh(first["refresh_token"], 200);
  EXPECT_NE(second["refresh_token"], first["refresh_token"]);
  EXPECT_NE(second["access_token"], first["access_token"]);
  const json reused = refresh(first["refresh_token"], 400);
  EXPECT_EQ(reused["error"], "invalid_grant");
  EXPECT_FALSE(reused["error_description"].get<std::string>().empty());
  const json third = refresh(second["refresh_token"], 200);
  EXPECT_EQ(fake_->TokenRefreshes(), 2);

  fake_->RevokeRefreshTokens();
  EXPECT_EQ(refresh(third["refresh_token"], 400)["error"], "invalid_grant");
}

TEST_F(FakeFreshBooksTest, ExpiredOrUnknownTokensAre401InThePathsShape) {
  const std::string token = Token();
  SendJson("GET", "/auth/api/v1/users/me", token, 200);
  clock_.Advance(absl::Hours(12));
  const json me = SendJson("GET", "/auth/api/v1/users/me", token, 401);
  EXPECT_EQ(
      me, json({{"error", "invalid_token"}, {"error_description", "The access token is invalid"}}));
  const json list = SendJson("GET", Acct("invoices/invoices"), token, 401);
  EXPECT_EQ(list["response"]["errors"][0]["errno"], 1003);
  const json events = SendJson("GET", Callbacks(), "unknown-token", 401);
  EXPECT_THAT(events["message"].get<std::string>(), StartsWith("invalid_token"));

  const std::string fresh = Token();
  SendJson("GET", Acct("invoices/invoices"), fresh, 200);
  fake_->ExpireAllAccessTokens();
  SendJson("GET", Acct("invoices/invoices"), fresh, 401);
  EXPECT_GE(fake_->RequestsWithStatus(401), 4);
}

TEST_F(FakeFreshBooksTest, MissingScopeIs403NamingIt) {
  fake_->SetScopes({"user:profile:read", "user:clients:read"});
  const std::string token = Token();
  SendJson("GET", Acct("users/clients"), token, 200);
  const json denied = SendJson("GET", Acct("invoices/invoices"), token, 403);
  EXPECT_THAT(denied.dump(), HasSubstr("user:invoices:read"));
}

TEST_F(FakeFreshBooksTest, UsersMeListsBusinessesWithDistinctIds) {
  FakeFreshBooks::Options options;
  options.other_businesses.push_back(
      FakeFreshBooks::Business{777, 9001, "uuid-two", "Zz9Yx", "Second Co."});
  fake_.reset();
  StartFake(options);
  const json me = SendJson("GET", "/auth/api/v1/users/me", Token(), 200);
  const json& memberships = me["response"]["business_memberships"];
  ASSERT_EQ(memberships.size(), 2u);
  EXPECT_EQ(me["response"]["id"], options.identity_id);
  EXPECT_EQ(me["response"]["email"], options.email);
  EXPECT_EQ(memberships[0]["role"], "owner");
  EXPECT_EQ(memberships[0]["id"], options.membership_id);
  EXPECT_EQ(memberships[0]["business"]["id"], 6543);
  EXPECT_NE(memberships[0]["id"], memberships[0]["business"]["id"]);
  EXPECT_EQ(memberships[0]["business"]["account_id"], "6BApk");
  EXPECT_EQ(memberships[0]["business"]["business_uuid"], options.business_uuid);
  EXPECT_EQ(memberships[1]["business"]["account_id"], "Zz9Yx");
  EXPECT_EQ(memberships[1]["business"]["id"], 777);
  // The other business's resources exist but are empty; unknown accounts are not.
  const json other = SendJson("GET", "/accounting/account/Zz9Yx/invoices/invoices", Token(), 200);
  EXPECT_EQ(other["response"]["result"]["total"], 0);
  SendJson("GET", "/accounting/account/nobody/invoices/invoices", Token(), 403);
}

// --- Resources -------------------------------------------------------------------

TEST_F(FakeFreshBooksTest, ListsPageAndCapPerPage) {
  for (int i = 0; i < 25; ++i) {
    fake_->Create("invoice", SampleObject("invoice", i + 1, clock_.Now(), rng_), false);
  }
  const std::string token = Token();
  json r = SendJson("GET", Acct("invoices/invoices?page=3&per_page=10"), token, 200);
  const json& result = r["response"]["result"];
  EXPECT_EQ(result["page"], 3);
  EXPECT_EQ(result["pages"], 3);
  EXPECT_EQ(result["per_page"], 10);
  EXPECT_EQ(result["total"], 25);
  ASSERT_EQ(result["invoices"].size(), 5u);
  EXPECT_EQ(result["invoices"][0]["id"], 21);
  EXPECT_EQ(result["invoices"][0]["invoiceid"], 21);

  r = SendJson("GET", Acct("invoices/invoices?per_page=500"), token, 200);
  EXPECT_EQ(r["response"]["result"]["per_page"], 100);
  EXPECT_EQ(r["response"]["result"]["invoices"].size(), 25u);
  r = SendJson("GET", Acct("invoices/invoices?page=9&per_page=10"), token, 200);
  EXPECT_TRUE(r["response"]["result"]["invoices"].empty());
  EXPECT_EQ(r["response"]["result"]["total"], 25);
  r = SendJson("GET", Acct("invoices/invoices"), token, 200);
  EXPECT_EQ(r["response"]["result"]["per_page"], 15);
  EXPECT_EQ(fake_->Requests("LIST invoice"), 4);
}

TEST_F(FakeFreshBooksTest, InvoiceLinesOnlyWhenIncluded) {
  const json stored = fake_->Create("invoice", SampleObject("invoice", 5, clock_.Now(), rng_));
  ASSERT_TRUE(stored.contains("lines"));
  const std::string token = Token();
  json r = SendJson("GET", Acct("invoices/invoices/5"), token, 200);
  EXPECT_FALSE(r["response"]["result"]["invoice"].contains("lines"));
  EXPECT_EQ(r["response"]["result"]["invoice"]["id"], 5);
  r = SendJson("GET", Acct("invoices/invoices/5?include%5B%5D=lines"), token, 200);
  EXPECT_EQ(r["response"]["result"]["invoice"]["lines"], stored["lines"]);
  r = SendJson("GET", Acct("invoices/invoices?include[]=lines"), token, 200);
  EXPECT_TRUE(r["response"]["result"]["invoices"][0].contains("lines"));
  r = SendJson("GET", Acct("invoices/invoices"), token, 200);
  EXPECT_FALSE(r["response"]["result"]["invoices"][0].contains("lines"));
  EXPECT_EQ(fake_->Requests("GET invoice"), 2);
}

TEST_F(FakeFreshBooksTest, FiltersByUpdatedDayAndVisState) {
  // Day 1: three clients. Two and a half days later: one edited, one deleted.
  // (At noon UTC, so the day is the same in UTC and in US/Eastern, which the
  // accounting filter uses.)
  for (int i = 1; i <= 3; ++i) {
    fake_->Create("client", SampleObject("client", i, clock_.Now(), rng_), false);
  }
  clock_.Advance(absl::Hours(60));
  ASSERT_TRUE(fake_->Update(
      "client", 2, [](json& c) { c["organization"] = "Renamed"; }, false));
  ASSERT_TRUE(fake_->SoftDelete("client", 3, false));
  const std::string today = absl::FormatTime("%Y-%m-%d", clock_.Now(), absl::UTCTimeZone());
  const std::string token = Token();

  json r = SendJson("GET", Acct("users/clients"), token, 200);
  EXPECT_EQ(r["response"]["result"]["total"], 2) << "deleted objects are hidden by default";
  r = SendJson("GET", Acct("users/clients?search%5Bvis_state%5D=1"), token, 200);
  ASSERT_EQ(r["response"]["result"]["clients"].size(), 1u);
  EXPECT_EQ(r["response"]["result"]["clients"][0]["id"], 3);
  EXPECT_EQ(r["response"]["result"]["clients"][0]["vis_state"], 1);
  r = SendJson("GET", Acct("users/clients?search[updated_min]=" + today), token, 200);
  ASSERT_EQ(r["response"]["result"]["clients"].size(), 1u);
  EXPECT_EQ(r["response"]["result"]["clients"][0]["organization"], "Renamed");
  r = SendJson("GET", Acct("users/clients?search[updated_min]=2000-01-01"), token, 200);
  EXPECT_EQ(r["response"]["result"]["total"], 2);
  SendJson("GET", Acct("users/clients?search[updated_min]=yesterday"), token, 400);
  // A soft-deleted object still answers GET, with vis_state 1.
  r = SendJson("GET", Acct("users/clients/3"), token, 200);
  EXPECT_EQ(r["response"]["result"]["client"]["vis_state"], 1);
}

TEST_F(FakeFreshBooksTest, NotFoundIs404OrClassic200) {
  const std::string token = Token();
  json r = SendJson("GET", Acct("invoices/invoices/999"), token, 404);
  EXPECT_EQ(r["response"]["errors"][0]["errno"], 1012);
  // client is a classic entity by default: HTTP 200 with response.errors.
  r = SendJson("GET", Acct("users/clients/999"), token, 200);
  EXPECT_EQ(r["response"]["errors"][0]["errno"], 1012);
  EXPECT_EQ(r["response"]["errors"][0]["message"], "Client not found.");
  EXPECT_EQ(r["response"]["errors"][0]["value"], "999");
  fake_->ClassicNotFoundWith200("client", false);
  fake_->ClassicNotFoundWith200("tax");
  SendJson("GET", Acct("users/clients/999"), token, 404);
  r = SendJson("GET", Acct("taxes/taxes/5"), token, 200);
  EXPECT_EQ(r["response"]["errors"][0]["message"], "Tax not found.");

  fake_->Create("estimate", SampleObject("estimate", 8, clock_.Now(), rng_), false);
  SendJson("GET", Acct("estimates/estimates/8"), token, 200);
  ASSERT_TRUE(fake_->HardDelete("estimate", 8, false));
  SendJson("GET", Acct("estimates/estimates/8"), token, 404);
  EXPECT_FALSE(fake_->Get("estimate", 8).has_value());
}

TEST_F(FakeFreshBooksTest, BusinessScopedEnvelopesAndIdFields) {
  const std::string token = Token();
  const FakeFreshBooks::Options& o = fake_->options();
  EXPECT_EQ(fake_->Seed(3), 3 * static_cast<int>(SampleEntityNames().size()));
  for (const std::string& entity : SampleEntityNames()) {
    EXPECT_EQ(fake_->Count(entity), 3u) << entity;
  }
  const std::string projects = absl::StrCat("/projects/business/", o.business_id, "/");
  json r = SendJson("GET", projects + "projects?per_page=2", token, 200);
  EXPECT_EQ(r["projects"].size(), 2u);
  EXPECT_EQ(r["meta"]["total"], 3);
  EXPECT_EQ(r["meta"]["pages"], 2);
  r = SendJson("GET", projects + "project/2", token, 200);
  EXPECT_EQ(r["project"]["id"], 2);
  SendJson("GET", projects + "projects/2", token, 200);
  r = SendJson("GET", projects + "project/99", token, 404);
  EXPECT_EQ(r["code"], 5);
  r = SendJson("GET", absl::StrCat("/timetracking/business/", o.business_id, "/time_entries/1"),
               token, 200);
  EXPECT_EQ(r["time_entry"]["id"], 1);
  r = SendJson("GET", absl::StrCat("/comments/business/", o.business_id, "/services"), token, 200);
  EXPECT_EQ(r["services"].size(), 3u);

  const std::string ledger =
      absl::StrCat("/accounting/businesses/", o.business_uuid, "/ledger_accounts/accounts");
  r = SendJson("GET", ledger, token, 200);
  ASSERT_EQ(r["data"].size(), 3u);
  const std::string uuid = r["data"][1]["uuid"];
  r = SendJson("GET", ledger + "/" + uuid, token, 200);
  EXPECT_EQ(r["data"]["uuid"], uuid);
  r = SendJson("GET", ledger + "/nope", token, 404);
  EXPECT_EQ(r["errors"]["status"], 404);

  r = SendJson("GET", Acct("bill_vendors/bill_vendors/2"), token, 200);
  EXPECT_EQ(r["response"]["result"]["bill_vendor"]["vendorid"], 2);
  r = SendJson("GET", Acct("journal_entries/journal_entry_details"), token, 200);
  EXPECT_EQ(r["response"]["result"]["journal_entry_details"].size(), 3u);
  r = SendJson("GET", Acct("other_incomes/other_incomes"), token, 200);
  EXPECT_EQ(r["response"]["result"]["other_income"].size(), 3u);
  r = SendJson("GET", Acct("expenses/categories/1"), token, 200);
  EXPECT_EQ(r["response"]["result"]["category"]["id"], 1);
}

// --- Faults ----------------------------------------------------------------------

TEST_F(FakeFreshBooksTest, ThrottleAnd5xxKnobs) {
  const std::string token = Token();
  fake_->Throttle(2, 7);
  for (int i = 0; i < 2; ++i) {
    const HttpResponse r = Send("GET", Acct("invoices/invoices"), token);
    EXPECT_EQ(r.status, 429);
    EXPECT_EQ(r.Header("Retry-After"), "7");
  }
  EXPECT_EQ(Send("GET", Acct("invoices/invoices"), token).status, 200);
  fake_->FailNext5xx(1);
  EXPECT_EQ(Send("GET", "/auth/api/v1/users/me", token).status, 503);
  EXPECT_EQ(Send("GET", "/auth/api/v1/users/me", token).status, 200);
  EXPECT_EQ(fake_->RequestsWithStatus(429), 2);
  EXPECT_EQ(fake_->RequestsWithStatus(503), 1);

  // Token-endpoint faults do not touch API calls, and vice versa.
  fake_->Throttle(1, 1, FakeFreshBooks::FaultScope::kToken);
  EXPECT_EQ(Send("GET", Acct("invoices/invoices"), token).status, 200);
  const FakeFreshBooks::Options& o = fake_->options();
  const json refresh = {{"grant_type", "refresh_token"},
                        {"client_id", o.client_id},
                        {"client_secret", o.client_secret},
                        {"refresh_token", fake_->IssueTokens()["refresh_token"]}};
  SendJson("POST", "/auth/oauth/token", "", 429, refresh);
  SendJson("POST", "/auth/oauth/token", "", 200, refresh);

  // The same knobs through the control endpoint.
  SendJson("POST", "/_fake/faults", "", 200,
           json{{"throttle", {{"count", 1}, {"retry_after", 3}}}});
  EXPECT_EQ(Send("GET", Acct("invoices/invoices"), token).Header("Retry-After"), "3");
  SendJson("POST", "/_fake/faults", "", 400, json{{"no_such_knob", 1}});
}

// --- Callbacks and webhooks ------------------------------------------------------

TEST_F(FakeFreshBooksTest, CallbackHandshakeVerifyAndSignedDelivery) {
  const std::string token = Token();
  const json created =
      SendJson("POST", Callbacks(), token, 200,
               json{{"callback", {{"event", "invoice"}, {"uri", receiver_.url()}}}});
  const json& cb = created["response"]["result"]["callback"];
  EXPECT_EQ(cb["verified"], false);
  EXPECT_EQ(cb["event"], "invoice");
  EXPECT_EQ(cb["uri"], receiver_.url());
  const int64_t id = cb["callbackid"].get<int64_t>();

  // The handshake arrives on its own thread.
  ASSERT_TRUE(WaitFor([&] { return receiver_.count() == 1; }, kWait));
  const Receiver::Hit handshake_hit = receiver_.hits()[0];
  EXPECT_EQ(handshake_hit.content_type, "application/x-www-form-urlencoded");
  const absl::StatusOr<FormFields> handshake = ParseWebhookForm(handshake_hit.body);
  ASSERT_TRUE(handshake.ok()) << handshake.status();
  const std::string verifier = Field(*handshake, "verifier");
  ASSERT_FALSE(verifier.empty());
  EXPECT_EQ(Field(*handshake, "object_id"), absl::StrCat(id));
  EXPECT_EQ(Field(*handshake, "account_id"), "6BApk");

  // Not verified yet: mutations deliver nothing.
  fake_->Create("invoice", SampleObject("invoice", 1, clock_.Now(), rng_));
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(receiver_.count(), 1u);

  json bad = SendJson("PUT", Callbacks(absl::StrCat("/", id)), token, 400,
                      json{{"callback", {{"verifier", "wrong"}}}});
  EXPECT_EQ(bad["errno"], 400);
  // Resend: the same verifier again.
  SendJson("PUT", Callbacks(absl::StrCat("/", id)), token, 200,
           json{{"callback", {{"resend", true}}}});
  ASSERT_TRUE(WaitFor([&] { return receiver_.count() == 2; }, kWait));
  EXPECT_EQ(Field(*ParseWebhookForm(receiver_.hits()[1].body), "verifier"), verifier);
  const json verified = SendJson("PUT", Callbacks(absl::StrCat("/", id)), token, 200,
                                 json{{"callback", {{"verifier", verifier}}}});
  EXPECT_EQ(verified["response"]["result"]["callback"]["verified"], true);

  // Now a create and an update arrive, signed with the verifier.
  fake_->Create("invoice", SampleObject("invoice", 2, clock_.Now(), rng_));
  fake_->Update("invoice", 2, nullptr);
  fake_->Create("client", SampleObject("client", 2, clock_.Now(), rng_));  // not subscribed
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  const std::vector<Receiver::Hit> hits = receiver_.hits();
  ASSERT_EQ(hits.size(), 4u);
  std::vector<std::string> names;
  for (size_t i = 2; i < hits.size(); ++i) {
    const absl::StatusOr<FormFields> fields = ParseWebhookForm(hits[i].body);
    ASSERT_TRUE(fields.ok()) << fields.status();
    EXPECT_TRUE(VerifyFreshBooksSignature(verifier, *fields, hits[i].signature)) << hits[i].body;
    EXPECT_FALSE(VerifyFreshBooksSignature("other", *fields, hits[i].signature));
    EXPECT_EQ(fields->size(), 6u);
    EXPECT_EQ(Field(*fields, "object_id"), "2");
    EXPECT_EQ(Field(*fields, "account_id"), "6BApk");
    EXPECT_EQ(Field(*fields, "business_id"), "6543");
    EXPECT_EQ(Field(*fields, "identity_id"), "1234");
    EXPECT_EQ(Field(*fields, "user_id"), "1");
    names.push_back(Field(*fields, "name"));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"invoice.create", "invoice.update"}));
  const FakeFreshBooks::WebhookStats stats = fake_->webhook_stats();
  EXPECT_EQ(stats.acked, 2);
  EXPECT_EQ(stats.handshakes, 2);
  EXPECT_EQ(stats.pending, 0);

  // List with filters, get, delete.
  json list = SendJson("GET", Callbacks("?search%5Bevent%5D=invoice"), token, 200);
  ASSERT_EQ(list["response"]["result"]["callbacks"].size(), 1u);
  EXPECT_EQ(list["response"]["result"]["callbacks"][0]["callbackid"], id);
  EXPECT_EQ(list["response"]["result"]["total"], 1);
  list = SendJson("GET", Callbacks("?search%5Bevent%5D=bill.create"), token, 200);
  EXPECT_TRUE(list["response"]["result"]["callbacks"].empty());
  SendJson("GET", Callbacks(absl::StrCat("/", id)), token, 200);
  SendJson("DELETE", Callbacks(absl::StrCat("/", id)), token, 200);
  SendJson("GET", Callbacks(absl::StrCat("/", id)), token, 404);
  SendJson("POST", Callbacks(), token, 400,
           json{{"callback", {{"event", "nonsense.create"}, {"uri", receiver_.url()}}}});
  EXPECT_EQ(fake_->Requests("CALLBACK create"), 2);
}

TEST_F(FakeFreshBooksTest, DeliveriesVaryFieldOrder) {
  const std::string token = Token();
  RegisterVerified("payment.create", token);
  const size_t before = receiver_.count();
  for (int i = 1; i <= 8; ++i) {
    fake_->Create("payment", SampleObject("payment", i, clock_.Now(), rng_));
  }
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  const std::vector<Receiver::Hit> hits = receiver_.hits();
  ASSERT_EQ(hits.size(), before + 8);
  std::set<std::vector<std::string>> orders;
  for (size_t i = before; i < hits.size(); ++i) {
    const absl::StatusOr<FormFields> fields = ParseWebhookForm(hits[i].body);
    ASSERT_TRUE(fields.ok());
    orders.insert(Keys(*fields));
  }
  EXPECT_GE(orders.size(), 3u) << "field order must vary between deliveries";
}

TEST_F(FakeFreshBooksTest, RetriesDropsDuplicatesAndPause) {
  const std::string token = Token();
  RegisterVerified("expense", token);
  size_t seen = receiver_.count();

  // A 503 is retried with the same body.
  receiver_.FailNext(2);
  fake_->Create("expense", SampleObject("expense", 1, clock_.Now(), rng_));
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  std::vector<Receiver::Hit> hits = receiver_.hits();
  ASSERT_EQ(hits.size(), seen + 3);
  EXPECT_EQ(hits[seen].body, hits[seen + 2].body);
  EXPECT_EQ(fake_->webhook_stats().acked, 1);
  seen = hits.size();

  // Dropped: never sent.
  fake_->DropNextWebhooks(1);
  fake_->Create("expense", SampleObject("expense", 2, clock_.Now(), rng_));
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(receiver_.count(), seen);
  EXPECT_EQ(fake_->webhook_stats().dropped, 1);

  // Duplicated: the same event twice.
  fake_->SetWebhookDuplicateProbability(1);
  fake_->Update("expense", 2, nullptr);
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  hits = receiver_.hits();
  ASSERT_EQ(hits.size(), seen + 2);
  for (size_t i = seen; i < hits.size(); ++i) {
    const absl::StatusOr<FormFields> fields = ParseWebhookForm(hits[i].body);
    ASSERT_TRUE(fields.ok());
    EXPECT_EQ(Field(*fields, "name"), "expense.update");
    EXPECT_EQ(Field(*fields, "object_id"), "2");
  }
  EXPECT_EQ(fake_->webhook_stats().duplicated, 1);
  fake_->SetWebhookDuplicateProbability(0);
  seen = hits.size();

  // Paused: held until resumed.
  fake_->PauseWebhooks();
  fake_->SoftDelete("expense", 1);
  EXPECT_FALSE(fake_->WaitIdle(absl::Milliseconds(100)));
  EXPECT_EQ(fake_->webhook_stats().pending, 1);
  EXPECT_EQ(receiver_.count(), seen);
  fake_->ResumeWebhooks();
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  ASSERT_EQ(receiver_.count(), seen + 1);
  EXPECT_EQ(Field(*ParseWebhookForm(receiver_.hits().back().body), "name"), "expense.delete");

  // A receiver that keeps failing: given up after the last attempt.
  receiver_.FailNext(100);
  fake_->EmitWebhook("expense.update", 1);
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(fake_->webhook_stats().failed, 1);
  EXPECT_EQ(receiver_.count(), seen + 1 + fake_->options().webhook_max_attempts);
}

TEST_F(FakeFreshBooksTest, ReorderWindowLetsDeliveriesOvertake) {
  RegisterVerified("item.create", Token());
  const size_t before = receiver_.count();
  fake_->SetWebhookReorderWindow(absl::Milliseconds(200));
  for (int i = 1; i <= 10; ++i) fake_->Create("item", SampleObject("item", i, clock_.Now(), rng_));
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  std::vector<std::string> ids;
  for (size_t i = before; i < receiver_.count(); ++i) {
    ids.push_back(Field(*ParseWebhookForm(receiver_.hits()[i].body), "object_id"));
  }
  ASSERT_EQ(ids.size(), 10u);
  EXPECT_FALSE(std::is_sorted(
      ids.begin(), ids.end(),
      [](const std::string& a, const std::string& b) { return std::stoi(a) < std::stoi(b); }));
}

TEST_F(FakeFreshBooksTest, ControlEndpointsSeedActivityAndStats) {
  RegisterVerified("invoice", Token());
  RegisterVerified("payment", Token());
  json r = SendJson("POST", "/_fake/seed?count=2", "", 200);
  EXPECT_EQ(r["created"], 2 * static_cast<int>(SampleEntityNames().size()));
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  const size_t after_seed = receiver_.count();
  EXPECT_EQ(after_seed, 2u) << "seeding sends no webhooks (only the two handshakes)";

  r = SendJson("POST", "/_fake/activity?count=30", "", 200);
  size_t payments = 0;    // a payment also updates its invoice: two events
  size_t subscribed = 0;  // events the two callbacks cover
  for (const json& e : r["events"]) {
    const std::string name = e.get<std::string>();
    payments += absl::StartsWith(name, "payment.");
    subscribed += absl::StartsWith(name, "invoice.") || absl::StartsWith(name, "payment.");
  }
  EXPECT_EQ(r["events"].size(), 30u + payments);
  EXPECT_GT(payments, 0u);
  ASSERT_TRUE(fake_->WaitIdle(absl::Seconds(5)));
  EXPECT_EQ(receiver_.count(), after_seed + subscribed);

  const json stats = SendJson("GET", "/_fake/stats", "", 200);
  EXPECT_EQ(stats["webhooks"]["acked"], static_cast<int64_t>(subscribed));
  EXPECT_EQ(stats["webhooks"]["handshakes"], 2);
  EXPECT_GE(stats["objects"]["invoice"].get<int>(), 2);
  EXPECT_EQ(stats["callbacks"].size(), 2u);
  EXPECT_EQ(stats["requests"]["CALLBACK verify"], 2);
  SendJson("GET", "/_fake/nope", "", 404);
}

}  // namespace
}  // namespace mlc::testing
