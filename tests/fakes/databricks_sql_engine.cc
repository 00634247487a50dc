#include "tests/fakes/databricks_sql_engine.h"

#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <utility>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "nlohmann/json.hpp"

namespace mlc::testing {
namespace {

using json = nlohmann::json;

// Debian's Abseil has its own string_view.
absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string Lower(std::string_view s) { return absl::AsciiStrToLower(AV(s)); }

bool EqualsCi(std::string_view a, std::string_view b) {
  return absl::EqualsIgnoreCase(AV(a), AV(b));
}

// `name` as Databricks quotes it in messages and SQL.
std::string Backticked(std::string_view name) {
  std::string out = "`";
  for (char c : name) {
    if (c == '`') out.push_back('`');
    out.push_back(c);
  }
  out.push_back('`');
  return out;
}

// A SQLite identifier: "name", with embedded quotes doubled.
std::string SqliteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// ---------------------------------------------------------------------------
// Errors: "[CLASS] text SQLSTATE: xxxxx", as a Databricks statement reports them.

struct ErrorClassInfo {
  const char* name;
  const char* sql_state;
};

constexpr ErrorClassInfo kErrorClasses[] = {
    {"AMBIGUOUS_REFERENCE", "42702"},
    {"CANNOT_RESOLVE_STAR_EXPAND", "42704"},
    {"CAST_INVALID_INPUT", "22018"},
    {"CAST_OVERFLOW", "22003"},
    {"COLUMN_ALREADY_EXISTS", "42711"},
    {"DATATYPE_MISMATCH", "42K09"},
    {"DELTA_CLUSTER_BY_INVALID_NUM_COLUMNS", "54000"},
    {"DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES", "42K05"},
    {"DELTA_MERGE_UNRESOLVED_EXPRESSION", "42601"},
    {"DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE", "21506"},
    {"DELTA_NOT_NULL_CONSTRAINT_VIOLATED", "23502"},
    {"DUPLICATE_ASSIGNMENTS", "42701"},
    {"FIELD_ALREADY_EXISTS", "42710"},
    {"INTERNAL_ERROR", "XX000"},
    {"INVALID_SCHEMA", "42K07"},
    {"INVALID_SCHEMA_OR_RELATION_NAME", "42602"},
    {"INVALID_TYPED_LITERAL", "42604"},
    {"MISSING_AGGREGATION", "42803"},
    {"NON_LAST_MATCHED_CLAUSE_OMIT_CONDITION", "42613"},
    {"NON_LAST_NOT_MATCHED_BY_TARGET_CLAUSE_OMIT_CONDITION", "42613"},
    {"NUMERIC_VALUE_OUT_OF_RANGE", "22003"},
    {"PARSE_SYNTAX_ERROR", "42601"},
    {"SCHEMA_ALREADY_EXISTS", "42P06"},
    {"SCHEMA_NOT_FOUND", "42704"},
    {"TABLE_OR_VIEW_ALREADY_EXISTS", "42P07"},
    {"TABLE_OR_VIEW_NOT_FOUND", "42P01"},
    {"UNBOUND_SQL_PARAMETER", "42P02"},
    {"UNRESOLVED_COLUMN", "42703"},
    {"UNRESOLVED_ROUTINE", "42883"},
    {"UNSUPPORTED_DATATYPE", "0A000"},
};

// "CLASS.SUBCLASS" from "[CLASS.SUBCLASS] text", or "".
std::string ErrorClassOf(std::string_view message) {
  if (message.empty() || message[0] != '[') return "";
  const size_t close = message.find(']');
  if (close == std::string_view::npos) return "";
  return std::string(message.substr(1, close - 1));
}

std::string SqlStateOf(std::string_view error_class) {
  const std::string_view base = error_class.substr(0, error_class.find('.'));
  for (const ErrorClassInfo& info : kErrorClasses) {
    if (base == info.name) return info.sql_state;
  }
  return "XX000";
}

// Errors Databricks would report travel as InvalidArgument statuses whose
// message is the statement's error message; anything else is a fake bug.
absl::Status SqlError(std::string_view error_class, std::string_view text) {
  return absl::InvalidArgumentError(
      absl::StrCat("[", AV(error_class), "] ", AV(text), " SQLSTATE: ", SqlStateOf(error_class)));
}

// ---------------------------------------------------------------------------
// Types

enum class Kind {
  kNull,  // the type of a bare NULL
  kString,
  kBigint,
  kInt,
  kSmallint,
  kTinyint,
  kBoolean,
  kDate,
  kTimestamp,
  kTimestampNtz,
  kDecimal,
  kDouble,
  kFloat,
};

struct Type {
  Kind kind = Kind::kNull;
  int precision = 0;  // DECIMAL only
  int scale = 0;      // DECIMAL only

  bool operator==(const Type& o) const {
    return kind == o.kind &&
           (kind != Kind::kDecimal || (precision == o.precision && scale == o.scale));
  }
  bool operator!=(const Type& o) const { return !(*this == o); }
};

Type MakeType(Kind kind) { return Type{kind, 0, 0}; }
Type DecimalType(int precision, int scale) { return Type{Kind::kDecimal, precision, scale}; }

bool IsIntegral(Kind k) {
  return k == Kind::kBigint || k == Kind::kInt || k == Kind::kSmallint || k == Kind::kTinyint;
}
bool IsExactNumeric(Kind k) { return IsIntegral(k) || k == Kind::kDecimal; }
bool IsNumeric(Kind k) { return IsExactNumeric(k) || k == Kind::kDouble || k == Kind::kFloat; }
bool IsTimestamp(Kind k) { return k == Kind::kTimestamp || k == Kind::kTimestampNtz; }

// Unity Catalog's type_text: "bigint", "decimal(18,2)".
std::string TypeText(const Type& t) {
  switch (t.kind) {
    case Kind::kNull:
      return "void";
    case Kind::kString:
      return "string";
    case Kind::kBigint:
      return "bigint";
    case Kind::kInt:
      return "int";
    case Kind::kSmallint:
      return "smallint";
    case Kind::kTinyint:
      return "tinyint";
    case Kind::kBoolean:
      return "boolean";
    case Kind::kDate:
      return "date";
    case Kind::kTimestamp:
      return "timestamp";
    case Kind::kTimestampNtz:
      return "timestamp_ntz";
    case Kind::kDecimal:
      return absl::StrCat("decimal(", t.precision, ",", t.scale, ")");
    case Kind::kDouble:
      return "double";
    case Kind::kFloat:
      return "float";
  }
  return "void";
}

// The type as error messages spell it: "BIGINT", "DECIMAL(18,2)".
std::string TypeSql(const Type& t) { return absl::AsciiStrToUpper(TypeText(t)); }

// Unity Catalog's type_name: "LONG", "DECIMAL".
std::string TypeUcName(const Type& t) {
  switch (t.kind) {
    case Kind::kBigint:
      return "LONG";
    case Kind::kSmallint:
      return "SHORT";
    case Kind::kTinyint:
      return "BYTE";
    case Kind::kDecimal:
      return "DECIMAL";
    case Kind::kNull:
      return "NULL";
    default:
      return TypeSql(t);
  }
}

// A type from its (lowercase) name and arguments: "decimal" {18, 2}.
std::optional<Type> TypeFromName(std::string_view name, const std::vector<int>& args) {
  static const std::map<std::string, Kind, std::less<>>* const kNames =
      new std::map<std::string, Kind, std::less<>>{
          {"string", Kind::kString},
          {"bigint", Kind::kBigint},
          {"long", Kind::kBigint},
          {"int", Kind::kInt},
          {"integer", Kind::kInt},
          {"smallint", Kind::kSmallint},
          {"short", Kind::kSmallint},
          {"tinyint", Kind::kTinyint},
          {"byte", Kind::kTinyint},
          {"boolean", Kind::kBoolean},
          {"bool", Kind::kBoolean},
          {"date", Kind::kDate},
          {"timestamp", Kind::kTimestamp},
          {"timestamp_ltz", Kind::kTimestamp},
          {"timestamp_ntz", Kind::kTimestampNtz},
          {"decimal", Kind::kDecimal},
          {"dec", Kind::kDecimal},
          {"numeric", Kind::kDecimal},
          {"double", Kind::kDouble},
          {"float", Kind::kFloat},
          {"real", Kind::kFloat},
      };
  const auto it = kNames->find(name);
  if (it == kNames->end()) return std::nullopt;
  if (it->second != Kind::kDecimal) {
    if (!args.empty()) return std::nullopt;
    return MakeType(it->second);
  }
  if (args.size() > 2) return std::nullopt;
  const int precision = args.empty() ? 10 : args[0];
  const int scale = args.size() < 2 ? 0 : args[1];
  if (precision < 1 || precision > 38 || scale < 0 || scale > precision) return std::nullopt;
  return DecimalType(precision, scale);
}

absl::Status UnsupportedType(std::string_view text) {
  return SqlError("UNSUPPORTED_DATATYPE",
                  absl::StrCat("Unsupported data type \"", AV(text), "\"."));
}

// Type text as Unity Catalog or a parameter spells it: "DECIMAL(18, 2)", "long".
absl::StatusOr<Type> ParseTypeText(std::string_view text) {
  std::string t;
  for (char c : text) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c))) {
      t.push_back(absl::ascii_tolower(static_cast<unsigned char>(c)));
    }
  }
  std::string name = t;
  std::vector<int> args;
  const size_t open = t.find('(');
  if (open != std::string::npos) {
    if (t.back() != ')') return UnsupportedType(text);
    name = t.substr(0, open);
    const std::string inner = t.substr(open + 1, t.size() - open - 2);
    for (absl::string_view part : absl::StrSplit(inner, ',')) {
      int v = 0;
      if (!absl::SimpleAtoi(part, &v)) return UnsupportedType(text);
      args.push_back(v);
    }
  }
  std::optional<Type> type = TypeFromName(name, args);
  if (!type.has_value()) return UnsupportedType(text);
  return *type;
}

// ---------------------------------------------------------------------------
// Values. Each type has one storage form in SQLite, chosen so that SQLite's own
// comparisons order values correctly (DECIMAL excepted, see dbx_dec_cmp):
//   STRING                          TEXT
//   BIGINT, INT, SMALLINT, TINYINT  INTEGER
//   BOOLEAN                         INTEGER 0 / 1
//   DATE                            TEXT "YYYY-MM-DD"
//   TIMESTAMP, TIMESTAMP_NTZ        TEXT "YYYY-MM-DD HH:MM:SS.ffffff" (UTC)
//   DECIMAL(p,s)                    TEXT with exactly s fraction digits, "-12.50"
//   DOUBLE, FLOAT                   REAL

using Value = std::variant<std::monostate, int64_t, double, std::string>;

bool IsNullValue(const Value& v) { return std::holds_alternative<std::monostate>(v); }

bool FitsIntegral(Kind kind, int64_t v) {
  switch (kind) {
    case Kind::kTinyint:
      return v >= -128 && v <= 127;
    case Kind::kSmallint:
      return v >= -32768 && v <= 32767;
    case Kind::kInt:
      return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    default:
      return true;
  }
}

std::string FormatDouble(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  const std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

// Spark trims ASCII whitespace and control characters before casting a string.
std::string_view TrimForCast(std::string_view s) {
  while (!s.empty() && static_cast<unsigned char>(s.front()) <= ' ') s.remove_prefix(1);
  while (!s.empty() && static_cast<unsigned char>(s.back()) <= ' ') s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// --- DECIMAL arithmetic on digit strings (precision up to 38 exceeds int64).

struct DecimalNumber {
  bool negative = false;
  std::string integer;   // digits, may have leading zeros
  std::string fraction;  // digits
};

constexpr int kMaxDecimalExponent = 400;

// [+-] digits [. digits] | [+-] . digits, then an optional exponent e[+-]digits.
bool ParseDecimalNumber(std::string_view s, DecimalNumber* out) {
  DecimalNumber d;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    d.negative = s[i] == '-';
    ++i;
  }
  const size_t int_start = i;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  d.integer = std::string(s.substr(int_start, i - int_start));
  if (i < s.size() && s[i] == '.') {
    ++i;
    const size_t frac_start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    d.fraction = std::string(s.substr(frac_start, i - frac_start));
  }
  if (d.integer.empty() && d.fraction.empty()) return false;
  int exponent = 0;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
      exp_negative = s[i] == '-';
      ++i;
    }
    const size_t exp_start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    const std::string_view digits = s.substr(exp_start, i - exp_start);
    if (digits.empty() || digits.size() > 4) return false;
    exponent = std::stoi(std::string(digits));
    if (exponent > kMaxDecimalExponent) return false;
    if (exp_negative) exponent = -exponent;
  }
  if (i != s.size()) return false;
  if (exponent > 0) {
    const size_t moved = std::min(static_cast<size_t>(exponent), d.fraction.size());
    d.integer += d.fraction.substr(0, moved);
    d.fraction.erase(0, moved);
    d.integer.append(static_cast<size_t>(exponent) - moved, '0');
  } else if (exponent < 0) {
    const size_t shift = static_cast<size_t>(-exponent);
    if (d.integer.size() < shift) d.integer.insert(0, shift - d.integer.size(), '0');
    d.fraction.insert(0, d.integer.substr(d.integer.size() - shift));
    d.integer.erase(d.integer.size() - shift);
  }
  *out = std::move(d);
  return true;
}

void StripLeadingZeros(std::string* digits) {
  const size_t nz = digits->find_first_not_of('0');
  digits->erase(0, nz == std::string::npos ? digits->size() : nz);
}

bool IsZero(const DecimalNumber& d) {
  return d.integer.find_first_not_of('0') == std::string::npos &&
         d.fraction.find_first_not_of('0') == std::string::npos;
}

// Rounds half up to `scale` fraction digits (as Spark's CAST does) and formats;
// nullopt if more than precision - scale integer digits remain.
std::optional<std::string> FormatDecimal(DecimalNumber d, int precision, int scale) {
  const size_t s = static_cast<size_t>(scale);
  if (d.fraction.size() > s) {
    const bool round_up = d.fraction[s] >= '5';
    d.fraction.resize(s);
    if (round_up) {
      std::string all = d.integer + d.fraction;
      int i = static_cast<int>(all.size()) - 1;
      while (i >= 0 && all[static_cast<size_t>(i)] == '9') all[static_cast<size_t>(i--)] = '0';
      if (i >= 0) {
        ++all[static_cast<size_t>(i)];
      } else {
        all.insert(0, "1");
      }
      d.integer = all.substr(0, all.size() - s);
      d.fraction = all.substr(all.size() - s);
    }
  } else {
    d.fraction.append(s - d.fraction.size(), '0');
  }
  StripLeadingZeros(&d.integer);
  if (d.integer.size() > static_cast<size_t>(precision - scale)) return std::nullopt;
  const bool negative = d.negative && !IsZero(d);
  return absl::StrCat(negative ? "-" : "", d.integer.empty() ? "0" : d.integer,
                      scale > 0 ? "." : "", d.fraction);
}

int CompareDecimalNumbers(DecimalNumber a, DecimalNumber b) {
  StripLeadingZeros(&a.integer);
  StripLeadingZeros(&b.integer);
  if (IsZero(a)) a.negative = false;
  if (IsZero(b)) b.negative = false;
  if (a.negative != b.negative) return a.negative ? -1 : 1;
  int magnitude = 0;
  if (a.integer.size() != b.integer.size()) {
    magnitude = a.integer.size() < b.integer.size() ? -1 : 1;
  } else if (a.integer != b.integer) {
    magnitude = a.integer < b.integer ? -1 : 1;
  } else {
    const size_t n = std::max(a.fraction.size(), b.fraction.size());
    a.fraction.resize(n, '0');
    b.fraction.resize(n, '0');
    magnitude = a.fraction == b.fraction ? 0 : (a.fraction < b.fraction ? -1 : 1);
  }
  return a.negative ? -magnitude : magnitude;
}

// The decimal text of a stored exact-numeric (or double) value.
std::string NumberText(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return absl::StrCat(*i);
  if (const auto* d = std::get_if<double>(&v)) return FormatDouble(*d);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return "";
}

// --- DATE and TIMESTAMP text.

bool IsLeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && IsLeapYear(year)) return 29;
  return kDays[month - 1];
}

struct Cursor {
  std::string_view s;
  size_t i = 0;

  bool AtEnd() const { return i >= s.size(); }
  char Peek() const { return AtEnd() ? '\0' : s[i]; }
  bool Consume(char c) {
    if (Peek() != c || AtEnd()) return false;
    ++i;
    return true;
  }
  // Between min and max digits.
  bool Digits(size_t min, size_t max, int* out, size_t* count = nullptr) {
    size_t n = 0;
    int v = 0;
    while (n < max && !AtEnd() && s[i] >= '0' && s[i] <= '9') {
      v = v * 10 + (s[i] - '0');
      ++i;
      ++n;
    }
    if (count != nullptr) *count = n;
    *out = v;
    return n >= min;
  }
};

// yyyy[-[m]m[-[d]d]] (Spark's date prefix); *complete is false without a day.
bool ParseDatePrefix(Cursor* c, int* year, int* month, int* day, bool* complete) {
  *month = 1;
  *day = 1;
  *complete = false;
  if (!c->Digits(4, 4, year)) return false;
  if (c->AtEnd()) return true;
  if (!c->Consume('-') || !c->Digits(1, 2, month)) return false;
  if (c->AtEnd()) return true;
  if (!c->Consume('-') || !c->Digits(1, 2, day)) return false;
  *complete = true;
  return true;
}

bool ValidDate(int year, int month, int day) {
  return year >= 1 && month >= 1 && month <= 12 && day >= 1 && day <= DaysInMonth(year, month);
}

// Spark's string -> DATE: a date prefix, then nothing or ' ' / 'T' and anything.
std::optional<std::string> StringToDate(std::string_view text) {
  Cursor c{TrimForCast(text)};
  int year = 0, month = 0, day = 0;
  bool complete = false;
  if (!ParseDatePrefix(&c, &year, &month, &day, &complete)) return std::nullopt;
  if (!c.AtEnd() && !(complete && (c.Peek() == ' ' || c.Peek() == 'T'))) return std::nullopt;
  if (!ValidDate(year, month, day)) return std::nullopt;
  return absl::StrFormat("%04d-%02d-%02d", year, month, day);
}

// A zone suffix: Z, UTC, GMT, UT, [UTC|GMT|UT]+h[h][[:]mm] -> seconds east of UTC.
bool ParseZone(std::string_view zone, int64_t* offset) {
  *offset = 0;
  if (zone == "Z" || EqualsCi(zone, "UTC") || EqualsCi(zone, "GMT") || EqualsCi(zone, "UT")) {
    return true;
  }
  for (const char* prefix : {"UTC", "GMT", "UT"}) {
    if (zone.size() > 3 && absl::StartsWithIgnoreCase(AV(zone), prefix) &&
        (zone[strlen(prefix)] == '+' || zone[strlen(prefix)] == '-')) {
      zone.remove_prefix(strlen(prefix));
      break;
    }
  }
  Cursor c{zone};
  int sign = 1;
  if (c.Consume('-')) {
    sign = -1;
  } else if (!c.Consume('+')) {
    return false;
  }
  int hours = 0, minutes = 0;
  size_t n = 0;
  if (!c.Digits(1, 2, &hours, &n)) return false;
  if (!c.AtEnd()) {
    c.Consume(':');
    if (!c.Digits(2, 2, &minutes) || !c.AtEnd()) return false;
  }
  if (hours > 18 || minutes > 59) return false;
  *offset = sign * (hours * 3600 + minutes * 60);
  return true;
}

// Spark's string -> TIMESTAMP: a date, optionally ' ' or 'T' and
// [h]h:[m]m[:[s]s[.fraction]] and a zone (TIMESTAMP_NTZ ignores the zone).
std::optional<std::string> StringToTimestamp(std::string_view text, bool ntz) {
  Cursor c{TrimForCast(text)};
  int year = 0, month = 0, day = 0;
  bool complete = false;
  if (!ParseDatePrefix(&c, &year, &month, &day, &complete)) return std::nullopt;
  int hour = 0, minute = 0, second = 0;
  int micros = 0;
  int64_t offset = 0;
  if (!c.AtEnd()) {
    if (!complete || !(c.Consume(' ') || c.Consume('T'))) return std::nullopt;
    if (!c.Digits(1, 2, &hour) || !c.Consume(':') || !c.Digits(1, 2, &minute)) {
      return std::nullopt;
    }
    if (c.Consume(':')) {
      if (!c.Digits(1, 2, &second)) return std::nullopt;
      if (c.Consume('.')) {
        size_t n = 0;
        int fraction = 0;
        // Up to 9 digits; only microseconds are kept (Spark truncates).
        const size_t start = c.i;
        if (!c.Digits(1, 9, &fraction, &n)) return std::nullopt;
        std::string digits(c.s.substr(start, n));
        digits.resize(6, '0');
        micros = std::stoi(digits);
      }
    }
    c.Consume(' ');
    if (!c.AtEnd() && !ParseZone(c.s.substr(c.i), &offset)) return std::nullopt;
  }
  if (!ValidDate(year, month, day) || hour > 23 || minute > 59 || second > 59) return std::nullopt;
  absl::CivilSecond t(year, month, day, hour, minute, second);
  if (!ntz) t -= offset;
  if (t.year() < 1 || t.year() > 9999) return std::nullopt;
  return absl::StrFormat("%04d-%02d-%02d %02d:%02d:%02d.%06d", t.year(), t.month(), t.day(),
                         t.hour(), t.minute(), t.second(), micros);
}

// Spark's TIMESTAMP -> STRING: "2026-11-26 12:00:00", fraction only if non-zero.
std::string TimestampToString(const std::string& stored) {
  if (stored.size() != 26) return stored;
  std::string fraction = stored.substr(20);
  while (!fraction.empty() && fraction.back() == '0') fraction.pop_back();
  return absl::StrCat(stored.substr(0, 19), fraction.empty() ? "" : ".", fraction);
}

// --- Casts (ANSI mode, as Databricks SQL runs).

absl::Status CastInvalidInput(std::string_view text, const Type& from, const Type& to) {
  return SqlError("CAST_INVALID_INPUT",
                  absl::StrCat("The value '", AV(text), "' of the type \"", TypeSql(from),
                               "\" cannot be cast to \"", TypeSql(to),
                               "\" because it is malformed. Correct the value as per the syntax, "
                               "or change its target type. Use `try_cast` to tolerate malformed "
                               "input and return NULL instead."));
}

absl::Status CastOverflow(std::string_view text, const Type& from, const Type& to) {
  return SqlError("CAST_OVERFLOW",
                  absl::StrCat("The value ", AV(text), " of the type \"", TypeSql(from),
                               "\" cannot be cast to \"", TypeSql(to),
                               "\" due to an overflow. Use `try_cast` to tolerate overflow and "
                               "return NULL instead."));
}

absl::Status DecimalOutOfRange(std::string_view text, const Type& to) {
  return SqlError(
      "NUMERIC_VALUE_OUT_OF_RANGE.WITH_SUGGESTION",
      absl::StrCat(AV(text), " cannot be represented as Decimal(", to.precision, ", ", to.scale,
                   "). If necessary set \"spark.sql.ansi.enabled\" to \"false\" to "
                   "bypass this error, and return NULL instead."));
}

// Whether CAST(from AS to) is a valid expression (values may still fail).
bool CanCast(const Type& from, const Type& to) {
  if (from.kind == Kind::kNull || from == to) return true;
  if (to.kind == Kind::kString || from.kind == Kind::kString) return true;
  const auto numeric_or_bool = [](Kind k) { return IsNumeric(k) || k == Kind::kBoolean; };
  if (numeric_or_bool(from.kind) && numeric_or_bool(to.kind)) return true;
  const auto datetime = [](Kind k) { return k == Kind::kDate || IsTimestamp(k); };
  return datetime(from.kind) && datetime(to.kind);
}

// CAST(value AS STRING).
std::string ValueToString(const Value& v, const Type& from) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    if (from.kind == Kind::kBoolean) return *i != 0 ? "true" : "false";
    return absl::StrCat(*i);
  }
  if (const auto* d = std::get_if<double>(&v)) return FormatDouble(*d);
  if (const auto* s = std::get_if<std::string>(&v)) {
    if (IsTimestamp(from.kind)) return TimestampToString(*s);
    return *s;
  }
  return "";
}

// [+-]digits[.digits]: Spark's string -> integral accepts and truncates a fraction.
bool ParseIntegralText(std::string_view text, int64_t* out) {
  std::string_view s = text;
  const size_t dot = s.find('.');
  if (dot != std::string_view::npos) {
    if (!AllDigits(s.substr(dot + 1))) return false;
    s = s.substr(0, dot);
  }
  std::string_view digits = s;
  if (!digits.empty() && (digits[0] == '+' || digits[0] == '-')) digits.remove_prefix(1);
  if (digits.empty() || !AllDigits(digits)) return false;
  return absl::SimpleAtoi(AV(s), out);
}

absl::StatusOr<Value> CastValue(const Value& v, const Type& from, const Type& to) {
  if (IsNullValue(v) || from == to) return v;
  const std::string text = ValueToString(v, from);
  switch (to.kind) {
    case Kind::kNull:
      return Value{};
    case Kind::kString:
      return Value{text};
    case Kind::kBigint:
    case Kind::kInt:
    case Kind::kSmallint:
    case Kind::kTinyint: {
      int64_t out = 0;
      if (from.kind == Kind::kString) {
        if (!ParseIntegralText(TrimForCast(text), &out) || !FitsIntegral(to.kind, out)) {
          return CastInvalidInput(text, from, to);
        }
        return Value{out};
      }
      if (IsIntegral(from.kind) || from.kind == Kind::kBoolean) {
        out = std::get<int64_t>(v);
      } else if (from.kind == Kind::kDecimal) {
        DecimalNumber d;
        if (!ParseDecimalNumber(text, &d)) return CastInvalidInput(text, from, to);
        StripLeadingZeros(&d.integer);
        if (d.integer.size() > 19 ||
            !absl::SimpleAtoi(
                absl::StrCat(d.negative ? "-" : "", d.integer.empty() ? "0" : d.integer), &out)) {
          return CastOverflow(text, from, to);
        }
      } else if (from.kind == Kind::kDouble || from.kind == Kind::kFloat) {
        const double d = std::get<double>(v);
        if (!std::isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
          return CastOverflow(text, from, to);
        }
        out = static_cast<int64_t>(std::trunc(d));
      } else {
        break;
      }
      if (!FitsIntegral(to.kind, out)) return CastOverflow(text, from, to);
      return Value{out};
    }
    case Kind::kBoolean: {
      if (from.kind == Kind::kString) {
        const std::string t = Lower(TrimForCast(text));
        if (t == "t" || t == "true" || t == "y" || t == "yes" || t == "1") return Value{int64_t{1}};
        if (t == "f" || t == "false" || t == "n" || t == "no" || t == "0") return Value{int64_t{0}};
        return CastInvalidInput(text, from, to);
      }
      if (IsIntegral(from.kind)) return Value{int64_t{std::get<int64_t>(v) != 0 ? 1 : 0}};
      if (from.kind == Kind::kDouble || from.kind == Kind::kFloat) {
        return Value{int64_t{std::get<double>(v) != 0 ? 1 : 0}};
      }
      if (from.kind == Kind::kDecimal) {
        DecimalNumber d;
        if (!ParseDecimalNumber(text, &d)) return CastInvalidInput(text, from, to);
        return Value{int64_t{IsZero(d) ? 0 : 1}};
      }
      break;
    }
    case Kind::kDate: {
      if (from.kind == Kind::kString) {
        std::optional<std::string> date = StringToDate(text);
        if (!date.has_value()) return CastInvalidInput(text, from, to);
        return Value{*date};
      }
      if (IsTimestamp(from.kind)) return Value{std::get<std::string>(v).substr(0, 10)};
      break;
    }
    case Kind::kTimestamp:
    case Kind::kTimestampNtz: {
      if (from.kind == Kind::kString) {
        std::optional<std::string> ts = StringToTimestamp(text, to.kind == Kind::kTimestampNtz);
        if (!ts.has_value()) return CastInvalidInput(text, from, to);
        return Value{*ts};
      }
      if (from.kind == Kind::kDate) return Value{std::get<std::string>(v) + " 00:00:00.000000"};
      if (IsTimestamp(from.kind)) return v;  // the session time zone is UTC
      break;
    }
    case Kind::kDecimal: {
      std::string source = text;
      if (from.kind == Kind::kString) {
        source = std::string(TrimForCast(text));
      } else if (from.kind == Kind::kBoolean) {
        source = std::get<int64_t>(v) != 0 ? "1" : "0";
      } else if ((from.kind == Kind::kDouble || from.kind == Kind::kFloat) &&
                 !std::isfinite(std::get<double>(v))) {
        return CastOverflow(text, from, to);
      } else if (!IsNumeric(from.kind)) {
        break;
      }
      DecimalNumber d;
      if (!ParseDecimalNumber(source, &d)) return CastInvalidInput(text, from, to);
      std::optional<std::string> out = FormatDecimal(d, to.precision, to.scale);
      if (!out.has_value()) return DecimalOutOfRange(text, to);
      return Value{*out};
    }
    case Kind::kDouble:
    case Kind::kFloat: {
      double d = 0;
      if (from.kind == Kind::kString || from.kind == Kind::kDecimal) {
        const std::string_view t = TrimForCast(text);
        if (!absl::SimpleAtod(AV(t), &d)) return CastInvalidInput(text, from, to);
      } else if (IsIntegral(from.kind) || from.kind == Kind::kBoolean) {
        d = static_cast<double>(std::get<int64_t>(v));
      } else if (from.kind == Kind::kDouble || from.kind == Kind::kFloat) {
        d = std::get<double>(v);
      } else {
        break;
      }
      if (to.kind == Kind::kFloat) d = static_cast<double>(static_cast<float>(d));
      return Value{d};
    }
  }
  return absl::InternalError(
      absl::StrCat("fake SQL engine: no cast from ", TypeSql(from), " to ", TypeSql(to)));
}

// A stored value as the Statement Execution API's data_array shows it.
std::optional<std::string> DisplayValue(const Value& v, const Type& type) {
  if (IsNullValue(v)) return std::nullopt;
  if (IsTimestamp(type.kind)) {
    if (const auto* s = std::get_if<std::string>(&v); s != nullptr && s->size() == 26) {
      std::string out = *s;
      out[10] = 'T';
      if (type.kind == Kind::kTimestamp) out.push_back('Z');
      return out;
    }
  }
  return ValueToString(v, type);
}

// ---------------------------------------------------------------------------
// Lexer

enum class TokKind { kEnd, kWord, kQuotedIdent, kString, kNumber, kParam, kPunct };

struct Token {
  TokKind kind = TokKind::kEnd;
  std::string text;  // words and numbers as written; identifiers and strings unescaped
  size_t pos = 0;    // byte offsets in the statement
  size_t end = 0;
};

// "(line 1, pos 7)" for byte offset `pos`, as Spark reports positions.
std::string Position(std::string_view sql, size_t pos) {
  pos = std::min(pos, sql.size());
  const size_t line = 1 + static_cast<size_t>(std::count(
                              sql.begin(), sql.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
  const size_t line_start = sql.rfind('\n', pos == 0 ? 0 : pos - 1);
  const size_t column =
      line_start == std::string_view::npos || pos == 0 ? pos : pos - line_start - 1;
  return absl::StrCat("(line ", line, ", pos ", column, ")");
}

absl::Status SyntaxError(std::string_view sql, size_t pos, size_t end, std::string_view detail) {
  const std::string near =
      end > pos ? absl::StrCat("'", AV(sql.substr(pos, std::min<size_t>(end - pos, 40))), "'")
                : std::string("end of input");
  return SqlError("PARSE_SYNTAX_ERROR",
                  absl::StrCat("Syntax error at or near ", near, detail.empty() ? "" : ": ",
                               AV(detail), ". ", Position(sql, pos)));
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool IsWordStart(char c) { return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool IsWordChar(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool HexValue(std::string_view s, uint32_t* out) {
  uint32_t v = 0;
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
    v = v * 16 + static_cast<uint32_t>(IsDigit(c) ? c - '0' : absl::ascii_tolower(c) - 'a' + 10);
  }
  *out = v;
  return true;
}

// The body of a string literal starting at sql[*i] (the quote), unescaped as
// Spark's unescapeSQLString does: \uXXXX, \UXXXXXXXX, \ooo (octal), \0 \b \n \r
// \t \Z, \% and \_ kept with their backslash, and \x -> x for any other x.
bool LexString(std::string_view sql, size_t* i, std::string* out) {
  const char quote = sql[*i];
  size_t j = *i + 1;
  while (j < sql.size()) {
    const char c = sql[j];
    if (c == quote) {
      *i = j + 1;
      return true;
    }
    if (c != '\\') {
      out->push_back(c);
      ++j;
      continue;
    }
    if (j + 1 >= sql.size()) return false;
    const char n = sql[j + 1];
    uint32_t cp = 0;
    if (n == 'u' && j + 6 <= sql.size() && HexValue(sql.substr(j + 2, 4), &cp)) {
      j += 6;
      // A UTF-16 surrogate pair written as two escapes.
      uint32_t low = 0;
      if (cp >= 0xD800 && cp <= 0xDBFF && j + 6 <= sql.size() && sql[j] == '\\' &&
          sql[j + 1] == 'u' && HexValue(sql.substr(j + 2, 4), &low) && low >= 0xDC00 &&
          low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        j += 6;
      }
      AppendUtf8(cp, out);
      continue;
    }
    if (n == 'U' && j + 10 <= sql.size() && HexValue(sql.substr(j + 2, 8), &cp) && cp <= 0x10FFFF) {
      AppendUtf8(cp, out);
      j += 10;
      continue;
    }
    if (n >= '0' && n <= '3' && j + 3 < sql.size() && sql[j + 2] >= '0' && sql[j + 2] <= '7' &&
        sql[j + 3] >= '0' && sql[j + 3] <= '7') {
      AppendUtf8(
          static_cast<uint32_t>((n - '0') * 64 + (sql[j + 2] - '0') * 8 + (sql[j + 3] - '0')), out);
      j += 4;
      continue;
    }
    switch (n) {
      case '0':
        out->push_back('\0');
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'Z':
        out->push_back('\x1A');
        break;
      case '%':
      case '_':
        out->push_back('\\');
        out->push_back(n);
        break;
      default:
        out->push_back(n);
    }
    j += 2;
  }
  return false;
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view sql, bool allow_params) {
  std::vector<Token> tokens;
  size_t i = 0;
  const size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      // Bracketed comments nest in Spark.
      const size_t start = i;
      int depth = 0;
      do {
        if (i + 1 < n && sql[i] == '/' && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (i + 1 < n && sql[i] == '*' && sql[i + 1] == '/') {
          --depth;
          i += 2;
        } else {
          ++i;
        }
      } while (depth > 0 && i < n);
      if (depth > 0) return SyntaxError(sql, start, n, "unclosed bracketed comment");
      continue;
    }
    Token t;
    t.pos = i;
    if (IsWordStart(c)) {
      while (i < n && IsWordChar(sql[i])) ++i;
      t.kind = TokKind::kWord;
      t.text = std::string(sql.substr(t.pos, i - t.pos));
    } else if (IsDigit(c) || (c == '.' && i + 1 < n && IsDigit(sql[i + 1]))) {
      while (i < n && IsDigit(sql[i])) ++i;
      if (i < n && sql[i] == '.') {
        ++i;
        while (i < n && IsDigit(sql[i])) ++i;
      }
      if (i < n && (sql[i] == 'e' || sql[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (sql[j] == '+' || sql[j] == '-')) ++j;
        if (j < n && IsDigit(sql[j])) {
          i = j;
          while (i < n && IsDigit(sql[i])) ++i;
        }
      }
      // Type suffixes: 10L, 1S, 1Y, 1.5D, 1.5F, 1.5BD.
      while (i < n && IsWordChar(sql[i])) ++i;
      t.kind = TokKind::kNumber;
      t.text = std::string(sql.substr(t.pos, i - t.pos));
    } else if (c == '`') {
      size_t j = i + 1;
      bool closed = false;
      while (j < n) {
        if (sql[j] == '`') {
          if (j + 1 < n && sql[j + 1] == '`') {
            t.text.push_back('`');
            j += 2;
            continue;
          }
          closed = true;
          ++j;
          break;
        }
        t.text.push_back(sql[j++]);
      }
      if (!closed) return SyntaxError(sql, i, n, "unclosed quoted identifier");
      t.kind = TokKind::kQuotedIdent;
      i = j;
    } else if (c == '\'' || c == '"') {
      const size_t start = i;
      if (!LexString(sql, &i, &t.text)) {
        return SyntaxError(sql, start, n, "unclosed string literal");
      }
      t.kind = TokKind::kString;
    } else if (c == ':' && allow_params && i + 1 < n && IsWordStart(sql[i + 1])) {
      ++i;
      while (i < n && IsWordChar(sql[i])) ++i;
      t.kind = TokKind::kParam;
      t.text = std::string(sql.substr(t.pos + 1, i - t.pos - 1));
    } else {
      static constexpr std::string_view kPuncts[] = {"<=>", "<=", ">=", "<>", "!=", "==", "(",
                                                     ")",   ",",  ".",  ";",  "*",  "=",  "<",
                                                     ">",   "-",  "+",  "/",  "%",  ":"};
      for (std::string_view p : kPuncts) {
        if (sql.substr(i, p.size()) == p) {
          t.kind = TokKind::kPunct;
          t.text = std::string(p);
          i += p.size();
          break;
        }
      }
      if (t.kind != TokKind::kPunct) return SyntaxError(sql, i, i + 1, "unexpected character");
    }
    t.end = i;
    tokens.push_back(std::move(t));
  }
  Token end;
  end.pos = end.end = n;
  tokens.push_back(end);
  return tokens;
}

// ---------------------------------------------------------------------------
// Syntax tree

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  kLiteral,   // value, type
  kParam,     // name
  kColumn,    // parts: [qualifier.]column
  kCast,      // args[0], type
  kCompare,   // op, args[0], args[1]
  kAnd,       // args[0], args[1]
  kOr,        // args[0], args[1]
  kNot,       // args[0]
  kIsNull,    // args[0], negated
  kFunction,  // name (lowercase), args
  kStar,      // parts: qualifier (empty for *)
};

struct Expr {
  ExprKind kind = ExprKind::kLiteral;
  size_t pos = 0;
  std::string text;  // as written, for error messages and result column names
  Value value;
  Type type;
  std::string name;
  std::vector<std::string> parts;
  std::string op;
  bool negated = false;
  std::vector<ExprPtr> args;
};

struct NameRef {
  std::vector<std::string> parts;  // as written (unquoted)
  size_t pos = 0;
};

struct Query;

struct FromItem {
  enum class Kind { kNone, kTable, kSubquery };
  Kind kind = Kind::kNone;
  NameRef table;
  std::unique_ptr<Query> subquery;
  std::string alias;  // "" if none
};

struct SelectItem {
  ExprPtr expr;
  std::string alias;
};

struct OrderItem {
  ExprPtr expr;
  bool desc = false;
  int nulls = 0;  // 0: default, 1: NULLS FIRST, 2: NULLS LAST
};

struct Query {
  std::vector<SelectItem> items;
  FromItem from;
  ExprPtr where;
  std::vector<OrderItem> order;
  std::optional<int64_t> limit;
};

struct ColumnDef {
  std::string name;
  Type type;
  bool not_null = false;
  std::string comment;
};

struct CreateSchemaStmt {
  NameRef name;
  bool if_not_exists = false;
  std::string comment;
};

struct CreateTableStmt {
  NameRef name;
  bool if_not_exists = false;
  std::vector<ColumnDef> columns;
  std::vector<std::string> cluster_by;
  std::string comment;
  std::vector<std::pair<std::string, std::string>> properties;
};

struct AddColumnsStmt {
  NameRef name;
  std::vector<ColumnDef> columns;
};

struct MergeClause {
  enum class Action { kUpdate, kUpdateAll, kDelete, kInsert, kInsertAll };
  Action action = Action::kUpdate;
  bool matched = true;
  ExprPtr condition;                                     // may be null
  std::vector<std::pair<NameRef, ExprPtr>> assignments;  // UPDATE SET
  std::vector<NameRef> insert_columns;                   // INSERT (...)
  std::vector<ExprPtr> insert_values;                    // VALUES (...)
};

struct MergeStmt {
  NameRef target;
  std::string target_alias;
  FromItem source;
  ExprPtr on;
  std::vector<MergeClause> clauses;
};

using Statement = std::variant<Query, CreateSchemaStmt, CreateTableStmt, AddColumnsStmt, MergeStmt>;

// ---------------------------------------------------------------------------
// Parser: recursive descent over the tokens. The first error is kept in
// status_; parse functions return false / nullptr once it is set.

// Words that cannot be bare identifiers or aliases here.
bool IsReserved(std::string_view word) {
  static const std::set<std::string, std::less<>>* const kReserved =
      new std::set<std::string, std::less<>>{
          "all",    "and",       "as",     "asc",  "between",  "by",     "case",   "cast",
          "create", "cross",     "delete", "desc", "distinct", "else",   "end",    "except",
          "exists", "false",     "from",   "full", "group",    "having", "in",     "inner",
          "insert", "intersect", "into",   "is",   "join",     "left",   "like",   "limit",
          "merge",  "minus",     "not",    "null", "on",       "or",     "order",  "outer",
          "right",  "select",    "set",    "then", "true",     "union",  "update", "using",
          "values", "when",      "where",  "with"};
  return kReserved->count(Lower(word)) > 0;
}

class Parser {
 public:
  Parser(std::string_view sql, std::vector<Token> tokens) : sql_(sql), tokens_(std::move(tokens)) {}

  absl::StatusOr<Statement> ParseStatement() {
    Statement statement;
    if (PeekKeyword("select")) {
      Query q;
      if (ParseQuery(&q)) statement = std::move(q);
    } else if (PeekKeyword("create") && (PeekKeyword("schema", 1) || PeekKeyword("database", 1))) {
      CreateSchemaStmt s;
      if (ParseCreateSchema(&s)) statement = std::move(s);
    } else if (PeekKeyword("create") && PeekKeyword("table", 1)) {
      CreateTableStmt s;
      if (ParseCreateTable(&s)) statement = std::move(s);
    } else if (PeekKeyword("alter")) {
      AddColumnsStmt s;
      if (ParseAddColumns(&s)) statement = std::move(s);
    } else if (PeekKeyword("merge")) {
      MergeStmt s;
      if (ParseMerge(&s)) statement = std::move(s);
    } else {
      Fail(
          "the fake SQL engine runs SELECT, CREATE SCHEMA, CREATE TABLE, ALTER TABLE ADD "
          "COLUMNS and MERGE");
    }
    if (status_.ok()) {
      AcceptPunct(";");
      if (Peek().kind != TokKind::kEnd) Fail("expected end of statement (one statement only)");
    }
    if (!status_.ok()) return status_;
    return statement;
  }

  // ARRAY<STRUCT<name[:] TYPE [NOT NULL] [COMMENT '...'], ...>>, the from_json
  // schema the MERGE source uses.
  absl::StatusOr<std::vector<std::pair<std::string, Type>>> ParseArrayOfStructSchema() {
    std::vector<std::pair<std::string, Type>> fields;
    if (ExpectKeyword("array") && ExpectPunct("<") && ExpectKeyword("struct") && ExpectPunct("<")) {
      do {
        std::string name;
        Type type;
        if (!ParseIdentifier(&name, /*allow_reserved=*/true)) break;
        AcceptPunct(":");
        if (!ParseType(&type)) break;
        if (AcceptKeyword("not") && !ExpectKeyword("null")) break;
        std::string comment;
        if (AcceptKeyword("comment") && !ParseString(&comment)) break;
        fields.emplace_back(std::move(name), type);
      } while (AcceptPunct(","));
      if (status_.ok() && ExpectPunct(">") && ExpectPunct(">") && Peek().kind != TokKind::kEnd) {
        Fail("expected end of schema");
      }
    }
    if (!status_.ok()) return status_;
    return fields;
  }

 private:
  const Token& Peek(size_t k = 0) const { return tokens_[std::min(i_ + k, tokens_.size() - 1)]; }
  const Token& Next() {
    const Token& t = Peek();
    if (i_ < tokens_.size() - 1) ++i_;
    return t;
  }
  size_t PrevEnd() const { return i_ == 0 ? 0 : tokens_[i_ - 1].end; }

  bool PeekKeyword(std::string_view kw, size_t k = 0) const {
    const Token& t = Peek(k);
    return t.kind == TokKind::kWord && EqualsCi(t.text, kw);
  }
  bool AcceptKeyword(std::string_view kw) {
    if (!status_.ok() || !PeekKeyword(kw)) return false;
    Next();
    return true;
  }
  bool ExpectKeyword(std::string_view kw) {
    if (AcceptKeyword(kw)) return true;
    return Fail(absl::StrCat("expected ", absl::AsciiStrToUpper(AV(kw))));
  }
  bool PeekPunct(std::string_view p, size_t k = 0) const {
    const Token& t = Peek(k);
    return t.kind == TokKind::kPunct && t.text == p;
  }
  bool AcceptPunct(std::string_view p) {
    if (!status_.ok() || !PeekPunct(p)) return false;
    Next();
    return true;
  }
  bool ExpectPunct(std::string_view p) {
    if (AcceptPunct(p)) return true;
    return Fail(absl::StrCat("expected '", AV(p), "'"));
  }
  bool Fail(std::string_view detail) {
    if (status_.ok()) status_ = SyntaxError(sql_, Peek().pos, Peek().end, detail);
    return false;
  }
  bool FailWith(absl::Status status) {
    if (status_.ok()) status_ = std::move(status);
    return false;
  }

  // A word (not reserved unless allowed) or a `quoted` identifier.
  bool ParseIdentifier(std::string* out, bool allow_reserved = false) {
    if (!status_.ok()) return false;
    const Token& t = Peek();
    if (t.kind == TokKind::kQuotedIdent) {
      if (t.text.empty()) return Fail("empty identifier");
      *out = t.text;
      Next();
      return true;
    }
    if (t.kind == TokKind::kWord && (allow_reserved || !IsReserved(t.text))) {
      *out = t.text;
      Next();
      return true;
    }
    return Fail("expected an identifier");
  }

  bool PeekIdentifier(size_t k = 0) const {
    const Token& t = Peek(k);
    return t.kind == TokKind::kQuotedIdent || (t.kind == TokKind::kWord && !IsReserved(t.text));
  }

  // ident (. ident)*
  bool ParseName(NameRef* out) {
    out->pos = Peek().pos;
    std::string part;
    if (!ParseIdentifier(&part)) return false;
    out->parts.push_back(part);
    while (AcceptPunct(".")) {
      if (!ParseIdentifier(&part, /*allow_reserved=*/true)) return false;
      out->parts.push_back(part);
    }
    return true;
  }

  // One or more adjacent string literals ('a' 'b' is 'ab', as in Spark).
  bool ParseString(std::string* out) {
    if (!status_.ok()) return false;
    if (Peek().kind != TokKind::kString) return Fail("expected a string literal");
    out->clear();
    while (Peek().kind == TokKind::kString) *out += Next().text;
    return true;
  }

  bool ParseType(Type* out) {
    if (!status_.ok()) return false;
    const Token& t = Peek();
    if (t.kind != TokKind::kWord) return Fail("expected a data type");
    const std::string name = Lower(t.text);
    const size_t pos = t.pos;
    Next();
    std::vector<int> args;
    if (AcceptPunct("(")) {
      do {
        const Token& a = Peek();
        int v = 0;
        if (a.kind != TokKind::kNumber || !absl::SimpleAtoi(a.text, &v)) {
          return Fail("expected an integer type argument");
        }
        Next();
        args.push_back(v);
      } while (AcceptPunct(","));
      if (!ExpectPunct(")")) return false;
    }
    std::optional<Type> type = TypeFromName(name, args);
    if (!type.has_value()) return FailWith(UnsupportedType(sql_.substr(pos, PrevEnd() - pos)));
    *out = *type;
    return true;
  }

  ExprPtr NewExpr(ExprKind kind, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
  }
  void SetText(Expr* e) { e->text = std::string(sql_.substr(e->pos, PrevEnd() - e->pos)); }

  ExprPtr ParseExpr() { return ParseOr(); }

  ExprPtr ParseOr() {
    const size_t pos = Peek().pos;
    ExprPtr left = ParseAnd();
    while (left != nullptr && AcceptKeyword("or")) {
      ExprPtr right = ParseAnd();
      if (right == nullptr) return nullptr;
      ExprPtr e = NewExpr(ExprKind::kOr, pos);
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      SetText(e.get());
      left = std::move(e);
    }
    return left;
  }

  ExprPtr ParseAnd() {
    const size_t pos = Peek().pos;
    ExprPtr left = ParseNot();
    while (left != nullptr && AcceptKeyword("and")) {
      ExprPtr right = ParseNot();
      if (right == nullptr) return nullptr;
      ExprPtr e = NewExpr(ExprKind::kAnd, pos);
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      SetText(e.get());
      left = std::move(e);
    }
    return left;
  }

  ExprPtr ParseNot() {
    const size_t pos = Peek().pos;
    if (AcceptKeyword("not")) {
      ExprPtr operand = ParseNot();
      if (operand == nullptr) return nullptr;
      ExprPtr e = NewExpr(ExprKind::kNot, pos);
      e->args.push_back(std::move(operand));
      SetText(e.get());
      return e;
    }
    return ParseComparison();
  }

  ExprPtr ParseComparison() {
    const size_t pos = Peek().pos;
    ExprPtr left = ParsePrimary();
    if (left == nullptr) return nullptr;
    static constexpr std::string_view kOps[] = {"<=>", "=", "==", "<>", "!=", "<", "<=", ">", ">="};
    for (std::string_view op : kOps) {
      if (!PeekPunct(op)) continue;
      Next();
      ExprPtr right = ParsePrimary();
      if (right == nullptr) return nullptr;
      ExprPtr e = NewExpr(ExprKind::kCompare, pos);
      e->op = std::string(op);
      e->args.push_back(std::move(left));
      e->args.push_back(std::move(right));
      SetText(e.get());
      left = std::move(e);
      break;
    }
    if (AcceptKeyword("is")) {
      ExprPtr e = NewExpr(ExprKind::kIsNull, pos);
      e->negated = AcceptKeyword("not");
      if (!ExpectKeyword("null")) return nullptr;
      e->args.push_back(std::move(left));
      SetText(e.get());
      left = std::move(e);
    }
    return left;
  }

  // A numeric literal: INT, BIGINT or DECIMAL(p,0) by size; DECIMAL(p,s) with a
  // point; DOUBLE with an exponent; suffixes L, S, Y, D, F, BD as in Spark.
  ExprPtr ParseNumber(bool negative, size_t pos) {
    const Token t = Next();
    std::string text = t.text;
    std::string suffix;
    while (!text.empty() && absl::ascii_isalpha(static_cast<unsigned char>(text.back()))) {
      suffix.insert(suffix.begin(), absl::ascii_tolower(static_cast<unsigned char>(text.back())));
      text.pop_back();
    }
    ExprPtr e = NewExpr(ExprKind::kLiteral, pos);
    const std::string signed_text = absl::StrCat(negative ? "-" : "", text);
    const bool has_point = absl::StrContains(text, '.');
    const bool has_exponent = text.find_first_of("eE") != std::string::npos;
    DecimalNumber d;
    if (!ParseDecimalNumber(signed_text, &d)) {
      FailWith(SyntaxError(sql_, t.pos, t.end, "invalid numeric literal"));
      return nullptr;
    }
    auto integral = [&](Kind kind) -> bool {
      int64_t v = 0;
      if (has_point || has_exponent || !absl::SimpleAtoi(signed_text, &v) ||
          !FitsIntegral(kind, v)) {
        return false;
      }
      e->value = v;
      e->type = MakeType(kind);
      return true;
    };
    bool ok = true;
    if (suffix == "l") {
      ok = integral(Kind::kBigint);
    } else if (suffix == "s") {
      ok = integral(Kind::kSmallint);
    } else if (suffix == "y") {
      ok = integral(Kind::kTinyint);
    } else if (suffix == "d" || suffix == "f" || (suffix.empty() && has_exponent)) {
      double v = 0;
      ok = absl::SimpleAtod(signed_text, &v) && std::isfinite(v);
      e->value = suffix == "f" ? static_cast<double>(static_cast<float>(v)) : v;
      e->type = MakeType(suffix == "f" ? Kind::kFloat : Kind::kDouble);
    } else if (suffix.empty() && !has_point && (integral(Kind::kInt) || integral(Kind::kBigint))) {
      ok = true;
    } else if (suffix.empty() || suffix == "bd") {
      std::string unscaled = d.integer + d.fraction;
      StripLeadingZeros(&unscaled);
      const int scale = static_cast<int>(d.fraction.size());
      const int precision = std::max<int>({static_cast<int>(unscaled.size()), scale, 1});
      std::optional<std::string> v;
      if (precision <= 38) v = FormatDecimal(d, precision, scale);
      ok = v.has_value();
      if (ok) {
        e->value = *v;
        e->type = DecimalType(precision, scale);
      }
    } else {
      ok = false;
    }
    if (!ok) {
      FailWith(SyntaxError(sql_, t.pos, t.end, "invalid numeric literal"));
      return nullptr;
    }
    SetText(e.get());
    return e;
  }

  ExprPtr ParsePrimary() {
    if (!status_.ok()) return nullptr;
    const Token& t = Peek();
    const size_t pos = t.pos;
    if (t.kind == TokKind::kNumber) return ParseNumber(false, pos);
    if (PeekPunct("-") && Peek(1).kind == TokKind::kNumber) {
      Next();
      return ParseNumber(true, pos);
    }
    if (t.kind == TokKind::kString) {
      ExprPtr e = NewExpr(ExprKind::kLiteral, pos);
      std::string s;
      ParseString(&s);
      e->value = std::move(s);
      e->type = MakeType(Kind::kString);
      SetText(e.get());
      return e;
    }
    if (t.kind == TokKind::kParam) {
      ExprPtr e = NewExpr(ExprKind::kParam, pos);
      e->name = Next().text;
      SetText(e.get());
      return e;
    }
    if (AcceptPunct("(")) {
      if (PeekKeyword("select")) {
        Fail("the fake SQL engine supports no scalar subqueries");
        return nullptr;
      }
      ExprPtr inner = ParseExpr();
      if (inner == nullptr || !ExpectPunct(")")) return nullptr;
      inner->pos = pos;
      SetText(inner.get());
      return inner;
    }
    if (t.kind == TokKind::kWord) {
      const std::string word = Lower(t.text);
      if (word == "null" || word == "true" || word == "false") {
        Next();
        ExprPtr e = NewExpr(ExprKind::kLiteral, pos);
        if (word == "null") {
          e->type = MakeType(Kind::kNull);
        } else {
          e->value = int64_t{word == "true" ? 1 : 0};
          e->type = MakeType(Kind::kBoolean);
        }
        SetText(e.get());
        return e;
      }
      if (word == "cast") {
        Next();
        ExprPtr e = NewExpr(ExprKind::kCast, pos);
        if (!ExpectPunct("(")) return nullptr;
        ExprPtr operand = ParseExpr();
        if (operand == nullptr || !ExpectKeyword("as") || !ParseType(&e->type) ||
            !ExpectPunct(")")) {
          return nullptr;
        }
        e->args.push_back(std::move(operand));
        SetText(e.get());
        return e;
      }
      if ((word == "date" || word == "timestamp" || word == "timestamp_ntz" ||
           word == "timestamp_ltz") &&
          Peek(1).kind == TokKind::kString) {
        Next();
        std::string s;
        ParseString(&s);
        ExprPtr e = NewExpr(ExprKind::kLiteral, pos);
        e->type = *TypeFromName(word, {});
        absl::StatusOr<Value> v = CastValue(Value{s}, MakeType(Kind::kString), e->type);
        if (!v.ok()) {
          FailWith(
              SqlError("INVALID_TYPED_LITERAL",
                       absl::StrCat("The value of the typed literal \"",
                                    absl::AsciiStrToUpper(word), "\" is invalid: '", s, "'.")));
          return nullptr;
        }
        e->value = *std::move(v);
        SetText(e.get());
        return e;
      }
      if (PeekPunct("(", 1) && !IsReserved(word)) {
        Next();
        Next();
        ExprPtr e = NewExpr(ExprKind::kFunction, pos);
        e->name = word;
        if (!PeekPunct(")")) {
          do {
            if (PeekPunct("*")) {
              ExprPtr star = NewExpr(ExprKind::kStar, Next().pos);
              SetText(star.get());
              e->args.push_back(std::move(star));
              continue;
            }
            ExprPtr arg = ParseExpr();
            if (arg == nullptr) return nullptr;
            e->args.push_back(std::move(arg));
          } while (AcceptPunct(","));
        }
        if (!ExpectPunct(")")) return nullptr;
        SetText(e.get());
        return e;
      }
    }
    if (PeekIdentifier()) {
      ExprPtr e = NewExpr(ExprKind::kColumn, pos);
      std::string part;
      ParseIdentifier(&part);
      e->parts.push_back(part);
      while (PeekPunct(".") && !PeekPunct("*", 1)) {
        Next();
        if (!ParseIdentifier(&part, /*allow_reserved=*/true)) return nullptr;
        e->parts.push_back(part);
      }
      SetText(e.get());
      return e;
    }
    Fail("expected an expression");
    return nullptr;
  }

  // * | qualifier.* | expr [[AS] alias]
  bool ParseSelectItem(SelectItem* item) {
    const size_t pos = Peek().pos;
    // Look ahead for [ident .]* '*'.
    size_t k = 0;
    while (PeekIdentifier(k) && PeekPunct(".", k + 1)) k += 2;
    if (PeekPunct("*", k)) {
      ExprPtr star = NewExpr(ExprKind::kStar, pos);
      for (size_t j = 0; j < k; j += 2) {
        std::string part;
        ParseIdentifier(&part);
        star->parts.push_back(part);
        ExpectPunct(".");
      }
      ExpectPunct("*");
      SetText(star.get());
      item->expr = std::move(star);
      return status_.ok();
    }
    item->expr = ParseExpr();
    if (item->expr == nullptr) return false;
    if (AcceptKeyword("as")) return ParseIdentifier(&item->alias);
    if (PeekIdentifier()) return ParseIdentifier(&item->alias);
    return true;
  }

  // table [[AS] alias] | ( query ) [[AS] alias]
  bool ParseFromItem(FromItem* item) {
    if (AcceptPunct("(")) {
      item->kind = FromItem::Kind::kSubquery;
      item->subquery = std::make_unique<Query>();
      if (!ParseQuery(item->subquery.get()) || !ExpectPunct(")")) return false;
    } else {
      item->kind = FromItem::Kind::kTable;
      if (!ParseName(&item->table)) return false;
    }
    if (AcceptKeyword("as")) return ParseIdentifier(&item->alias);
    if (PeekIdentifier()) return ParseIdentifier(&item->alias);
    return true;
  }

  bool ParseQuery(Query* q) {
    if (!ExpectKeyword("select")) return false;
    do {
      SelectItem item;
      if (!ParseSelectItem(&item)) return false;
      q->items.push_back(std::move(item));
    } while (AcceptPunct(","));
    if (AcceptKeyword("from") && !ParseFromItem(&q->from)) return false;
    if (AcceptKeyword("where")) {
      q->where = ParseExpr();
      if (q->where == nullptr) return false;
    }
    if (AcceptKeyword("order")) {
      if (!ExpectKeyword("by")) return false;
      do {
        OrderItem item;
        item.expr = ParseExpr();
        if (item.expr == nullptr) return false;
        if (AcceptKeyword("desc")) {
          item.desc = true;
        } else {
          AcceptKeyword("asc");
        }
        if (AcceptKeyword("nulls")) {
          if (AcceptKeyword("first")) {
            item.nulls = 1;
          } else if (ExpectKeyword("last")) {
            item.nulls = 2;
          } else {
            return false;
          }
        }
        q->order.push_back(std::move(item));
      } while (AcceptPunct(","));
    }
    if (AcceptKeyword("limit")) {
      int64_t n = 0;
      if (Peek().kind != TokKind::kNumber || !absl::SimpleAtoi(Peek().text, &n) || n < 0) {
        return Fail("expected a row count");
      }
      Next();
      q->limit = n;
    }
    return status_.ok();
  }

  bool ParseIfNotExists(bool* out) {
    *out = false;
    if (!AcceptKeyword("if")) return true;
    if (!ExpectKeyword("not") || !ExpectKeyword("exists")) return false;
    *out = true;
    return true;
  }

  bool ParseCreateSchema(CreateSchemaStmt* s) {
    ExpectKeyword("create");
    if (!AcceptKeyword("schema") && !ExpectKeyword("database")) return false;
    if (!ParseIfNotExists(&s->if_not_exists) || !ParseName(&s->name)) return false;
    if (AcceptKeyword("comment")) return ParseString(&s->comment);
    return status_.ok();
  }

  // name TYPE [NOT NULL] [COMMENT '...'] (the last two in any order)
  bool ParseColumnDef(ColumnDef* c, bool allow_not_null) {
    if (!ParseIdentifier(&c->name, /*allow_reserved=*/true) || !ParseType(&c->type)) return false;
    bool seen_comment = false;
    while (status_.ok()) {
      if (allow_not_null && !c->not_null && PeekKeyword("not")) {
        Next();
        if (!ExpectKeyword("null")) return false;
        c->not_null = true;
      } else if (!seen_comment && AcceptKeyword("comment")) {
        if (!ParseString(&c->comment)) return false;
        seen_comment = true;
      } else {
        break;
      }
    }
    return status_.ok();
  }

  bool ParseCreateTable(CreateTableStmt* s) {
    ExpectKeyword("create");
    ExpectKeyword("table");
    if (!ParseIfNotExists(&s->if_not_exists) || !ParseName(&s->name) || !ExpectPunct("(")) {
      return false;
    }
    do {
      ColumnDef c;
      if (!ParseColumnDef(&c, /*allow_not_null=*/true)) return false;
      s->columns.push_back(std::move(c));
    } while (AcceptPunct(","));
    if (!ExpectPunct(")")) return false;
    // Table clauses, each at most once, in any order.
    std::set<std::string> seen;
    while (status_.ok() && Peek().kind == TokKind::kWord) {
      const std::string clause = Lower(Peek().text);
      if (clause != "using" && clause != "cluster" && clause != "comment" &&
          clause != "tblproperties") {
        break;
      }
      if (!seen.insert(clause).second) return Fail("duplicate clause");
      Next();
      if (clause == "using") {
        if (!PeekKeyword("delta")) return Fail("the fake SQL engine only creates Delta tables");
        Next();
      } else if (clause == "cluster") {
        if (!ExpectKeyword("by") || !ExpectPunct("(")) return false;
        do {
          std::string column;
          if (!ParseIdentifier(&column, /*allow_reserved=*/true)) return false;
          s->cluster_by.push_back(column);
        } while (AcceptPunct(","));
        if (!ExpectPunct(")")) return false;
      } else if (clause == "comment") {
        if (!ParseString(&s->comment)) return false;
      } else {
        if (!ExpectPunct("(")) return false;
        do {
          std::string key;
          if (Peek().kind == TokKind::kString) {
            ParseString(&key);
          } else {
            NameRef name;
            if (!ParseName(&name)) return false;
            key = absl::StrJoin(name.parts, ".");
          }
          AcceptPunct("=");
          std::string value;
          const Token& v = Peek();
          if (v.kind == TokKind::kString) {
            ParseString(&value);
          } else if (v.kind == TokKind::kNumber ||
                     (v.kind == TokKind::kWord &&
                      (EqualsCi(v.text, "true") || EqualsCi(v.text, "false")))) {
            value = Lower(Next().text);
          } else {
            return Fail("expected a property value");
          }
          s->properties.emplace_back(std::move(key), std::move(value));
        } while (AcceptPunct(","));
        if (!ExpectPunct(")")) return false;
      }
    }
    return status_.ok();
  }

  // ALTER TABLE t ADD COLUMN[S] (c TYPE [COMMENT '...'], ...), parentheses optional.
  bool ParseAddColumns(AddColumnsStmt* s) {
    ExpectKeyword("alter");
    if (!ExpectKeyword("table") || !ParseName(&s->name) || !ExpectKeyword("add")) return false;
    if (!AcceptKeyword("columns") && !ExpectKeyword("column")) return false;
    const bool parenthesized = AcceptPunct("(");
    do {
      ColumnDef c;
      if (!ParseColumnDef(&c, /*allow_not_null=*/false)) return false;
      s->columns.push_back(std::move(c));
    } while (AcceptPunct(","));
    if (parenthesized && !ExpectPunct(")")) return false;
    return status_.ok();
  }

  bool ParseMergeClause(MergeClause* c) {
    if (!ExpectKeyword("when")) return false;
    c->matched = !AcceptKeyword("not");
    if (!ExpectKeyword("matched")) return false;
    if (!c->matched && AcceptKeyword("by")) {
      if (PeekKeyword("source")) {
        return Fail("the fake SQL engine has no WHEN NOT MATCHED BY SOURCE");
      }
      if (!ExpectKeyword("target")) return false;
    }
    if (AcceptKeyword("and")) {
      c->condition = ParseExpr();
      if (c->condition == nullptr) return false;
    }
    if (!ExpectKeyword("then")) return false;
    if (c->matched) {
      if (AcceptKeyword("delete")) {
        c->action = MergeClause::Action::kDelete;
        return true;
      }
      if (!ExpectKeyword("update") || !ExpectKeyword("set")) return false;
      if (AcceptPunct("*")) {
        c->action = MergeClause::Action::kUpdateAll;
        return true;
      }
      c->action = MergeClause::Action::kUpdate;
      do {
        NameRef column;
        if (!ParseName(&column) || !ExpectPunct("=")) return false;
        ExprPtr value = ParseExpr();
        if (value == nullptr) return false;
        c->assignments.emplace_back(std::move(column), std::move(value));
      } while (AcceptPunct(","));
      return true;
    }
    if (!ExpectKeyword("insert")) return false;
    if (AcceptPunct("*")) {
      c->action = MergeClause::Action::kInsertAll;
      return true;
    }
    c->action = MergeClause::Action::kInsert;
    if (!ExpectPunct("(")) return false;
    do {
      NameRef column;
      if (!ParseName(&column)) return false;
      c->insert_columns.push_back(std::move(column));
    } while (AcceptPunct(","));
    if (!ExpectPunct(")") || !ExpectKeyword("values") || !ExpectPunct("(")) return false;
    do {
      ExprPtr value = ParseExpr();
      if (value == nullptr) return false;
      c->insert_values.push_back(std::move(value));
    } while (AcceptPunct(","));
    if (!ExpectPunct(")")) return false;
    if (c->insert_values.size() != c->insert_columns.size()) {
      return Fail(absl::StrCat("INSERT names ", c->insert_columns.size(), " columns but has ",
                               c->insert_values.size(), " values"));
    }
    return true;
  }

  bool ParseMerge(MergeStmt* s) {
    ExpectKeyword("merge");
    if (!ExpectKeyword("into") || !ParseName(&s->target)) return false;
    if (AcceptKeyword("as")) {
      if (!ParseIdentifier(&s->target_alias)) return false;
    } else if (PeekIdentifier()) {
      ParseIdentifier(&s->target_alias);
    }
    if (!ExpectKeyword("using") || !ParseFromItem(&s->source) || !ExpectKeyword("on")) return false;
    s->on = ParseExpr();
    if (s->on == nullptr) return false;
    if (!PeekKeyword("when")) return Fail("expected WHEN");
    while (PeekKeyword("when")) {
      MergeClause c;
      if (!ParseMergeClause(&c)) return false;
      s->clauses.push_back(std::move(c));
    }
    // Only the last clause of each kind may omit its condition (Delta's rule).
    for (bool matched : {true, false}) {
      std::vector<const MergeClause*> group;
      for (const MergeClause& c : s->clauses) {
        if (c.matched == matched) group.push_back(&c);
      }
      for (size_t i = 0; i + 1 < group.size(); ++i) {
        if (group[i]->condition == nullptr) {
          return FailWith(SqlError(
              matched ? "NON_LAST_MATCHED_CLAUSE_OMIT_CONDITION"
                      : "NON_LAST_NOT_MATCHED_BY_TARGET_CLAUSE_OMIT_CONDITION",
              matched ? "When there are more than one MATCHED clauses in a MERGE statement, only "
                        "the last MATCHED clause can omit the condition."
                      : "When there are more than one NOT MATCHED BY TARGET clauses in a MERGE "
                        "statement, only the last NOT MATCHED BY TARGET clause can omit the "
                        "condition."));
        }
      }
    }
    return status_.ok();
  }

  std::string_view sql_;
  std::vector<Token> tokens_;
  size_t i_ = 0;
  absl::Status status_;
};

// ---------------------------------------------------------------------------
// SQLite

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtDeleter>;

// An error of `db`'s last call: a Databricks error raised by one of the
// functions below keeps its message; anything else is a bug in the fake.
absl::Status SqliteError(sqlite3* db, std::string_view sql) {
  const std::string message = sqlite3_errmsg(db);
  if (!message.empty() && message[0] == '[') return absl::InvalidArgumentError(message);
  return absl::InternalError(absl::StrCat("fake SQL engine: SQLite: ", message, " in: ", AV(sql)));
}

void BindValue(sqlite3_stmt* stmt, int index, const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    sqlite3_bind_int64(stmt, index, *i);
  } else if (const auto* d = std::get_if<double>(&v)) {
    sqlite3_bind_double(stmt, index, *d);
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    sqlite3_bind_text64(stmt, index, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  } else {
    sqlite3_bind_null(stmt, index);
  }
}

Value ValueOf(sqlite3_value* v) {
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      return Value{static_cast<int64_t>(sqlite3_value_int64(v))};
    case SQLITE_FLOAT:
      return Value{sqlite3_value_double(v)};
    case SQLITE_TEXT:
    case SQLITE_BLOB: {
      const auto* p = static_cast<const char*>(sqlite3_value_blob(v));
      return Value{std::string(p == nullptr ? "" : p, static_cast<size_t>(sqlite3_value_bytes(v)))};
    }
    default:
      return Value{};
  }
}

void SetResult(sqlite3_context* ctx, const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    sqlite3_result_int64(ctx, *i);
  } else if (const auto* d = std::get_if<double>(&v)) {
    sqlite3_result_double(ctx, *d);
  } else if (const auto* s = std::get_if<std::string>(&v)) {
    sqlite3_result_text64(ctx, s->data(), s->size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  } else {
    sqlite3_result_null(ctx);
  }
}

// Prepares `sql` and binds ?N to binds[N-1].
absl::StatusOr<StmtPtr> Prepare(sqlite3* db, const std::string& sql,
                                const std::vector<Value>& binds) {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql.c_str(), static_cast<int>(sql.size() + 1), &raw, nullptr) !=
      SQLITE_OK) {
    sqlite3_finalize(raw);
    return SqliteError(db, sql);
  }
  StmtPtr stmt(raw);
  const int count = sqlite3_bind_parameter_count(raw);
  if (static_cast<size_t>(count) > binds.size()) {
    return absl::InternalError(absl::StrCat("fake SQL engine: unbound parameter in: ", sql));
  }
  for (int i = 1; i <= count; ++i) BindValue(raw, i, binds[static_cast<size_t>(i - 1)]);
  return stmt;
}

using Rows = std::vector<std::vector<Value>>;

absl::StatusOr<Rows> QueryRows(sqlite3* db, const std::string& sql,
                               const std::vector<Value>& binds = {}) {
  absl::StatusOr<StmtPtr> stmt = Prepare(db, sql, binds);
  if (!stmt.ok()) return stmt.status();
  Rows rows;
  while (true) {
    const int rc = sqlite3_step(stmt->get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) return SqliteError(db, sql);
    std::vector<Value> row;
    const int n = sqlite3_column_count(stmt->get());
    row.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) row.push_back(ValueOf(sqlite3_column_value(stmt->get(), i)));
    rows.push_back(std::move(row));
  }
  return rows;
}

// Runs a statement without results; returns the rows it changed.
absl::StatusOr<int64_t> Exec(sqlite3* db, const std::string& sql,
                             const std::vector<Value>& binds = {}) {
  absl::StatusOr<StmtPtr> stmt = Prepare(db, sql, binds);
  if (!stmt.ok()) return stmt.status();
  int rc = SQLITE_ROW;
  while (rc == SQLITE_ROW) rc = sqlite3_step(stmt->get());
  if (rc != SQLITE_DONE) return SqliteError(db, sql);
  return static_cast<int64_t>(sqlite3_changes64(db));
}

// One statement's transaction: rolled back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  absl::Status Begin() {
    absl::StatusOr<int64_t> r = Exec(db_, "BEGIN IMMEDIATE");
    open_ = r.ok();
    return r.status();
  }
  absl::Status Commit() {
    absl::StatusOr<int64_t> r = Exec(db_, "COMMIT");
    if (r.ok()) open_ = false;
    return r.status();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

// --- SQL functions the translated statements call. Type arguments are type
// text constants, parsed once per statement (sqlite3_get_auxdata).

bool TypeArg(sqlite3_context* ctx, sqlite3_value** argv, int arg, Type* out) {
  if (const auto* cached = static_cast<const Type*>(sqlite3_get_auxdata(ctx, arg))) {
    *out = *cached;
    return true;
  }
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[arg]));
  absl::StatusOr<Type> type = ParseTypeText(text == nullptr ? "" : text);
  if (!type.ok()) {
    sqlite3_result_error(ctx, "fake SQL engine: bad type argument", -1);
    return false;
  }
  *out = *type;
  sqlite3_set_auxdata(ctx, arg, new Type(*type), [](void* p) { delete static_cast<Type*>(p); });
  return true;
}

// dbx_cast(value, 'from type', 'to type'): an ANSI CAST between storage forms.
void DbxCast(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  Type from, to;
  if (!TypeArg(ctx, argv, 1, &from) || !TypeArg(ctx, argv, 2, &to)) return;
  absl::StatusOr<Value> v = CastValue(ValueOf(argv[0]), from, to);
  if (!v.ok()) {
    const std::string message(v.status().message());
    sqlite3_result_error(ctx, message.c_str(), static_cast<int>(message.size()));
    return;
  }
  SetResult(ctx, *v);
}

bool DecimalArg(sqlite3_value* v, DecimalNumber* out) {
  return ParseDecimalNumber(NumberText(ValueOf(v)), out);
}

// dbx_dec_cmp(a, b): -1, 0, 1 for two exact numbers; NULL if either is NULL.
void DbxDecCmp(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  DecimalNumber a, b;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || sqlite3_value_type(argv[1]) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  if (!DecimalArg(argv[0], &a) || !DecimalArg(argv[1], &b)) {
    sqlite3_result_error(ctx, "fake SQL engine: bad decimal", -1);
    return;
  }
  sqlite3_result_int(ctx, CompareDecimalNumbers(a, b));
}

// dbx_dec_nseq(a, b): a <=> b for exact numbers.
void DbxDecNullSafeEq(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  const bool a_null = sqlite3_value_type(argv[0]) == SQLITE_NULL;
  const bool b_null = sqlite3_value_type(argv[1]) == SQLITE_NULL;
  if (a_null || b_null) {
    sqlite3_result_int(ctx, a_null && b_null ? 1 : 0);
    return;
  }
  DecimalNumber a, b;
  if (!DecimalArg(argv[0], &a) || !DecimalArg(argv[1], &b)) {
    sqlite3_result_error(ctx, "fake SQL engine: bad decimal", -1);
    return;
  }
  sqlite3_result_int(ctx, CompareDecimalNumbers(a, b) == 0 ? 1 : 0);
}

// dbx_dec_sortkey(a): a DOUBLE that orders like the decimal (for ORDER BY).
void DbxDecSortKey(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  double d = 0;
  if (!absl::SimpleAtod(NumberText(ValueOf(argv[0])), &d)) d = 0;
  sqlite3_result_double(ctx, d);
}

absl::Status RegisterFunctions(sqlite3* db) {
  struct Fn {
    const char* name;
    int args;
    void (*fn)(sqlite3_context*, int, sqlite3_value**);
  };
  static constexpr Fn kFunctions[] = {{"dbx_cast", 3, DbxCast},
                                      {"dbx_dec_cmp", 2, DbxDecCmp},
                                      {"dbx_dec_nseq", 2, DbxDecNullSafeEq},
                                      {"dbx_dec_sortkey", 1, DbxDecSortKey}};
  for (const Fn& f : kFunctions) {
    if (sqlite3_create_function_v2(db, f.name, f.args, SQLITE_UTF8 | SQLITE_DETERMINISTIC, nullptr,
                                   f.fn, nullptr, nullptr, nullptr) != SQLITE_OK) {
      return SqliteError(db, f.name);
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------
// Catalog: schemas, tables and their columns live in metadata tables next to the
// data, so a statement's DDL commits or rolls back with it. A table's data is
// the SQLite table "catalog.schema.table" (names cannot contain '.', so the
// mapping is one-to-one); its columns carry no SQLite type (no affinity), so
// values keep their storage form.

constexpr char kCatalogDdl[] = R"sql(
CREATE TABLE IF NOT EXISTS _mlc_schemas (
  catalog TEXT NOT NULL, name TEXT NOT NULL, comment TEXT NOT NULL,
  PRIMARY KEY (catalog, name));
CREATE TABLE IF NOT EXISTS _mlc_tables (
  catalog TEXT NOT NULL, schema TEXT NOT NULL, name TEXT NOT NULL, comment TEXT NOT NULL,
  PRIMARY KEY (catalog, schema, name));
CREATE TABLE IF NOT EXISTS _mlc_columns (
  catalog TEXT NOT NULL, schema TEXT NOT NULL, tbl TEXT NOT NULL, position INTEGER NOT NULL,
  name TEXT NOT NULL, type_text TEXT NOT NULL, nullable INTEGER NOT NULL, comment TEXT NOT NULL,
  PRIMARY KEY (catalog, schema, tbl, position));
CREATE TABLE IF NOT EXISTS _mlc_properties (
  catalog TEXT NOT NULL, schema TEXT NOT NULL, tbl TEXT NOT NULL, key TEXT NOT NULL,
  value TEXT NOT NULL, PRIMARY KEY (catalog, schema, tbl, key));
CREATE TABLE IF NOT EXISTS _mlc_cluster (
  catalog TEXT NOT NULL, schema TEXT NOT NULL, tbl TEXT NOT NULL, position INTEGER NOT NULL,
  name TEXT NOT NULL, PRIMARY KEY (catalog, schema, tbl, position));
)sql";

struct TableId {
  std::string catalog;
  std::string schema;
  std::string name;

  std::string FullName() const { return absl::StrCat(catalog, ".", schema, ".", name); }
  std::string Quoted() const {
    return absl::StrCat(Backticked(catalog), ".", Backticked(schema), ".", Backticked(name));
  }
  std::string SqliteTable() const { return absl::StrCat("main.", SqliteIdent(FullName())); }
  std::vector<Value> Key() const { return {Value{catalog}, Value{schema}, Value{name}}; }
};

struct ColumnMeta {
  std::string name;
  Type type;
  bool nullable = true;
  std::string comment;
};

struct TableMeta {
  TableId id;
  std::string comment;
  std::vector<ColumnMeta> columns;
  std::vector<std::pair<std::string, std::string>> properties;
  std::vector<std::string> cluster;

  const ColumnMeta* FindColumn(std::string_view column) const {
    for (const ColumnMeta& c : columns) {
      if (EqualsCi(c.name, column)) return &c;
    }
    return nullptr;
  }
};

std::string TextOf(const Value& v) {
  const auto* s = std::get_if<std::string>(&v);
  return s == nullptr ? "" : *s;
}

absl::StatusOr<bool> SchemaExistsIn(sqlite3* db, const std::string& catalog,
                                    const std::string& schema) {
  absl::StatusOr<Rows> rows =
      QueryRows(db, "SELECT 1 FROM _mlc_schemas WHERE catalog = ?1 AND name = ?2",
                {Value{catalog}, Value{schema}});
  if (!rows.ok()) return rows.status();
  return !rows->empty();
}

absl::Status InsertSchema(sqlite3* db, const std::string& catalog, const std::string& schema,
                          const std::string& comment) {
  return Exec(db, "INSERT INTO _mlc_schemas (catalog, name, comment) VALUES (?1, ?2, ?3)",
              {Value{catalog}, Value{schema}, Value{comment}})
      .status();
}

absl::StatusOr<std::optional<TableMeta>> LoadTable(sqlite3* db, const TableId& id) {
  absl::StatusOr<Rows> table = QueryRows(
      db, "SELECT comment FROM _mlc_tables WHERE catalog = ?1 AND schema = ?2 AND name = ?3",
      id.Key());
  if (!table.ok()) return table.status();
  if (table->empty()) return std::optional<TableMeta>();
  TableMeta meta;
  meta.id = id;
  meta.comment = TextOf((*table)[0][0]);
  absl::StatusOr<Rows> columns =
      QueryRows(db,
                "SELECT name, type_text, nullable, comment FROM _mlc_columns WHERE catalog = ?1 "
                "AND schema = ?2 AND tbl = ?3 ORDER BY position",
                id.Key());
  if (!columns.ok()) return columns.status();
  for (const std::vector<Value>& row : *columns) {
    absl::StatusOr<Type> type = ParseTypeText(TextOf(row[1]));
    if (!type.ok()) return type.status();
    const auto* nullable = std::get_if<int64_t>(&row[2]);
    meta.columns.push_back(
        {TextOf(row[0]), *type, nullable != nullptr && *nullable != 0, TextOf(row[3])});
  }
  absl::StatusOr<Rows> properties = QueryRows(
      db,
      "SELECT key, value FROM _mlc_properties WHERE catalog = ?1 AND schema = ?2 AND tbl = ?3 "
      "ORDER BY key",
      id.Key());
  if (!properties.ok()) return properties.status();
  for (const std::vector<Value>& row : *properties) {
    meta.properties.emplace_back(TextOf(row[0]), TextOf(row[1]));
  }
  absl::StatusOr<Rows> cluster =
      QueryRows(db,
                "SELECT name FROM _mlc_cluster WHERE catalog = ?1 AND schema = ?2 AND tbl = ?3 "
                "ORDER BY position",
                id.Key());
  if (!cluster.ok()) return cluster.status();
  for (const std::vector<Value>& row : *cluster) meta.cluster.push_back(TextOf(row[0]));
  return std::optional<TableMeta>(std::move(meta));
}

absl::Status InsertColumn(sqlite3* db, const TableId& id, int position, const ColumnMeta& c) {
  return Exec(db,
              "INSERT INTO _mlc_columns (catalog, schema, tbl, position, name, type_text, "
              "nullable, comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
              {Value{id.catalog}, Value{id.schema}, Value{id.name}, Value{int64_t{position}},
               Value{c.name}, Value{TypeText(c.type)}, Value{int64_t{c.nullable ? 1 : 0}},
               Value{c.comment}})
      .status();
}

// Creates the data table, an index on the clustering columns (MERGE joins on
// them) and the metadata rows.
absl::Status CreateTableIn(sqlite3* db, const TableMeta& meta) {
  std::vector<std::string> columns;
  for (const ColumnMeta& c : meta.columns) columns.push_back(SqliteIdent(c.name));
  absl::Status s = Exec(db, absl::StrCat("CREATE TABLE ", meta.id.SqliteTable(), " (",
                                         absl::StrJoin(columns, ", "), ")"))
                       .status();
  if (s.ok() && !meta.cluster.empty()) {
    std::vector<std::string> cluster;
    for (const std::string& c : meta.cluster) cluster.push_back(SqliteIdent(c));
    // '/' cannot appear in a table name, so the index name is unique.
    s = Exec(db, absl::StrCat("CREATE INDEX main.", SqliteIdent(meta.id.FullName() + "/cluster"),
                              " ON ", SqliteIdent(meta.id.FullName()), " (",
                              absl::StrJoin(cluster, ", "), ")"))
            .status();
  }
  if (s.ok()) {
    std::vector<Value> row = meta.id.Key();
    row.emplace_back(meta.comment);
    s = Exec(db, "INSERT INTO _mlc_tables (catalog, schema, name, comment) VALUES (?1, ?2, ?3, ?4)",
             row)
            .status();
  }
  for (size_t i = 0; s.ok() && i < meta.columns.size(); ++i) {
    s = InsertColumn(db, meta.id, static_cast<int>(i), meta.columns[i]);
  }
  for (size_t i = 0; s.ok() && i < meta.properties.size(); ++i) {
    std::vector<Value> row = meta.id.Key();
    row.emplace_back(meta.properties[i].first);
    row.emplace_back(meta.properties[i].second);
    s = Exec(db,
             "INSERT OR REPLACE INTO _mlc_properties (catalog, schema, tbl, key, value) "
             "VALUES (?1, ?2, ?3, ?4, ?5)",
             row)
            .status();
  }
  for (size_t i = 0; s.ok() && i < meta.cluster.size(); ++i) {
    std::vector<Value> row = meta.id.Key();
    row.emplace_back(int64_t{static_cast<int64_t>(i)});
    row.emplace_back(meta.cluster[i]);
    s = Exec(db,
             "INSERT INTO _mlc_cluster (catalog, schema, tbl, position, name) "
             "VALUES (?1, ?2, ?3, ?4, ?5)",
             row)
            .status();
  }
  return s;
}

absl::Status InvalidObjectName(std::string_view name) {
  return SqlError("INVALID_SCHEMA_OR_RELATION_NAME",
                  absl::StrCat(Backticked(name),
                               " is not a valid name for tables/schemas. Valid names are 1 to "
                               "255 characters without '.', ' ', '/' or control characters."));
}

// Unity Catalog's rule for catalog, schema and table names.
absl::Status ValidateObjectName(std::string_view name) {
  if (name.empty() || name.size() > 255) return InvalidObjectName(name);
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '.' || c == ' ' || c == '/') return InvalidObjectName(name);
  }
  return absl::OkStatus();
}

// Delta's rule for column names (without column mapping).
absl::Status ValidateColumnName(std::string_view name) {
  if (!name.empty() && name.find_first_of(" ,;{}()\n\t=") == std::string_view::npos) {
    return absl::OkStatus();
  }
  return SqlError("DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES",
                  absl::StrCat("Found invalid character(s) among ' ,;{}()\\n\\t=' in the column "
                               "names of your schema. Invalid column names: ",
                               Backticked(name), "."));
}

// ---------------------------------------------------------------------------
// Translation to SQLite. Every expression is type-checked and becomes SQLite
// text whose literals are bound parameters (?N); identifiers are the fake's own
// aliases ("_t", "_s", "_aN") and quoted column names.

struct ColumnBinding {
  std::string name;  // as the SQL names it
  Type type;
  std::string sql;  // e.g. "_t"."amount"
};

struct Relation {
  std::string alias;  // what the SQL may qualify columns with; "" for none
  std::vector<ColumnBinding> columns;
  std::string from_sql;  // e.g. main."c.s.t" AS "_t"
};

using Scope = std::vector<const Relation*>;

struct Typed {
  std::string sql;
  Type type;
};

struct OutputColumn {
  std::string name;
  Type type;
};

struct TranslatedQuery {
  std::string sql;  // SELECT ... AS "c0", ... AS "c1" ...
  std::vector<OutputColumn> columns;
};

std::string QuotedParts(const std::vector<std::string>& parts) {
  std::vector<std::string> quoted;
  quoted.reserve(parts.size());
  for (const std::string& p : parts) quoted.push_back(Backticked(p));
  return absl::StrJoin(quoted, ".");
}

std::string SqliteOp(const std::string& op) {
  if (op == "==") return "=";
  if (op == "!=") return "<>";
  if (op == "<=>") return "IS";
  return op;
}

// The type both sides of a comparison are brought to (Spark's implicit casts,
// ANSI mode: a STRING is cast to the other side's type), or nullopt.
std::optional<Type> CommonType(const Type& a, const Type& b) {
  if (a.kind == Kind::kNull) return b;
  if (b.kind == Kind::kNull || a == b) return a;
  if (IsIntegral(a.kind) && IsIntegral(b.kind)) return MakeType(Kind::kBigint);
  if (IsExactNumeric(a.kind) && IsExactNumeric(b.kind)) {
    return DecimalType(38, std::max(a.scale, b.scale));
  }
  if (IsNumeric(a.kind) && IsNumeric(b.kind)) return MakeType(Kind::kDouble);
  if (a.kind == Kind::kString) return b;
  if (b.kind == Kind::kString) return a;
  const auto datetime = [](Kind k) { return k == Kind::kDate || IsTimestamp(k); };
  if (datetime(a.kind) && datetime(b.kind)) {
    if (a.kind == Kind::kDate) return b;
    if (b.kind == Kind::kDate) return a;
    return MakeType(Kind::kTimestamp);
  }
  return std::nullopt;
}

Typed CastTo(const Typed& t, const Type& to) {
  if (t.type == to) return t;
  if (t.type.kind == Kind::kNull) return Typed{"NULL", to};
  return Typed{
      absl::StrCat("dbx_cast(", t.sql, ", '", TypeText(t.type), "', '", TypeText(to), "')"), to};
}

// `t` as an operand of a comparison in `common`; storage forms that already
// compare correctly are left alone.
std::string CoerceForCompare(const Typed& t, const Type& common) {
  if (t.type.kind == Kind::kNull) return "NULL";
  if (t.type == common || (IsIntegral(t.type.kind) && IsIntegral(common.kind)) ||
      (IsExactNumeric(t.type.kind) && common.kind == Kind::kDecimal) ||
      (IsTimestamp(t.type.kind) && IsTimestamp(common.kind))) {
    return t.sql;
  }
  return CastTo(t, common).sql;
}

absl::Status DatatypeMismatch(std::string_view subclass, const Expr& e, std::string_view detail) {
  return SqlError(
      absl::StrCat("DATATYPE_MISMATCH.", AV(subclass)),
      absl::StrCat("Cannot resolve \"", e.text, "\" due to data type mismatch: ", AV(detail)));
}

absl::Status CheckBoolean(const Typed& t, const Expr& e) {
  if (t.type.kind == Kind::kBoolean || t.type.kind == Kind::kNull) return absl::OkStatus();
  return DatatypeMismatch("UNEXPECTED_INPUT_TYPE", e,
                          absl::StrCat("requires the \"BOOLEAN\" type, however \"", e.text,
                                       "\" has the type \"", TypeSql(t.type), "\"."));
}

absl::Status UnresolvedColumn(const std::vector<std::string>& parts, const Scope& scope) {
  std::vector<std::string> candidates;
  for (const Relation* rel : scope) {
    for (const ColumnBinding& c : rel->columns) {
      candidates.push_back(rel->alias.empty()
                               ? Backticked(c.name)
                               : absl::StrCat(Backticked(rel->alias), ".", Backticked(c.name)));
    }
  }
  const std::string text = absl::StrCat("A column, variable, or function parameter with name ",
                                        QuotedParts(parts), " cannot be resolved.");
  if (candidates.empty()) return SqlError("UNRESOLVED_COLUMN.WITHOUT_SUGGESTION", text);
  return SqlError("UNRESOLVED_COLUMN.WITH_SUGGESTION",
                  absl::StrCat(text, " Did you mean one of the following? [",
                               absl::StrJoin(candidates, ", "), "]."));
}

absl::Status SchemaNotFound(const std::string& catalog, const std::string& schema) {
  return SqlError("SCHEMA_NOT_FOUND",
                  absl::StrCat("The schema ", Backticked(catalog), ".", Backticked(schema),
                               " cannot be found. Verify the spelling and correctness of the "
                               "schema and catalog. If you did not qualify the name with a "
                               "catalog, verify the current_schema() output, or qualify the name "
                               "with the correct catalog."));
}

absl::Status MultipleSourceRows() {
  return SqlError("DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE",
                  "Cannot perform Merge as multiple source rows matched and attempted to modify "
                  "the same target row in the Delta table in possibly conflicting ways. By SQL "
                  "semantics of Merge, when multiple source rows match on the same target row, "
                  "the result may be ambiguous as it is unclear which source row should be used "
                  "to update or delete the matching target row. You can preprocess the source "
                  "table to eliminate the possibility of multiple matches.");
}

// A from_json value in the storage form of `type`; NULL when it does not convert.
Value FromJson(const json& v, const Type& type) {
  if (v.is_null()) return Value{};
  switch (type.kind) {
    case Kind::kString:
      if (const auto* s = v.get_ptr<const json::string_t*>()) return Value{*s};
      return Value{v.dump(-1, ' ', false, json::error_handler_t::replace)};
    case Kind::kBigint:
    case Kind::kInt:
    case Kind::kSmallint:
    case Kind::kTinyint: {
      int64_t out = 0;
      if (const auto* i = v.get_ptr<const json::number_integer_t*>()) {
        out = *i;
      } else if (const auto* u = v.get_ptr<const json::number_unsigned_t*>()) {
        if (*u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return Value{};
        out = static_cast<int64_t>(*u);
      } else {
        return Value{};
      }
      return FitsIntegral(type.kind, out) ? Value{out} : Value{};
    }
    case Kind::kBoolean:
      if (const auto* b = v.get_ptr<const json::boolean_t*>()) return Value{int64_t{*b ? 1 : 0}};
      return Value{};
    case Kind::kDouble:
    case Kind::kFloat:
    case Kind::kDecimal:
      if (!v.is_number()) return Value{};
      return CastValue(Value{v.dump()}, MakeType(Kind::kString), type).value_or(Value{});
    case Kind::kDate:
    case Kind::kTimestamp:
    case Kind::kTimestampNtz:
      if (const auto* s = v.get_ptr<const json::string_t*>()) {
        return CastValue(Value{*s}, MakeType(Kind::kString), type).value_or(Value{});
      }
      return Value{};
    case Kind::kNull:
      return Value{};
  }
  return Value{};
}

class Executor {
 public:
  Executor(sqlite3* db, const std::vector<SqlParam>& params, const ExecContext& context,
           UnresolvedTargetColumnStyle style)
      : db_(db), params_(params), context_(context), style_(style) {}

  absl::StatusOr<ExecResult> Run(const Statement& statement) {
    absl::StatusOr<ExecResult> result =
        std::visit([this](const auto& s) { return RunOne(s); }, statement);
    if (!result.ok()) return result;  // the transaction's rollback drops temp tables
    for (const std::string& table : temp_tables_) {
      absl::StatusOr<int64_t> dropped = Exec(db_, absl::StrCat("DROP TABLE ", table));
      if (!dropped.ok()) return dropped.status();
    }
    return result;
  }

 private:
  // --- Names

  std::string DefaultCatalog() const {
    return context_.catalog.empty() ? "main" : Lower(context_.catalog);
  }
  std::string DefaultSchema() const {
    return context_.schema.empty() ? "default" : Lower(context_.schema);
  }

  absl::Status TableNotFound(const NameRef& name) const {
    return SqlError(
        "TABLE_OR_VIEW_NOT_FOUND",
        absl::StrCat("The table or view ", QuotedParts(name.parts),
                     " cannot be found. Verify the spelling and correctness of the schema and "
                     "catalog. If you did not qualify the name with a schema, verify the "
                     "current_schema() output, or qualify the name with the correct schema and "
                     "catalog."));
  }

  absl::StatusOr<TableId> TableIdOf(const NameRef& name) const {
    const std::vector<std::string>& p = name.parts;
    if (p.size() == 1) return TableId{DefaultCatalog(), DefaultSchema(), Lower(p[0])};
    if (p.size() == 2) return TableId{DefaultCatalog(), Lower(p[0]), Lower(p[1])};
    if (p.size() == 3) return TableId{Lower(p[0]), Lower(p[1]), Lower(p[2])};
    return InvalidObjectName(absl::StrJoin(p, "."));
  }

  absl::StatusOr<TableMeta> RequireTable(const NameRef& name) {
    absl::StatusOr<TableId> id = TableIdOf(name);
    if (!id.ok()) return TableNotFound(name);
    absl::StatusOr<std::optional<TableMeta>> meta = LoadTable(db_, *id);
    if (!meta.ok()) return meta.status();
    if (!meta->has_value()) return TableNotFound(name);
    return **std::move(meta);
  }

  std::string NewAlias() { return SqliteIdent(absl::StrCat("_a", ++alias_counter_)); }

  // A temp table, dropped when the statement succeeds.
  std::string NewTempTable() {
    temp_tables_.push_back(
        absl::StrCat("temp.", SqliteIdent(absl::StrCat("_mlc_tmp", temp_tables_.size() + 1))));
    return temp_tables_.back();
  }

  std::string Bind(Value v) {
    binds_.push_back(std::move(v));
    return absl::StrCat("?", binds_.size());
  }

  const SqlParam* FindParam(const std::string& name) const {
    for (const SqlParam& p : params_) {
      if (p.name == name) return &p;
    }
    for (const SqlParam& p : params_) {
      if (EqualsCi(p.name, name)) return &p;
    }
    return nullptr;
  }

  absl::Status Unbound(const std::string& name) const {
    return SqlError("UNBOUND_SQL_PARAMETER",
                    absl::StrCat("Found the unbound parameter: ", name,
                                 ". Please, fix `args` and provide a mapping of the parameter to "
                                 "either a SQL literal or collection constructor functions such as "
                                 "`map()`, `array()`, `struct()`."));
  }

  // --- Expressions

  absl::StatusOr<const ColumnBinding*> ResolveColumn(const std::vector<std::string>& parts,
                                                     const Scope& scope) const {
    std::vector<std::pair<const Relation*, const ColumnBinding*>> matches;
    for (const Relation* rel : scope) {
      if (parts.size() == 2 && (rel->alias.empty() || !EqualsCi(rel->alias, parts[0]))) continue;
      if (parts.size() != 1 && parts.size() != 2) continue;
      for (const ColumnBinding& c : rel->columns) {
        if (EqualsCi(c.name, parts.back())) matches.emplace_back(rel, &c);
      }
    }
    if (matches.size() == 1) return matches[0].second;
    if (matches.size() > 1) {
      std::vector<std::string> options;
      options.reserve(matches.size());
      for (const auto& [rel, column] : matches) {
        options.push_back(absl::StrCat(rel->alias.empty() ? "" : Backticked(rel->alias) + ".",
                                       Backticked(column->name)));
      }
      return SqlError("AMBIGUOUS_REFERENCE",
                      absl::StrCat("Reference ", QuotedParts(parts), " is ambiguous, could be: [",
                                   absl::StrJoin(options, ", "), "]."));
    }
    return UnresolvedColumn(parts, scope);
  }

  absl::StatusOr<Typed> TranslateParam(const Expr& e) {
    const SqlParam* p = FindParam(e.name);
    if (p == nullptr) return Unbound(e.name);
    absl::StatusOr<Type> type = ParseTypeText(p->type.empty() ? "STRING" : p->type);
    if (!type.ok()) return type.status();
    if (!p->value.has_value()) return Typed{"NULL", *type};
    absl::StatusOr<Value> v = CastValue(Value{*p->value}, MakeType(Kind::kString), *type);
    if (!v.ok()) return v.status();
    return Typed{Bind(*std::move(v)), *type};
  }

  absl::StatusOr<Typed> Translate(const Expr& e, const Scope& scope) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        if (e.type.kind == Kind::kNull) return Typed{"NULL", e.type};
        return Typed{Bind(e.value), e.type};
      case ExprKind::kParam:
        return TranslateParam(e);
      case ExprKind::kColumn: {
        absl::StatusOr<const ColumnBinding*> c = ResolveColumn(e.parts, scope);
        if (!c.ok()) return c.status();
        return Typed{(*c)->sql, (*c)->type};
      }
      case ExprKind::kCast: {
        absl::StatusOr<Typed> operand = Translate(*e.args[0], scope);
        if (!operand.ok()) return operand;
        if (!CanCast(operand->type, e.type)) {
          return DatatypeMismatch("CAST_WITHOUT_SUGGESTION", e,
                                  absl::StrCat("cannot cast \"", TypeSql(operand->type), "\" to \"",
                                               TypeSql(e.type), "\"."));
        }
        return CastTo(*operand, e.type);
      }
      case ExprKind::kCompare: {
        absl::StatusOr<Typed> l = Translate(*e.args[0], scope);
        if (!l.ok()) return l;
        absl::StatusOr<Typed> r = Translate(*e.args[1], scope);
        if (!r.ok()) return r;
        const std::optional<Type> common = CommonType(l->type, r->type);
        if (!common.has_value()) {
          return DatatypeMismatch(
              "BINARY_OP_DIFF_TYPES", e,
              absl::StrCat("the left and right operands of the binary operator have "
                           "incompatible types (\"",
                           TypeSql(l->type), "\" and \"", TypeSql(r->type), "\")."));
        }
        const std::string ls = CoerceForCompare(*l, *common);
        const std::string rs = CoerceForCompare(*r, *common);
        const Type boolean = MakeType(Kind::kBoolean);
        if (common->kind == Kind::kDecimal) {
          if (e.op == "<=>") {
            return Typed{absl::StrCat("dbx_dec_nseq(", ls, ", ", rs, ")"), boolean};
          }
          return Typed{absl::StrCat("(dbx_dec_cmp(", ls, ", ", rs, ") ", SqliteOp(e.op), " 0)"),
                       boolean};
        }
        return Typed{absl::StrCat("(", ls, " ", SqliteOp(e.op), " ", rs, ")"), boolean};
      }
      case ExprKind::kAnd:
      case ExprKind::kOr: {
        absl::StatusOr<Typed> l = Translate(*e.args[0], scope);
        if (!l.ok()) return l;
        absl::Status s = CheckBoolean(*l, *e.args[0]);
        if (!s.ok()) return s;
        absl::StatusOr<Typed> r = Translate(*e.args[1], scope);
        if (!r.ok()) return r;
        s = CheckBoolean(*r, *e.args[1]);
        if (!s.ok()) return s;
        return Typed{
            absl::StrCat("(", l->sql, e.kind == ExprKind::kAnd ? " AND " : " OR ", r->sql, ")"),
            MakeType(Kind::kBoolean)};
      }
      case ExprKind::kNot: {
        absl::StatusOr<Typed> operand = Translate(*e.args[0], scope);
        if (!operand.ok()) return operand;
        absl::Status s = CheckBoolean(*operand, *e.args[0]);
        if (!s.ok()) return s;
        return Typed{absl::StrCat("(NOT ", operand->sql, ")"), MakeType(Kind::kBoolean)};
      }
      case ExprKind::kIsNull: {
        absl::StatusOr<Typed> operand = Translate(*e.args[0], scope);
        if (!operand.ok()) return operand;
        return Typed{absl::StrCat("(", operand->sql, e.negated ? " IS NOT NULL)" : " IS NULL)"),
                     MakeType(Kind::kBoolean)};
      }
      case ExprKind::kFunction:
        return SqlError("UNRESOLVED_ROUTINE",
                        absl::StrCat("Cannot resolve routine ", Backticked(e.name),
                                     " on search path [`system`.`builtin`, `system`.`session`]. "
                                     "(The fake SQL engine knows CAST, COUNT(*) in a SELECT list "
                                     "and inline(from_json(...)) as a query.)"));
      case ExprKind::kStar:
        break;
    }
    return SyntaxError(e.text, 0, e.text.size(), "invalid usage of '*'");
  }

  // --- Queries

  // from_json's JSON argument: a STRING literal or parameter (nullopt: NULL).
  absl::StatusOr<std::optional<std::string>> ConstantString(const Expr& e) {
    if (e.kind == ExprKind::kLiteral && e.type.kind == Kind::kNull) {
      return std::optional<std::string>();
    }
    if (e.kind == ExprKind::kLiteral && e.type.kind == Kind::kString) {
      return std::optional<std::string>(std::get<std::string>(e.value));
    }
    if (e.kind == ExprKind::kParam) {
      const SqlParam* p = FindParam(e.name);
      if (p == nullptr) return Unbound(e.name);
      absl::StatusOr<Type> type = ParseTypeText(p->type.empty() ? "STRING" : p->type);
      if (!type.ok()) return type.status();
      if (type->kind == Kind::kString) return p->value;
    }
    return DatatypeMismatch("UNEXPECTED_INPUT_TYPE", e,
                            "from_json takes a STRING (in the fake SQL engine: a STRING literal "
                            "or parameter).");
  }

  // SELECT inline(from_json(<json>, 'ARRAY<STRUCT<...>>')): the rows go into a
  // temp table, one column per struct field.
  absl::StatusOr<TranslatedQuery> MaterializeInline(const Expr& call) {
    if (call.args.size() != 1 || call.args[0]->kind != ExprKind::kFunction ||
        call.args[0]->name != "from_json" || call.args[0]->args.size() != 2) {
      return DatatypeMismatch("UNEXPECTED_INPUT_TYPE", call,
                              "the fake SQL engine runs inline(from_json(<json>, '<schema>')).");
    }
    const Expr& from_json = *call.args[0];
    absl::StatusOr<std::optional<std::string>> text = ConstantString(*from_json.args[0]);
    if (!text.ok()) return text.status();
    const Expr& schema_arg = *from_json.args[1];
    if (schema_arg.kind != ExprKind::kLiteral || schema_arg.type.kind != Kind::kString) {
      return DatatypeMismatch("NON_FOLDABLE_INPUT", from_json,
                              "the schema of from_json must be a STRING literal.");
    }
    const std::string& schema = std::get<std::string>(schema_arg.value);
    absl::StatusOr<std::vector<std::pair<std::string, Type>>> fields;
    absl::StatusOr<std::vector<Token>> tokens = Tokenize(schema, /*allow_params=*/false);
    const bool lexed = tokens.ok();
    if (lexed) fields = Parser(schema, *std::move(tokens)).ParseArrayOfStructSchema();
    if (!lexed || !fields.ok()) {
      return SqlError("INVALID_SCHEMA.PARSE_ERROR",
                      absl::StrCat("The input schema \"", schema,
                                   "\" is not a valid schema string. (The fake SQL engine reads "
                                   "ARRAY<STRUCT<name: TYPE, ...>> of primitive types.)"));
    }
    const std::string table = NewTempTable();
    std::vector<std::string> columns, placeholders;
    for (size_t i = 0; i < fields->size(); ++i) {
      columns.push_back(absl::StrCat("\"f", i, "\""));
      placeholders.push_back(absl::StrCat("?", i + 1));
    }
    absl::StatusOr<int64_t> created =
        Exec(db_, absl::StrCat("CREATE TABLE ", table, " (", absl::StrJoin(columns, ", "), ")"));
    if (!created.ok()) return created.status();

    // Malformed JSON, or JSON that is not an array, is NULL: no rows.
    const json doc = text->has_value() ? json::parse(**text, nullptr, false) : json();
    const auto* elements = doc.is_discarded() ? nullptr : doc.get_ptr<const json::array_t*>();
    if (elements != nullptr && !elements->empty()) {
      const std::string insert =
          absl::StrCat("INSERT INTO ", table, " VALUES (", absl::StrJoin(placeholders, ", "), ")");
      std::vector<Value> row(fields->size());
      absl::StatusOr<StmtPtr> stmt = Prepare(db_, insert, row);
      if (!stmt.ok()) return stmt.status();
      for (const json& element : *elements) {
        const auto* object = element.get_ptr<const json::object_t*>();
        for (size_t i = 0; i < fields->size(); ++i) {
          row[i] = Value{};
          if (object == nullptr) continue;
          const auto it = object->find((*fields)[i].first);
          if (it != object->end()) row[i] = FromJson(it->second, (*fields)[i].second);
          BindValue(stmt->get(), static_cast<int>(i + 1), row[i]);
        }
        if (object == nullptr) {
          for (size_t i = 0; i < fields->size(); ++i) {
            BindValue(stmt->get(), static_cast<int>(i + 1), Value{});
          }
        }
        if (sqlite3_step(stmt->get()) != SQLITE_DONE) return SqliteError(db_, insert);
        sqlite3_reset(stmt->get());
      }
    }
    const std::string alias = NewAlias();
    TranslatedQuery out;
    std::vector<std::string> select;
    for (size_t i = 0; i < fields->size(); ++i) {
      select.push_back(absl::StrCat(alias, ".\"f", i, "\" AS \"c", i, "\""));
      out.columns.push_back({(*fields)[i].first, (*fields)[i].second});
    }
    out.sql = absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM ", table, " AS ", alias);
    return out;
  }

  absl::StatusOr<Relation> TranslateFrom(const FromItem& item) {
    Relation rel;
    const std::string alias = NewAlias();
    if (item.kind == FromItem::Kind::kTable) {
      absl::StatusOr<TableMeta> meta = RequireTable(item.table);
      if (!meta.ok()) return meta.status();
      rel.alias = item.alias.empty() ? meta->id.name : item.alias;
      rel.from_sql = absl::StrCat(meta->id.SqliteTable(), " AS ", alias);
      for (const ColumnMeta& c : meta->columns) {
        rel.columns.push_back({c.name, c.type, absl::StrCat(alias, ".", SqliteIdent(c.name))});
      }
      return rel;
    }
    absl::StatusOr<TranslatedQuery> sub = TranslateQuery(*item.subquery);
    if (!sub.ok()) return sub.status();
    rel.alias = item.alias;
    rel.from_sql = absl::StrCat("(", sub->sql, ") AS ", alias);
    for (size_t i = 0; i < sub->columns.size(); ++i) {
      rel.columns.push_back(
          {sub->columns[i].name, sub->columns[i].type, absl::StrCat(alias, ".\"c", i, "\"")});
    }
    return rel;
  }

  absl::StatusOr<TranslatedQuery> TranslateQuery(const Query& q) {
    if (q.from.kind == FromItem::Kind::kNone && q.items.size() == 1 &&
        q.items[0].expr->kind == ExprKind::kFunction && q.items[0].expr->name == "inline") {
      if (q.where != nullptr || !q.order.empty() || q.limit.has_value()) {
        return DatatypeMismatch("UNEXPECTED_INPUT_TYPE", *q.items[0].expr,
                                "the fake SQL engine runs inline(...) only as a whole query.");
      }
      return MaterializeInline(*q.items[0].expr);
    }
    std::optional<Relation> rel;
    if (q.from.kind != FromItem::Kind::kNone) {
      absl::StatusOr<Relation> r = TranslateFrom(q.from);
      if (!r.ok()) return r.status();
      rel = *std::move(r);
    }
    Scope scope;
    if (rel.has_value()) scope.push_back(&*rel);

    TranslatedQuery out;
    std::vector<std::string> select;
    bool aggregate = false, plain = false;
    for (const SelectItem& item : q.items) {
      const Expr& e = *item.expr;
      if (e.kind == ExprKind::kStar) {
        if (!rel.has_value() ||
            (!e.parts.empty() && (e.parts.size() != 1 || !EqualsCi(e.parts[0], rel->alias)))) {
          return SqlError("CANNOT_RESOLVE_STAR_EXPAND",
                          absl::StrCat("Cannot resolve ", e.text, " given input columns."));
        }
        for (const ColumnBinding& c : rel->columns) {
          select.push_back(c.sql);
          out.columns.push_back({c.name, c.type});
        }
        plain = true;
      } else if (e.kind == ExprKind::kFunction && e.name == "count" && e.args.size() == 1 &&
                 e.args[0]->kind == ExprKind::kStar && e.args[0]->parts.empty()) {
        select.emplace_back("COUNT(*)");
        out.columns.push_back(
            {item.alias.empty() ? "count(1)" : item.alias, MakeType(Kind::kBigint)});
        aggregate = true;
      } else {
        absl::StatusOr<Typed> t = Translate(e, scope);
        if (!t.ok()) return t.status();
        select.push_back(t->sql);
        std::string name = item.alias;
        if (name.empty()) name = e.kind == ExprKind::kColumn ? e.parts.back() : e.text;
        out.columns.push_back({name, t->type});
        plain = true;
      }
    }
    if (aggregate && plain) {
      return SqlError("MISSING_AGGREGATION",
                      "The non-aggregating expressions of the SELECT list must be aggregated (the "
                      "fake SQL engine has no GROUP BY).");
    }
    std::vector<std::string> items;
    for (size_t i = 0; i < select.size(); ++i) {
      items.push_back(absl::StrCat(select[i], " AS \"c", i, "\""));
    }
    out.sql = absl::StrCat("SELECT ", absl::StrJoin(items, ", "));
    if (rel.has_value()) absl::StrAppend(&out.sql, " FROM ", rel->from_sql);
    if (q.where != nullptr) {
      absl::StatusOr<Typed> where = Translate(*q.where, scope);
      if (!where.ok()) return where.status();
      absl::Status s = CheckBoolean(*where, *q.where);
      if (!s.ok()) return s;
      absl::StrAppend(&out.sql, " WHERE ", where->sql);
    }
    std::vector<std::string> order;
    for (const OrderItem& item : q.order) {
      const Expr& e = *item.expr;
      std::string key;
      Type type;
      if (e.kind == ExprKind::kLiteral && IsIntegral(e.type.kind)) {
        const int64_t k = std::get<int64_t>(e.value);
        if (k < 1 || k > static_cast<int64_t>(select.size())) {
          return SqlError(
              "ORDER_BY_POS_OUT_OF_RANGE",
              absl::StrCat("ORDER BY position ", k, " is not in select list (valid range is [1, ",
                           select.size(), "])."));
        }
        key = select[static_cast<size_t>(k - 1)];
        type = out.columns[static_cast<size_t>(k - 1)].type;
      } else {
        absl::StatusOr<Typed> t = Translate(e, scope);
        if (t.ok()) {
          key = t->sql;
          type = t->type;
        } else {
          // An output column's alias.
          for (size_t i = 0; key.empty() && e.kind == ExprKind::kColumn && e.parts.size() == 1 &&
                             i < out.columns.size();
               ++i) {
            if (EqualsCi(out.columns[i].name, e.parts[0])) {
              key = select[i];
              type = out.columns[i].type;
            }
          }
          if (key.empty()) return t.status();
        }
      }
      if (type.kind == Kind::kDecimal) key = absl::StrCat("dbx_dec_sortkey(", key, ")");
      // Spark's default: NULLS FIRST ascending, NULLS LAST descending (as SQLite).
      order.push_back(absl::StrCat(key, item.desc ? " DESC" : " ASC",
                                   item.nulls == 1   ? " NULLS FIRST"
                                   : item.nulls == 2 ? " NULLS LAST"
                                                     : ""));
    }
    if (!order.empty()) absl::StrAppend(&out.sql, " ORDER BY ", absl::StrJoin(order, ", "));
    if (q.limit.has_value()) absl::StrAppend(&out.sql, " LIMIT ", *q.limit);
    return out;
  }

  // --- Statements

  absl::StatusOr<ExecResult> RunOne(const Query& q) {
    absl::StatusOr<TranslatedQuery> tq = TranslateQuery(q);
    if (!tq.ok()) return tq.status();
    absl::StatusOr<Rows> rows = QueryRows(db_, tq->sql, binds_);
    if (!rows.ok()) return rows.status();
    ExecResult result;
    for (const OutputColumn& c : tq->columns) result.columns.push_back({c.name, TypeText(c.type)});
    for (const std::vector<Value>& row : *rows) {
      std::vector<std::optional<std::string>> out;
      for (size_t i = 0; i < row.size() && i < tq->columns.size(); ++i) {
        out.push_back(DisplayValue(row[i], tq->columns[i].type));
      }
      result.data_array.push_back(std::move(out));
    }
    return result;
  }

  absl::StatusOr<ExecResult> RunOne(const CreateSchemaStmt& s) {
    const std::vector<std::string>& p = s.name.parts;
    if (p.size() > 2) return InvalidObjectName(absl::StrJoin(p, "."));
    const std::string catalog = p.size() == 2 ? Lower(p[0]) : DefaultCatalog();
    const std::string schema = Lower(p.back());
    absl::Status st = ValidateObjectName(catalog);
    if (st.ok()) st = ValidateObjectName(schema);
    if (!st.ok()) return st;
    absl::StatusOr<bool> exists = SchemaExistsIn(db_, catalog, schema);
    if (!exists.ok()) return exists.status();
    if (*exists) {
      if (s.if_not_exists) return ExecResult{};
      return SqlError(
          "SCHEMA_ALREADY_EXISTS",
          absl::StrCat("Cannot create schema ", Backticked(catalog), ".", Backticked(schema),
                       " because it already exists. Choose a different name, drop the "
                       "existing schema, or add the IF NOT EXISTS clause to tolerate "
                       "pre-existing schema."));
    }
    st = InsertSchema(db_, catalog, schema, s.comment);
    if (!st.ok()) return st;
    return ExecResult{};
  }

  absl::StatusOr<ExecResult> RunOne(const CreateTableStmt& s) {
    absl::StatusOr<TableId> id = TableIdOf(s.name);
    if (!id.ok()) return id.status();
    for (const std::string* part : {&id->catalog, &id->schema, &id->name}) {
      absl::Status st = ValidateObjectName(*part);
      if (!st.ok()) return st;
    }
    absl::StatusOr<bool> schema_exists = SchemaExistsIn(db_, id->catalog, id->schema);
    if (!schema_exists.ok()) return schema_exists.status();
    if (!*schema_exists) return SchemaNotFound(id->catalog, id->schema);
    absl::StatusOr<std::optional<TableMeta>> existing = LoadTable(db_, *id);
    if (!existing.ok()) return existing.status();
    if (existing->has_value()) {
      if (s.if_not_exists) return ExecResult{};
      return SqlError("TABLE_OR_VIEW_ALREADY_EXISTS",
                      absl::StrCat("Cannot create table or view ", id->Quoted(),
                                   " because it already exists. Choose a different name, drop or "
                                   "replace the existing object, or add the IF NOT EXISTS clause "
                                   "to tolerate pre-existing objects."));
    }
    TableMeta meta;
    meta.id = *id;
    meta.comment = s.comment;
    meta.properties = s.properties;
    for (const ColumnDef& c : s.columns) {
      absl::Status st = ValidateColumnName(c.name);
      if (!st.ok()) return st;
      if (meta.FindColumn(c.name) != nullptr) {
        return SqlError("COLUMN_ALREADY_EXISTS",
                        absl::StrCat("The column ", Backticked(c.name),
                                     " already exists. Choose another name or rename the existing "
                                     "column."));
      }
      meta.columns.push_back({c.name, c.type, !c.not_null, c.comment});
    }
    if (s.cluster_by.size() > 4) {
      return SqlError("DELTA_CLUSTER_BY_INVALID_NUM_COLUMNS",
                      absl::StrCat("CLUSTER BY supports up to 4 clustering columns, but the table "
                                   "has ",
                                   s.cluster_by.size(), " clustering columns."));
    }
    for (const std::string& c : s.cluster_by) {
      const ColumnMeta* column = meta.FindColumn(c);
      if (column == nullptr) {
        Relation rel;
        for (const ColumnMeta& m : meta.columns) rel.columns.push_back({m.name, m.type, ""});
        return UnresolvedColumn({c}, {&rel});
      }
      meta.cluster.push_back(column->name);
    }
    absl::Status st = CreateTableIn(db_, meta);
    if (!st.ok()) return st;
    return ExecResult{};
  }

  absl::StatusOr<ExecResult> RunOne(const AddColumnsStmt& s) {
    absl::StatusOr<TableMeta> meta = RequireTable(s.name);
    if (!meta.ok()) return meta.status();
    for (const ColumnDef& c : s.columns) {
      absl::Status st = ValidateColumnName(c.name);
      if (!st.ok()) return st;
      if (meta->FindColumn(c.name) != nullptr) {
        return SqlError("FIELD_ALREADY_EXISTS",
                        absl::StrCat("Cannot add column, because ", Backticked(c.name),
                                     " already exists in ", meta->id.Quoted(), "."));
      }
      const ColumnMeta column{c.name, c.type, true, c.comment};
      absl::StatusOr<int64_t> added = Exec(db_, absl::StrCat("ALTER TABLE ", meta->id.SqliteTable(),
                                                             " ADD COLUMN ", SqliteIdent(c.name)));
      if (!added.ok()) return added.status();
      st = InsertColumn(db_, meta->id, static_cast<int>(meta->columns.size()), column);
      if (!st.ok()) return st;
      meta->columns.push_back(column);
    }
    return ExecResult{};
  }

  // A target column named in UPDATE SET or INSERT (...), or the column of an
  // UPDATE SET * / INSERT * that the source lacks.
  absl::Status MergeUnresolved(const std::vector<std::string>& parts, std::string_view clause,
                               const Scope& scope) const {
    if (style_ == UnresolvedTargetColumnStyle::kDeltaMergeUnresolvedExpression) {
      std::vector<std::string> columns;
      for (const Relation* rel : scope) {
        for (const ColumnBinding& c : rel->columns) {
          columns.push_back(absl::StrCat(rel->alias.empty() ? "" : rel->alias + ".", c.name));
        }
      }
      return SqlError("DELTA_MERGE_UNRESOLVED_EXPRESSION",
                      absl::StrCat("Cannot resolve ", QuotedParts(parts), " in ", AV(clause),
                                   " clause given columns ", absl::StrJoin(columns, ", "), "."));
    }
    return UnresolvedColumn(parts, scope);
  }

  absl::StatusOr<const ColumnMeta*> TargetColumn(const NameRef& name, const TableMeta& meta,
                                                 const Relation& target,
                                                 std::string_view clause) const {
    const std::vector<std::string>& p = name.parts;
    const ColumnMeta* column = nullptr;
    if (p.size() == 1 || (p.size() == 2 && EqualsCi(p[0], target.alias))) {
      column = meta.FindColumn(p.back());
    }
    if (column == nullptr) return MergeUnresolved(p, clause, {&target});
    return column;
  }

  // Store assignment: Delta casts the value to the column type (ANSI cast,
  // checked at run time) when the types differ.
  absl::StatusOr<Typed> StoreAssign(const Typed& value, const ColumnMeta& column,
                                    const TableMeta& meta) const {
    if (!CanCast(value.type, column.type)) {
      return SqlError("DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION",
                      absl::StrCat("Cannot write to ", meta.id.Quoted(), " column ",
                                   Backticked(column.name), ": cannot cast \"", TypeSql(value.type),
                                   "\" to \"", TypeSql(column.type), "\"."));
    }
    return CastTo(value, column.type);
  }

  // The source columns of an ON condition that is a conjunction of
  // target = source / target <=> source; false for any other condition.
  bool EquiJoinKeys(const Expr& e, const Relation& target, const Relation& source,
                    std::vector<std::pair<std::string, bool>>* keys) const {
    if (e.kind == ExprKind::kAnd) {
      return EquiJoinKeys(*e.args[0], target, source, keys) &&
             EquiJoinKeys(*e.args[1], target, source, keys);
    }
    if (e.kind != ExprKind::kCompare || (e.op != "=" && e.op != "==" && e.op != "<=>") ||
        e.args[0]->kind != ExprKind::kColumn || e.args[1]->kind != ExprKind::kColumn) {
      return false;
    }
    for (int side = 0; side < 2; ++side) {
      const absl::StatusOr<const ColumnBinding*> t = ResolveColumn(e.args[side]->parts, {&target});
      const absl::StatusOr<const ColumnBinding*> s =
          ResolveColumn(e.args[1 - side]->parts, {&source});
      if (t.ok() && s.ok()) {
        keys->emplace_back((*s)->sql, e.op == "<=>");
        return true;
      }
    }
    return false;
  }

  struct PlannedClause {
    const MergeClause* clause = nullptr;
    std::string condition = "1";
    std::vector<std::pair<std::string, std::string>> assignments;  // SQLite column, value
  };

  absl::StatusOr<ExecResult> RunOne(const MergeStmt& m) {
    absl::StatusOr<TableMeta> meta_or = RequireTable(m.target);
    if (!meta_or.ok()) return meta_or.status();
    const TableMeta& meta = *meta_or;
    const char* rowid = nullptr;
    for (const char* name : {"rowid", "_rowid_", "oid"}) {
      if (rowid == nullptr && meta.FindColumn(name) == nullptr) rowid = name;
    }
    if (rowid == nullptr) return absl::InternalError("fake SQL engine: no free rowid alias");
    const std::string table = meta.id.SqliteTable();

    Relation target;
    target.alias = m.target_alias.empty() ? meta.id.name : m.target_alias;
    target.from_sql = absl::StrCat(table, " AS \"_t\"");
    for (const ColumnMeta& c : meta.columns) {
      target.columns.push_back({c.name, c.type, absl::StrCat("\"_t\".", SqliteIdent(c.name))});
    }

    // The source, materialised with a row id.
    TranslatedQuery source_query;
    if (m.source.kind == FromItem::Kind::kSubquery) {
      absl::StatusOr<TranslatedQuery> q = TranslateQuery(*m.source.subquery);
      if (!q.ok()) return q.status();
      source_query = *std::move(q);
    } else {
      absl::StatusOr<Relation> rel = TranslateFrom(m.source);
      if (!rel.ok()) return rel.status();
      std::vector<std::string> select;
      for (size_t i = 0; i < rel->columns.size(); ++i) {
        select.push_back(absl::StrCat(rel->columns[i].sql, " AS \"c", i, "\""));
        source_query.columns.push_back({rel->columns[i].name, rel->columns[i].type});
      }
      source_query.sql =
          absl::StrCat("SELECT ", absl::StrJoin(select, ", "), " FROM ", rel->from_sql);
    }
    const std::string src = NewTempTable();
    std::vector<std::string> src_columns;
    for (size_t i = 0; i < source_query.columns.size(); ++i) {
      src_columns.push_back(absl::StrCat("\"c", i, "\""));
    }
    absl::StatusOr<int64_t> r =
        Exec(db_, absl::StrCat("CREATE TABLE ", src, " (\"_rid\" INTEGER PRIMARY KEY, ",
                               absl::StrJoin(src_columns, ", "), ")"));
    if (r.ok()) {
      r = Exec(db_,
               absl::StrCat("INSERT INTO ", src, " (", absl::StrJoin(src_columns, ", "), ") ",
                            source_query.sql),
               binds_);
    }
    if (!r.ok()) return r.status();
    Relation source;
    source.alias = m.source.alias;
    source.from_sql = absl::StrCat(src, " AS \"_s\"");
    for (size_t i = 0; i < source_query.columns.size(); ++i) {
      source.columns.push_back({source_query.columns[i].name, source_query.columns[i].type,
                                absl::StrCat("\"_s\".\"c", i, "\"")});
    }
    const Scope both = {&target, &source};
    const Scope source_only = {&source};

    absl::StatusOr<Typed> on = Translate(*m.on, both);
    if (!on.ok()) return on.status();
    absl::Status st = CheckBoolean(*on, *m.on);
    if (!st.ok()) return st;

    // Plan every clause before touching the table.
    std::vector<PlannedClause> matched, not_matched;
    for (const MergeClause& c : m.clauses) {
      PlannedClause plan;
      plan.clause = &c;
      const Scope& scope = c.matched ? both : source_only;
      if (c.condition != nullptr) {
        absl::StatusOr<Typed> cond = Translate(*c.condition, scope);
        if (!cond.ok()) return cond.status();
        st = CheckBoolean(*cond, *c.condition);
        if (!st.ok()) return st;
        plan.condition = cond->sql;
      }
      const char* clause_name = c.matched ? "UPDATE" : "INSERT";
      std::set<std::string> assigned;
      auto assign = [&](const ColumnMeta& column, const Typed& value) -> absl::Status {
        if (!assigned.insert(Lower(column.name)).second) {
          return SqlError("DUPLICATE_ASSIGNMENTS",
                          absl::StrCat("The columns or variables ", Backticked(column.name),
                                       " appear more than once as assignment targets."));
        }
        absl::StatusOr<Typed> stored = StoreAssign(value, column, meta);
        if (!stored.ok()) return stored.status();
        plan.assignments.emplace_back(SqliteIdent(column.name), stored->sql);
        return absl::OkStatus();
      };
      // UPDATE SET * / INSERT *: every target column from the same-named source column.
      auto assign_all = [&]() -> absl::Status {
        for (const ColumnMeta& column : meta.columns) {
          const ColumnBinding* from = nullptr;
          for (const ColumnBinding& b : source.columns) {
            if (from == nullptr && EqualsCi(b.name, column.name)) from = &b;
          }
          if (from == nullptr) {
            std::vector<std::string> parts;
            if (!source.alias.empty()) parts.push_back(source.alias);
            parts.push_back(column.name);
            return MergeUnresolved(parts, clause_name, {&source});
          }
          absl::Status s = assign(column, Typed{from->sql, from->type});
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      };
      switch (c.action) {
        case MergeClause::Action::kUpdate:
          for (const auto& [name, expr] : c.assignments) {
            absl::StatusOr<const ColumnMeta*> column = TargetColumn(name, meta, target, "UPDATE");
            if (!column.ok()) return column.status();
            absl::StatusOr<Typed> value = Translate(*expr, both);
            if (!value.ok()) return value.status();
            st = assign(**column, *value);
            if (!st.ok()) return st;
          }
          break;
        case MergeClause::Action::kInsert:
          for (size_t i = 0; i < c.insert_columns.size(); ++i) {
            absl::StatusOr<const ColumnMeta*> column =
                TargetColumn(c.insert_columns[i], meta, target, "INSERT");
            if (!column.ok()) return column.status();
            absl::StatusOr<Typed> value = Translate(*c.insert_values[i], source_only);
            if (!value.ok()) return value.status();
            st = assign(**column, *value);
            if (!st.ok()) return st;
          }
          break;
        case MergeClause::Action::kUpdateAll:
        case MergeClause::Action::kInsertAll:
          st = assign_all();
          if (!st.ok()) return st;
          break;
        case MergeClause::Action::kDelete:
          break;
      }
      (c.matched ? matched : not_matched).push_back(std::move(plan));
    }
    auto first_applicable = [](const std::vector<PlannedClause>& clauses) {
      if (clauses.empty()) return std::string("0");
      std::string out = "CASE";
      for (size_t i = 0; i < clauses.size(); ++i) {
        absl::StrAppend(&out, " WHEN ", clauses[i].condition, " THEN ", i + 1);
      }
      return out + " ELSE 0 END";
    };

    // Matches: target row, source row and the WHEN MATCHED clause that applies.
    const std::string matches = NewTempTable();
    r = Exec(db_,
             absl::StrCat("CREATE TABLE ", matches, " AS SELECT \"_t\".", rowid,
                          " AS trow, \"_s\".\"_rid\" AS srow, ", first_applicable(matched),
                          " AS clause FROM ", target.from_sql, " JOIN ", source.from_sql, " ON ",
                          on->sql),
             binds_);
    if (!r.ok()) return r.status();
    if (!matched.empty()) {
      absl::StatusOr<Rows> conflict = QueryRows(
          db_, absl::StrCat("SELECT 1 FROM ", matches,
                            " WHERE clause <> 0 GROUP BY trow HAVING COUNT(*) > 1 LIMIT 1"));
      if (!conflict.ok()) return conflict.status();
      if (!conflict->empty()) return MultipleSourceRows();
    }
    // Stricter than Delta: a keyed source must not repeat a key even when the
    // rows match nothing (Delta would insert both, duplicating the key).
    std::vector<std::pair<std::string, bool>> keys;
    if (EquiJoinKeys(*m.on, target, source, &keys)) {
      std::vector<std::string> group, not_null;
      for (const auto& [sql, null_safe] : keys) {
        group.push_back(sql);
        if (!null_safe) not_null.push_back(absl::StrCat(sql, " IS NOT NULL"));
      }
      absl::StatusOr<Rows> duplicate = QueryRows(
          db_, absl::StrCat("SELECT 1 FROM ", source.from_sql, not_null.empty() ? "" : " WHERE ",
                            absl::StrJoin(not_null, " AND "), " GROUP BY ",
                            absl::StrJoin(group, ", "), " HAVING COUNT(*) > 1 LIMIT 1"));
      if (!duplicate.ok()) return duplicate.status();
      if (!duplicate->empty()) return MultipleSourceRows();
    }
    // Unmatched source rows and the WHEN NOT MATCHED clause that applies.
    const std::string inserts = NewTempTable();
    r = Exec(db_,
             absl::StrCat("CREATE TABLE ", inserts, " AS SELECT \"_s\".\"_rid\" AS rid, ",
                          first_applicable(not_matched), " AS clause FROM ", source.from_sql,
                          " WHERE \"_s\".\"_rid\" NOT IN (SELECT srow FROM ", matches, ")"),
             binds_);
    if (!r.ok()) return r.status();

    ExecResult result;
    for (size_t i = 0; i < matched.size(); ++i) {
      const PlannedClause& plan = matched[i];
      if (plan.clause->action == MergeClause::Action::kDelete) {
        r = Exec(db_,
                 absl::StrCat("DELETE FROM ", table, " WHERE ", rowid, " IN (SELECT trow FROM ",
                              matches, " WHERE clause = ", i + 1, ")"));
        if (!r.ok()) return r.status();
        result.num_deleted_rows += *r;
        continue;
      }
      std::vector<std::string> set;
      for (const auto& [column, value] : plan.assignments) {
        set.push_back(absl::StrCat(column, " = ", value));
      }
      r = Exec(db_,
               absl::StrCat("UPDATE ", table, " AS \"_t\" SET ", absl::StrJoin(set, ", "), " FROM ",
                            matches, " AS \"_m\" JOIN ", source.from_sql,
                            " ON \"_s\".\"_rid\" = \"_m\".srow WHERE \"_t\".", rowid,
                            " = \"_m\".trow AND \"_m\".clause = ", i + 1),
               binds_);
      if (!r.ok()) return r.status();
      result.num_updated_rows += *r;
    }
    for (size_t i = 0; i < not_matched.size(); ++i) {
      std::vector<std::string> columns, values;
      for (const auto& [column, value] : not_matched[i].assignments) {
        columns.push_back(column);
        values.push_back(value);
      }
      r = Exec(
          db_,
          absl::StrCat("INSERT INTO ", table, " (", absl::StrJoin(columns, ", "), ") SELECT ",
                       absl::StrJoin(values, ", "), " FROM ", source.from_sql, " JOIN ", inserts,
                       " AS \"_i\" ON \"_i\".rid = \"_s\".\"_rid\" WHERE \"_i\".clause = ", i + 1,
                       " ORDER BY \"_s\".\"_rid\""),
          binds_);
      if (!r.ok()) return r.status();
      result.num_inserted_rows += *r;
    }
    for (const ColumnMeta& c : meta.columns) {
      if (c.nullable) continue;
      absl::StatusOr<Rows> nulls =
          QueryRows(db_, absl::StrCat("SELECT 1 FROM ", table, " WHERE ", SqliteIdent(c.name),
                                      " IS NULL LIMIT 1"));
      if (!nulls.ok()) return nulls.status();
      if (!nulls->empty()) {
        return SqlError("DELTA_NOT_NULL_CONSTRAINT_VIOLATED",
                        absl::StrCat("NOT NULL constraint violated for column: ", c.name, "."));
      }
    }
    result.num_affected_rows =
        result.num_updated_rows + result.num_deleted_rows + result.num_inserted_rows;
    for (const char* name :
         {"num_affected_rows", "num_updated_rows", "num_deleted_rows", "num_inserted_rows"}) {
      result.columns.push_back({name, "bigint"});
    }
    result.data_array.push_back(
        {absl::StrCat(result.num_affected_rows), absl::StrCat(result.num_updated_rows),
         absl::StrCat(result.num_deleted_rows), absl::StrCat(result.num_inserted_rows)});
    return result;
  }

  sqlite3* db_;
  const std::vector<SqlParam>& params_;
  const ExecContext& context_;
  const UnresolvedTargetColumnStyle style_;
  std::vector<Value> binds_;
  std::vector<std::string> temp_tables_;
  int alias_counter_ = 0;
};

absl::StatusOr<ExecResult> RunStatement(sqlite3* db, std::string_view sql,
                                        const std::vector<SqlParam>& params,
                                        const ExecContext& context,
                                        UnresolvedTargetColumnStyle style) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(sql, /*allow_params=*/true);
  if (!tokens.ok()) return tokens.status();
  if (tokens->size() == 1) return SyntaxError(sql, 0, 0, "empty statement");
  absl::StatusOr<Statement> statement = Parser(sql, *std::move(tokens)).ParseStatement();
  if (!statement.ok()) return statement.status();
  Transaction transaction(db);
  absl::Status s = transaction.Begin();
  if (!s.ok()) return s;
  absl::StatusOr<ExecResult> result = Executor(db, params, context, style).Run(*statement);
  if (!result.ok()) return result;
  s = transaction.Commit();
  if (!s.ok()) return s;
  return result;
}

// "c.s.t" -> lowercase parts, or nullopt.
std::optional<TableId> SplitFullName(std::string_view full_name) {
  std::vector<std::string> parts = absl::StrSplit(AV(full_name), '.');
  if (parts.size() != 3) return std::nullopt;
  return TableId{Lower(parts[0]), Lower(parts[1]), Lower(parts[2])};
}

}  // namespace

std::string ExecResult::error_class() const { return ErrorClassOf(message); }

std::string ToUnityCatalogJson(const FakeTableInfo& info) {
  json columns = json::array();
  for (const FakeColumnInfo& c : info.columns) {
    json column = {{"name", c.name},
                   {"type_text", c.type_text},
                   {"type_name", c.type_name},
                   {"position", c.position},
                   {"nullable", c.nullable}};
    if (!c.comment.empty()) column["comment"] = c.comment;
    columns.push_back(std::move(column));
  }
  json properties = json::object();
  for (const auto& [key, value] : info.properties) properties[key] = value;
  if (!info.cluster_columns.empty()) {
    json clustering = json::array();
    for (const std::string& c : info.cluster_columns) clustering.push_back(json::array({c}));
    properties["clusteringColumns"] = clustering.dump();
  }
  json doc = {{"name", info.name},
              {"catalog_name", info.catalog_name},
              {"schema_name", info.schema_name},
              {"full_name", info.full_name},
              {"table_type", "MANAGED"},
              {"data_source_format", "DELTA"},
              {"columns", std::move(columns)},
              {"properties", std::move(properties)}};
  if (!info.comment.empty()) doc["comment"] = info.comment;
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<std::unique_ptr<FakeSqlEngine>> FakeSqlEngine::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    const std::string message = db == nullptr ? "out of memory" : sqlite3_errmsg(db);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("fake SQL engine: open ", path, ": ", message));
  }
  sqlite3_busy_timeout(db, 5000);
  absl::Status s = RegisterFunctions(db);
  if (s.ok() && sqlite3_exec(db, kCatalogDdl, nullptr, nullptr, nullptr) != SQLITE_OK) {
    s = SqliteError(db, kCatalogDdl);
  }
  if (!s.ok()) {
    sqlite3_close(db);
    return s;
  }
  return std::unique_ptr<FakeSqlEngine>(new FakeSqlEngine(db));
}

FakeSqlEngine::FakeSqlEngine(sqlite3* db) : db_(db) {}

FakeSqlEngine::~FakeSqlEngine() {
  absl::MutexLock lock(&mu_);
  sqlite3_close(db_);
}

ExecResult FakeSqlEngine::Execute(std::string_view sql, const std::vector<SqlParam>& params,
                                  const ExecContext& context) {
  absl::MutexLock lock(&mu_);
  ++statement_count_;
  absl::StatusOr<ExecResult> result = RunStatement(db_, sql, params, context, unresolved_style_);
  if (result.ok()) {
    result->state = "SUCCEEDED";
    return *std::move(result);
  }
  ExecResult failed;
  failed.state = "FAILED";
  failed.error_code = "BAD_REQUEST";
  failed.message = std::string(result.status().message());
  if (!absl::IsInvalidArgument(result.status()) || ErrorClassOf(failed.message).empty()) {
    failed.message = absl::StrCat("[INTERNAL_ERROR] ", failed.message);
  }
  failed.sql_state = SqlStateOf(ErrorClassOf(failed.message));
  return failed;
}

std::optional<FakeTableInfo> FakeSqlEngine::TableInfo(std::string_view full_name) {
  absl::MutexLock lock(&mu_);
  const std::optional<TableId> id = SplitFullName(full_name);
  if (!id.has_value()) return std::nullopt;
  absl::StatusOr<std::optional<TableMeta>> meta = LoadTable(db_, *id);
  if (!meta.ok() || !meta->has_value()) return std::nullopt;
  const TableMeta& m = **meta;
  FakeTableInfo info;
  info.catalog_name = m.id.catalog;
  info.schema_name = m.id.schema;
  info.name = m.id.name;
  info.full_name = m.id.FullName();
  info.comment = m.comment;
  for (size_t i = 0; i < m.columns.size(); ++i) {
    const ColumnMeta& c = m.columns[i];
    info.columns.push_back(
        {c.name, TypeText(c.type), TypeUcName(c.type), static_cast<int>(i), c.nullable, c.comment});
  }
  for (const auto& [key, value] : m.properties) info.properties[key] = value;
  info.cluster_columns = m.cluster;
  return info;
}

bool FakeSqlEngine::SchemaExists(std::string_view catalog, std::string_view schema) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<bool> exists = SchemaExistsIn(db_, Lower(catalog), Lower(schema));
  return exists.ok() && *exists;
}

std::vector<std::string> FakeSqlEngine::ListTables() {
  absl::MutexLock lock(&mu_);
  std::vector<std::string> out;
  absl::StatusOr<Rows> rows =
      QueryRows(db_, "SELECT catalog, schema, name FROM _mlc_tables ORDER BY 1, 2, 3");
  if (!rows.ok()) return out;
  for (const std::vector<Value>& row : *rows) {
    out.push_back(absl::StrCat(TextOf(row[0]), ".", TextOf(row[1]), ".", TextOf(row[2])));
  }
  return out;
}

absl::Status FakeSqlEngine::CreateSchemaDirect(std::string_view catalog, std::string_view schema) {
  absl::MutexLock lock(&mu_);
  const std::string c = Lower(catalog), s = Lower(schema);
  absl::Status st = ValidateObjectName(c);
  if (st.ok()) st = ValidateObjectName(s);
  if (!st.ok()) return st;
  absl::StatusOr<bool> exists = SchemaExistsIn(db_, c, s);
  if (!exists.ok()) return exists.status();
  if (*exists) return absl::OkStatus();
  return InsertSchema(db_, c, s, "");
}

absl::Status FakeSqlEngine::CreateTableDirect(
    std::string_view full_name, const std::vector<FakeColumnDef>& columns,
    const std::vector<std::string>& cluster_by, const std::string& comment,
    const std::map<std::string, std::string>& properties) {
  absl::MutexLock lock(&mu_);
  const std::optional<TableId> id = SplitFullName(full_name);
  if (!id.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("CreateTableDirect: \"", AV(full_name), "\" is not catalog.schema.table"));
  }
  for (const std::string* part : {&id->catalog, &id->schema, &id->name}) {
    absl::Status s = ValidateObjectName(*part);
    if (!s.ok()) return s;
  }
  if (columns.empty()) return absl::InvalidArgumentError("CreateTableDirect: no columns");
  TableMeta meta;
  meta.id = *id;
  meta.comment = comment;
  meta.properties.assign(properties.begin(), properties.end());
  for (const FakeColumnDef& c : columns) {
    absl::Status s = ValidateColumnName(c.name);
    if (!s.ok()) return s;
    if (meta.FindColumn(c.name) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateTableDirect: column ", c.name, " listed twice"));
    }
    absl::StatusOr<Type> type = ParseTypeText(c.type);
    if (!type.ok()) return type.status();
    meta.columns.push_back({c.name, *type, c.nullable, c.comment});
  }
  for (const std::string& c : cluster_by) {
    const ColumnMeta* column = meta.FindColumn(c);
    if (column == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("CreateTableDirect: cluster column ", c, " is not a column"));
    }
    meta.cluster.push_back(column->name);
  }
  Transaction transaction(db_);
  absl::Status s = transaction.Begin();
  if (!s.ok()) return s;
  absl::StatusOr<bool> schema_exists = SchemaExistsIn(db_, id->catalog, id->schema);
  if (!schema_exists.ok()) return schema_exists.status();
  if (!*schema_exists) {
    s = InsertSchema(db_, id->catalog, id->schema, "");
    if (!s.ok()) return s;
  }
  absl::StatusOr<std::optional<TableMeta>> existing = LoadTable(db_, *id);
  if (!existing.ok()) return existing.status();
  if (existing->has_value()) {
    return absl::AlreadyExistsError(
        absl::StrCat("CreateTableDirect: table ", id->FullName(), " exists"));
  }
  s = CreateTableIn(db_, meta);
  if (!s.ok()) return s;
  return transaction.Commit();
}

void FakeSqlEngine::set_unresolved_target_column_style(UnresolvedTargetColumnStyle style) {
  absl::MutexLock lock(&mu_);
  unresolved_style_ = style;
}

int64_t FakeSqlEngine::statement_count() {
  absl::MutexLock lock(&mu_);
  return statement_count_;
}

}  // namespace mlc::testing
