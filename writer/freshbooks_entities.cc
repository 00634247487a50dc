#include "writer/freshbooks_entities.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/civil_time.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

using Json = nlohmann::json;
using OptText = std::optional<std::string>;

// ---------------------------------------------------------------------------
// Small text helpers

OptText Some(std::string text) { return OptText(std::move(text)); }

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool AllDigits(const std::string& s, size_t pos, size_t n) {
  if (pos + n > s.size()) return false;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!IsDigit(s[i])) return false;
  }
  return true;
}

int Number(const std::string& s, size_t pos, size_t n) {
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) v = v * 10 + (s[i] - '0');
  return v;
}

// JSON text of `v` that never throws (invalid UTF-8 is replaced).
std::string Dump(const Json& v) { return v.dump(-1, ' ', false, Json::error_handler_t::replace); }

// A value for an error message: JSON text, at most ~80 bytes.
std::string Shown(const Json& v) {
  std::string text = Dump(v);
  if (text.size() > 80) {
    text.resize(77);
    text += "...";
  }
  return text;
}

absl::Status NotA(const Json& v, const std::string& want) {
  return absl::InvalidArgumentError(absl::StrCat(Shown(v), " is not ", want));
}

// `obj`'s member `key`, or nullptr.
const Json* Member(const Json& obj, const std::string& key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  if (it == obj.end()) return nullptr;
  return &it.value();
}

}  // namespace

const Json* JsonAt(const Json& object, const std::string& path) {
  const Json* cur = &object;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string segment =
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur->is_object()) {
      cur = Member(*cur, segment);
      if (cur == nullptr) return nullptr;
    } else if (cur->is_array()) {
      size_t index = 0;
      if (segment.empty() || !AllDigits(segment, 0, segment.size()) ||
          !absl::SimpleAtoi(segment, &index) || index >= cur->size()) {
        return nullptr;
      }
      cur = &(*cur)[index];
    } else {
      return nullptr;
    }
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

namespace {

// ---------------------------------------------------------------------------
// Decimals: exact string arithmetic, never floating point.

absl::StatusOr<std::string> CanonicalDecimal(const std::string& text, const ColumnSpec& column) {
  const std::string want =
      absl::StrCat("a decimal number for DECIMAL(", column.precision, ",", column.scale, ")");
  const Json shown(text);
  if (text.size() > 128) return NotA(shown, want);
  size_t pos = 0;
  bool negative = false;
  if (pos < text.size() && text[pos] == '-') {
    negative = true;
    ++pos;
  }
  std::string integer;
  std::string fraction;
  bool dot = false;
  for (; pos < text.size(); ++pos) {
    const char c = text[pos];
    if (IsDigit(c)) {
      (dot ? fraction : integer).push_back(c);
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      return NotA(shown, want);
    }
  }
  if (integer.empty() && fraction.empty()) return NotA(shown, want);

  const size_t scale = column.scale > 0 ? static_cast<size_t>(column.scale) : 0;
  const size_t first = integer.find_first_not_of('0');
  integer = first == std::string::npos ? "" : integer.substr(first);
  // Half-up on the first dropped digit (away from zero, as the sign is apart).
  const bool round_up = fraction.size() > scale && fraction[scale] >= '5';
  fraction.resize(scale, '0');
  std::string digits = integer + fraction;
  if (round_up) {
    size_t i = digits.size();
    while (i > 0 && digits[i - 1] == '9') {
      digits[i - 1] = '0';
      --i;
    }
    if (i == 0) {
      digits.insert(digits.begin(), '1');
    } else {
      ++digits[i - 1];
    }
  }
  integer = digits.substr(0, digits.size() - scale);
  fraction = digits.substr(digits.size() - scale);
  const int max_integer = column.precision - column.scale;
  if (static_cast<int>(integer.size()) > max_integer) {
    return absl::InvalidArgumentError(absl::StrCat(Shown(shown), " is out of range for DECIMAL(",
                                                   column.precision, ",", column.scale, ")"));
  }
  const bool zero = digits.find_first_not_of('0') == std::string::npos;
  return absl::StrCat(negative && !zero ? "-" : "", integer.empty() ? "0" : integer,
                      scale > 0 ? "." : "", fraction);
}

absl::StatusOr<OptText> DecimalOf(const Json& v, const ColumnSpec& column) {
  std::string text;
  if (v.is_string()) {
    text = v.get_ref<const std::string&>();
    if (text.empty()) return OptText();
  } else if (v.is_number_integer() || v.is_number_unsigned()) {
    text = Dump(v);
  } else if (v.is_number_float()) {
    if (!std::isfinite(v.get<double>())) return NotA(v, "a finite number");
    text = Dump(v);  // shortest round-trip text, e.g. 12.5; an exponent is rejected
  } else {
    return NotA(v, "a decimal number");
  }
  MLC_ASSIGN_OR_RETURN(std::string out, CanonicalDecimal(text, column));
  return Some(std::move(out));
}

// ---------------------------------------------------------------------------
// Integers, booleans, strings

absl::StatusOr<OptText> BigintOf(const Json& v) {
  if (v.is_number_unsigned()) {  // nlohmann stores non-negative integers unsigned
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return NotA(v, "a BIGINT");
    return Some(absl::StrCat(u));
  }
  if (v.is_number_integer()) return Some(absl::StrCat(v.get<int64_t>()));
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // Only integral values that a double holds exactly (|d| <= 2^53).
    if (std::isfinite(d) && std::trunc(d) == d && std::fabs(d) <= 9007199254740992.0) {
      return Some(absl::StrCat(static_cast<int64_t>(d)));
    }
    return NotA(v, "an integer");
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty()) return OptText();
    const size_t start = s[0] == '-' ? 1 : 0;
    int64_t n = 0;
    if (s.size() > start && s.size() <= 25 && AllDigits(s, start, s.size() - start) &&
        absl::SimpleAtoi(s, &n)) {
      return Some(absl::StrCat(n));
    }
    return NotA(v, "an integer");
  }
  return NotA(v, "an integer");
}

absl::StatusOr<OptText> BooleanOf(const Json& v) {
  if (v.is_boolean()) return Some(v.get<bool>() ? "true" : "false");
  if (v.is_number_integer()) {  // signed or unsigned
    const bool zero = v.is_number_unsigned() ? v.get<uint64_t>() == 0 : v.get<int64_t>() == 0;
    const bool one = v.is_number_unsigned() ? v.get<uint64_t>() == 1 : v.get<int64_t>() == 1;
    if (zero || one) return Some(one ? "true" : "false");
    return NotA(v, "a boolean");
  }
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    if (s.empty()) return OptText();
    if (s == "true" || s == "1") return Some("true");
    if (s == "false" || s == "0") return Some("false");
  }
  return NotA(v, "a boolean");
}

std::string StringOf(const Json& v) {
  if (v.is_string()) return v.get_ref<const std::string&>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return Dump(v);  // numbers as JSON prints them; objects and arrays as JSON
}

// ---------------------------------------------------------------------------
// Dates and timestamps

// "YYYY-MM-DD" -> the civil day, validated; nullopt for the zero date.
absl::StatusOr<std::optional<absl::CivilDay>> ParseDay(const std::string& s) {
  if (s.size() < 10 || !AllDigits(s, 0, 4) || s[4] != '-' || !AllDigits(s, 5, 2) || s[7] != '-' ||
      !AllDigits(s, 8, 2)) {
    return absl::InvalidArgumentError("bad date");
  }
  const int year = Number(s, 0, 4);
  const int month = Number(s, 5, 2);
  const int day = Number(s, 8, 2);
  if (year == 0 && month == 0 && day == 0) return std::optional<absl::CivilDay>();
  const absl::CivilDay civil(year, month, day);
  if (year == 0 || civil.year() != year || civil.month() != month || civil.day() != day) {
    return absl::InvalidArgumentError("bad date");
  }
  return std::optional<absl::CivilDay>(civil);
}

struct WallTime {
  absl::CivilSecond civil;
  absl::Duration fraction;            // below a second, truncated to microseconds
  std::optional<int> offset_seconds;  // set when the text names its zone
};

// "YYYY-MM-DD[ T]HH:MM:SS[.fff][Z|+hh:mm|+hhmm|+hh]"; nullopt for the zero
// timestamp "0000-00-00 00:00:00".
absl::StatusOr<std::optional<WallTime>> ParseWallTime(const std::string& s) {
  const absl::Status bad = absl::InvalidArgumentError("bad timestamp");
  if (s.size() < 19 || (s[10] != ' ' && s[10] != 'T' && s[10] != 't') || !AllDigits(s, 11, 2) ||
      s[13] != ':' || !AllDigits(s, 14, 2) || s[16] != ':' || !AllDigits(s, 17, 2)) {
    return bad;
  }
  MLC_ASSIGN_OR_RETURN(std::optional<absl::CivilDay> day, ParseDay(s.substr(0, 10)));
  const int hour = Number(s, 11, 2);
  const int minute = Number(s, 14, 2);
  const int second = Number(s, 17, 2);
  if (!day.has_value()) {
    if (hour == 0 && minute == 0 && second == 0 && s.size() == 19) {
      return std::optional<WallTime>();
    }
    return bad;
  }
  if (hour > 23 || minute > 59 || second > 59) return bad;
  WallTime out;
  out.civil = absl::CivilSecond(day->year(), day->month(), day->day(), hour, minute, second);
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int64_t micros = 0;
    int digits = 0;
    while (pos < s.size() && IsDigit(s[pos])) {
      if (digits < 6) {
        micros = micros * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    if (digits == 0) return bad;
    for (int i = digits; i < 6; ++i) micros *= 10;
    out.fraction = absl::Microseconds(micros);
  }
  if (pos == s.size()) return std::optional<WallTime>(out);
  if ((s[pos] == 'Z' || s[pos] == 'z') && pos + 1 == s.size()) {
    out.offset_seconds = 0;
    return std::optional<WallTime>(out);
  }
  if (s[pos] != '+' && s[pos] != '-') return bad;
  const int sign = s[pos] == '-' ? -1 : 1;
  ++pos;
  const size_t rest = s.size() - pos;
  int oh = 0;
  int om = 0;
  if (rest == 2 && AllDigits(s, pos, 2)) {
    oh = Number(s, pos, 2);
  } else if (rest == 4 && AllDigits(s, pos, 4)) {
    oh = Number(s, pos, 2);
    om = Number(s, pos + 2, 2);
  } else if (rest == 5 && AllDigits(s, pos, 2) && s[pos + 2] == ':' && AllDigits(s, pos + 3, 2)) {
    oh = Number(s, pos, 2);
    om = Number(s, pos + 3, 2);
  } else {
    return bad;
  }
  if (oh > 23 || om > 59) return bad;
  out.offset_seconds = sign * (oh * 3600 + om * 60);
  return std::optional<WallTime>(out);
}

absl::Time WithOffset(const WallTime& w, int offset_seconds) {
  return absl::FromCivil(w.civil, absl::UTCTimeZone()) - absl::Seconds(offset_seconds) + w.fraction;
}

// America/New_York, loaded once.
absl::StatusOr<absl::TimeZone> EasternZone() {
  static const absl::TimeZone* const kZone = []() -> const absl::TimeZone* {
    auto zone = std::make_unique<absl::TimeZone>();
    if (!absl::LoadTimeZone("America/New_York", zone.get())) return nullptr;
    return zone.release();
  }();
  if (kZone == nullptr) {
    return absl::FailedPreconditionError(
        "time zone America/New_York is not available (FreshBooks accounting timestamps are "
        "US/Eastern): install the tzdata package");
  }
  return *kZone;
}

absl::StatusOr<absl::Time> EasternToUtc(const WallTime& w) {
  if (w.offset_seconds.has_value()) return WithOffset(w, *w.offset_seconds);
  MLC_ASSIGN_OR_RETURN(absl::TimeZone zone, EasternZone());
  // `pre` is the instant under the offset in force before a transition: for a
  // repeated (fall-back) hour the earlier, EDT reading; for a skipped
  // (spring-forward) time the EST reading. For unique times all three agree.
  return zone.At(w.civil).pre + w.fraction;
}

absl::StatusOr<OptText> TimestampOf(const Json& v, Conversion conversion) {
  const char* want = conversion == Conversion::kTimestampIso ? "an ISO 8601 timestamp"
                                                             : "a timestamp YYYY-MM-DD HH:MM:SS";
  if (!v.is_string()) return NotA(v, want);
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty()) return OptText();
  absl::StatusOr<std::optional<WallTime>> wall = ParseWallTime(s);
  if (!wall.ok()) return NotA(v, want);
  if (!wall->has_value()) return OptText();
  const WallTime& w = **wall;
  if (conversion == Conversion::kTimestampEastern) {
    MLC_ASSIGN_OR_RETURN(absl::Time t, EasternToUtc(w));
    return Some(FormatTimestamp(t));
  }
  return Some(FormatTimestamp(WithOffset(w, w.offset_seconds.value_or(0))));
}

absl::StatusOr<OptText> DateOf(const Json& v) {
  if (!v.is_string()) return NotA(v, "a date YYYY-MM-DD");
  const std::string& s = v.get_ref<const std::string&>();
  if (s.empty()) return OptText();
  if (s.size() != 10) return NotA(v, "a date YYYY-MM-DD");
  absl::StatusOr<std::optional<absl::CivilDay>> day = ParseDay(s);
  if (!day.ok()) return NotA(v, "a date YYYY-MM-DD");
  if (!day->has_value()) return OptText();
  return Some(s);
}

// ---------------------------------------------------------------------------
// The entity registry

class FieldList {
 public:
  FieldList& Str(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kString, 0, 0, path, Conversion::kString, comment);
  }
  FieldList& Int(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kBigint, 0, 0, path, Conversion::kBigint, comment);
  }
  FieldList& Bool(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kBoolean, 0, 0, path, Conversion::kBoolean, comment);
  }
  FieldList& Day(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kDate, 0, 0, path, Conversion::kDate, comment);
  }
  FieldList& Eastern(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kTimestamp, 0, 0, path, Conversion::kTimestampEastern,
               absl::StrCat(comment, " (UTC; FreshBooks sends US/Eastern)"));
  }
  FieldList& Utc(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kTimestamp, 0, 0, path, Conversion::kTimestampUtc,
               absl::StrCat(comment, " (UTC)"));
  }
  FieldList& Iso(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kTimestamp, 0, 0, path, Conversion::kTimestampIso,
               absl::StrCat(comment, " (UTC)"));
  }
  FieldList& Dec(const char* name, const char* path, int precision, int scale,
                 const char* comment) {
    return Add(name, SqlType::kDecimal, precision, scale, path, Conversion::kDecimal, comment);
  }
  FieldList& JsonText(const char* name, const char* path, const char* comment) {
    return Add(name, SqlType::kString, 0, 0, path, Conversion::kJson,
               absl::StrCat(comment, " (JSON)"));
  }
  // A money object: `name` DECIMAL(18,2) and `name`_currency STRING.
  FieldList& Money(const char* name, const char* path, const char* comment) {
    Add(name, SqlType::kDecimal, 18, 2, path, Conversion::kMoneyAmount, comment);
    return Add(absl::StrCat(name, "_currency"), SqlType::kString, 0, 0, path,
               Conversion::kMoneyCode, absl::StrCat("currency code of ", name));
  }
  std::vector<FieldMapping> Take() { return std::move(fields_); }

 private:
  FieldList& Add(const std::string& name, SqlType type, int precision, int scale, const char* path,
                 Conversion conversion, const std::string& comment) {
    fields_.push_back(
        FieldMapping{ColumnSpec{name, type, precision, scale, comment}, path, conversion});
    return *this;
  }

  std::vector<FieldMapping> fields_;
};

constexpr char kAccountPrefix[] = "/accounting/account/{account_id}/";

std::unique_ptr<EntitySpec> Accounting(const char* name, const char* table,
                                       const char* event_object, const char* resource,
                                       const char* single_key, const char* list_key) {
  auto e = std::make_unique<EntitySpec>();
  e->name = name;
  e->table = table;
  e->event_object = event_object;
  e->scope = EntityScope::kAccount;
  e->path = absl::StrCat(kAccountPrefix, resource);
  e->object_path = absl::StrCat(e->path, "/{id}");
  e->result_envelope = true;
  e->single_key = single_key;
  e->list_key = list_key;
  return e;
}

std::unique_ptr<EntitySpec> Business(const char* name, const char* table, const char* event_object,
                                     const char* list_path, const char* object_path,
                                     const char* single_key, const char* list_key) {
  auto e = std::make_unique<EntitySpec>();
  e->name = name;
  e->table = table;
  e->event_object = event_object;
  e->scope = EntityScope::kBusinessId;
  e->path = list_path;
  e->object_path = object_path;
  e->result_envelope = false;
  e->single_key = single_key;
  e->list_key = list_key;
  e->supports_updated_min = false;
  e->supports_vis_state = false;
  return e;
}

struct Registry {
  std::vector<std::unique_ptr<EntitySpec>> owned;
  std::vector<const EntitySpec*> entities;
  std::map<const EntitySpec*, TableSpec> tables;  // entities and their children
};

TableSpec BuildTable(const EntitySpec& e);

const Registry* BuildRegistry() {
  auto* r = new Registry;
  auto add = [r](std::unique_ptr<EntitySpec> e) {
    r->entities.push_back(e.get());
    r->owned.push_back(std::move(e));
  };

  // Invoice lines: the child of invoices (GET with include[]=lines).
  auto line = std::make_unique<EntitySpec>();
  line->name = "invoice_line";
  line->table = "freshbooks_invoice_lines";
  line->id_path = "lineid";
  line->parent_key_column = "invoice_id";
  line->single_fetch = false;
  line->supports_updated_min = false;
  line->supports_vis_state = false;
  line->fields = FieldList()
                     .Str("name", "name", "line name (item or service)")
                     .Str("description", "description", "line description")
                     .Dec("qty", "qty", 18, 4, "quantity")
                     .Money("unit_cost", "unit_cost", "price per unit")
                     .Money("amount", "amount", "line amount before taxes (qty x unit_cost)")
                     .Str("tax_name1", "taxName1", "first tax name")
                     .Dec("tax_amount1", "taxAmount1", 18, 4, "first tax rate in percent")
                     .Str("tax_name2", "taxName2", "second tax name")
                     .Dec("tax_amount2", "taxAmount2", 18, 4, "second tax rate in percent")
                     .Int("type", "type", "line type: 0 normal, 1 billing (time/expense)")
                     .Take();
  const EntitySpec* line_ptr = line.get();
  r->owned.push_back(std::move(line));

  {
    auto e = Accounting("invoice", "freshbooks_invoices", "invoice", "invoices/invoices", "invoice",
                        "invoices");
    e->read_scope = "user:invoices:read";
    e->includes = {"lines"};
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields =
        FieldList()
            .Str("invoice_number", "invoice_number", "invoice number shown to the client")
            .Int("customerid", "customerid", "client id (freshbooks_clients.id)")
            .Day("create_date", "create_date", "invoice date")
            .Day("due_date", "due_date", "date payment is due")
            .Str("status", "status", "FreshBooks invoice status code")
            .Str("v3_status", "v3_status", "invoice status, e.g. draft, sent, paid, overdue")
            .Str("payment_status", "payment_status", "unpaid, partial, paid or auto-paid")
            .Str("display_status", "display_status", "status as shown in FreshBooks")
            .Money("amount", "amount", "invoice total")
            .Money("outstanding", "outstanding", "amount still owed")
            .Money("paid", "paid", "amount paid so far")
            .Money("discount_total", "discount_total", "total discount")
            .Str("currency_code", "currency_code", "invoice currency")
            .Str("organization", "organization", "client organization on the invoice")
            .Str("fname", "fname", "client first name on the invoice")
            .Str("lname", "lname", "client last name on the invoice")
            .Eastern("created_at", "created_at", "when the invoice was created")
            .Take();
    e->child_array_path = "lines";
    e->child = line_ptr;
    add(std::move(e));
  }
  {
    auto e = Accounting("payment", "freshbooks_payments", "payment", "payments/payments", "payment",
                        "payments");
    e->read_scope = "user:payments:read";
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Int("invoiceid", "invoiceid", "invoice paid (freshbooks_invoices.id)")
                    .Int("clientid", "clientid", "paying client (freshbooks_clients.id)")
                    .Money("amount", "amount", "payment amount")
                    .Day("date", "date", "payment date")
                    .Str("type", "type", "payment method, e.g. Check, Cash, Credit Card")
                    .Str("note", "note", "payment note")
                    .Bool("from_credit", "from_credit", "paid from a client credit")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("bill", "freshbooks_bills", "bill", "bills/bills", "bill", "bills");
    e->read_scope = "user:bills:read";
    e->supports_updated_min = false;
    e->updated_path = "updated_at";
    e->updated_conversion = Conversion::kTimestampUtc;
    e->fields = FieldList()
                    .Str("bill_number", "bill_number", "vendor's bill number")
                    .Int("vendorid", "vendorid", "vendor (freshbooks_bill_vendors.id)")
                    .Day("issue_date", "issue_date", "date the vendor issued the bill")
                    .Day("due_date", "due_date", "date payment is due")
                    .Int("due_offset_days", "due_offset_days", "days from issue to due date")
                    .Str("status", "status", "unpaid, overdue, partial or paid")
                    .Money("amount", "amount", "bill amount before taxes")
                    .Money("tax_amount", "tax_amount", "taxes")
                    .Money("total_amount", "total_amount", "bill total with taxes")
                    .Money("outstanding", "outstanding", "amount still owed")
                    .Money("paid", "paid", "amount paid so far")
                    .Str("currency_code", "currency_code", "bill currency")
                    .Str("overall_category", "overall_category", "expense category, or Split")
                    .Str("overall_description", "overall_description", "first line description")
                    .Str("language", "language", "two-letter language code")
                    .Utc("created_at", "created_at", "when the bill was created")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("bill_payment", "freshbooks_bill_payments", "",
                        "bill_payments/bill_payments", "bill_payment", "bill_payments");
    e->read_scope = "user:bill_payments:read";
    e->supports_updated_min = false;  // no last-modified field: updated_at is the fetch time
    e->fields = FieldList()
                    .Int("billid", "billid", "bill paid (freshbooks_bills.id)")
                    .Money("amount", "amount", "payment amount")
                    .Day("paid_date", "paid_date", "payment date")
                    .Str("payment_type", "payment_type", "payment method, e.g. Check, ACH")
                    .Str("note", "note", "payment note")
                    .Bool("matched_with_expense", "matched_with_expense",
                          "reconciled with a bank-imported expense")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("bill_vendor", "freshbooks_bill_vendors", "bill_vendor",
                        "bill_vendors/bill_vendors", "bill_vendor", "bill_vendors");
    e->read_scope = "user:bill_vendors:read";
    e->id_path = "vendorid";
    e->supports_updated_min = false;
    e->updated_path = "updated_at";
    e->updated_conversion = Conversion::kTimestampUtc;
    e->fields =
        FieldList()
            .Str("vendor_name", "vendor_name", "vendor name")
            .Str("account_number", "account_number", "our account number at the vendor")
            .Str("primary_contact_first_name", "primary_contact_first_name", "contact first name")
            .Str("primary_contact_last_name", "primary_contact_last_name", "contact last name")
            .Str("primary_contact_email", "primary_contact_email", "contact email")
            .Str("phone", "phone", "phone number")
            .Str("website", "website", "website")
            .Str("street", "street", "street address")
            .Str("city", "city", "city")
            .Str("province", "province", "province or state")
            .Str("postal_code", "postal_code", "postal code")
            .Str("country", "country", "country")
            .Str("currency_code", "currency_code", "default currency")
            .Str("language", "language", "two-letter language code")
            .Bool("is_1099", "is_1099", "1099 contractor")
            .Money("outstanding_balance", "outstanding_balance.0",
                   "amount owed to the vendor (first currency)")
            .Money("overdue_balance", "overdue_balance.0",
                   "overdue amount owed to the vendor (first currency)")
            .Utc("created_at", "created_at", "when the vendor was created")
            .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("expense", "freshbooks_expenses", "expense", "expenses/expenses", "expense",
                        "expenses");
    e->read_scope = "user:expenses:read";
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Int("categoryid", "categoryid", "category (freshbooks_expense_categories.id)")
                    .Str("vendor", "vendor", "vendor name")
                    .Money("amount", "amount", "expense amount")
                    .Day("date", "date", "expense date")
                    .Int("staffid", "staffid", "staff member who incurred it")
                    .Int("clientid", "clientid", "client it is billed to, 0 if none")
                    .Int("invoiceid", "invoiceid", "invoice it was billed on, 0 if none")
                    .Int("projectid", "projectid", "project, 0 if none")
                    .Int("status", "status", "0 internal, 1 outstanding, 2 invoiced, 4 recouped")
                    .Str("notes", "notes", "notes")
                    .Str("tax_name1", "taxName1", "first tax name")
                    .Money("tax_amount1", "taxAmount1", "first tax amount")
                    .Dec("tax_percent1", "taxPercent1", 18, 4, "first tax rate in percent")
                    .Bool("billable", "billable", "can be billed to a client")
                    .Bool("has_receipt", "has_receipt", "a receipt is attached")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("expense_category", "freshbooks_expense_categories", "category",
                        "expenses/categories", "category", "categories");
    e->read_scope = "user:expenses:read";
    e->supports_updated_min = false;
    e->updated_path = "updated_at";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Str("category", "category", "category name, e.g. Advertising")
                    .Int("parentid", "parentid", "parent category id")
                    .Bool("is_cogs", "is_cogs", "cost of goods sold")
                    .Bool("is_editable", "is_editable", "user can edit it")
                    .Eastern("created_at", "created_at", "when the category was created")
                    .Take();
    add(std::move(e));
  }
  {
    auto e =
        Accounting("client", "freshbooks_clients", "client", "users/clients", "client", "clients");
    e->read_scope = "user:clients:read";
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Str("fname", "fname", "first name")
                    .Str("lname", "lname", "last name")
                    .Str("organization", "organization", "organization name")
                    .Str("email", "email", "email")
                    .Str("bus_phone", "bus_phone", "business phone")
                    .Str("p_street", "p_street", "primary address street")
                    .Str("p_city", "p_city", "primary address city")
                    .Str("p_province", "p_province", "primary address province or state")
                    .Str("p_code", "p_code", "primary address postal code")
                    .Str("p_country", "p_country", "primary address country")
                    .Str("currency_code", "currency_code", "default currency")
                    .Str("language", "language", "two-letter language code")
                    .Utc("signup_date", "signup_date", "when the client was added")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("item", "freshbooks_items", "item", "items/items", "item", "items");
    e->read_scope = "user:billable_items:read";
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Str("name", "name", "item name")
                    .Str("description", "description", "description")
                    .Str("sku", "sku", "stock keeping unit")
                    .Dec("qty", "qty", 18, 4, "default quantity")
                    .Dec("inventory", "inventory", 18, 4, "units in stock, NULL if not tracked")
                    .Money("unit_cost", "unit_cost", "price per unit")
                    .Int("tax1", "tax1", "first tax (freshbooks_taxes.id), 0 if none")
                    .Int("tax2", "tax2", "second tax (freshbooks_taxes.id), 0 if none")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("tax", "freshbooks_taxes", "tax", "taxes/taxes", "tax", "taxes");
    e->read_scope = "user:taxes:read";
    e->supports_updated_min = false;
    e->supports_vis_state = false;  // taxes are hard-deleted
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Str("name", "name", "tax name, e.g. GST")
                    .Dec("amount", "amount", 18, 4, "tax rate in percent")
                    .Str("number", "number", "tax registration number")
                    .Bool("compound", "compound", "compound tax")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("credit_note", "freshbooks_credit_notes", "credit_note",
                        "credit_notes/credit_notes", "credit_note", "credit_notes");
    e->read_scope = "user:credit_notes:read";
    e->supports_updated_min = false;  // no last-modified field: updated_at is the fetch time
    e->fields = FieldList()
                    .Str("credit_number", "credit_number", "credit note number")
                    .Int("clientid", "clientid", "client (freshbooks_clients.id)")
                    .Day("create_date", "create_date", "credit note date")
                    .Str("credit_type", "credit_type", "goodwill, overpayment or prepayment")
                    .Str("status", "status", "status, e.g. created, sent")
                    .Str("display_status", "display_status", "status as shown in FreshBooks")
                    .Str("payment_status", "payment_status", "unpaid, partial or paid (applied)")
                    .Money("amount", "amount", "credit amount")
                    .Money("paid", "paid", "amount applied so far")
                    .Str("currency_code", "currency_code", "currency")
                    .Str("organization", "organization", "client organization")
                    .Str("fname", "fname", "client first name")
                    .Str("lname", "lname", "client last name")
                    .Str("description", "description", "description")
                    .Str("notes", "notes", "notes")
                    .Str("language", "language", "two-letter language code")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("estimate", "freshbooks_estimates", "estimate", "estimates/estimates",
                        "estimate", "estimates");
    e->read_scope = "user:estimates:read";
    e->updated_path = "updated";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Str("estimate_number", "estimate_number", "estimate number")
                    .Int("customerid", "customerid", "client (freshbooks_clients.id)")
                    .Day("create_date", "create_date", "estimate date")
                    .Str("status", "status", "FreshBooks estimate status code")
                    .Str("ui_status", "ui_status", "e.g. draft, sent, viewed, accepted, invoiced")
                    .Str("display_status", "display_status", "status as shown in FreshBooks")
                    .Bool("accepted", "accepted", "accepted by the client")
                    .Money("amount", "amount", "estimate total")
                    .Money("discount_total", "discount_total", "total discount")
                    .Str("currency_code", "currency_code", "currency")
                    .Str("organization", "organization", "client organization")
                    .Str("fname", "fname", "client first name")
                    .Str("lname", "lname", "client last name")
                    .Str("description", "description", "description")
                    .Eastern("created_at", "created_at", "when the estimate was created")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("other_income", "freshbooks_other_income", "",
                        "other_incomes/other_incomes", "other_income", "other_income");
    e->read_scope = "user:other_income:read";
    e->id_path = "incomeid";
    e->supports_updated_min = false;
    e->updated_path = "updated_at";
    e->updated_conversion = Conversion::kTimestampEastern;
    e->fields = FieldList()
                    .Money("amount", "amount", "income amount")
                    .Str("category_name", "category_name",
                         "advertising, in_person_sales, online_sales, rentals or other")
                    .Day("date", "date", "income date")
                    .Str("note", "note", "note")
                    .Str("payment_type", "payment_type", "payment method")
                    .Str("source", "source", "where the income came from, e.g. Etsy")
                    .JsonText("taxes", "taxes", "taxes [{name, amount}]")
                    .Eastern("created_at", "created_at", "when the income was recorded")
                    .Take();
    add(std::move(e));
  }
  {
    // The chart of accounts. The answer is {"data": [...]} (a list) and
    // {"data": {...}} (one account), outside the accounting envelope; no
    // updated_min or vis_state filters; ISO 8601 timestamps; uuid ids.
    auto e = std::make_unique<EntitySpec>();
    e->name = "ledger_account";
    e->read_scope = "user:journal_entries:read";
    e->table = "freshbooks_accounts";
    e->event_object = "";
    e->scope = EntityScope::kBusinessUuid;
    e->path = "/accounting/businesses/{business_uuid}/ledger_accounts/accounts";
    e->object_path = absl::StrCat(e->path, "/{id}");
    e->result_envelope = false;
    e->single_key = "data";
    e->list_key = "data";
    e->supports_updated_min = false;
    e->supports_vis_state = false;
    e->id_path = "uuid";
    e->id_type = SqlType::kString;
    e->updated_path = "updated_at";
    e->updated_conversion = Conversion::kTimestampIso;
    e->fields =
        FieldList()
            .Str("name", "name", "account name, e.g. Cash")
            .Str("number", "number", "account number, e.g. 1000-1")
            .Str("type", "type",
                 "asset, liability, equity, income, cost_of_goods_sold "
                 "or expense")
            .Str("sub_type", "sub_type", "sub-type, e.g. Cash & Bank")
            .Str("description", "description", "description")
            .Str("parent_account", "parent_account", "parent account uuid (freshbooks_accounts.id)")
            .Str("state", "state", "active or archived")
            .Bool("auto_created", "auto_created", "created by FreshBooks")
            .Str("system_account_name", "system_account_name", "FreshBooks system account this is")
            .JsonText("sub_accounts", "sub_accounts", "uuids of the sub-accounts")
            .Take();
    add(std::move(e));
  }
  {
    auto e = Accounting("journal_entry_detail", "freshbooks_journal_entry_details", "",
                        "journal_entries/journal_entry_details", "", "journal_entry_details");
    e->read_scope = "user:journal_entries:read";
    e->object_path = "";
    e->single_fetch = false;
    e->supports_updated_min = false;
    e->supports_vis_state = false;
    e->fields = FieldList()
                    .Str("name", "name", "entry name, e.g. Invoice 0000107")
                    .Str("description", "description", "description")
                    .Str("detail_type", "detail_type", "kind of entry, e.g. sales, payment")
                    .Day("user_entered_date", "user_entered_date", "accounting date")
                    .Int("accountid", "account.accountid", "ledger account id")
                    .Str("account_name", "account.account_name", "ledger account name")
                    .Str("account_number", "account.account_number", "ledger account number")
                    .Str("account_type", "account.account_type", "ledger account type")
                    .Int("sub_accountid", "sub_account.sub_accountid", "sub-account id")
                    .Str("sub_account_name", "sub_account.account_sub_name", "sub-account name")
                    .Int("entryid", "entry.entryid", "journal entry id")
                    .Int("clientid", "entry.clientid", "client of the entry, if any")
                    .Int("invoiceid", "entry.invoiceid", "invoice of the entry, if any")
                    .Money("debit", "debit", "debit amount (NULL for a credit)")
                    .Money("credit", "credit", "credit amount (NULL for a debit)")
                    .Money("balance", "balance", "running balance")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Business("project", "freshbooks_projects", "project",
                      "/projects/business/{business_id}/projects",
                      "/projects/business/{business_id}/project/{id}", "project", "projects");
    e->read_scope = "user:projects:read";
    e->updated_path = "updated_at";
    e->updated_conversion = Conversion::kTimestampIso;
    e->fields = FieldList()
                    .Str("title", "title", "project title")
                    .Str("description", "description", "description")
                    .Day("due_date", "due_date", "due date")
                    .Int("client_id", "client_id", "client (freshbooks_clients.id)")
                    .Bool("internal", "internal", "internal project (no client)")
                    .Dec("budget", "budget", 18, 2, "budget")
                    .Dec("fixed_price", "fixed_price", 18, 2, "price of a fixed-price project")
                    .Dec("rate", "rate", 18, 2, "hourly rate")
                    .Str("billing_method", "billing_method",
                         "business_rate, project_rate, service_rate or team_member_rate")
                    .Str("project_type", "project_type", "fixed_price or hourly_rate")
                    .Bool("active", "active", "active (not archived)")
                    .Bool("complete", "complete", "marked complete")
                    .Int("logged_duration", "logged_duration", "time logged, in seconds")
                    .Dec("billed_amount", "billed_amount", 18, 2, "amount billed so far")
                    .Str("billed_status", "billed_status", "unbilled, partially_billed or billed")
                    .Iso("created_at", "created_at", "when the project was created")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Business("service", "freshbooks_services", "service",
                      "/comments/business/{business_id}/services",
                      "/comments/business/{business_id}/service/{id}", "service", "services");
    e->read_scope = "user:projects:read";
    // No last-modified field: updated_at is the fetch time.
    e->fields = FieldList()
                    .Int("business_id", "business_id", "FreshBooks business id")
                    .Str("name", "name", "service name")
                    .Bool("billable", "billable", "billable")
                    .Take();
    add(std::move(e));
  }
  {
    auto e = Business("time_entry", "freshbooks_time_entries", "time_entry",
                      "/timetracking/business/{business_id}/time_entries",
                      "/timetracking/business/{business_id}/time_entries/{id}", "time_entry",
                      "time_entries");
    e->read_scope = "user:time_entries:read";
    // No last-modified field: updated_at is the fetch time.
    e->fields = FieldList()
                    .Int("identity_id", "identity_id", "FreshBooks identity who logged it")
                    .Int("client_id", "client_id", "client (freshbooks_clients.id)")
                    .Int("project_id", "project_id", "project (freshbooks_projects.id)")
                    .Int("service_id", "service_id", "service (freshbooks_services.id)")
                    .Str("note", "note", "note")
                    .Iso("started_at", "started_at", "when the work started")
                    .Iso("created_at", "created_at", "when the entry was created")
                    .Int("duration", "duration", "duration in seconds")
                    .Bool("is_logged", "is_logged", "logged (not a running timer)")
                    .Bool("active", "active", "timer running")
                    .Bool("billable", "billable", "billable")
                    .Bool("billed", "billed", "already billed")
                    .Bool("internal", "internal", "internal (no client)")
                    .Take();
    add(std::move(e));
  }

  for (const EntitySpec* e : r->entities) {
    r->tables.emplace(e, BuildTable(*e));
    if (e->child != nullptr) r->tables.emplace(e->child, BuildTable(*e->child));
  }
  return r;
}

const Registry& GetRegistry() {
  static const Registry* const kRegistry = BuildRegistry();
  return *kRegistry;
}

std::string Humanize(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    if (c == '_') c = ' ';
  }
  return out;
}

ColumnSpec Column(const std::string& name, SqlType type, const std::string& comment) {
  return ColumnSpec{name, type, 0, 0, comment};
}

TableSpec BuildTable(const EntitySpec& e) {
  TableSpec t;
  t.name = e.table;
  t.columns.push_back(Column("account_id", SqlType::kString, "FreshBooks account id (key)"));
  if (!e.parent_key_column.empty()) {
    t.columns.push_back(
        Column(e.parent_key_column, SqlType::kBigint, "id of the parent object (key)"));
  }
  t.columns.push_back(
      Column("id", e.id_type,
             absl::StrCat("FreshBooks ", Humanize(e.name), " id (key; from ", e.id_path, ")")));
  for (const FieldMapping& f : e.fields) t.columns.push_back(f.column);
  t.columns.push_back(Column("vis_state", SqlType::kBigint,
                             "FreshBooks visibility: 0 active, 1 deleted, 2 archived"));
  t.columns.push_back(Column("is_deleted", SqlType::kBoolean,
                             "deleted in FreshBooks (vis_state 1, or gone: a tombstone)"));
  t.columns.push_back(Column("updated_at", SqlType::kTimestamp,
                             "last modification in FreshBooks, or the fetch time if it has none "
                             "(UTC; newer wins)"));
  t.columns.push_back(Column("raw", SqlType::kString, "the object as fetched (JSON)"));
  t.columns.push_back(Column("_source", SqlType::kString, "webhook or sync"));
  t.columns.push_back(
      Column("_delivery_id", SqlType::kString, "ml-connector delivery id (NULL for sync)"));
  t.columns.push_back(
      Column("_synced_at", SqlType::kTimestamp, "when ml-connector fetched the object (UTC)"));
  t.key = {"account_id"};
  if (!e.parent_key_column.empty()) t.key.push_back(e.parent_key_column);
  t.key.emplace_back("id");
  t.version_column = "updated_at";
  t.insert_only = false;
  t.comment = absl::StrCat("FreshBooks ", Humanize(e.name), " (ml-connector)");
  return t;
}

// Tables of specs that are not in the registry (tests, tools), built once.
struct ExtraTables {
  absl::Mutex mu;
  std::map<const EntitySpec*, std::unique_ptr<TableSpec>> tables ABSL_GUARDED_BY(mu);
};

ExtraTables& Extras() {
  static ExtraTables* const kExtras = new ExtraTables;
  return *kExtras;
}

// ---------------------------------------------------------------------------
// Rows

bool IsUnreserved(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || IsDigit(c) || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string PercentEncode(const std::string& s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : s) {
    if (IsUnreserved(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xF]);
    }
  }
  return out;
}

std::string FillTemplate(const std::string& templ, const std::map<std::string, std::string>& v) {
  std::string out;
  size_t pos = 0;
  while (pos < templ.size()) {
    const size_t open = templ.find('{', pos);
    if (open == std::string::npos) break;
    const size_t close = templ.find('}', open);
    if (close == std::string::npos) break;
    out.append(templ, pos, open - pos);
    const auto it = v.find(templ.substr(open + 1, close - open - 1));
    if (it != v.end()) {
      out += PercentEncode(it->second);
    } else {
      out.append(templ, open, close - open + 1);
    }
    pos = close + 1;
  }
  out.append(templ, pos, std::string::npos);
  return out;
}

absl::Status FieldError(const EntitySpec& e, const std::string& id, const std::string& path,
                        const std::string& column, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat("FreshBooks ", e.name, id.empty() ? "" : " ", id,
                                                 ": field ", path, " (column ", column,
                                                 "): ", status.message()));
}

absl::StatusOr<std::string> IdOf(const EntitySpec& e, const Json& object,
                                 const std::string& where) {
  const Json* v = JsonAt(object, e.id_path);
  if (v == nullptr || v->is_null()) {
    return absl::InvalidArgumentError(
        absl::StrCat("FreshBooks ", e.name, where, ": object has no id (field ", e.id_path, ")"));
  }
  const ColumnSpec column{"id", e.id_type, 0, 0, ""};
  absl::StatusOr<OptText> id = ConvertValue(
      v, e.id_type == SqlType::kBigint ? Conversion::kBigint : Conversion::kString, column);
  if (!id.ok()) return FieldError(e, where, e.id_path, "id", id.status());
  if (!id->has_value() || (*id)->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FreshBooks ", e.name, where, ": object has an empty id (field ", e.id_path, ")"));
  }
  return **id;
}

// Converts each business field of `object` onto the end of `row`.
absl::Status AppendFields(const EntitySpec& e, const Json& object, const std::string& id,
                          Row* row) {
  for (const FieldMapping& f : e.fields) {
    absl::StatusOr<OptText> value =
        ConvertValue(JsonAt(object, f.json_path), f.conversion, f.column);
    if (!value.ok()) return FieldError(e, id, f.json_path, f.column.name, value.status());
    row->push_back(*std::move(value));
  }
  return absl::OkStatus();
}

struct Common {
  OptText vis_state;
  bool is_deleted = false;
  std::string updated_at;
};

void AppendCommon(const Common& c, OptText raw, const MapContext& ctx, Row* row) {
  row->push_back(c.vis_state);
  row->push_back(Some(c.is_deleted ? "true" : "false"));
  row->push_back(c.updated_at);
  row->push_back(std::move(raw));
  row->push_back(ctx.source);
  row->push_back(ctx.delivery_id.empty() ? OptText() : OptText(ctx.delivery_id));
  row->push_back(FormatTimestamp(ctx.synced_at));
}

absl::StatusOr<std::vector<MappedRow>> MapChildren(const EntitySpec& parent,
                                                   const std::string& parent_id, const Json& object,
                                                   const Common& common, const MapContext& ctx) {
  std::vector<MappedRow> out;
  const EntitySpec& child = *parent.child;
  const Json* items = JsonAt(object, parent.child_array_path);
  if (items == nullptr || items->is_null()) return out;
  if (!items->is_array()) {
    return FieldError(parent, parent_id, parent.child_array_path, child.table,
                      NotA(*items, "an array"));
  }
  const TableSpec& table = EntityTable(child);
  for (size_t i = 0; i < items->size(); ++i) {
    const Json& item = (*items)[i];
    const std::string where =
        absl::StrCat(" ", parent_id, " ", parent.child_array_path, "[", i, "]");
    if (!item.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("FreshBooks ", parent.name, where, ": ", Shown(item), " is not an object"));
    }
    MLC_ASSIGN_OR_RETURN(std::string id, IdOf(child, item, where));
    Row row;
    row.reserve(table.columns.size());
    row.push_back(ctx.account_id);
    row.push_back(parent_id);
    row.push_back(id);
    MLC_RETURN_IF_ERROR(AppendFields(child, item, absl::StrCat(parent_id, "/", id), &row));
    AppendCommon(common, Dump(item), ctx, &row);
    out.push_back(MappedRow{&table, std::move(row)});
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Public API

const std::vector<const EntitySpec*>& AllEntities() { return GetRegistry().entities; }

const EntitySpec* EntityForEventObject(const std::string& event_object) {
  if (event_object.empty()) return nullptr;
  for (const EntitySpec* e : AllEntities()) {
    if (e->event_object == event_object) return e;
  }
  return nullptr;
}

const EntitySpec* EntityByName(const std::string& name) {
  for (const EntitySpec* e : AllEntities()) {
    if (e->name == name) return e;
  }
  return nullptr;
}

const TableSpec& EntityTable(const EntitySpec& entity) {
  const Registry& r = GetRegistry();
  const auto it = r.tables.find(&entity);
  if (it != r.tables.end()) return it->second;
  ExtraTables& extras = Extras();
  absl::MutexLock lock(&extras.mu);
  std::unique_ptr<TableSpec>& slot = extras.tables[&entity];
  if (slot == nullptr) slot = std::make_unique<TableSpec>(BuildTable(entity));
  return *slot;
}

std::vector<const TableSpec*> AllEntityTables() {
  std::vector<const TableSpec*> out;
  for (const EntitySpec* e : AllEntities()) {
    out.push_back(&EntityTable(*e));
    if (e->child != nullptr) out.push_back(&EntityTable(*e->child));
  }
  return out;
}

std::string ListPath(const EntitySpec& entity, const std::string& account_id,
                     const std::string& business_id, const std::string& business_uuid) {
  return FillTemplate(
      entity.path,
      {{"account_id", account_id}, {"business_id", business_id}, {"business_uuid", business_uuid}});
}

std::string ObjectPath(const EntitySpec& entity, const std::string& account_id,
                       const std::string& business_id, const std::string& business_uuid,
                       const std::string& id) {
  if (!entity.single_fetch || entity.object_path.empty()) return "";
  return FillTemplate(entity.object_path, {{"account_id", account_id},
                                           {"business_id", business_id},
                                           {"business_uuid", business_uuid},
                                           {"id", id}});
}

absl::StatusOr<std::optional<std::string>> ConvertValue(const nlohmann::json* value,
                                                        Conversion conversion,
                                                        const ColumnSpec& column) {
  if (value == nullptr || value->is_null()) return OptText();
  const Json& v = *value;
  switch (conversion) {
    case Conversion::kString:
      return Some(StringOf(v));
    case Conversion::kJson:
      return Some(Dump(v));
    case Conversion::kBigint:
      return BigintOf(v);
    case Conversion::kBoolean:
      return BooleanOf(v);
    case Conversion::kDecimal:
      return DecimalOf(v, column);
    case Conversion::kMoneyAmount: {
      if (v.is_object()) {
        const Json* amount = Member(v, "amount");
        if (amount == nullptr || amount->is_null()) return OptText();
        return DecimalOf(*amount, column);
      }
      if (v.is_string() || v.is_number()) return DecimalOf(v, column);
      return NotA(v, "a money object {\"amount\", \"code\"}");
    }
    case Conversion::kMoneyCode: {
      if (v.is_object()) {
        const Json* code = Member(v, "code");
        if (code == nullptr || code->is_null()) return OptText();
        if (!code->is_string()) return NotA(*code, "a currency code");
        const std::string& text = code->get_ref<const std::string&>();
        if (text.empty()) return OptText();
        return Some(text);
      }
      if (v.is_string() || v.is_number()) return OptText();
      return NotA(v, "a money object {\"amount\", \"code\"}");
    }
    case Conversion::kDate:
      return DateOf(v);
    case Conversion::kTimestampEastern:
    case Conversion::kTimestampUtc:
    case Conversion::kTimestampIso:
      return TimestampOf(v, conversion);
  }
  return absl::InternalError("unknown conversion");
}

absl::StatusOr<absl::Time> ParseEasternTimestamp(const std::string& text) {
  absl::StatusOr<std::optional<WallTime>> wall = ParseWallTime(text);
  if (!wall.ok() || !wall->has_value()) {
    return NotA(Json(text), "a timestamp YYYY-MM-DD HH:MM:SS");
  }
  return EasternToUtc(**wall);
}

absl::StatusOr<std::vector<MappedRow>> MapObject(const EntitySpec& entity,
                                                 const nlohmann::json& object,
                                                 const MapContext& ctx) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("FreshBooks ", entity.name, ": ", Shown(object), " is not a JSON object"));
  }
  if (!entity.parent_key_column.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FreshBooks ", entity.name, " rows are mapped with their parent object, not alone"));
  }
  MLC_ASSIGN_OR_RETURN(std::string id, IdOf(entity, object, ""));
  const TableSpec& table = EntityTable(entity);
  Row row;
  row.reserve(table.columns.size());
  row.push_back(ctx.account_id);
  row.push_back(id);
  MLC_RETURN_IF_ERROR(AppendFields(entity, object, id, &row));

  Common common;
  const ColumnSpec vis_column{"vis_state", SqlType::kBigint, 0, 0, ""};
  absl::StatusOr<OptText> vis =
      ConvertValue(JsonAt(object, "vis_state"), Conversion::kBigint, vis_column);
  if (!vis.ok()) return FieldError(entity, id, "vis_state", "vis_state", vis.status());
  common.vis_state = *vis;
  common.is_deleted = common.vis_state.has_value() && *common.vis_state == "1";
  common.updated_at = FormatTimestamp(ctx.synced_at);
  if (!entity.updated_path.empty()) {
    const ColumnSpec updated_column{"updated_at", SqlType::kTimestamp, 0, 0, ""};
    absl::StatusOr<OptText> updated = ConvertValue(JsonAt(object, entity.updated_path),
                                                   entity.updated_conversion, updated_column);
    if (!updated.ok()) {
      return FieldError(entity, id, entity.updated_path, "updated_at", updated.status());
    }
    if (updated->has_value()) common.updated_at = **updated;
  }
  AppendCommon(common, Dump(object), ctx, &row);

  std::vector<MappedRow> out;
  out.push_back(MappedRow{&table, std::move(row)});
  if (entity.child != nullptr && !entity.child_array_path.empty()) {
    MLC_ASSIGN_OR_RETURN(std::vector<MappedRow> children,
                         MapChildren(entity, id, object, common, ctx));
    for (MappedRow& child : children) out.push_back(std::move(child));
  }
  return out;
}

std::vector<MappedRow> TombstoneRow(const EntitySpec& entity, const std::string& id,
                                    const MapContext& ctx) {
  const TableSpec& table = EntityTable(entity);
  std::string key = id;
  if (entity.id_type == SqlType::kBigint) {
    absl::StatusOr<OptText> normalized =
        BigintOf(Json(id));  // "007" -> "7"; anything else is kept as given
    if (normalized.ok() && normalized->has_value()) key = **normalized;
  }
  Row row;
  row.reserve(table.columns.size());
  row.push_back(ctx.account_id);
  if (!entity.parent_key_column.empty()) row.push_back(OptText());
  row.push_back(key);
  for (size_t i = 0; i < entity.fields.size(); ++i) row.push_back(OptText());
  Common common;
  common.vis_state = Some("1");
  common.is_deleted = true;
  common.updated_at = FormatTimestamp(ctx.synced_at);
  AppendCommon(common, OptText(), ctx, &row);
  std::vector<MappedRow> out;
  out.push_back(MappedRow{&table, std::move(row)});
  return out;
}

}  // namespace mlc::writer
