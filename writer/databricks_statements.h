// A client for Databricks' SQL Statement Execution API 2.0 (DATABRICKS.md §2):
// runs one SQL statement on a SQL warehouse and returns its result, hiding the
// API's asynchrony and its transient failures from the caller.
//
// Execute() posts the statement to /api/2.0/sql/statements with `wait_timeout`
// and `on_wait_timeout: CONTINUE`; a statement still PENDING/RUNNING when the
// server stops waiting is polled (GET .../{statement_id}, short growing backoff)
// until it is terminal. A statement whose id is known is never submitted again
// while it may still run.
//
// What is retried (bounded by StatementClientOptions):
//  - HTTP 429 and 503 on any call: backoff, at least the integer Retry-After.
//  - Network errors: polls always (a GET is safe); a submission only if
//    Statement::idempotent, or if the request provably never reached the server
//    (connect failures) — resending a write whose outcome is unknown can apply it
//    twice.
//  - A FAILED statement classified kRetry (Delta write conflict, SQLSTATE 2D521):
//    nothing was committed, so it is submitted again after a backoff.
//  - HTTP 401, or 403 whose message says the token is invalid/expired: the token is
//    invalidated, a new one minted and the call retried once.
//
// Returned Status (the writer's Sink contract: transient codes are retried later,
// FailedPrecondition / InvalidArgument dead-letter the rows):
//   SUCCEEDED                                   -> OK, StatementResult
//   FAILED, kRetry, retries exhausted           -> Aborted
//   FAILED, kReprovision (table/schema missing) -> NotFound
//   FAILED, kEvolve (column missing)            -> FailedPrecondition, message
//                                                  prefix "databricks: missing column: "
//   FAILED, kPermanent (anything else)          -> FailedPrecondition, message
//                                                  prefix "databricks: statement failed: "
//   429 retries exhausted                       -> ResourceExhausted
//   503 / network retries exhausted             -> Unavailable (DeadlineExceeded for
//                                                  timeouts); also an unknown outcome
//                                                  of a non-idempotent submission
//   CANCELED/CLOSED by someone else             -> Aborted
//   canceled by CancelAll() (shutdown)          -> Cancelled
//   still running after `statement_timeout`     -> DeadlineExceeded (and canceled)
//   other request-level 4xx (bad parameter, no such warehouse, permission)
//                                               -> InvalidArgument / FailedPrecondition
//                                                  / PermissionDenied
//   token rejected again after a re-mint        -> Unauthenticated
//   token errors                                -> as DatabricksTokenSource returns them
//   an answer that is not the API's JSON        -> Internal
// FAILED statements also carry payloads: StatementErrorClassOf() and
// StatementSqlStateOf() read them back, so callers need not parse messages.
// Messages include the statement_id and Databricks' own message, never a token
// or parameter values.
//
// Thread-safe: Execute may run concurrently from many threads. CancelAll() is for
// shutdown: it cancels every statement whose id is known, wakes every Execute
// that is waiting (they return Cancelled) and makes later Execute calls fail
// fast. A submission still in flight has no id yet; it returns within
// `wait_timeout` and is then canceled. The HttpClient, token source and Clock are
// not owned and must outlive the client.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "writer/databricks_requests.h"
#include "writer/databricks_token.h"

namespace mlc::writer {

// A named parameter marker `:name` and its value.
struct StatementParameter {
  std::string name;
  std::optional<std::string> value;  // nullopt: SQL NULL (the value is omitted)
  std::string type = "STRING";       // STRING, INT, BIGINT, DOUBLE, DECIMAL(p,s), ...
};

struct Statement {
  std::string sql;                             // exactly one statement, at most 16 MiB
  std::vector<StatementParameter> parameters;  // at most 256
  std::string catalog;  // default catalog/schema for unqualified names; empty: omitted
  std::string schema;
  // Applying it twice is harmless (a keyed MERGE, CREATE ... IF NOT EXISTS): a
  // submission whose outcome is unknown may then be resent.
  bool idempotent = false;
};

struct StatementResult {
  std::string statement_id;
  std::string state;                 // "SUCCEEDED"
  std::vector<std::string> columns;  // manifest.schema column names, in order
  std::vector<std::vector<std::optional<std::string>>> data_array;  // NULL as nullopt
  // For MERGE / INSERT / UPDATE / DELETE, from the result's single row.
  std::optional<int64_t> num_affected_rows;
  std::optional<int64_t> num_inserted_rows;
  std::optional<int64_t> num_updated_rows;
  std::optional<int64_t> num_deleted_rows;
};

// What to do about a FAILED statement.
enum class StatementErrorClass {
  kRetry,        // write conflict (2D521, [DELTA_CONCURRENT_*], ...): run it again
  kReprovision,  // [TABLE_OR_VIEW_NOT_FOUND] (42P01), [SCHEMA_NOT_FOUND]: create, retry
  kEvolve,       // [UNRESOLVED_COLUMN] (42703): ALTER TABLE ADD COLUMNS, retry
  kPermanent,    // permissions, type conflicts, parse errors, anything else
};

// Classifies a FAILED statement by its SQLSTATE and its message's bracketed
// error class ("[DELTA_CONCURRENT_APPEND] Files were added ..."). Pure.
//   kRetry:       SQLSTATE 2D521 or 40001; classes DELTA_CONCURRENT_*,
//                 DELTA_METADATA_CHANGED, DELTA_PROTOCOL_CHANGED
//   kReprovision: SQLSTATE 42P01; classes TABLE_OR_VIEW_NOT_FOUND,
//                 DELTA_TABLE_NOT_FOUND, SCHEMA_NOT_FOUND
//   kEvolve:      SQLSTATE 42703; classes UNRESOLVED_COLUMN,
//                 DELTA_MERGE_UNRESOLVED_EXPRESSION
//   kPermanent:   everything else, e.g. INSUFFICIENT_PERMISSIONS (42501),
//                 DELTA_FAILED_TO_MERGE_FIELDS, PARSE_SYNTAX_ERROR (42601),
//                 CATALOG_NOT_FOUND (a catalog is not ours to create),
//                 DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE (a bug)
StatementErrorClass ClassifyStatementError(std::string_view sql_state, std::string_view message);

// The bracketed error class at (or near) the start of a message, without its
// subclass: "[UNRESOLVED_COLUMN.WITH_SUGGESTION] ..." -> "UNRESOLVED_COLUMN"; "" if none.
std::string ErrorClassOf(std::string_view message);

// "retry", "reprovision", "evolve", "permanent".
std::string_view StatementErrorClassName(StatementErrorClass c);

// The classification and SQLSTATE an Execute error carries, if it came from a
// FAILED statement.
std::optional<StatementErrorClass> StatementErrorClassOf(const absl::Status& status);
std::string StatementSqlStateOf(const absl::Status& status);

// True for a 401/403 answer that means "this token is no longer accepted".
bool IsInvalidTokenAnswer(int http_status, std::string_view body);

struct StatementClientOptions {
  std::string host;  // workspace URL, e.g. "https://adb-123.4.azuredatabricks.net"
  std::string warehouse_id;

  // How long the server holds the submission before answering PENDING/RUNNING:
  // 0 or 5 s .. 50 s.
  absl::Duration wait_timeout = absl::Seconds(30);
  // Per HTTP call, on top of wait_timeout for submissions.
  absl::Duration request_timeout = absl::Seconds(30);
  // Polling a running statement: doubles from poll_initial up to poll_max.
  absl::Duration poll_initial = absl::Milliseconds(100);
  absl::Duration poll_max = absl::Seconds(3);
  // Give up on (and cancel) a statement still running after this long.
  absl::Duration statement_timeout = absl::Minutes(15);

  // Retries of HTTP 429 / 503 / network errors, per call (submission or poll).
  int max_http_attempts = 8;
  // Submissions of a statement that FAILED with a write conflict.
  int max_conflict_attempts = 6;
  BackoffPolicy backoff{absl::Milliseconds(250), absl::Seconds(30)};
  // A server's Retry-After is honoured up to this much.
  absl::Duration max_retry_after = absl::Minutes(2);

  // Waits between retries and polls; returns early (false) once CancelAll() was
  // called. If set, called instead of waiting (tests record the delays).
  std::function<void(absl::Duration)> sleep;
};

// Optional metrics (null / default: not recorded).
struct StatementMetrics {
  Histogram* latency = nullptr;  // seconds, per Execute that reached a terminal state
  Counter* retries = nullptr;    // every retried call or resubmission
  Counter* failed = nullptr;     // Execute calls that returned an error
  // Every HTTP call (submit, poll, result chunk, cancel), each retry included, by
  // status. Token requests are counted by the token source.
  DatabricksRequestCounter requests;
};

class StatementClient {
 public:
  StatementClient(StatementClientOptions options, HttpClient* http, DatabricksTokenSource* tokens,
                  const Clock* clock, StatementMetrics metrics = {});
  StatementClient(const StatementClient&) = delete;
  StatementClient& operator=(const StatementClient&) = delete;

  absl::StatusOr<StatementResult> Execute(const Statement& statement);

  // Asks Databricks to cancel `statement_id` (best effort; a finished statement
  // stays finished).
  absl::Status Cancel(const std::string& statement_id);

  // Shutdown: see the file comment. Idempotent.
  void CancelAll();

  // Ids of statements submitted and not yet terminal (tests, diagnostics).
  std::vector<std::string> InFlight() const;

 private:
  struct Answer;  // one parsed HTTP answer of the API
  enum class Verb { kSubmit, kPoll, kCancel, kChunk };

  // One API call with the retries every call gets (429/503, network errors if
  // `resend_ok`, one token re-mint). Never retries once CancelAll() ran, except
  // for kCancel.
  absl::StatusOr<Answer> Call(Verb verb, const std::string& method, const std::string& url,
                              const std::string& body, absl::Duration timeout, bool resend_ok,
                              const std::string& statement_id);
  // Runs one submission to a terminal state (polling as needed).
  absl::StatusOr<Answer> SubmitAndWait(const std::string& body, const Statement& statement,
                                       absl::Time deadline);
  absl::Status FetchRemainingChunks(const std::string& statement_id, std::string next_link,
                                    StatementResult* result);
  // Waits `d` unless CancelAll() runs; false if it did.
  bool Wait(absl::Duration d);
  bool shutting_down() const;
  // Registers a running statement for CancelAll(); false once shutting down.
  bool Track(const std::string& id);
  void Untrack(const std::string& id);
  std::string BuildBody(const Statement& statement) const;

  const StatementClientOptions options_;
  const std::string base_url_;  // host without a trailing slash
  HttpClient* const http_;
  DatabricksTokenSource* const tokens_;
  const Clock* const clock_;
  const StatementMetrics metrics_;

  mutable absl::Mutex mu_;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::string> in_flight_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mlc::writer
