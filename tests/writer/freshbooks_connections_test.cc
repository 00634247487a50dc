// FreshBooksConnections against the fake FreshBooks: the authorization code flow
// (state handling, identity, refusing another business) and webhook registration
// with its handshake (a verifier becomes a signing key only once accepted).
#include "writer/freshbooks_connections.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/http_server_util.h"
#include "common/webhook_signature.h"
#include "tests/fakes/fake_freshbooks.h"
#include "tests/support/freshbooks_oauth_test.h"
#include "tests/support/test_util.h"
#include "writer/freshbooks_entities.h"

namespace mlc::writer {
namespace {

using mlc::testing::FakeFreshBooks;

// Receives FreshBooks' handshakes the way ingress + Ingest.Submit do: records the
// verifier in SigningKeys.
class HandshakeReceiver {
 public:
  explicit HandshakeReceiver(SigningKeys* keys) : keys_(keys) {
    server_.Post("/webhooks/freshbooks/acme",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   auto fields = ParseWebhookForm(req.body);
                   if (!fields.ok()) {
                     res.status = 400;
                     return;
                   }
                   std::string verifier, object_id;
                   for (const auto& [k, v] : *fields) {
                     if (k == "verifier") verifier = v;
                     if (k == "object_id") object_id = v;
                   }
                   ++received_;
                   if (!verifier.empty() && !ignore_)
                     keys_->RecordHandshake("acme", object_id, verifier);
                   res.status = 200;
                 });
    server_.set_keep_alive_max_count(1);  // no idle keep-alive to wait out at Stop
    auto port = StartHttpServer(&server_, "test", "127.0.0.1:0", &thread_);
    port_ = port.ok() ? *port : 0;
  }
  ~HandshakeReceiver() { StopHttpServer(&server_, &thread_); }
  std::string url() const {
    return absl::StrCat("http://127.0.0.1:", port_, "/webhooks/freshbooks/acme");
  }
  std::atomic<bool> ignore_{false};
  std::atomic<int> received_{0};

 private:
  SigningKeys* keys_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

class FreshBooksConnectionsTest : public testing::FreshBooksOAuthTest {
 protected:
  void SetUp() override {
    FakeFreshBooks::Options o;
    o.clock = &clock_;
    StartFreshBooks(o);
  }

  ConnectionConfig Conn(const std::string& account_id = "") {
    ConnectionConfig c = OAuthConnection();
    c.freshbooks.webhook_url = receiver_ != nullptr ? receiver_->url() : "";
    c.freshbooks.account_id = account_id;
    c.freshbooks.events = {"invoice", "payment"};
    return c;
  }

  void Make(const ConnectionConfig& c) {
    conns_.reset();
    keys_ = std::make_unique<SigningKeys>(std::vector<ConnectionConfig>{c});
    conns_ = std::make_unique<FreshBooksConnections>(
        std::vector<ConnectionConfig>{c}, &http_, store_.get(), keys_.get(), &clock_, &registry_);
    ASSERT_TRUE(conns_->Start().ok());
  }

  Registry registry_;
  std::unique_ptr<HandshakeReceiver> receiver_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<FreshBooksConnections> conns_;
};

TEST_F(FreshBooksConnectionsTest, AuthorizationRecordsTheIdentity) {
  Make(Conn());
  EXPECT_FALSE(conns_->Identity("acme").has_value());
  const std::string state = StartState(conns_.get());
  auto r = conns_->CompleteAuthorization(fb_->IssueAuthorizationCode(), state, "", "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->connection_id, "acme");
  EXPECT_EQ(r->identity.account_id, "6BApk");
  EXPECT_EQ(r->identity.business_id, "6543");  // the business id, not the membership id
  EXPECT_EQ(r->identity.business_uuid, fb_->options().business_uuid);
  auto id = conns_->Identity("acme");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->account_id, "6BApk");
  EXPECT_TRUE(conns_->Client("acme")->HasTokens());
  // The client secret from config is kept encrypted.
  auto secret = store_->GetSecret("freshbooks/acme/client_secret");
  ASSERT_TRUE(secret.ok());
  EXPECT_EQ(secret->value_or(""), fb_->options().client_secret);
}

TEST_F(FreshBooksConnectionsTest, AuthorizationAsksForEveryEntitysReadScope) {
  Make(Conn());
  auto r = conns_->StartAuthorization("acme");
  ASSERT_TRUE(r.ok()) << r.status();
  auto query = ParseWebhookForm(r->first.substr(r->first.find('?') + 1));  // a form, decoded
  ASSERT_TRUE(query.ok()) << query.status();
  std::string scope;
  for (const auto& [k, v] : *query) {
    if (k == "scope") scope = v;
  }
  const std::vector<std::string> asked = absl::StrSplit(scope, ' ');
  const std::set<std::string> have(asked.begin(), asked.end());
  EXPECT_EQ(have.size(), asked.size()) << scope;  // each once
  EXPECT_EQ(have.count("user:profile:read"), 1u) << scope;
  for (const EntitySpec* e : AllEntities()) {
    EXPECT_EQ(have.count(e->read_scope), 1u) << e->name << ": " << scope;
  }
}

TEST_F(FreshBooksConnectionsTest, StateIsSingleUseAndExpires) {
  Make(Conn());
  const std::string state = StartState(conns_.get());
  ASSERT_TRUE(conns_->CompleteAuthorization(fb_->IssueAuthorizationCode(), state, "", "").ok());
  auto again = conns_->CompleteAuthorization(fb_->IssueAuthorizationCode(), state, "", "");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(again.status().message().find("already used"), absl::string_view::npos);

  const std::string old = StartState(conns_.get());
  clock_.Advance(absl::Minutes(16));
  auto expired = conns_->CompleteAuthorization(fb_->IssueAuthorizationCode(), old, "", "");
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(expired.status().message().find("expired"), absl::string_view::npos);

  auto unknown = conns_->CompleteAuthorization("code", "forged-state", "", "");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);

  auto denied =
      conns_->CompleteAuthorization("", StartState(conns_.get()), "access_denied", "user said no");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(denied.status().message().find("access_denied"), absl::string_view::npos);
}

TEST_F(FreshBooksConnectionsTest, AnotherBusinessIsRefusedAndItsTokensForgotten) {
  Make(Conn("ZZZ999"));
  auto r = conns_->CompleteAuthorization(fb_->IssueAuthorizationCode(), StartState(conns_.get()),
                                         "", "");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("ZZZ999"), absl::string_view::npos);
  EXPECT_NE(r.status().message().find("6BApk"), absl::string_view::npos);
  EXPECT_FALSE(conns_->Identity("acme").has_value());
  auto token = store_->GetSecret("freshbooks/acme/refresh_token");
  ASSERT_TRUE(token.ok());
  EXPECT_FALSE(token->has_value());
}

TEST_F(FreshBooksConnectionsTest, WebhooksAreRegisteredAndVerifiedKeysServeIngress) {
  keys_ = nullptr;
  // The receiver needs the SigningKeys that Make creates; build it in two steps.
  ConnectionConfig c = Conn();
  keys_ = std::make_unique<SigningKeys>(std::vector<ConnectionConfig>{c});
  receiver_ = std::make_unique<HandshakeReceiver>(keys_.get());
  c.freshbooks.webhook_url = receiver_->url();
  conns_ = std::make_unique<FreshBooksConnections>(std::vector<ConnectionConfig>{c}, &http_,
                                                   store_.get(), keys_.get(), &clock_, &registry_);
  ASSERT_TRUE(conns_->Start().ok());
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));

  auto r = conns_->RegisterWebhooks("acme", absl::Seconds(10));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 2u);
  for (const CallbackStatus& st : *r) EXPECT_EQ(st.status, "verified") << st.event;
  uint64_t version = 0;
  auto snapshot = keys_->Snapshot(&version);
  ASSERT_EQ(snapshot["acme"].size(), 2u);
  for (const nlohmann::json& cb : fb_->Callbacks()) {
    EXPECT_TRUE(cb["verified"].get<bool>());
    bool found = false;
    for (const KeyEntry& k : snapshot["acme"]) found = found || k.secret == cb["verifier"];
    EXPECT_TRUE(found);
  }

  // Registering again creates nothing new.
  const int creates = fb_->Requests("CALLBACK create");
  auto again = conns_->RegisterWebhooks("acme", absl::Seconds(1));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(fb_->Requests("CALLBACK create"), creates);

  // A restarted writer loads the verified keys from the encrypted store.
  auto keys2 = std::make_unique<SigningKeys>(std::vector<ConnectionConfig>{c});
  Registry registry2;
  FreshBooksConnections conns2({c}, &http_, store_.get(), keys2.get(), &clock_, &registry2);
  ASSERT_TRUE(conns2.Start().ok());
  EXPECT_EQ(keys2->Snapshot(&version)["acme"].size(), 2u);
  conns2.Stop();
}

TEST_F(FreshBooksConnectionsTest, ALostHandshakeIsRequestedAgain) {
  ConnectionConfig c = Conn();
  c.freshbooks.events = {"invoice"};
  keys_ = std::make_unique<SigningKeys>(std::vector<ConnectionConfig>{c});
  receiver_ = std::make_unique<HandshakeReceiver>(keys_.get());
  receiver_->ignore_ = true;  // e.g. the writer restarted before verifying
  c.freshbooks.webhook_url = receiver_->url();
  conns_ = std::make_unique<FreshBooksConnections>(std::vector<ConnectionConfig>{c}, &http_,
                                                   store_.get(), keys_.get(), &clock_, &registry_);
  ASSERT_TRUE(conns_->Start().ok());
  ASSERT_NO_FATAL_FAILURE(Authorize(conns_.get()));
  auto r = conns_->RegisterWebhooks("acme", absl::Milliseconds(500));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->at(0).status, "created");
  uint64_t version = 0;
  EXPECT_TRUE(keys_->Snapshot(&version)["acme"].empty());  // not trusted before FreshBooks says so

  receiver_->ignore_ = false;
  auto again = conns_->RegisterWebhooks("acme", absl::Seconds(10));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->at(0).status, "verified");
  EXPECT_EQ(fb_->Requests("CALLBACK resend"), 1);
  EXPECT_EQ(keys_->Snapshot(&version)["acme"].size(), 1u);
}

TEST_F(FreshBooksConnectionsTest, RegistrationNeedsAuthorizationAndAWebhookUrl) {
  Make(Conn());
  auto r = conns_->RegisterWebhooks("acme", absl::ZeroDuration());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("webhook_url"), absl::string_view::npos);
  EXPECT_EQ(conns_->StartAuthorization("nope").status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mlc::writer
