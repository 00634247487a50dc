#include "writer/sqlite_sink.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

const char* SqliteType(SqlType t) {
  switch (t) {
    case SqlType::kBigint:
    case SqlType::kBoolean:
      return "INTEGER";
    default:
      return "TEXT";
  }
}

}  // namespace

bool IsTransient(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kInternal:
    case absl::StatusCode::kUnknown:
      return true;
    default:
      return false;
  }
}

absl::Status SqliteSink::Start() {
  absl::MutexLock lock(&mu_);
  if (db_ != nullptr) return absl::OkStatus();
  MLC_ASSIGN_OR_RETURN(db_, Db::Open(path_, Durability::kFull));
  return absl::OkStatus();
}

absl::Status SqliteSink::EnsureTable(const TableSpec& table) {
  absl::MutexLock lock(&mu_);
  return EnsureTableLocked(table);
}

absl::Status SqliteSink::EnsureTableLocked(const TableSpec& table) {
  if (db_ == nullptr) {
    MLC_ASSIGN_OR_RETURN(db_, Db::Open(path_, Durability::kFull));
  }
  if (ensured_.count(table.name) > 0) return absl::OkStatus();
  std::vector<std::string> cols;
  for (const ColumnSpec& c : table.columns) {
    cols.push_back(absl::StrCat(QuoteIdent(c.name), " ", SqliteType(c.type)));
  }
  std::vector<std::string> key;
  for (const std::string& k : table.key) key.push_back(QuoteIdent(k));
  MLC_RETURN_IF_ERROR(db_->Exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", QuoteIdent(table.name),
                                             " (", absl::StrJoin(cols, ", "), ", PRIMARY KEY (",
                                             absl::StrJoin(key, ", "), "))")));
  // Schema evolution: add columns the spec has and the table lacks.
  MLC_ASSIGN_OR_RETURN(
      Stmt info, db_->Prepare(absl::StrCat("PRAGMA table_info(", QuoteIdent(table.name), ")")));
  std::set<std::string> existing;
  while (true) {
    MLC_ASSIGN_OR_RETURN(bool row, info.Step());
    if (!row) break;
    existing.insert(info.ColumnText(1));
  }
  for (const ColumnSpec& c : table.columns) {
    if (existing.count(c.name) > 0) continue;
    MLC_RETURN_IF_ERROR(
        db_->Exec(absl::StrCat("ALTER TABLE ", QuoteIdent(table.name), " ADD COLUMN ",
                               QuoteIdent(c.name), " ", SqliteType(c.type))));
  }
  ensured_.insert(table.name);
  return absl::OkStatus();
}

absl::Status SqliteSink::Upsert(const TableSpec& table, const std::vector<Row>& rows) {
  absl::MutexLock lock(&mu_);
  MLC_RETURN_IF_ERROR(EnsureTableLocked(table));
  if (rows.empty()) return absl::OkStatus();
  MLC_RETURN_IF_ERROR(db_->Exec("BEGIN IMMEDIATE"));
  absl::Status s = UpsertLocked(table, rows);
  if (s.ok()) s = db_->Exec("COMMIT");
  if (!s.ok()) (void)db_->Exec("ROLLBACK");
  return s;
}

absl::Status SqliteSink::UpsertLocked(const TableSpec& table, const std::vector<Row>& rows) {
  std::vector<std::string> names, params, updates, key;
  for (size_t i = 0; i < table.columns.size(); ++i) {
    const std::string q = QuoteIdent(table.columns[i].name);
    names.push_back(q);
    params.push_back(absl::StrCat("?", i + 1));
    updates.push_back(absl::StrCat(q, " = excluded.", q));
  }
  for (const std::string& k : table.key) key.push_back(QuoteIdent(k));
  std::string sql = absl::StrCat(
      "INSERT INTO ", QuoteIdent(table.name), " (", absl::StrJoin(names, ", "), ") VALUES (",
      absl::StrJoin(params, ", "), ") ON CONFLICT (", absl::StrJoin(key, ", "), ") DO ");
  if (table.insert_only) {
    absl::StrAppend(&sql, "NOTHING");
  } else {
    absl::StrAppend(&sql, "UPDATE SET ", absl::StrJoin(updates, ", "));
  }
  if (!table.insert_only && !table.version_column.empty()) {
    const std::string v = QuoteIdent(table.version_column);
    absl::StrAppend(&sql, " WHERE excluded.", v, " >= ", QuoteIdent(table.name), ".", v, " OR ",
                    QuoteIdent(table.name), ".", v, " IS NULL");
  }
  MLC_ASSIGN_OR_RETURN(Stmt st, db_->Prepare(sql));
  for (const Row& row : rows) {
    if (row.size() != table.columns.size()) {
      return absl::InvalidArgumentError(absl::StrCat("table ", table.name, ": row has ", row.size(),
                                                     " values, spec has ", table.columns.size(),
                                                     " columns"));
    }
    for (size_t i = 0; i < row.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      if (!row[i].has_value()) {
        st.BindNull(idx);
      } else if (table.columns[i].type == SqlType::kBigint) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(*row[i], &v)) {
          return absl::InvalidArgumentError(absl::StrCat("table ", table.name, " column ",
                                                         table.columns[i].name,
                                                         ": not a BIGINT: ", *row[i]));
        }
        st.BindInt(idx, v);
      } else if (table.columns[i].type == SqlType::kBoolean) {
        // Only the canonical forms: anything else would silently become false.
        if (*row[i] != "true" && *row[i] != "false") {
          return absl::InvalidArgumentError(absl::StrCat("table ", table.name, " column ",
                                                         table.columns[i].name,
                                                         ": not a BOOLEAN: ", *row[i]));
        }
        st.BindInt(idx, *row[i] == "true" ? 1 : 0);
      } else {
        st.BindText(idx, *row[i]);
      }
    }
    MLC_RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

}  // namespace mlc::writer
