// A fake Databricks workspace for tests: FakeDatabricks (the REST endpoints, with
// fault knobs) wired to FakeSqlEngine (statements run on a real SQL engine, and
// Unity Catalog answers from the engine's catalog).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "tests/fakes/databricks_sql_engine.h"
#include "tests/fakes/fake_databricks.h"

namespace mlc::testing {

class DatabricksWorld {
 public:
  DatabricksWorld();
  ~DatabricksWorld();

  FakeDatabricks& server() { return *server_; }
  FakeSqlEngine& engine() { return *engine_; }
  std::string url() const { return server_->url(); }

  // One column of a SELECT on the engine, as strings ("NULL" for NULL).
  std::vector<std::string> Column(const std::string& sql);

  // Rows per delivery_id in `table` (the writer's events table by default);
  // empty while the table does not exist.
  std::map<std::string, int> EventRowCounts(
      const std::string& table = "finance.freshbooks.freshbooks_events");

 private:
  std::unique_ptr<FakeSqlEngine> engine_;
  std::unique_ptr<FakeDatabricks> server_;
};

}  // namespace mlc::testing
