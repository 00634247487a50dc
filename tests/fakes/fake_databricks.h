// A fake Databricks workspace for tests: a real HTTP server on 127.0.0.1 (port 0)
// that speaks the parts of the REST API ml-connector uses, in Databricks' exact
// JSON shapes (DATABRICKS.md §1-§2):
//   POST /oidc/v1/token                           OAuth M2M client credentials
//   POST /api/2.0/sql/statements                  execute (wait_timeout, CONTINUE)
//   GET  /api/2.0/sql/statements/{id}             status / result
//   GET  /api/2.0/sql/statements/{id}/result/chunks/{n}
//   POST /api/2.0/sql/statements/{id}/cancel
//   GET  /api/2.1/unity-catalog/tables/{full_name}  (TableProvider)
//   GET  /api/2.1/unity-catalog/catalogs/{name}, /schemas/{catalog.schema}
//   GET  /api/2.1/unity-catalog/effective-permissions/{catalog|schema|table}/{full_name}
//        [?principal=P]
//
// Unity Catalog grants (DATABRICKS.md §3): effective permissions answer
// {"privilege_assignments":[{"principal","privileges":[{"privilege",
// "inherited_from_type","inherited_from_name"}]}]} - a securable's own grants plus
// those its catalog (and schema, for a table) convey, the inherited ones naming
// their source. Only principals holding something are listed. An unknown
// catalog, schema or table is 404 CATALOG_DOES_NOT_EXIST / SCHEMA_DOES_NOT_EXIST /
// TABLE_DOES_NOT_EXIST. Grants are what SetGrants set, except that the service
// principal (Options::client_id) holds ALL_PRIVILEGES on every catalog until
// SetGrants is called for it, so tests that do not care need no set-up. Grants
// are reported, not enforced: statements run whatever the grants.
//
// SQL itself is not interpreted here: each statement is handed to a pluggable
// Executor (a lambda in unit tests, the fake SQL engine elsewhere; a
// ContextExecutor also gets the request's default catalog and schema). Executions
// are serialised, so an Executor needs no locking of its own. An Executor error
// becomes a FAILED statement (HTTP 200) whose status.error.message is the Status
// message and whose sql_state is the kSqlStatePayload payload if set, or else
// derived from the message's bracketed error class ("[TABLE_OR_VIEW_NOT_FOUND] ..."
// -> 42P01, see SqlStateForErrorClass).
//
// A statement runs for the configured latency (real time) and is executed when it
// first becomes due — inside the submission if latency <= wait_timeout, else at
// the first poll after it is due — so "applied" and "answered SUCCEEDED" happen
// in the same request. A canceled statement is never executed.
//
// API calls need a Bearer token minted by /oidc/v1/token and not yet expired
// (Options::clock decides; pass the test's FakeClock to expire tokens by
// advancing it). An expired or unknown token gets 403
// {"error_code":403,"message":"Invalid access token. ..."}; no credentials, 401.
//
// Fault knobs (thread-safe, take effect on the next request): throttling (429
// with Retry-After), 503 TEMPORARILY_UNAVAILABLE, forced 403 invalid-token,
// statement latency, write conflicts (FAILED, [DELTA_CONCURRENT_APPEND], 2D521)
// and dropping the connection after a statement was applied. The drop is done by
// shutting the server side of the TCP connection down from inside the handler
// (the handler finds its socket by the connection's local/peer ports), so the
// client reads EOF before any byte of an answer — exactly what a network failure
// after sending looks like. SIGPIPE is ignored process-wide once Start() runs.
//
// Everything is thread-safe. Stop() (or the destructor) wakes handlers that are
// waiting and joins the server thread.
#pragma once

#include <httplib.h>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace mlc::testing {

class FakeDatabricks {
 public:
  // A bound parameter as the server received it.
  struct Param {
    std::string name;
    std::optional<std::string> value;  // nullopt: NULL (value omitted)
    std::string type;                  // as sent, "STRING" if omitted
  };
  struct Column {
    std::string name;
    std::string type_text = "STRING";  // e.g. "BIGINT", "DECIMAL(18,2)"
  };
  struct ExecResult {
    std::vector<Column> columns;
    std::vector<std::vector<std::optional<std::string>>> rows;
    // What a MERGE answers: one row of num_affected/updated/deleted/inserted_rows.
    static ExecResult MergeCounts(int64_t affected, int64_t updated, int64_t deleted,
                                  int64_t inserted);
  };
  using Executor = std::function<absl::StatusOr<ExecResult>(const std::string& sql,
                                                            const std::vector<Param>& params)>;
  // The request's default `catalog` / `schema` ("" if absent), for executors that
  // resolve unqualified names.
  struct Context {
    std::string catalog;
    std::string schema;
  };
  using ContextExecutor = std::function<absl::StatusOr<ExecResult>(
      const std::string& sql, const std::vector<Param>& params, const Context& context)>;

  // Payload type URL for an Executor error's SQLSTATE (value: e.g. "42P01").
  static constexpr char kSqlStatePayload[] = "type.mlc/fake_databricks.sql_state";
  // The SQLSTATE Databricks reports for a bracketed error class ("" if unknown).
  static std::string SqlStateForErrorClass(const std::string& error_class);

  enum class Endpoint {
    kToken,
    kExecute,
    kGetStatement,
    kGetChunk,
    kCancel,
    kTable,
    kCatalog,      // GET /api/2.1/unity-catalog/catalogs/{name}
    kSchema,       // GET /api/2.1/unity-catalog/schemas/{full_name}
    kPermissions,  // GET /api/2.1/unity-catalog/effective-permissions/...
  };
  // Which requests a fault applies to.
  enum class Scope { kApi, kToken, kExecute, kGetStatement, kCancel, kAll };

  struct Options {
    std::string client_id = "fake-client-id";
    std::string client_secret = "fake-client-secret";
    std::string warehouse_id = "fakewarehouse01";
    absl::Duration token_ttl = absl::Hours(1);
    const Clock* clock = nullptr;  // token minting and expiry; RealClock if null
  };

  FakeDatabricks();
  explicit FakeDatabricks(Options options);
  ~FakeDatabricks();
  FakeDatabricks(const FakeDatabricks&) = delete;
  FakeDatabricks& operator=(const FakeDatabricks&) = delete;

  absl::Status Start();
  void Stop();
  int port() const { return port_; }
  std::string url() const;  // "http://127.0.0.1:<port>", the workspace host
  const Options& options() const { return options_; }

  // Unity Catalog `GET /api/2.1/unity-catalog/tables/{full_name}`: the provider
  // returns the table's JSON (Databricks' shape) or nullopt for a 404. Without a
  // provider every table is missing.
  using TableProvider = std::function<std::optional<std::string>(const std::string& full_name)>;
  void SetTableProvider(TableProvider provider);

  // Unity Catalog catalogs and schemas: whether `full_name` ("finance", or
  // "finance.freshbooks") of `type` ("catalog" or "schema") exists. Without a
  // provider every catalog and schema exists. Thread-safe; called without the
  // fake's lock held.
  using SecurableProvider =
      std::function<bool(const std::string& type, const std::string& full_name)>;
  void SetSecurableProvider(SecurableProvider provider);
  // The `owner` the catalog and schema GETs report (kDefaultOwner unless set).
  static constexpr char kDefaultOwner[] = "fake-metastore-admins";
  void SetOwner(const std::string& type, const std::string& full_name, const std::string& owner);
  // Replaces what `principal` holds on one securable (`type` "catalog", "schema" or
  // "table"; names are case-insensitive) with `privileges`, Unity Catalog names
  // such as USE_CATALOG, CREATE_SCHEMA, USE_SCHEMA, CREATE_TABLE, SELECT, MODIFY,
  // ALL_PRIVILEGES (an empty list revokes everything there). From the first call
  // for a principal on, it holds exactly what was granted to it (see the file
  // comment for the service principal's default).
  void SetGrants(const std::string& principal, const std::string& type,
                 const std::string& full_name, std::vector<std::string> privileges);

  // By default every statement succeeds with no rows.
  void SetExecutor(Executor executor);
  // The same, also given the request's catalog and schema.
  void SetContextExecutor(ContextExecutor executor);

  // --- Fault knobs -------------------------------------------------------
  void SetTokenTtl(absl::Duration ttl);
  // The next `n` requests in `scope` answer 429 with `Retry-After: <seconds>`
  // (no header if retry_after_seconds < 0).
  void ThrottleNext(int n, int retry_after_seconds = 1, Scope scope = Scope::kApi);
  // The next `n` requests in `scope` answer 503 TEMPORARILY_UNAVAILABLE.
  void UnavailableNext(int n, int retry_after_seconds = -1, Scope scope = Scope::kApi);
  // The next `n` API requests answer 403 "Invalid access token" whatever token.
  void RejectTokensNext(int n);
  // Forgets every minted token (as if all expired or were revoked).
  void RevokeAllTokens();
  // Statements take this long (real time) before they are executed.
  void SetStatementLatency(absl::Duration latency);
  // The next `n` statements end FAILED with [DELTA_CONCURRENT_APPEND] (2D521),
  // without being executed.
  void ConflictNext(int n);
  // The next `n` statements are executed, and then the connection of the request
  // that executed them is dropped without an answer.
  void DropConnectionAfterNextStatements(int n = 1);
  // A mix: each statement submission, with probability `rate`, meets one fault
  // chosen at random (429, 503, an invalid-token 403, a write conflict, or a
  // connection dropped after the statement was applied). Deterministic per seed.
  void SetFaultRate(double rate, uint32_t seed = 1);
  // Results with more rows than this are split into chunks (0: never).
  void SetChunkRows(size_t rows);

  // --- Observations ------------------------------------------------------
  int Requests(Endpoint endpoint) const;
  int TokensMinted() const;
  int StatementsExecuted() const;  // Executor calls
  int StatementsCanceled() const;  // cancels that stopped a statement
  // Bodies of every POST /api/2.0/sql/statements, in order (JSON text).
  std::vector<std::string> ExecuteRequestBodies() const;
  // The state of a statement ("RUNNING" while executing), if known.
  std::optional<std::string> StatementState(const std::string& statement_id) const;
  // Ids of statements that are PENDING or RUNNING.
  std::vector<std::string> RunningStatements() const;

 private:
  struct Fault {
    int remaining = 0;
    int retry_after_seconds = -1;
    Scope scope = Scope::kApi;
  };
  struct Record {
    std::string id;
    std::string sql;
    std::vector<Param> params;
    Context context;
    absl::Time due;     // real time
    std::string state;  // PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED
    bool executing = false;
    bool conflict = false;
    bool drop_after_apply = false;
    ExecResult result;
    std::string sql_state;
    std::string error_message;
  };

  void Route();
  // Common prologue for API calls: counts, faults, auth. False if answered.
  bool Admit(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  bool InjectFault(Endpoint endpoint, httplib::Response& res) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void HandleToken(const httplib::Request& req, httplib::Response& res);
  void HandleExecute(const httplib::Request& req, httplib::Response& res);
  void HandleGet(const httplib::Request& req, httplib::Response& res);
  void HandleChunk(const httplib::Request& req, httplib::Response& res);
  void HandleCancel(const httplib::Request& req, httplib::Response& res);
  void HandleSecurable(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void HandlePermissions(const httplib::Request& req, httplib::Response& res);
  // Answers 404 (and returns false) unless the securable and its parents exist.
  bool SecurableExists(const std::string& type, const std::string& full_name,
                       httplib::Response& res);
  // Executes `id` if it is due and not yet executed; true if this call executed it.
  bool RunIfDue(const std::string& id) ABSL_LOCKS_EXCLUDED(mu_);
  std::string StatementJson(const Record& r) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string ChunkJson(const Record& r, size_t chunk) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Shuts down the server side of `req`'s TCP connection.
  static void DropConnection(const httplib::Request& req);

  const Clock* clock() const;

  Options options_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;

  mutable absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  ContextExecutor executor_ ABSL_GUARDED_BY(mu_);
  absl::Duration token_ttl_ ABSL_GUARDED_BY(mu_);
  absl::Duration latency_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  size_t chunk_rows_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Fault> throttle_ ABSL_GUARDED_BY(mu_);
  std::vector<Fault> unavailable_ ABSL_GUARDED_BY(mu_);
  int reject_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  int conflicts_ ABSL_GUARDED_BY(mu_) = 0;
  int drops_ ABSL_GUARDED_BY(mu_) = 0;
  double fault_rate_ ABSL_GUARDED_BY(mu_) = 0;
  std::mt19937 fault_rng_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::Time> tokens_ ABSL_GUARDED_BY(mu_);  // -> expiry
  std::map<std::string, Record> statements_ ABSL_GUARDED_BY(mu_);
  std::map<Endpoint, int> requests_ ABSL_GUARDED_BY(mu_);
  int tokens_minted_ ABSL_GUARDED_BY(mu_) = 0;
  int executed_ ABSL_GUARDED_BY(mu_) = 0;
  int canceled_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::string> execute_bodies_ ABSL_GUARDED_BY(mu_);

  SecurableProvider securable_provider_ ABSL_GUARDED_BY(mu_);
  // (type, lowercase full name) -> owner
  std::map<std::pair<std::string, std::string>, std::string> owners_ ABSL_GUARDED_BY(mu_);
  // principal -> (type, lowercase full name) -> privileges
  std::map<std::string, std::map<std::pair<std::string, std::string>, std::vector<std::string>>>
      grants_ ABSL_GUARDED_BY(mu_);

  absl::Mutex exec_mu_;           // serialises Executor calls
  TableProvider table_provider_;  // set before Start()
};

}  // namespace mlc::testing
