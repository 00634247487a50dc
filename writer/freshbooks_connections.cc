#include "writer/freshbooks_connections.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/webhook_signature.h"
#include "writer/freshbooks_entities.h"
#include "writer/sink.h"

namespace mlc::writer {
namespace {

constexpr absl::Duration kStateTtl = absl::Minutes(15);

// Every read scope ml-connector asks for (FRESHBOOKS.md §3): the profile and
// business (for /users/me and the identity), then each entity's, once.
std::string AuthorizationScopes() {
  std::vector<std::string> scopes = {"user:profile:read", "user:business:read"};
  for (const EntitySpec* e : AllEntities()) {
    if (std::find(scopes.begin(), scopes.end(), e->read_scope) == scopes.end()) {
      scopes.push_back(e->read_scope);
    }
  }
  return absl::StrJoin(scopes, " ");
}

std::string Prefix(const std::string& connection_id) {
  return absl::StrCat("freshbooks/", connection_id, "/");
}

// The state table is keyed by a hash of the `state` value: it is a one-time
// credential, so it is not kept in the clear.
std::string StateKey(const std::string& state) {
  return absl::StrCat("oauth_state/", HexEncode(Sha256(state)));
}

std::string JsonText(const nlohmann::json* v) {
  if (v == nullptr || v->is_null()) return "";
  if (v->is_string()) return v->get<std::string>();
  return v->dump();
}

// The full event names a connection's `events` config means ("invoice" covers
// all invoice events; FreshBooks matches children of a parent name).
std::vector<std::string> CallbackEvents(const FreshBooksConfig& fb) {
  std::vector<std::string> events = fb.events;
  if (events.empty()) events = AllFreshBooksEventObjects();
  std::sort(events.begin(), events.end());
  events.erase(std::unique(events.begin(), events.end()), events.end());
  return events;
}

}  // namespace

struct FreshBooksConnections::Conn {
  ConnectionConfig config;
  std::unique_ptr<FreshBooksClient> client;  // null without OAuth config
};

FreshBooksConnections::FreshBooksConnections(const std::vector<ConnectionConfig>& connections,
                                             HttpClient* http, CredentialStore* store,
                                             SigningKeys* keys, Clock* clock, Registry* registry)
    : configs_(connections), http_(http), store_(store), keys_(keys), clock_(clock) {
  Family<Counter>* requests = registry->AddCounter(
      "mlc_freshbooks_requests_total",
      "FreshBooks HTTP requests (token endpoint included) by connection and HTTP status, or "
      "\"network\" when no answer came",
      {"connection", "status"});
  Family<Counter>* refreshes = registry->AddCounter(
      "mlc_freshbooks_token_refreshes_total", "FreshBooks access tokens refreshed", {"connection"});
  Family<Counter>* refresh_failures =
      registry->AddCounter("mlc_freshbooks_token_refresh_failures_total",
                           "FreshBooks token refreshes that failed", {"connection"});
  Family<Gauge>* reauth = registry->AddGauge(
      "mlc_freshbooks_needs_reauthorization",
      "1 while a connection's FreshBooks authorization is gone (run mlc authorize)",
      {"connection"});
  handshakes_ =
      registry->AddCounter("mlc_freshbooks_handshakes_total",
                           "Webhook verification handshakes by outcome", {"connection", "outcome"});
  for (const ConnectionConfig& c : configs_) {
    auto conn = std::make_unique<Conn>();
    conn->config = c;
    if (!c.freshbooks.client_id.empty()) {
      FreshBooksClientOptions o;
      o.connection_id = c.id;
      o.api_url = c.freshbooks.api_url;
      o.client_id = c.freshbooks.client_id;
      o.redirect_uri = c.freshbooks.redirect_uri;
      o.requests_per_second = c.freshbooks.requests_per_second;
      o.burst = std::max(10, c.freshbooks.requests_per_second * 2);
      FreshBooksMetrics m;
      m.requests = requests;
      m.refreshes = refreshes->With({c.id});
      m.refresh_failures = refresh_failures->With({c.id});
      m.needs_reauth = reauth->With({c.id});
      conn->client = std::make_unique<FreshBooksClient>(o, http_, store_, clock_, m);
    }
    conns_[c.id] = std::move(conn);
  }
}

FreshBooksConnections::~FreshBooksConnections() { Stop(); }

absl::Status FreshBooksConnections::Start() {
  for (const ConnectionConfig& c : configs_) {
    const std::string prefix = Prefix(c.id);
    if (!c.freshbooks.client_secret.empty()) {
      MLC_ASSIGN_OR_RETURN(std::optional<std::string> stored,
                           store_->GetSecret(prefix + "client_secret"));
      if (!stored.has_value() || *stored != c.freshbooks.client_secret) {
        MLC_RETURN_IF_ERROR(
            store_->PutSecret(prefix + "client_secret", c.freshbooks.client_secret));
      }
    }
    MLC_ASSIGN_OR_RETURN(std::vector<std::string> names, store_->ListSecrets(prefix + "verifier/"));
    for (const std::string& name : names) {
      MLC_ASSIGN_OR_RETURN(std::optional<std::string> v, store_->GetSecret(name));
      if (!v.has_value()) continue;
      const std::string callback_id = name.substr((prefix + "verifier/").size());
      keys_->AddKey(c.id, {absl::StrCat("callback:", callback_id), *v});
    }
    if (!names.empty()) {
      log::Info("freshbooks: loaded webhook signing keys",
                {{"connection", c.id}, {"keys", static_cast<int64_t>(names.size())}});
    }
  }
  keys_->SetHandshakeListener(
      [this](const std::string& connection_id, const std::string& callback_id) {
        OnHandshake(connection_id, callback_id);
      });
  verifier_ = std::thread([this] { VerifierLoop(); });
  return absl::OkStatus();
}

void FreshBooksConnections::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (verifier_.joinable()) verifier_.join();
}

FreshBooksConnections::Conn* FreshBooksConnections::Find(const std::string& connection_id) const {
  auto it = conns_.find(connection_id);
  return it == conns_.end() ? nullptr : it->second.get();
}

bool FreshBooksConnections::OAuthConfigured(const std::string& connection_id) const {
  Conn* c = Find(connection_id);
  return c != nullptr && c->client != nullptr;
}

FreshBooksClient* FreshBooksConnections::Client(const std::string& connection_id) {
  Conn* c = Find(connection_id);
  return c == nullptr ? nullptr : c->client.get();
}

const ConnectionConfig* FreshBooksConnections::Config(const std::string& connection_id) const {
  Conn* c = Find(connection_id);
  return c == nullptr ? nullptr : &c->config;
}

std::optional<FreshBooksIdentity> FreshBooksConnections::Identity(
    const std::string& connection_id) {
  if (Find(connection_id) == nullptr) return std::nullopt;
  auto entries = store_->ListState(Prefix(connection_id) + "identity/");
  if (!entries.ok()) return std::nullopt;
  FreshBooksIdentity id;
  const std::string p = Prefix(connection_id) + "identity/";
  for (const auto& [name, value] : *entries) {
    const std::string field = name.substr(p.size());
    if (field == "account_id") id.account_id = value;
    if (field == "business_id") id.business_id = value;
    if (field == "business_uuid") id.business_uuid = value;
    if (field == "business_name") id.business_name = value;
  }
  if (id.account_id.empty()) return std::nullopt;
  return id;
}

absl::StatusOr<std::pair<std::string, absl::Time>> FreshBooksConnections::StartAuthorization(
    const std::string& connection_id) {
  Conn* c = Find(connection_id);
  if (c == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown connection \"", connection_id, "\""));
  }
  const FreshBooksConfig& fb = c->config.freshbooks;
  if (fb.client_id.empty() || fb.redirect_uri.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection \"", connection_id,
                     "\": set freshbooks.client_id, client_secret and redirect_uri (the app's "
                     "settings in the FreshBooks developer portal) to authorize"));
  }
  MLC_ASSIGN_OR_RETURN(std::optional<std::string> secret,
                       store_->GetSecret(Prefix(connection_id) + "client_secret"));
  if (!secret.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "connection \"", connection_id, "\": freshbooks.client_secret is not configured"));
  }
  const std::string state = RandomToken(24);
  const absl::Time expires = clock_->Now() + kStateTtl;
  MLC_RETURN_IF_ERROR(store_->PutState(
      StateKey(state), absl::StrCat(connection_id, "|", absl::ToUnixSeconds(expires))));
  const std::string query = EncodeWebhookForm({{"client_id", fb.client_id},
                                               {"response_type", "code"},
                                               {"redirect_uri", fb.redirect_uri},
                                               {"scope", AuthorizationScopes()},
                                               {"state", state}});
  log::Info("freshbooks: authorization started", {{"connection", connection_id}});
  return std::make_pair(absl::StrCat(fb.auth_url, "/oauth/authorize?", query), expires);
}

absl::StatusOr<AuthorizationResult> FreshBooksConnections::CompleteAuthorization(
    const std::string& code, const std::string& state, const std::string& error,
    const std::string& error_description) {
  if (state.empty()) {
    return absl::InvalidArgumentError(
        "the callback has no state; start again with `mlc authorize --connection <id>`");
  }
  const std::string key = StateKey(state);
  MLC_ASSIGN_OR_RETURN(std::optional<std::string> entry, store_->GetState(key));
  if (!entry.has_value()) {
    return absl::InvalidArgumentError(
        "this authorization link is unknown or was already used; start again with `mlc "
        "authorize --connection <id>`");
  }
  // Single use: consumed before anything else can go wrong.
  MLC_RETURN_IF_ERROR(store_->DeleteState(key));
  const size_t bar = entry->rfind('|');
  const std::string connection_id = entry->substr(0, bar);
  int64_t expires_unix = 0;
  if (bar == std::string::npos || !absl::SimpleAtoi(entry->substr(bar + 1), &expires_unix)) {
    return absl::InternalError("corrupt authorization state");
  }
  const std::string again =
      absl::StrCat("; start again with `mlc authorize --connection ", connection_id, "`");
  if (clock_->Now() > absl::FromUnixSeconds(expires_unix)) {
    return absl::InvalidArgumentError(absl::StrCat("this authorization link expired", again));
  }
  if (!error.empty()) {
    log::Warn("freshbooks: authorization refused by the user or FreshBooks",
              {{"connection", connection_id}, {"error", error}});
    return absl::InvalidArgumentError(absl::StrCat(
        "FreshBooks did not authorize: ", error,
        error_description.empty() ? "" : absl::StrCat(" (", error_description, ")"), again));
  }
  if (code.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("the callback has no code", again));
  }
  Conn* c = Find(connection_id);
  if (c == nullptr || c->client == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "connection \"", connection_id, "\" is no longer configured for FreshBooks OAuth"));
  }
  MLC_ASSIGN_OR_RETURN(std::string scope, c->client->ExchangeCode(code));
  absl::StatusOr<FreshBooksResponse> me = c->client->Call("GET", "/auth/api/v1/users/me");
  auto forget_tokens = [&] {
    CredentialStore::Change ch;
    ch.secrets.emplace_back(Prefix(connection_id) + "access_token", std::nullopt);
    ch.secrets.emplace_back(Prefix(connection_id) + "refresh_token", std::nullopt);
    absl::Status s = store_->Update(ch);
    if (!s.ok()) log::Error("freshbooks: cannot forget refused tokens", {{"error", s.ToString()}});
  };
  if (!me.ok()) {
    return absl::Status(me.status().code(),
                        absl::StrCat("reading the FreshBooks identity (/users/me) failed: ",
                                     me.status().message()));
  }
  const nlohmann::json* memberships = JsonAt(me->body, "response.business_memberships");
  std::vector<FreshBooksIdentity> found;
  if (memberships != nullptr && memberships->is_array()) {
    for (const nlohmann::json& m : *memberships) {
      const nlohmann::json* b = JsonAt(m, "business");
      if (b == nullptr) continue;
      FreshBooksIdentity id;
      id.account_id = JsonText(JsonAt(*b, "account_id"));
      id.business_id = JsonText(JsonAt(*b, "id"));
      id.business_uuid = JsonText(JsonAt(*b, "business_uuid"));
      id.business_name = JsonText(JsonAt(*b, "name"));
      if (!id.account_id.empty()) found.push_back(std::move(id));
    }
  }
  std::vector<std::string> accounts;
  accounts.reserve(found.size());
  for (const FreshBooksIdentity& id : found) accounts.push_back(id.account_id);
  const std::string& want = c->config.freshbooks.account_id;
  std::optional<FreshBooksIdentity> chosen;
  for (const FreshBooksIdentity& id : found) {
    if (!want.empty() && id.account_id == want) chosen = id;
  }
  if (want.empty() && found.size() == 1) chosen = found.front();
  if (!chosen.has_value()) {
    forget_tokens();
    if (want.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the FreshBooks user belongs to ", found.size(), " businesses (account ids ",
          absl::StrJoin(accounts, ", "), "); set connections[].freshbooks.account_id for \"",
          connection_id, "\" to the one to sync and authorize again"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("connection \"", connection_id, "\" is configured for FreshBooks account ",
                     want, " but the user who signed in has access only to ",
                     accounts.empty() ? "no business" : absl::StrJoin(accounts, ", "),
                     "; sign in as a user of account ", want, again));
  }
  const std::string p = Prefix(connection_id) + "identity/";
  CredentialStore::Change ch;
  ch.state.emplace_back(p + "account_id", chosen->account_id);
  ch.state.emplace_back(p + "business_id", chosen->business_id);
  ch.state.emplace_back(p + "business_uuid", chosen->business_uuid);
  ch.state.emplace_back(p + "business_name", chosen->business_name);
  MLC_RETURN_IF_ERROR(store_->Update(ch));
  log::Info("freshbooks: connection authorized", {{"connection", connection_id},
                                                  {"account_id", chosen->account_id},
                                                  {"business_id", chosen->business_id},
                                                  {"scope", scope}});
  return AuthorizationResult{connection_id, *chosen};
}

absl::StatusOr<std::vector<CallbackStatus>> FreshBooksConnections::RegisterWebhooks(
    const std::string& connection_id, absl::Duration wait) {
  Conn* c = Find(connection_id);
  if (c == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown connection \"", connection_id, "\""));
  }
  if (c->client == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("connection \"", connection_id, "\" has no FreshBooks OAuth configuration"));
  }
  const std::string& uri = c->config.freshbooks.webhook_url;
  if (uri.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "connection \"", connection_id,
        "\": set freshbooks.webhook_url (the public URL of ingress's /webhooks/freshbooks/",
        connection_id, ")"));
  }
  std::optional<FreshBooksIdentity> identity = Identity(connection_id);
  if (!identity.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "connection \"", connection_id,
        "\" is not authorized yet; run `mlc authorize --connection ", connection_id, "` first"));
  }
  const std::string base =
      absl::StrCat("/events/account/", identity->account_id, "/events/callbacks");

  // What exists already (for this URI).
  struct Existing {
    std::string id;
    bool verified = false;
  };
  std::map<std::string, Existing> existing;  // by event
  for (int page = 1;; ++page) {
    MLC_ASSIGN_OR_RETURN(
        FreshBooksResponse r,
        c->client->Call("GET", absl::StrCat(base, "?page=", page, "&per_page=100")));
    const nlohmann::json* list = JsonAt(r.body, "response.result.callbacks");
    if (list == nullptr || !list->is_array() || list->empty()) break;
    for (const nlohmann::json& cb : *list) {
      if (JsonText(JsonAt(cb, "uri")) != uri) continue;
      const nlohmann::json* v = JsonAt(cb, "verified");
      existing[JsonText(JsonAt(cb, "event"))] = Existing{
          JsonText(JsonAt(cb, "callbackid")), v != nullptr && v->is_boolean() && v->get<bool>()};
    }
    int64_t pages = 1;
    const nlohmann::json* pg = JsonAt(r.body, "response.result.pages");
    if (pg != nullptr && pg->is_number_integer()) pages = pg->get<int64_t>();
    if (page >= pages) break;
  }

  std::vector<CallbackStatus> out;
  for (const std::string& event : CallbackEvents(c->config.freshbooks)) {
    CallbackStatus st;
    st.event = event;
    st.uri = uri;
    auto it = existing.find(event);
    bool have_key = false;
    if (it != existing.end()) {
      MLC_ASSIGN_OR_RETURN(std::optional<std::string> v,
                           store_->GetSecret(Prefix(connection_id) + "verifier/" + it->second.id));
      have_key = v.has_value();
    }
    if (it != existing.end() && it->second.verified && !have_key) {
      // Verified, but its key is not here (a new data_dir): without the key its
      // deliveries cannot be checked, so replace the callback.
      MLC_RETURN_IF_ERROR(
          c->client->Call("DELETE", absl::StrCat(base, "/", it->second.id)).status());
      log::Warn("freshbooks: replaced a verified callback whose signing key this writer lacks",
                {{"connection", connection_id}, {"event", event}, {"callback", it->second.id}});
      existing.erase(it);
      it = existing.end();
    }
    if (it == existing.end()) {
      nlohmann::json body = {{"callback", {{"event", event}, {"uri", uri}}}};
      MLC_ASSIGN_OR_RETURN(FreshBooksResponse r, c->client->Call("POST", base, body));
      st.callback_id = JsonText(JsonAt(r.body, "response.result.callback.callbackid"));
      if (st.callback_id.empty()) {
        return absl::UnavailableError(
            "FreshBooks answered the callback registration without a callbackid");
      }
      st.status = "created";
      log::Info("freshbooks: callback registered",
                {{"connection", connection_id}, {"event", event}, {"callback", st.callback_id}});
    } else {
      st.callback_id = it->second.id;
      if (it->second.verified) {
        st.status = "verified";
      } else if (keys_->PendingVerifier(connection_id, st.callback_id).has_value()) {
        st.status = "pending";
        OnHandshake(connection_id, st.callback_id);
      } else {
        // The handshake was lost (e.g. the writer restarted before verifying):
        // ask FreshBooks to send it again.
        nlohmann::json body = {{"callback", {{"resend", true}}}};
        MLC_RETURN_IF_ERROR(
            c->client->Call("PUT", absl::StrCat(base, "/", st.callback_id), body).status());
        st.status = "pending";
      }
    }
    out.push_back(std::move(st));
  }

  // Wait for the handshakes to be accepted.
  const absl::Time deadline = absl::Now() + wait;
  while (true) {
    bool all = true;
    {
      absl::MutexLock lock(&mu_);
      for (CallbackStatus& st : out) {
        if (st.status == "verified") continue;
        if (verified_.count({connection_id, st.callback_id}) > 0) {
          st.status = "verified";
        } else {
          all = false;
        }
      }
    }
    if (all || absl::Now() >= deadline) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  return out;
}

void FreshBooksConnections::OnHandshake(const std::string& connection_id,
                                        const std::string& callback_id) {
  absl::MutexLock lock(&mu_);
  to_verify_.emplace_back(connection_id, callback_id);
}

void FreshBooksConnections::VerifierLoop() {
  while (true) {
    std::pair<std::string, std::string> next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stopping_ || !to_verify_.empty();
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stopping_) return;
      if (to_verify_.empty()) continue;
      next = to_verify_.front();
      to_verify_.pop_front();
    }
    absl::Status s;
    for (int attempt = 0; attempt < 5; ++attempt) {
      s = Verify(next.first, next.second);
      if (s.ok() || !IsTransient(s)) break;
      absl::MutexLock lock(&mu_);
      auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stop), absl::Seconds(1 << attempt))) return;
    }
    handshakes_->With({next.first, s.ok() ? "verified" : "failed"})->Inc();
    if (!s.ok()) {
      log::Error(
          "freshbooks: webhook handshake could not be verified; run `mlc register-webhooks` "
          "to ask FreshBooks for a new one",
          {{"connection", next.first}, {"callback", next.second}, {"error", s.ToString()}});
    }
  }
}

absl::Status FreshBooksConnections::Verify(const std::string& connection_id,
                                           const std::string& callback_id) {
  Conn* c = Find(connection_id);
  if (c == nullptr || c->client == nullptr) {
    return absl::FailedPreconditionError("connection has no FreshBooks OAuth configuration");
  }
  std::optional<FreshBooksIdentity> identity = Identity(connection_id);
  if (!identity.has_value()) {
    return absl::FailedPreconditionError("connection is not authorized yet");
  }
  std::optional<std::string> verifier = keys_->PendingVerifier(connection_id, callback_id);
  if (!verifier.has_value()) return absl::NotFoundError("no pending handshake");
  nlohmann::json body = {{"callback", {{"verifier", *verifier}}}};
  MLC_RETURN_IF_ERROR(c->client
                          ->Call("PUT",
                                 absl::StrCat("/events/account/", identity->account_id,
                                              "/events/callbacks/", callback_id),
                                 body)
                          .status());
  // FreshBooks accepted it: from now on it signs this callback's deliveries.
  MLC_RETURN_IF_ERROR(
      store_->PutSecret(absl::StrCat(Prefix(connection_id), "verifier/", callback_id), *verifier));
  keys_->AddKey(connection_id, {absl::StrCat("callback:", callback_id), *verifier});
  keys_->ForgetHandshake(connection_id, callback_id);
  {
    absl::MutexLock lock(&mu_);
    verified_[{connection_id, callback_id}] = true;
  }
  log::Info("freshbooks: webhook verified; deliveries signed with its key are accepted",
            {{"connection", connection_id}, {"callback", callback_id}});
  return absl::OkStatus();
}

}  // namespace mlc::writer
