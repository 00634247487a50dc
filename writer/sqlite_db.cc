#include "writer/sqlite_db.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace mlc::writer {
namespace {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  const std::string text = absl::StrCat(what, ": ", msg, " (sqlite ", rc, ")");
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
      return absl::UnavailableError(text);
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

std::string Abbrev(std::string_view sql) {
  return std::string(sql.substr(0, 80)) + (sql.size() > 80 ? "..." : "");
}

}  // namespace

Stmt::~Stmt() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

void Stmt::BindText(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}
void Stmt::BindBlob(int i, std::string_view v) {
  sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}
void Stmt::BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
void Stmt::BindNull(int i) { sqlite3_bind_null(stmt_, i); }
void Stmt::BindOptionalText(int i, const std::optional<std::string>& v) {
  if (v.has_value()) {
    BindText(i, *v);
  } else {
    BindNull(i);
  }
}

absl::StatusOr<bool> Stmt::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status s = SqliteError(db_, rc, Abbrev(sqlite3_sql(stmt_)));
  sqlite3_reset(stmt_);
  return s;
}

absl::Status Stmt::Run() {
  while (true) {
    absl::StatusOr<bool> more = Step();
    if (!more.ok()) return more.status();
    if (!*more) break;
  }
  Reset();
  return absl::OkStatus();
}

void Stmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Stmt::ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
std::string Stmt::ColumnText(int i) const {
  const auto* p = sqlite3_column_blob(stmt_, i);
  const int n = sqlite3_column_bytes(stmt_, i);
  if (p == nullptr) return std::string();
  return std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}
bool Stmt::ColumnIsNull(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

absl::StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& path, Durability durability,
                                             bool read_only) {
  sqlite3* raw = nullptr;
  const int flags =
      (read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
      SQLITE_OPEN_NOMUTEX;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(raw, rc, absl::StrCat("open ", path));
    sqlite3_close(raw);
    return s;
  }
  std::unique_ptr<Db> db(new Db(raw, path));
  sqlite3_busy_timeout(raw, 10000);
  if (!read_only) {
    absl::Status s = db->Exec("PRAGMA journal_mode=WAL");
    if (!s.ok()) return s;
  }
  absl::Status s = db->Exec(durability == Durability::kFull ? "PRAGMA synchronous=FULL"
                                                            : "PRAGMA synchronous=NORMAL");
  if (!s.ok()) return s;
  return db;
}

Db::~Db() { sqlite3_close(db_); }

absl::Status Db::Exec(std::string_view sql) {
  const std::string text(sql);
  char* err = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db_, rc, absl::StrCat(path_, ": ", Abbrev(sql)));
    sqlite3_free(err);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<Stmt> Db::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, absl::StrCat(path_, ": prepare ", Abbrev(sql)));
  return Stmt(db_, stmt);
}

int64_t Db::Changes() const { return sqlite3_changes(db_); }

std::string QuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace mlc::writer
