// Realistic FreshBooks objects for the fake FreshBooks, tests, the demo and the
// benchmarks: one generator per entity of writer/freshbooks_entities.h, producing
// JSON shaped like the real API's (field names, money objects with string
// amounts, US/Eastern "YYYY-MM-DD HH:MM:SS" accounting timestamps, UTC ones where
// FreshBooks uses UTC, ISO 8601 for projects/time tracking/ledger accounts, both
// `id` and `invoiceid` on invoices, `lines` on invoices, vis_state 0).
//
// Independent of the writer's mapping on purpose: it is written from FRESHBOOKS.md
// and the public API reference, so a mapping that reads the wrong field fails
// tests. Deterministic for a given Rng seed. Thread-compatible.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/time/time.h"

namespace mlc::testing {

// Entity names, as writer/freshbooks_entities.h spells them: "invoice", "payment",
// "bill", "bill_payment", "bill_vendor", "expense", "expense_category", "client",
// "item", "tax", "credit_note", "estimate", "other_income", "ledger_account",
// "journal_entry_detail", "project", "service", "time_entry".
const std::vector<std::string>& SampleEntityNames();

// A new object of `entity` with identifier `id`, created and last updated at `now`.
// References to other objects (clientid, vendorid, invoiceid, categoryid, ...)
// use ids in [1, 50]. Amounts are money objects in `currency`.
nlohmann::json SampleObject(const std::string& entity, int64_t id, absl::Time now,
                            std::mt19937_64& rng, const std::string& currency = "USD");

// Sets the object's last-modified field(s) to `now` in the entity's own format
// (e.g. invoices' "updated" as US/Eastern wall time, bills' "updated_at" as UTC,
// projects' ISO 8601).
void TouchUpdated(const std::string& entity, nlohmann::json& object, absl::Time now);

// Changes some business fields (an amount, a status, a note) as a user editing it
// would, then TouchUpdated.
void MutateSample(const std::string& entity, nlohmann::json& object, absl::Time now,
                  std::mt19937_64& rng);

// The name of the object's id field for the API ("id" for most; the fake also
// keeps "invoiceid" etc. in sync where FreshBooks has both).
std::string SampleIdField(const std::string& entity);

}  // namespace mlc::testing
