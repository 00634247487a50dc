#include "writer/databricks_sql.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace mlc::writer {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxNameChars = 255;
constexpr size_t kMaxClusterColumns = 4;

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Counts the code points of `s` if it is valid UTF-8 (no overlongs, surrogates
// or values past U+10FFFF).
bool Utf8Length(std::string_view s, size_t* chars) {
  size_t n = 0;
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + static_cast<size_t>(len) > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += static_cast<size_t>(len);
    ++n;
  }
  *chars = n;
  return true;
}

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(AV(s)); }

// Printable form of a name for error messages (control characters escaped).
std::string Printable(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

bool IsDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int DaysInMonth(int year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return kDays[month - 1];
}

// "YYYY-MM-DD" naming a real day.
bool IsCanonicalDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!IsDigits(s.substr(0, 4)) || !IsDigits(s.substr(5, 2)) || !IsDigits(s.substr(8, 2))) {
    return false;
  }
  const int year = std::stoi(std::string(s.substr(0, 4)));
  const int month = std::stoi(std::string(s.substr(5, 2)));
  const int day = std::stoi(std::string(s.substr(8, 2)));
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= DaysInMonth(year, month);
}

// "YYYY-MM-DDTHH:MM:SS.ffffffZ" (FormatTimestamp's output).
bool IsCanonicalTimestamp(std::string_view s) {
  if (s.size() != 27 || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s[19] != '.' ||
      s[26] != 'Z') {
    return false;
  }
  if (!IsCanonicalDate(s.substr(0, 10))) return false;
  if (!IsDigits(s.substr(11, 2)) || !IsDigits(s.substr(14, 2)) || !IsDigits(s.substr(17, 2)) ||
      !IsDigits(s.substr(20, 6))) {
    return false;
  }
  const int hour = std::stoi(std::string(s.substr(11, 2)));
  const int minute = std::stoi(std::string(s.substr(14, 2)));
  const int second = std::stoi(std::string(s.substr(17, 2)));
  return hour < 24 && minute < 60 && second < 60;
}

bool IsCanonicalBigint(std::string_view s) {
  std::string_view digits = s;
  if (!digits.empty() && digits[0] == '-') digits.remove_prefix(1);
  int64_t v = 0;
  return IsDigits(digits) && absl::SimpleAtoi(AV(s), &v);
}

// A decimal's sign and digits: "-012.50" -> {negative, "12", "50"} (leading
// zeros of the integer part dropped, fraction kept as written).
struct DecimalParts {
  bool negative = false;
  std::string integer;
  std::string fraction;
};

bool SplitDecimal(std::string_view s, DecimalParts* out) {
  DecimalParts p;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    p.negative = s[0] == '-';
    s.remove_prefix(1);
  }
  const size_t dot = s.find('.');
  std::string_view integer = s.substr(0, dot);
  std::string_view fraction = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  if (!IsDigits(integer)) return false;
  if (dot != std::string_view::npos && !IsDigits(fraction)) return false;
  while (integer.size() > 1 && integer[0] == '0') integer.remove_prefix(1);
  p.integer = std::string(integer == "0" ? "" : integer);
  p.fraction = std::string(fraction);
  *out = std::move(p);
  return true;
}

// Compares two decimal texts exactly; false if either does not parse.
bool CompareDecimals(std::string_view a, std::string_view b, int* cmp) {
  DecimalParts x, y;
  if (!SplitDecimal(a, &x) || !SplitDecimal(b, &y)) return false;
  auto is_zero = [](const DecimalParts& p) {
    return p.integer.empty() && p.fraction.find_first_not_of('0') == std::string::npos;
  };
  if (is_zero(x)) x.negative = false;
  if (is_zero(y)) y.negative = false;
  if (x.negative != y.negative) {
    *cmp = x.negative ? -1 : 1;
    return true;
  }
  int magnitude = 0;
  if (x.integer.size() != y.integer.size()) {
    magnitude = x.integer.size() < y.integer.size() ? -1 : 1;
  } else if (x.integer != y.integer) {
    magnitude = x.integer < y.integer ? -1 : 1;
  } else {
    const size_t n = std::max(x.fraction.size(), y.fraction.size());
    x.fraction.resize(n, '0');
    y.fraction.resize(n, '0');
    magnitude = x.fraction == y.fraction ? 0 : (x.fraction < y.fraction ? -1 : 1);
  }
  *cmp = x.negative ? -magnitude : magnitude;
  return true;
}

// Orders two non-NULL values of one column type; canonical texts of DATE,
// TIMESTAMP, BOOLEAN and STRING already sort as their values do.
int CompareValues(SqlType type, const std::string& a, const std::string& b) {
  int cmp = 0;
  if (type == SqlType::kBigint) {
    int64_t x = 0, y = 0;
    if (absl::SimpleAtoi(a, &x) && absl::SimpleAtoi(b, &y)) return x < y ? -1 : (x > y ? 1 : 0);
  } else if (type == SqlType::kDecimal) {
    if (CompareDecimals(a, b, &cmp)) return cmp;
  }
  return a < b ? -1 : (a > b ? 1 : 0);
}

std::optional<std::string> Cell(const Row& row, int index) {
  if (index < 0 || static_cast<size_t>(index) >= row.size()) return std::nullopt;
  return row[static_cast<size_t>(index)];
}

std::string KeyDescription(const TableSpec& spec, const Row& row) {
  std::vector<std::string> parts;
  for (const std::string& k : spec.key) {
    const std::optional<std::string> v = Cell(row, spec.ColumnIndex(k));
    parts.push_back(absl::StrCat(k, "=", v.has_value() ? *v : "NULL"));
  }
  return absl::StrJoin(parts, ", ");
}

// One row as a JSON object (see RowsJson).
absl::StatusOr<std::string> RowJson(const TableSpec& spec, const Row& row) {
  if (row.size() != spec.columns.size()) {
    return absl::InvalidArgumentError(absl::StrCat("table ", spec.name, ": row has ", row.size(),
                                                   " values, spec has ", spec.columns.size(),
                                                   " columns"));
  }
  std::string out = "{";
  for (size_t i = 0; i < row.size(); ++i) {
    if (i > 0) out.push_back(',');
    const ColumnSpec& column = spec.columns[i];
    try {
      out += json(column.name).dump(-1, ' ', false, json::error_handler_t::strict);
      out.push_back(':');
      if (row[i].has_value()) {
        out += json(*row[i]).dump(-1, ' ', false, json::error_handler_t::strict);
      } else {
        out += "null";
      }
    } catch (const json::exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("table ", spec.name, " column ", column.name,
                                                     ": value is not valid UTF-8 (", e.what(),
                                                     ")"));
    }
  }
  out.push_back('}');
  return out;
}

absl::Status ValidateTableNames(std::string_view catalog, std::string_view schema,
                                std::string_view table) {
  absl::Status s = ValidateName(NameKind::kCatalog, catalog);
  if (s.ok()) s = ValidateName(NameKind::kSchema, schema);
  if (s.ok()) s = ValidateName(NameKind::kTable, table);
  return s;
}

// A column fit for DDL: a valid name, DECIMAL precision 1..38 and scale
// 0..precision, and a comment that is valid UTF-8 (the statement travels as JSON).
absl::Status ValidateColumnSpec(const ColumnSpec& c) {
  absl::Status s = ValidateName(NameKind::kColumn, c.name);
  if (!s.ok()) return s;
  if (c.type == SqlType::kDecimal &&
      (c.precision < 1 || c.precision > 38 || c.scale < 0 || c.scale > c.precision)) {
    return absl::InvalidArgumentError(absl::StrCat("column ", c.name, ": invalid DECIMAL(",
                                                   c.precision, ",", c.scale,
                                                   ") (precision 1..38, scale 0..precision)"));
  }
  size_t chars = 0;
  if (!Utf8Length(c.comment, &chars)) {
    return absl::InvalidArgumentError(
        absl::StrCat("column ", c.name, ": comment is not valid UTF-8"));
  }
  return absl::OkStatus();
}

// The text a key value is compared by when deduplicating: equal for values the
// warehouse finds equal once cast ("007" and "7" as BIGINT, "1.50" and "1.5" as
// DECIMAL), so two such rows never reach one MERGE.
std::optional<std::string> KeyText(SqlType type, const std::optional<std::string>& value) {
  if (!value.has_value()) return value;
  if (type == SqlType::kBigint) {
    int64_t v = 0;
    if (IsCanonicalBigint(*value) && absl::SimpleAtoi(AV(*value), &v)) return absl::StrCat(v);
  } else if (type == SqlType::kDecimal) {
    DecimalParts p;
    if (SplitDecimal(*value, &p)) {
      while (!p.fraction.empty() && p.fraction.back() == '0') p.fraction.pop_back();
      if (p.integer.empty() && p.fraction.empty()) return std::string("0");
      return absl::StrCat(p.negative ? "-" : "", p.integer.empty() ? "0" : p.integer,
                          p.fraction.empty() ? "" : ".", p.fraction);
    }
  }
  return value;
}

std::string ColumnDefinition(const ColumnSpec& column, bool not_null) {
  std::string out = absl::StrCat(QuoteIdentifier(column.name), " ", DatabricksType(column));
  if (not_null) out += " NOT NULL";
  if (!column.comment.empty()) absl::StrAppend(&out, " COMMENT ", SqlStringLiteral(column.comment));
  return out;
}

}  // namespace

const char* NameKindName(NameKind kind) {
  switch (kind) {
    case NameKind::kCatalog:
      return "catalog";
    case NameKind::kSchema:
      return "schema";
    case NameKind::kTable:
      return "table";
    case NameKind::kColumn:
      return "column";
  }
  return "name";
}

std::string QuoteIdentifier(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

absl::Status ValidateName(NameKind kind, std::string_view name) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid Databricks ", NameKindName(kind),
                                                   " name ", Printable(name), ": ", AV(why)));
  };
  if (name.empty()) return bad("empty");
  size_t chars = 0;
  if (!Utf8Length(name, &chars)) return bad("not valid UTF-8");
  if (chars > kMaxNameChars) {
    return bad(absl::StrCat("longer than ", kMaxNameChars, " characters"));
  }
  const std::string_view forbidden =
      kind == NameKind::kColumn ? std::string_view(" ,;{}()\n\t=") : std::string_view(". /");
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return bad("contains a control character");
    if (absl::StrContains(AV(forbidden), c)) {
      return bad(absl::StrCat("contains '", std::string(1, c), "'"));
    }
    if (c >= 'A' && c <= 'Z') return bad("contains uppercase letters (names are lowercase)");
  }
  return absl::OkStatus();
}

std::string SqlStringLiteral(std::string_view text) {
  std::string out = "'";
  out.reserve(text.size() + 2);
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

std::string FullTableName(std::string_view catalog, std::string_view schema,
                          std::string_view table) {
  return absl::StrCat(QuoteIdentifier(catalog), ".", QuoteIdentifier(schema), ".",
                      QuoteIdentifier(table));
}

std::string DatabricksType(const ColumnSpec& column) {
  switch (column.type) {
    case SqlType::kString:
      return "STRING";
    case SqlType::kBigint:
      return "BIGINT";
    case SqlType::kBoolean:
      return "BOOLEAN";
    case SqlType::kDate:
      return "DATE";
    case SqlType::kTimestamp:
      return "TIMESTAMP";
    case SqlType::kDecimal:
      return absl::StrCat("DECIMAL(", column.precision, ",", column.scale, ")");
  }
  return "STRING";
}

absl::Status ValidateTableSpec(const TableSpec& spec) {
  absl::Status s = ValidateName(NameKind::kTable, spec.name);
  if (!s.ok()) return s;
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("table spec ", spec.name, ": ", why));
  };
  if (spec.columns.empty()) return bad("no columns");
  std::set<std::string> names;
  size_t chars = 0;
  if (!Utf8Length(spec.comment, &chars)) return bad("comment is not valid UTF-8");
  for (const ColumnSpec& c : spec.columns) {
    s = ValidateColumnSpec(c);
    if (!s.ok()) return bad(std::string(s.message()));
    if (!names.insert(Lower(c.name)).second) return bad(absl::StrCat("duplicate column ", c.name));
  }
  if (spec.key.empty()) return bad("empty key");
  std::set<std::string> keys;
  for (const std::string& k : spec.key) {
    if (spec.ColumnIndex(k) < 0) return bad(absl::StrCat("key column ", k, " is not a column"));
    if (!keys.insert(k).second) return bad(absl::StrCat("key column ", k, " repeated"));
  }
  if (!spec.version_column.empty() && spec.ColumnIndex(spec.version_column) < 0) {
    return bad(absl::StrCat("version column ", spec.version_column, " is not a column"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateSchemaSql(std::string_view catalog, std::string_view schema) {
  absl::Status s = ValidateName(NameKind::kCatalog, catalog);
  if (s.ok()) s = ValidateName(NameKind::kSchema, schema);
  if (!s.ok()) return s;
  return absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", QuoteIdentifier(catalog), ".",
                      QuoteIdentifier(schema));
}

absl::StatusOr<std::string> CreateTableSql(std::string_view catalog, std::string_view schema,
                                           const TableSpec& spec) {
  absl::Status s = ValidateTableNames(catalog, schema, spec.name);
  if (s.ok()) s = ValidateTableSpec(spec);
  if (!s.ok()) return s;
  const std::set<std::string> keys(spec.key.begin(), spec.key.end());
  std::vector<std::string> columns;
  columns.reserve(spec.columns.size());
  for (const ColumnSpec& c : spec.columns) {
    columns.push_back(ColumnDefinition(c, keys.count(c.name) > 0));
  }
  std::vector<std::string> cluster;
  for (const std::string& k : spec.key) {
    if (cluster.size() == kMaxClusterColumns) break;
    cluster.push_back(QuoteIdentifier(k));
  }
  std::string sql =
      absl::StrCat("CREATE TABLE IF NOT EXISTS ", FullTableName(catalog, schema, spec.name),
                   " (\n  ", absl::StrJoin(columns, ",\n  "), "\n)\nUSING DELTA\nCLUSTER BY (",
                   absl::StrJoin(cluster, ", "), ")\n");
  if (!spec.comment.empty()) {
    absl::StrAppend(&sql, "COMMENT ", SqlStringLiteral(spec.comment), "\n");
  }
  absl::StrAppend(&sql, "TBLPROPERTIES (", SqlStringLiteral("delta.enableChangeDataFeed"), " = ",
                  SqlStringLiteral("true"), ")");
  return sql;
}

absl::StatusOr<std::string> AddColumnsSql(std::string_view catalog, std::string_view schema,
                                          std::string_view table,
                                          const std::vector<ColumnSpec>& columns) {
  absl::Status s = ValidateTableNames(catalog, schema, table);
  if (!s.ok()) return s;
  if (columns.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("ALTER TABLE ", AV(table), ": no columns to add"));
  }
  std::vector<std::string> defs;
  std::set<std::string> names;
  for (const ColumnSpec& c : columns) {
    s = ValidateColumnSpec(c);
    if (!s.ok()) return s;
    if (!names.insert(Lower(c.name)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("ALTER TABLE ", AV(table), ": column ", c.name, " listed twice"));
    }
    defs.push_back(ColumnDefinition(c, false));
  }
  return absl::StrCat("ALTER TABLE ", FullTableName(catalog, schema, table), " ADD COLUMNS (",
                      absl::StrJoin(defs, ", "), ")");
}

absl::StatusOr<std::vector<CatalogColumn>> ParseCatalogColumns(std::string_view table_json) {
  const json doc = json::parse(table_json.begin(), table_json.end(), nullptr, false);
  // Lookups go through the underlying std::map / std::vector: nlohmann's own
  // iterators trip GCC's -Wnull-dereference at -O2.
  const auto* object = doc.is_discarded() ? nullptr : doc.get_ptr<const json::object_t*>();
  if (object == nullptr) {
    return absl::InvalidArgumentError("Unity Catalog table answer is not a JSON object");
  }
  std::vector<CatalogColumn> out;
  const auto it = object->find("columns");
  if (it == object->end()) return out;  // a table without columns omits the field
  const auto* columns = it->second.get_ptr<const json::array_t*>();
  if (columns == nullptr) {
    return absl::InvalidArgumentError("Unity Catalog `columns` is not an array");
  }
  for (const json& c : *columns) {
    const auto* column = c.get_ptr<const json::object_t*>();
    const std::string* name = nullptr;
    const std::string* type_text = nullptr;
    if (column != nullptr) {
      const auto name_it = column->find("name");
      const auto type_it = column->find("type_text");
      if (name_it != column->end()) name = name_it->second.get_ptr<const std::string*>();
      if (type_it != column->end()) type_text = type_it->second.get_ptr<const std::string*>();
    }
    if (name == nullptr || type_text == nullptr) {
      return absl::InvalidArgumentError(
          "Unity Catalog column without string `name` and `type_text`");
    }
    out.push_back({*name, *type_text});
  }
  return out;
}

std::string NormalizeTypeText(std::string_view type_text) {
  std::string t;
  for (char c : type_text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      t.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    }
  }
  static const std::map<std::string, std::string>* const kAliases =
      new std::map<std::string, std::string>{
          {"long", "bigint"},       {"integer", "int"},
          {"short", "smallint"},    {"byte", "tinyint"},
          {"bool", "boolean"},      {"timestamp_ltz", "timestamp"},
          {"real", "float"},        {"decimal", "decimal(10,0)"},
          {"dec", "decimal(10,0)"}, {"numeric", "decimal(10,0)"},
      };
  const auto alias = kAliases->find(t);
  if (alias != kAliases->end()) return alias->second;
  for (const char* prefix : {"decimal(", "dec(", "numeric("}) {
    const std::string p = prefix;
    if (absl::StartsWith(t, p) && t.back() == ')') {
      const std::string args = t.substr(p.size(), t.size() - p.size() - 1);
      const size_t comma = args.find(',');
      std::string precision = args.substr(0, comma);
      std::string scale = comma == std::string::npos ? "0" : args.substr(comma + 1);
      int pv = 0, sv = 0;
      if (absl::SimpleAtoi(precision, &pv) && absl::SimpleAtoi(scale, &sv)) {
        return absl::StrCat("decimal(", pv, ",", sv, ")");
      }
      return t;
    }
  }
  return t;
}

SchemaDiff DiffSchema(const TableSpec& spec, const std::vector<CatalogColumn>& existing) {
  SchemaDiff diff;
  std::map<std::string, const CatalogColumn*> by_name;
  for (const CatalogColumn& c : existing) by_name.emplace(Lower(c.name), &c);
  std::set<std::string> in_spec;
  for (const ColumnSpec& c : spec.columns) {
    in_spec.insert(Lower(c.name));
    const auto it = by_name.find(Lower(c.name));
    if (it == by_name.end()) {
      diff.missing.push_back(c);
      continue;
    }
    const std::string expected = NormalizeTypeText(DatabricksType(c));
    const std::string actual = NormalizeTypeText(it->second->type_text);
    if (expected != actual) diff.incompatible.push_back({c.name, expected, actual});
  }
  for (const CatalogColumn& c : existing) {
    if (in_spec.count(Lower(c.name)) == 0) diff.extra.push_back(c.name);
  }
  return diff;
}

std::string DescribeConflicts(const std::vector<ColumnConflict>& conflicts) {
  std::vector<std::string> parts;
  parts.reserve(conflicts.size());
  for (const ColumnConflict& c : conflicts) {
    parts.push_back(absl::StrCat("column ", QuoteIdentifier(c.name), ": table has ", c.actual_type,
                                 ", spec wants ", c.expected_type));
  }
  return absl::StrJoin(parts, "; ");
}

absl::Status ValidateRow(const TableSpec& spec, const Row& row) {
  if (row.size() != spec.columns.size()) {
    return absl::InvalidArgumentError(absl::StrCat("table ", spec.name, ": row has ", row.size(),
                                                   " values, spec has ", spec.columns.size(),
                                                   " columns"));
  }
  for (const std::string& k : spec.key) {
    if (!Cell(row, spec.ColumnIndex(k)).has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("table ", spec.name, ": key column ", k, " is NULL"));
    }
  }
  for (size_t i = 0; i < row.size(); ++i) {
    if (!row[i].has_value()) continue;
    const ColumnSpec& c = spec.columns[i];
    const std::string& v = *row[i];
    bool ok = true;
    std::string want;
    switch (c.type) {
      case SqlType::kString:
        break;
      case SqlType::kBigint:
        ok = IsCanonicalBigint(v);
        want = "a BIGINT";
        break;
      case SqlType::kBoolean:
        ok = v == "true" || v == "false";
        want = "true or false";
        break;
      case SqlType::kDate:
        ok = IsCanonicalDate(v);
        want = "a date YYYY-MM-DD";
        break;
      case SqlType::kTimestamp:
        ok = IsCanonicalTimestamp(v);
        want = "a timestamp YYYY-MM-DDTHH:MM:SS.ffffffZ";
        break;
      case SqlType::kDecimal: {
        DecimalParts p;
        ok = !v.empty() && v[0] != '+' && SplitDecimal(v, &p) &&
             p.integer.size() <= static_cast<size_t>(c.precision - c.scale) &&
             p.fraction.size() <= static_cast<size_t>(c.scale);
        want = absl::StrCat("a ", DatabricksType(c));
        break;
      }
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat("table ", spec.name, " column ", c.name, ": ",
                                                     Printable(v), " is not ", want));
    }
  }
  return absl::OkStatus();
}

std::vector<Row> DeduplicateRows(const TableSpec& spec, const std::vector<Row>& rows) {
  std::vector<int> key_index;
  for (const std::string& k : spec.key) key_index.push_back(spec.ColumnIndex(k));
  const int version_index =
      spec.version_column.empty() ? -1 : spec.ColumnIndex(spec.version_column);
  const SqlType version_type =
      version_index >= 0 ? spec.columns[static_cast<size_t>(version_index)].type : SqlType::kString;

  std::vector<Row> out;
  std::map<std::vector<std::optional<std::string>>, size_t> slot;  // key -> index in out
  for (const Row& row : rows) {
    std::vector<std::optional<std::string>> key;
    key.reserve(key_index.size());
    for (int i : key_index) {
      const SqlType type = i >= 0 ? spec.columns[static_cast<size_t>(i)].type : SqlType::kString;
      key.push_back(KeyText(type, Cell(row, i)));
    }
    const auto [it, inserted] = slot.emplace(std::move(key), out.size());
    if (inserted) {
      out.push_back(row);
      continue;
    }
    Row& kept = out[it->second];
    if (spec.insert_only) continue;  // first write wins
    if (version_index >= 0) {
      const std::optional<std::string> old_v = Cell(kept, version_index);
      const std::optional<std::string> new_v = Cell(row, version_index);
      if (!new_v.has_value() && old_v.has_value()) continue;  // NULL is oldest
      if (new_v.has_value() && old_v.has_value() &&
          CompareValues(version_type, *new_v, *old_v) < 0) {
        continue;
      }
    }
    kept = row;
  }
  return out;
}

absl::StatusOr<std::string> RowsJson(const TableSpec& spec, const std::vector<Row>& rows) {
  std::string out = "[";
  for (size_t i = 0; i < rows.size(); ++i) {
    absl::StatusOr<std::string> row = RowJson(spec, rows[i]);
    if (!row.ok()) return row.status();
    if (i > 0) out.push_back(',');
    out += *row;
  }
  out.push_back(']');
  return out;
}

absl::StatusOr<SqlStatement> MergeStatement(std::string_view catalog, std::string_view schema,
                                            const TableSpec& spec, const std::vector<Row>& rows) {
  absl::Status s = ValidateTableNames(catalog, schema, spec.name);
  if (s.ok()) s = ValidateTableSpec(spec);
  if (!s.ok()) return s;
  if (rows.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("table ", spec.name, ": MERGE without rows"));
  }
  for (const Row& row : rows) {
    if (row.size() != spec.columns.size()) {
      return absl::InvalidArgumentError(absl::StrCat("table ", spec.name, ": row has ", row.size(),
                                                     " values, spec has ", spec.columns.size(),
                                                     " columns"));
    }
  }
  const std::vector<Row> unique = DeduplicateRows(spec, rows);
  absl::StatusOr<std::string> rows_json = RowsJson(spec, unique);
  if (!rows_json.ok()) return rows_json.status();

  const std::set<std::string> keys(spec.key.begin(), spec.key.end());
  std::vector<std::string> fields, select, on, set, insert_cols, insert_vals;
  for (const ColumnSpec& c : spec.columns) {
    const std::string q = QuoteIdentifier(c.name);
    fields.push_back(absl::StrCat(q, ": STRING"));
    if (c.type == SqlType::kString) {
      select.push_back(absl::StrCat("r.", q, " AS ", q));
    } else {
      select.push_back(absl::StrCat("CAST(r.", q, " AS ", DatabricksType(c), ") AS ", q));
    }
    if (keys.count(c.name) == 0) set.push_back(absl::StrCat(q, " = s.", q));
    insert_cols.push_back(q);
    insert_vals.push_back(absl::StrCat("s.", q));
  }
  for (const std::string& k : spec.key) {
    const std::string q = QuoteIdentifier(k);
    on.push_back(absl::StrCat("t.", q, " <=> s.", q));
  }
  const std::string row_type = absl::StrCat("ARRAY<STRUCT<", absl::StrJoin(fields, ", "), ">>");

  std::string sql = absl::StrCat(
      "MERGE INTO ", FullTableName(catalog, schema, spec.name), " AS t\nUSING (\n  SELECT ",
      absl::StrJoin(select, ", "), "\n  FROM (SELECT inline(from_json(:", kRowsParameter, ", ",
      SqlStringLiteral(row_type), "))) AS r\n) AS s\nON ", absl::StrJoin(on, " AND "), "\n");
  if (!spec.insert_only && !set.empty()) {
    sql += "WHEN MATCHED";
    if (!spec.version_column.empty()) {
      const std::string v = QuoteIdentifier(spec.version_column);
      absl::StrAppend(&sql, " AND (t.", v, " IS NULL OR s.", v, " >= t.", v, ")");
    }
    absl::StrAppend(&sql, " THEN UPDATE SET ", absl::StrJoin(set, ", "), "\n");
  }
  absl::StrAppend(&sql, "WHEN NOT MATCHED THEN INSERT (", absl::StrJoin(insert_cols, ", "),
                  ") VALUES (", absl::StrJoin(insert_vals, ", "), ")");

  SqlStatement out;
  out.sql = std::move(sql);
  out.parameters.push_back({kRowsParameter, *std::move(rows_json), "STRING"});
  out.row_count = unique.size();
  return out;
}

absl::StatusOr<std::vector<std::vector<Row>>> SplitIntoBatches(const TableSpec& spec,
                                                               const std::vector<Row>& rows,
                                                               const BatchLimits& limits) {
  if (limits.max_rows == 0 || limits.max_bytes == 0) {
    return absl::InvalidArgumentError("batch limits must be positive");
  }
  std::vector<std::vector<Row>> batches;
  std::vector<Row> current;
  size_t current_bytes = 2;  // "[]"
  for (Row& row : DeduplicateRows(spec, rows)) {
    absl::StatusOr<std::string> row_json = RowJson(spec, row);
    if (!row_json.ok()) return row_json.status();
    const size_t bytes = row_json->size();
    if (bytes + 2 > limits.max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("table ", spec.name, ": row (", KeyDescription(spec, row), ") is ", bytes,
                       " bytes of JSON, more than the batch limit of ", limits.max_bytes));
    }
    const size_t added = bytes + (current.empty() ? 0 : 1);  // a comma between rows
    if (!current.empty() &&
        (current.size() >= limits.max_rows || current_bytes + added > limits.max_bytes)) {
      batches.push_back(std::move(current));
      current.clear();
      current_bytes = 2;
      current_bytes += bytes;
    } else {
      current_bytes += added;
    }
    current.push_back(std::move(row));
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

}  // namespace mlc::writer
