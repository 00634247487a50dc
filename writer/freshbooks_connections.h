// FreshBooksConnections: everything the writer knows and does per connection on
// the FreshBooks side - the API client with its OAuth tokens, the identity learnt
// at authorization (account_id, business_id, business_uuid), the authorization
// code flow, and webhook registration with its verification handshake.
//
// Authorization: StartAuthorization mints a random `state` (single-use, valid
// 15 minutes, stored with its connection in the credential store's state table so
// a writer restart does not invalidate a link in flight) and returns FreshBooks'
// authorize URL. CompleteAuthorization (ingress's OAuth callback) consumes the
// state, exchanges the code, calls /auth/api/v1/users/me and picks the business
// membership whose account_id is the configured one (or the only one, when none
// is configured); another business is refused and its tokens are not kept.
//
// Webhooks: RegisterWebhooks lists the account's callbacks, creates the missing
// ones (one per configured event at the connection's webhook_url) and asks
// FreshBooks to resend the handshake of unverified ones. A handshake reaches the
// writer through Ingest.Submit (SigningKeys holds its verifier in memory); this
// class PUTs the verifier back and only when FreshBooks accepts it stores the
// verifier (encrypted, secret "freshbooks/<id>/verifier/<callback_id>") and adds
// it to SigningKeys, which ingress polls - deliveries signed with it are accepted
// without a restart. Stored verifiers are loaded at startup.
//
// Thread-safe. Owns one background thread that verifies handshakes.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "writer/credential_store.h"
#include "writer/freshbooks_client.h"
#include "writer/signing_keys.h"

namespace mlc::writer {

// Who a connection is in FreshBooks, learnt at authorization.
struct FreshBooksIdentity {
  std::string account_id;
  std::string business_id;  // numeric, as text
  std::string business_uuid;
  std::string business_name;
};

struct CallbackStatus {
  std::string event;
  std::string callback_id;
  std::string status;  // "created", "existing", "verified", "pending"
  std::string uri;
};

struct AuthorizationResult {
  std::string connection_id;
  FreshBooksIdentity identity;
};

class FreshBooksConnections {
 public:
  FreshBooksConnections(const std::vector<ConnectionConfig>& connections, HttpClient* http,
                        CredentialStore* store, SigningKeys* keys, Clock* clock,
                        Registry* registry);
  ~FreshBooksConnections();  // stops the verifier thread

  // Moves config secrets into the store, loads stored verifiers into SigningKeys,
  // starts the verifier thread.
  absl::Status Start();
  void Stop();

  // True if the connection has FreshBooks OAuth configured (client_id set).
  bool OAuthConfigured(const std::string& connection_id) const;
  // The API client, or nullptr when the connection is unknown or has no OAuth.
  FreshBooksClient* Client(const std::string& connection_id);
  // The identity, once authorized.
  std::optional<FreshBooksIdentity> Identity(const std::string& connection_id);
  const ConnectionConfig* Config(const std::string& connection_id) const;
  const std::vector<ConnectionConfig>& configs() const { return configs_; }

  absl::StatusOr<std::pair<std::string, absl::Time>> StartAuthorization(
      const std::string& connection_id);
  absl::StatusOr<AuthorizationResult> CompleteAuthorization(const std::string& code,
                                                            const std::string& state,
                                                            const std::string& error,
                                                            const std::string& error_description);

  // Creates missing callbacks; waits up to `wait` for pending handshakes to be
  // verified before reporting.
  absl::StatusOr<std::vector<CallbackStatus>> RegisterWebhooks(const std::string& connection_id,
                                                               absl::Duration wait);

  // A handshake for (connection, callback) arrived (called by SigningKeys'
  // listener); verification happens on the background thread.
  void OnHandshake(const std::string& connection_id, const std::string& callback_id);

 private:
  struct Conn;
  Conn* Find(const std::string& connection_id) const;
  void VerifierLoop();
  absl::Status Verify(const std::string& connection_id, const std::string& callback_id);

  std::vector<ConnectionConfig> configs_;
  HttpClient* http_;
  CredentialStore* store_;
  SigningKeys* keys_;
  Clock* clock_;
  std::map<std::string, std::unique_ptr<Conn>> conns_;
  Family<Counter>* handshakes_ = nullptr;  // {connection, outcome}

  absl::Mutex mu_;
  std::deque<std::pair<std::string, std::string>> to_verify_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, bool> verified_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread verifier_;
};

}  // namespace mlc::writer
