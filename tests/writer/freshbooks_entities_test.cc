// Tests of the FreshBooks entity mappings (DESIGN.md §2, FRESHBOOKS.md §4): every
// entity turns a realistic API object (tests/fakes/freshbooks_samples.h, written
// from the API reference, not from the mapping) into valid typed rows; money,
// dates and the three timestamp flavours convert exactly; deletes and tombstones;
// bad values are rejected with a message naming the entity and field; and every
// entity table can be provisioned and upserted by the SQLite sink and turned into
// Databricks DDL and MERGE statements.
#include "writer/freshbooks_entities.h"

#include <sqlite3.h>

#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/freshbooks_samples.h"
#include "tests/support/test_util.h"
#include "writer/databricks_sql.h"
#include "writer/sqlite_sink.h"
#include "writer/table_spec.h"

namespace mlc::writer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

absl::Time Utc(int y, int mo, int d, int h, int mi, int s) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

// Summer (EDT) and winter (EST) instants, whole seconds.
const absl::Time kSummer = Utc(2026, 7, 1, 16, 0, 0);
const absl::Time kWinter = Utc(2026, 1, 15, 17, 0, 0);

MapContext Ctx(absl::Time synced_at, const std::string& source = "webhook",
               const std::string& delivery = "d-1") {
  return MapContext{"6BApk", source, delivery, synced_at};
}

std::optional<std::string> Cell(const MappedRow& row, const std::string& column) {
  const int i = row.table->ColumnIndex(column);
  EXPECT_GE(i, 0) << row.table->name << " has no column " << column;
  if (i < 0 || static_cast<size_t>(i) >= row.row.size()) return std::nullopt;
  return row.row[static_cast<size_t>(i)];
}

std::optional<std::string> V(const char* s) { return std::string(s); }

const EntitySpec& Entity(const std::string& name) {
  const EntitySpec* e = EntityByName(name);
  EXPECT_NE(e, nullptr) << name;
  static const EntitySpec kEmpty;
  return e == nullptr ? kEmpty : *e;
}

// Entities whose objects carry a last-modified field (so updated_at is that
// field, not the fetch time).
bool HasUpdatedField(const std::string& entity) {
  static const std::set<std::string> kWithout = {"bill_payment", "credit_note",
                                                 "journal_entry_detail", "service", "time_entry"};
  return kWithout.count(entity) == 0;
}

// Business columns a realistic sample may leave NULL.
bool MayBeNull(const std::string& entity, const std::string& column) {
  static const std::set<std::pair<std::string, std::string>> kOptional = {
      {"journal_entry_detail", "debit"},  {"journal_entry_detail", "debit_currency"},
      {"journal_entry_detail", "credit"}, {"journal_entry_detail", "credit_currency"},
      {"project", "fixed_price"},
  };
  return kOptional.count({entity, column}) > 0;
}

absl::StatusOr<std::optional<std::string>> Convert(const Json& v, Conversion c, int precision = 18,
                                                   int scale = 2) {
  const ColumnSpec column{"c",
                          c == Conversion::kDecimal || c == Conversion::kMoneyAmount
                              ? SqlType::kDecimal
                              : SqlType::kString,
                          precision, scale, ""};
  return ConvertValue(&v, c, column);
}

std::optional<std::string> Ok(const Json& v, Conversion c, int precision = 18, int scale = 2) {
  absl::StatusOr<std::optional<std::string>> out = Convert(v, c, precision, scale);
  EXPECT_TRUE(out.ok()) << v.dump() << ": " << out.status();
  return out.ok() ? *out : std::optional<std::string>("<error>");
}

void ExpectInvalid(const Json& v, Conversion c, int precision = 18, int scale = 2) {
  absl::StatusOr<std::optional<std::string>> out = Convert(v, c, precision, scale);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument)
      << v.dump() << " -> " << (out.ok() && out->has_value() ? **out : "NULL");
}

// ---------------------------------------------------------------------------
// Registry

TEST(FreshBooksEntitiesTest, TablesAreExactlyTheNineteenOfTheDesign) {
  std::vector<std::string> names;
  for (const TableSpec* t : AllEntityTables()) names.push_back(t->name);
  EXPECT_EQ(names.size(), 19u);
  EXPECT_EQ(
      std::set<std::string>(names.begin(), names.end()),
      (std::set<std::string>{
          "freshbooks_invoices", "freshbooks_invoice_lines", "freshbooks_payments",
          "freshbooks_bills", "freshbooks_bill_payments", "freshbooks_bill_vendors",
          "freshbooks_expenses", "freshbooks_expense_categories", "freshbooks_clients",
          "freshbooks_items", "freshbooks_taxes", "freshbooks_credit_notes", "freshbooks_estimates",
          "freshbooks_other_income", "freshbooks_accounts", "freshbooks_journal_entry_details",
          "freshbooks_projects", "freshbooks_services", "freshbooks_time_entries"}));
  ASSERT_FALSE(AllEntities().empty());
  EXPECT_EQ(AllEntities().front()->name, "invoice");
  EXPECT_EQ(names[0], "freshbooks_invoices");
  EXPECT_EQ(names[1], "freshbooks_invoice_lines");  // child right after its parent
}

TEST(FreshBooksEntitiesTest, SampleNamesAreTheEntityNames) {
  std::vector<std::string> names;
  for (const EntitySpec* e : AllEntities()) names.push_back(e->name);
  EXPECT_EQ(names, testing::SampleEntityNames());
}

TEST(FreshBooksEntitiesTest, EveryTableIsAValidSpecWithTheCommonColumns) {
  for (const TableSpec* t : AllEntityTables()) {
    SCOPED_TRACE(t->name);
    EXPECT_TRUE(ValidateTableSpec(*t).ok()) << ValidateTableSpec(*t);
    std::set<std::string> seen;
    for (const ColumnSpec& c : t->columns) {
      EXPECT_TRUE(seen.insert(c.name).second) << "duplicate column " << c.name;
      ASSERT_FALSE(c.name.empty());
      EXPECT_TRUE(std::islower(static_cast<unsigned char>(c.name[0])) || c.name[0] == '_')
          << c.name;
      for (const char ch : c.name) {
        EXPECT_TRUE(std::islower(static_cast<unsigned char>(ch)) ||
                    std::isdigit(static_cast<unsigned char>(ch)) || ch == '_')
            << "column " << c.name << " is not lowercase snake_case";
      }
      if (c.type == SqlType::kDecimal) {
        EXPECT_GT(c.precision, 0) << c.name;
        EXPECT_LE(c.scale, c.precision) << c.name;
      }
    }
    ASSERT_GE(t->key.size(), 2u);
    for (const std::string& k : t->key) EXPECT_GE(t->ColumnIndex(k), 0) << k;
    EXPECT_EQ(t->key.front(), "account_id");
    EXPECT_EQ(t->key.back(), "id");
    EXPECT_EQ(t->version_column, "updated_at");
    EXPECT_GE(t->ColumnIndex(t->version_column), 0);
    EXPECT_FALSE(t->insert_only);
    EXPECT_THAT(t->comment, HasSubstr("FreshBooks"));
    EXPECT_THAT(t->comment, HasSubstr("(ml-connector)"));
    ASSERT_GE(t->columns.size(), 10u);
    const size_t n = t->columns.size();
    std::vector<std::string> tail;
    for (size_t i = n - 7; i < n; ++i) tail.push_back(t->columns[i].name);
    EXPECT_THAT(tail, ElementsAre("vis_state", "is_deleted", "updated_at", "raw", "_source",
                                  "_delivery_id", "_synced_at"));
    EXPECT_EQ(t->columns[0].name, "account_id");
  }
  const TableSpec& lines = EntityTable(*Entity("invoice").child);
  EXPECT_THAT(lines.key, ElementsAre("account_id", "invoice_id", "id"));
  EXPECT_EQ(EntityTable(Entity("invoice")).comment, "FreshBooks invoice (ml-connector)");
  EXPECT_EQ(EntityTable(Entity("ledger_account")).columns[1].type, SqlType::kString);
  EXPECT_EQ(EntityTable(Entity("invoice")).columns[1].type, SqlType::kBigint);
}

TEST(FreshBooksEntitiesTest, MoneyColumnsAreDecimalWithACurrencySibling) {
  for (const EntitySpec* e : AllEntities()) {
    std::vector<const EntitySpec*> specs = {e};
    if (e->child != nullptr) specs.push_back(e->child);
    for (const EntitySpec* s : specs) {
      const TableSpec& t = EntityTable(*s);
      for (const FieldMapping& f : s->fields) {
        if (f.conversion != Conversion::kMoneyAmount) continue;
        SCOPED_TRACE(absl::StrCat(s->name, ".", f.column.name));
        EXPECT_EQ(f.column.type, SqlType::kDecimal);
        EXPECT_EQ(f.column.precision, 18);
        EXPECT_EQ(f.column.scale, 2);
        const int sibling = t.ColumnIndex(f.column.name + "_currency");
        ASSERT_GE(sibling, 0);
        EXPECT_EQ(t.columns[static_cast<size_t>(sibling)].type, SqlType::kString);
      }
    }
  }
}

TEST(FreshBooksEntitiesTest, EventObjectsNameTheirEntities) {
  const std::map<std::string, std::string> expected = {
      {"bill", "bill"},       {"bill_vendor", "bill_vendor"}, {"category", "expense_category"},
      {"client", "client"},   {"credit_note", "credit_note"}, {"estimate", "estimate"},
      {"expense", "expense"}, {"invoice", "invoice"},         {"item", "item"},
      {"payment", "payment"}, {"project", "project"},         {"service", "service"},
      {"tax", "tax"},         {"time_entry", "time_entry"}};
  for (const auto& [object, entity] : expected) {
    const EntitySpec* e = EntityForEventObject(object);
    ASSERT_NE(e, nullptr) << object;
    EXPECT_EQ(e->name, entity);
  }
  EXPECT_EQ(EntityForEventObject("recurring"), nullptr);
  EXPECT_EQ(EntityForEventObject(""), nullptr);
  EXPECT_EQ(EntityForEventObject("invoice_line"), nullptr);
  for (const char* polled :
       {"bill_payment", "journal_entry_detail", "ledger_account", "other_income"}) {
    EXPECT_EQ(Entity(polled).event_object, "") << polled;
  }
  EXPECT_EQ(EntityByName("nope"), nullptr);
}

TEST(FreshBooksEntitiesTest, PathsFillTheirTemplates) {
  EXPECT_EQ(ListPath(Entity("invoice"), "6BApk", "6543", "u-1"),
            "/accounting/account/6BApk/invoices/invoices");
  EXPECT_EQ(ObjectPath(Entity("invoice"), "6BApk", "6543", "u-1", "42"),
            "/accounting/account/6BApk/invoices/invoices/42");
  EXPECT_EQ(Entity("invoice").includes, std::vector<std::string>{"lines"});
  EXPECT_EQ(ListPath(Entity("expense_category"), "6BApk", "", ""),
            "/accounting/account/6BApk/expenses/categories");
  EXPECT_EQ(ListPath(Entity("client"), "6BApk", "", ""), "/accounting/account/6BApk/users/clients");
  EXPECT_EQ(ListPath(Entity("other_income"), "6BApk", "", ""),
            "/accounting/account/6BApk/other_incomes/other_incomes");
  EXPECT_EQ(Entity("other_income").list_key, "other_income");
  EXPECT_EQ(ListPath(Entity("journal_entry_detail"), "6BApk", "", ""),
            "/accounting/account/6BApk/journal_entries/journal_entry_details");
  EXPECT_EQ(ObjectPath(Entity("journal_entry_detail"), "6BApk", "", "", "1"), "");
  EXPECT_FALSE(Entity("journal_entry_detail").single_fetch);

  const EntitySpec& ledger = Entity("ledger_account");
  EXPECT_EQ(ledger.scope, EntityScope::kBusinessUuid);
  EXPECT_EQ(ListPath(ledger, "6BApk", "6543", "e17f9556-c99f"),
            "/accounting/businesses/e17f9556-c99f/ledger_accounts/accounts");
  EXPECT_EQ(ledger.list_key, "data");
  EXPECT_FALSE(ledger.result_envelope);
  EXPECT_FALSE(ledger.supports_updated_min);
  EXPECT_FALSE(ledger.supports_vis_state);

  const EntitySpec& project = Entity("project");
  EXPECT_EQ(project.scope, EntityScope::kBusinessId);
  EXPECT_EQ(ListPath(project, "6BApk", "6543", ""), "/projects/business/6543/projects");
  EXPECT_EQ(ObjectPath(project, "6BApk", "6543", "", "17"), "/projects/business/6543/project/17");
  EXPECT_EQ(project.list_key, "projects");
  EXPECT_EQ(project.single_key, "project");
  EXPECT_EQ(ListPath(Entity("service"), "", "6543", ""), "/comments/business/6543/services");
  EXPECT_EQ(ObjectPath(Entity("service"), "", "6543", "", "3"),
            "/comments/business/6543/service/3");
  EXPECT_EQ(ListPath(Entity("time_entry"), "", "6543", ""),
            "/timetracking/business/6543/time_entries");
  EXPECT_EQ(ObjectPath(Entity("time_entry"), "", "6543", "", "9"),
            "/timetracking/business/6543/time_entries/9");
  // Identifiers are percent-encoded.
  EXPECT_EQ(ObjectPath(Entity("invoice"), "a/b c", "", "", "1?x"),
            "/accounting/account/a%2Fb%20c/invoices/invoices/1%3Fx");
}

// ---------------------------------------------------------------------------
// Every entity maps its sample

class SampleMappingTest : public ::testing::TestWithParam<std::string> {};

TEST_P(SampleMappingTest, SampleMapsToValidRowsWithEveryBusinessColumnSet) {
  const std::string name = GetParam();
  const EntitySpec& entity = Entity(name);
  for (const absl::Time now : {kSummer, kWinter}) {
    SCOPED_TRACE(absl::StrCat(name, " at ", FormatTimestamp(now)));
    std::mt19937_64 rng(7);
    const Json object = testing::SampleObject(name, 1234, now, rng, "CAD");
    const absl::Time synced = now + absl::Minutes(5);
    absl::StatusOr<std::vector<MappedRow>> rows = MapObject(entity, object, Ctx(synced));
    ASSERT_TRUE(rows.ok()) << rows.status();
    ASSERT_FALSE(rows->empty());
    const MappedRow& row = rows->front();
    EXPECT_EQ(row.table, &EntityTable(entity));
    ASSERT_EQ(row.row.size(), row.table->columns.size());
    EXPECT_TRUE(ValidateRow(*row.table, row.row).ok()) << ValidateRow(*row.table, row.row);

    EXPECT_EQ(Cell(row, "account_id"), V("6BApk"));
    const std::string id_field = testing::SampleIdField(name);
    const std::string expected_id =
        name == "ledger_account" ? object.at(id_field).get<std::string>() : std::string("1234");
    EXPECT_EQ(Cell(row, "id"), expected_id);
    for (const FieldMapping& f : entity.fields) {
      if (MayBeNull(name, f.column.name)) continue;
      EXPECT_TRUE(Cell(row, f.column.name).has_value())
          << "column " << f.column.name << " (from " << f.json_path << ") is NULL";
    }
    if (name == "journal_entry_detail") {
      EXPECT_NE(Cell(row, "debit").has_value(), Cell(row, "credit").has_value());
    }
    EXPECT_EQ(Cell(row, "is_deleted"), V("false"));
    if (object.contains("vis_state")) {
      EXPECT_EQ(Cell(row, "vis_state"), V("0"));
    }
    // The sample is created and last modified at `now`, written in the entity's own
    // format (Eastern, UTC or ISO): a mapping reading the wrong field or zone fails.
    EXPECT_EQ(Cell(row, "updated_at"), FormatTimestamp(HasUpdatedField(name) ? now : synced));
    ASSERT_TRUE(Cell(row, "raw").has_value());
    EXPECT_EQ(Json::parse(*Cell(row, "raw")), object);
    EXPECT_EQ(Cell(row, "_source"), V("webhook"));
    EXPECT_EQ(Cell(row, "_delivery_id"), V("d-1"));
    EXPECT_EQ(Cell(row, "_synced_at"), FormatTimestamp(synced));
    for (const FieldMapping& f : entity.fields) {
      if (f.conversion == Conversion::kMoneyCode && Cell(row, f.column.name).has_value()) {
        EXPECT_EQ(Cell(row, f.column.name), V("CAD")) << f.column.name;
      }
    }
    if (entity.child == nullptr) {
      EXPECT_EQ(rows->size(), 1u);
    }
    for (const MappedRow& r : *rows) {
      EXPECT_TRUE(ValidateRow(*r.table, r.row).ok()) << ValidateRow(*r.table, r.row);
    }

    // Deterministic per seed.
    std::mt19937_64 again(7);
    EXPECT_EQ(testing::SampleObject(name, 1234, now, again, "CAD"), object);

    // An edit moves updated_at forward where the object has a last-modified field.
    Json edited = object;
    std::mt19937_64 edit_rng(3);
    const absl::Time later = now + absl::Hours(3);
    testing::MutateSample(name, edited, later, edit_rng);
    EXPECT_NE(edited, object);
    absl::StatusOr<std::vector<MappedRow>> edited_rows =
        MapObject(entity, edited, Ctx(later + absl::Minutes(1)));
    ASSERT_TRUE(edited_rows.ok()) << edited_rows.status();
    EXPECT_EQ(Cell(edited_rows->front(), "updated_at"),
              FormatTimestamp(HasUpdatedField(name) ? later : later + absl::Minutes(1)));
  }
}

INSTANTIATE_TEST_SUITE_P(AllEntities, SampleMappingTest,
                         ::testing::ValuesIn(testing::SampleEntityNames()),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           return param_info.param;
                         });

TEST(FreshBooksEntitiesTest, InvoiceMapsItsLinesAndMoney) {
  std::mt19937_64 rng(11);
  Json invoice = testing::SampleObject("invoice", 501, kSummer, rng, "USD");
  invoice["amount"] = Json{{"amount", "1222.00"}, {"code", "USD"}};
  invoice["outstanding"] = Json{{"amount", "0.0"}, {"code", "USD"}};
  invoice["due_date"] = "2026-06-30";
  invoice["updated"] = "2026-07-01 12:00:00";
  const Json& lines = invoice.at("lines");
  ASSERT_GE(lines.size(), 2u);
  ASSERT_LE(lines.size(), 4u);

  absl::StatusOr<std::vector<MappedRow>> rows = MapObject(Entity("invoice"), invoice, Ctx(kWinter));
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1 + lines.size());
  const MappedRow& inv = (*rows)[0];
  EXPECT_EQ(Cell(inv, "amount"), V("1222.00"));
  EXPECT_EQ(Cell(inv, "amount_currency"), V("USD"));
  EXPECT_EQ(Cell(inv, "outstanding"), V("0.00"));
  EXPECT_EQ(Cell(inv, "due_date"), V("2026-06-30"));
  EXPECT_EQ(Cell(inv, "updated_at"), V("2026-07-01T16:00:00.000000Z"));
  EXPECT_EQ(Cell(inv, "customerid"), invoice.at("customerid").dump());

  const TableSpec& line_table = EntityTable(*Entity("invoice").child);
  for (size_t i = 0; i < lines.size(); ++i) {
    const MappedRow& line = (*rows)[1 + i];
    SCOPED_TRACE(i);
    EXPECT_EQ(line.table, &line_table);
    EXPECT_EQ(line.table->name, "freshbooks_invoice_lines");
    EXPECT_EQ(Cell(line, "account_id"), V("6BApk"));
    EXPECT_EQ(Cell(line, "invoice_id"), V("501"));
    EXPECT_EQ(Cell(line, "id"), lines[i].at("lineid").dump());
    EXPECT_EQ(Cell(line, "name"), lines[i].at("name").get<std::string>());
    EXPECT_EQ(Cell(line, "amount"), lines[i].at("amount").at("amount").get<std::string>());
    EXPECT_EQ(Cell(line, "unit_cost_currency"), V("USD"));
    EXPECT_EQ(Cell(line, "qty"), lines[i].at("qty").get<std::string>() + ".0000");
    EXPECT_EQ(Cell(line, "updated_at"), V("2026-07-01T16:00:00.000000Z"));  // the parent's
    EXPECT_EQ(Cell(line, "is_deleted"), V("false"));
    EXPECT_EQ(Json::parse(*Cell(line, "raw")), lines[i]);
  }
}

TEST(FreshBooksEntitiesTest, SampleInvoiceAmountsAddUp) {
  std::mt19937_64 rng(5);
  int overdue = 0;
  for (int64_t id = 1; id <= 60; ++id) {
    const Json invoice = testing::SampleObject("invoice", id, kSummer, rng, "USD");
    absl::StatusOr<std::vector<MappedRow>> rows =
        MapObject(Entity("invoice"), invoice, Ctx(kSummer));
    ASSERT_TRUE(rows.ok()) << rows.status();
    // Sum of line amounts (DECIMAL text, cents) equals the invoice amount.
    auto cents = [](const std::optional<std::string>& text) {
      const std::string& s = text.value_or("0.00");
      return std::stoll(s.substr(0, s.size() - 3)) * 100 + std::stoll(s.substr(s.size() - 2));
    };
    int64_t sum = 0;
    for (size_t i = 1; i < rows->size(); ++i) sum += cents(Cell((*rows)[i], "amount"));
    const MappedRow& inv = rows->front();
    EXPECT_EQ(sum, cents(Cell(inv, "amount"))) << invoice.dump();
    EXPECT_EQ(cents(Cell(inv, "paid")) + cents(Cell(inv, "outstanding")),
              cents(Cell(inv, "amount")));
    EXPECT_EQ(invoice.at("id"), invoice.at("invoiceid"));
    if (*Cell(inv, "due_date") < "2026-07-01" && cents(Cell(inv, "outstanding")) > 0) ++overdue;
  }
  EXPECT_GT(overdue, 0) << "some sample invoices should be overdue";
}

// ---------------------------------------------------------------------------
// Conversions

TEST(FreshBooksConversionTest, Money) {
  const Json money = {{"amount", "1222.00"}, {"code", "USD"}};
  EXPECT_EQ(Ok(money, Conversion::kMoneyAmount), V("1222.00"));
  EXPECT_EQ(Ok(money, Conversion::kMoneyCode), V("USD"));
  EXPECT_EQ(Ok(Json{{"amount", "0.0"}, {"code", "EUR"}}, Conversion::kMoneyAmount), V("0.00"));
  EXPECT_EQ(Ok(Json{{"amount", nullptr}, {"code", "EUR"}}, Conversion::kMoneyAmount), std::nullopt);
  EXPECT_EQ(Ok(Json{{"amount", "5"}}, Conversion::kMoneyCode), std::nullopt);
  EXPECT_EQ(Ok(Json("12.5"), Conversion::kMoneyAmount), V("12.50"));  // a bare amount
  EXPECT_EQ(Ok(Json("12.5"), Conversion::kMoneyCode), std::nullopt);
  EXPECT_EQ(Ok(Json{{"amount", 4000}, {"code", "USD"}}, Conversion::kMoneyAmount), V("4000.00"));
  ExpectInvalid(Json::array({1}), Conversion::kMoneyAmount);
  ExpectInvalid(Json{{"amount", "12,50"}, {"code", "USD"}}, Conversion::kMoneyAmount);
  ExpectInvalid(Json{{"amount", "1"}, {"code", 5}}, Conversion::kMoneyCode);
}

TEST(FreshBooksConversionTest, DecimalsAreExactAndRoundHalfUp) {
  const Conversion d = Conversion::kDecimal;
  EXPECT_EQ(Ok(Json("1222.00"), d), V("1222.00"));
  EXPECT_EQ(Ok(Json("0.0"), d), V("0.00"));
  EXPECT_EQ(Ok(Json("12.5"), d), V("12.50"));
  EXPECT_EQ(Ok(Json("007.10"), d), V("7.10"));
  EXPECT_EQ(Ok(Json(".5"), d), V("0.50"));
  EXPECT_EQ(Ok(Json("5."), d), V("5.00"));
  EXPECT_EQ(Ok(Json("-3.25"), d), V("-3.25"));
  EXPECT_EQ(Ok(Json("1.005"), d), V("1.01"));
  EXPECT_EQ(Ok(Json("1.00499"), d), V("1.00"));
  EXPECT_EQ(Ok(Json("-1.005"), d), V("-1.01"));
  EXPECT_EQ(Ok(Json("999.995"), d), V("1000.00"));
  EXPECT_EQ(Ok(Json("-0.004"), d), V("0.00"));  // no negative zero
  EXPECT_EQ(Ok(Json("0.1"), d), V("0.10"));
  EXPECT_EQ(Ok(Json(1222), d), V("1222.00"));
  EXPECT_EQ(Ok(Json(-7), d), V("-7.00"));
  EXPECT_EQ(Ok(Json(12.5), d), V("12.50"));
  EXPECT_EQ(Ok(Json(0.1), d), V("0.10"));
  EXPECT_EQ(Ok(Json(""), d), std::nullopt);
  EXPECT_EQ(Ok(Json(nullptr), d), std::nullopt);
  EXPECT_EQ(Ok(Json("13.175"), d, 18, 4), V("13.1750"));
  EXPECT_EQ(Ok(Json("9.99999"), d, 18, 4), V("10.0000"));
  EXPECT_EQ(Ok(Json("2.5"), d, 10, 0), V("3"));
  EXPECT_EQ(Ok(Json("9999999999999999.99"), d), V("9999999999999999.99"));
  ExpectInvalid(Json("99999999999999999.00"), d);  // 17 integer digits > 16
  ExpectInvalid(Json("9999999999999999.995"), d);  // rounds past the precision
  for (const char* bad : {"1e5", "12,50", "NaN", "nan", "Infinity", "+1", " 1", "1 ", "1.2.3",
                          "abc", "-", ".", "0x10", "1_000", "١٢"}) {
    ExpectInvalid(Json(bad), d);
  }
  ExpectInvalid(Json(1e300), d);
  ExpectInvalid(Json(true), d);
  ExpectInvalid(Json::object(), d);
}

TEST(FreshBooksConversionTest, BigintsAndBooleans) {
  const Conversion b = Conversion::kBigint;
  EXPECT_EQ(Ok(Json(123), b), V("123"));
  EXPECT_EQ(Ok(Json(-5), b), V("-5"));
  EXPECT_EQ(Ok(Json("123"), b), V("123"));
  EXPECT_EQ(Ok(Json("007"), b), V("7"));
  EXPECT_EQ(Ok(Json("-42"), b), V("-42"));
  EXPECT_EQ(Ok(Json(12.0), b), V("12"));
  EXPECT_EQ(Ok(Json(""), b), std::nullopt);
  EXPECT_EQ(Ok(Json(9223372036854775807LL), b), V("9223372036854775807"));
  for (const Json& bad :
       {Json("12.5"), Json(12.5), Json("abc"), Json("1e3"), Json(" 1"),
        Json("99999999999999999999"), Json(18446744073709551615ULL), Json(true), Json::array()}) {
    ExpectInvalid(bad, b);
  }
  const Conversion t = Conversion::kBoolean;
  EXPECT_EQ(Ok(Json(true), t), V("true"));
  EXPECT_EQ(Ok(Json(false), t), V("false"));
  EXPECT_EQ(Ok(Json(1), t), V("true"));
  EXPECT_EQ(Ok(Json(0), t), V("false"));
  EXPECT_EQ(Ok(Json("1"), t), V("true"));
  EXPECT_EQ(Ok(Json("false"), t), V("false"));
  EXPECT_EQ(Ok(Json(""), t), std::nullopt);
  for (const Json& bad : {Json(2), Json(-1), Json("yes"), Json("TRUE"), Json(0.5)}) {
    ExpectInvalid(bad, t);
  }
}

TEST(FreshBooksConversionTest, StringsAndJson) {
  EXPECT_EQ(Ok(Json("Acme & Co."), Conversion::kString), V("Acme & Co."));
  EXPECT_EQ(Ok(Json(""), Conversion::kString), V(""));
  EXPECT_EQ(Ok(Json(2), Conversion::kString), V("2"));
  EXPECT_EQ(Ok(Json(true), Conversion::kString), V("true"));
  EXPECT_EQ(Ok(Json(nullptr), Conversion::kString), std::nullopt);
  EXPECT_EQ(Ok(Json::array({Json{{"name", "HST"}, {"amount", "13"}}}), Conversion::kJson),
            V(R"([{"amount":"13","name":"HST"}])"));
  EXPECT_EQ(ConvertValue(nullptr, Conversion::kString, ColumnSpec{"c", SqlType::kString, 0, 0, ""})
                ->has_value(),
            false);
}

TEST(FreshBooksConversionTest, Dates) {
  EXPECT_EQ(Ok(Json("2026-11-26"), Conversion::kDate), V("2026-11-26"));
  EXPECT_EQ(Ok(Json("2024-02-29"), Conversion::kDate), V("2024-02-29"));
  EXPECT_EQ(Ok(Json("0000-00-00"), Conversion::kDate), std::nullopt);
  EXPECT_EQ(Ok(Json(""), Conversion::kDate), std::nullopt);
  for (const Json& bad :
       {Json("2026-02-30"), Json("2025-02-29"), Json("2026-13-01"), Json("2026-1-5"),
        Json("26-01-05"), Json("2026-01-05 10:00:00"), Json("0000-01-01"), Json(20260105)}) {
    ExpectInvalid(bad, Conversion::kDate);
  }
}

TEST(FreshBooksConversionTest, EasternTimestampsFollowDaylightSaving) {
  auto utc = [](const std::string& eastern) {
    absl::StatusOr<absl::Time> t = ParseEasternTimestamp(eastern);
    EXPECT_TRUE(t.ok()) << eastern << ": " << t.status();
    return t.ok() ? FormatTimestamp(*t) : std::string("<error>");
  };
  EXPECT_EQ(utc("2026-07-01 12:00:00"), "2026-07-01T16:00:00.000000Z");  // EDT, -4
  EXPECT_EQ(utc("2026-01-15 12:00:00"), "2026-01-15T17:00:00.000000Z");  // EST, -5
  EXPECT_EQ(utc("2019-11-25 15:43:26"), "2019-11-25T20:43:26.000000Z");
  // Fall back, 2026-11-01: 01:00-01:59 happens twice; the earlier (EDT) instant wins.
  EXPECT_EQ(utc("2026-11-01 00:59:59"), "2026-11-01T04:59:59.000000Z");
  EXPECT_EQ(utc("2026-11-01 01:30:00"), "2026-11-01T05:30:00.000000Z");
  EXPECT_EQ(utc("2026-11-01 02:00:00"), "2026-11-01T07:00:00.000000Z");
  // Spring forward, 2026-03-08: 02:00-02:59 does not exist; read with EST (-5).
  EXPECT_EQ(utc("2026-03-08 01:59:59"), "2026-03-08T06:59:59.000000Z");
  EXPECT_EQ(utc("2026-03-08 02:30:00"), "2026-03-08T07:30:00.000000Z");
  EXPECT_EQ(utc("2026-03-08 03:00:00"), "2026-03-08T07:00:00.000000Z");
  // A fraction is kept; an explicit zone is honoured.
  EXPECT_EQ(utc("2026-07-01 12:00:00.25"), "2026-07-01T16:00:00.250000Z");
  EXPECT_EQ(utc("2026-07-01T12:00:00Z"), "2026-07-01T12:00:00.000000Z");

  EXPECT_EQ(Ok(Json("2026-07-01 12:00:00"), Conversion::kTimestampEastern),
            V("2026-07-01T16:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("0000-00-00 00:00:00"), Conversion::kTimestampEastern), std::nullopt);
  for (const char* bad : {"2026-07-01", "2026-07-01 24:00:00", "2026-07-01 12:60:00",
                          "2026-02-30 12:00:00", "2026/07/01 12:00:00", "yesterday",
                          "2026-07-01 12:00:00 EST", "2026-07-01 12:00:00.", ""}) {
    EXPECT_EQ(ParseEasternTimestamp(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
  ExpectInvalid(Json(1751385600), Conversion::kTimestampEastern);
}

TEST(FreshBooksConversionTest, UtcTimestampsAreUnchanged) {
  EXPECT_EQ(Ok(Json("2026-07-01 12:00:00"), Conversion::kTimestampUtc),
            V("2026-07-01T12:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-01-15 12:00:00"), Conversion::kTimestampUtc),
            V("2026-01-15T12:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2021-06-17 12:08:25"), Conversion::kTimestampUtc),
            V("2021-06-17T12:08:25.000000Z"));
  ExpectInvalid(Json("2021-06-17"), Conversion::kTimestampUtc);
}

TEST(FreshBooksConversionTest, IsoTimestampsAreNormalisedToUtc) {
  const Conversion iso = Conversion::kTimestampIso;
  EXPECT_EQ(Ok(Json("2020-10-17T01:09:41Z"), iso), V("2020-10-17T01:09:41.000000Z"));
  EXPECT_EQ(Ok(Json("2022-09-22T08:47:04.668685Z"), iso), V("2022-09-22T08:47:04.668685Z"));
  EXPECT_EQ(Ok(Json("2020-01-21T10:00:00.000Z"), iso), V("2020-01-21T10:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-07-01T08:00:00-04:00"), iso), V("2026-07-01T12:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-07-01T17:30:00+05:30"), iso), V("2026-07-01T12:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-07-01T12:00:00+0000"), iso), V("2026-07-01T12:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-07-01T12:00:00+00"), iso), V("2026-07-01T12:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-01-01T01:00:00+02:00"), iso), V("2025-12-31T23:00:00.000000Z"));
  EXPECT_EQ(Ok(Json("2026-07-01T12:00:00.123456789Z"), iso), V("2026-07-01T12:00:00.123456Z"));
  EXPECT_EQ(Ok(Json("2026-07-01T12:00:00"), iso), V("2026-07-01T12:00:00.000000Z"));  // UTC
  EXPECT_EQ(Ok(Json("2026-07-01 12:00:00Z"), iso), V("2026-07-01T12:00:00.000000Z"));
  for (const char* bad :
       {"2026-07-01", "2026-07-01T25:00:00Z", "2026-07-01T12:00:00+25:00", "2026-07-01T12:00Z",
        "2026-07-01T12:00:00ZZ", "2026-07-01T12:00:00+1", "20260701T120000Z"}) {
    ExpectInvalid(Json(bad), iso);
  }
}

// ---------------------------------------------------------------------------
// Deletes, tombstones, ids, bad input

TEST(FreshBooksEntitiesTest, VisStateOneMeansDeleted) {
  std::mt19937_64 rng(1);
  Json invoice = testing::SampleObject("invoice", 9, kSummer, rng);
  invoice["vis_state"] = 1;
  absl::StatusOr<std::vector<MappedRow>> rows = MapObject(Entity("invoice"), invoice, Ctx(kSummer));
  ASSERT_TRUE(rows.ok()) << rows.status();
  for (const MappedRow& r : *rows) {
    EXPECT_EQ(Cell(r, "is_deleted"), V("true")) << r.table->name;
    EXPECT_EQ(Cell(r, "vis_state"), V("1")) << r.table->name;
  }
  Json archived = testing::SampleObject("client", 9, kSummer, rng);
  archived["vis_state"] = 2;
  rows = MapObject(Entity("client"), archived, Ctx(kSummer));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(Cell(rows->front(), "is_deleted"), V("false"));
  EXPECT_EQ(Cell(rows->front(), "vis_state"), V("2"));
  Json as_text = testing::SampleObject("payment", 9, kSummer, rng);
  as_text["vis_state"] = "1";
  rows = MapObject(Entity("payment"), as_text, Ctx(kSummer));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(Cell(rows->front(), "is_deleted"), V("true"));
}

TEST(FreshBooksEntitiesTest, TombstoneMarksAHardDeletedObject) {
  const absl::Time synced = Utc(2026, 8, 1, 9, 30, 0);
  const std::vector<MappedRow> rows =
      TombstoneRow(Entity("invoice"), "0042", Ctx(synced, "sync", ""));
  ASSERT_EQ(rows.size(), 1u);
  const MappedRow& t = rows[0];
  EXPECT_EQ(t.table, &EntityTable(Entity("invoice")));
  ASSERT_EQ(t.row.size(), t.table->columns.size());
  EXPECT_TRUE(ValidateRow(*t.table, t.row).ok()) << ValidateRow(*t.table, t.row);
  EXPECT_EQ(Cell(t, "account_id"), V("6BApk"));
  EXPECT_EQ(Cell(t, "id"), V("42"));
  EXPECT_EQ(Cell(t, "is_deleted"), V("true"));
  EXPECT_EQ(Cell(t, "vis_state"), V("1"));
  EXPECT_EQ(Cell(t, "updated_at"), FormatTimestamp(synced));
  EXPECT_EQ(Cell(t, "raw"), std::nullopt);
  EXPECT_EQ(Cell(t, "amount"), std::nullopt);
  EXPECT_EQ(Cell(t, "_source"), V("sync"));
  EXPECT_EQ(Cell(t, "_delivery_id"), std::nullopt);
  EXPECT_EQ(Cell(t, "_synced_at"), FormatTimestamp(synced));

  const std::vector<MappedRow> ledger =
      TombstoneRow(Entity("ledger_account"), "e17f9556-c99f", Ctx(synced));
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(Cell(ledger[0], "id"), V("e17f9556-c99f"));
}

TEST(FreshBooksEntitiesTest, IdsMayBeNumericStrings) {
  Json payment = {{"id", "77"},
                  {"invoiceid", "12"},
                  {"clientid", 3},
                  {"amount", {{"amount", "10.00"}, {"code", "USD"}}},
                  {"updated", "2026-01-15 12:00:00"},
                  {"vis_state", 0}};
  absl::StatusOr<std::vector<MappedRow>> rows = MapObject(Entity("payment"), payment, Ctx(kSummer));
  ASSERT_TRUE(rows.ok()) << rows.status();
  const MappedRow& r = rows->front();
  EXPECT_EQ(Cell(r, "id"), V("77"));
  EXPECT_EQ(Cell(r, "invoiceid"), V("12"));
  EXPECT_EQ(Cell(r, "clientid"), V("3"));
  EXPECT_EQ(Cell(r, "updated_at"), V("2026-01-15T17:00:00.000000Z"));
  // Missing optional fields are NULL, not errors.
  EXPECT_EQ(Cell(r, "date"), std::nullopt);
  EXPECT_EQ(Cell(r, "note"), std::nullopt);
  EXPECT_TRUE(ValidateRow(*r.table, r.row).ok());
}

TEST(FreshBooksEntitiesTest, ObjectsWithoutTheirOwnTimestampUseTheFetchTime) {
  const Json bill_payment = {{"id", 5}, {"billid", 2}, {"vis_state", 0}};
  absl::StatusOr<std::vector<MappedRow>> rows =
      MapObject(Entity("bill_payment"), bill_payment, Ctx(kWinter));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(Cell(rows->front(), "updated_at"), FormatTimestamp(kWinter));
  // An entity with an updated field that the object lacks falls back the same way.
  rows = MapObject(Entity("invoice"), Json{{"id", 5}}, Ctx(kWinter));
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(Cell(rows->front(), "updated_at"), FormatTimestamp(kWinter));
  EXPECT_EQ(Cell(rows->front(), "vis_state"), std::nullopt);
  EXPECT_EQ(Cell(rows->front(), "is_deleted"), V("false"));
}

TEST(FreshBooksEntitiesTest, BadValuesAreRejectedNamingEntityAndField) {
  std::mt19937_64 rng(2);
  struct Case {
    const char* entity;
    const char* field;
    Json value;
  };
  const std::vector<Case> cases = {
      {"invoice", "due_date", "2026-13-01"},  {"invoice", "amount", {{"amount", "12,50"}}},
      {"invoice", "updated", "last tuesday"}, {"bill", "updated_at", "2026-07-01"},
      {"payment", "invoiceid", "INV-1"},      {"expense", "amount", {{"amount", "1e5"}}},
      {"project", "updated_at", "soon"},      {"bill_vendor", "is_1099", "maybe"},
      {"invoice", "vis_state", "deleted"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrCat(c.entity, ".", c.field));
    Json object = testing::SampleObject(c.entity, 31, kSummer, rng);
    object[c.field] = c.value;
    absl::StatusOr<std::vector<MappedRow>> rows = MapObject(Entity(c.entity), object, Ctx(kSummer));
    ASSERT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(rows.status().message(), HasSubstr(absl::StrCat("FreshBooks ", c.entity)));
    EXPECT_THAT(rows.status().message(), HasSubstr(c.field));
    EXPECT_THAT(rows.status().message(), HasSubstr("31"));
  }
  const absl::Status no_id =
      MapObject(Entity("client"), Json{{"fname", "A"}}, Ctx(kSummer)).status();
  EXPECT_EQ(no_id.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(no_id.message(), HasSubstr("client"));
  EXPECT_THAT(no_id.message(), HasSubstr("no id"));
  const absl::Status vendor_id =
      MapObject(Entity("bill_vendor"), Json{{"id", 4}}, Ctx(kSummer)).status();
  EXPECT_THAT(vendor_id.message(), HasSubstr("vendorid"));
  EXPECT_EQ(MapObject(Entity("invoice"), Json::array(), Ctx(kSummer)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MapObject(*Entity("invoice").child, Json{{"lineid", 1}}, Ctx(kSummer)).status().code(),
            absl::StatusCode::kInvalidArgument);

  Json bad_line = testing::SampleObject("invoice", 32, kSummer, rng);
  bad_line["lines"][0].erase("lineid");
  absl::Status line_status = MapObject(Entity("invoice"), bad_line, Ctx(kSummer)).status();
  EXPECT_EQ(line_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(line_status.message(), HasSubstr("lines[0]"));
  EXPECT_THAT(line_status.message(), HasSubstr("lineid"));
  bad_line = testing::SampleObject("invoice", 33, kSummer, rng);
  bad_line["lines"][1]["qty"] = "two";
  line_status = MapObject(Entity("invoice"), bad_line, Ctx(kSummer)).status();
  EXPECT_EQ(line_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(line_status.message(), HasSubstr("invoice_line"));
  EXPECT_THAT(line_status.message(), HasSubstr("qty"));
  bad_line["lines"] = "none";
  EXPECT_EQ(MapObject(Entity("invoice"), bad_line, Ctx(kSummer)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// Sinks accept every table

// Rows of `count` samples of every entity, by table.
std::map<const TableSpec*, std::vector<Row>> SampleRows(int count, absl::Time now) {
  std::map<const TableSpec*, std::vector<Row>> by_table;
  std::mt19937_64 rng(99);
  for (const EntitySpec* e : AllEntities()) {
    for (int64_t id = 1; id <= count; ++id) {
      const Json object = testing::SampleObject(e->name, id, now, rng, "USD");
      absl::StatusOr<std::vector<MappedRow>> rows = MapObject(*e, object, Ctx(now));
      EXPECT_TRUE(rows.ok()) << e->name << ": " << rows.status();
      if (!rows.ok()) continue;
      for (MappedRow& r : *rows) by_table[r.table].push_back(std::move(r.row));
    }
  }
  return by_table;
}

TEST(FreshBooksEntitiesTest, SqliteSinkCreatesAndUpsertsEveryEntityTable) {
  testing::TempDir dir;
  const std::string path = dir.File("lakehouse.db");
  SqliteSink sink(path);
  ASSERT_TRUE(sink.Start().ok());
  for (const TableSpec* t : AllEntityTables()) {
    const absl::Status s = sink.EnsureTable(*t);
    ASSERT_TRUE(s.ok()) << t->name << ": " << s;
  }
  const auto by_table = SampleRows(5, kSummer);
  EXPECT_EQ(by_table.size(), 19u);
  for (int round = 0; round < 2; ++round) {  // the second round must change nothing
    for (const auto& [table, rows] : by_table) {
      const absl::Status s = sink.Upsert(*table, rows);
      ASSERT_TRUE(s.ok()) << table->name << ": " << s;
    }
  }
  for (const auto& [table, rows] : by_table) {
    const auto count =
        testing::QueryRows(path, absl::StrCat("SELECT COUNT(*) FROM \"", table->name, "\""));
    ASSERT_EQ(count.size(), 1u);
    EXPECT_EQ(count[0][0], absl::StrCat(rows.size())) << table->name;
  }
  // A tombstone replaces the live row (it is newer) and reads back as deleted.
  const absl::Time later = kSummer + absl::Hours(1);
  const std::vector<MappedRow> tomb = TombstoneRow(Entity("invoice"), "3", Ctx(later, "sync", ""));
  ASSERT_TRUE(sink.Upsert(*tomb[0].table, {tomb[0].row}).ok());
  EXPECT_THAT(
      testing::QueryRows(path,
                         "SELECT is_deleted, raw IS NULL, updated_at FROM freshbooks_invoices "
                         "WHERE account_id = '6BApk' AND id = 3"),
      ElementsAre(ElementsAre("1", "1", FormatTimestamp(later))));
  // Overdue invoices can be queried straight from the typed columns.
  const auto overdue =
      testing::QueryRows(path,
                         "SELECT COUNT(*) FROM freshbooks_invoices WHERE due_date < "
                         "'2026-07-01' AND CAST(outstanding AS REAL) > 0");
  ASSERT_EQ(overdue.size(), 1u);
}

TEST(FreshBooksEntitiesTest, DatabricksDdlAndMergeAcceptEveryEntityTable) {
  const auto by_table = SampleRows(3, kWinter);
  for (const TableSpec* t : AllEntityTables()) {
    SCOPED_TRACE(t->name);
    absl::StatusOr<std::string> ddl = CreateTableSql("finance", "freshbooks", *t);
    ASSERT_TRUE(ddl.ok()) << ddl.status();
    EXPECT_THAT(*ddl, HasSubstr(absl::StrCat("`", t->name, "`")));
    EXPECT_THAT(*ddl, HasSubstr("CLUSTER BY"));
    const auto it = by_table.find(t);
    ASSERT_NE(it, by_table.end());
    for (const Row& row : it->second) {
      const absl::Status valid = ValidateRow(*t, row);
      EXPECT_TRUE(valid.ok()) << valid;
    }
    absl::StatusOr<SqlStatement> merge = MergeStatement("finance", "freshbooks", *t, it->second);
    ASSERT_TRUE(merge.ok()) << merge.status();
    EXPECT_EQ(merge->row_count, it->second.size());
  }
}

}  // namespace
}  // namespace mlc::writer
