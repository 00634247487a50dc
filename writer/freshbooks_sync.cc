#include "writer/freshbooks_sync.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "writer/freshbooks_entities.h"

namespace mlc::writer {
namespace {

using nlohmann::json;

// FreshBooks caps per_page at 100 silently; asking for more would make the page
// arithmetic lie.
constexpr int kMaxPerPage = 100;
// A progress log line every this many pages of one entity.
constexpr int64_t kLogEveryPages = 10;
// A scheduled connection that cannot sync yet is looked at again this often (or
// on Nudge).
constexpr absl::Duration kNotReadyRecheck = absl::Seconds(30);
// Upper bound on one idle wait of the scheduler, so a clock that jumps (a fake
// one in tests, or NTP) is noticed within this.
constexpr absl::Duration kMaxIdleWait = absl::Seconds(30);

std::string WatermarkKey(const std::string& connection_id, const std::string& entity) {
  return absl::StrCat("sync/", connection_id, "/", entity, "/watermark");
}

std::string LastSuccessKey(const std::string& connection_id) {
  return absl::StrCat("sync/", connection_id, "/last_success");
}

std::string FormatDay(absl::Time t) { return absl::FormatTime("%Y-%m-%d", t, absl::UTCTimeZone()); }

// Keeps the code of `status` and says which entity it was about.
absl::Status ForEntity(const std::string& entity, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("sync ", entity, ": ", status.message()));
}

// Reads a paging number that may come as a number or a numeric string.
std::optional<int64_t> PagingNumber(const json& holder, const char* key) {
  if (!holder.is_object()) return std::nullopt;
  auto it = holder.find(key);
  if (it == holder.end()) return std::nullopt;
  if (it->is_number_integer()) return it->get<int64_t>();
  if (it->is_number_unsigned()) return static_cast<int64_t>(it->get<uint64_t>());
  if (it->is_number_float()) return static_cast<int64_t>(it->get<double>());
  if (const auto* s = it->get_ptr<const std::string*>(); s != nullptr) {
    int64_t v = 0;
    if (absl::SimpleAtoi(*s, &v)) return v;
  }
  return std::nullopt;
}

// One page of a list answer.
struct ListPage {
  std::vector<const json*> items;
  // Paging info when the answer had any; `pages` is derived from total and
  // per_page when only those were given.
  std::optional<int64_t> pages;
};

// Finds the list and its paging info in one answer. FreshBooks uses several
// envelopes (FRESHBOOKS.md §4): the classic {"response":{"result":{"<key>":[...],
// "page","pages",...}}}, the projects/time tracking {"<key>":[...],"meta":{...}}
// and the ledger's {"data":[...]}; all are accepted.
absl::StatusOr<ListPage> ParseListPage(const json& body, const std::string& list_key) {
  const json* result = JsonAt(body, "response.result");
  const json* list = nullptr;
  for (const json* holder : {result, &body}) {
    if (holder == nullptr || list != nullptr) continue;
    if (!list_key.empty()) list = JsonAt(*holder, list_key);
    if (list == nullptr) list = JsonAt(*holder, "data");
  }
  ListPage page;
  if (list == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("the list answer has no \"", list_key, "\" (nor \"data\") array"));
  }
  if (list->is_array()) {
    page.items.reserve(list->size());
    for (const json& item : *list) page.items.push_back(&item);
  } else if (list->is_object()) {
    // Some list answers key the objects by id.
    for (const auto& [key, item] : list->items()) page.items.push_back(&item);
  } else if (!list->is_null()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the list answer's \"", list_key, "\" is not an array"));
  }

  std::vector<const json*> paging_holders = {result, JsonAt(body, "meta"), &body};
  if (result != nullptr) paging_holders.push_back(JsonAt(*result, "meta"));
  for (const json* holder : paging_holders) {
    if (holder == nullptr) continue;
    if (std::optional<int64_t> pages = PagingNumber(*holder, "pages"); pages.has_value()) {
      page.pages = *pages;
      break;
    }
    std::optional<int64_t> total = PagingNumber(*holder, "total");
    std::optional<int64_t> per_page = PagingNumber(*holder, "per_page");
    if (total.has_value() && per_page.has_value() && *per_page > 0) {
      page.pages = (*total + *per_page - 1) / *per_page;
      break;
    }
  }
  return page;
}

// The object's id (for logs) from the entity's id path, "" if none.
std::string ObjectId(const EntitySpec& entity, const json& object) {
  const json* v = JsonAt(object, entity.id_path);
  if (v == nullptr) return "";
  if (const auto* s = v->get_ptr<const std::string*>(); s != nullptr) return *s;
  if (v->is_number()) return v->dump();
  return "";
}

// FailedPrecondition when the identity lacks the identifier the entity's scope
// needs (e.g. no business_id for projects).
absl::Status IdentityCovers(const EntitySpec& entity, const FreshBooksIdentity& id) {
  const char* missing = nullptr;
  switch (entity.scope) {
    case EntityScope::kAccount:
      if (id.account_id.empty()) missing = "account_id";
      break;
    case EntityScope::kBusinessUuid:
      if (id.business_uuid.empty()) missing = "business_uuid";
      break;
    case EntityScope::kBusinessId:
      if (id.business_id.empty()) missing = "business_id";
      break;
  }
  if (missing == nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("skipped: the connection's FreshBooks identity has no ", missing,
                   " (learnt at authorization); re-authorize the connection (`mlc authorize`)"));
}

bool IsDeleted(const json& object) {
  std::optional<int64_t> vis = PagingNumber(object, "vis_state");
  return vis.has_value() && *vis == 1;
}

// The percent-encoded query of one list page (brackets encoded, as the SDKs'
// URL encoders do; FreshBooks decodes both forms).
std::string PageQuery(const EntitySpec& entity, int64_t page, int per_page,
                      const std::string& updated_min, bool deleted) {
  std::string q = absl::StrCat("?page=", page, "&per_page=", per_page);
  for (const std::string& include : entity.includes) {
    absl::StrAppend(&q, "&include%5B%5D=", include);
  }
  if (!updated_min.empty()) {
    if (entity.scope == EntityScope::kBusinessId) {
      // The projects, comments and time tracking services filter with
      // updated_since (ISO 8601), as the official SDKs send it.
      absl::StrAppend(&q, "&updated_since=", updated_min, "T00:00:00Z");
    } else {
      absl::StrAppend(&q, "&search%5Bupdated_min%5D=", updated_min);
    }
  }
  if (deleted) absl::StrAppend(&q, "&search%5Bvis_state%5D=1");
  return q;
}

}  // namespace

Syncer::Syncer(CredentialStore* store, Clock* clock, Registry* registry)
    : store_(store), clock_(clock) {
  if (registry != nullptr) {
    objects_ = registry->AddCounter("mlc_sync_objects_total",
                                    "FreshBooks objects written by reconcile/backfill syncs",
                                    {"connection", "entity"});
    runs_ =
        registry->AddCounter("mlc_sync_runs_total", "Sync runs by outcome (ok, partial, failed)",
                             {"connection", "outcome"});
    last_success_ =
        registry->AddGauge("mlc_sync_last_success_timestamp_seconds",
                           "Unix time of the last fully successful sync run", {"connection"});
    running_ =
        registry->AddGauge("mlc_sync_running", "1 while a sync run is in progress", {"connection"});
  }
}

absl::Mutex* Syncer::ConnectionMutex(const std::string& connection_id) {
  absl::MutexLock lock(&mu_);
  std::unique_ptr<absl::Mutex>& m = conn_mu_[connection_id];
  if (m == nullptr) m = std::make_unique<absl::Mutex>();
  return m.get();
}

int64_t Syncer::LastSuccess(const std::string& connection_id) {
  absl::StatusOr<std::optional<std::string>> v = store_->GetState(LastSuccessKey(connection_id));
  if (!v.ok()) {
    log::Warn("sync: cannot read the last success time",
              {{"connection", connection_id}, {"error", v.status().ToString()}});
    return 0;
  }
  int64_t seconds = 0;
  if (!v->has_value() || !absl::SimpleAtoi(**v, &seconds) || seconds < 0) return 0;
  if (last_success_ != nullptr) {
    last_success_->With({connection_id})->Set(static_cast<double>(seconds));
  }
  return seconds;
}

absl::StatusOr<SyncReport> Syncer::Run(const std::string& connection_id, const SyncTarget& target,
                                       const SyncOptions& options) {
  std::vector<const EntitySpec*> entities;
  if (options.entities.empty()) {
    entities = AllEntities();
  } else {
    std::set<std::string> seen;
    for (const std::string& name : options.entities) {
      const EntitySpec* spec = EntityByName(name);
      if (spec == nullptr) {
        std::vector<std::string> known;
        for (const EntitySpec* e : AllEntities()) known.push_back(e->name);
        return absl::InvalidArgumentError(absl::StrCat("sync: unknown entity \"", name,
                                                       "\"; known: ", absl::StrJoin(known, ", ")));
      }
      if (seen.insert(name).second) entities.push_back(spec);
    }
  }
  if (target.client == nullptr || target.sink == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat("sync: connection \"", connection_id,
                                                      "\" has no FreshBooks client or no sink"));
  }
  const bool all_entities = entities.size() == AllEntities().size();

  absl::MutexLock run_lock(ConnectionMutex(connection_id));
  Gauge* running = running_ == nullptr ? nullptr : running_->With({connection_id});
  if (running != nullptr) running->Set(1);
  const absl::Time run_start = clock_->Now();
  log::Info("sync: run started", {{"connection", connection_id},
                                  {"entities", static_cast<int64_t>(entities.size())},
                                  {"full", options.full}});

  SyncReport report;
  int failed = 0;
  for (const EntitySpec* entity : entities) {
    if (options.cancelled && options.cancelled()) {
      EntitySyncResult r;
      r.entity = entity->name;
      r.status = absl::CancelledError(absl::StrCat("sync ", entity->name, ": run cancelled"));
      report.entities.push_back(std::move(r));
      ++failed;
      continue;
    }
    report.entities.push_back(SyncEntity(connection_id, target, *entity, options, run_start));
    if (!report.entities.back().status.ok()) ++failed;
  }
  const absl::Time run_end = clock_->Now();
  report.took = run_end - run_start;

  std::string outcome = "ok";
  if (failed > 0) outcome = failed == static_cast<int>(entities.size()) ? "failed" : "partial";
  if (failed == 0 && all_entities) {
    const int64_t seconds = absl::ToUnixSeconds(run_end);
    absl::Status s = store_->PutState(LastSuccessKey(connection_id), absl::StrCat(seconds));
    if (!s.ok()) {
      log::Error("sync: cannot record the run's success; the next run starts early",
                 {{"connection", connection_id}, {"error", s.ToString()}});
    } else if (last_success_ != nullptr) {
      last_success_->With({connection_id})->Set(static_cast<double>(seconds));
    }
  }
  if (runs_ != nullptr) runs_->With({connection_id, outcome})->Inc();
  if (running != nullptr) running->Set(0);

  int64_t objects = 0;
  int64_t skipped = 0;
  for (const EntitySyncResult& r : report.entities) {
    objects += r.objects;
    skipped += r.skipped;
  }
  log::Write(failed == 0 ? log::Level::kInfo : log::Level::kWarn, "sync: run finished",
             {{"connection", connection_id},
              {"outcome", outcome},
              {"objects", objects},
              {"skipped", skipped},
              {"failed_entities", failed},
              {"seconds", absl::ToDoubleSeconds(report.took)}});
  return report;
}

EntitySyncResult Syncer::SyncEntity(const std::string& connection_id, const SyncTarget& target,
                                    const EntitySpec& entity, const SyncOptions& options,
                                    absl::Time run_start) {
  EntitySyncResult result;
  result.entity = entity.name;
  const FreshBooksIdentity& id = target.identity;
  if (absl::Status ready = IdentityCovers(entity, id); !ready.ok()) {
    result.status = ForEntity(entity.name, ready);
    log::Error("sync: entity skipped", {{"connection", connection_id},
                                        {"entity", entity.name},
                                        {"error", std::string(result.status.message())}});
    return result;
  }

  const std::string base = ListPath(entity, id.account_id, id.business_id, id.business_uuid);
  const std::string watermark_key = WatermarkKey(connection_id, entity.name);
  if (entity.supports_updated_min && !options.full) {
    absl::StatusOr<std::optional<std::string>> mark = store_->GetState(watermark_key);
    if (!mark.ok()) {
      result.status = ForEntity(entity.name, mark.status());
      return result;
    }
    if (mark->has_value()) {
      absl::Time day;
      std::string err;
      if (absl::ParseTime("%Y-%m-%d", **mark, absl::UTCTimeZone(), &day, &err)) {
        result.updated_min = FormatDay(day - absl::Hours(24));
      } else {
        log::Warn("sync: ignoring a malformed watermark; reading everything",
                  {{"connection", connection_id}, {"entity", entity.name}, {"watermark", **mark}});
      }
    }
  }

  const int per_page = std::clamp(options.per_page, 1, kMaxPerPage);
  const MapContext ctx{id.account_id, "sync", "", run_start};
  Counter* objects_counter =
      objects_ == nullptr ? nullptr : objects_->With({connection_id, entity.name});

  std::vector<bool> passes = {false};
  if (entity.supports_vis_state) passes.push_back(true);
  for (bool deleted_pass : passes) {
    for (int64_t page = 1;; ++page) {
      if (options.cancelled && options.cancelled()) {
        result.status = absl::CancelledError(absl::StrCat("sync ", entity.name, ": run cancelled"));
        return result;
      }
      absl::StatusOr<FreshBooksResponse> answer = target.client->Call(
          "GET", base + PageQuery(entity, page, per_page, result.updated_min, deleted_pass));
      if (!answer.ok()) {
        result.status = ForEntity(entity.name, answer.status());
        break;
      }
      absl::StatusOr<ListPage> list = ParseListPage(answer->body, entity.list_key);
      if (!list.ok()) {
        result.status = ForEntity(
            entity.name,
            absl::Status(list.status().code(), absl::StrCat("GET ", base, " page ", page, ": ",
                                                            list.status().message())));
        break;
      }

      // Rows grouped per table in first-seen order (the entity's table before its
      // children's), one upsert per table and page.
      std::vector<std::pair<const TableSpec*, std::vector<Row>>> by_table;
      int64_t page_objects = 0;
      int64_t page_deleted = 0;
      for (const json* object : list->items) {
        absl::StatusOr<std::vector<MappedRow>> rows;
        try {
          rows = MapObject(entity, *object, ctx);
        } catch (const std::exception& e) {
          rows = absl::InvalidArgumentError(absl::StrCat("mapping threw: ", e.what()));
        }
        if (!rows.ok()) {
          ++result.skipped;
          log::Error("sync: object skipped (cannot map it)",
                     {{"connection", connection_id},
                      {"entity", entity.name},
                      {"object_id", ObjectId(entity, *object)},
                      {"error", std::string(rows.status().message())}});
          continue;
        }
        for (MappedRow& mapped : *rows) {
          auto it = std::find_if(by_table.begin(), by_table.end(),
                                 [&](const auto& t) { return t.first == mapped.table; });
          if (it == by_table.end()) {
            by_table.emplace_back(mapped.table, std::vector<Row>());
            it = std::prev(by_table.end());
          }
          it->second.push_back(std::move(mapped.row));
        }
        ++page_objects;
        if (IsDeleted(*object)) ++page_deleted;
      }
      absl::Status written = absl::OkStatus();
      for (const auto& [table, rows] : by_table) {
        written = target.sink->Upsert(*table, rows);
        if (!written.ok()) {
          written =
              absl::Status(written.code(), absl::StrCat("sink ", target.sink->Name(), " table ",
                                                        table->name, ": ", written.message()));
          break;
        }
      }
      if (!written.ok()) {
        result.status = ForEntity(entity.name, written);
        break;
      }
      result.objects += page_objects;
      result.deleted += page_deleted;
      ++result.pages;
      if (objects_counter != nullptr) objects_counter->Inc(static_cast<double>(page_objects));
      if (result.pages % kLogEveryPages == 0) {
        log::Info("sync: progress", {{"connection", connection_id},
                                     {"entity", entity.name},
                                     {"pages", result.pages},
                                     {"objects", result.objects}});
      }
      if (list->items.empty() || !list->pages.has_value() || page >= *list->pages) break;
    }
    if (!result.status.ok()) break;
  }

  if (result.status.ok()) {
    absl::Status s = store_->PutState(watermark_key, FormatDay(run_start));
    if (!s.ok()) result.status = ForEntity(entity.name, s);
  }
  if (result.status.ok()) {
    log::Info("sync: entity done", {{"connection", connection_id},
                                    {"entity", entity.name},
                                    {"objects", result.objects},
                                    {"deleted", result.deleted},
                                    {"skipped", result.skipped},
                                    {"pages", result.pages},
                                    {"updated_min", result.updated_min}});
  } else {
    // The watermark stays where it was, so the next run repeats this window.
    log::Error("sync: entity failed", {{"connection", connection_id},
                                       {"entity", entity.name},
                                       {"objects", result.objects},
                                       {"pages", result.pages},
                                       {"error", std::string(result.status.message())}});
  }
  return result;
}

// ---------------------------------------------------------------------------
// SyncScheduler

SyncScheduler::SyncScheduler(Syncer* syncer, std::vector<Entry> entries, TargetFor target_for,
                             absl::Duration first_delay)
    : syncer_(syncer),
      entries_(std::move(entries)),
      target_for_(std::move(target_for)),
      first_delay_(first_delay) {}

SyncScheduler::~SyncScheduler() { Stop(); }

void SyncScheduler::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Loop(); });
}

void SyncScheduler::Nudge() {
  absl::MutexLock lock(&mu_);
  nudged_ = true;
}

void SyncScheduler::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cancel_.store(true);
  }
  if (thread_.joinable()) thread_.join();
}

void SyncScheduler::Loop() {
  const Clock* clock = syncer_->clock();
  const absl::Time start = clock->Now();
  struct State {
    absl::Time due;
    absl::Time not_ready_until = absl::InfinitePast();
  };
  std::vector<State> states;
  states.reserve(entries_.size());
  for (const Entry& e : entries_) {
    absl::Time due = start + first_delay_;
    const int64_t last = syncer_->LastSuccess(e.connection_id);
    if (last > 0) due = std::max(due, absl::FromUnixSeconds(last) + e.interval);
    states.push_back(State{due});
  }

  SyncOptions options;
  options.cancelled = [this] { return cancel_.load(); };
  while (true) {
    bool nudged = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      nudged = nudged_;
      nudged_ = false;
    }
    absl::Time wake = clock->Now() + kMaxIdleWait;
    for (size_t i = 0; i < entries_.size(); ++i) {
      const Entry& entry = entries_[i];
      State& st = states[i];
      absl::Time now = clock->Now();
      if (nudged) st.not_ready_until = absl::InfinitePast();
      if (now < st.due) {
        wake = std::min(wake, st.due);
        continue;
      }
      if (now < st.not_ready_until) {
        wake = std::min(wake, st.not_ready_until);
        continue;
      }
      std::optional<SyncTarget> target = target_for_(entry.connection_id);
      if (!target.has_value()) {
        st.not_ready_until = now + kNotReadyRecheck;
        wake = std::min(wake, st.not_ready_until);
        continue;
      }
      absl::StatusOr<SyncReport> report = syncer_->Run(entry.connection_id, *target, options);
      if (!report.ok()) {
        log::Error("sync: scheduled run failed",
                   {{"connection", entry.connection_id}, {"error", report.status().ToString()}});
      }
      if (cancel_.load()) return;
      // A failed run is repeated after the interval too: watermarks did not move
      // for the failed entities, so nothing is skipped, and a permanent error
      // (a missing scope) does not hammer FreshBooks.
      st.due = clock->Now() + entry.interval;
      wake = std::min(wake, st.due);
    }
    absl::MutexLock lock(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || nudged_; };
    const absl::Duration wait = std::clamp(wake - clock->Now(), absl::ZeroDuration(), kMaxIdleWait);
    mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
  }
}

}  // namespace mlc::writer
