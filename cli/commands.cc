#include "cli/commands.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/admin_client.h"
#include "cli/delivery_filter.h"
#include "cli/flags.h"
#include "cli/send_webhook.h"
#include "cli/table.h"

namespace mlc::cli {
namespace {

using mlconnector::v1::Admin;

constexpr char kExitStatusText[] =
    "Exit status: 0 ok; 1 the call failed, a callback is still pending, an entity\n"
    "failed to sync, a check step failed or a requested delivery was not found;\n"
    "2 usage error (including a missing admin token).\n";

// `mlc deliveries`: one page by default; --all follows pages up to this many.
constexpr int64_t kDefaultDeliveries = 50;
constexpr int64_t kDefaultAllDeliveries = 10000;
constexpr int64_t kMaxAllDeliveries = 1000000;
constexpr int64_t kMaxPageSize = 1000;  // the writer's cap (admin.proto)
constexpr int64_t kMaxReplayLimit = 100000;
constexpr int64_t kDefaultDeadShown = 20;

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec> flags = {
      {"writer", "HOST:PORT",
       absl::StrCat("gRPC address of the writer (default $", kWriterEnv, ", else ", kDefaultWriter,
                    ")")},
      {"admin-token-file", "FILE",
       absl::StrCat("file holding the admin token (default $", kAdminTokenEnv, ")")},
      {"tls-ca", "FILE",
       absl::StrCat("CA (PEM) that signed the writer's certificate; turns TLS on (default $",
                    kTlsCaEnv, ")")},
      {"tls-cert", "FILE",
       absl::StrCat("client certificate (PEM) for mutual TLS (default $", kTlsCertEnv, ")")},
      {"tls-key", "FILE", absl::StrCat("its private key (PEM) (default $", kTlsKeyEnv, ")")},
      {"tls-server-name", "NAME",
       absl::StrCat("name in the writer's certificate if not the --writer host (default $",
                    kTlsServerNameEnv, ")")},
      {"json", "", "print the answer as one JSON object (proto field names)"},
      {"timeout", "SECONDS",
       "deadline (default 30; sync 600; check, replay 120; register-webhooks 30 + --wait)"},
      {"help", "", "show usage"},
  };
  return flags;
}

FlagSpec ConnectionFlag() {
  return {"connection", "ID", "the connection's id (connections[].id in the writer's config)"};
}

class Invocation;
struct Command;

// A usage error within a command: the message and the command's synopsis (its
// whole usage text would bury the message).
int CommandUsageError(const CliEnv& env, const Command& command, const std::string& message);

// One row of the command table. `run` is null for send-webhook, which parses its
// own arguments.
struct Command {
  std::string name;
  std::string synopsis;  // what follows "mlc NAME" in usage lines
  std::string summary;   // one line for the command list
  std::string description;
  std::vector<FlagSpec> flags;
  absl::Duration default_timeout;
  int (*run)(Invocation&);
  bool operands = false;  // takes positional arguments (named in the synopsis)
};

const std::vector<Command>& Commands();

const Command* FindCommand(const std::string& name) {
  for (const Command& c : Commands()) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

// The state of one admin command run: its flags, where output goes, and the
// client, connected on first use so usage errors are reported before the token is
// looked for.
class Invocation {
 public:
  Invocation(const Command& command, ParsedFlags flags, const CliEnv& env, std::string writer,
             std::optional<absl::Duration> timeout)
      : command_(command),
        flags_(std::move(flags)),
        env_(env),
        writer_(std::move(writer)),
        timeout_(timeout.value_or(command.default_timeout)),
        timeout_given_(timeout.has_value()) {}

  const ParsedFlags& flags() const { return flags_; }
  std::ostream& out() const { return *env_.out; }
  std::ostream& err() const { return *env_.err; }
  absl::Time now() const { return env_.now(); }
  bool json() const { return flags_.Has("json"); }

  // The deadline when --timeout is absent (for commands whose default depends on
  // their flags).
  void set_default_timeout(absl::Duration d) {
    if (!timeout_given_) timeout_ = d;
  }

  int UsageError(const std::string& message) const {
    return CommandUsageError(env_, command_, message);
  }

  int Fail(const std::string& message) const {
    err() << "mlc: " << message << "\n";
    return kExitFailure;
  }

  // --NAME as a whole number in [min, max] into *value (unchanged when the flag is
  // absent), or a usage error.
  std::optional<int> IntFlag(const std::string& name, int64_t min, int64_t max,
                             int64_t* value) const {
    std::optional<std::string> v = flags_.Get(name);
    if (!v.has_value()) return std::nullopt;
    int64_t n = 0;
    if (!absl::SimpleAtoi(*v, &n) || n < min || n > max) {
      return UsageError(absl::StrCat("--", name, " wants a whole number from ", min, " to ", max,
                                     ", not \"", *v, "\""));
    }
    *value = n;
    return std::nullopt;
  }

  // The command's --connection value, or a usage error.
  std::optional<int> RequireConnection(std::string* id) const {
    std::optional<std::string> v = flags_.Get("connection");
    if (!v.has_value() || v->empty()) {
      return UsageError(
          absl::StrCat(command_.name, " needs --connection ID (see: mlc connections)"));
    }
    *id = *v;
    return std::nullopt;
  }

  // Calls the Admin RPC. Returns the exit status when it failed (after saying why on
  // stderr), nullopt when `response` holds the answer.
  template <typename Request, typename Response>
  std::optional<int> Call(const char* name, AdminClient::Method<Request, Response> method,
                          const Request& request, Response* response) {
    if (client_ == nullptr) {
      absl::StatusOr<AdminToken> token =
          LoadAdminToken(flags_.Get("admin-token-file"), env_.getenv);
      if (!token.ok()) {
        err() << "mlc: " << token.status().message() << "\n";
        return kExitUsage;
      }
      absl::StatusOr<AdminTls> tls = ResolveAdminTls(
          [this](const std::string& flag) { return flags_.Get(flag); }, env_.getenv);
      if (!tls.ok()) return UsageError(std::string(tls.status().message()));
      absl::StatusOr<std::unique_ptr<AdminClient>> client =
          AdminClient::Create(writer_, *std::move(token), *tls);
      if (!client.ok()) {
        err() << "mlc: " << client.status().message() << "\n";
        return kExitUsage;
      }
      client_ = *std::move(client);
    }
    absl::Status s = client_->Call(name, method, request, response, timeout_);
    if (!s.ok()) return Fail(std::string(s.message()));
    return std::nullopt;
  }

  // Prints `response` as JSON with --json, else `human`.
  int Print(const google::protobuf::Message& response, const std::string& human) const {
    return PrintJsonObject({{"", &response}}, human);
  }

  // Like Print, for an answer made of several responses: with --json one object
  // with a member per response ({"stats": {...}, "recent": {...}}); an empty name
  // (alone) prints that response itself.
  int PrintJsonObject(
      const std::vector<std::pair<std::string, const google::protobuf::Message*>>& parts,
      const std::string& human) const {
    if (!json()) {
      out() << human;
      return kExitOk;
    }
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    // Scripts should not have to know proto3's "absent means zero" rule.
    options.always_print_primitive_fields = true;
    std::vector<std::string> members;
    members.reserve(parts.size());
    for (const auto& [name, message] : parts) {
      std::string text;
      if (auto s = google::protobuf::util::MessageToJsonString(*message, &text, options); !s.ok()) {
        return Fail(absl::StrCat("cannot render the answer as JSON: ", s.ToString()));
      }
      members.push_back(name.empty() ? text : absl::StrCat("\"", name, "\":", text));
    }
    if (parts.size() == 1 && parts[0].first.empty()) {
      out() << members[0] << "\n";
    } else {
      out() << "{" << absl::StrJoin(members, ",") << "}\n";
    }
    return kExitOk;
  }

 private:
  const Command& command_;
  ParsedFlags flags_;
  const CliEnv& env_;
  std::string writer_;
  absl::Duration timeout_;
  bool timeout_given_;
  std::unique_ptr<AdminClient> client_;
};

int RunConnections(Invocation& inv) {
  mlconnector::v1::ListConnectionsRequest request;
  mlconnector::v1::ListConnectionsResponse response;
  if (auto failed =
          inv.Call("ListConnections", &Admin::StubInterface::ListConnections, request, &response)) {
    return *failed;
  }
  return inv.Print(response, RenderConnections(response, inv.now()));
}

int RunAuthorize(Invocation& inv) {
  mlconnector::v1::StartAuthorizationRequest request;
  if (auto usage = inv.RequireConnection(request.mutable_connection_id())) return *usage;
  mlconnector::v1::StartAuthorizationResponse response;
  if (auto failed = inv.Call("StartAuthorization", &Admin::StubInterface::StartAuthorization,
                             request, &response)) {
    return *failed;
  }
  return inv.Print(response, RenderAuthorization(response, inv.now()));
}

int RunRegisterWebhooks(Invocation& inv) {
  mlconnector::v1::RegisterWebhooksRequest request;
  if (auto usage = inv.RequireConnection(request.mutable_connection_id())) return *usage;
  int32_t wait = 30;
  if (std::optional<std::string> w = inv.flags().Get("wait"); w.has_value()) {
    if (!absl::SimpleAtoi(*w, &wait) || wait < 0) {
      return inv.UsageError(absl::StrCat("--wait wants whole seconds >= 0, not \"", *w, "\""));
    }
  }
  request.set_wait_seconds(wait);
  // The writer holds the call open while it waits for FreshBooks.
  inv.set_default_timeout(absl::Seconds(30) + absl::Seconds(wait));
  mlconnector::v1::RegisterWebhooksResponse response;
  if (auto failed = inv.Call("RegisterWebhooks", &Admin::StubInterface::RegisterWebhooks, request,
                             &response)) {
    return *failed;
  }
  const int printed = inv.Print(response, RenderCallbacks(response));
  if (printed != kExitOk) return printed;

  int pending = 0;
  std::string uri;
  for (const auto& cb : response.callbacks()) {
    if (cb.status() != "pending") continue;
    ++pending;
    if (uri.empty()) uri = cb.uri();
  }
  if (pending == 0) return kExitOk;
  return inv.Fail(absl::StrCat(
      pending, pending == 1 ? " callback is" : " callbacks are",
      " still pending: FreshBooks has not verified ", pending == 1 ? "it" : "them", " yet.\n",
      "  FreshBooks sends a verification webhook to ", uri.empty() ? "the webhook_url" : uri,
      "; check that ingress is running and reachable there from the internet, then\n"
      "  run `mlc register-webhooks --connection ",
      request.connection_id(),
      "` again (it re-requests the handshake) or wait longer with --wait."));
}

int RunSync(Invocation& inv) {
  mlconnector::v1::SyncRequest request;
  if (auto usage = inv.RequireConnection(request.mutable_connection_id())) return *usage;
  for (const std::string& v : inv.flags().GetAll("entity")) {
    for (absl::string_view e : absl::StrSplit(v, ',', absl::SkipWhitespace())) {
      request.add_entities(std::string(absl::StripAsciiWhitespace(e)));
    }
  }
  if (inv.flags().Has("entity") && request.entities().empty()) {
    return inv.UsageError("--entity needs a name (invoice, payment, ...)");
  }
  request.set_full(inv.flags().Has("full"));
  mlconnector::v1::SyncResponse response;
  if (auto failed = inv.Call("Sync", &Admin::StubInterface::Sync, request, &response)) {
    return *failed;
  }
  const int printed = inv.Print(response, RenderSync(response));
  if (printed != kExitOk) return printed;

  std::vector<std::string> failed;
  for (const auto& e : response.entities()) {
    if (!e.error().empty()) failed.push_back(e.entity());
  }
  if (failed.empty()) return kExitOk;
  return inv.Fail(absl::StrCat(failed.size(), " of ", response.entities_size(),
                               " entities failed to sync (", absl::StrJoin(failed, ", "),
                               "); see ERROR", inv.json() ? "" : " above",
                               ". Run the same command again to retry."));
}

// The filter flags as a DeliveryFilter, or the usage error's exit status.
std::optional<int> FilterFromFlags(const Invocation& inv, mlconnector::v1::DeliveryFilter* filter) {
  absl::StatusOr<mlconnector::v1::DeliveryFilter> f =
      DeliveryFilterFromFlags(inv.flags(), inv.now());
  if (!f.ok()) return inv.UsageError(std::string(f.status().message()));
  *filter = *std::move(f);
  return std::nullopt;
}

int RunDeliveries(Invocation& inv) {
  mlconnector::v1::ListDeliveriesRequest request;
  if (auto usage = FilterFromFlags(inv, request.mutable_filter())) return *usage;
  const bool all = inv.flags().Has("all");
  int64_t limit = all ? kDefaultAllDeliveries : kDefaultDeliveries;
  if (auto usage = inv.IntFlag("limit", 1, kMaxAllDeliveries, &limit)) return *usage;
  if (!all && limit > kMaxPageSize) {
    return inv.UsageError(absl::StrCat("--limit above ", kMaxPageSize,
                                       " needs --all (a page holds at most ", kMaxPageSize, ")"));
  }
  if (std::optional<std::string> token = inv.flags().Get("page-token"); token.has_value()) {
    if (token->empty()) return inv.UsageError("--page-token needs the token a `more:` line shows");
    request.set_page_token(*token);
  }

  mlconnector::v1::ListDeliveriesResponse response;
  while (true) {
    request.set_page_size(
        static_cast<int32_t>(std::min(limit - response.deliveries_size(), kMaxPageSize)));
    mlconnector::v1::ListDeliveriesResponse page;
    if (auto failed =
            inv.Call("ListDeliveries", &Admin::StubInterface::ListDeliveries, request, &page)) {
      return *failed;
    }
    for (mlconnector::v1::Delivery& d : *page.mutable_deliveries()) {
      *response.add_deliveries() = std::move(d);
    }
    response.set_next_page_token(page.next_page_token());
    // An empty page with a token would never end; the writer does not send one.
    if (!all || page.next_page_token().empty() || page.deliveries().empty() ||
        response.deliveries_size() >= limit) {
      break;
    }
    request.set_page_token(page.next_page_token());
  }

  std::vector<std::string> more = {"mlc", "deliveries"};
  for (std::string& a : DeliveryFilterArgs(request.filter())) more.push_back(std::move(a));
  if (inv.flags().Has("limit")) {
    more.emplace_back("--limit");
    more.push_back(absl::StrCat(limit));
  }
  if (all) more.emplace_back("--all");
  return inv.Print(response, RenderDeliveries(response, inv.now(), absl::StrJoin(more, " ")));
}

int RunShow(Invocation& inv) {
  const std::vector<std::string>& ids = inv.flags().positional();
  if (ids.empty() || ids[0].empty()) {
    return inv.UsageError("show needs a DELIVERY_ID (see: mlc deliveries)");
  }
  if (ids.size() > 1) return inv.UsageError("show takes one DELIVERY_ID");
  mlconnector::v1::GetDeliveryRequest request;
  request.set_delivery_id(ids[0]);
  mlconnector::v1::GetDeliveryResponse response;
  if (auto failed =
          inv.Call("GetDelivery", &Admin::StubInterface::GetDelivery, request, &response)) {
    return *failed;
  }
  return inv.Print(response, RenderDelivery(response, inv.now()));
}

int RunReplay(Invocation& inv) {
  const std::vector<std::string>& ids = inv.flags().positional();
  const bool by_filter = HasDeliveryFilterFlags(inv.flags());
  if (ids.empty() && !by_filter) {
    return inv.UsageError(
        "replay needs DELIVERY_IDs or at least one filter flag (--connection, --event, --object,\n"
        "  --status, --since, --until, --error), e.g. mlc replay --status dead --connection acme "
        "--dry-run");
  }
  if (!ids.empty() && by_filter) {
    return inv.UsageError("replay takes DELIVERY_IDs or filter flags, not both");
  }
  if (!ids.empty() && inv.flags().Has("limit")) {
    return inv.UsageError("--limit applies to a filter, not to DELIVERY_IDs");
  }
  mlconnector::v1::ReplayRequest request;
  for (const std::string& id : ids) {
    if (id.empty()) return inv.UsageError("a DELIVERY_ID is empty");
    request.add_delivery_ids(id);
  }
  if (by_filter) {
    if (auto usage = FilterFromFlags(inv, request.mutable_filter())) return *usage;
    int64_t limit = 0;  // the writer's default
    if (auto usage = inv.IntFlag("limit", 1, kMaxReplayLimit, &limit)) return *usage;
    request.set_limit(static_cast<int32_t>(limit));
  }
  request.set_dry_run(inv.flags().Has("dry-run"));
  mlconnector::v1::ReplayResponse response;
  if (auto failed = inv.Call("Replay", &Admin::StubInterface::Replay, request, &response)) {
    return *failed;
  }
  const int printed = inv.Print(response, RenderReplay(response));
  if (printed != kExitOk) return printed;
  const auto& missing = response.not_found();
  if (missing.empty()) return kExitOk;
  return inv.Fail(absl::StrCat(missing.size(), " of ", ids.size(), " requested ",
                               ids.size() == 1 ? "delivery was" : "deliveries were", " not found: ",
                               absl::StrJoin(missing, ", "), " (see: mlc deliveries)"));
}

int RunDeadLetters(Invocation& inv) {
  mlconnector::v1::GetStatsRequest request;
  if (std::optional<std::string> c = inv.flags().Get("connection"); c.has_value()) {
    if (c->empty()) return inv.UsageError("--connection needs ID (see: mlc connections)");
    request.set_connection_id(*c);
  }
  int64_t shown = kDefaultDeadShown;
  if (auto usage = inv.IntFlag("limit", 1, kMaxPageSize, &shown)) return *usage;
  mlconnector::v1::GetStatsResponse stats;
  if (auto failed = inv.Call("GetStats", &Admin::StubInterface::GetStats, request, &stats)) {
    return *failed;
  }
  const bool any_dead =
      std::any_of(stats.connections().begin(), stats.connections().end(),
                  [](const auto& c) { return c.dead() > 0 || !c.dead_letters().empty(); });
  mlconnector::v1::ListDeliveriesResponse recent;
  if (any_dead) {
    mlconnector::v1::ListDeliveriesRequest list;
    list.mutable_filter()->set_connection_id(request.connection_id());
    list.mutable_filter()->add_statuses("dead");
    list.set_page_size(static_cast<int32_t>(shown));
    if (auto failed =
            inv.Call("ListDeliveries", &Admin::StubInterface::ListDeliveries, list, &recent)) {
      return *failed;
    }
  }
  return inv.PrintJsonObject({{"stats", &stats}, {"recent", &recent}},
                             RenderDeadLetters(stats, recent, inv.now()));
}

int RunStats(Invocation& inv) {
  mlconnector::v1::GetStatsRequest request;
  if (std::optional<std::string> c = inv.flags().Get("connection"); c.has_value()) {
    if (c->empty()) return inv.UsageError("--connection needs ID (see: mlc connections)");
    request.set_connection_id(*c);
  }
  mlconnector::v1::GetStatsResponse response;
  if (auto failed = inv.Call("GetStats", &Admin::StubInterface::GetStats, request, &response)) {
    return *failed;
  }
  return inv.Print(response, RenderStats(response, inv.now()));
}

int RunCheck(Invocation& inv) {
  mlconnector::v1::CheckConnectionRequest request;
  if (auto usage = inv.RequireConnection(request.mutable_connection_id())) return *usage;
  mlconnector::v1::CheckConnectionResponse response;
  if (auto failed =
          inv.Call("CheckConnection", &Admin::StubInterface::CheckConnection, request, &response)) {
    return *failed;
  }
  const int printed = inv.Print(response, RenderCheck(response));
  if (printed != kExitOk) return printed;
  const auto failed = std::count_if(response.steps().begin(), response.steps().end(),
                                    [](const auto& s) { return s.status() == "failed"; });
  if (response.ok() && failed == 0) return kExitOk;
  return inv.Fail(absl::StrCat(
      "connection ", request.connection_id(),
      " failed its check: ", failed == 1 ? "1 step" : absl::StrCat(failed, " steps"), " failed",
      inv.json() ? "; see each failed step's fix" : "; the fixes are listed above"));
}

const std::vector<Command>& Commands() {
  static const std::vector<Command> commands = {
      {"connections",
       "",
       "List the configured connections and their FreshBooks state.",
       "Lists the connections of the writer's config with their FreshBooks state: whether\n"
       "FreshBooks access is authorized (and for which account and business), how many\n"
       "webhook signing keys the writer holds, when the last sync succeeded, and in NOTE\n"
       "what needs attention (such as re-authorization and its reason).",
       {},
       absl::Seconds(30),
       &RunConnections},
      {"authorize",
       "--connection ID",
       "Start FreshBooks authorization of a connection (prints a URL).",
       "Starts FreshBooks OAuth for the connection and prints the authorization URL (single\n"
       "use, valid for 15 minutes). Open it in a browser, sign in to FreshBooks and approve;\n"
       "FreshBooks then redirects to ingress (the connection's redirect_uri), which\n"
       "completes the authorization. `mlc connections` shows the result.",
       {ConnectionFlag()},
       absl::Seconds(30),
       &RunAuthorize},
      {"register-webhooks",
       "--connection ID [--wait SECONDS]",
       "Create a connection's FreshBooks webhooks; wait for verification.",
       "Creates the connection's missing FreshBooks webhook callbacks at its webhook_url,\n"
       "re-requests the verification handshake of unverified ones, and waits up to --wait\n"
       "seconds for FreshBooks to verify them. STATUS is created, existing, verified or\n"
       "pending (FreshBooks has not yet completed the handshake through ingress). Exit\n"
       "status 1 when any callback is still pending.",
       {ConnectionFlag(),
        {"wait", "SECONDS",
         "how long to wait for FreshBooks' verification (default 30; 0: don't)"}},
       absl::Seconds(60),
       &RunRegisterWebhooks},
      {"sync",
       "--connection ID [--full] [--entity NAME]...",
       "Reconcile, or with --full backfill, a connection from FreshBooks.",
       "Reads the connection's data from the FreshBooks API into the sink and waits for the\n"
       "run. Without --full it reconciles: changes since each entity's stored watermark,\n"
       "with overlap (SINCE shows the filter used). With --full it backfills the whole\n"
       "history. Exit status 1 when any entity failed (ERROR).",
       {ConnectionFlag(),
        {"full", "", "ignore the watermarks and read the whole history (backfill)"},
        {"entity", "NAME", "only this entity (invoice, payment, ...); repeatable; default all",
         true}},
       absl::Seconds(600),
       &RunSync},
      {"deliveries", "[FILTER FLAGS] [--limit N] [--page-token T] [--all]",
       "List journaled deliveries (webhooks and handshakes), newest first.",
       "Lists the deliveries in the writer's journal, newest first: every webhook FreshBooks\n"
       "sent and every handshake, with its status (pending, written, dead, handshake), its\n"
       "failed attempts, when it was received and its last error. The filter flags\n"
       "(--connection, --event, --object, --status, --since, --until, --error) combine\n"
       "(AND); --since and --until take an age back from now (30m, 2h, 7d) or an RFC 3339\n"
       "time. One page of --limit deliveries (default 50, at most 1000) is printed; when\n"
       "there are more, the last line is the command for the next page. --all follows the\n"
       "pages up to --limit (default then 10000). `mlc show DELIVERY_ID` shows one in full.",
       [] {
         std::vector<FlagSpec> flags = DeliveryFilterFlags();
         flags.push_back({"limit", "N", "at most N deliveries (default 50; with --all 10000)"});
         flags.push_back({"page-token", "T", "continue where a `more:` line says"});
         flags.push_back({"all", "", "follow the pages up to --limit"});
         return flags;
       }(),
       absl::Seconds(30), &RunDeliveries},
      {"show",
       "DELIVERY_ID",
       "Show one delivery: its fields, its payload and every attempt.",
       "Shows one delivery of the journal: its fields; the webhook's form fields as\n"
       "received, one `name = value` line each (a handshake's verifier is never stored);\n"
       "and every attempt of the audit trail, oldest first: stage (journal, hydrate,\n"
       "write, replay), outcome, HTTP status, duration and error.",
       {},
       absl::Seconds(30),
       &RunShow,
       /*operands=*/true},
      {"replay", "[DELIVERY_ID ...] [FILTER FLAGS] [--dry-run] [--limit N]",
       "Make deliveries pending again (by ids or by filter), e.g. dead letters.",
       "Makes deliveries pending again, their attempt count reset, so the pipeline\n"
       "hydrates and writes them again; writes are idempotent, so a replay never\n"
       "duplicates a row. Give delivery ids, or filter flags as for `mlc deliveries`\n"
       "(one of them is required: a bare `mlc replay` is refused). A filter replays at\n"
       "most --limit deliveries (default 1000, at most 100000). Handshakes are skipped.\n"
       "Typical: fix the cause of a dead letter, run\n"
       "`mlc replay --status dead --connection acme --dry-run`, then again without\n"
       "--dry-run. Exit status 1 when a requested id is not found.",
       [] {
         std::vector<FlagSpec> flags = DeliveryFilterFlags();
         flags.push_back({"dry-run", "", "report what would be replayed; change nothing"});
         flags.push_back({"limit", "N", "at most N deliveries by filter (default 1000)"});
         return flags;
       }(),
       absl::Seconds(120), &RunReplay,
       /*operands=*/true},
      {"dead-letters",
       "[--connection ID] [--limit N]",
       "Dead letters by reason, the newest of them, and how to replay them.",
       "Lists the dead letters (deliveries that failed permanently or ran out of retries)\n"
       "grouped by reason, then the newest of them, and ends with the command that\n"
       "replays them once the cause is fixed.",
       {{"connection", "ID", "only this connection's dead letters"},
        {"limit", "N", "how many of the newest dead deliveries to list (default 20)"}},
       absl::Seconds(30),
       &RunDeadLetters},
      {"stats",
       "[--connection ID]",
       "Journal and pipeline figures per connection; journal size and retention.",
       "Shows per connection how many deliveries are pending (RETRYING: pending after a\n"
       "failed attempt), written, dead, and handshakes; how long the oldest pending one\n"
       "has waited; when the last was written; how many were received and written in the\n"
       "last hour. Then the journal's size on disk, the audit retention and the last\n"
       "compaction.",
       {{"connection", "ID", "only this connection (default: all)"}},
       absl::Seconds(30),
       &RunStats},
      {"check",
       "--connection ID",
       "Check a connection end to end with its stored credentials.",
       "Checks the connection step by step with its stored credentials: the writer's own\n"
       "state, FreshBooks (authorization, a real API call) and the sink (Databricks token,\n"
       "warehouse and tables, or the SQLite lakehouse), and prints the fix of every step\n"
       "that failed or warns. Exit status 1 when any step failed.",
       {ConnectionFlag()},
       absl::Seconds(120),
       &RunCheck},
      {"send-webhook",
       "--url URL [--verifier-file FILE] [--dry-run] [--timeout SECONDS] [name=value ...]",
       "Sign a test webhook the way FreshBooks does and POST it to ingress.",
       "",
       {{"url", "URL", "e.g. http://127.0.0.1:8080/webhooks/freshbooks/local"},
        {"verifier-file", "FILE", "file holding the signing key; otherwise $MLC_VERIFIER"},
        {"dry-run", "", "print the body and signature header, send nothing"},
        {"timeout", "SECONDS", "default 15"}},
       absl::Seconds(15),
       nullptr},
  };
  return commands;
}

int CommandUsageError(const CliEnv& env, const Command& command, const std::string& message) {
  *env.err << "mlc: " << message << "\nusage: mlc " << command.name << " " << command.synopsis
           << (command.synopsis.empty() ? "" : " ") << "[GLOBAL FLAGS]   (mlc " << command.name
           << " --help for details)\n";
  return kExitUsage;
}

// True when `args` asks for help before any "--".
bool WantsHelp(const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "--") return false;
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

int GeneralUsageError(const CliEnv& env, const std::string& message) {
  *env.err << "mlc: " << message << "\n\n" << GeneralUsage();
  return kExitUsage;
}

}  // namespace

std::string GeneralUsage() {
  std::string out =
      "usage: mlc [GLOBAL FLAGS] COMMAND [FLAGS]\n"
      "\n"
      "The operator command line of ml-connector. Its commands (all but send-webhook)\n"
      "call the writer's Admin gRPC API with the admin token; everything they do is also\n"
      "reachable with grpcurl (server reflection is on).\n"
      "\n"
      "commands:\n";
  std::vector<std::pair<std::string, std::string>> lines;
  for (const Command& c : Commands()) lines.emplace_back(c.name, c.summary);
  lines.emplace_back("help [COMMAND]", "Show this text, or one command's.");
  size_t width = 0;
  for (const auto& [name, summary] : lines) width = std::max(width, name.size());
  for (const auto& [name, summary] : lines) {
    absl::StrAppend(&out, "  ", name, std::string(width - name.size() + 2, ' '), summary, "\n");
  }
  absl::StrAppend(&out, "\nglobal flags (before or after the command; not for send-webhook):\n",
                  DescribeFlags(GlobalFlags()), "\ncommand flags:\n");
  for (const Command& c : Commands()) {
    absl::StrAppend(&out, "  mlc ", c.name, c.synopsis.empty() ? "" : " ", c.synopsis, "\n",
                    DescribeFlags(c.flags, 6));
  }
  absl::StrAppend(&out, "\n", kExitStatusText);
  return out;
}

std::string CommandUsage(const std::string& command) {
  const Command* c = FindCommand(command);
  if (c == nullptr) return "";
  if (c->run == nullptr) return kSendWebhookUsage;
  std::string out =
      absl::StrCat("usage: mlc ", c->name, " ", c->synopsis, c->synopsis.empty() ? "" : " ",
                   "[GLOBAL FLAGS]\n\n", c->description, "\n");
  if (!c->flags.empty()) absl::StrAppend(&out, "\nflags:\n", DescribeFlags(c->flags));
  absl::StrAppend(&out, "\nglobal flags:\n", DescribeFlags(GlobalFlags()), "\n", kExitStatusText);
  return out;
}

int RunMlc(const std::vector<std::string>& args, const CliEnv& env) {
  if (args.empty()) return GeneralUsageError(env, "no command given");

  // Global flags may come before the command.
  size_t consumed = 0;
  absl::StatusOr<ParsedFlags> before =
      ParseFlags(args, GlobalFlags(), /*stop_at_positional=*/true, &consumed);
  if (!before.ok()) {
    return GeneralUsageError(env, std::string(before.status().message()));
  }
  if (consumed == args.size()) {
    if (before->Has("help")) {
      *env.out << GeneralUsage();
      return kExitOk;
    }
    return GeneralUsageError(env, "no command given");
  }
  const std::string& name = args[consumed];
  const std::vector<std::string> rest(args.begin() + static_cast<ptrdiff_t>(consumed) + 1,
                                      args.end());

  if (name == "help") {
    if (rest.empty()) {
      *env.out << GeneralUsage();
      return kExitOk;
    }
    const std::string usage = CommandUsage(rest[0]);
    if (usage.empty() || rest.size() > 1) {
      return GeneralUsageError(env, absl::StrCat("no such command: ", absl::StrJoin(rest, " ")));
    }
    *env.out << usage;
    return kExitOk;
  }
  const Command* command = FindCommand(name);
  if (command == nullptr) return GeneralUsageError(env, "unknown command: " + name);

  if (command->run == nullptr) {  // send-webhook: its own flags, unchanged
    if (before->Has("help")) return SendWebhook({"--help"}, env);
    if (consumed > 0) {
      return GeneralUsageError(
          env, "send-webhook takes no global flags; put its own flags after the command");
    }
    return SendWebhook(rest, env);
  }
  if (before->Has("help") || WantsHelp(rest)) {
    *env.out << CommandUsage(command->name);
    return kExitOk;
  }

  std::vector<FlagSpec> specs = GlobalFlags();
  specs.insert(specs.end(), command->flags.begin(), command->flags.end());
  std::vector<std::string> all(args.begin(), args.begin() + static_cast<ptrdiff_t>(consumed));
  all.insert(all.end(), rest.begin(), rest.end());
  absl::StatusOr<ParsedFlags> flags = ParseFlags(all, specs);
  auto usage_error = [&](const std::string& message) {
    return CommandUsageError(env, *command, message);
  };
  if (!flags.ok()) return usage_error(std::string(flags.status().message()));
  if (!flags->positional().empty() && !command->operands) {
    return usage_error(absl::StrCat("unexpected argument \"", flags->positional()[0], "\""));
  }

  std::string writer = kDefaultWriter;
  if (std::optional<std::string> w = flags->Get("writer"); w.has_value()) {
    if (w->empty()) return usage_error("--writer needs HOST:PORT");
    writer = *w;
  } else if (std::optional<std::string> e = env.getenv(kWriterEnv); e.has_value() && !e->empty()) {
    writer = *e;
  }
  std::optional<absl::Duration> timeout;
  if (std::optional<std::string> t = flags->Get("timeout"); t.has_value()) {
    double seconds = 0;
    if (!absl::SimpleAtod(*t, &seconds) || !std::isfinite(seconds) || seconds <= 0) {
      return usage_error(absl::StrCat("--timeout wants seconds > 0, not \"", *t, "\""));
    }
    timeout = absl::Seconds(seconds);
  }

  Invocation inv(*command, *std::move(flags), env, std::move(writer), timeout);
  return command->run(inv);
}

std::string RenderConnections(const mlconnector::v1::ListConnectionsResponse& response,
                              absl::Time now) {
  if (response.connections().empty()) {
    return "no connections configured (add them under connections: in the writer's config)\n";
  }
  Table table({{"CONNECTION"},
               {"AUTHORIZED"},
               {"ACCOUNT"},
               {"BUSINESS"},
               {"KEYS", Table::Align::kRight},
               {"LAST SYNC"},
               {"NOTE"}});
  for (const auto& c : response.connections()) {
    std::string business = c.business_name();
    if (!c.business_id().empty()) {
      business =
          business.empty() ? c.business_id() : absl::StrCat(business, " (", c.business_id(), ")");
    }
    std::string note;
    if (c.needs_reauthorization()) {
      note = absl::StrCat("needs re-authorization", c.reauthorization_reason().empty() ? "" : ": ",
                          c.reauthorization_reason(), " (mlc authorize --connection ",
                          c.connection_id(), ")");
    } else if (!c.oauth_configured()) {
      note = "webhooks only: FreshBooks OAuth is not configured";
    } else if (!c.authorized()) {
      note =
          absl::StrCat("not authorized yet (mlc authorize --connection ", c.connection_id(), ")");
    } else if (c.signing_keys() == 0) {
      note = absl::StrCat("no webhook signing keys (mlc register-webhooks --connection ",
                          c.connection_id(), ")");
    }
    table.AddRow({c.connection_id(), c.authorized() ? "yes" : "no",
                  c.account_id().empty() ? "-" : c.account_id(), business.empty() ? "-" : business,
                  absl::StrCat(c.signing_keys()), FormatUnixOrNever(c.last_sync_unix(), now),
                  note});
  }
  return table.Render();
}

std::string RenderAuthorization(const mlconnector::v1::StartAuthorizationResponse& response,
                                absl::Time now) {
  std::string out =
      "Open this URL in a browser, sign in to FreshBooks and approve; FreshBooks redirects to "
      "ingress, which completes the authorization (then check: mlc connections).\n";
  absl::StrAppend(&out, response.authorization_url(), "\n");
  if (response.expires_at_unix() != 0) {
    absl::StrAppend(&out, "expires ",
                    FormatTime(absl::FromUnixSeconds(response.expires_at_unix()), now),
                    "; single use\n");
  }
  return out;
}

std::string RenderCallbacks(const mlconnector::v1::RegisterWebhooksResponse& response) {
  Table table({{"EVENT"}, {"CALLBACK"}, {"STATUS"}});
  for (const auto& cb : response.callbacks()) {
    table.AddRow({cb.event(), cb.callback_id().empty() ? "-" : cb.callback_id(), cb.status()});
  }
  return table.Render();
}

std::string RenderSync(const mlconnector::v1::SyncResponse& response) {
  Table table({{"ENTITY"},
               {"OBJECTS", Table::Align::kRight},
               {"DELETED", Table::Align::kRight},
               {"PAGES", Table::Align::kRight},
               {"SINCE"},
               {"ERROR"}});
  int64_t objects = 0, deleted = 0, pages = 0;
  int failed = 0;
  for (const auto& e : response.entities()) {
    table.AddRow({e.entity(), absl::StrCat(e.objects()), absl::StrCat(e.deleted()),
                  absl::StrCat(e.pages()), e.updated_min().empty() ? "(full)" : e.updated_min(),
                  e.error()});
    objects += e.objects();
    deleted += e.deleted();
    pages += e.pages();
    if (!e.error().empty()) ++failed;
  }
  std::string out = table.Render();
  absl::StrAppend(&out, "total: ", objects, " objects, ", deleted, " deleted, ", pages, " pages, ",
                  response.entities_size(),
                  response.entities_size() == 1 ? " entity" : " entities");
  if (failed > 0) absl::StrAppend(&out, " (", failed, " failed)");
  absl::StrAppend(&out, absl::StrFormat(" in %.1fs\n", response.seconds()));
  return out;
}

}  // namespace mlc::cli
