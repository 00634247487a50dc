#include "tests/support/databricks_world.h"

#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace mlc::testing {

DatabricksWorld::DatabricksWorld() {
  auto engine = FakeSqlEngine::Open();
  if (!engine.ok()) throw std::runtime_error(engine.status().ToString());
  engine_ = std::move(*engine);
  server_ = std::make_unique<FakeDatabricks>();
  FakeSqlEngine* e = engine_.get();
  server_->SetTableProvider([e](const std::string& full_name) -> std::optional<std::string> {
    std::optional<FakeTableInfo> info = e->TableInfo(full_name);
    if (!info.has_value()) return std::nullopt;
    return ToUnityCatalogJson(*info);
  });
  server_->SetContextExecutor(
      [e](const std::string& sql, const std::vector<FakeDatabricks::Param>& params,
          const FakeDatabricks::Context& context) -> absl::StatusOr<FakeDatabricks::ExecResult> {
        std::vector<SqlParam> p;
        for (const auto& x : params) p.push_back(SqlParam{x.name, x.value, x.type});
        ExecResult r = e->Execute(sql, p, ExecContext{context.catalog, context.schema});
        if (!r.ok()) {
          absl::Status s = absl::InvalidArgumentError(r.message);
          s.SetPayload(FakeDatabricks::kSqlStatePayload, absl::Cord(r.sql_state));
          return s;
        }
        FakeDatabricks::ExecResult out;
        for (const ResultColumn& c : r.columns) out.columns.push_back({c.name, c.type_text});
        out.rows = r.data_array;
        return out;
      });
  if (absl::Status s = server_->Start(); !s.ok()) throw std::runtime_error(s.ToString());
}

DatabricksWorld::~DatabricksWorld() { server_->Stop(); }

std::vector<std::string> DatabricksWorld::Column(const std::string& sql) {
  ExecResult r = engine_->Query(sql);
  if (!r.ok()) throw std::runtime_error(absl::StrCat("query failed: ", r.message, ": ", sql));
  std::vector<std::string> out;
  for (const auto& row : r.data_array) {
    out.push_back(!row.empty() && row[0].has_value() ? *row[0] : "NULL");
  }
  return out;
}

std::map<std::string, int> DatabricksWorld::EventRowCounts(const std::string& table) {
  std::map<std::string, int> out;
  if (!engine_->TableInfo(table).has_value()) return out;
  for (const std::string& id : Column(absl::StrCat("SELECT delivery_id FROM ", table))) ++out[id];
  return out;
}

}  // namespace mlc::testing
