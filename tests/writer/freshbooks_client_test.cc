// FreshBooksClient against a small scripted FreshBooks (a real HTTP server on
// loopback, through the real HttplibClient) and the real encrypted
// CredentialStore (FRESHBOOKS.md §3, §5; DESIGN.md §4-§5): tokens are stored
// encrypted, refreshed single-flight with the rotated refresh token persisted
// before the new access token is used, a rejected refresh marks the connection
// "needs re-authorization" until ExchangeCode, errors are classified, 429/5xx
// are retried politely, the budget paces requests, and no token or secret ever
// appears in an error or a log line.
#include "writer/freshbooks_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/http_server_util.h"
#include "common/logging.h"
#include "common/metrics.h"
#include "tests/support/test_util.h"
#include "writer/credential_store.h"

namespace mlc::writer {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

constexpr char kConnection[] = "acme";
constexpr char kClientId[] = "fb-client-id-0042";
constexpr char kClientSecret[] = "fb-client-SECRET-9f8e7d6c";
constexpr char kRedirect[] = "https://hooks.example.com/oauth/freshbooks/callback";
constexpr char kCode[] = "auth-code-7Hq2Lm";
std::string MasterKey() { return std::string(32, '\x5a'); }
constexpr char kApiPath[] = "/accounting/account/6BApk/invoices/invoices/42";

// A string member ("" if absent). nlohmann's value()/iterators trip GCC's
// -Wnull-dereference at -O2.
std::string Str(const json& j, const char* key) {
  const auto* object = j.get_ptr<const json::object_t*>();
  if (object == nullptr) return "";
  const auto it = object->find(key);
  if (it == object->end()) return "";
  const auto* s = it->second.get_ptr<const std::string*>();
  return s == nullptr ? "" : *s;
}

// One scripted API answer.
struct Answer {
  int status = 200;
  std::string body;
  std::map<std::string, std::string> headers;
};

// Just enough FreshBooks: the token endpoint (codes, single-use rotating refresh
// tokens) and an API that checks the bearer token and plays scripted answers.
class ScriptedFreshBooks {
 public:
  ScriptedFreshBooks() {
    server_.new_task_queue = [] { return new httplib::ThreadPool(16); };
    server_.set_tcp_nodelay(true);
    server_.Post("/auth/oauth/token",
                 [this](const httplib::Request& req, httplib::Response& res) { Token(req, res); });
    const auto api = [this](const httplib::Request& req, httplib::Response& res) { Api(req, res); };
    server_.Get(R"(/(accounting|auth/api|events)/.*)", api);
    server_.Post(R"(/(accounting|auth/api|events)/.*)", api);
    server_.Put(R"(/(accounting|auth/api|events)/.*)", api);
  }
  ~ScriptedFreshBooks() { StopHttpServer(&server_, &thread_); }

  void Start() {
    absl::StatusOr<int> port = StartHttpServer(&server_, "fake", "127.0.0.1:0", &thread_);
    ASSERT_TRUE(port.ok()) << port.status();
    url_ = absl::StrCat("http://127.0.0.1:", *port);
  }
  const std::string& url() const { return url_; }

  // Knobs.
  void AddCode(const std::string& code) {
    absl::MutexLock lock(&mu_);
    codes_.insert(code);
  }
  void Push(Answer answer) {
    absl::MutexLock lock(&mu_);
    script_.push_back(std::move(answer));
  }
  void RevokeAccessTokens() {
    absl::MutexLock lock(&mu_);
    valid_access_.clear();
  }
  void RevokeRefreshToken() {
    absl::MutexLock lock(&mu_);
    refresh_token_.clear();
  }
  void SetTokenDelay(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    token_delay_ = d;
  }
  void SetTokenFailures(int n, int status) {
    absl::MutexLock lock(&mu_);
    token_failures_ = n;
    token_failure_status_ = status;
  }
  // Called (outside the fake's lock) with the grant_type of every token request,
  // before it is answered.
  void SetOnTokenRequest(std::function<void(const std::string&)> fn) {
    absl::MutexLock lock(&mu_);
    on_token_ = std::move(fn);
  }
  // Called (outside the fake's lock) with the bearer token of every API request.
  void SetOnApiRequest(std::function<void(const std::string&)> fn) {
    absl::MutexLock lock(&mu_);
    on_api_ = std::move(fn);
  }

  // Observations.
  int token_requests() {
    absl::MutexLock lock(&mu_);
    return token_requests_;
  }
  int api_requests() {
    absl::MutexLock lock(&mu_);
    return api_requests_;
  }
  std::vector<json> token_bodies() {
    absl::MutexLock lock(&mu_);
    return token_bodies_;
  }
  std::vector<httplib::Headers> api_headers() {
    absl::MutexLock lock(&mu_);
    return api_headers_;
  }
  std::vector<std::string> api_bodies() {
    absl::MutexLock lock(&mu_);
    return api_bodies_;
  }
  std::string refresh_token() {
    absl::MutexLock lock(&mu_);
    return refresh_token_;
  }
  // Every token the fake ever issued.
  std::vector<std::string> issued() {
    absl::MutexLock lock(&mu_);
    return issued_;
  }

 private:
  static void Reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }

  void Token(const httplib::Request& req, httplib::Response& res) {
    absl::Duration delay;
    {
      absl::MutexLock lock(&mu_);
      ++token_requests_;
      delay = token_delay_;
    }
    absl::SleepFor(delay);
    const json body = json::parse(req.body, nullptr, false);
    std::function<void(const std::string&)> on_token;
    {
      absl::MutexLock lock(&mu_);
      on_token = on_token_;
    }
    if (on_token) on_token(Str(body, "grant_type"));
    absl::MutexLock lock(&mu_);
    token_bodies_.push_back(body);
    if (token_failures_ > 0) {
      --token_failures_;
      Reply(res, token_failure_status_, json{{"error", "server_error"}});
      return;
    }
    if (!body.is_object() || req.get_header_value("Content-Type") != "application/json") {
      Reply(res, 400, json{{"error", "invalid_request"}});
      return;
    }
    if (Str(body, "client_id") != kClientId || Str(body, "client_secret") != kClientSecret ||
        Str(body, "redirect_uri") != kRedirect) {
      Reply(res, 401,
            json{{"error", "invalid_client"},
                 {"error_description", "Client authentication failed."}});
      return;
    }
    const std::string grant = Str(body, "grant_type");
    if (grant == "authorization_code") {
      const std::string code = Str(body, "code");
      if (codes_.erase(code) == 0) {
        // Echo the code back, as careless servers do: the client must scrub it.
        Reply(res, 400,
              json{{"error", "invalid_grant"},
                   {"error_description", absl::StrCat("The code ", code, " is invalid.")}});
        return;
      }
    } else if (grant == "refresh_token") {
      const std::string presented = Str(body, "refresh_token");
      if (refresh_token_.empty() || presented != refresh_token_) {
        Reply(
            res, 400,
            json{{"error", "invalid_grant"},
                 {"error_description", absl::StrCat("The provided authorization grant ", presented,
                                                    " is invalid, expired or revoked.")}});
        return;
      }
    } else {
      Reply(res, 400, json{{"error", "unsupported_grant_type"}});
      return;
    }
    ++generation_;
    const std::string access = absl::StrCat("fbAccess", generation_, "zQ4kW8xV");
    refresh_token_ = absl::StrCat("fbRefresh", generation_, "pL7nR2tY");
    valid_access_.insert(access);
    issued_.push_back(access);
    issued_.push_back(refresh_token_);
    Reply(res, 200,
          json{{"access_token", access},
               {"token_type", "Bearer"},
               {"expires_in", 43200},
               {"refresh_token", refresh_token_},
               {"scope", "user:profile:read user:invoices:read"},
               {"created_at", 1767225600}});
  }

  void Api(const httplib::Request& req, httplib::Response& res) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string token = absl::StartsWith(auth, "Bearer ") ? auth.substr(7) : "";
    std::function<void(const std::string&)> on_api;
    {
      absl::MutexLock lock(&mu_);
      on_api = on_api_;
    }
    if (on_api) on_api(token);
    absl::MutexLock lock(&mu_);
    ++api_requests_;
    api_headers_.push_back(req.headers);
    api_bodies_.push_back(req.body);
    if (valid_access_.count(token) == 0) {
      // Echo the token back: the client must not pass it on.
      Reply(res, 401,
            json{{"error", "invalid_token"},
                 {"error_description", absl::StrCat("The access token ", token, " is invalid")}});
      return;
    }
    if (script_.empty()) {
      Reply(res, 200, json{{"response", {{"result", {{"invoice", {{"id", 42}}}}}}}});
      return;
    }
    Answer answer = std::move(script_.front());
    script_.pop_front();
    res.status = answer.status;
    for (const auto& [name, value] : answer.headers) res.set_header(name, value);
    if (!answer.body.empty()) res.set_content(answer.body, "application/json");
  }

  httplib::Server server_;
  std::thread thread_;
  std::string url_;

  absl::Mutex mu_;
  std::set<std::string> codes_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> valid_access_ ABSL_GUARDED_BY(mu_);
  std::string refresh_token_ ABSL_GUARDED_BY(mu_);
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<Answer> script_ ABSL_GUARDED_BY(mu_);
  absl::Duration token_delay_ ABSL_GUARDED_BY(mu_);
  int token_failures_ ABSL_GUARDED_BY(mu_) = 0;
  int token_failure_status_ ABSL_GUARDED_BY(mu_) = 503;
  std::function<void(const std::string&)> on_token_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> on_api_ ABSL_GUARDED_BY(mu_);
  int token_requests_ ABSL_GUARDED_BY(mu_) = 0;
  int api_requests_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<json> token_bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<httplib::Headers> api_headers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> api_bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> issued_ ABSL_GUARDED_BY(mu_);
};

// Records retry waits instead of sleeping.
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

class FreshBooksClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log::Init("writer", log::Level::kInfo);
    fake_.Start();
    fake_.AddCode(kCode);
    OpenStore();
    ASSERT_TRUE(store_->PutSecret("freshbooks/acme/client_secret", kClientSecret).ok());
    requests_ =
        registry_.AddCounter("mlc_freshbooks_requests_total", "requests", {"connection", "status"});
    client_ = MakeClient();
  }

  void OpenStore() {
    store_.reset();
    absl::StatusOr<std::unique_ptr<CredentialStore>> store =
        CredentialStore::Open(dir_.File("credentials.db"), MasterKey());
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  FreshBooksClientOptions Options() {
    FreshBooksClientOptions o;
    o.connection_id = kConnection;
    o.api_url = fake_.url() + "/";  // a trailing slash is tolerated
    o.client_id = kClientId;
    o.redirect_uri = kRedirect;
    o.requests_per_second = 0;  // unlimited unless a test sets one
    o.max_attempts = 3;
    o.initial_backoff = absl::Milliseconds(10);
    o.max_backoff = absl::Milliseconds(100);
    o.timeout = absl::Seconds(5);
    o.sleep = sleeps_.Fn();
    return o;
  }

  std::unique_ptr<FreshBooksClient> MakeClient(
      const std::function<void(FreshBooksClientOptions*)>& tweak = nullptr) {
    FreshBooksClientOptions o = Options();
    if (tweak) tweak(&o);
    return std::make_unique<FreshBooksClient>(
        o, &http_, store_.get(), &clock_,
        FreshBooksMetrics{requests_, &refreshes_, &refresh_failures_, &needs_reauth_});
  }

  void Authorize() {
    absl::StatusOr<std::string> scope = client_->ExchangeCode(kCode);
    ASSERT_TRUE(scope.ok()) << scope.status();
  }

  std::optional<std::string> Secret(const std::string& suffix) {
    absl::StatusOr<std::optional<std::string>> v =
        store_->GetSecret(absl::StrCat("freshbooks/acme/", suffix));
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }
  std::optional<std::string> State(const std::string& suffix) {
    absl::StatusOr<std::optional<std::string>> v =
        store_->GetState(absl::StrCat("freshbooks/acme/", suffix));
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : std::nullopt;
  }

  double Requests(const std::string& status) {
    return requests_->With({kConnection, status})->Value();
  }

  // Fails if any secret the test knows of appears in `text`.
  void ExpectNoSecrets(const std::string& text) {
    std::vector<std::string> secrets = fake_.issued();
    secrets.emplace_back(kClientSecret);
    secrets.emplace_back(kCode);
    for (const std::string& s : secrets) {
      EXPECT_THAT(text, Not(HasSubstr(s))) << "a secret leaked";
    }
  }

  testing::TempDir dir_;
  ScriptedFreshBooks fake_;
  FakeClock clock_;
  SleepRecorder sleeps_;
  Registry registry_;
  Family<Counter>* requests_ = nullptr;
  Counter refreshes_;
  Counter refresh_failures_;
  Gauge needs_reauth_;
  std::unique_ptr<CredentialStore> store_;
  HttplibClient http_;  // after fake_: its connections close before the server stops
  std::unique_ptr<FreshBooksClient> client_;
};

TEST(FreshBooksErrorMessageTest, RecognisesEveryShape) {
  const auto msg = [](const char* text) { return FreshBooksErrorMessage(json::parse(text)); };
  // Classic accounting error (possibly with HTTP 200).
  std::optional<std::string> m =
      msg(R"({"response":{"errors":[{"errno":1012,"field":"userid","message":"Client not found.",)"
          R"("object":"client","value":"12345"}]}})");
  ASSERT_TRUE(m.has_value());
  EXPECT_THAT(*m, HasSubstr("Client not found."));
  EXPECT_THAT(*m, HasSubstr("errno 1012"));
  EXPECT_THAT(*m, HasSubstr("field userid"));
  // Two classic errors are both reported.
  m = msg(R"({"response":{"errors":[{"message":"first"},{"message":"second"}]}})");
  ASSERT_TRUE(m.has_value());
  EXPECT_THAT(*m, HasSubstr("first"));
  EXPECT_THAT(*m, HasSubstr("second"));
  // google.rpc style.
  m = msg(R"({"code":5,"message":"Business not found","details":[{"reason":"NO_SUCH_BUSINESS"}]})");
  ASSERT_TRUE(m.has_value());
  EXPECT_THAT(*m, HasSubstr("Business not found"));
  EXPECT_THAT(*m, HasSubstr("code 5"));
  EXPECT_THAT(*m, HasSubstr("NO_SUCH_BUSINESS"));
  // Events.
  m = msg(R"({"errno":401,"message":"invalid_token: token expired"})");
  ASSERT_TRUE(m.has_value());
  EXPECT_THAT(*m, HasSubstr("invalid_token: token expired"));
  EXPECT_THAT(*m, HasSubstr("errno 401"));
  // Auth.
  m = msg(R"({"error":"invalid_grant","error_description":"The grant is revoked."})");
  EXPECT_EQ(m, "invalid_grant: The grant is revoked.");
  m = msg(R"({"error":"invalid_token"})");
  EXPECT_EQ(m, "invalid_token");
  // Ledger.
  m = msg(R"({"errors":{"message":"Bad page size","status":400,"details":["per_page > 100"]}})");
  ASSERT_TRUE(m.has_value());
  EXPECT_THAT(*m, HasSubstr("Bad page size"));
  EXPECT_THAT(*m, HasSubstr("per_page > 100"));

  // Successful answers carry no error.
  EXPECT_EQ(msg(R"({"response":{"result":{"invoice":{"id":1}}}})"), std::nullopt);
  EXPECT_EQ(msg(R"({"response":{"result":{},"errors":[]}})"), std::nullopt);
  EXPECT_EQ(msg(R"({"data":[{"id":1}]})"), std::nullopt);
  EXPECT_EQ(msg(R"([1,2])"), std::nullopt);
  EXPECT_EQ(FreshBooksErrorMessage(json()), std::nullopt);
}

TEST_F(FreshBooksClientTest, NoTokensYetIsUnauthenticatedWithoutHttp) {
  EXPECT_FALSE(client_->HasTokens());
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(r.status().message(), HasSubstr("mlc authorize --connection acme"));
  EXPECT_EQ(fake_.api_requests() + fake_.token_requests(), 0);
}

TEST_F(FreshBooksClientTest, MissingClientSecretNamesTheConfigKey) {
  ASSERT_TRUE(store_->DeleteSecret("freshbooks/acme/client_secret").ok());
  absl::StatusOr<std::string> scope = client_->ExchangeCode(kCode);
  EXPECT_EQ(scope.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(scope.status().message(), HasSubstr("connections[].freshbooks.client_secret"));
  EXPECT_EQ(fake_.token_requests(), 0);
}

TEST_F(FreshBooksClientTest, ExchangeCodeStoresTokensEncrypted) {
  absl::StatusOr<std::string> scope = client_->ExchangeCode(kCode);
  ASSERT_TRUE(scope.ok()) << scope.status();
  EXPECT_EQ(*scope, "user:profile:read user:invoices:read");
  EXPECT_TRUE(client_->HasTokens());

  // The request: JSON with the authorization_code grant.
  ASSERT_EQ(fake_.token_bodies().size(), 1u);
  const json sent = fake_.token_bodies()[0];
  EXPECT_EQ(Str(sent, "grant_type"), "authorization_code");
  EXPECT_EQ(Str(sent, "code"), kCode);
  EXPECT_EQ(Str(sent, "redirect_uri"), kRedirect);

  const std::vector<std::string> issued = fake_.issued();
  ASSERT_EQ(issued.size(), 2u);
  EXPECT_EQ(Secret("access_token"), issued[0]);
  EXPECT_EQ(Secret("refresh_token"), issued[1]);
  EXPECT_EQ(State("access_expires_at"),
            absl::StrCat(absl::ToUnixSeconds(clock_.Now() + absl::Hours(12))));
  EXPECT_EQ(State("scope"), "user:profile:read user:invoices:read");
  EXPECT_EQ(State("needs_reauth"), std::nullopt);

  // Encrypted at rest: no file of the store holds a token in the clear.
  store_.reset();
  client_.reset();
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    const std::string bytes = testing::ReadFile(entry.path().string());
    for (const std::string& token : issued) {
      EXPECT_EQ(bytes.find(token), std::string::npos) << entry.path();
    }
    EXPECT_EQ(bytes.find(kClientSecret), std::string::npos) << entry.path();
  }

  // A reused code is rejected with a clear message that does not echo it.
  OpenStore();
  client_ = MakeClient();
  absl::StatusOr<std::string> again = client_->ExchangeCode(kCode);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(again.status().message(), HasSubstr("invalid_grant"));
  EXPECT_THAT(again.status().message(), HasSubstr("mlc authorize --connection acme"));
  ExpectNoSecrets(std::string(again.status().message()));
}

TEST_F(FreshBooksClientTest, CallSendsBearerTokenAndParsesTheAnswer) {
  Authorize();
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->http_status, 200);
  EXPECT_EQ(r->body, json::parse(R"({"response":{"result":{"invoice":{"id":42}}}})"));

  fake_.Push({200, R"({"response":{"result":{"callback":{"callbackid":7}}}})", {}});
  r = client_->Call("POST", "/events/account/6BApk/events/callbacks",
                    json{{"callback", {{"event", "invoice.create"}}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, json::parse(R"({"response":{"result":{"callback":{"callbackid":7}}}})"));

  const std::vector<httplib::Headers> headers = fake_.api_headers();
  ASSERT_EQ(headers.size(), 2u);
  const auto header = [](const httplib::Headers& h, const std::string& name) {
    const auto it = h.find(name);
    return it == h.end() ? std::string() : it->second;
  };
  EXPECT_EQ(header(headers[0], "Authorization"), "Bearer " + fake_.issued()[0]);
  EXPECT_EQ(header(headers[0], "Accept"), "application/json");
  EXPECT_EQ(header(headers[1], "Content-Type"), "application/json");
  EXPECT_EQ(json::parse(fake_.api_bodies()[1]),
            (json{{"callback", {{"event", "invoice.create"}}}}));
  EXPECT_EQ(Requests("200"), 3);  // token exchange + two calls

  // An empty answer is JSON null; a non-JSON one is an error.
  fake_.Push({204, "", {}});
  r = client_->Call("PUT", "/events/account/6BApk/events/callbacks/7", json::object());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->http_status, 204);
  EXPECT_TRUE(r->body.is_null());
  fake_.Push({200, "<html>maintenance</html>", {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("not JSON"));
}

TEST_F(FreshBooksClientTest, ExpiredTokenIsRefreshedBeforeTheCall) {
  Authorize();
  const std::string old_refresh = *Secret("refresh_token");
  clock_.Advance(absl::Hours(12) - absl::Seconds(30));  // expires within a minute
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(fake_.api_requests(), 1) << "no call with the expired token";
  EXPECT_EQ(refreshes_.Value(), 1);

  const json sent = fake_.token_bodies().back();
  EXPECT_EQ(Str(sent, "grant_type"), "refresh_token");
  EXPECT_EQ(Str(sent, "refresh_token"), old_refresh);
  EXPECT_EQ(Str(sent, "client_id"), kClientId);
  EXPECT_EQ(Str(sent, "client_secret"), kClientSecret);
  EXPECT_EQ(Secret("refresh_token"), fake_.refresh_token());
  EXPECT_NE(Secret("refresh_token"), old_refresh);

  // The new token serves further calls without another refresh.
  ASSERT_TRUE(client_->Call("GET", kApiPath).ok());
  EXPECT_EQ(fake_.token_requests(), 2);
}

TEST_F(FreshBooksClientTest, RotatedRefreshTokenIsStoredBeforeTheNewAccessTokenIsUsed) {
  Authorize();
  std::atomic<int> checked{0};
  std::atomic<int> violations{0};
  // FreshBooks' view: whenever a request arrives, the store must already hold
  // the refresh token that was issued with the access token it carries.
  fake_.SetOnApiRequest([this, &checked, &violations](const std::string& token) {
    const std::vector<std::string> issued = fake_.issued();
    for (size_t i = 0; i + 1 < issued.size(); i += 2) {
      if (issued[i] != token) continue;
      ++checked;
      absl::StatusOr<std::optional<std::string>> stored =
          store_->GetSecret("freshbooks/acme/refresh_token");
      if (!stored.ok() || *stored != issued[i + 1]) ++violations;
    }
  });
  clock_.Advance(absl::Hours(13));
  ASSERT_TRUE(client_->Call("GET", kApiPath).ok());
  fake_.RevokeAccessTokens();  // forces a 401 -> refresh -> retry
  ASSERT_TRUE(client_->Call("GET", kApiPath).ok());
  EXPECT_EQ(fake_.token_requests(), 3);
  EXPECT_EQ(checked.load(), 3);  // two good calls + the one rejected by 401
  EXPECT_EQ(violations.load(), 0);

  // A client created later (a restart) uses the stored, rotated tokens.
  client_ = MakeClient();
  ASSERT_TRUE(client_->Call("GET", kApiPath).ok());
  EXPECT_EQ(fake_.token_requests(), 3);
}

TEST_F(FreshBooksClientTest, NewTokensThatCannotBeStoredAreNotUsedAndStoredLater) {
  Authorize();
  // Another handle on the same file makes the client's Update fail while the
  // refresh is in flight: it rotates the master key away (and later back).
  absl::StatusOr<std::unique_ptr<CredentialStore>> other =
      CredentialStore::Open(dir_.File("credentials.db"), MasterKey());
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string other_key(32, '\x33');
  fake_.SetOnTokenRequest([&other, &other_key](const std::string& grant) {
    if (grant == "refresh_token") {
      EXPECT_TRUE((*other)->RotateMasterKey(other_key).ok());
    }
  });
  clock_.Advance(absl::Hours(13));
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("cannot store the new tokens"));
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(fake_.api_requests(), 0) << "the unstored access token was used";
  EXPECT_EQ(refresh_failures_.Value(), 1);
  ExpectNoSecrets(std::string(r.status().message()));

  // Once the store works again, the rotated grant (whose refresh token is the
  // only live one) is stored first; no second refresh with the dead token.
  fake_.SetOnTokenRequest(nullptr);
  ASSERT_TRUE((*other)->RotateMasterKey(MasterKey()).ok());
  r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(Secret("refresh_token"), fake_.refresh_token());
  EXPECT_EQ(client_->NeedsReauthorization(), std::nullopt);
}

TEST_F(FreshBooksClientTest, ConcurrentCallersWithAnExpiredTokenCauseOneRefresh) {
  Authorize();
  clock_.Advance(absl::Hours(13));
  fake_.SetTokenDelay(absl::Milliseconds(200));  // so the callers really overlap
  constexpr int kThreads = 8;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([this, &ok] {
      if (client_->Call("GET", kApiPath).ok()) ++ok;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads);
  EXPECT_EQ(fake_.token_requests(), 2) << "one exchange and exactly one refresh";
  EXPECT_EQ(refreshes_.Value(), 1);
  EXPECT_EQ(fake_.api_requests(), kThreads);
}

TEST_F(FreshBooksClientTest, UnauthorizedCallRefreshesOnceAndRetriesOnce) {
  Authorize();
  fake_.RevokeAccessTokens();
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(fake_.api_requests(), 2);
  EXPECT_EQ(Requests("401"), 1);

  // Rejected again with the fresh token: Unauthenticated, no loop.
  fake_.Push({401, R"({"errno":401,"message":"invalid_token: revoked"})", {}});
  fake_.Push({401, R"({"errno":401,"message":"invalid_token: revoked"})", {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(r.status().message(), HasSubstr("invalid_token: revoked"));
  EXPECT_EQ(fake_.token_requests(), 3);
  EXPECT_EQ(fake_.api_requests(), 4);
  EXPECT_EQ(client_->NeedsReauthorization(), std::nullopt);
}

TEST_F(FreshBooksClientTest, RejectedRefreshMarksNeedsReauthUntilExchangeCode) {
  Authorize();
  EXPECT_EQ(needs_reauth_.Value(), 0);
  fake_.RevokeRefreshToken();
  clock_.Advance(absl::Hours(13));

  ::testing::internal::CaptureStderr();
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  const std::string logs = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(r.status().message(), HasSubstr("invalid_grant"));
  EXPECT_THAT(r.status().message(), HasSubstr("mlc authorize --connection acme"));
  ExpectNoSecrets(std::string(r.status().message()));
  EXPECT_THAT(logs, HasSubstr("\"level\":\"error\""));
  EXPECT_THAT(logs, HasSubstr("mlc authorize --connection acme"));
  EXPECT_THAT(logs, HasSubstr("\"connection\":\"acme\""));
  ExpectNoSecrets(logs);

  const std::optional<std::string> reason = State("needs_reauth");
  ASSERT_TRUE(reason.has_value());
  EXPECT_THAT(*reason, HasSubstr("invalid_grant"));
  ExpectNoSecrets(*reason);
  EXPECT_EQ(client_->NeedsReauthorization(), reason);
  EXPECT_EQ(needs_reauth_.Value(), 1);
  EXPECT_EQ(refresh_failures_.Value(), 1);
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(fake_.api_requests(), 0);

  // Fails fast, without HTTP, also after a restart.
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  needs_reauth_.Set(0);
  client_ = MakeClient();
  EXPECT_EQ(needs_reauth_.Value(), 1) << "the gauge is set at startup";
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(r.status().message(), HasSubstr("needs re-authorization"));
  EXPECT_EQ(fake_.token_requests(), 2);
  EXPECT_EQ(fake_.api_requests(), 0);

  // A new authorization clears it.
  fake_.AddCode("auth-code-second");
  absl::StatusOr<std::string> scope = client_->ExchangeCode("auth-code-second");
  ASSERT_TRUE(scope.ok()) << scope.status();
  EXPECT_EQ(State("needs_reauth"), std::nullopt);
  EXPECT_EQ(client_->NeedsReauthorization(), std::nullopt);
  EXPECT_EQ(needs_reauth_.Value(), 0);
  r = client_->Call("GET", kApiPath);
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(FreshBooksClientTest, TransientRefreshFailureMarksNothing) {
  Authorize();
  clock_.Advance(absl::Hours(13));
  fake_.SetTokenFailures(3, 503);
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(fake_.token_requests(), 1 + 3);
  EXPECT_EQ(client_->NeedsReauthorization(), std::nullopt);
  EXPECT_EQ(needs_reauth_.Value(), 0);
  // Once FreshBooks is back, the stored refresh token still works.
  r = client_->Call("GET", kApiPath);
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(FreshBooksClientTest, EveryHttpCallIsCountedByStatusTokenEndpointIncluded) {
  Authorize();  // token endpoint: 200
  clock_.Advance(absl::Hours(13));
  fake_.SetTokenFailures(1, 503);  // the refresh: 503, then 200
  fake_.Push({429, "", {}});       // the call: 429, then 200
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Requests("200"), 3);
  EXPECT_EQ(Requests("503"), 1);
  EXPECT_EQ(Requests("429"), 1);
  EXPECT_EQ(refreshes_.Value(), 1);
  EXPECT_EQ(refresh_failures_.Value(), 0);

  // A token endpoint that does not answer counts as "network", once per attempt.
  client_ = MakeClient([](FreshBooksClientOptions* o) { o->api_url = "http://127.0.0.1:1"; });
  clock_.Advance(absl::Hours(13));
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(Requests("network"), 3);
  EXPECT_EQ(refresh_failures_.Value(), 1);

  // Labels stay bounded: the connection and a status, never a path or an id.
  const std::string text = registry_.Render();
  EXPECT_THAT(text,
              HasSubstr(R"(mlc_freshbooks_requests_total{connection="acme",status="200"} 3)"));
  EXPECT_THAT(text, Not(HasSubstr("invoices")));
}

TEST_F(FreshBooksClientTest, TooManyRequestsHonoursRetryAfter) {
  Authorize();
  fake_.Push({429, R"({"message":"slow down"})", {{"Retry-After", "3"}}});
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(sleeps_.delays().size(), 1u);
  EXPECT_GE(sleeps_.delays()[0], absl::Seconds(3));
  EXPECT_EQ(Requests("429"), 1);
  EXPECT_EQ(fake_.api_requests(), 2);

  // Still throttled after every attempt: ResourceExhausted.
  for (int i = 0; i < 3; ++i) fake_.Push({429, "", {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
}

TEST_F(FreshBooksClientTest, ServerErrorsAreRetriedThenUnavailable) {
  Authorize();
  fake_.Push({500, "", {}});
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  ASSERT_TRUE(r.ok()) << r.status();

  for (int i = 0; i < 5; ++i) fake_.Push({502, R"({"code":14,"message":"upstream down"})", {}});
  const int before = fake_.api_requests();
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("upstream down"));
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(fake_.api_requests() - before, 3);
  EXPECT_EQ(sleeps_.delays().size(), 3u);  // 1 + 2
  EXPECT_EQ(Requests("502"), 3);
}

TEST_F(FreshBooksClientTest, PostIsNotResentAfterAnAmbiguousServerError) {
  Authorize();
  fake_.Push({500, "", {}});
  absl::StatusOr<FreshBooksResponse> r =
      client_->Call("POST", "/events/account/6BApk/events/callbacks", json::object());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("outcome unknown"));
  EXPECT_EQ(fake_.api_requests(), 1);
  // 503 means "not processed": resent.
  fake_.Push({503, "", {}});
  r = client_->Call("POST", "/events/account/6BApk/events/callbacks", json::object());
  EXPECT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.api_requests(), 3);
}

TEST_F(FreshBooksClientTest, NetworkErrorsAreRetriedThenUnavailable) {
  Authorize();
  client_ = MakeClient([](FreshBooksClientOptions* o) { o->api_url = "http://127.0.0.1:1"; });
  // The stored token is valid, so only the call itself fails.
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("gave up after 3 attempts"));
  EXPECT_EQ(Requests("network"), 3);
}

TEST_F(FreshBooksClientTest, ErrorsAreClassified) {
  Authorize();
  fake_.Push({404, R"({"errno":404,"message":"Not Found"})", {}});
  absl::StatusOr<FreshBooksResponse> r = client_->Call("GET", kApiPath + std::string("?x=secret"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr(kApiPath));
  EXPECT_THAT(r.status().message(), Not(HasSubstr("x=secret"))) << "no query values";

  // Classic errors arrive with HTTP 200.
  fake_.Push({200,
              R"({"response":{"errors":[{"errno":1012,"field":"userid",)"
              R"("message":"Client not found.","object":"client","value":"12345"}]}})",
              {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("Client not found."));
  fake_.Push(
      {200, R"({"response":{"errors":[{"errno":9999,"message":"Invoice NOT FOUND"}]}})", {}});
  EXPECT_EQ(client_->Call("GET", kApiPath).status().code(), absl::StatusCode::kNotFound);
  fake_.Push({200,
              R"({"response":{"errors":[{"errno":2001,"field":"per_page",)"
              R"("message":"Invalid value for per_page."}]}})",
              {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("Invalid value for per_page."));

  fake_.Push(
      {403, R"({"error_type":"unauthorized","message":"Missing scope user:invoices:read"})", {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(r.status().message(), HasSubstr("user:invoices:read"));

  fake_.Push({422, R"({"errors":{"message":"Bad filter","status":422,"details":[]}})", {}});
  r = client_->Call("GET", kApiPath);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("Bad filter"));
  EXPECT_THAT(r.status().message(), HasSubstr("HTTP 422"));

  EXPECT_EQ(fake_.token_requests(), 1) << "no error caused a refresh";
  EXPECT_TRUE(sleeps_.delays().empty()) << "no error was retried";
}

TEST_F(FreshBooksClientTest, BudgetLimitsTheRequestRate) {
  Authorize();
  client_ = MakeClient([](FreshBooksClientOptions* o) {
    o->requests_per_second = 20;
    o->burst = 1;
  });
  const absl::Time start = absl::Now();
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(client_->Call("GET", kApiPath).ok());
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(400)) << "9 waits of 50 ms";
  EXPECT_LT(took, absl::Seconds(3));
}

TEST_F(FreshBooksClientTest, NoSecretInAnyErrorOrLog) {
  log::Init("writer", log::Level::kDebug);
  ::testing::internal::CaptureStderr();
  std::vector<std::string> errors;
  const auto note = [&errors](const absl::Status& s) { errors.emplace_back(s.message()); };

  Authorize();
  fake_.RevokeAccessTokens();  // the 401 answer echoes the token
  fake_.Push({401, "", {}});   // (consumed after the refresh: rejected again)
  note(client_->Call("GET", kApiPath).status());
  // A 403 and a classic error that echo the current token.
  std::string current = *Secret("access_token");
  fake_.Push({403, json{{"message", "token " + current + " lacks user:bills:read"}}.dump(), {}});
  note(client_->Call("GET", kApiPath).status());
  fake_.Push({200, json{{"response", {{"errors", {{{"message", "bad " + current}}}}}}}.dump(), {}});
  note(client_->Call("GET", kApiPath).status());
  // A rejected code (echoed back) and a rejected refresh token (echoed back).
  note(client_->ExchangeCode("auth-code-unknown-Zt5").status());
  fake_.RevokeRefreshToken();
  clock_.Advance(absl::Hours(13));
  note(client_->Call("GET", kApiPath).status());
  const std::string logs = ::testing::internal::GetCapturedStderr();
  log::Init("writer", log::Level::kInfo);

  ASSERT_EQ(errors.size(), 5u);
  for (const std::string& e : errors) {
    EXPECT_FALSE(e.empty());
    ExpectNoSecrets(e);
    EXPECT_THAT(e, Not(HasSubstr("auth-code-unknown-Zt5")));
  }
  EXPECT_THAT(errors[1], HasSubstr("user:bills:read"));
  EXPECT_THAT(errors[1], HasSubstr("[redacted]"));
  EXPECT_FALSE(logs.empty());
  ExpectNoSecrets(logs);
  EXPECT_THAT(logs, Not(HasSubstr("auth-code-unknown-Zt5")));
}

}  // namespace
}  // namespace mlc::writer
