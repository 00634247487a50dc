// DatabricksSink: one connection's Unity Catalog schema as a Sink. It provisions
// tables from their TableSpecs (CREATE SCHEMA / CREATE TABLE IF NOT EXISTS, then
// ALTER TABLE ADD COLUMNS for columns the table lacks, never dropping or retyping),
// and writes each batch with one MERGE per at most BatchLimits rows/bytes through
// the SQL Statement Execution API (StatementClient handles tokens, polling,
// throttling, conflicts and dropped connections).
//
// Error contract (writer/sink.h): Unavailable/Aborted/DeadlineExceeded are
// transient; FailedPrecondition is permanent for that table's rows - a column
// whose type conflicts with the mapping, missing privileges, SQL the warehouse
// rejects - with a message an operator can act on. A table reported missing or
// lacking a column while writing is re-provisioned and the write retried once.
//
// Thread-safe: DDL is serialised per table; writes to different tables run
// concurrently.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "writer/databricks_sql.h"
#include "writer/databricks_statements.h"
#include "writer/databricks_token.h"
#include "writer/sink.h"

namespace mlc::writer {

class DatabricksSink final : public Sink {
 public:
  DatabricksSink(std::string connection_id, DatabricksConfig config, HttpClient* http,
                 DatabricksTokenSource* tokens, StatementClient* statements,
                 BatchLimits limits = {});

  std::string Name() const override { return "databricks"; }
  // The startup check, logged step by step with the fix for a failing step:
  // token -> warehouse answers (SELECT 1) -> schema usable (CREATE SCHEMA IF NOT
  // EXISTS). Returns the first failure.
  absl::Status Start() override;
  absl::Status EnsureTable(const TableSpec& table) override;
  absl::Status Upsert(const TableSpec& table, const std::vector<Row>& rows) override;

  // Forgets what was provisioned (tests; after an operator dropped a table).
  void ForgetProvisioning();

 private:
  absl::Status EnsureTableOnce(const TableSpec& table);
  // Columns of the table in Unity Catalog; nullopt when it does not exist.
  absl::StatusOr<std::optional<std::vector<CatalogColumn>>> CatalogTable(const TableSpec& table);
  absl::StatusOr<StatementResult> Run(const std::string& sql,
                                      const std::vector<SqlParameter>& parameters, bool idempotent);
  absl::Mutex* TableMutex(const std::string& table);

  const std::string connection_id_;
  const DatabricksConfig config_;
  HttpClient* http_;
  DatabricksTokenSource* tokens_;
  StatementClient* statements_;
  const BatchLimits limits_;

  absl::Mutex mu_;
  std::set<std::string> provisioned_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::unique_ptr<absl::Mutex>> table_mu_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mlc::writer
