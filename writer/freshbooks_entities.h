// The FreshBooks entities ml-connector syncs and how each becomes typed rows
// (DESIGN.md §2, FRESHBOOKS.md §4). One EntitySpec per entity is the single source
// of truth: where the API serves it, which webhook object names it, and one
// mapping table (column, SQL type, JSON path, conversion) from which the entity
// table's DDL, the validation of fetched objects and the rows all derive.
//
// Every entity table has key (account_id, id) - a child table such as invoice
// lines adds its parent's id, (account_id, invoice_id, id) - typed business
// columns, and the common columns vis_state, is_deleted, updated_at (UTC; the
// last-write-wins version column), raw (the object as JSON text), _source
// ("webhook" or "sync"), _delivery_id and _synced_at.
//
// Column layout of an entity table (EntityTable): account_id STRING, [the
// child's <parent>_id BIGINT,] id (BIGINT, or STRING for uuid ids), the business
// columns in `fields` order, then vis_state BIGINT, is_deleted BOOLEAN,
// updated_at TIMESTAMP, raw STRING, _source STRING, _delivery_id STRING,
// _synced_at TIMESTAMP.
//
// updated_at is the object's own last-modified time (updated_path, converted to
// UTC). Objects FreshBooks gives no last-modified field (bill payments, credit
// notes, journal entry details, services, time entries) - or an object whose
// field is absent or null - use ctx.synced_at, the time the object was fetched:
// a later fetch saw a state at least as new, so last-write-wins by fetch time
// still never rolls a row back. (NULL would be wrong: the MERGE treats a stored
// NULL as oldest and an incoming NULL could never replace anything.)
//
// Conversions: money {"amount":"12.50","code":"USD"} becomes a DECIMAL column
// plus a sibling "<name>_currency" STRING column (never floating point); dates
// stay DATE text; accounting timestamps without a zone are US/Eastern and are
// converted to UTC, some fields are UTC already, ISO 8601 ones are normalised.
// Mapping never fails on a missing optional field (NULL); it fails with
// InvalidArgument naming entity, field and value when a present value cannot be
// converted (e.g. "12,50" for a DECIMAL) or the object has no id.
//
// Everything here is immutable after first use and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "writer/table_spec.h"

namespace mlc::writer {

// Which identifier a resource's path needs: the alphanumeric account_id
// (/accounting/account/{account_id}/...), the business uuid
// (/accounting/businesses/{business_uuid}/...) or the numeric business id
// (/projects|/comments|/timetracking/business/{business_id}/...). All three come
// from /auth/api/v1/users/me (FRESHBOOKS.md §3).
enum class EntityScope { kAccount, kBusinessUuid, kBusinessId };

// How a JSON value becomes the column's canonical text (writer/table_spec.h).
// Everywhere: JSON null or a missing field -> NULL.
enum class Conversion {
  kString,            // a string as is; numbers/booleans as JSON prints them;
                      // objects and arrays as JSON text
  kBigint,            // integer or integer string ("" -> NULL); an integral
                      // JSON float (12.0) is accepted, 12.5 is not
  kBoolean,           // true/false, 0/1, "true"/"false", "0"/"1" ("" -> NULL)
  kDecimal,           // string or number -> canonical DECIMAL text at the
                      // column's scale (see below; "" -> NULL)
  kMoneyAmount,       // {"amount": "...", "code": "..."} -> amount (DECIMAL); a
                      // bare string/number is taken as the amount
  kMoneyCode,         // the same object -> its "code"; a bare amount -> NULL
  kDate,              // "YYYY-MM-DD" (validated); "0000-00-00"/"" -> NULL
  kTimestampEastern,  // "YYYY-MM-DD HH:MM:SS" in US/Eastern -> UTC TIMESTAMP
  kTimestampUtc,      // "YYYY-MM-DD HH:MM:SS" already UTC -> TIMESTAMP
  kTimestampIso,      // ISO 8601 with zone ("...Z", "+00:00") -> UTC TIMESTAMP
  kJson,              // any value serialised as JSON text (STRING column)
};
// DECIMAL details: the text is [-]digits[.digits] (also ".5" and "5."); no
// exponent, no thousands separator, no '+', no whitespace, no NaN/Infinity
// ("1e5", "12,50", "NaN" are InvalidArgument). JSON numbers are taken as JSON
// prints them, so a float that prints with an exponent is rejected too. Fewer
// fraction digits than the scale are padded ("0.0" -> "0.00"); more are rounded
// half-up, away from zero ("1.005" -> "1.01", "-1.005" -> "-1.01") because
// FreshBooks rates and quantities can carry more decimals than a column keeps.
// An integer part longer than precision - scale is InvalidArgument.
//
// Timestamp details: "YYYY-MM-DD HH:MM:SS" or with 'T', optional fraction
// (kept to the microsecond); "0000-00-00 00:00:00"/"" -> NULL. A value that
// carries its own zone ("Z", "+hh:mm", "+hhmm", "+hh") is converted with that
// zone whatever the conversion says; a zone-less kTimestampIso value is taken as
// UTC (FreshBooks documents these fields as UTC).

struct FieldMapping {
  ColumnSpec column;
  // Dotted path into the object, e.g. "amount" or "owner.email"; a numeric
  // segment indexes an array ("outstanding_balance.0").
  std::string json_path;
  Conversion conversion = Conversion::kString;
};

struct EntitySpec {
  std::string name;          // "invoice"
  std::string table;         // "freshbooks_invoices"
  std::string event_object;  // webhook object name ("invoice"), "" when it has none
  EntityScope scope = EntityScope::kAccount;
  // The OAuth scope that reads it (FRESHBOOKS.md §3), e.g. "user:invoices:read";
  // "" for a child (read with its parent).
  std::string read_scope;
  // Complete path templates below {api_url}, with the placeholders
  // {account_id}, {business_uuid}, {business_id} and (object_path only) {id}.
  // Use ListPath/ObjectPath to fill them. Examples:
  //   invoice:  path        "/accounting/account/{account_id}/invoices/invoices"
  //             object_path "/accounting/account/{account_id}/invoices/invoices/{id}"
  //   project:  path        "/projects/business/{business_id}/projects"
  //             object_path "/projects/business/{business_id}/project/{id}"  (singular)
  //   ledger_account: path  "/accounting/businesses/{business_uuid}/ledger_accounts/accounts"
  // object_path is "" when there is no GET-by-id endpoint (single_fetch false).
  std::string path;
  std::string object_path;
  // Where the objects sit in an answer. result_envelope true (the accounting
  // API): {"response":{"result":{<single_key>: {...}}}} and, for lists,
  // {"response":{"result":{<list_key>: [...], "page", "pages", "per_page",
  // "total"}}}. false (projects, comments, timetracking, ledger accounts): the
  // key is at the top level, {<single_key>: {...}} / {<list_key>: [...],
  // "meta": {"page", "pages", "per_page", "total"}}; ledger accounts use
  // {"data": {...}} and {"data": [...]}, i.e. single_key = list_key = "data".
  bool result_envelope = true;
  std::string single_key;             // "invoice"
  std::string list_key;               // "invoices"
  std::vector<std::string> includes;  // include[]=... for both GET and list, e.g. "lines"
  bool supports_updated_min = true;   // list accepts search[updated_min]
  bool supports_vis_state = true;     // list accepts search[vis_state]=1
  bool single_fetch = true;           // has a GET-by-id endpoint (journal entry details: no)
  std::string id_path = "id";         // where the object's id is ("vendorid", "uuid", ...)
  // Type of the id column: kBigint for FreshBooks integer ids, kString for
  // uuids (ledger accounts).
  SqlType id_type = SqlType::kBigint;
  // The object's last-modified time (for last-write-wins); its conversion. ""
  // when the object has none: updated_at is then MapContext::synced_at.
  std::string updated_path;
  Conversion updated_conversion = Conversion::kTimestampEastern;
  std::vector<FieldMapping> fields;  // business columns (not the common ones)
  // Child rows (e.g. invoice lines): the array's path in the parent and the
  // child's spec (its own table, fields and id_path). Empty when none.
  std::string child_array_path;
  const EntitySpec* child = nullptr;
  // Set on a child spec only: the column holding the parent's id ("invoice_id"),
  // part of the child table's key. A child has no path of its own.
  std::string parent_key_column;
};

// All entities of DESIGN.md §2 (19 tables counting invoice lines, which are the
// child of "invoice" and not listed here), in a stable order. The first is
// "invoice".
const std::vector<const EntitySpec*>& AllEntities();
// The entity a webhook object name refers to ("invoice" -> invoices, "category"
// -> expense categories), or nullptr (e.g. "recurring", which has no table).
const EntitySpec* EntityForEventObject(const std::string& event_object);
// One of AllEntities() by name ("expense_category"), or nullptr.
const EntitySpec* EntityByName(const std::string& name);
// The table spec (key (account_id, id) - or (account_id, <parent>_id, id) for a
// child - version_column "updated_at", COMMENT naming the source) of `entity`.
// `entity` should be one of AllEntities() or their children (precomputed); any
// other spec is built once and cached by address, so it must outlive its use.
const TableSpec& EntityTable(const EntitySpec& entity);
// Every table the entities write (for provisioning), including child tables, in
// AllEntities() order with each child right after its parent.
std::vector<const TableSpec*> AllEntityTables();

// The list path of `entity` with the placeholders filled in, e.g.
// "/accounting/account/6BApk/invoices/invoices". Values are percent-encoded
// (anything but A-Z a-z 0-9 - . _ ~). The caller provides the identifier the
// entity's scope needs; an empty one is substituted as is (the caller checks
// `scope` before building paths). No query string: includes and filters are the
// caller's.
std::string ListPath(const EntitySpec& entity, const std::string& account_id,
                     const std::string& business_id, const std::string& business_uuid);
// The GET-by-id path, e.g. "/projects/business/6543/project/17"; "" when the
// entity has no single fetch.
std::string ObjectPath(const EntitySpec& entity, const std::string& account_id,
                       const std::string& business_id, const std::string& business_uuid,
                       const std::string& id);

struct MapContext {
  std::string account_id;
  std::string source;       // "webhook" or "sync"
  std::string delivery_id;  // "" for sync (stored as NULL)
  absl::Time synced_at;
};

struct MappedRow {
  const TableSpec* table;
  Row row;
};

// The rows for one fetched object: its entity row, then child rows. is_deleted is
// true when vis_state is 1. Child rows (invoice lines) carry the parent's id in
// their parent key column and the parent's vis_state, is_deleted and updated_at
// (a line has no life of its own); their raw is the line's JSON. A line removed
// from an invoice is not deleted from the lines table by this function.
// Fails with InvalidArgument when `object` is not a JSON object, has no id, or
// a present value cannot be converted (the message names entity, id, field and
// value), and for a child spec (children are mapped through their parent).
absl::StatusOr<std::vector<MappedRow>> MapObject(const EntitySpec& entity,
                                                 const nlohmann::json& object,
                                                 const MapContext& ctx);
// A tombstone for a hard-deleted object (GET answered 404): key columns,
// is_deleted true, vis_state 1, updated_at = ctx.synced_at, raw NULL and the
// business columns NULL. Only the entity row: child rows (invoice lines) are
// left as they are. An integer id is normalised ("007" -> "7"). For top-level
// entities only (a child's key would lack its parent id).
std::vector<MappedRow> TombstoneRow(const EntitySpec& entity, const std::string& id,
                                    const MapContext& ctx);

// Follows a dotted path ("owner.email", "response.result.invoice"; a numeric
// segment indexes an array) into `object`; nullptr when any step is missing.
// Never throws.
const nlohmann::json* JsonAt(const nlohmann::json& object, const std::string& path);

// Converts one JSON value (nullptr or missing -> nullopt). Exposed for tests.
// InvalidArgument names the value (truncated) and what was expected, not the
// entity (MapObject adds that).
absl::StatusOr<std::optional<std::string>> ConvertValue(const nlohmann::json* value,
                                                        Conversion conversion,
                                                        const ColumnSpec& column);
// "YYYY-MM-DD HH:MM:SS" as US/Eastern wall time -> UTC (DST-aware). An
// ambiguous fall-back hour (01:00-01:59 on the first Sunday of November) takes
// the earlier instant (EDT); a skipped spring-forward time (02:00-02:59 on the
// second Sunday of March) is read with the pre-transition offset (EST, -5), so
// "02:30" -> 07:30Z, the instant a clock showing 03:30 EDT names. Fails with
// InvalidArgument on malformed text and FailedPrecondition when the time zone
// database is missing (install the tzdata package).
absl::StatusOr<absl::Time> ParseEasternTimestamp(const std::string& text);

}  // namespace mlc::writer
