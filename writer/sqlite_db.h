// A thin RAII layer over the SQLite C API: a connection and prepared statements
// that report errors as absl::Status naming the SQL and the database file.
//
// A Db is not thread-safe: each thread that touches a database opens its own Db
// (SQLite in WAL mode lets one writer and many readers work concurrently).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace mlc::writer {

class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Stmt();
  Stmt(Stmt&& other) noexcept : db_(other.db_), stmt_(other.stmt_) { other.stmt_ = nullptr; }
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;

  // Parameters are 1-based, as in SQLite.
  void BindText(int i, std::string_view v);
  void BindBlob(int i, std::string_view v);
  void BindInt(int i, int64_t v);
  void BindNull(int i);
  void BindOptionalText(int i, const std::optional<std::string>& v);

  // Steps once: true while a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Steps to completion (for statements without results) and resets.
  absl::Status Run();
  void Reset();

  int64_t ColumnInt(int i) const;
  std::string ColumnText(int i) const;
  bool ColumnIsNull(int i) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

enum class Durability {
  kFull,    // fsync on every commit (journal, sink)
  kNormal,  // WAL without fsync per commit (readers)
};

class Db {
 public:
  // Opens (creating if needed) `path` in WAL mode with a busy timeout.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path, Durability durability,
                                                  bool read_only = false);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  // Runs one or more statements without parameters.
  absl::Status Exec(std::string_view sql);
  absl::StatusOr<Stmt> Prepare(std::string_view sql);
  int64_t Changes() const;
  const std::string& path() const { return path_; }
  sqlite3* raw() const { return db_; }

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// Quotes an identifier for SQLite ("name", with embedded quotes doubled).
std::string QuoteIdent(std::string_view name);

}  // namespace mlc::writer
