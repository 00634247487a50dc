// Where rows end up. A Sink upserts rows into tables described by TableSpecs; the
// pipeline does not know whether that is the embedded SQLite lakehouse or
// Databricks. Writes must be idempotent: writing the same rows again (a retry, a
// replay, a restart after a crash) leaves the table unchanged.
//
// Errors tell the pipeline what to do next: Unavailable / DeadlineExceeded /
// ResourceExhausted / Aborted are transient (retry with backoff); FailedPrecondition
// and InvalidArgument are permanent for those rows (dead letter, with the message
// as the operator-facing reason). Implementations are thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "writer/table_spec.h"

namespace mlc::writer {

class Sink {
 public:
  virtual ~Sink() = default;
  // A short name for logs and metrics: "sqlite", "databricks".
  virtual std::string Name() const = 0;
  // Makes sure the sink can be written to (connect, create schema). Called once at
  // startup; a failure is logged and reflected in readiness, and writes retry.
  virtual absl::Status Start() = 0;
  // Creates `table` if missing and adds missing columns (never drops or retypes).
  virtual absl::Status EnsureTable(const TableSpec& table) = 0;
  // Upserts rows keyed by table.key (and, if set, only when not older by
  // table.version_column). All-or-nothing per call.
  virtual absl::Status Upsert(const TableSpec& table, const std::vector<Row>& rows) = 0;
};

// True for errors worth retrying (see above).
bool IsTransient(const absl::Status& status);

}  // namespace mlc::writer
