// ConnectionChecker: the Admin RPC CheckConnection's logic (DESIGN.md §3.4) -
// checks one connection end to end with its stored credentials and reports,
// step by step, what works and, for what does not, a concrete fix that names
// the config key to change or the command to run.
//
// Steps, in order (system / name):
//   writer      configuration          the config keys the connection's features need
//   writer      signing keys           how many keys verify its webhooks (warning if none)
//   freshbooks  oauth                  skipped when freshbooks.client_id is not set; else
//   freshbooks  authorization          an identity is stored (`mlc authorize`)
//   freshbooks  re-authorization       the connection is not marked "needs re-authorization"
//   freshbooks  access token (/users/me)  a real GET /auth/api/v1/users/me through the
//                                      FreshBooksClient (it refreshes on 401; a refresh
//                                      FreshBooks rejects marks needs-reauth: reported)
//   freshbooks  business               /users/me still lists the stored account_id
//   freshbooks  scopes                 the granted scope string covers every entity the
//                                      writer syncs and hydrates (EntitySpec::read_scope)
//   databricks  oauth token            the service principal's M2M token is minted
//   databricks  warehouse              SELECT 1 on databricks.warehouse_id (a warehouse that
//                                      had to start is ok, with a note)
//   databricks  catalog <c>            exists; USE_CATALOG (Unity Catalog effective
//                                      permissions of the principal = client_id, or owner)
//   databricks  schema <c>.<s>         exists; USE_SCHEMA, CREATE_TABLE, SELECT, MODIFY
//   databricks  table <t>              freshbooks_events always, the entity tables when
//                                      FreshBooks OAuth is configured: missing (warning,
//                                      or failed without CREATE_TABLE), columns to add
//                                      (warning), type conflicts (failed), or ok
//   sqlite      lakehouse              <data_dir>/lakehouse.db opens (read-only)
//   sqlite      table <t>              every table present with every column
// A step that cannot run because an earlier one failed is "skipped" with the
// reason. CheckReport::ok is false iff a step failed; warnings do not count.
//
// Secrets: no step's detail or fix carries a token or secret. Errors of the
// clients used are secret-free by contract, and the report is scrubbed of every
// secret in the connection's config on top of that (defence in depth).
//
// The checker reads and never writes, except what the clients themselves do
// (a FreshBooks refresh stores the rotated tokens; Databricks tokens are cached).
// The warehouse step uses a StatementClient of its own built on the connection's
// token source, so that a stopped warehouse costs at most `warehouse_timeout`
// instead of the writer's 15-minute statement timeout.
//
// Thread-safe: Check() keeps no state between calls and may run concurrently;
// the dependencies (not owned) must outlive the checker.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "mlconnector/v1/admin.pb.h"
#include "writer/databricks_token.h"
#include "writer/freshbooks_connections.h"
#include "writer/freshbooks_entities.h"
#include "writer/signing_keys.h"
#include "writer/table_spec.h"

namespace mlc::writer {

struct CheckStepResult {
  std::string system;  // "writer", "freshbooks", "databricks", "sqlite"
  std::string name;    // "access token (/users/me)", "table freshbooks_invoices", ...
  std::string status;  // "ok", "failed", "warning", "skipped"
  std::string detail;
  std::string fix;  // what to do when not ok ("" when ok)
  absl::Duration took = absl::ZeroDuration();
};

struct CheckReport {
  std::string connection_id;
  bool ok = true;  // no step failed
  std::vector<CheckStepResult> steps;
};

// The per-connection objects the writer owns (writer_app.cc) that the checks
// use. The connection's config comes from FreshBooksConnections::Config.
struct ConnectionCheckTargets {
  std::string sink;  // writer.sink: "sqlite" or "databricks"
  // sink "databricks": the connection's token source and the HTTP client used
  // for the Unity Catalog REST calls and the warehouse statement.
  DatabricksTokenSource* databricks_tokens = nullptr;
  HttpClient* http = nullptr;
  // sink "sqlite": the lakehouse file (<data_dir>/lakehouse.db).
  std::string sqlite_path;
};

struct ConnectionCheckerOptions {
  // The warehouse step's SELECT 1: how long the server holds the submission
  // (0 or 5..50 s) and how long in all before a starting warehouse is reported
  // as a warning.
  absl::Duration warehouse_wait = absl::Seconds(10);
  absl::Duration warehouse_timeout = absl::Seconds(60);
  // A warehouse answering slower than this (or after retries) is reported as
  // "was starting" in the step's detail.
  absl::Duration slow_warehouse = absl::Seconds(5);
  // Waits between the warehouse statement's retries and polls; absl::SleepFor if
  // unset (tests make them instant).
  std::function<void(absl::Duration)> sleep;
  // The tables the writer provisions: the events table always, the entity tables
  // (Databricks) when FreshBooks OAuth is configured (SQLite: always).
  const TableSpec* events_table = &FreshBooksEventsTable();
  std::vector<const TableSpec*> entity_tables = AllEntityTables();
};

class ConnectionChecker {
 public:
  // nullopt for a connection the writer does not run.
  using TargetsFor = std::function<std::optional<ConnectionCheckTargets>(const std::string&)>;

  ConnectionChecker(FreshBooksConnections* freshbooks, SigningKeys* keys, TargetsFor targets_for,
                    const Clock* clock, ConnectionCheckerOptions options = {});

  // Runs every step; NotFound for an unknown connection id. A failing step is a
  // report with ok = false, never an error.
  absl::StatusOr<CheckReport> Check(const std::string& connection_id);

 private:
  class Run;  // one Check's state (connection_check.cc)

  FreshBooksConnections* const freshbooks_;
  SigningKeys* const keys_;
  const TargetsFor targets_for_;
  const Clock* const clock_;
  const ConnectionCheckerOptions options_;
};

// The report as the Admin API answers it (admin.proto CheckConnectionResponse).
mlconnector::v1::CheckConnectionResponse ToProto(const CheckReport& report);

}  // namespace mlc::writer
