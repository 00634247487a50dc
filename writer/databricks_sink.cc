#include "writer/databricks_sink.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

// Turns a statement error into the sink's error contract (see the header).
absl::Status ToSinkStatus(const absl::Status& s, const std::string& what) {
  if (s.ok()) return s;
  const std::string message = absl::StrCat(what, ": ", s.message());
  const std::optional<StatementErrorClass> cls = StatementErrorClassOf(s);
  if (cls.has_value()) {
    switch (*cls) {
      case StatementErrorClass::kRetry:        // conflicts persisted
      case StatementErrorClass::kReprovision:  // the caller re-provisioned once already
      case StatementErrorClass::kEvolve:
        return absl::UnavailableError(message);
      case StatementErrorClass::kPermanent:
        return absl::FailedPreconditionError(message);
    }
  }
  // Cancelled: the writer is shutting down; the batch stays pending for the
  // restart. Unauthenticated (a token rejected even after minting a new one, or a
  // rotated secret): the deliveries wait, with backoff, for the credentials to be
  // fixed rather than die.
  if (IsTransient(s) || s.code() == absl::StatusCode::kCancelled ||
      s.code() == absl::StatusCode::kUnauthenticated) {
    return absl::UnavailableError(message);
  }
  return absl::FailedPreconditionError(message);
}

}  // namespace

DatabricksSink::DatabricksSink(std::string connection_id, DatabricksConfig config, HttpClient* http,
                               DatabricksTokenSource* tokens, StatementClient* statements,
                               BatchLimits limits)
    : connection_id_(std::move(connection_id)),
      config_(std::move(config)),
      http_(http),
      tokens_(tokens),
      statements_(statements),
      limits_(limits) {}

absl::StatusOr<StatementResult> DatabricksSink::Run(const std::string& sql,
                                                    const std::vector<SqlParameter>& parameters,
                                                    bool idempotent) {
  Statement st;
  st.sql = sql;
  st.catalog = config_.catalog;
  st.idempotent = idempotent;
  for (const SqlParameter& p : parameters) {
    st.parameters.push_back(StatementParameter{p.name, p.value, p.type});
  }
  return statements_->Execute(st);
}

absl::Status DatabricksSink::Start() {
  const std::string where =
      absl::StrCat("connection \"", connection_id_, "\" databricks ", config_.host);
  log::Info("databricks startup check: 1/3 token", {{"connection", connection_id_}});
  if (absl::StatusOr<std::string> token = tokens_->Token(); !token.ok()) {
    log::Error("databricks startup check failed at the token step",
               {{"connection", connection_id_},
                {"error", std::string(token.status().message())},
                {"fix",
                 "check databricks.client_id and client_secret (an OAuth secret of a "
                 "service principal added to this workspace) and databricks.host"}});
    return absl::UnavailableError(absl::StrCat(where, ": token: ", token.status().message()));
  }
  log::Info("databricks startup check: 2/3 warehouse",
            {{"connection", connection_id_}, {"warehouse_id", config_.warehouse_id}});
  if (auto r = Run("SELECT 1", {}, true); !r.ok()) {
    log::Error("databricks startup check failed at the warehouse step",
               {{"connection", connection_id_},
                {"error", std::string(r.status().message())},
                {"fix",
                 "check databricks.warehouse_id and grant the service principal CAN USE "
                 "on that SQL warehouse; a stopped warehouse can take minutes to start"}});
    return absl::UnavailableError(absl::StrCat(where, ": warehouse: ", r.status().message()));
  }
  log::Info("databricks startup check: 3/3 schema",
            {{"connection", connection_id_},
             {"schema", absl::StrCat(config_.catalog, ".", config_.schema)}});
  absl::StatusOr<std::string> sql = CreateSchemaSql(config_.catalog, config_.schema);
  if (!sql.ok()) return sql.status();
  if (auto r = Run(*sql, {}, true); !r.ok()) {
    log::Error("databricks startup check failed at the schema step",
               {{"connection", connection_id_},
                {"error", std::string(r.status().message())},
                {"fix", absl::StrCat("grant the service principal USE CATALOG on ", config_.catalog,
                                     " and CREATE SCHEMA, or create schema ", config_.catalog, ".",
                                     config_.schema,
                                     " and grant USE SCHEMA, CREATE TABLE, MODIFY, SELECT")}});
    return ToSinkStatus(r.status(), absl::StrCat(where, ": schema"));
  }
  log::Info("databricks startup check passed", {{"connection", connection_id_}});
  return absl::OkStatus();
}

absl::Mutex* DatabricksSink::TableMutex(const std::string& table) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<absl::Mutex>& m = table_mu_[table];
  if (m == nullptr) m = std::make_unique<absl::Mutex>();
  return m.get();
}

void DatabricksSink::ForgetProvisioning() {
  absl::MutexLock lock(&mu_);
  provisioned_.clear();
}

absl::StatusOr<std::optional<std::vector<CatalogColumn>>> DatabricksSink::CatalogTable(
    const TableSpec& table) {
  std::string host = config_.host;
  while (!host.empty() && host.back() == '/') host.pop_back();
  HttpRequest req;
  req.method = "GET";
  req.url = absl::StrCat(host, "/api/2.1/unity-catalog/tables/", config_.catalog, ".",
                         config_.schema, ".", table.name);
  for (int attempt = 0; attempt < 2; ++attempt) {
    MLC_ASSIGN_OR_RETURN(std::string token, tokens_->Token());
    req.headers.clear();
    req.headers.emplace("Authorization", "Bearer " + token);
    MLC_ASSIGN_OR_RETURN(HttpResponse res, http_->Send(req));
    if (res.status == 404) return std::optional<std::vector<CatalogColumn>>();
    if (res.status == 200) {
      MLC_ASSIGN_OR_RETURN(std::vector<CatalogColumn> cols, ParseCatalogColumns(res.body));
      return std::optional<std::vector<CatalogColumn>>(std::move(cols));
    }
    if (IsInvalidTokenAnswer(res.status, res.body) && attempt == 0) {
      tokens_->Invalidate(token);
      continue;
    }
    const std::string what =
        absl::StrCat("unity catalog GET table ", table.name, ": HTTP ", res.status);
    if (res.status == 429 || res.status >= 500) return absl::UnavailableError(what);
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": ", res.body.substr(0, 300),
                     " (the service principal needs USE CATALOG, USE SCHEMA and SELECT)"));
  }
  return absl::UnavailableError("unity catalog: token rejected twice");
}

absl::Status DatabricksSink::EnsureTable(const TableSpec& table) {
  absl::MutexLock table_lock(TableMutex(table.name));
  {
    absl::MutexLock lock(&mu_);
    if (provisioned_.count(table.name) > 0) return absl::OkStatus();
  }
  MLC_RETURN_IF_ERROR(EnsureTableOnce(table));
  absl::MutexLock lock(&mu_);
  provisioned_.insert(table.name);
  return absl::OkStatus();
}

absl::Status DatabricksSink::EnsureTableOnce(const TableSpec& table) {
  const std::string full = FullTableName(config_.catalog, config_.schema, table.name);
  MLC_ASSIGN_OR_RETURN(std::optional<std::vector<CatalogColumn>> columns, CatalogTable(table));
  if (!columns.has_value()) {
    MLC_ASSIGN_OR_RETURN(std::string sql, CreateTableSql(config_.catalog, config_.schema, table));
    if (auto r = Run(sql, {}, true); !r.ok()) {
      if (StatementErrorClassOf(r.status()) == StatementErrorClass::kReprovision) {
        // The schema itself is gone: create it, then the table.
        MLC_ASSIGN_OR_RETURN(std::string schema_sql,
                             CreateSchemaSql(config_.catalog, config_.schema));
        MLC_RETURN_IF_ERROR(ToSinkStatus(Run(schema_sql, {}, true).status(), full));
        MLC_RETURN_IF_ERROR(ToSinkStatus(Run(sql, {}, true).status(), full));
      } else {
        return ToSinkStatus(r.status(), absl::StrCat("create table ", full));
      }
    }
    log::Info("databricks: table created", {{"connection", connection_id_}, {"table", full}});
    return absl::OkStatus();
  }
  const SchemaDiff diff = DiffSchema(table, *columns);
  if (!diff.incompatible.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "table ", full, ": ", DescribeConflicts(diff.incompatible),
        ". ml-connector never retypes a column: rename or drop the conflicting column in "
        "Databricks (or point the connection at another schema), then replay the dead "
        "deliveries"));
  }
  if (!diff.missing.empty()) {
    MLC_ASSIGN_OR_RETURN(std::string sql,
                         AddColumnsSql(config_.catalog, config_.schema, table.name, diff.missing));
    MLC_RETURN_IF_ERROR(ToSinkStatus(Run(sql, {}, false).status(), "alter table " + full));
    std::string names;
    for (const ColumnSpec& c : diff.missing) {
      absl::StrAppend(&names, names.empty() ? "" : ",", c.name);
    }
    log::Info("databricks: columns added",
              {{"connection", connection_id_}, {"table", full}, {"columns", names}});
  }
  return absl::OkStatus();
}

absl::Status DatabricksSink::Upsert(const TableSpec& table, const std::vector<Row>& rows) {
  MLC_RETURN_IF_ERROR(EnsureTable(table));
  if (rows.empty()) return absl::OkStatus();
  const std::string full = FullTableName(config_.catalog, config_.schema, table.name);
  MLC_ASSIGN_OR_RETURN(std::vector<std::vector<Row>> batches,
                       SplitIntoBatches(table, rows, limits_));
  for (const std::vector<Row>& batch : batches) {
    MLC_ASSIGN_OR_RETURN(SqlStatement merge,
                         MergeStatement(config_.catalog, config_.schema, table, batch));
    absl::StatusOr<StatementResult> r = Run(merge.sql, merge.parameters, /*idempotent=*/true);
    if (!r.ok()) {
      const auto cls = StatementErrorClassOf(r.status());
      if (cls == StatementErrorClass::kReprovision || cls == StatementErrorClass::kEvolve) {
        // Someone dropped the table or a column under us: provision again, retry once.
        log::Warn("databricks: table changed under the writer; provisioning again",
                  {{"connection", connection_id_},
                   {"table", full},
                   {"error", std::string(r.status().message())}});
        {
          absl::MutexLock lock(&mu_);
          provisioned_.erase(table.name);
        }
        MLC_RETURN_IF_ERROR(EnsureTable(table));
        r = Run(merge.sql, merge.parameters, /*idempotent=*/true);
      }
    }
    if (!r.ok()) return ToSinkStatus(r.status(), absl::StrCat("merge into ", full));
  }
  return absl::OkStatus();
}

}  // namespace mlc::writer
