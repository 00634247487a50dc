// The embedded sink: a SQLite "lakehouse" (`<data_dir>/lakehouse.db`) with the same
// table and column names as the Databricks tables, for local runs and tests.
// Upserts are `INSERT ... ON CONFLICT(key) DO UPDATE`, in one transaction per call,
// fsync'd (synchronous=FULL) so a row the journal marks written survives a crash.
// Types: BIGINT/BOOLEAN as INTEGER, everything else (DECIMAL included, to keep it
// exact) as TEXT in its canonical form. Thread-safe (one connection, a mutex).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "writer/sink.h"
#include "writer/sqlite_db.h"

namespace mlc::writer {

class SqliteSink final : public Sink {
 public:
  explicit SqliteSink(std::string path) : path_(std::move(path)) {}
  std::string Name() const override { return "sqlite"; }
  absl::Status Start() override;
  absl::Status EnsureTable(const TableSpec& table) override;
  absl::Status Upsert(const TableSpec& table, const std::vector<Row>& rows) override;

 private:
  absl::Status EnsureTableLocked(const TableSpec& table) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status UpsertLocked(const TableSpec& table, const std::vector<Row>& rows)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  absl::Mutex mu_;
  std::unique_ptr<Db> db_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> ensured_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mlc::writer
