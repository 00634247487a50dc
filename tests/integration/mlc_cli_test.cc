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
    for (const char* word :
         {"connections", "authorize", "register-webhooks", "sync", "send-webhook", "--writer",
          "--admin-token-file", "--json", "--timeout", "--connection", "--wait", "--full",
          "--entity", "--url", "--verifier-file", "--dry-run", "$MLC_WRITER", "$MLC_ADMIN_TOKEN",
          "Exit status"}) {
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

}  // namespace
}  // namespace mlc::testing
