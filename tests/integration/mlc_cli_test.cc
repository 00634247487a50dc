// The real `mlc` binary against an in-process fake Admin server: what an operator
// sees (tables, JSON, error messages, exit statuses) for every admin command, and
// that the admin token travels as `authorization: Bearer` metadata.
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_util.h"
#include "mlconnector/v1/admin.grpc.pb.h"
#include "tests/support/test_util.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace mlc::testing {
namespace {

namespace v1 = ::mlconnector::v1;

constexpr char kToken[] = "admin-token-0123456789abcdef";

// What the fake answers. A non-OK `status` is returned instead of the answer.
struct Script {
  v1::ListConnectionsResponse connections;
  v1::StartAuthorizationResponse authorization;
  v1::RegisterWebhooksResponse callbacks;
  v1::SyncResponse sync;
  // ListDeliveries answers by the request's page_token ("" for the first page);
  // an unknown token gets an empty page.
  std::map<std::string, v1::ListDeliveriesResponse> delivery_pages;
  v1::GetDeliveryResponse delivery;
  v1::ReplayResponse replay;
  v1::CheckConnectionResponse check;
  v1::GetStatsResponse stats;
  grpc::Status status = grpc::Status::OK;
  std::chrono::milliseconds delay{0};
};

// The Admin service with scripted answers; records what it was asked. Calls
// without the right bearer token are UNAUTHENTICATED, as in the writer.
class FakeAdmin final : public v1::Admin::Service {
 public:
  void set_script(Script s) {
    absl::MutexLock lock(&mu_);
    script_ = std::move(s);
  }
  std::vector<std::string> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int rejected() const {
    absl::MutexLock lock(&mu_);
    return rejected_;
  }
  v1::StartAuthorizationRequest last_authorize() const {
    absl::MutexLock lock(&mu_);
    return last_authorize_;
  }
  v1::RegisterWebhooksRequest last_register() const {
    absl::MutexLock lock(&mu_);
    return last_register_;
  }
  v1::SyncRequest last_sync() const {
    absl::MutexLock lock(&mu_);
    return last_sync_;
  }
  std::vector<v1::ListDeliveriesRequest> list_requests() const {
    absl::MutexLock lock(&mu_);
    return list_requests_;
  }
  v1::GetDeliveryRequest last_get() const {
    absl::MutexLock lock(&mu_);
    return last_get_;
  }
  v1::ReplayRequest last_replay() const {
    absl::MutexLock lock(&mu_);
    return last_replay_;
  }
  v1::CheckConnectionRequest last_check() const {
    absl::MutexLock lock(&mu_);
    return last_check_;
  }
  v1::GetStatsRequest last_stats() const {
    absl::MutexLock lock(&mu_);
    return last_stats_;
  }

  grpc::Status ListConnections(grpc::ServerContext* ctx, const v1::ListConnectionsRequest*,
                               v1::ListConnectionsResponse* response) override {
    return Answer(ctx, "ListConnections", [&](const Script& s) { *response = s.connections; });
  }
  grpc::Status StartAuthorization(grpc::ServerContext* ctx,
                                  const v1::StartAuthorizationRequest* request,
                                  v1::StartAuthorizationResponse* response) override {
    return Answer(ctx, "StartAuthorization", [&](const Script& s) {
      last_authorize_ = *request;
      *response = s.authorization;
    });
  }
  grpc::Status RegisterWebhooks(grpc::ServerContext* ctx,
                                const v1::RegisterWebhooksRequest* request,
                                v1::RegisterWebhooksResponse* response) override {
    return Answer(ctx, "RegisterWebhooks", [&](const Script& s) {
      last_register_ = *request;
      *response = s.callbacks;
    });
  }
  grpc::Status Sync(grpc::ServerContext* ctx, const v1::SyncRequest* request,
                    v1::SyncResponse* response) override {
    return Answer(ctx, "Sync", [&](const Script& s) {
      last_sync_ = *request;
      *response = s.sync;
    });
  }
  grpc::Status ListDeliveries(grpc::ServerContext* ctx, const v1::ListDeliveriesRequest* request,
                              v1::ListDeliveriesResponse* response) override {
    return Answer(ctx, "ListDeliveries", [&](const Script& s) {
      list_requests_.push_back(*request);
      if (auto it = s.delivery_pages.find(request->page_token()); it != s.delivery_pages.end()) {
        *response = it->second;
      }
    });
  }
  grpc::Status GetDelivery(grpc::ServerContext* ctx, const v1::GetDeliveryRequest* request,
                           v1::GetDeliveryResponse* response) override {
    return Answer(ctx, "GetDelivery", [&](const Script& s) {
      last_get_ = *request;
      *response = s.delivery;
    });
  }
  grpc::Status Replay(grpc::ServerContext* ctx, const v1::ReplayRequest* request,
                      v1::ReplayResponse* response) override {
    return Answer(ctx, "Replay", [&](const Script& s) {
      last_replay_ = *request;
      *response = s.replay;
    });
  }
  grpc::Status CheckConnection(grpc::ServerContext* ctx, const v1::CheckConnectionRequest* request,
                               v1::CheckConnectionResponse* response) override {
    return Answer(ctx, "CheckConnection", [&](const Script& s) {
      last_check_ = *request;
      *response = s.check;
    });
  }
  grpc::Status GetStats(grpc::ServerContext* ctx, const v1::GetStatsRequest* request,
                        v1::GetStatsResponse* response) override {
    return Answer(ctx, "GetStats", [&](const Script& s) {
      last_stats_ = *request;
      *response = s.stats;
    });
  }

 private:
  template <typename Fill>
  grpc::Status Answer(grpc::ServerContext* ctx, const char* method, Fill fill) {
    std::chrono::milliseconds delay{0};
    {
      absl::MutexLock lock(&mu_);
      if (!HasBearerToken(*ctx, kToken)) {
        ++rejected_;
        return {grpc::StatusCode::UNAUTHENTICATED, "missing or wrong admin token"};
      }
      calls_.emplace_back(method);
      delay = script_.delay;
    }
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    absl::MutexLock lock(&mu_);
    if (!script_.status.ok()) return script_.status;
    fill(script_);
    return grpc::Status::OK;
  }

  mutable absl::Mutex mu_;
  Script script_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  int rejected_ ABSL_GUARDED_BY(mu_) = 0;
  v1::StartAuthorizationRequest last_authorize_ ABSL_GUARDED_BY(mu_);
  v1::RegisterWebhooksRequest last_register_ ABSL_GUARDED_BY(mu_);
  v1::SyncRequest last_sync_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ListDeliveriesRequest> list_requests_ ABSL_GUARDED_BY(mu_);
  v1::GetDeliveryRequest last_get_ ABSL_GUARDED_BY(mu_);
  v1::ReplayRequest last_replay_ ABSL_GUARDED_BY(mu_);
  v1::CheckConnectionRequest last_check_ ABSL_GUARDED_BY(mu_);
  v1::GetStatsRequest last_stats_ ABSL_GUARDED_BY(mu_);
};

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

class MlcCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&admin_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port_, 0);
    token_file_ = dir_.File("admin-token");
    WriteFile(token_file_, std::string(kToken) + "\n");
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now());
  }

  std::string writer() const { return absl::StrCat("127.0.0.1:", port_); }

  // Runs mlc with exactly `env` (plus PATH, TMPDIR and sanitizer options), so
  // nothing in the test's own environment leaks in.
  Result RunWithEnv(const std::vector<std::string>& args, std::map<std::string, std::string> env) {
    for (const char* keep : {"PATH", "TMPDIR", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                             "ASAN_SYMBOLIZER_PATH"}) {
      if (const char* v = std::getenv(keep); v != nullptr && env.count(keep) == 0) {
        env[keep] = v;
      }
    }
    std::vector<std::string> env_strings;
    env_strings.reserve(env.size());
    for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
    std::vector<char*> envp;
    envp.reserve(env_strings.size() + 1);
    for (std::string& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);

    std::vector<std::string> argv_strings = {MLC_CLI_BIN};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    argv.reserve(argv_strings.size() + 1);
    for (std::string& a : argv_strings) argv.push_back(a.data());
    argv.push_back(nullptr);

    const std::string out_path = dir_.File(absl::StrCat("out.", runs_));
    const std::string err_path = dir_.File(absl::StrCat("err.", runs_));
    ++runs_;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    Result r;
    if (rc != 0) {
      ADD_FAILURE() << "cannot start " << MLC_CLI_BIN << ": " << rc;
      return r;
    }
    int status = 0;
    const bool exited =
        WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(60));
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      ADD_FAILURE() << "mlc did not exit within 60 s";
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ReadFile(out_path);
    r.err = ReadFile(err_path);
    return r;
  }

  // The usual operator setup: writer and token from the environment.
  Result Run(const std::vector<std::string>& args) {
    return RunWithEnv(args, {{"MLC_WRITER", writer()}, {"MLC_ADMIN_TOKEN", kToken}});
  }

  TempDir dir_;
  FakeAdmin admin_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string token_file_;
  int runs_ = 0;
};

std::string Describe(const Result& r) {
  return absl::StrCat("exit ", r.exit_code, "\n--- stdout\n", r.out, "--- stderr\n", r.err);
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The table layout: columns two spaces apart, the last one unpadded.
std::string Row(const std::vector<std::pair<std::string, int>>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) {
    if (i > 0) line += "  ";
    const auto& [text, width] = cells[i];
    if (width < 0) {
      line += absl::StrFormat("%*s", -width, text);  // right-aligned
    } else if (i + 1 == cells.size()) {
      line += text;
    } else {
      line += absl::StrFormat("%-*s", width, text);
    }
  }
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line + "\n";
}

std::string Utc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M UTC", t, absl::UTCTimeZone());
}

template <typename Message>
void ExpectJsonIs(const std::string& out, const Message& want) {
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "one JSON object on one line: " << out;
  Message got;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out, &got).ok()) << out;
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(got, want))
      << got.DebugString() << "\nwant\n"
      << want.DebugString();
}

Script ConnectionsScript(absl::Time last_sync) {
  Script s;
  auto* acme = s.connections.add_connections();
  acme->set_connection_id("acme");
  acme->set_oauth_configured(true);
  acme->set_authorized(true);
  acme->set_account_id("6BApk");
  acme->set_business_id("6543");
  acme->set_business_name("Acme Ltd");
  acme->set_signing_keys(2);
  acme->set_webhook_url("https://hooks.example.com/webhooks/freshbooks/acme");
  acme->set_last_sync_unix(absl::ToUnixSeconds(last_sync));
  auto* globex = s.connections.add_connections();
  globex->set_connection_id("globex");
  globex->set_oauth_configured(true);
  globex->set_authorized(true);
  globex->set_needs_reauthorization(true);
  globex->set_reauthorization_reason("refresh token revoked");
  globex->set_account_id("9XyZ");
  globex->set_business_id("77");
  globex->set_business_name("Globex");
  auto* local = s.connections.add_connections();
  local->set_connection_id("local");
  local->set_signing_keys(1);
  return s;
}

TEST_F(MlcCliTest, ConnectionsPrintsATable) {
  const absl::Time last_sync = absl::Now() - absl::Hours(3) - absl::Minutes(20);
  admin_.set_script(ConnectionsScript(last_sync));
  const Result r = Run({"connections"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  const std::string when = Utc(last_sync) + " (3h ago)";
  const int w = static_cast<int>(when.size());
  EXPECT_EQ(r.out, Row({{"CONNECTION", 10},
                        {"AUTHORIZED", 10},
                        {"ACCOUNT", 7},
                        {"BUSINESS", 15},
                        {"KEYS", -4},
                        {"LAST SYNC", w},
                        {"NOTE", 0}}) +
                       Row({{"acme", 10},
                            {"yes", 10},
                            {"6BApk", 7},
                            {"Acme Ltd (6543)", 15},
                            {"2", -4},
                            {when, w},
                            {"", 0}}) +
                       Row({{"globex", 10},
                            {"yes", 10},
                            {"9XyZ", 7},
                            {"Globex (77)", 15},
                            {"0", -4},
                            {"never", w},
                            {"needs re-authorization: refresh token revoked "
                             "(mlc authorize --connection globex)",
                             0}}) +
                       Row({{"local", 10},
                            {"no", 10},
                            {"-", 7},
                            {"-", 15},
                            {"1", -4},
                            {"never", w},
                            {"webhooks only: FreshBooks OAuth is not configured", 0}}));
  EXPECT_EQ(admin_.calls(), std::vector<std::string>{"ListConnections"});
}

TEST_F(MlcCliTest, ConnectionsJsonIsTheResponseWithProtoFieldNames) {
  const Script s = ConnectionsScript(absl::FromUnixSeconds(1764158400));
  admin_.set_script(s);
  const Result r = Run({"connections", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  ExpectJsonIs(r.out, s.connections);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.at("connections").size(), 3u);
  EXPECT_EQ(j["connections"][0]["connection_id"], "acme");
  EXPECT_EQ(j["connections"][0]["last_sync_unix"], "1764158400");
  EXPECT_EQ(j["connections"][1]["reauthorization_reason"], "refresh token revoked");
  // Defaults are printed too, so scripts need not know proto3's omissions.
  EXPECT_EQ(j["connections"][2]["authorized"], false);
  EXPECT_EQ(j["connections"][2]["last_sync_unix"], "0");
}

TEST_F(MlcCliTest, NoConnectionsSaysSo) {
  admin_.set_script(Script{});
  const Result r = Run({"connections"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "no connections configured")) << r.out;
}

TEST_F(MlcCliTest, AuthorizePrintsTheUrlExpiryAndWhatToDo) {
  Script s;
  const std::string url =
      "https://auth.freshbooks.com/oauth/authorize?client_id=abc&response_type=code&"
      "redirect_uri=https%3A%2F%2Fhooks.example.com%2Foauth%2Ffreshbooks%2Fcallback&state=xyz";
  const absl::Time expires = absl::Now() + absl::Minutes(15) + absl::Seconds(30);
  s.authorization.set_authorization_url(url);
  s.authorization.set_expires_at_unix(absl::ToUnixSeconds(expires));
  admin_.set_script(s);

  const Result r = Run({"authorize", "--connection", "acme"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(admin_.last_authorize().connection_id(), "acme");
  const std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_EQ(lines.size(), 4u) << r.out;  // instructions, URL, expiry, ""
  EXPECT_EQ(lines[0],
            "Open this URL in a browser, sign in to FreshBooks and approve; FreshBooks redirects "
            "to ingress, which completes the authorization (then check: mlc connections).");
  EXPECT_EQ(lines[1], url);
  EXPECT_EQ(lines[2], "expires " + Utc(expires) + " (in 15m); single use");

  const Result j = Run({"--json", "authorize", "--connection=acme"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  ExpectJsonIs(j.out, s.authorization);
  EXPECT_TRUE(Contains(j.out, "\"authorization_url\"")) << j.out;
}

TEST_F(MlcCliTest, RegisterWebhooksPrintsCallbacks) {
  Script s;
  for (const char* event : {"invoice.create", "payment.create"}) {
    auto* cb = s.callbacks.add_callbacks();
    cb->set_event(event);
    cb->set_callback_id(event[0] == 'i' ? "2001" : "2002");
    cb->set_status(event[0] == 'i' ? "verified" : "existing");
    cb->set_uri("https://hooks.example.com/webhooks/freshbooks/acme");
  }
  admin_.set_script(s);
  const Result r = Run({"register-webhooks", "--connection", "acme"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, Row({{"EVENT", 14}, {"CALLBACK", 8}, {"STATUS", 0}}) +
                       Row({{"invoice.create", 14}, {"2001", 8}, {"verified", 0}}) +
                       Row({{"payment.create", 14}, {"2002", 8}, {"existing", 0}}));
  EXPECT_EQ(admin_.last_register().connection_id(), "acme");
  EXPECT_EQ(admin_.last_register().wait_seconds(), 30);

  const Result j = Run({"register-webhooks", "--json", "--connection", "acme", "--wait", "5"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  ExpectJsonIs(j.out, s.callbacks);
  EXPECT_EQ(admin_.last_register().wait_seconds(), 5);
}

TEST_F(MlcCliTest, RegisterWebhooksStillPendingExitsOneWithAHint) {
  Script s;
  auto* ok = s.callbacks.add_callbacks();
  ok->set_event("invoice.create");
  ok->set_callback_id("2001");
  ok->set_status("verified");
  auto* pending = s.callbacks.add_callbacks();
  pending->set_event("payment.create");
  pending->set_callback_id("2002");
  pending->set_status("pending");
  pending->set_uri("https://hooks.example.com/webhooks/freshbooks/acme");
  admin_.set_script(s);

  const Result r = Run({"register-webhooks", "--connection", "acme", "--wait", "0"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "payment.create  2002      pending")) << r.out;
  EXPECT_TRUE(Contains(r.err, "1 callback is still pending")) << r.err;
  EXPECT_TRUE(Contains(r.err, "https://hooks.example.com/webhooks/freshbooks/acme")) << r.err;
  EXPECT_TRUE(Contains(r.err, "--wait")) << r.err;
  EXPECT_EQ(admin_.last_register().wait_seconds(), 0);

  const Result j = Run({"register-webhooks", "--connection", "acme", "--json"});
  EXPECT_EQ(j.exit_code, 1) << Describe(j);
  ExpectJsonIs(j.out, s.callbacks);
}

Script SyncScript(bool with_error) {
  Script s;
  auto* invoice = s.sync.add_entities();
  invoice->set_entity("invoice");
  invoice->set_objects(120);
  invoice->set_deleted(2);
  invoice->set_pages(3);
  invoice->set_updated_min("2026-11-26 09:00:00");
  auto* payment = s.sync.add_entities();
  payment->set_entity("payment");
  payment->set_objects(7);
  payment->set_pages(1);
  if (with_error) payment->set_error("FreshBooks answered 500 on page 2");
  s.sync.set_seconds(12.34);
  return s;
}

TEST_F(MlcCliTest, SyncPrintsPerEntityRowsAndATotal) {
  const Script s = SyncScript(false);
  admin_.set_script(s);
  const Result r = Run(
      {"sync", "--connection", "acme", "--full", "--entity", "invoice", "--entity=payment,client"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out,
            Row({{"ENTITY", 7},
                 {"OBJECTS", -7},
                 {"DELETED", -7},
                 {"PAGES", -5},
                 {"SINCE", 19},
                 {"ERROR", 0}}) +
                Row({{"invoice", 7},
                     {"120", -7},
                     {"2", -7},
                     {"3", -5},
                     {"2026-11-26 09:00:00", 19},
                     {"", 0}}) +
                Row({{"payment", 7}, {"7", -7}, {"0", -7}, {"1", -5}, {"(full)", 19}, {"", 0}}) +
                "total: 127 objects, 2 deleted, 4 pages, 2 entities in 12.3s\n");
  const v1::SyncRequest req = admin_.last_sync();
  EXPECT_EQ(req.connection_id(), "acme");
  EXPECT_TRUE(req.full());
  EXPECT_EQ(std::vector<std::string>(req.entities().begin(), req.entities().end()),
            (std::vector<std::string>{"invoice", "payment", "client"}));

  const Result j = Run({"sync", "--connection", "acme", "--json"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  ExpectJsonIs(j.out, s.sync);
  EXPECT_FALSE(admin_.last_sync().full());
  EXPECT_TRUE(admin_.last_sync().entities().empty());
}

TEST_F(MlcCliTest, SyncWithAFailedEntityExitsOne) {
  const Script s = SyncScript(true);
  admin_.set_script(s);
  const Result r = Run({"sync", "--connection", "acme"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.out, Row({{"payment", 7},
                                   {"7", -7},
                                   {"0", -7},
                                   {"1", -5},
                                   {"(full)", 19},
                                   {"FreshBooks answered 500 on page 2", 0}})))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "2 entities (1 failed) in 12.3s")) << r.out;
  EXPECT_TRUE(Contains(r.err, "1 of 2 entities failed to sync (payment)")) << r.err;

  const Result j = Run({"--json", "sync", "--connection", "acme"});
  EXPECT_EQ(j.exit_code, 1) << Describe(j);
  ExpectJsonIs(j.out, s.sync);
}

TEST_F(MlcCliTest, TokenFromFileWithGlobalFlagsBeforeOrAfterTheCommand) {
  admin_.set_script(ConnectionsScript(absl::Now()));
  const Result before = RunWithEnv(
      {"--writer", writer(), "--admin-token-file", token_file_, "--json", "connections"}, {});
  ASSERT_EQ(before.exit_code, 0) << Describe(before);
  EXPECT_TRUE(Contains(before.out, "\"connection_id\":\"acme\"")) << before.out;

  const Result after =
      RunWithEnv({"connections", "--admin-token-file=" + token_file_, "--writer=" + writer()}, {});
  ASSERT_EQ(after.exit_code, 0) << Describe(after);
  EXPECT_TRUE(Contains(after.out, "CONNECTION")) << after.out;

  // The file wins over the environment.
  const Result both = RunWithEnv({"connections", "--admin-token-file", token_file_},
                                 {{"MLC_WRITER", writer()}, {"MLC_ADMIN_TOKEN", "stale"}});
  EXPECT_EQ(both.exit_code, 0) << Describe(both);
  EXPECT_EQ(admin_.rejected(), 0);
  EXPECT_EQ(admin_.calls().size(), 3u);
}

TEST_F(MlcCliTest, TokenFromEnvironment) {
  admin_.set_script(ConnectionsScript(absl::Now()));
  const Result r = RunWithEnv({"connections", "--writer", writer()}, {{"MLC_ADMIN_TOKEN", kToken}});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(admin_.rejected(), 0);
}

TEST_F(MlcCliTest, WrongTokenIsExplained) {
  const Result r =
      RunWithEnv({"connections"}, {{"MLC_WRITER", writer()}, {"MLC_ADMIN_TOKEN", "not-the-token"}});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err,
                       "the writer rejected the admin token (check --admin-token-file / "
                       "$MLC_ADMIN_TOKEN)"))
      << r.err;
  EXPECT_TRUE(Contains(r.err, "read from $MLC_ADMIN_TOKEN")) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(admin_.rejected(), 1);

  const std::string wrong_file = dir_.File("wrong-token");
  WriteFile(wrong_file, "nope\n");
  const Result f = RunWithEnv({"sync", "--connection", "acme", "--admin-token-file", wrong_file},
                              {{"MLC_WRITER", writer()}});
  EXPECT_EQ(f.exit_code, 1) << Describe(f);
  EXPECT_TRUE(Contains(f.err, "read from --admin-token-file " + wrong_file)) << f.err;
}

TEST_F(MlcCliTest, MissingTokenSaysBothWaysToGiveIt) {
  const Result r = RunWithEnv({"connections"}, {{"MLC_WRITER", writer()}});
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "--admin-token-file FILE")) << r.err;
  EXPECT_TRUE(Contains(r.err, "$MLC_ADMIN_TOKEN")) << r.err;

  const Result missing_file = RunWithEnv(
      {"connections", "--admin-token-file", dir_.File("no-such-file")}, {{"MLC_WRITER", writer()}});
  EXPECT_EQ(missing_file.exit_code, 2) << Describe(missing_file);
  EXPECT_TRUE(Contains(missing_file.err, "cannot read --admin-token-file")) << missing_file.err;
  EXPECT_TRUE(admin_.calls().empty());
  EXPECT_EQ(admin_.rejected(), 0);
}

TEST_F(MlcCliTest, UnreachableWriterIsExplained) {
  const std::string closed = absl::StrCat("127.0.0.1:", PickFreePort());
  const Result r = RunWithEnv({"connections", "--writer", closed}, {{"MLC_ADMIN_TOKEN", kToken}});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(
      r.err, "cannot reach the writer at " + closed + " (is it running? --writer / $MLC_WRITER)"))
      << r.err;
  EXPECT_EQ(r.out, "");

  // $MLC_WRITER is used when --writer is absent.
  const Result env = RunWithEnv({"sync", "--connection", "acme"},
                                {{"MLC_ADMIN_TOKEN", kToken}, {"MLC_WRITER", closed}});
  EXPECT_EQ(env.exit_code, 1) << Describe(env);
  EXPECT_TRUE(Contains(env.err, "cannot reach the writer at " + closed)) << env.err;
}

TEST_F(MlcCliTest, ServerErrorsShowTheServersMessage) {
  Script s;
  s.status = grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown connection \"nope\"");
  admin_.set_script(s);
  const Result r = Run({"authorize", "--connection", "nope"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "unknown connection \"nope\"")) << r.err;
  EXPECT_EQ(r.out, "");

  // A writer that is reached but answers UNAVAILABLE is not "cannot reach".
  s.status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "FreshBooks is unreachable");
  admin_.set_script(s);
  const Result u = Run({"sync", "--connection", "acme"});
  EXPECT_EQ(u.exit_code, 1) << Describe(u);
  EXPECT_TRUE(Contains(u.err, "FreshBooks is unreachable")) << u.err;
  EXPECT_FALSE(Contains(u.err, "cannot reach the writer")) << u.err;
}

TEST_F(MlcCliTest, SlowAnswerHitsTheTimeout) {
  Script s;
  s.delay = std::chrono::milliseconds(1500);
  admin_.set_script(s);
  const Result r = Run({"connections", "--timeout", "0.2"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(r.err, "did not answer ListConnections within 200ms")) << r.err;
  EXPECT_TRUE(Contains(r.err, "--timeout")) << r.err;
}

TEST_F(MlcCliTest, UsageErrorsExitTwo) {
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"bogus"},
      {"--json"},
      {"authorize"},
      {"authorize", "--connection"},
      {"sync", "--connection", ""},
      {"connections", "--frobnicate"},
      {"connections", "extra"},
      {"connections", "--json=yes"},
      {"--timeout", "abc", "connections"},
      {"connections", "--timeout", "0"},
      {"register-webhooks", "--connection", "acme", "--wait", "-1"},
      {"sync", "--connection", "a", "--connection", "b"},
      {"--connection", "acme", "sync"},
      {"help", "bogus"},
      {"--json", "send-webhook", "--url", "http://127.0.0.1:1/"},
  };
  for (const auto& args : cases) {
    const Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << "mlc " << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_TRUE(Contains(r.err, "mlc: ")) << r.err;
    EXPECT_TRUE(Contains(r.err, "usage: mlc")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_TRUE(admin_.calls().empty());
  EXPECT_EQ(admin_.rejected(), 0);
}

TEST_F(MlcCliTest, HelpListsEveryCommandAndFlag) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"help"}, {"--help"}, {"-h"}}) {
    const Result r = RunWithEnv(args, {});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    for (const char* word : {"connections",
                             "authorize",
                             "register-webhooks",
                             "sync",
                             "send-webhook",
                             "--writer",
                             "--admin-token-file",
                             "--json",
                             "--timeout",
                             "--connection",
                             "--wait",
                             "--full",
                             "--entity",
                             "--url",
                             "--verifier-file",
                             "--dry-run",
                             "$MLC_WRITER",
                             "$MLC_ADMIN_TOKEN",
                             "Exit status",
                             "mlc deliveries [FILTER FLAGS]",
                             "mlc show DELIVERY_ID",
                             "mlc replay [DELIVERY_ID ...]",
                             "mlc dead-letters",
                             "mlc stats",
                             "mlc check",
                             "--event EVENT",
                             "--object ID",
                             "--status STATUS ...",
                             "--since AGE|TIME",
                             "--until AGE|TIME",
                             "--error TEXT",
                             "--limit N",
                             "--page-token T",
                             "--all"}) {
      EXPECT_TRUE(Contains(r.out, word)) << word << "\n" << r.out;
    }
  }
  for (const std::vector<std::string>& args : {std::vector<std::string>{"sync", "--help"},
                                               {"help", "sync"},
                                               {"sync", "-h"},
                                               {"--help", "sync"}}) {
    const Result r = RunWithEnv(args, {});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_TRUE(absl::StartsWith(r.out, "usage: mlc sync --connection ID")) << r.out;
    EXPECT_TRUE(Contains(r.out, "--entity NAME")) << r.out;
    EXPECT_TRUE(Contains(r.out, "--admin-token-file FILE")) << r.out;
  }
  for (const char* command : {"deliveries", "show", "replay", "dead-letters", "stats", "check"}) {
    const Result r = RunWithEnv({command, "--help"}, {});
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_TRUE(absl::StartsWith(r.out, absl::StrCat("usage: mlc ", command))) << r.out;
    EXPECT_TRUE(Contains(r.out, "--admin-token-file FILE")) << r.out;
  }
  const Result replay = RunWithEnv({"help", "replay"}, {});
  ASSERT_EQ(replay.exit_code, 0) << Describe(replay);
  for (const char* word : {"--dry-run", "--status STATUS ...", "--since AGE|TIME", "--limit N",
                           "a bare `mlc replay` is refused"}) {
    EXPECT_TRUE(Contains(replay.out, word)) << word << "\n" << replay.out;
  }
  const Result sw = RunWithEnv({"send-webhook", "--help"}, {});
  ASSERT_EQ(sw.exit_code, 0) << Describe(sw);
  EXPECT_TRUE(absl::StartsWith(sw.out, "usage: mlc send-webhook --url URL")) << sw.out;
}

TEST_F(MlcCliTest, SendWebhookIsUnchanged) {
  const Result r = RunWithEnv({"send-webhook", "--url", "http://127.0.0.1:1/webhooks/freshbooks/x",
                               "--dry-run", "object_id=42"},
                              {{"MLC_VERIFIER", "secret"}});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(absl::StartsWith(r.out,
                               "POST http://127.0.0.1:1/webhooks/freshbooks/x\n"
                               "Content-Type: application/x-www-form-urlencoded\n"
                               "X-FreshBooks-Hmac-SHA256: "))
      << r.out;
  EXPECT_TRUE(Contains(r.out,
                       "\n\nobject_id=42&name=invoice.create&account_id=ABC123&"
                       "business_id=1&identity_id=1&user_id=1\n"))
      << r.out;

  const Result missing = RunWithEnv({"send-webhook"}, {});
  EXPECT_EQ(missing.exit_code, 2) << Describe(missing);
  EXPECT_TRUE(Contains(missing.err, "mlc: --url is required")) << missing.err;
}

// --- deliveries, show, replay, dead letters, stats, check ---

google::protobuf::Timestamp Ts(absl::Time t) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(t));
  ts.set_nanos(
      static_cast<int32_t>((t - absl::FromUnixSeconds(ts.seconds())) / absl::Nanoseconds(1)));
  return ts;
}

absl::Time FromTs(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

v1::Delivery MakeDelivery(const std::string& id, const std::string& event,
                          const std::string& object_id, const std::string& status, int attempts,
                          absl::Time received, const std::string& error) {
  v1::Delivery d;
  d.set_delivery_id(id);
  d.set_connection_id("acme");
  d.set_kind(status == "handshake" ? "handshake" : "event");
  d.set_event_type(event);
  d.set_object_id(object_id);
  d.set_status(status);
  d.set_attempts(attempts);
  *d.mutable_received_at() = Ts(received);
  d.set_last_error(error);
  return d;
}

// Splits a command line the way a POSIX shell splits words in single quotes (what
// mlc's hints use); enough for the commands mlc prints.
std::vector<std::string> ShellWords(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  bool quoted = false;
  for (const char c : line) {
    if (quoted) {
      if (c == '\'') {
        quoted = false;
      } else {
        word += c;
      }
    } else if (c == '\'') {
      quoted = true;
      in_word = true;
    } else if (c == ' ') {
      if (in_word) words.push_back(word);
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(word);
  return words;
}

std::vector<std::string> Statuses(const v1::DeliveryFilter& f) {
  return {f.statuses().begin(), f.statuses().end()};
}

constexpr char kLongError[] =
    "Databricks answered 400:\n  [DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields "
    "'amount' and 'amount'";
constexpr char kLongErrorCell[] =  // collapsed to one line, cut to 60 code points
    "Databricks answered 400: [DELTA_FAILED_TO_MERGE_FIELDS] F...";

TEST_F(MlcCliTest, DeliveriesTranslatesFiltersAndPrintsATableWithTheNextPage) {
  const absl::Time now = absl::Now();
  Script s;
  v1::ListDeliveriesResponse& first = s.delivery_pages[""];
  *first.add_deliveries() = MakeDelivery("d_0003", "invoice.update", "42", "dead", 5,
                                         now - absl::Minutes(3) - absl::Seconds(5), kLongError);
  *first.add_deliveries() =
      MakeDelivery("d_0002", "invoice.create", "42", "written", 0, now - absl::Minutes(95), "");
  *first.add_deliveries() =
      MakeDelivery("d_0001", "", "", "handshake", 0, now - absl::Hours(26), "");
  first.set_next_page_token("page-2");
  *s.delivery_pages["page-2"].add_deliveries() =
      MakeDelivery("d_0000", "invoice.create", "41", "written", 0, now - absl::Hours(27), "");
  admin_.set_script(s);

  const absl::Time before = absl::Now();
  const Result r = Run({"deliveries", "--connection", "acme", "--event", "invoice", "--object",
                        "42", "--status", "dead", "--status", "pending,written", "--since", "2h",
                        "--until", "2100-01-01T00:00:00Z", "--error", "HTTP 500", "--limit", "3"});
  const absl::Time after = absl::Now();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");

  const std::vector<v1::ListDeliveriesRequest> requests = admin_.list_requests();
  ASSERT_EQ(requests.size(), 1u);
  const v1::DeliveryFilter& f = requests[0].filter();
  EXPECT_EQ(f.connection_id(), "acme");
  EXPECT_EQ(f.event_type(), "invoice");
  EXPECT_EQ(f.object_id(), "42");
  EXPECT_EQ(Statuses(f), (std::vector<std::string>{"dead", "pending", "written"}));
  EXPECT_EQ(f.error_contains(), "HTTP 500");
  // --since 2h: two hours before mlc's now, in whole seconds.
  const absl::Time since = FromTs(f.received_after());
  EXPECT_GE(since, before - absl::Hours(2) - absl::Seconds(1));
  EXPECT_LE(since, after - absl::Hours(2));
  EXPECT_EQ(f.received_after().nanos(), 0);
  EXPECT_EQ(f.received_before().seconds(), 4102444800);  // 2100-01-01T00:00:00Z
  EXPECT_EQ(requests[0].page_size(), 3);
  EXPECT_EQ(requests[0].page_token(), "");

  const std::string since_text = absl::FormatTime(absl::RFC3339_full, since, absl::UTCTimeZone());
  const std::string more =
      "mlc deliveries --connection acme --event invoice --object 42 --status dead --status "
      "pending --status written --since " +
      since_text + " --until 2100-01-01T00:00:00+00:00 --error 'HTTP 500' --limit 3";
  EXPECT_EQ(r.out, Row({{"DELIVERY", 8},
                        {"CONNECTION", 10},
                        {"EVENT", 14},
                        {"OBJECT", 6},
                        {"STATUS", 9},
                        {"ATTEMPTS", -8},
                        {"RECEIVED", 8},
                        {"ERROR", 0}}) +
                       Row({{"d_0003", 8},
                            {"acme", 10},
                            {"invoice.update", 14},
                            {"42", 6},
                            {"dead", 9},
                            {"5", -8},
                            {"3m ago", 8},
                            {kLongErrorCell, 0}}) +
                       Row({{"d_0002", 8},
                            {"acme", 10},
                            {"invoice.create", 14},
                            {"42", 6},
                            {"written", 9},
                            {"0", -8},
                            {"1h ago", 8},
                            {"", 0}}) +
                       Row({{"d_0001", 8},
                            {"acme", 10},
                            {"handshake", 14},
                            {"-", 6},
                            {"handshake", 9},
                            {"0", -8},
                            {"26h ago", 8},
                            {"", 0}}) +
                       "more: " + more + " --page-token page-2\n");

  // The hint, run as printed, asks for the next page of exactly the same filter.
  std::vector<std::string> next = ShellWords(more + " --page-token page-2");
  ASSERT_EQ(next.at(0), "mlc");
  next.erase(next.begin());
  const Result n = Run(next);
  ASSERT_EQ(n.exit_code, 0) << Describe(n);
  const std::vector<v1::ListDeliveriesRequest> again = admin_.list_requests();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again[1].filter(), f))
      << again[1].filter().DebugString() << "\nwant\n"
      << f.DebugString();
  EXPECT_EQ(again[1].page_token(), "page-2");
  EXPECT_EQ(again[1].page_size(), 3);
  EXPECT_TRUE(Contains(n.out, "d_0000")) << n.out;
  EXPECT_FALSE(Contains(n.out, "more:")) << n.out;
}

TEST_F(MlcCliTest, DeliveriesJsonIsTheResponse) {
  Script s;
  v1::ListDeliveriesResponse& page = s.delivery_pages[""];
  *page.add_deliveries() = MakeDelivery("d_0003", "invoice.update", "42", "dead", 5,
                                        absl::FromUnixSeconds(1764158400), "HTTP 500");
  page.set_next_page_token("page-2");
  admin_.set_script(s);
  const Result r = Run({"--json", "deliveries"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  ExpectJsonIs(r.out, page);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["next_page_token"], "page-2");
  EXPECT_EQ(j["deliveries"][0]["received_at"], "2025-11-26T12:00:00Z");
  EXPECT_EQ(j["deliveries"][0]["replays"], 0);  // defaults printed too
  // No filter flags: an empty filter and the default page size.
  const std::vector<v1::ListDeliveriesRequest> requests = admin_.list_requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].filter().ByteSizeLong(), 0u) << requests[0].DebugString();
  EXPECT_EQ(requests[0].page_size(), 50);

  admin_.set_script(Script{});
  const Result empty = Run({"deliveries", "--status", "dead"});
  ASSERT_EQ(empty.exit_code, 0) << Describe(empty);
  EXPECT_EQ(empty.out, "no deliveries match\n");
}

TEST_F(MlcCliTest, DeliveriesAllFollowsPagesUpToTheLimit) {
  const absl::Time t = absl::Now() - absl::Minutes(10);
  Script s;
  for (const auto& [token, next, ids] :
       std::vector<std::tuple<std::string, std::string, std::vector<std::string>>>{
           {"", "p2", {"d_6", "d_5"}}, {"p2", "p3", {"d_4", "d_3"}}, {"p3", "", {"d_2"}}}) {
    v1::ListDeliveriesResponse& page = s.delivery_pages[token];
    for (const std::string& id : ids) {
      *page.add_deliveries() = MakeDelivery(id, "payment.create", "7", "written", 0, t, "");
    }
    page.set_next_page_token(next);
  }
  admin_.set_script(s);

  const Result r = Run({"deliveries", "--all", "--json", "--status", "written"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  v1::ListDeliveriesResponse want;
  for (const char* token : {"", "p2", "p3"}) {
    for (const auto& d : s.delivery_pages[token].deliveries()) *want.add_deliveries() = d;
  }
  ExpectJsonIs(r.out, want);  // every page, and no next page
  std::vector<v1::ListDeliveriesRequest> requests = admin_.list_requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].page_token(), "");
  EXPECT_EQ(requests[1].page_token(), "p2");
  EXPECT_EQ(requests[2].page_token(), "p3");
  for (const auto& req : requests) {
    EXPECT_EQ(Statuses(req.filter()), std::vector<std::string>{"written"});
    EXPECT_EQ(req.page_size(), 1000);
  }

  // --limit stops early; the hint continues after the last page read.
  const Result limited = Run({"deliveries", "--all", "--limit", "4"});
  ASSERT_EQ(limited.exit_code, 0) << Describe(limited);
  requests = admin_.list_requests();
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[3].page_size(), 4);
  EXPECT_EQ(requests[4].page_size(), 2);
  EXPECT_EQ(requests[4].page_token(), "p2");
  for (const char* id : {"d_6 ", "d_5 ", "d_4 ", "d_3 "}) {
    EXPECT_TRUE(Contains(limited.out, id)) << id << "\n" << limited.out;
  }
  EXPECT_FALSE(Contains(limited.out, "d_2 ")) << limited.out;
  EXPECT_TRUE(
      absl::EndsWith(limited.out, "\nmore: mlc deliveries --limit 4 --all --page-token p3\n"))
      << limited.out;
}

TEST_F(MlcCliTest, ShowPrintsFieldsPayloadAndAttempts) {
  const absl::Time now = absl::Now();
  const absl::Time received = now - absl::Hours(3) - absl::Minutes(5);
  const absl::Time finished = now - absl::Hours(1) - absl::Minutes(1);
  const absl::Time t0 = absl::FromUnixSeconds(1764158400);
  Script s;
  v1::Delivery* d = s.delivery.mutable_delivery();
  *d = MakeDelivery("d_0003", "invoice.update", "42", "dead", 5, received,
                    "Databricks answered 400: column type conflict\nsee the table's schema");
  d->set_object_type("invoice");
  d->set_account_id("6BApk");
  d->set_business_id("6543");
  d->set_identity_id("17");
  d->set_user_id("1");
  *d->mutable_journaled_at() = Ts(received);
  *d->mutable_finished_at() = Ts(finished);
  d->set_replays(1);
  d->set_payload(R"([["name","invoice.update"],["object_id","42"],["account_id","6BApk"],)"
                 R"(["note","two\nlines"]])");
  for (const auto& [stage, outcome, http, ms, error] :
       std::vector<std::tuple<std::string, std::string, int, double, std::string>>{
           {"journal", "ok", 0, 1.24, ""},
           {"hydrate", "ok", 200, 85, ""},
           {"write", "dead", 400, 1234.5, "column type conflict"}}) {
    v1::Attempt* a = s.delivery.add_attempts();
    a->set_stage(stage);
    a->set_outcome(outcome);
    a->set_http_status(http);
    a->set_duration_ms(ms);
    a->set_error(error);
    *a->mutable_at() = Ts(t0 + absl::Milliseconds(1500) * s.delivery.attempts_size());
  }
  admin_.set_script(s);

  const Result r = Run({"show", "d_0003"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(admin_.last_get().delivery_id(), "d_0003");
  EXPECT_EQ(r.out,
            "delivery    d_0003\n"
            "connection  acme\n"
            "kind        event\n"
            "event       invoice.update\n"
            "object      invoice 42\n"
            "account     6BApk\n"
            "business    6543\n"
            "identity    17\n"
            "user        1\n"
            "status      dead\n"
            "attempts    5 failed\n"
            "replays     1\n"
            "received    " +
                Utc(received) + " (3h ago)\n" + "journaled   " + Utc(received) +
                " (3h ago)\n"
                "finished    " +
                Utc(finished) +
                " (1h ago)\n"
                "last error  Databricks answered 400: column type conflict\n"
                "            see the table's schema\n"
                "\n"
                "payload:\n"
                "  name = invoice.update\n"
                "  object_id = 42\n"
                "  account_id = 6BApk\n"
                "  note = two\\nlines\n"
                "\n"
                "attempts (oldest first):\n" +
                Row({{"AT", 27},
                     {"STAGE", 7},
                     {"OUTCOME", 7},
                     {"HTTP", -4},
                     {"DURATION", -8},
                     {"ERROR", 0}}) +
                Row({{"2025-11-26 12:00:01.500 UTC", 27},
                     {"journal", 7},
                     {"ok", 7},
                     {"-", -4},
                     {"1.2ms", -8},
                     {"", 0}}) +
                Row({{"2025-11-26 12:00:03.000 UTC", 27},
                     {"hydrate", 7},
                     {"ok", 7},
                     {"200", -4},
                     {"85ms", -8},
                     {"", 0}}) +
                Row({{"2025-11-26 12:00:04.500 UTC", 27},
                     {"write", 7},
                     {"dead", 7},
                     {"400", -4},
                     {"1.2s", -8},
                     {"column type conflict", 0}}) +
                "\nreplay it once the cause is fixed: mlc replay d_0003\n");

  const Result j = Run({"show", "--json", "d_0003"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  ExpectJsonIs(j.out, s.delivery);

  s.status = grpc::Status(grpc::StatusCode::NOT_FOUND, "no delivery \"d_nope\"");
  admin_.set_script(s);
  const Result missing = Run({"show", "d_nope"});
  EXPECT_EQ(missing.exit_code, 1) << Describe(missing);
  EXPECT_TRUE(Contains(missing.err, "no delivery \"d_nope\"")) << missing.err;
  EXPECT_EQ(missing.out, "");
}

TEST_F(MlcCliTest, ReplayByFilterDryRunSaysNothingChanged) {
  Script s;
  s.replay.set_matched(3);
  s.replay.set_dry_run(true);
  for (const char* id : {"d_3", "d_2", "d_1"}) s.replay.add_delivery_ids(id);
  admin_.set_script(s);

  const Result r = Run({"replay", "--status", "dead", "--connection", "acme", "--error",
                        "type conflict", "--dry-run", "--limit", "500"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  const v1::ReplayRequest req = admin_.last_replay();
  EXPECT_TRUE(req.delivery_ids().empty());
  EXPECT_EQ(req.filter().connection_id(), "acme");
  EXPECT_EQ(Statuses(req.filter()), std::vector<std::string>{"dead"});
  EXPECT_EQ(req.filter().error_contains(), "type conflict");
  EXPECT_TRUE(req.dry_run());
  EXPECT_EQ(req.limit(), 500);
  EXPECT_EQ(r.out,
            "dry run: nothing was changed.\n"
            "matched 3 deliveries; 3 would be replayed.\n"
            "ids:\n"
            "  d_3\n"
            "  d_2\n"
            "  d_1\n"
            "Run the same command without --dry-run to replay them.\n");

  const Result j = Run({"replay", "--since", "1d", "--json"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  ExpectJsonIs(j.out, s.replay);
  EXPECT_FALSE(admin_.last_replay().dry_run());
  EXPECT_EQ(admin_.last_replay().limit(), 0);  // the writer's default
  EXPECT_TRUE(admin_.last_replay().filter().has_received_after());
}

TEST_F(MlcCliTest, ReplayByIdsReportsSkippedAndNotFoundAndExitsOne) {
  Script s;
  s.replay.set_matched(2);
  s.replay.set_replayed(1);
  s.replay.add_delivery_ids("d_1");
  s.replay.add_delivery_ids("d_2");
  s.replay.add_skipped("d_2: a handshake is not replayable");
  s.replay.add_not_found("d_3");
  admin_.set_script(s);

  const Result r = Run({"replay", "d_1", "d_2", "d_3"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  const v1::ReplayRequest req = admin_.last_replay();
  EXPECT_EQ(std::vector<std::string>(req.delivery_ids().begin(), req.delivery_ids().end()),
            (std::vector<std::string>{"d_1", "d_2", "d_3"}));
  EXPECT_FALSE(req.has_filter());
  EXPECT_FALSE(req.dry_run());
  EXPECT_EQ(r.out,
            "matched 2 deliveries; replayed 1, 1 skipped.\n"
            "The replayed deliveries are pending again; the pipeline writes them shortly "
            "(see: mlc deliveries --status pending).\n"
            "ids:\n"
            "  d_1\n"
            "  d_2\n"
            "skipped (not replayable):\n"
            "  d_2: a handshake is not replayable\n"
            "not found:\n"
            "  d_3\n");
  EXPECT_EQ(r.err, "mlc: 1 of 3 requested deliveries were not found: d_3 (see: mlc deliveries)\n");

  const Result j = Run({"replay", "--json", "d_1", "d_2", "d_3"});
  EXPECT_EQ(j.exit_code, 1) << Describe(j);
  ExpectJsonIs(j.out, s.replay);
}

TEST_F(MlcCliTest, ReplayListsTheFirstIdsAndSaysWhenTruncated) {
  Script s;
  s.replay.set_matched(1500);
  s.replay.set_replayed(1500);
  s.replay.set_truncated(true);
  for (int i = 0; i < 1000; ++i) s.replay.add_delivery_ids(absl::StrCat("d_", i));
  admin_.set_script(s);
  const Result r = Run({"replay", "--status", "dead"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(Contains(r.out, "matched 1500 deliveries; replayed 1500.\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "ids (the first 20 of 1500):\n  d_0\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "  d_19\n  ... and 980 more (--json lists up to 1000)\n")) << r.out;
  EXPECT_FALSE(Contains(r.out, "d_20\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "truncated: more deliveries match than --limit")) << r.out;
}

TEST_F(MlcCliTest, ReplayWithoutIdsOrFilterIsRefusedWithoutACall) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"replay"},
                                               {"replay", "--dry-run"},
                                               {"replay", "--limit", "10"},
                                               {"--json", "replay"}}) {
    const Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_TRUE(Contains(r.err, "mlc: replay needs DELIVERY_IDs or at least one filter flag"))
        << r.err;
    EXPECT_TRUE(Contains(r.err, "usage: mlc replay")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  const Result both = Run({"replay", "d_1", "--status", "dead"});
  EXPECT_EQ(both.exit_code, 2) << Describe(both);
  EXPECT_TRUE(Contains(both.err, "not both")) << both.err;
  EXPECT_TRUE(admin_.calls().empty());
}

Script DeadLettersScript(absl::Time now) {
  Script s;
  v1::ConnectionStats* acme = s.stats.add_connections();
  acme->set_connection_id("acme");
  acme->set_dead(3);
  v1::DeadLetterReason* conflict = acme->add_dead_letters();
  conflict->set_reason("Databricks: column type conflict on freshbooks_invoices.amount");
  conflict->set_count(2);
  *conflict->mutable_latest() = Ts(now - absl::Minutes(12) - absl::Seconds(5));
  v1::DeadLetterReason* gone = acme->add_dead_letters();
  gone->set_reason("FreshBooks answered 404");
  gone->set_count(1);
  *gone->mutable_latest() = Ts(now - absl::Hours(5) - absl::Seconds(5));
  v1::ConnectionStats* globex = s.stats.add_connections();
  globex->set_connection_id("globex");
  globex->set_written(10);
  v1::ListDeliveriesResponse& dead = s.delivery_pages[""];
  *dead.add_deliveries() =
      MakeDelivery("d_0009", "invoice.update", "42", "dead", 8,
                   now - absl::Minutes(12) - absl::Seconds(5), "Databricks: column type conflict");
  *dead.add_deliveries() =
      MakeDelivery("d_0007", "client.delete", "8", "dead", 1,
                   now - absl::Hours(5) - absl::Seconds(5), "FreshBooks answered 404");
  return s;
}

TEST_F(MlcCliTest, DeadLettersGroupsByReasonListsTheNewestAndSaysHowToReplay) {
  const Script s = DeadLettersScript(absl::Now());
  admin_.set_script(s);
  const Result r = Run({"dead-letters"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(admin_.calls(), (std::vector<std::string>{"GetStats", "ListDeliveries"}));
  EXPECT_EQ(admin_.last_stats().connection_id(), "");
  const std::vector<v1::ListDeliveriesRequest> lists = admin_.list_requests();
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(Statuses(lists[0].filter()), std::vector<std::string>{"dead"});
  EXPECT_EQ(lists[0].filter().connection_id(), "");
  EXPECT_EQ(lists[0].page_size(), 20);
  EXPECT_EQ(
      r.out,
      "3 dead letters, by reason:\n" +
          Row({{"CONNECTION", 10}, {"COUNT", -5}, {"LATEST", 7}, {"REASON", 0}}) +
          Row({{"acme", 10},
               {"2", -5},
               {"12m ago", 7},
               {"Databricks: column type conflict on freshbooks_invoices.amount", 0}}) +
          Row({{"acme", 10}, {"1", -5}, {"5h ago", 7}, {"FreshBooks answered 404", 0}}) +
          "\nthe newest (mlc show DELIVERY for the details):\n" +
          Row({{"DELIVERY", 8},
               {"CONNECTION", 10},
               {"EVENT", 14},
               {"OBJECT", 6},
               {"STATUS", 6},
               {"ATTEMPTS", -8},
               {"RECEIVED", 8},
               {"ERROR", 0}}) +
          Row({{"d_0009", 8},
               {"acme", 10},
               {"invoice.update", 14},
               {"42", 6},
               {"dead", 6},
               {"8", -8},
               {"12m ago", 8},
               {"Databricks: column type conflict", 0}}) +
          Row({{"d_0007", 8},
               {"acme", 10},
               {"client.delete", 14},
               {"8", 6},
               {"dead", 6},
               {"1", -8},
               {"5h ago", 8},
               {"FreshBooks answered 404", 0}}) +
          "(2 of 3 shown; all of them: mlc deliveries --status dead --connection acme --all)\n"
          "\nReplay them once the cause is fixed (--error TEXT picks one reason, --dry-run "
          "shows what would be replayed):\n"
          "  mlc replay --status dead --connection acme\n");

  const Result j = Run({"dead-letters", "--connection", "acme", "--limit", "5", "--json"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  EXPECT_EQ(admin_.last_stats().connection_id(), "acme");
  const std::vector<v1::ListDeliveriesRequest> again = admin_.list_requests();
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[1].filter().connection_id(), "acme");
  EXPECT_EQ(again[1].page_size(), 5);
  EXPECT_EQ(j.out.find('\n'), j.out.size() - 1) << j.out;
  const nlohmann::json parsed = nlohmann::json::parse(j.out);
  ASSERT_TRUE(parsed.contains("stats") && parsed.contains("recent")) << j.out;
  ExpectJsonIs(parsed["stats"].dump() + "\n", s.stats);
  ExpectJsonIs(parsed["recent"].dump() + "\n", s.delivery_pages.at(""));
}

TEST_F(MlcCliTest, NoDeadLettersSaysSoWithOneCall) {
  Script s;
  s.stats.add_connections()->set_connection_id("acme");
  admin_.set_script(s);
  const Result r = Run({"dead-letters", "--connection", "acme"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "no dead letters in connection acme\n");
  EXPECT_EQ(admin_.calls(), std::vector<std::string>{"GetStats"});
}

TEST_F(MlcCliTest, StatsPrintsPerConnectionFiguresAndTheJournal) {
  const absl::Time now = absl::Now();
  const absl::Time compacted = now - absl::Hours(9) - absl::Minutes(1);
  Script s;
  v1::ConnectionStats* acme = s.stats.add_connections();
  acme->set_connection_id("acme");
  acme->set_pending(3);
  acme->set_retrying(1);
  acme->set_written(1200);
  acme->set_dead(2);
  acme->set_handshakes(1);
  *acme->mutable_oldest_pending_received_at() = Ts(now - absl::Minutes(12) - absl::Seconds(5));
  *acme->mutable_last_written_at() = Ts(now - absl::Minutes(3) - absl::Seconds(5));
  acme->set_received_last_hour(40);
  acme->set_written_last_hour(38);
  s.stats.add_connections()->set_connection_id("globex");
  s.stats.set_journal_bytes(12897484);  // 12.3 MiB
  s.stats.set_audit_retention_days(30);
  *s.stats.mutable_last_compaction() = Ts(compacted);
  s.stats.set_compacted_total(1234);
  admin_.set_script(s);

  const Result r = Run({"stats"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(admin_.last_stats().connection_id(), "");
  EXPECT_EQ(r.out, Row({{"CONNECTION", 10},
                        {"PENDING", -7},
                        {"RETRYING", -8},
                        {"WRITTEN", -7},
                        {"DEAD", -4},
                        {"HANDSHAKES", -10},
                        {"OLDEST PENDING", 14},
                        {"LAST WRITTEN", 12},
                        {"RECEIVED 1H", -11},
                        {"WRITTEN 1H", -10}}) +
                       Row({{"acme", 10},
                            {"3", -7},
                            {"1", -8},
                            {"1200", -7},
                            {"2", -4},
                            {"1", -10},
                            {"12m ago", 14},
                            {"3m ago", 12},
                            {"40", -11},
                            {"38", -10}}) +
                       Row({{"globex", 10},
                            {"0", -7},
                            {"0", -8},
                            {"0", -7},
                            {"0", -4},
                            {"0", -10},
                            {"-", 14},
                            {"never", 12},
                            {"0", -11},
                            {"0", -10}}) +
                       "\n"
                       "journal size     12.3 MiB\n"
                       "audit retention  30 days\n"
                       "last compaction  " +
                       Utc(compacted) +
                       " (9h ago); 1234 deliveries removed since the writer started\n"
                       "\n"
                       "2 dead letters: see mlc dead-letters\n");

  const Result j = Run({"stats", "--connection", "acme", "--json"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  EXPECT_EQ(admin_.last_stats().connection_id(), "acme");
  ExpectJsonIs(j.out, s.stats);
}

Script CheckScript(bool failing) {
  Script s;
  s.check.set_connection_id("acme");
  s.check.set_ok(!failing);
  auto add = [&](const char* system, const char* name, const char* status, const char* detail,
                 const char* fix) {
    v1::CheckStep* step = s.check.add_steps();
    step->set_system(system);
    step->set_name(name);
    step->set_status(status);
    step->set_detail(detail);
    step->set_fix(fix);
  };
  add("writer", "credentials", "ok", "stored, decrypted", "");
  add("freshbooks", "/users/me", failing ? "failed" : "ok",
      failing ? "401 invalid_grant" : "Acme Ltd (6543)",
      failing ? "run mlc authorize --connection acme" : "");
  add("sqlite", "lakehouse", failing ? "warning" : "ok", failing ? "3 GiB free" : "writable",
      failing ? "free disk space under data_dir" : "");
  add("databricks", "warehouse", "skipped", "sink is sqlite", "");
  return s;
}

TEST_F(MlcCliTest, CheckPrintsStepsAndExitsZeroWhenOk) {
  const Script s = CheckScript(false);
  admin_.set_script(s);
  const Result r = Run({"check", "--connection", "acme"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(admin_.last_check().connection_id(), "acme");
  EXPECT_EQ(
      r.out,
      Row({{"SYSTEM", 10}, {"STEP", 11}, {"STATUS", 7}, {"DETAIL", 0}}) +
          Row({{"writer", 10}, {"credentials", 11}, {"ok", 7}, {"stored, decrypted", 0}}) +
          Row({{"freshbooks", 10}, {"/users/me", 11}, {"ok", 7}, {"Acme Ltd (6543)", 0}}) +
          Row({{"sqlite", 10}, {"lakehouse", 11}, {"ok", 7}, {"writable", 0}}) +
          Row({{"databricks", 10}, {"warehouse", 11}, {"skipped", 7}, {"sink is sqlite", 0}}) +
          "\nconnection acme: OK (4 steps: 3 ok, 1 skipped)\n");
  const Result j = Run({"check", "--connection", "acme", "--json"});
  ASSERT_EQ(j.exit_code, 0) << Describe(j);
  ExpectJsonIs(j.out, s.check);
}

TEST_F(MlcCliTest, CheckPrintsTheFixesAndExitsOneWhenAStepFailed) {
  const Script s = CheckScript(true);
  admin_.set_script(s);
  const Result r = Run({"check", "--connection", "acme"});
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_TRUE(Contains(
      r.out, Row({{"freshbooks", 10}, {"/users/me", 11}, {"failed", 7}, {"401 invalid_grant", 0}})))
      << r.out;
  EXPECT_TRUE(
      absl::EndsWith(r.out,
                     "\nto fix:\n"
                     "  freshbooks /users/me (failed): run mlc authorize --connection acme\n"
                     "  sqlite lakehouse (warning): free disk space under data_dir\n"
                     "\nconnection acme: FAILED (4 steps: 1 ok, 1 failed, 1 warning, "
                     "1 skipped)\n"))
      << r.out;
  EXPECT_EQ(r.err,
            "mlc: connection acme failed its check: 1 step failed; the fixes are listed above\n");

  const Result j = Run({"--json", "check", "--connection", "acme"});
  EXPECT_EQ(j.exit_code, 1) << Describe(j);
  ExpectJsonIs(j.out, s.check);
  EXPECT_TRUE(Contains(j.err, "see each failed step's fix")) << j.err;
}

TEST_F(MlcCliTest, NewCommandsShowServerErrorsAndExitOne) {
  Script s;
  s.status = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the journal is closing");
  admin_.set_script(s);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"deliveries"},
                                               {"show", "d_1"},
                                               {"replay", "d_1"},
                                               {"replay", "--status", "dead", "--dry-run"},
                                               {"dead-letters"},
                                               {"stats", "--json"},
                                               {"check", "--connection", "acme"}}) {
    const Result r = Run(args);
    EXPECT_EQ(r.exit_code, 1) << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_TRUE(Contains(r.err, "(FAILED_PRECONDITION): the journal is closing")) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(admin_.calls(),
            (std::vector<std::string>{"ListDeliveries", "GetDelivery", "Replay", "Replay",
                                      "GetStats", "GetStats", "CheckConnection"}));

  // A writer that predates these RPCs.
  s.status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "");
  admin_.set_script(s);
  const Result old = Run({"stats"});
  EXPECT_EQ(old.exit_code, 1) << Describe(old);
  EXPECT_TRUE(Contains(old.err, "does not offer Admin.GetStats")) << old.err;
}

TEST_F(MlcCliTest, NewCommandsUsageErrorsExitTwoWithoutACall) {
  const std::vector<std::vector<std::string>> cases = {
      {"show"},
      {"show", "d_1", "d_2"},
      {"check"},
      {"stats", "extra"},
      {"stats", "--connection", ""},
      {"dead-letters", "--limit", "0"},
      {"deliveries", "d_1"},
      {"deliveries", "--status", "bogus"},
      {"deliveries", "--status", ","},
      {"deliveries", "--since", "yesterday"},
      {"deliveries", "--since", "-2h"},
      {"deliveries", "--since", "1h", "--until", "2h"},
      {"deliveries", "--event", "Invoice Create"},
      {"deliveries", "--object", ""},
      {"deliveries", "--limit", "5000"},
      {"deliveries", "--limit", "many"},
      {"deliveries", "--page-token", ""},
      {"deliveries", "--all=yes"},
      {"replay", "d_1", "--limit", "5"},
      {"replay", "--status", "dead", "--limit", "200000"},
      {"replay", "--connection", ""},
  };
  for (const auto& args : cases) {
    const Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2) << "mlc " << absl::StrJoin(args, " ") << "\n" << Describe(r);
    EXPECT_TRUE(Contains(r.err, "mlc: ")) << r.err;
    EXPECT_TRUE(Contains(r.err, "usage: mlc " + args[0])) << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_TRUE(admin_.calls().empty());
  EXPECT_EQ(admin_.rejected(), 0);
}

}  // namespace
}  // namespace mlc::testing
