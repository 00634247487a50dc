#include "tests/fakes/freshbooks_samples.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/civil_time.h"

// Shapes follow FreshBooks' API reference and official SDKs: money objects with
// string amounts, US/Eastern "YYYY-MM-DD HH:MM:SS" accounting timestamps, UTC
// ones for bills and bill vendors (created_at/updated_at) and clients'
// signup_date, ISO 8601 for projects, time entries and ledger accounts, and the
// id field each resource really uses (vendorid, incomeid, uuid).

namespace mlc::testing {
namespace {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------
// Randomness (own arithmetic, so a seed gives the same objects everywhere)

int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

bool Chance(std::mt19937_64& rng, int percent) { return Uniform(rng, 1, 100) <= percent; }

template <size_t N>
const char* Pick(std::mt19937_64& rng, const char* const (&items)[N]) {
  return items[static_cast<size_t>(Uniform(rng, 0, static_cast<int64_t>(N) - 1))];
}

template <size_t N>
const char* Nth(const char* const (&items)[N], int64_t i) {
  const auto n = static_cast<int64_t>(N);
  return items[static_cast<size_t>(((i % n) + n) % n)];
}

// ---------------------------------------------------------------------------
// Vocabulary

constexpr const char* kFirstNames[] = {"Ava",   "Liam",  "Olivia", "Noah",  "Emma",
                                       "Mason", "Sofia", "Lucas",  "Mia",   "Ethan",
                                       "Chloe", "Owen",  "Grace",  "Jacob", "Zoe"};
constexpr const char* kLastNames[] = {"Tremblay", "Nguyen", "Patel",  "Garcia", "Smith",
                                      "Kowalski", "Okafor", "Dubois", "Rossi",  "Chen",
                                      "Murphy",   "Silva",  "Haddad", "Walsh",  "Berg"};
constexpr const char* kOrganizations[] = {
    "Maple Leaf Design Co.",  "Northwind Traders",    "Blue Heron Bakery",
    "Summit Legal LLP",       "Cobalt Robotics Inc.", "Harbour Dental Clinic",
    "Greenfield Landscaping", "Pixel Forge Studio",   "Red Barn Veterinary",
    "Lakeside Yoga",          "Atlas Freight Ltd.",   "Copper Kettle Cafe",
    "Brightside Tutoring",    "Ironwood Carpentry",   "Silverline Consulting",
    "Orchard Street Books",   "Polar Bear Plumbing",  "Juniper Marketing",
    "Foxglove Florists",      "Keystone Accounting"};
constexpr const char* kVendors[] = {"Staples",
                                    "Amazon Business",
                                    "Adobe",
                                    "Google Workspace",
                                    "Home Depot",
                                    "FedEx",
                                    "Rogers Wireless",
                                    "Hydro One",
                                    "WeWork",
                                    "Uline",
                                    "Dell",
                                    "Shell",
                                    "Air Canada",
                                    "Zoom",
                                    "Costco"};
constexpr const char* kCategories[] = {"Advertising",
                                       "Car & Truck Expenses",
                                       "Office Supplies",
                                       "Travel",
                                       "Meals and Entertainment",
                                       "Utilities",
                                       "Rent or Lease",
                                       "Insurance",
                                       "Professional Services",
                                       "Software & Subscriptions"};
constexpr const char* kServices[] = {
    "Web Design",  "Consulting", "Logo Design", "Bookkeeping", "Photography",
    "Copywriting", "SEO Audit",  "Training",    "Maintenance", "Project Management"};
constexpr const char* kItems[] = {
    "Business Cards (500)", "Hosting (1 year)", "Domain Name",  "Printed Brochures",
    "USB Drive 64GB",       "Stock Photo Pack", "Support Plan", "Laptop Stand",
    "Ink Cartridge",        "Travel Mug"};

struct Place {
  const char* street;
  const char* city;
  const char* province;
  const char* code;
  const char* country;
};
constexpr Place kPlaces[] = {
    {"123 King St W", "Toronto", "Ontario", "M5H 1A1", "Canada"},
    {"55 Rue Sainte-Catherine", "Montreal", "Quebec", "H2X 1K4", "Canada"},
    {"900 Granville St", "Vancouver", "British Columbia", "V6Z 1L2", "Canada"},
    {"742 Evergreen Terrace", "Springfield", "Illinois", "62704", "United States"},
    {"1600 Main St", "Austin", "Texas", "78701", "United States"},
    {"20 W 34th St", "New York", "New York", "10001", "United States"},
    {"410 Pike St", "Seattle", "Washington", "98101", "United States"},
    {"77 Boylston St", "Boston", "Massachusetts", "02116", "United States"},
};

// ---------------------------------------------------------------------------
// Formats

const absl::TimeZone& Eastern() {
  static const absl::TimeZone* const kZone = [] {
    auto* zone = new absl::TimeZone;
    // Without tzdata fall back to EST so samples still build (mapping tests that
    // need DST install tzdata anyway).
    if (!absl::LoadTimeZone("America/New_York", zone)) *zone = absl::FixedTimeZone(-5 * 3600);
    return zone;
  }();
  return *kZone;
}

std::string EasternText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, Eastern());
}
std::string UtcText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, absl::UTCTimeZone());
}
std::string IsoText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}
std::string IsoMicrosText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

absl::CivilDay Today(absl::Time now) { return absl::ToCivilDay(now, Eastern()); }
std::string DateText(absl::CivilDay day) { return absl::FormatCivilTime(day); }

// Cents as FreshBooks prints amounts: "1222.00", "-5.50".
std::string Amount(int64_t cents) {
  const bool negative = cents < 0;
  const int64_t abs = negative ? -cents : cents;
  return absl::StrFormat("%s%d.%02d", negative ? "-" : "", abs / 100, abs % 100);
}

Json Money(int64_t cents, const std::string& currency) {
  return Json{{"amount", Amount(cents)}, {"code", currency}};
}

// "1222.00" -> 122200 (our own amounts only).
int64_t Cents(const Json& money) {
  const Json* amount = &money;
  if (money.is_object()) {
    const auto it = money.find("amount");
    if (it == money.end()) return 0;
    amount = &it.value();
  }
  if (!amount->is_string()) return 0;
  const std::string& text = amount->get_ref<const std::string&>();
  const size_t dot = text.find('.');
  int64_t units = 0;
  int64_t frac = 0;
  if (!absl::SimpleAtoi(text.substr(0, dot), &units)) return 0;
  if (dot != std::string::npos) {
    std::string f = text.substr(dot + 1, 2);
    while (f.size() < 2) f += '0';
    if (!absl::SimpleAtoi(f, &frac)) frac = 0;
  }
  return units * 100 + (text[0] == '-' ? -frac : frac);
}

std::string Padded(int64_t n) { return absl::StrFormat("%07d", n); }

// A deterministic uuid for ledger account `id`.
std::string UuidFor(int64_t id) {
  return absl::StrFormat("6f1b2c3d-%04x-4%03x-8%03x-%012x", (id >> 32) & 0xffff, (id >> 20) & 0xfff,
                         (id >> 12) & 0xfff, id & 0xffffffffffff);
}

const char* FirstNameFor(int64_t client_id) { return Nth(kFirstNames, client_id * 7); }
const char* LastNameFor(int64_t client_id) { return Nth(kLastNames, client_id * 11); }
const char* OrganizationFor(int64_t client_id) { return Nth(kOrganizations, client_id); }
std::string EmailFor(int64_t client_id) {
  return absl::AsciiStrToLower(
      absl::StrCat(FirstNameFor(client_id), ".", LastNameFor(client_id), "@example.com"));
}
std::string PhoneFor(int64_t n) { return absl::StrFormat("(416) 555-%04d", n % 10000); }

// ---------------------------------------------------------------------------
// Accounting objects

Json Invoice(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const std::string updated = EasternText(now);
  Json lines = Json::array();
  int64_t total = 0;
  const int64_t n = Uniform(rng, 2, 4);
  for (int64_t i = 1; i <= n; ++i) {
    const int64_t qty = Uniform(rng, 1, 10);
    const int64_t unit = Uniform(rng, 20, 400) * 250;  // $50.00 .. $1000.00
    total += qty * unit;
    lines.push_back(Json{{"lineid", i},
                         {"invoiceid", id},
                         {"name", Pick(rng, kServices)},
                         {"description", "Work as agreed"},
                         {"qty", absl::StrCat(qty)},
                         {"unit_cost", Money(unit, cur)},
                         {"amount", Money(qty * unit, cur)},
                         {"taxName1", ""},
                         {"taxAmount1", "0"},
                         {"taxName2", ""},
                         {"taxAmount2", "0"},
                         {"taxNumber1", nullptr},
                         {"taxNumber2", nullptr},
                         {"compounded_tax", false},
                         {"type", 0},
                         {"expenseid", 0},
                         {"date", nullptr},
                         {"retainer_id", nullptr},
                         {"retainer_period_id", nullptr},
                         {"updated", updated}});
  }
  const absl::CivilDay today = Today(now);
  const absl::CivilDay create = today - Uniform(rng, 0, 60);
  const absl::CivilDay due = create + 30;
  // 1 draft, 2 sent, 3 viewed, 4 paid, 8 partial.
  const int64_t roll = Uniform(rng, 1, 100);
  const int status = roll <= 10 ? 1 : roll <= 40 ? 2 : roll <= 60 ? 3 : roll <= 85 ? 4 : 8;
  const int64_t paid = status == 4 ? total : status == 8 ? total / 2 : 0;
  const int64_t outstanding = total - paid;
  std::string v3 = status == 1   ? "draft"
                   : status == 2 ? "sent"
                   : status == 3 ? "viewed"
                   : status == 4 ? "paid"
                                 : "partial";
  if (outstanding > 0 && status != 1 && due < today) v3 = "overdue";
  const std::string display = status == 1 ? "draft" : status == 3 ? "viewed" : "sent";
  const std::string payment_status = paid == 0 ? "unpaid" : outstanding == 0 ? "paid" : "partial";
  const int64_t customer = Uniform(rng, 1, 50);
  const Place& place = kPlaces[static_cast<size_t>(customer) % (sizeof(kPlaces) / sizeof(Place))];
  return Json{{"id", id},
              {"invoiceid", id},
              {"invoice_number", Padded(id)},
              {"customerid", customer},
              {"ownerid", 1},
              {"estimateid", 0},
              {"sentid", 1},
              {"create_date", DateText(create)},
              {"due_date", DateText(due)},
              {"due_offset_days", 30},
              {"date_paid", status == 4 ? Json(DateText(today)) : Json(nullptr)},
              {"status", status},
              {"v3_status", v3},
              {"payment_status", payment_status},
              {"display_status", display},
              {"autobill_status", nullptr},
              {"auto_bill", false},
              {"amount", Money(total, cur)},
              {"outstanding", Money(outstanding, cur)},
              {"paid", Money(paid, cur)},
              {"discount_total", Money(0, cur)},
              {"discount_value", "0"},
              {"currency_code", cur},
              {"organization", OrganizationFor(customer)},
              {"current_organization", OrganizationFor(customer)},
              {"fname", FirstNameFor(customer)},
              {"lname", LastNameFor(customer)},
              {"email", EmailFor(customer)},
              {"street", place.street},
              {"street2", ""},
              {"city", place.city},
              {"province", place.province},
              {"code", place.code},
              {"country", place.country},
              {"language", "en"},
              {"notes", "Thank you for your business."},
              {"terms", "Net 30"},
              {"po_number", nullptr},
              {"template", "clean-grouped"},
              {"created_at", updated},
              {"updated", updated},
              {"vis_state", 0},
              {"lines", lines}};
}

Json Payment(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const int64_t invoice = Uniform(rng, 1, 50);
  return Json{{"id", id},
              {"logid", id},
              {"invoiceid", invoice},
              {"clientid", Uniform(rng, 1, 50)},
              {"creditid", nullptr},
              {"overpaymentid", nullptr},
              {"orderid", nullptr},
              {"transactionid", nullptr},
              {"gateway", nullptr},
              {"amount", Money(Uniform(rng, 20, 2000) * 250, cur)},
              {"date", DateText(Today(now) - Uniform(rng, 0, 20))},
              {"type", Pick(rng, {"Check", "Cash", "Credit Card", "Bank Transfer", "PayPal"})},
              {"note", absl::StrCat("Payment for invoice ", Padded(invoice))},
              {"from_credit", false},
              {"updated", EasternText(now)},
              {"vis_state", 0}};
}

Json Bill(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const int64_t qty = Uniform(rng, 1, 5);
  const int64_t unit = Uniform(rng, 4, 300) * 500;
  const int64_t amount = qty * unit;
  const int64_t tax = amount * 13 / 100;
  const int64_t total = amount + tax;
  const int64_t roll = Uniform(rng, 1, 100);
  const int64_t paid = roll <= 40 ? total : roll <= 55 ? total / 2 : 0;
  const absl::CivilDay today = Today(now);
  const absl::CivilDay issue = today - Uniform(rng, 0, 60);
  const absl::CivilDay due = issue + 30;
  const std::string status = paid == total ? "paid"
                             : due < today ? "overdue"
                             : paid > 0    ? "partial"
                                           : "unpaid";
  const int64_t category = Uniform(rng, 1, 10);
  const std::string description = absl::StrCat(Nth(kCategories, category - 1), " for the office");
  const std::string stamp = UtcText(now);
  return Json{{"id", id},
              {"bill_number", absl::StrFormat("B-%05d", id)},
              {"vendorid", Uniform(rng, 1, 50)},
              {"issue_date", DateText(issue)},
              {"due_date", DateText(due)},
              {"due_offset_days", 30},
              {"status", status},
              {"amount", Money(amount, cur)},
              {"tax_amount", Money(tax, cur)},
              {"total_amount", Money(total, cur)},
              {"outstanding", Money(total - paid, cur)},
              {"paid", Money(paid, cur)},
              {"currency_code", cur},
              {"overall_category", Nth(kCategories, category - 1)},
              {"overall_description", description},
              {"language", "en"},
              {"attachment", nullptr},
              {"bill_payments", Json::array()},
              {"lines", Json::array({Json{{"categoryid", category},
                                          {"description", description},
                                          {"quantity", absl::StrCat(qty)},
                                          {"unit_cost", Money(unit, cur)},
                                          {"amount", Money(amount, cur)},
                                          {"tax_name1", "HST"},
                                          {"tax_percent1", "13"},
                                          {"tax_amount1", Money(tax, cur)},
                                          {"tax_name2", nullptr},
                                          {"tax_percent2", nullptr},
                                          {"tax_amount2", nullptr},
                                          {"total_amount", Money(total, cur)}}})},
              {"created_at", stamp},
              {"updated_at", stamp},
              {"vis_state", 0}};
}

Json BillPayment(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  return Json{{"id", id},
              {"billid", Uniform(rng, 1, 50)},
              {"amount", Money(Uniform(rng, 10, 1000) * 500, cur)},
              {"paid_date", DateText(Today(now) - Uniform(rng, 0, 20))},
              {"payment_type", Pick(rng, {"Check", "Bank Transfer", "Credit Card", "ACH", "Cash"})},
              {"note", "Paid via online banking"},
              {"matched_with_expense", false},
              {"vis_state", 0}};
}

Json BillVendor(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const Place& place = kPlaces[static_cast<size_t>(id) % (sizeof(kPlaces) / sizeof(Place))];
  const char* name = Nth(kVendors, id);
  const std::string domain = absl::AsciiStrToLower(
      absl::StrCat(absl::StrReplaceAll(name, {{" ", ""}, {".", ""}}), ".example.com"));
  const int64_t owed = Uniform(rng, 0, 400) * 500;
  const std::string stamp = UtcText(now);
  return Json{{"vendorid", id},
              {"vendor_name", name},
              {"account_number", absl::StrFormat("%08d", Uniform(rng, 1, 99999999))},
              {"primary_contact_first_name", Pick(rng, kFirstNames)},
              {"primary_contact_last_name", Pick(rng, kLastNames)},
              {"primary_contact_email", absl::StrCat("billing@", domain)},
              {"phone", PhoneFor(Uniform(rng, 0, 9999))},
              {"website", domain},
              {"street", place.street},
              {"street2", nullptr},
              {"city", place.city},
              {"province", place.province},
              {"postal_code", place.code},
              {"country", place.country},
              {"currency_code", cur},
              {"language", "en"},
              {"is_1099", Chance(rng, 20)},
              {"note", nullptr},
              {"tax_defaults", Json::array()},
              {"outstanding_balance", Json::array({Money(owed, cur)})},
              {"overdue_balance", Json::array({Money(owed / 2, cur)})},
              {"created_at", stamp},
              {"updated_at", stamp},
              {"vis_state", 0}};
}

Json Expense(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const int64_t amount = Uniform(rng, 5, 2000) * 113;  // tax-inclusive, 13% HST
  const int64_t tax = amount * 13 / 113;
  const bool billable = Chance(rng, 30);
  const int64_t category = Uniform(rng, 1, 10);
  return Json{{"id", id},
              {"expenseid", id},
              {"categoryid", category},
              {"vendor", Pick(rng, kVendors)},
              {"amount", Money(amount, cur)},
              {"date", DateText(Today(now) - Uniform(rng, 0, 90))},
              {"staffid", 1},
              {"clientid", billable ? Uniform(rng, 1, 50) : 0},
              {"invoiceid", 0},
              {"projectid", 0},
              {"modern_projectid", nullptr},
              {"status", billable ? 1 : 0},
              {"notes", absl::StrCat(Nth(kCategories, category - 1), " expense")},
              {"taxName1", "HST"},
              {"taxAmount1", Money(tax, cur)},
              {"taxPercent1", "13"},
              {"taxName2", nullptr},
              {"taxAmount2", nullptr},
              {"taxPercent2", nullptr},
              {"billable", billable},
              {"has_receipt", Chance(rng, 60)},
              {"include_receipt", false},
              {"is_cogs", false},
              {"isduplicate", false},
              {"markup_percent", "0"},
              {"account_name", ""},
              {"bank_name", ""},
              {"accountid", nullptr},
              {"transactionid", nullptr},
              {"profileid", nullptr},
              {"updated", EasternText(now)},
              {"vis_state", 0}};
}

Json ExpenseCategory(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string&) {
  const std::string stamp = EasternText(now);
  return Json{{"id", id},
              {"categoryid", id},
              {"category", Nth(kCategories, id - 1)},
              {"parentid", 1000 + (id - 1) % 4},
              {"is_cogs", Chance(rng, 10)},
              {"is_editable", false},
              {"transaction_posted", false},
              {"created_at", stamp},
              {"updated_at", stamp},
              {"vis_state", 0}};
}

Json Client(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const Place& place = kPlaces[static_cast<size_t>(id) % (sizeof(kPlaces) / sizeof(Place))];
  return Json{{"id", id},
              {"userid", id},
              {"fname", FirstNameFor(id)},
              {"lname", LastNameFor(id)},
              {"organization", OrganizationFor(id)},
              {"email", EmailFor(id)},
              {"bus_phone", PhoneFor(Uniform(rng, 0, 9999))},
              {"mob_phone", ""},
              {"home_phone", nullptr},
              {"fax", ""},
              {"p_street", place.street},
              {"p_street2", ""},
              {"p_city", place.city},
              {"p_province", place.province},
              {"p_code", place.code},
              {"p_country", place.country},
              {"s_street", ""},
              {"s_city", ""},
              {"s_province", ""},
              {"s_code", ""},
              {"s_country", ""},
              {"currency_code", cur},
              {"language", "en"},
              {"vat_name", nullptr},
              {"vat_number", nullptr},
              {"note", nullptr},
              {"allow_late_fees", false},
              {"allow_late_notifications", false},
              {"num_logins", 0},
              {"signup_date", UtcText(now)},
              {"updated", EasternText(now)},
              {"vis_state", 0}};
}

Json Item(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  return Json{{"id", id},
              {"itemid", id},
              {"name", Nth(kItems, id)},
              {"description", "Standard item"},
              {"sku", absl::StrFormat("SKU-%05d", id)},
              {"qty", "1"},
              {"inventory", absl::StrCat(Uniform(rng, 0, 200))},
              {"unit_cost", Money(Uniform(rng, 1, 400) * 125, cur)},
              {"tax1", Uniform(rng, 0, 3)},
              {"tax2", 0},
              {"updated", EasternText(now)},
              {"vis_state", 0}};
}

Json Tax(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string&) {
  static constexpr const char* kNames[] = {"HST", "GST", "PST", "QST", "Sales Tax", "VAT"};
  static constexpr const char* kRates[] = {"13", "5", "7", "9.975", "8.875", "20"};
  const int64_t i = Uniform(rng, 0, 5);
  return Json{{"id", id},
              {"taxid", id},
              {"name", Nth(kNames, i)},
              {"amount", Nth(kRates, i)},
              {"number", absl::StrFormat("RT%04d", id)},
              {"compound", false},
              {"updated", EasternText(now)}};
}

Json CreditNote(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const int64_t client = Uniform(rng, 1, 50);
  const int64_t amount = Uniform(rng, 4, 200) * 500;
  const bool applied = Chance(rng, 40);
  const char* type = Pick(rng, {"goodwill", "overpayment", "prepayment"});
  return Json{{"id", id},
              {"creditid", id},
              {"clientid", client},
              {"credit_number", Padded(id)},
              {"create_date", DateText(Today(now) - Uniform(rng, 0, 60))},
              {"credit_type", type},
              {"status", "sent"},
              {"display_status", "sent"},
              {"payment_status", applied ? "paid" : "unpaid"},
              {"amount", Money(amount, cur)},
              {"paid", Money(applied ? amount : 0, cur)},
              {"currency_code", cur},
              {"organization", OrganizationFor(client)},
              {"current_organization", OrganizationFor(client)},
              {"fname", FirstNameFor(client)},
              {"lname", LastNameFor(client)},
              {"description", absl::StrCat("Credit (", type, ")")},
              {"notes", "Will be applied to a future invoice"},
              {"terms", ""},
              {"language", "en"},
              {"template", "clean-grouped"},
              {"sentid", 1},
              {"ext_archive", 0},
              {"dispute_status", nullptr},
              {"last_order_status", nullptr},
              {"vat_name", ""},
              {"vat_number", ""},
              {"street", ""},
              {"street2", ""},
              {"city", ""},
              {"province", ""},
              {"code", ""},
              {"country", ""},
              {"vis_state", 0},
              {"lines", Json::array({Json{{"name", "Credit"},
                                          {"description", "Credit for future work"},
                                          {"qty", "1"},
                                          {"unit_cost", Money(amount, cur)},
                                          {"amount", Money(amount, cur)},
                                          {"taxName1", nullptr},
                                          {"taxAmount1", nullptr}}})}};
}

Json Estimate(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const int64_t customer = Uniform(rng, 1, 50);
  const int64_t amount = Uniform(rng, 10, 2000) * 500;
  // 1 draft, 2 sent, 3 viewed, 5 accepted.
  static constexpr int kStatus[] = {1, 2, 3, 5};
  static constexpr const char* kUi[] = {"draft", "sent", "viewed", "accepted"};
  const auto i = static_cast<size_t>(Uniform(rng, 0, 3));
  const std::string stamp = EasternText(now);
  return Json{{"id", id},
              {"estimateid", id},
              {"estimate_number", Padded(id)},
              {"customerid", customer},
              {"create_date", DateText(Today(now) - Uniform(rng, 0, 30))},
              {"status", kStatus[i]},
              {"ui_status", kUi[i]},
              {"display_status", i == 0 ? "draft" : "sent"},
              {"reply_status", nullptr},
              {"accepted", kStatus[i] == 5},
              {"invoiced", false},
              {"amount", Money(amount, cur)},
              {"discount_total", Money(0, cur)},
              {"discount_value", "0"},
              {"currency_code", cur},
              {"organization", OrganizationFor(customer)},
              {"current_organization", OrganizationFor(customer)},
              {"fname", FirstNameFor(customer)},
              {"lname", LastNameFor(customer)},
              {"description", absl::StrCat(Pick(rng, kServices), " proposal")},
              {"notes", "Valid for 30 days."},
              {"terms", ""},
              {"po_number", nullptr},
              {"language", "en"},
              {"sentid", 1},
              {"created_at", stamp},
              {"updated", stamp},
              {"vis_state", 0}};
}

Json OtherIncome(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const std::string stamp = EasternText(now);
  return Json{{"incomeid", id},
              {"amount", Money(Uniform(rng, 5, 1000) * 100, cur)},
              {"category_name",
               Pick(rng, {"advertising", "in_person_sales", "online_sales", "rentals", "other"})},
              {"date", DateText(Today(now) - Uniform(rng, 0, 30))},
              {"note", "Weekend sales"},
              {"payment_type", Pick(rng, {"Visa", "Cash", "Check", "PayPal", "Bank Transfer"})},
              {"source", Pick(rng, {"Etsy", "Shopify", "Farmers market", "Amazon", "eBay"})},
              {"taxes", Json::array({Json{{"amount", "13"}, {"name", "HST"}}})},
              {"created_at", stamp},
              {"updated_at", stamp},
              {"vis_state", 0}};
}

// ---------------------------------------------------------------------------
// Ledger, journal, projects and time tracking

struct LedgerAccount {
  const char* name;
  const char* number;
  const char* type;
  const char* sub_type;
};
constexpr LedgerAccount kLedger[] = {
    {"Petty Cash", "1000", "asset", "Cash & Bank"},
    {"Checking Account", "1010", "asset", "Cash & Bank"},
    {"Accounts Receivable", "1200", "asset", "Current Asset"},
    {"Accounts Payable", "2000", "liability", "Current Liability"},
    {"Sales Taxes Payable", "2200", "liability", "Current Liability"},
    {"Sales", "4000", "income", "Income"},
    {"Office Expenses", "6000", "expense", "Operating Expense"},
    {"Advertising", "6100", "expense", "Operating Expense"},
};

Json LedgerAccountObject(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string&) {
  const LedgerAccount& a =
      kLedger[static_cast<size_t>(id) % (sizeof(kLedger) / sizeof(LedgerAccount))];
  return Json{{"uuid", UuidFor(id)},
              {"name", a.name},
              {"number", absl::StrCat(a.number, "-", id)},
              {"type", a.type},
              {"sub_type", a.sub_type},
              {"description", absl::StrCat(a.name, " sub-account")},
              {"parent_account", UuidFor(1000000 + static_cast<int64_t>(a.number[0] - '0'))},
              {"state", "active"},
              {"auto_created", Chance(rng, 50)},
              {"system_account_name", a.name},
              {"sub_accounts", Json::array()},
              {"updated_at", IsoMicrosText(now)}};
}

Json JournalEntryDetail(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string& cur) {
  const bool sale = Chance(rng, 60);  // a sale credits income; a payment debits cash
  const int64_t amount = Uniform(rng, 10, 2000) * 250;
  const int64_t invoice = Uniform(rng, 1, 50);
  const LedgerAccount& a = sale ? kLedger[5] : kLedger[1];
  const int64_t account_id = sale ? 545890 : 545882;
  return Json{{"id", id},
              {"detailid", id},
              {"name", absl::StrCat(sale ? "Invoice " : "Payment for invoice ", Padded(invoice))},
              {"description", sale ? "Invoice issued" : "Payment received"},
              {"detail_type", sale ? "sales" : "payment"},
              {"user_entered_date", DateText(Today(now) - Uniform(rng, 0, 30))},
              {"account", Json{{"accountid", account_id},
                               {"id", account_id},
                               {"account_name", a.name},
                               {"account_number", a.number},
                               {"account_type", a.type}}},
              {"sub_account", Json{{"sub_accountid", account_id + 100},
                                   {"id", account_id + 100},
                                   {"parentid", account_id},
                                   {"account_sub_name", a.name},
                                   {"account_sub_number", "1"}}},
              {"entry", Json{{"entryid", 5000000 + id},
                             {"id", 5000000 + id},
                             {"clientid", Uniform(rng, 1, 50)},
                             {"invoiceid", invoice},
                             {"paymentid", sale ? Json(nullptr) : Json(Uniform(rng, 1, 50))},
                             {"expenseid", nullptr},
                             {"creditid", nullptr},
                             {"incomeid", nullptr},
                             {"categoryid", nullptr}}},
              {"debit", sale ? Json(nullptr) : Money(amount, cur)},
              {"credit", sale ? Money(amount, cur) : Json(nullptr)},
              {"balance", Money(amount * Uniform(rng, 1, 5), cur)}};
}

Json Project(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string&) {
  const bool fixed = Chance(rng, 40);
  const std::string stamp = IsoText(now);
  return Json{{"id", id},
              {"title", absl::StrCat(Pick(rng, kServices), " for ", Pick(rng, kOrganizations))},
              {"description", "Scope as agreed in the estimate"},
              {"due_date", DateText(Today(now) + Uniform(rng, 7, 120))},
              {"client_id", Uniform(rng, 1, 50)},
              {"internal", false},
              {"budget", Amount(Uniform(rng, 10, 400) * 2500)},
              {"fixed_price", fixed ? Json(Amount(Uniform(rng, 10, 400) * 5000)) : Json(nullptr)},
              {"rate", Amount(Uniform(rng, 6, 30) * 500)},
              {"billing_method", "project_rate"},
              {"project_type", fixed ? "fixed_price" : "hourly_rate"},
              {"project_manager_id", nullptr},
              {"active", true},
              {"complete", false},
              {"sample", false},
              {"logged_duration", Uniform(rng, 0, 160) * 900},
              {"billed_amount", "0.00"},
              {"billed_status", "unbilled"},
              {"retainer_id", nullptr},
              {"expense_markup", 0},
              {"group_id", 6000 + id},
              {"services", Json::array()},
              {"created_at", stamp},
              {"updated_at", stamp}};
}

// The business every business-scoped sample belongs to (FRESHBOOKS.md's example).
constexpr int64_t kSampleBusinessId = 6543;

Json Service(int64_t id, absl::Time, std::mt19937_64& rng, const std::string&) {
  return Json{{"id", id},
              {"business_id", kSampleBusinessId},
              {"name", Nth(kServices, id)},
              {"billable", Chance(rng, 85)},
              {"vis_state", 0}};
}

Json TimeEntry(int64_t id, absl::Time now, std::mt19937_64& rng, const std::string&) {
  const int64_t duration = Uniform(rng, 1, 32) * 900;
  const absl::Time started =
      now - absl::Seconds(duration) - absl::Minutes(Uniform(rng, 0, 3 * 24 * 60));
  return Json{{"id", id},
              {"identity_id", 1000 + Uniform(rng, 1, 5)},
              {"is_logged", true},
              {"started_at", IsoText(started)},
              {"created_at", IsoText(now)},
              {"client_id", Uniform(rng, 1, 50)},
              {"project_id", Uniform(rng, 1, 50)},
              {"service_id", Uniform(rng, 1, 10)},
              {"task_id", nullptr},
              {"pending_client", nullptr},
              {"pending_project", nullptr},
              {"pending_task", nullptr},
              {"note", absl::StrCat(Pick(rng, kServices), " session")},
              {"active", false},
              {"billable", true},
              {"billed", false},
              {"internal", false},
              {"retainer_id", nullptr},
              {"duration", duration},
              {"timer", nullptr}};
}

// ---------------------------------------------------------------------------
// Mutation helpers

std::string CurrencyOf(const Json& object, const char* money_field) {
  const auto it = object.find(money_field);
  if (it != object.end() && it->is_object()) {
    const auto code = it->find("code");
    if (code != it->end() && code->is_string()) return code->get<std::string>();
  }
  return "USD";
}

// Applies a payment of up to `max_cents` to an object with amount-like `total`,
// `paid` and `outstanding` money fields; returns the new outstanding amount.
int64_t ApplyPayment(Json& object, const char* total_field, int64_t max_cents) {
  const std::string cur = CurrencyOf(object, total_field);
  const int64_t total = Cents(object[total_field]);
  const int64_t paid_before = Cents(object["paid"]);
  const int64_t pay = std::min(max_cents, total - paid_before);
  const int64_t paid = paid_before + pay;
  object["paid"] = Money(paid, cur);
  object["outstanding"] = Money(total - paid, cur);
  return total - paid;
}

}  // namespace

const std::vector<std::string>& SampleEntityNames() {
  static const std::vector<std::string>* const kNames = new std::vector<std::string>{
      "invoice",     "payment",          "bill",         "bill_payment",   "bill_vendor",
      "expense",     "expense_category", "client",       "item",           "tax",
      "credit_note", "estimate",         "other_income", "ledger_account", "journal_entry_detail",
      "project",     "service",          "time_entry"};
  return *kNames;
}

nlohmann::json SampleObject(const std::string& entity, int64_t id, absl::Time now,
                            std::mt19937_64& rng, const std::string& currency) {
  if (entity == "invoice") return Invoice(id, now, rng, currency);
  if (entity == "payment") return Payment(id, now, rng, currency);
  if (entity == "bill") return Bill(id, now, rng, currency);
  if (entity == "bill_payment") return BillPayment(id, now, rng, currency);
  if (entity == "bill_vendor") return BillVendor(id, now, rng, currency);
  if (entity == "expense") return Expense(id, now, rng, currency);
  if (entity == "expense_category") return ExpenseCategory(id, now, rng, currency);
  if (entity == "client") return Client(id, now, rng, currency);
  if (entity == "item") return Item(id, now, rng, currency);
  if (entity == "tax") return Tax(id, now, rng, currency);
  if (entity == "credit_note") return CreditNote(id, now, rng, currency);
  if (entity == "estimate") return Estimate(id, now, rng, currency);
  if (entity == "other_income") return OtherIncome(id, now, rng, currency);
  if (entity == "ledger_account") return LedgerAccountObject(id, now, rng, currency);
  if (entity == "journal_entry_detail") return JournalEntryDetail(id, now, rng, currency);
  if (entity == "project") return Project(id, now, rng, currency);
  if (entity == "service") return Service(id, now, rng, currency);
  if (entity == "time_entry") return TimeEntry(id, now, rng, currency);
  return Json{{SampleIdField(entity), id}};  // unknown entity: just an id
}

void TouchUpdated(const std::string& entity, nlohmann::json& object, absl::Time now) {
  if (entity == "invoice") {
    object["updated"] = EasternText(now);
    const auto lines = object.find("lines");
    if (lines != object.end() && lines->is_array()) {
      for (Json& line : *lines) {
        if (line.is_object()) line["updated"] = EasternText(now);
      }
    }
  } else if (entity == "payment" || entity == "expense" || entity == "client" || entity == "item" ||
             entity == "tax" || entity == "estimate") {
    object["updated"] = EasternText(now);
  } else if (entity == "expense_category" || entity == "other_income") {
    object["updated_at"] = EasternText(now);
  } else if (entity == "bill" || entity == "bill_vendor") {
    object["updated_at"] = UtcText(now);
  } else if (entity == "project") {
    object["updated_at"] = IsoText(now);
  } else if (entity == "ledger_account") {
    object["updated_at"] = IsoMicrosText(now);
  }
  // bill_payment, credit_note, journal_entry_detail, service, time_entry: FreshBooks
  // has no last-modified field on these objects, so there is nothing to touch.
}

void MutateSample(const std::string& entity, nlohmann::json& object, absl::Time now,
                  std::mt19937_64& rng) {
  const int64_t step = Uniform(rng, 1, 40) * 2500;
  const std::string suffix = absl::StrCat(" (edited ", Uniform(rng, 1, 999), ")");
  if (entity == "invoice") {
    const int64_t left = ApplyPayment(object, "amount", step);
    const bool fully = left == 0;
    object["payment_status"] = fully ? "paid" : "partial";
    object["v3_status"] = fully ? "paid" : "partial";
    object["status"] = fully ? 4 : 8;
    object["notes"] = absl::StrCat("Thank you for your business.", suffix);
  } else if (entity == "bill") {
    const int64_t left = ApplyPayment(object, "total_amount", step);
    object["status"] = left == 0 ? "paid" : "partial";
  } else if (entity == "credit_note") {  // amount and paid only, no outstanding
    const std::string cur = CurrencyOf(object, "amount");
    const int64_t amount = Cents(object["amount"]);
    const int64_t paid = std::min(amount, Cents(object["paid"]) + step);
    object["paid"] = Money(paid, cur);
    object["payment_status"] = paid == amount ? "paid" : "partial";
  } else if (entity == "payment" || entity == "bill_payment" || entity == "expense" ||
             entity == "other_income") {
    const std::string cur = CurrencyOf(object, "amount");
    object["amount"] = Money(Cents(object["amount"]) + step, cur);
    object[entity == "expense" ? "notes" : "note"] = absl::StrCat("Corrected amount", suffix);
  } else if (entity == "item") {
    const std::string cur = CurrencyOf(object, "unit_cost");
    object["unit_cost"] = Money(Cents(object["unit_cost"]) + 500, cur);
    object["description"] = absl::StrCat("Standard item", suffix);
  } else if (entity == "tax") {
    object["number"] = absl::StrFormat("RT%04d", Uniform(rng, 1, 9999));
  } else if (entity == "client") {
    object["bus_phone"] = PhoneFor(Uniform(rng, 0, 9999));
  } else if (entity == "bill_vendor") {
    object["phone"] = PhoneFor(Uniform(rng, 0, 9999));
    object["note"] = absl::StrCat("Preferred supplier", suffix);
  } else if (entity == "expense_category") {
    object["is_cogs"] = !object.value("is_cogs", false);
  } else if (entity == "estimate") {
    object["status"] = 5;
    object["ui_status"] = "accepted";
    object["accepted"] = true;
  } else if (entity == "ledger_account" || entity == "journal_entry_detail" ||
             entity == "project") {
    object["description"] = absl::StrCat("Updated description", suffix);
    if (entity == "project") {
      object["logged_duration"] = object.value("logged_duration", int64_t{0}) + 900;
    }
  } else if (entity == "service") {
    object["billable"] = !object.value("billable", true);
  } else if (entity == "time_entry") {
    object["duration"] = object.value("duration", int64_t{0}) + 900;
    object["note"] = absl::StrCat("Extended session", suffix);
  }
  TouchUpdated(entity, object, now);
}

std::string SampleIdField(const std::string& entity) {
  if (entity == "bill_vendor") return "vendorid";
  if (entity == "other_income") return "incomeid";
  if (entity == "ledger_account") return "uuid";
  return "id";
}

}  // namespace mlc::testing
