#include "writer/freshbooks_hydrator.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"

namespace mlc::writer {
namespace {

// The object in a single-object answer: {"response":{"result":{"invoice":{}}}}
// for accounting resources; other namespaces put it at the top level.
const nlohmann::json* SingleObject(const nlohmann::json& body, const std::string& key) {
  for (const std::string& path : {"response.result." + key, key}) {
    if (const nlohmann::json* o = JsonAt(body, path); o != nullptr && o->is_object()) return o;
  }
  return nullptr;
}

struct Group {
  std::string connection_id;
  const EntitySpec* entity = nullptr;
  std::string object_id;
  FreshBooksClient* client = nullptr;
  FreshBooksIdentity identity;
  std::vector<size_t> members;  // indexes into the batch
  // Results.
  absl::Status status;
  std::optional<std::string> data;
  std::vector<MappedRow> rows;
  int http_status = 0;
  absl::Duration took;
};

void Fetch(Group& g, absl::Time now, const std::string& delivery_id) {
  std::string path = ObjectPath(*g.entity, g.identity.account_id, g.identity.business_id,
                                g.identity.business_uuid, g.object_id);
  for (size_t i = 0; i < g.entity->includes.size(); ++i) {
    absl::StrAppend(&path, i == 0 ? "?" : "&", "include%5B%5D=", g.entity->includes[i]);
  }
  const absl::Time t0 = absl::Now();
  absl::StatusOr<FreshBooksResponse> r = g.client->Call("GET", path);
  g.took = absl::Now() - t0;
  MapContext ctx{g.identity.account_id, "webhook", delivery_id, now};
  if (!r.ok()) {
    if (absl::IsNotFound(r.status())) {
      // Gone for good (hard-deleted): remember that it was deleted.
      g.http_status = 404;
      g.rows = TombstoneRow(*g.entity, g.object_id, ctx);
      return;
    }
    g.status = r.status();
    return;
  }
  g.http_status = r->http_status;
  const nlohmann::json* object = SingleObject(r->body, g.entity->single_key);
  if (object == nullptr) {
    g.status = absl::InvalidArgumentError(absl::StrCat("FreshBooks answered GET ", g.entity->name,
                                                       " ", g.object_id, " without a \"",
                                                       g.entity->single_key, "\" object"));
    return;
  }
  absl::StatusOr<std::vector<MappedRow>> rows = MapObject(*g.entity, *object, ctx);
  if (!rows.ok()) {
    g.status = rows.status();
    return;
  }
  g.rows = std::move(*rows);
  g.data = object->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

FreshBooksHydrator::FreshBooksHydrator(FreshBooksConnections* connections, Clock* clock,
                                       int parallelism, HydratorMetrics metrics)
    : connections_(connections),
      clock_(clock),
      parallelism_(std::max(1, parallelism)),
      metrics_(metrics) {}

std::vector<Hydrated> FreshBooksHydrator::Hydrate(const std::vector<Delivery>& batch) {
  std::vector<Hydrated> out(batch.size());
  const absl::Time now = clock_->Now();
  std::map<std::tuple<std::string, std::string, std::string>, Group> groups;
  struct ConnectionState {
    std::optional<FreshBooksIdentity> identity;
    std::optional<std::string> reauth;
  };
  std::map<std::string, ConnectionState> states;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Delivery& d = batch[i];
    if (d.kind != "event" || !connections_->OAuthConfigured(d.connection_id)) continue;
    const EntitySpec* entity = EntityForEventObject(d.object_type);
    if (entity == nullptr) continue;  // no table for it: data NULL
    FreshBooksClient* client = connections_->Client(d.connection_id);
    // Both read the credential store: once per connection and batch, not per event.
    auto [state_it, fresh] = states.try_emplace(d.connection_id);
    ConnectionState& state = state_it->second;
    if (fresh) {
      state.identity = connections_->Identity(d.connection_id);
      state.reauth = client->NeedsReauthorization();
    }
    const std::optional<FreshBooksIdentity>& identity = state.identity;
    const std::optional<std::string>& reauth = state.reauth;
    if (!identity.has_value() || reauth.has_value()) {
      out[i].status = absl::UnauthenticatedError(
          reauth.has_value()
              ? absl::StrCat("connection \"", d.connection_id, "\" needs re-authorization (",
                             *reauth,
                             "); run `mlc authorize "
                             "--connection ",
                             d.connection_id, "` - events wait until then")
              : absl::StrCat("connection \"", d.connection_id,
                             "\" is not authorized yet; run `mlc authorize --connection ",
                             d.connection_id, "` - events wait until then"));
      if (metrics_.fetches != nullptr) metrics_.fetches->With({d.connection_id, "waiting"})->Inc();
      continue;
    }
    if (d.account_id != identity->account_id) {
      out[i].status = absl::FailedPreconditionError(
          absl::StrCat("the event is for FreshBooks account ", d.account_id, " but connection \"",
                       d.connection_id, "\" is authorized for account ", identity->account_id));
      continue;
    }
    Group& g = groups[{d.connection_id, entity->name, d.object_id}];
    if (g.members.empty()) {
      g.connection_id = d.connection_id;
      g.entity = entity;
      g.object_id = d.object_id;
      g.client = client;
      g.identity = *identity;
    }
    g.members.push_back(i);
  }
  if (groups.empty()) return out;

  std::vector<Group*> work;
  work.reserve(groups.size());
  for (auto& [key, g] : groups) work.push_back(&g);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k = next++; k < work.size(); k = next++) {
      Group& g = *work[k];
      Fetch(g, now, batch[g.members.back()].delivery_id);
    }
  };
  const size_t n = std::min(work.size(), static_cast<size_t>(parallelism_));
  std::vector<std::thread> threads;
  threads.reserve(n > 0 ? n - 1 : 0);
  for (size_t t = 1; t < n; ++t) threads.emplace_back(worker);
  worker();
  for (std::thread& t : threads) t.join();

  const absl::Time done = clock_->Now();
  for (Group* g : work) {
    const char* outcome = !g->status.ok() ? "error" : (g->http_status == 404 ? "not_found" : "ok");
    if (metrics_.fetches != nullptr) metrics_.fetches->With({g->connection_id, outcome})->Inc();
    if (metrics_.coalesced != nullptr && g->members.size() > 1) {
      metrics_.coalesced->Inc(static_cast<double>(g->members.size() - 1));
    }
    if (!g->status.ok()) {
      log::Warn("hydrate: fetch failed", {{"connection", g->connection_id},
                                          {"entity", g->entity->name},
                                          {"object_id", g->object_id},
                                          {"error", g->status.ToString()}});
    }
    for (size_t m = 0; m < g->members.size(); ++m) {
      const size_t i = g->members[m];
      Hydrated& h = out[i];
      h.status = g->status;
      h.data = g->data;
      if (m + 1 == g->members.size()) h.rows = std::move(g->rows);
      h.attempt.delivery_id = batch[i].delivery_id;
      h.attempt.stage = "hydrate";
      h.attempt.outcome = g->status.ok() ? "ok" : "error";
      h.attempt.http_status = g->http_status;
      if (g->http_status == 404) h.attempt.error = "object not found: recorded as deleted";
      if (m > 0) {
        absl::StrAppend(&h.attempt.error, h.attempt.error.empty() ? "" : "; ",
                        "served by the same fetch as ", batch[g->members.front()].delivery_id);
      }
      h.attempt.duration = g->took;
      h.attempt.at = done;
    }
  }
  return out;
}

}  // namespace mlc::writer
