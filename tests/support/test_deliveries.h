// A journal delivery as the ingest service would append it, for the writer's unit
// tests (journal, retention, pipeline). Header-only: mlc_testing does not link the
// writer library, the tests that use this do.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "writer/journal.h"

namespace mlc::testing {

// An "invoice.update" event of connection "acme" with the id `id`, received at
// `received_at`, pending and available at once; its payload is about the size of
// a real delivery's form fields (the same for every id).
inline writer::Delivery TestDelivery(const std::string& id, absl::Time received_at) {
  writer::Delivery d;
  d.delivery_id = id;
  d.connection_id = "acme";
  d.kind = "event";
  d.event_type = "invoice.update";
  d.object_type = "invoice";
  d.object_id = absl::StrCat("obj-", id);
  d.account_id = "6BApk";
  d.business_id = "77";
  d.identity_id = "88";
  d.user_id = "99";
  d.received_at = received_at;
  d.payload = R"([["name","invoice.update"],["object_id","1"],["account_id","6BApk"],)"
              R"(["business_id","77"],["identity_id","88"],["user_id","99"],)"
              R"(["system","https://my.freshbooks.com"]])";
  d.status = writer::DeliveryStatus::kPending;
  d.available_at = absl::InfinitePast();  // "now", as the ingest service asks
  return d;
}

// The audit rows the pipeline records when `ids` are written: one "write ok"
// attempt of 40 ms each, at `at`.
inline std::vector<writer::Attempt> TestWriteAttempts(const std::vector<std::string>& ids,
                                                      absl::Time at) {
  std::vector<writer::Attempt> attempts;
  attempts.reserve(ids.size());
  for (const std::string& id : ids) {
    writer::Attempt a;
    a.delivery_id = id;
    a.stage = "write";
    a.outcome = "ok";
    a.duration = absl::Milliseconds(40);
    a.at = at;
    attempts.push_back(std::move(a));
  }
  return attempts;
}

}  // namespace mlc::testing
