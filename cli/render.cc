// The human renderings of the journal and health answers of the Admin API
// (deliveries, one delivery, replay, dead letters, stats, check), declared in
// cli/commands.h next to the renderings of the other commands.
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "cli/commands.h"
#include "cli/delivery_filter.h"
#include "cli/table.h"

namespace mlc::cli {
namespace {

namespace v1 = ::mlconnector::v1;

// An error in a table cell: one line, and short enough to leave the table readable
// (`mlc show` prints it whole).
constexpr size_t kErrorCellWidth = 60;
// Ids `mlc replay` lists; --json has them all (up to the 1000 the writer returns).
constexpr int kReplayIdsShown = 20;

std::string Plural(int64_t n, const char* one, const char* many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

// Runs of whitespace (newlines included) as one space.
std::string CollapseSpace(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (absl::ascii_isspace(u) || u < 0x20 || u == 0x7F) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// Control characters made visible, so a field value stays on its line.
std::string EscapeControl(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      absl::StrAppendFormat(&out, "\\x%02x", u);
    } else {
      out += c;
    }
  }
  return out;
}

// "key  value" lines with the values aligned; a multi-line value continues under
// its first line.
std::string RenderFields(const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, key.size());
  std::string out;
  const std::string indent(width + 2, ' ');
  for (const auto& [key, value] : fields) {
    absl::StrAppend(
        &out, key, std::string(width - key.size() + 2, ' '),
        absl::StrReplaceAll(absl::StripTrailingAsciiWhitespace(value), {{"\n", "\n" + indent}}),
        "\n");
  }
  return out;
}

std::string TimeOrDash(const google::protobuf::Timestamp& ts, absl::Time now) {
  return IsSet(ts) ? FormatTime(FromTimestamp(ts), now) : "-";
}

std::string AgoOr(const google::protobuf::Timestamp& ts, absl::Time now, const char* otherwise) {
  return IsSet(ts) ? FormatAgo(FromTimestamp(ts), now) : otherwise;
}

std::string EventOf(const v1::Delivery& d) {
  if (!d.event_type().empty()) return d.event_type();
  return OrDash(d.kind());
}

std::string DeliveriesTable(const google::protobuf::RepeatedPtrField<v1::Delivery>& deliveries,
                            absl::Time now) {
  Table table({{"DELIVERY"},
               {"CONNECTION"},
               {"EVENT"},
               {"OBJECT"},
               {"STATUS"},
               {"ATTEMPTS", Table::Align::kRight},
               {"RECEIVED"},
               {"ERROR"}});
  for (const v1::Delivery& d : deliveries) {
    table.AddRow({d.delivery_id(), d.connection_id(), EventOf(d), OrDash(d.object_id()), d.status(),
                  absl::StrCat(d.attempts()), AgoOr(d.received_at(), now, "-"),
                  Truncate(CollapseSpace(d.last_error()), kErrorCellWidth)});
  }
  return table.Render();
}

// The payload's form fields, one "name = value" line each.
std::string RenderPayload(const v1::Delivery& d) {
  if (d.payload().empty()) {
    return absl::StrCat("payload: none stored",
                        d.kind() == "handshake" ? " (a handshake's verifier is never stored)" : "",
                        "\n");
  }
  const nlohmann::json fields = nlohmann::json::parse(d.payload(), nullptr, false);
  bool pairs = fields.is_array();
  if (pairs) {
    for (const nlohmann::json& f : fields) {
      if (!f.is_array() || f.size() != 2 || !f[0].is_string()) pairs = false;
    }
  }
  if (!pairs) {
    return absl::StrCat("payload (not a list of [name, value] pairs):\n  ",
                        EscapeControl(d.payload()), "\n");
  }
  std::string out = "payload:\n";
  for (const nlohmann::json& f : fields) {
    const nlohmann::json& value = f[1];
    absl::StrAppend(&out, "  ", EscapeControl(f[0].get<std::string>()), " = ",
                    EscapeControl(value.is_string() ? value.get<std::string>() : value.dump()),
                    "\n");
  }
  return out;
}

std::string AttemptsTable(const google::protobuf::RepeatedPtrField<v1::Attempt>& attempts) {
  if (attempts.empty()) return "attempts: none recorded\n";
  Table table({{"AT"},
               {"STAGE"},
               {"OUTCOME"},
               {"HTTP", Table::Align::kRight},
               {"DURATION", Table::Align::kRight},
               {"ERROR"}});
  for (const v1::Attempt& a : attempts) {
    table.AddRow({IsSet(a.at()) ? absl::FormatTime("%Y-%m-%d %H:%M:%E3S UTC", FromTimestamp(a.at()),
                                                   absl::UTCTimeZone())
                                : "-",
                  a.stage(), a.outcome(),
                  a.http_status() == 0 ? "-" : absl::StrCat(a.http_status()),
                  FormatMillis(a.duration_ms()), CollapseSpace(a.error())});
  }
  return absl::StrCat("attempts (oldest first):\n", table.Render());
}

}  // namespace

std::string RenderDeliveries(const v1::ListDeliveriesResponse& response, absl::Time now,
                             const std::string& more_command) {
  std::string out = response.deliveries().empty() ? "no deliveries match\n"
                                                  : DeliveriesTable(response.deliveries(), now);
  if (!response.next_page_token().empty()) {
    absl::StrAppend(&out, "more: ", more_command.empty() ? "mlc deliveries" : more_command,
                    " --page-token ", ShellQuote(response.next_page_token()), "\n");
  }
  return out;
}

std::string RenderDelivery(const v1::GetDeliveryResponse& response, absl::Time now) {
  const v1::Delivery& d = response.delivery();
  std::string object = d.object_id();
  if (!d.object_type().empty()) {
    object = object.empty() ? d.object_type() : absl::StrCat(d.object_type(), " ", object);
  }
  std::vector<std::pair<std::string, std::string>> fields = {
      {"delivery", d.delivery_id()},
      {"connection", d.connection_id()},
      {"kind", OrDash(d.kind())},
      {"event", OrDash(d.event_type())},
      {"object", OrDash(object)},
      {"account", OrDash(d.account_id())},
      {"business", OrDash(d.business_id())},
      {"identity", OrDash(d.identity_id())},
      {"user", OrDash(d.user_id())},
      {"status", d.status()},
      {"attempts", absl::StrCat(d.attempts(), " failed")},
      {"replays", absl::StrCat(d.replays())},
      {"received", TimeOrDash(d.received_at(), now)},
      {"journaled", TimeOrDash(d.journaled_at(), now)},
  };
  if (IsSet(d.next_attempt_at())) {
    fields.emplace_back("next attempt", FormatTime(FromTimestamp(d.next_attempt_at()), now));
  }
  if (IsSet(d.finished_at())) {
    fields.emplace_back("finished", FormatTime(FromTimestamp(d.finished_at()), now));
  }
  if (!d.last_error().empty()) {
    // Whole, on as many lines as it has; other control characters made visible.
    std::vector<std::string> lines = absl::StrSplit(d.last_error(), '\n');
    for (std::string& line : lines) line = EscapeControl(line);
    fields.emplace_back("last error", absl::StrJoin(lines, "\n"));
  }
  std::string out = RenderFields(fields);
  absl::StrAppend(&out, "\n", RenderPayload(d), "\n", AttemptsTable(response.attempts()));
  if (d.status() == "dead") {
    absl::StrAppend(&out, "\nreplay it once the cause is fixed: mlc replay ",
                    ShellQuote(d.delivery_id()), "\n");
  }
  return out;
}

std::string RenderReplay(const v1::ReplayResponse& response) {
  std::string out;
  const int64_t skipped = response.skipped_size();
  const int64_t replayable = std::max<int64_t>(0, response.matched() - skipped);
  const std::string skipped_text = skipped == 0 ? "" : absl::StrCat(", ", skipped, " skipped");
  if (response.dry_run()) {
    absl::StrAppend(&out, "dry run: nothing was changed.\n", "matched ",
                    Plural(response.matched(), "delivery", "deliveries"), "; ", replayable,
                    " would be replayed", skipped_text, ".\n");
  } else {
    absl::StrAppend(&out, "matched ", Plural(response.matched(), "delivery", "deliveries"),
                    "; replayed ", response.replayed(), skipped_text, ".\n");
    if (response.replayed() > 0) {
      absl::StrAppend(&out,
                      "The replayed deliveries are pending again; the pipeline writes them "
                      "shortly (see: mlc deliveries --status pending).\n");
    }
  }
  const int ids = response.delivery_ids_size();
  if (ids > 0) {
    const int shown = std::min(ids, kReplayIdsShown);
    if (shown == response.matched()) {
      absl::StrAppend(&out, "ids:\n");
    } else {
      absl::StrAppend(&out, "ids (the first ", shown, " of ", response.matched(), "):\n");
    }
    for (int i = 0; i < shown; ++i) absl::StrAppend(&out, "  ", response.delivery_ids(i), "\n");
    if (ids > shown) {
      absl::StrAppend(&out, "  ... and ", ids - shown, " more (--json lists ",
                      ids == response.matched() ? "them all" : "up to 1000", ")\n");
    }
  }
  if (skipped > 0) {
    absl::StrAppend(&out, "skipped (not replayable):\n");
    for (const std::string& s : response.skipped()) absl::StrAppend(&out, "  ", s, "\n");
  }
  if (!response.not_found().empty()) {
    absl::StrAppend(&out, "not found:\n");
    for (const std::string& id : response.not_found()) absl::StrAppend(&out, "  ", id, "\n");
  }
  if (response.truncated()) {
    absl::StrAppend(
        &out, "truncated: more deliveries match than --limit (default 1000); ",
        response.dry_run() ? "a real run would replay only these" : "only these were replayed",
        ". Raise --limit (at most 100000) or narrow the filter.\n");
  }
  if (response.dry_run() && replayable > 0) {
    absl::StrAppend(&out, "Run the same command without --dry-run to replay ",
                    replayable == 1 ? "it" : "them", ".\n");
  }
  return out;
}

std::string RenderDeadLetters(const v1::GetStatsResponse& stats,
                              const v1::ListDeliveriesResponse& recent, absl::Time now) {
  int64_t dead = 0;
  std::vector<std::string> with_dead;
  Table reasons({{"CONNECTION"}, {"COUNT", Table::Align::kRight}, {"LATEST"}, {"REASON"}});
  for (const v1::ConnectionStats& c : stats.connections()) {
    dead += c.dead();
    if (c.dead() > 0 || !c.dead_letters().empty()) with_dead.push_back(c.connection_id());
    for (const v1::DeadLetterReason& r : c.dead_letters()) {
      reasons.AddRow({c.connection_id(), absl::StrCat(r.count()), AgoOr(r.latest(), now, "-"),
                      OrDash(CollapseSpace(r.reason()))});
    }
  }
  if (with_dead.empty()) {
    if (stats.connections_size() == 1) {
      return absl::StrCat("no dead letters in connection ", stats.connections(0).connection_id(),
                          "\n");
    }
    return "no dead letters\n";
  }
  std::string out = Plural(dead, "dead letter", "dead letters");
  if (reasons.rows() > 0) {
    absl::StrAppend(&out, ", by reason:\n", reasons.Render());
  } else {
    absl::StrAppend(&out, "\n");
  }
  if (!recent.deliveries().empty()) {
    absl::StrAppend(&out, "\nthe newest (mlc show DELIVERY for the details):\n",
                    DeliveriesTable(recent.deliveries(), now));
    if (recent.deliveries_size() < dead || !recent.next_page_token().empty()) {
      absl::StrAppend(&out, "(", recent.deliveries_size(), " of ", dead,
                      " shown; all of them: mlc deliveries --status dead",
                      with_dead.size() == 1 ? " --connection " + ShellQuote(with_dead[0]) : "",
                      " --all)\n");
    }
  }
  absl::StrAppend(&out,
                  "\nReplay them once the cause is fixed (--error TEXT picks one reason, "
                  "--dry-run shows what would be replayed):\n");
  for (const std::string& id : with_dead) {
    absl::StrAppend(&out, "  mlc replay --status dead --connection ", ShellQuote(id), "\n");
  }
  return out;
}

std::string RenderStats(const v1::GetStatsResponse& response, absl::Time now) {
  std::string out;
  int64_t dead = 0;
  if (response.connections().empty()) {
    out = "no connections\n";
  } else {
    Table table({{"CONNECTION"},
                 {"PENDING", Table::Align::kRight},
                 {"RETRYING", Table::Align::kRight},
                 {"WRITTEN", Table::Align::kRight},
                 {"DEAD", Table::Align::kRight},
                 {"HANDSHAKES", Table::Align::kRight},
                 {"OLDEST PENDING"},
                 {"LAST WRITTEN"},
                 {"RECEIVED 1H", Table::Align::kRight},
                 {"WRITTEN 1H", Table::Align::kRight}});
    for (const v1::ConnectionStats& c : response.connections()) {
      dead += c.dead();
      table.AddRow({c.connection_id(), absl::StrCat(c.pending()), absl::StrCat(c.retrying()),
                    absl::StrCat(c.written()), absl::StrCat(c.dead()), absl::StrCat(c.handshakes()),
                    AgoOr(c.oldest_pending_received_at(), now, "-"),
                    AgoOr(c.last_written_at(), now, "never"), absl::StrCat(c.received_last_hour()),
                    absl::StrCat(c.written_last_hour())});
    }
    out = table.Render();
  }
  std::string compaction = IsSet(response.last_compaction())
                               ? FormatTime(FromTimestamp(response.last_compaction()), now)
                               : "never";
  if (response.compacted_total() > 0) {
    absl::StrAppend(&compaction, "; ", Plural(response.compacted_total(), "delivery", "deliveries"),
                    " removed since the writer started");
  }
  absl::StrAppend(
      &out, "\n",
      RenderFields({{"journal size", FormatBytes(response.journal_bytes())},
                    {"audit retention", response.audit_retention_days() > 0
                                            ? Plural(response.audit_retention_days(), "day", "days")
                                            : "off (kept forever)"},
                    {"last compaction", compaction}}));
  if (dead > 0) {
    absl::StrAppend(&out, "\n", Plural(dead, "dead letter", "dead letters"),
                    ": see mlc dead-letters\n");
  }
  return out;
}

std::string RenderCheck(const v1::CheckConnectionResponse& response) {
  Table table({{"SYSTEM"}, {"STEP"}, {"STATUS"}, {"DETAIL"}});
  std::string fixes;
  std::vector<std::pair<std::string, int>> counts;  // status -> steps, in first-seen order
  bool failed = !response.ok();
  for (const v1::CheckStep& s : response.steps()) {
    table.AddRow({s.system(), s.name(), s.status(), CollapseSpace(s.detail())});
    if (s.status() == "failed") failed = true;
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& c) { return c.first == s.status(); });
    if (it == counts.end()) {
      counts.emplace_back(s.status(), 1);
    } else {
      ++it->second;
    }
    if (s.status() != "ok" && s.status() != "skipped" && !s.fix().empty()) {
      absl::StrAppend(
          &fixes, "  ", s.system(), " ", s.name(), " (", s.status(), "): ",
          absl::StrReplaceAll(absl::StripTrailingAsciiWhitespace(s.fix()), {{"\n", "\n    "}}),
          "\n");
    }
  }
  std::string out = response.steps().empty() ? "no steps reported\n" : table.Render();
  if (!fixes.empty()) absl::StrAppend(&out, "\nto fix:\n", fixes);
  std::vector<std::string> parts;
  parts.reserve(counts.size());
  for (const auto& [status, n] : counts) parts.push_back(absl::StrCat(n, " ", status));
  absl::StrAppend(
      &out, "\n",
      response.connection_id().empty() ? "check" : "connection " + response.connection_id(), ": ",
      failed ? "FAILED" : "OK", " (", Plural(response.steps_size(), "step", "steps"),
      parts.empty() ? "" : ": ", absl::StrJoin(parts, ", "), ")\n");
  return out;
}

}  // namespace mlc::cli
