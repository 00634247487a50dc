// A fake FreshBooks for tests and the demo: a real HTTP server on 127.0.0.1
// (port 0 by default) that honours the contract of FRESHBOOKS.md - OAuth, the
// identity endpoint, every REST resource ml-connector reads, webhook callbacks
// with their handshake, and signed webhook deliveries - plus fault knobs.
//
// OAuth (§3). GET /oauth/authorize auto-approves (unless DenyAuthorization) and
// answers 302 to `<redirect_uri>?code=..&state=..`; client_id and redirect_uri
// must equal the Options'. Codes are single-use and live 10 minutes. POST
// /auth/oauth/token takes a JSON or form body: grant_type authorization_code
// (client_id, client_secret, code, redirect_uri) or refresh_token (client_id,
// client_secret, refresh_token). Both grants need the right client_id and
// client_secret (401 invalid_client otherwise), as FreshBooks' SDKs send them
// on every grant. Refresh tokens are single-use and rotate on every refresh; a
// used, unknown or revoked one gets 400 invalid_grant. The granted scope is the
// app's configured scope (Options::scopes / SetScopes), whatever the authorize
// request asked for. Access tokens live Options::access_ttl on Options::clock.
//
// Resources (§4). Routes are the fake's own table, written from FRESHBOOKS.md:
// account-scoped /accounting/account/{account_id}/<group>/<name>[/{id}] in the
// accounting envelope {"response":{"result":{...}}}; ledger accounts under
// /accounting/businesses/{business_uuid}/ledger_accounts/accounts in {"data":..}
// (lists add "meta":{page,pages,per_page,total}); projects, services and time
// entries under .../business/{business_id}/ in their own envelope, as the
// official SDKs read them: a single object is {"project":{...}} and a list is
// {"projects":[...],"meta":{page,pages,per_page,total}}. Their single-object
// paths are FreshBooks' singular ones (/projects/business/{b}/project/{id},
// /comments/business/{b}/service/{id}, /timetracking/.../time_entries/{id}); the
// plural forms (.../projects/{id}, .../services/{id}) are accepted too. Journal
// entry details are list-only. Lists: page (default 1), per_page (default 15,
// silently capped at 100), pages = ceil(total/per_page) but at least 1, a page
// past the end is empty. Filters: search[updated_min]=YYYY-MM-DD keeps objects
// whose last modification (by the fake's clock) falls on that day or later -
// the day taken in US/Eastern for accounting objects, UTC for the rest;
// updated_since (ISO date/time, first 10 chars used) is accepted as a synonym
// on the projects/comments/timetracking paths. By default lists hide soft-deleted
// objects (vis_state 1); search[vis_state]=N lists exactly the objects with
// vis_state N. Invoices carry `lines` only with include[]=lines.
//
// Errors come in the shape FreshBooks uses on each path family (§5): /auth paths
// {"error","error_description"}; accounting {"response":{"errors":[{errno,
// field,message,object,value}]}}; events {"errno","message"}; ledger
// {"errors":{"message","status","details"}}; projects/comments/timetracking
// google.rpc {"code","message","details"}. An unknown or expired token is 401;
// a resource whose scope was not granted is 403 naming the scope (scopes per
// entity: the entity's own user:<x>:read of §3; expense categories need
// user:expenses:read, ledger accounts user:journal_entries:read, services
// user:projects:read; users/me user:profile:read; callbacks need only a valid
// token). A missing object (never created or hard-deleted) is 404, except for
// entities switched to ClassicNotFoundWith200 (by default: client, the example
// of §5), which answer HTTP 200 with {"response":{"errors":[{"errno":1012,...,
// "message":"Client not found."}]}}.
//
// Callbacks (§1) live under /events/account/{account_id}/events/callbacks; the
// response key is `callbackid`. Registering one queues the handshake: after
// Options::handshake_delay the fake POSTs a form with name=callback.verify (the
// real name is unverified), object_id=<callbackid>, verifier=<random>,
// account_id, business_id, identity_id and user_id, in random order, signed
// with the verifier like a delivery. The PUT with that verifier marks it
// verified; a wrong verifier is 400 {"errno":400,"message":..}; {"callback":
// {"resend":true}} queues the handshake again with the same verifier.
// Handshakes ignore the webhook knobs below (drop, duplicate, reorder, pause).
//
// Webhooks. Each store mutation with `notify` queues `<object>.<action>` for
// every verified callback of the primary account whose event is that name or
// its object name (FRESHBOOKS.md §1's object names; expense categories are
// `category`; bill payments, other income, journal entries and ledger accounts
// have none). One background thread POSTs each delivery as a form with name,
// object_id, account_id, business_id, identity_id and user_id in a random order
// per delivery, header X-FreshBooks-Hmac-SHA256 = FreshBooksSignature(verifier,
// fields in sent order). A non-2xx answer or a transport error is retried (the
// same body) with exponential backoff up to webhook_max_attempts, then counted
// failed. Knobs: drop probability and DropNextWebhooks (never sent: reconcile
// must find the change), duplicate probability (a second, independently
// shuffled delivery), a reorder window (each delivery waits a random time in
// [0, window), so deliveries overtake each other), pause/resume.
//
// Several businesses: Options::other_businesses appear in users/me after the
// primary one and their ids are accepted in paths (their resources are empty,
// callbacks can be registered) but the store and webhooks belong to the primary
// business.
//
// Control endpoints (no auth; for the demo and scripts; POSTs need a body, even
// an empty one - `curl -d ''` - or cpp-httplib answers 400):
//   POST /_fake/seed?count=N[&spread_hours=H]  Seed(N, H hours) -> {"created":n}
//   POST /_fake/activity?count=N               Activity(N) -> {"events":[...]}
//   POST /_fake/emit?event=E&object_id=N       EmitWebhook -> {"ok":true}
//   GET  /_fake/stats                          StatsJson()
//   POST /_fake/faults  {knob: value, ...}      ApplyFaults -> {"ok":true} | 400
// (knobs: tests/tools/fake_freshbooks_server.cc).
//
// Time: tokens, codes and objects' timestamps use Options::clock; delays
// (latency, handshake, retry backoff, reorder window) are real time.
//
// Thread safety: everything is thread-safe. Stop() (or the destructor) stops the
// sender thread (deliveries still queued are abandoned, its connections closed)
// and the server, joining both. Not copyable.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace mlc::testing {

class FakeFreshBooks {
 public:
  struct Business {
    int64_t id = 0;             // the numeric business_id
    int64_t membership_id = 0;  // business_memberships[].id (not the business id)
    std::string business_uuid;
    std::string account_id;
    std::string name;
  };

  // Every user:*:read scope of FRESHBOOKS.md §3, and user:profile:read.
  static std::vector<std::string> AllReadScopes();

  struct Options {
    std::string account_id = "6BApk";
    int64_t business_id = 6543;
    int64_t membership_id = 8811;
    std::string business_uuid = "0b6e4f4a-3c1d-4f7e-9a51-6543c0ffee01";
    std::string business_name = "Fake Books Inc.";
    std::vector<Business> other_businesses;
    int64_t identity_id = 1234;
    std::string user_id = "1";
    std::string email = "owner@fakebooks.example";
    std::string client_id = "fake-fb-client-id";
    std::string client_secret = "fake-fb-client-secret";
    std::string redirect_uri = "https://127.0.0.1/oauth/freshbooks/callback";
    absl::Duration access_ttl = absl::Hours(12);
    std::vector<std::string> scopes = AllReadScopes();
    const Clock* clock = nullptr;  // tokens, codes, timestamps; RealClock if null
    uint32_t seed = 1;             // field order, knobs' dice, /_fake/activity
    std::string listen = "127.0.0.1:0";
    // Entities whose missing objects answer the classic HTTP 200 error.
    std::set<std::string> classic_not_found = {"client"};
    absl::Duration handshake_delay = absl::Milliseconds(20);
    int webhook_max_attempts = 4;
    absl::Duration webhook_initial_backoff = absl::Milliseconds(50);
    absl::Duration webhook_timeout = absl::Seconds(10);
  };

  // Which requests a throttle or 5xx fault applies to.
  enum class FaultScope {
    kApi,    // resources, users/me, callbacks (default)
    kToken,  // POST /auth/oauth/token
    kAll,
  };

  struct WebhookStats {
    int64_t sent = 0;        // HTTP attempts made (handshakes and retries included)
    int64_t acked = 0;       // deliveries answered 2xx
    int64_t failed = 0;      // deliveries abandoned after the last attempt
    int64_t dropped = 0;     // deliveries never sent (drop knobs)
    int64_t duplicated = 0;  // extra deliveries added by the duplicate knob
    int64_t handshakes = 0;  // handshakes answered 2xx
    int64_t pending = 0;     // queued or in flight
  };

  // One delivery attempt, as sent.
  struct SentWebhook {
    std::string uri;
    std::string body;
    std::string signature;
    int64_t callback_id = 0;
    bool handshake = false;
    int status = 0;  // HTTP status, 0 for a transport error
  };

  // Implementation details, public only for the .cc's route table: the error
  // shape a path family uses, and one REST resource's route.
  enum class Family { kAuth, kAccounting, kLedger, kProjects, kEvents };
  struct EntityRoute;

  FakeFreshBooks();
  explicit FakeFreshBooks(Options options);
  ~FakeFreshBooks();
  FakeFreshBooks(const FakeFreshBooks&) = delete;
  FakeFreshBooks& operator=(const FakeFreshBooks&) = delete;

  absl::Status Start();
  void Stop();
  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:<port>": api_url and auth_url
  const Options& options() const { return options_; }

  // --- Store --------------------------------------------------------------
  // `entity` is one of SampleEntityNames(); an unknown name is a test bug and
  // aborts. Objects are keyed by their id field (SampleIdField: "id", or
  // vendorid, incomeid, uuid). Create assigns the next id when the object has
  // none (keeping FreshBooks' twin id fields such as invoiceid, and invoice
  // lines' invoiceid, in sync), sets vis_state 0 and the last-modified fields
  // (TouchUpdated, the fake's clock), replaces an object with the same id, and
  // returns the stored object. Mutations of objects that do not exist return
  // false. `notify` queues the webhook (create, update, delete; a soft or hard
  // delete are both "delete").
  nlohmann::json Create(const std::string& entity, nlohmann::json object, bool notify = true);
  bool Update(const std::string& entity, int64_t id,
              const std::function<void(nlohmann::json&)>& mutate, bool notify = true);
  bool SoftDelete(const std::string& entity, int64_t id, bool notify = true);
  bool HardDelete(const std::string& entity, int64_t id, bool notify = true);
  // The stored object (soft-deleted ones included; lines included).
  std::optional<nlohmann::json> Get(const std::string& entity, int64_t id) const;
  // The same by the id as the API shows it (ledger accounts are keyed by uuid).
  bool Update(const std::string& entity, const std::string& id,
              const std::function<void(nlohmann::json&)>& mutate, bool notify = true);
  bool SoftDelete(const std::string& entity, const std::string& id, bool notify = true);
  bool HardDelete(const std::string& entity, const std::string& id, bool notify = true);
  std::optional<nlohmann::json> Get(const std::string& entity, const std::string& id) const;
  // Stored objects (soft-deleted ones included), in creation order.
  std::vector<nlohmann::json> All(const std::string& entity) const;
  size_t Count(const std::string& entity) const;
  // Creates `count` SampleObjects of every entity without webhooks, last
  // modified spread evenly over the `spread` before now. Returns objects created.
  int Seed(int count, absl::Duration spread = absl::ZeroDuration());
  // `count` random user actions with webhooks (new invoices, payments against
  // them, expenses, client edits, a few deletes). Returns the events emitted,
  // e.g. "invoice.create 51".
  std::vector<std::string> Activity(int count);
  // Queues `event_name` (e.g. "invoice.sendByEmail") about `object_id` for the
  // matching verified callbacks, whether or not the object exists.
  void EmitWebhook(const std::string& event_name, int64_t object_id);

  // --- OAuth helpers for tests ----------------------------------------------
  // A valid authorization code, as if a user had approved the app.
  std::string IssueAuthorizationCode();
  // Mints tokens directly: {"access_token",...,"refresh_token",...} like /token.
  nlohmann::json IssueTokens();
  void SetScopes(std::vector<std::string> scopes);  // for tokens minted later
  void DenyAuthorization(bool deny);                // authorize redirects error=access_denied

  // --- Fault knobs ----------------------------------------------------------
  // The next `n` requests in `scope` answer 429 with Retry-After (omitted if < 0).
  void Throttle(int n, int retry_after_seconds = 1, FaultScope scope = FaultScope::kApi);
  // The next `n` requests in `scope` answer `status` (a 5xx).
  void FailNext5xx(int n, int status = 503, FaultScope scope = FaultScope::kApi);
  // Every API request (not control endpoints) waits this long first.
  void SetLatency(absl::Duration latency);
  void ExpireAllAccessTokens();
  // Forgets every refresh token issued so far: each later refresh with one of
  // them gets invalid_grant (a new authorization works again).
  void RevokeRefreshTokens();
  void ClassicNotFoundWith200(const std::string& entity, bool enabled = true);

  // --- Webhook knobs ----------------------------------------------------------
  void SetWebhookDropProbability(double p);
  void DropNextWebhooks(int n);
  void SetWebhookDuplicateProbability(double p);
  void SetWebhookReorderWindow(absl::Duration window);
  void PauseWebhooks();
  void ResumeWebhooks();
  // Waits until no delivery is queued or in flight; false on timeout.
  bool WaitIdle(absl::Duration timeout);

  // --- Observations -------------------------------------------------------------
  // Requests by pattern: "GET invoice", "LIST invoice", "ME", "AUTHORIZE",
  // "TOKEN authorization_code", "TOKEN refresh_token", "CALLBACK create",
  // "CALLBACK verify", "CALLBACK resend", "CALLBACK list", "CALLBACK get",
  // "CALLBACK delete". Counted on arrival, whatever the answer.
  int Requests(const std::string& pattern) const;
  std::map<std::string, int> AllRequests() const;
  int RequestsWithStatus(int status) const;  // answered with `status` (control excluded)
  int TokenRefreshes() const;                // successful refresh grants
  WebhookStats webhook_stats() const;
  std::vector<SentWebhook> SentWebhooks() const;  // the last few thousand attempts
  // Callbacks as the API shows them (plus "verifier" and "account_id").
  std::vector<nlohmann::json> Callbacks() const;
  // The counters /_fake/stats answers.
  nlohmann::json StatsJson() const;
  // Applies a /_fake/faults body; InvalidArgument naming a bad key or value.
  absl::Status ApplyFaults(const nlohmann::json& faults);

 private:
  struct Record {
    nlohmann::json object;
    absl::Time updated;  // last modification, on the fake's clock
    uint64_t seq = 0;    // creation order (list order)
  };
  struct AccessToken {
    absl::Time expires;
    std::set<std::string> scopes;
  };
  struct Code {
    absl::Time expires;
    std::string redirect_uri;
  };
  struct Callback {
    int64_t id = 0;
    std::string account_id;
    std::string event;
    std::string uri;
    std::string verifier;
    bool verified = false;
    absl::Time updated;
  };
  struct Fault {
    int remaining = 0;
    int status = 0;
    int retry_after_seconds = -1;
    FaultScope scope = FaultScope::kApi;
  };
  struct Pending {
    uint64_t seq = 0;
    int64_t callback_id = 0;
    std::string uri;
    std::string verifier;
    std::string body;
    std::string signature;
    bool handshake = false;
    int attempts = 0;
    absl::Time not_before;
  };
  void RegisterRoutes();
  void RouteEntity(const EntityRoute& route);
  // Common prologue of API calls: counts, latency, faults, auth, scope. False if
  // the request was answered.
  bool Admit(const std::string& pattern, Family family, const std::string& scope,
             bool token_endpoint, const httplib::Request& req, httplib::Response& res);
  void HandleAuthorize(const httplib::Request& req, httplib::Response& res);
  void HandleToken(const httplib::Request& req, httplib::Response& res);
  void HandleMe(const httplib::Request& req, httplib::Response& res);
  void HandleGet(const EntityRoute& route, const httplib::Request& req, httplib::Response& res);
  void HandleList(const EntityRoute& route, const httplib::Request& req, httplib::Response& res);
  void HandleCallbacks(const httplib::Request& req, httplib::Response& res);
  void HandleControl(const httplib::Request& req, httplib::Response& res);
  // Whether `scope_id` (account id, uuid or numeric business id) names the
  // primary business (1), another known business (0) or none (-1).
  int KnownScope(Family family, const std::string& scope_id) const;

  nlohmann::json CreateLocked(const std::string& entity, nlohmann::json object, absl::Time now,
                              bool notify) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool UpdateLocked(const std::string& entity, const std::string& id,
                    const std::function<void(nlohmann::json&)>& mutate, bool notify)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool SoftDeleteLocked(const std::string& entity, const std::string& id, bool notify)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void NotifyLocked(const std::string& entity, const std::string& id, const std::string& action)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitLocked(const std::string& event_name, const std::string& object_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void QueueHandshakeLocked(const Callback& callback) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nlohmann::json TokensLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  nlohmann::json CallbackJson(const Callback& callback) const;
  bool IdleLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SenderLoop();
  const Clock* clock() const;

  Options options_;
  httplib::Server server_;
  std::thread thread_;
  std::thread sender_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  absl::CondVar sender_cv_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  // entity -> id as the API shows it -> record
  std::map<std::string, std::map<std::string, Record>> store_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int64_t> next_id_ ABSL_GUARDED_BY(mu_);
  uint64_t next_record_seq_ ABSL_GUARDED_BY(mu_) = 1;
  std::set<std::string> classic_not_found_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> scopes_ ABSL_GUARDED_BY(mu_);
  bool deny_authorization_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, Code> codes_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, AccessToken> access_tokens_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> refresh_tokens_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Callback> callbacks_ ABSL_GUARDED_BY(mu_);
  int64_t next_callback_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<Fault> faults_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  std::map<std::string, int> requests_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> statuses_ ABSL_GUARDED_BY(mu_);
  int token_refreshes_ ABSL_GUARDED_BY(mu_) = 0;

  std::vector<Pending> queue_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;
  double drop_probability_ ABSL_GUARDED_BY(mu_) = 0;
  int drop_next_ ABSL_GUARDED_BY(mu_) = 0;
  double duplicate_probability_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration reorder_window_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  WebhookStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<SentWebhook> sent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mlc::testing
