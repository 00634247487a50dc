// StatementClient: submit, poll, classify and retry Databricks SQL statements.
#include "writer/databricks_statements.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"
#include "common/status_macros.h"

namespace mlc::writer {
namespace {

using json = nlohmann::json;

constexpr char kStatementsPath[] = "/api/2.0/sql/statements";
constexpr char kClassPayload[] = "type.mlc/databricks.statement_error_class";
constexpr char kSqlStatePayload[] = "type.mlc/databricks.sql_state";
constexpr size_t kMaxParameters = 256;
constexpr size_t kMaxStatementBytes = 16 << 20;

absl::string_view ToAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Server text for an error message, bounded.
std::string Clip(std::string_view s, size_t n = 2000) {
  if (s.size() <= n) return std::string(s);
  return absl::StrCat(ToAbsl(s.substr(0, n)), "...");
}

// JSON lookups through the underlying std::map / std::vector: nlohmann's own
// iterators trip GCC's -Wnull-dereference at -O2.
const json* Member(const json& j, const char* name) {
  const auto* object = j.get_ptr<const json::object_t*>();
  if (object == nullptr) return nullptr;
  const auto it = object->find(name);
  return it == object->end() ? nullptr : &it->second;
}

// The elements of `j` if it is an array (else none).
const json::array_t& Elements(const json* j) {
  static const json::array_t kEmpty;
  const auto* array = j == nullptr ? nullptr : j->get_ptr<const json::array_t*>();
  return array == nullptr ? kEmpty : *array;
}

std::string StringField(const json& j, const char* name) {
  const json* v = Member(j, name);
  if (v == nullptr) return "";
  if (const auto* s = v->get_ptr<const std::string*>()) return *s;
  if (v->is_number()) return v->dump();
  return "";
}

const json* ObjectField(const json& j, const char* name) {
  const json* v = Member(j, name);
  return v != nullptr && v->is_object() ? v : nullptr;
}

// "30s": the API takes whole seconds, 0 or 5..50.
std::string WaitTimeoutText(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s <= 0) return "0s";
  s = std::clamp<int64_t>(s, 5, 50);
  return absl::StrCat(s, "s");
}

absl::Duration WaitTimeoutValue(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s <= 0) return absl::ZeroDuration();
  return absl::Seconds(std::clamp<int64_t>(s, 5, 50));
}

bool IsRunning(const std::string& state) { return state == "PENDING" || state == "RUNNING"; }

// "[CLASS] message" -> (SQLSTATE xxxxx) detail for error messages.
std::string Described(const std::string& statement_id, const std::string& sql_state,
                      const std::string& message) {
  std::string out = absl::StrCat("statement ", statement_id);
  if (!sql_state.empty()) absl::StrAppend(&out, " (SQLSTATE ", sql_state, ")");
  absl::StrAppend(&out, ": ", Clip(message));
  return out;
}

void AppendRows(const json& result, StatementResult* out) {
  for (const json& row : Elements(Member(result, "data_array"))) {
    std::vector<std::optional<std::string>> cells;
    const json::array_t& values = Elements(&row);
    cells.reserve(values.size());
    for (const json& cell : values) {
      if (cell.is_null()) {
        cells.emplace_back(std::nullopt);
      } else if (const auto* text = cell.get_ptr<const std::string*>()) {
        cells.emplace_back(*text);
      } else {
        cells.emplace_back(cell.dump());
      }
    }
    out->data_array.push_back(std::move(cells));
  }
}

void FillDmlCounts(StatementResult* r) {
  if (r->data_array.empty()) return;
  const auto& row = r->data_array.front();
  for (size_t i = 0; i < r->columns.size() && i < row.size(); ++i) {
    if (!row[i].has_value()) continue;
    int64_t v = 0;
    if (!absl::SimpleAtoi(*row[i], &v)) continue;
    const std::string& c = r->columns[i];
    if (c == "num_affected_rows") r->num_affected_rows = v;
    if (c == "num_inserted_rows") r->num_inserted_rows = v;
    if (c == "num_updated_rows") r->num_updated_rows = v;
    if (c == "num_deleted_rows") r->num_deleted_rows = v;
  }
}

}  // namespace

std::string ErrorClassOf(std::string_view message) {
  // Databricks puts the class first; some drivers prefix an exception name, so look
  // for the first well-formed "[UPPER_CASE(.SUB)]" token in the first part.
  const std::string_view head = message.substr(0, 512);
  size_t pos = 0;
  while ((pos = head.find('[', pos)) != std::string_view::npos) {
    const size_t close = head.find(']', pos + 1);
    if (close == std::string_view::npos) break;
    const std::string_view token = head.substr(pos + 1, close - pos - 1);
    const bool well_formed =
        !token.empty() && absl::ascii_isupper(static_cast<unsigned char>(token[0])) &&
        std::all_of(token.begin(), token.end(), [](char c) {
          return absl::ascii_isupper(static_cast<unsigned char>(c)) ||
                 absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '.';
        });
    if (well_formed) return std::string(token.substr(0, token.find('.')));
    pos = close + 1;
  }
  return "";
}

StatementErrorClass ClassifyStatementError(std::string_view sql_state, std::string_view message) {
  const std::string cls = ErrorClassOf(message);
  const auto is = [&cls](std::initializer_list<const char*> names) {
    return std::any_of(names.begin(), names.end(), [&cls](const char* n) { return cls == n; });
  };
  // A conflict first: nothing was committed, whatever else the message says.
  if (sql_state == "2D521" || sql_state == "40001" || absl::StartsWith(cls, "DELTA_CONCURRENT_") ||
      is({"DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED"})) {
    return StatementErrorClass::kRetry;
  }
  if (is({"CATALOG_NOT_FOUND", "NO_SUCH_CATALOG_EXCEPTION"})) {
    return StatementErrorClass::kPermanent;
  }
  if (sql_state == "42P01" ||
      is({"TABLE_OR_VIEW_NOT_FOUND", "DELTA_TABLE_NOT_FOUND", "SCHEMA_NOT_FOUND"})) {
    return StatementErrorClass::kReprovision;
  }
  if (sql_state == "42703" || is({"UNRESOLVED_COLUMN", "DELTA_MERGE_UNRESOLVED_EXPRESSION"})) {
    return StatementErrorClass::kEvolve;
  }
  return StatementErrorClass::kPermanent;
}

std::string_view StatementErrorClassName(StatementErrorClass c) {
  switch (c) {
    case StatementErrorClass::kRetry:
      return "retry";
    case StatementErrorClass::kReprovision:
      return "reprovision";
    case StatementErrorClass::kEvolve:
      return "evolve";
    case StatementErrorClass::kPermanent:
      return "permanent";
  }
  return "permanent";
}

std::optional<StatementErrorClass> StatementErrorClassOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kClassPayload);
  if (!payload.has_value()) return std::nullopt;
  const std::string name(*payload);
  for (const auto c : {StatementErrorClass::kRetry, StatementErrorClass::kReprovision,
                       StatementErrorClass::kEvolve, StatementErrorClass::kPermanent}) {
    if (StatementErrorClassName(c) == name) return c;
  }
  return std::nullopt;
}

std::string StatementSqlStateOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kSqlStatePayload);
  return payload.has_value() ? std::string(*payload) : "";
}

bool IsInvalidTokenAnswer(int http_status, std::string_view body) {
  if (http_status == 401) return true;
  if (http_status != 403) return false;
  const std::string lower = absl::AsciiStrToLower(ToAbsl(body));
  return absl::StrContains(lower, "invalid access token") ||
         (absl::StrContains(lower, "token") &&
          (absl::StrContains(lower, "invalid") || absl::StrContains(lower, "expired")));
}

struct StatementClient::Answer {
  int http_status = 0;
  json body;  // an object (possibly empty)
};

StatementClient::StatementClient(StatementClientOptions options, HttpClient* http,
                                 DatabricksTokenSource* tokens, const Clock* clock,
                                 StatementMetrics metrics)
    : options_(std::move(options)),
      base_url_([this] {
        std::string h = options_.host;
        while (!h.empty() && h.back() == '/') h.pop_back();
        return h;
      }()),
      http_(http),
      tokens_(tokens),
      clock_(clock),
      metrics_(std::move(metrics)) {}

bool StatementClient::shutting_down() const {
  absl::MutexLock lock(&mu_);
  return shutting_down_;
}

bool StatementClient::Wait(absl::Duration d) {
  if (options_.sleep) {
    if (shutting_down()) return false;
    options_.sleep(d);
    return !shutting_down();
  }
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), d);
  return !shutting_down_;
}

bool StatementClient::Track(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (shutting_down_) return false;  // CancelAll() already ran: it will not see `id`
  in_flight_.insert(id);
  return true;
}

void StatementClient::Untrack(const std::string& id) {
  absl::MutexLock lock(&mu_);
  in_flight_.erase(id);
}

std::vector<std::string> StatementClient::InFlight() const {
  absl::MutexLock lock(&mu_);
  return std::vector<std::string>(in_flight_.begin(), in_flight_.end());
}

std::string StatementClient::BuildBody(const Statement& statement) const {
  json body = json::object();
  body["warehouse_id"] = options_.warehouse_id;
  body["statement"] = statement.sql;
  body["wait_timeout"] = WaitTimeoutText(options_.wait_timeout);
  body["on_wait_timeout"] = "CONTINUE";
  body["disposition"] = "INLINE";
  body["format"] = "JSON_ARRAY";
  if (!statement.catalog.empty()) body["catalog"] = statement.catalog;
  if (!statement.schema.empty()) body["schema"] = statement.schema;
  if (!statement.parameters.empty()) {
    json params = json::array();
    for (const StatementParameter& p : statement.parameters) {
      json jp = {{"name", p.name}, {"type", p.type.empty() ? "STRING" : p.type}};
      if (p.value.has_value()) jp["value"] = *p.value;
      params.push_back(std::move(jp));
    }
    body["parameters"] = std::move(params);
  }
  // Invalid UTF-8 would make dump() throw; replace it (U+FFFD) instead.
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<StatementClient::Answer> StatementClient::Call(
    Verb verb, const std::string& method, const std::string& url, const std::string& body,
    absl::Duration timeout, bool resend_ok, const std::string& statement_id) {
  const std::string what = verb == Verb::kSubmit
                               ? std::string("submitting a statement")
                               : absl::StrCat(verb == Verb::kPoll     ? "polling"
                                              : verb == Verb::kCancel ? "canceling"
                                                                      : "fetching results of",
                                              " statement ", statement_id);
  absl::BitGen gen;
  bool reminted = false;
  const int attempts = std::max(options_.max_http_attempts, 1);
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<std::string> token = tokens_->Token();
    if (!token.ok()) return token.status();

    HttpRequest request;
    request.method = method;
    request.url = url;
    request.timeout = timeout;
    request.headers.emplace("Authorization", absl::StrCat("Bearer ", *token));
    request.headers.emplace("Accept", "application/json");
    if (!body.empty()) request.headers.emplace("Content-Type", "application/json");
    request.body = body;
    absl::StatusOr<HttpResponse> response = http_->Send(request);
    metrics_.requests.Count(response);

    absl::Status failure;
    absl::Duration retry_after = absl::ZeroDuration();
    if (!response.ok()) {
      const bool may_resend = resend_ok || RequestNotSent(response.status());
      std::string message = absl::StrCat("databricks: ", what, ": ", response.status().message());
      if (!may_resend) {
        absl::StrAppend(&message,
                        " (outcome unknown; not resent because the statement is not idempotent)");
        return absl::Status(response.status().code(), message);
      }
      failure = absl::Status(response.status().code(), message);
    } else {
      const int status = response->status;
      json parsed = json::parse(response->body, nullptr, false);
      if (status >= 200 && status < 300) {
        if (parsed.is_discarded() || !parsed.is_object()) {
          if (verb == Verb::kCancel) return Answer{status, json::object()};
          return absl::InternalError(absl::StrCat("databricks: ", what, ": HTTP ", status,
                                                  " with a body that is not a JSON object"));
        }
        return Answer{status, std::move(parsed)};
      }
      const std::string error_code = StringField(parsed, "error_code");
      const std::string message = Clip(StringField(parsed, "message"));
      const std::string detail =
          absl::StrCat("databricks: ", what, ": HTTP ", status, error_code.empty() ? "" : " ",
                       error_code, message.empty() ? "" : ": ", message);
      if (IsInvalidTokenAnswer(status, response->body)) {
        if (!reminted) {
          reminted = true;
          tokens_->Invalidate(*token);
          if (metrics_.retries != nullptr) metrics_.retries->Inc();
          log::Warn("databricks: access token rejected; minting a new one and retrying once",
                    {{"statement_id", statement_id}, {"http_status", status}});
          continue;
        }
        return absl::UnauthenticatedError(
            absl::StrCat(detail, " (rejected again with a freshly minted token)"));
      }
      if (status == 429 || status == 503 || (status >= 500 && resend_ok)) {
        if (auto ra = response->Header("Retry-After"); ra.has_value()) {
          retry_after = std::min(ParseRetryAfter(*ra).value_or(absl::ZeroDuration()),
                                 options_.max_retry_after);
        }
        failure =
            status == 429 ? absl::ResourceExhaustedError(detail) : absl::UnavailableError(detail);
      } else if (status >= 500) {
        return absl::UnavailableError(absl::StrCat(
            detail, " (outcome unknown; not resent because the statement is not idempotent)"));
      } else if (status == 400) {
        return absl::InvalidArgumentError(detail);
      } else if (status == 401 || status == 403) {
        return absl::PermissionDeniedError(detail);
      } else if (status == 404 && (verb == Verb::kPoll || verb == Verb::kChunk)) {
        // The statement expired or was never known: its outcome is unknown.
        return absl::UnavailableError(detail);
      } else if (status == 404 && verb == Verb::kCancel) {
        return absl::NotFoundError(detail);
      } else {
        return absl::FailedPreconditionError(
            status == 404 && verb == Verb::kSubmit
                ? absl::StrCat(detail, " (check databricks.host and databricks.warehouse_id)")
                : detail);
      }
    }

    if (attempt + 1 >= attempts) {
      return absl::Status(failure.code(), absl::StrCat(failure.message(), " (gave up after ",
                                                       attempts, " attempts)"));
    }
    const absl::Duration delay = FullJitterDelay(options_.backoff, attempt, gen, retry_after);
    if (metrics_.retries != nullptr) metrics_.retries->Inc();
    log::Warn("databricks: request failed; retrying",
              {{"statement_id", statement_id},
               {"attempt", attempt + 1},
               {"delay_ms", static_cast<int64_t>(absl::ToInt64Milliseconds(delay))},
               {"error", std::string(failure.message())}});
    if (!Wait(delay)) {
      return absl::CancelledError(absl::StrCat(
          "databricks: ", what, ": shutting down (last error: ", failure.message(), ")"));
    }
  }
}

absl::StatusOr<StatementClient::Answer> StatementClient::SubmitAndWait(const std::string& body,
                                                                       const Statement& statement,
                                                                       absl::Time deadline) {
  MLC_ASSIGN_OR_RETURN(Answer answer,
                       Call(Verb::kSubmit, "POST", base_url_ + kStatementsPath, body,
                            WaitTimeoutValue(options_.wait_timeout) + options_.request_timeout,
                            statement.idempotent, ""));
  const std::string id = StringField(answer.body, "statement_id");
  if (id.empty()) {
    return absl::InternalError("databricks: the statement answer has no statement_id");
  }
  const json* status = ObjectField(answer.body, "status");
  std::string state = status != nullptr ? StringField(*status, "state") : "";
  if (!IsRunning(state)) return answer;

  if (!Track(id)) {
    (void)Cancel(id);
    return absl::CancelledError(
        absl::StrCat("databricks: shutting down; statement ", id, " was ", state, "; canceled it"));
  }
  absl::Duration delay = options_.poll_initial;
  const std::string url = absl::StrCat(base_url_, kStatementsPath, "/", id);
  while (IsRunning(state)) {
    if (clock_->Now() >= deadline) {
      (void)Cancel(id);
      Untrack(id);
      return absl::DeadlineExceededError(
          absl::StrCat("databricks: statement ", id, " still ", state, " after ",
                       absl::FormatDuration(options_.statement_timeout), "; canceled it"));
    }
    const bool keep_going = Wait(delay);
    delay = std::min(delay * 2, options_.poll_max);
    absl::StatusOr<Answer> polled =
        Call(Verb::kPoll, "GET", url, "", options_.request_timeout, true, id);
    if (!polled.ok()) {
      Untrack(id);
      return polled.status();
    }
    answer = *std::move(polled);
    status = ObjectField(answer.body, "status");
    state = status != nullptr ? StringField(*status, "state") : "";
    if (!keep_going && IsRunning(state)) {
      // CancelAll() ran: it has asked Databricks to cancel this statement.
      Untrack(id);
      return absl::CancelledError(absl::StrCat("databricks: shutting down; statement ", id, " was ",
                                               state, "; cancel requested"));
    }
  }
  Untrack(id);
  return answer;
}

absl::Status StatementClient::FetchRemainingChunks(const std::string& statement_id,
                                                   std::string next_link, StatementResult* result) {
  for (int chunks = 0; !next_link.empty(); ++chunks) {
    if (chunks > 100000) return absl::InternalError("databricks: too many result chunks");
    MLC_ASSIGN_OR_RETURN(Answer chunk, Call(Verb::kChunk, "GET", base_url_ + next_link, "",
                                            options_.request_timeout, true, statement_id));
    AppendRows(chunk.body, result);
    next_link = StringField(chunk.body, "next_chunk_internal_link");
  }
  return absl::OkStatus();
}

absl::StatusOr<StatementResult> StatementClient::Execute(const Statement& statement) {
  const auto fail = [this](absl::Status s) {
    if (metrics_.failed != nullptr) metrics_.failed->Inc();
    return s;
  };
  if (shutting_down()) {
    return fail(absl::CancelledError("databricks: shutting down; statement not submitted"));
  }
  if (options_.warehouse_id.empty()) {
    return fail(absl::FailedPreconditionError("databricks: warehouse_id is empty"));
  }
  if (statement.sql.empty()) {
    return fail(absl::InvalidArgumentError("databricks: empty statement"));
  }
  if (statement.sql.size() > kMaxStatementBytes) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        "databricks: statement of ", statement.sql.size(), " bytes exceeds the 16 MiB limit")));
  }
  if (statement.parameters.size() > kMaxParameters) {
    return fail(absl::InvalidArgumentError(absl::StrCat("databricks: ", statement.parameters.size(),
                                                        " parameters exceed the limit of 256")));
  }

  const std::string body = BuildBody(statement);
  const absl::Time start = clock_->Now();
  const absl::Time deadline = start + options_.statement_timeout;
  absl::BitGen gen;
  const int attempts = std::max(options_.max_conflict_attempts, 1);
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Answer> answer = SubmitAndWait(body, statement, deadline);
    if (!answer.ok()) return fail(answer.status());
    const std::string id = StringField(answer->body, "statement_id");
    const json* status = ObjectField(answer->body, "status");
    const std::string state = status != nullptr ? StringField(*status, "state") : "";
    if (metrics_.latency != nullptr && (state == "SUCCEEDED" || state == "FAILED")) {
      metrics_.latency->Observe(absl::ToDoubleSeconds(clock_->Now() - start));
    }

    if (state == "SUCCEEDED") {
      StatementResult result;
      result.statement_id = id;
      result.state = state;
      if (const json* manifest = ObjectField(answer->body, "manifest")) {
        if (const json* schema = ObjectField(*manifest, "schema")) {
          for (const json& c : Elements(Member(*schema, "columns"))) {
            result.columns.push_back(StringField(c, "name"));
          }
        }
      }
      if (const json* data = ObjectField(answer->body, "result")) {
        AppendRows(*data, &result);
        const std::string next = StringField(*data, "next_chunk_internal_link");
        if (absl::Status s = FetchRemainingChunks(id, next, &result); !s.ok()) return fail(s);
      }
      FillDmlCounts(&result);
      return result;
    }

    if (state == "FAILED") {
      const json* error = status != nullptr ? ObjectField(*status, "error") : nullptr;
      const std::string sql_state = status != nullptr ? StringField(*status, "sql_state") : "";
      const std::string message = error != nullptr ? StringField(*error, "message") : "";
      const StatementErrorClass cls = ClassifyStatementError(sql_state, message);
      if (cls == StatementErrorClass::kRetry && attempt + 1 < attempts) {
        const absl::Duration delay = FullJitterDelay(options_.backoff, attempt, gen);
        if (metrics_.retries != nullptr) metrics_.retries->Inc();
        log::Warn("databricks: write conflict; resubmitting the statement",
                  {{"statement_id", id},
                   {"sql_state", sql_state},
                   {"attempt", attempt + 1},
                   {"delay_ms", static_cast<int64_t>(absl::ToInt64Milliseconds(delay))},
                   {"error", Clip(message, 300)}});
        if (Wait(delay)) continue;
        return fail(absl::CancelledError(
            absl::StrCat("databricks: shutting down; not resubmitting after a conflict in ",
                         Described(id, sql_state, message))));
      }
      const std::string described = Described(id, sql_state, message);
      absl::Status s;
      switch (cls) {
        case StatementErrorClass::kRetry:
          s = absl::AbortedError(absl::StrCat("databricks: write conflict persisted after ",
                                              attempts, " attempts: ", described));
          break;
        case StatementErrorClass::kReprovision:
          s = absl::NotFoundError(absl::StrCat("databricks: table or schema missing: ", described));
          break;
        case StatementErrorClass::kEvolve:
          s = absl::FailedPreconditionError(
              absl::StrCat("databricks: missing column: ", described));
          break;
        case StatementErrorClass::kPermanent:
          s = absl::FailedPreconditionError(
              absl::StrCat("databricks: statement failed: ", described));
          break;
      }
      s.SetPayload(kClassPayload, absl::Cord(std::string(StatementErrorClassName(cls))));
      if (!sql_state.empty()) s.SetPayload(kSqlStatePayload, absl::Cord(sql_state));
      return fail(s);
    }

    if (state == "CANCELED" || state == "CLOSED") {
      if (shutting_down()) {
        return fail(absl::CancelledError(
            absl::StrCat("databricks: shutting down; statement ", id, " was canceled")));
      }
      return fail(absl::AbortedError(
          absl::StrCat("databricks: statement ", id, " ended ", state, " (canceled elsewhere?)")));
    }
    return fail(absl::InternalError(
        absl::StrCat("databricks: statement ", id, " in unexpected state \"", state, "\"")));
  }
}

absl::Status StatementClient::Cancel(const std::string& statement_id) {
  absl::StatusOr<Answer> answer = Call(
      Verb::kCancel, "POST", absl::StrCat(base_url_, kStatementsPath, "/", statement_id, "/cancel"),
      "", options_.request_timeout, true, statement_id);
  if (!answer.ok() && absl::IsNotFound(answer.status())) return absl::OkStatus();  // gone
  return answer.status();
}

void StatementClient::CancelAll() {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
    ids.assign(in_flight_.begin(), in_flight_.end());
  }
  for (const std::string& id : ids) {
    if (absl::Status s = Cancel(id); !s.ok()) {
      log::Warn("databricks: cancel failed",
                {{"statement_id", id}, {"error", std::string(s.message())}});
    } else {
      log::Info("databricks: statement canceled (shutdown)", {{"statement_id", id}});
    }
  }
}

}  // namespace mlc::writer
