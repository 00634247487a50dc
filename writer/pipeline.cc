#include "writer/pipeline.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "writer/event_mapping.h"

namespace mlc::writer {
namespace {

// Upper bound on one idle wait, so a missed notification costs at most this.
constexpr absl::Duration kMaxIdleWait = absl::Seconds(1);
// How often events of a connection awaiting (re-)authorization are looked at.
constexpr absl::Duration kAuthorizationWait = absl::Seconds(15);

// The retry budget (retry.max_age_hours) runs from arrival, or from the latest
// replay: an operator who replays an old delivery gives it a fresh budget.
absl::Time RetryBudgetStart(const Delivery& d) {
  return d.replayed_at.has_value() ? std::max(d.received_at, *d.replayed_at) : d.received_at;
}

}  // namespace

Pipeline::Pipeline(Journal* journal, Sink* sink, Hydrator* hydrator, Clock* clock,
                   BatchConfig batch, RetryConfig retry, PipelineMetrics metrics)
    : Pipeline(
          journal, [sink](const std::string&) { return sink; }, hydrator, clock, batch, retry,
          metrics) {}

Pipeline::Pipeline(Journal* journal, SinkFor sink_for, Hydrator* hydrator, Clock* clock,
                   BatchConfig batch, RetryConfig retry, PipelineMetrics metrics)
    : journal_(journal),
      sink_for_(std::move(sink_for)),
      hydrator_(hydrator),
      clock_(clock),
      batch_(batch),
      retry_(retry),
      backoff_{absl::Milliseconds(retry.initial_ms), absl::Milliseconds(retry.max_ms)},
      metrics_(metrics) {}

Pipeline::~Pipeline() { Stop(); }

void Pipeline::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void Pipeline::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void Pipeline::Notify(int n) {
  absl::MutexLock lock(&mu_);
  notified_ += n;
}

void Pipeline::WaitFor(absl::Time deadline, int64_t want) {
  absl::MutexLock lock(&mu_);
  auto ready = [this, want]()
                   ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || notified_ >= want; };
  mu_.AwaitWithDeadline(absl::Condition(&ready), std::min(deadline, absl::Now() + kMaxIdleWait));
}

void Pipeline::Loop() {
  const absl::Duration max_delay = absl::Milliseconds(batch_.max_delay_ms);
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      notified_ = 0;
    }
    const absl::Time now = clock_->Now();
    absl::StatusOr<std::vector<Delivery>> due = journal_->FetchDue(now, batch_.max_rows);
    if (!due.ok()) {
      log::Error("pipeline: cannot read the journal", {{"error", due.status().ToString()}});
      WaitFor(absl::Now() + kMaxIdleWait, INT64_MAX);
      continue;
    }
    if (due->empty()) {
      absl::StatusOr<std::optional<absl::Time>> next = journal_->NextAvailable();
      absl::Time deadline = absl::Now() + kMaxIdleWait;
      if (next.ok() && next->has_value()) {
        deadline = std::min(deadline, absl::Now() + (**next - now));
      }
      WaitFor(deadline, 1);
      continue;
    }
    if (static_cast<int>(due->size()) < batch_.max_rows) {
      absl::Time oldest = due->front().available_at;
      for (const Delivery& d : *due) oldest = std::min(oldest, d.available_at);
      const absl::Duration left = oldest + max_delay - now;
      if (left > absl::ZeroDuration()) {
        // Not full and not old enough yet: wait for more rows or the deadline.
        WaitFor(absl::Now() + left, batch_.max_rows - static_cast<int64_t>(due->size()));
        absl::MutexLock lock(&mu_);
        if (!stopping_) continue;
      }
    }
    ProcessBatch(*due);
  }
}

int Pipeline::ProcessBatch(const std::vector<Delivery>& batch) {
  if (batch.empty()) return 0;
  if (metrics_.batch_rows != nullptr) {
    metrics_.batch_rows->Observe(static_cast<double>(batch.size()));
  }

  std::vector<Hydrated> hydrated = hydrator_->Hydrate(batch);
  // Deliveries are written per sink: every connection may have its own
  // workspace (the embedded default has one sink for all).
  std::map<Sink*, WriteGroup> groups;
  // Deliveries that failed hydration the same way are recorded together (one
  // journal commit, e.g. for every event of a connection awaiting authorization).
  std::map<std::pair<int, std::string>, std::vector<size_t>> hydrate_failures;
  for (size_t i = 0; i < batch.size(); ++i) {
    Hydrated& h = hydrated[i];
    if (!h.status.ok()) {
      hydrate_failures[{static_cast<int>(h.status.code()), std::string(h.status.message())}]
          .push_back(i);
      continue;
    }
    Sink* sink = sink_for_(batch[i].connection_id);
    if (sink == nullptr) {
      Fail({batch[i]},
           absl::FailedPreconditionError(absl::StrCat("connection \"", batch[i].connection_id,
                                                      "\" is not configured in this writer")),
           "write", absl::ZeroDuration());
      continue;
    }
    WriteGroup& g = groups[sink];
    if (!h.attempt.stage.empty()) g.attempts.push_back(h.attempt);
    g.deliveries.push_back(batch[i]);
    g.data.push_back(std::move(h.data));
    g.rows.push_back(std::move(h.rows));
  }
  for (const auto& [cause, members] : hydrate_failures) {
    std::vector<Delivery> those;
    for (size_t i : members) those.push_back(batch[i]);
    const Hydrated& first = hydrated[members.front()];
    Fail(those, first.status, "hydrate", first.attempt.duration, first.attempt.http_status);
  }
  int written = 0;
  for (auto& [sink, group] : groups) written += Write(sink, group);
  return written;
}

int Pipeline::Write(Sink* sink, WriteGroup& group) {
  const absl::Time start = clock_->Now();
  // Entity tables first, one upsert per table; a failing table fails only the
  // deliveries with rows in it.
  std::map<const TableSpec*, std::pair<std::vector<Row>, std::vector<size_t>>> tables;
  for (size_t i = 0; i < group.deliveries.size(); ++i) {
    for (MappedRow& r : group.rows[i]) {
      auto& [rows, members] = tables[r.table];
      rows.push_back(std::move(r.row));
      if (members.empty() || members.back() != i) members.push_back(i);
    }
  }
  std::set<std::string> failed_ids;  // deliveries with a table that failed
  for (auto& [table, entry] : tables) {
    const absl::Time t0 = absl::Now();
    absl::Status s = sink->Upsert(*table, entry.first);
    const absl::Duration took = absl::Now() - t0;
    if (metrics_.sink_seconds != nullptr) {
      metrics_.sink_seconds->Observe(absl::ToDoubleSeconds(took));
    }
    if (s.ok()) continue;
    if (metrics_.sink_up != nullptr) metrics_.sink_up->Set(0);
    std::vector<Delivery> those;
    std::set<std::string> those_ids;
    for (size_t i : entry.second) {
      if (failed_ids.count(group.deliveries[i].delivery_id) > 0) continue;
      those.push_back(group.deliveries[i]);
      those_ids.insert(group.deliveries[i].delivery_id);
    }
    failed_ids.insert(those_ids.begin(), those_ids.end());
    std::vector<Attempt> prior;
    for (const Attempt& a : group.attempts) {
      if (those_ids.count(a.delivery_id) > 0) prior.push_back(a);
    }
    if (!those.empty()) {
      Fail(those, absl::Status(s.code(), absl::StrCat("table ", table->name, ": ", s.message())),
           "write", took, 0, std::move(prior), sink->Name());
    }
  }
  std::vector<Delivery> ready;
  std::vector<Attempt> attempts;
  std::vector<Row> rows;
  for (size_t i = 0; i < group.deliveries.size(); ++i) {
    if (failed_ids.count(group.deliveries[i].delivery_id) > 0) continue;
    ready.push_back(group.deliveries[i]);
    rows.push_back(FreshBooksEventRow(group.deliveries[i], group.data[i], start));
  }
  for (Attempt& a : group.attempts) {
    if (failed_ids.count(a.delivery_id) == 0) attempts.push_back(std::move(a));
  }
  if (ready.empty()) return 0;
  const absl::Time t0 = absl::Now();
  absl::Status s = sink->Upsert(FreshBooksEventsTable(), rows);
  const absl::Duration took = absl::Now() - t0;
  if (metrics_.sink_seconds != nullptr) metrics_.sink_seconds->Observe(absl::ToDoubleSeconds(took));
  if (metrics_.sink_up != nullptr) metrics_.sink_up->Set(s.ok() ? 1 : 0);
  if (!s.ok()) {
    Fail(ready, s, "write", took, 0, std::move(attempts), sink->Name());
    return 0;
  }

  const absl::Time done = clock_->Now();
  std::vector<std::string> ids;
  ids.reserve(ready.size());
  for (const Delivery& d : ready) {
    ids.push_back(d.delivery_id);
    Attempt a;
    a.delivery_id = d.delivery_id;
    a.stage = "write";
    a.outcome = "ok";
    a.duration = took;
    a.at = done;
    attempts.push_back(std::move(a));
    if (metrics_.end_to_end_seconds != nullptr) {
      metrics_.end_to_end_seconds->Observe(absl::ToDoubleSeconds(done - d.received_at));
    }
  }
  absl::Status m = journal_->MarkWrittenSync(ids, std::move(attempts));
  if (!m.ok()) {
    // The rows are in the sink; they stay pending and are rewritten (a no-op).
    log::Error("pipeline: cannot mark deliveries written",
               {{"error", m.ToString()}, {"count", static_cast<int64_t>(ids.size())}});
    return 0;
  }
  if (metrics_.deliveries != nullptr) {
    metrics_.deliveries->With({"written"})->Inc(static_cast<double>(ids.size()));
  }
  log::Debug("pipeline: batch written", {{"rows", static_cast<int64_t>(ids.size())},
                                         {"sink", sink->Name()},
                                         {"ms", absl::ToDoubleMilliseconds(took)}});
  return static_cast<int>(ids.size());
}

void Pipeline::Fail(const std::vector<Delivery>& batch, const absl::Status& status,
                    const std::string& stage, absl::Duration took, int http_status,
                    std::vector<Attempt> prior, const std::string& sink_name) {
  const absl::Time now = clock_->Now();
  const absl::Duration max_age = absl::Hours(retry_.max_age_hours);
  const bool transient = IsTransient(status);
  // Waiting for (re-)authorization is neither a failure to back off from nor a
  // reason to give up: look again regularly, for as long as it takes.
  const bool waiting = status.code() == absl::StatusCode::kUnauthenticated;
  std::vector<std::pair<std::string, absl::Time>> retries;
  std::vector<std::string> dead;
  std::vector<Attempt> retry_attempts, dead_attempts;
  for (const Delivery& d : batch) {
    Attempt a;
    a.delivery_id = d.delivery_id;
    a.stage = stage;
    a.http_status = http_status;
    a.error = std::string(status.message());
    a.duration = took;
    a.at = now;
    if (waiting) {
      a.outcome = "wait";
      retries.emplace_back(d.delivery_id, now + kAuthorizationWait);
      retry_attempts.push_back(std::move(a));
    } else if (transient && now - RetryBudgetStart(d) < max_age) {
      a.outcome = "retry";
      retries.emplace_back(d.delivery_id, now + FullJitterDelay(backoff_, d.attempts, gen_));
      retry_attempts.push_back(std::move(a));
    } else {
      a.outcome = "dead";
      dead.push_back(d.delivery_id);
      dead_attempts.push_back(std::move(a));
    }
  }
  // Earlier stages' attempts go with whichever record is written, first, so the
  // audit trail reads in the order things happened.
  std::vector<Attempt>& with = retries.empty() ? dead_attempts : retry_attempts;
  with.insert(with.begin(), std::make_move_iterator(prior.begin()),
              std::make_move_iterator(prior.end()));
  if (!retries.empty()) {
    log::Warn("pipeline: will retry", {{"stage", stage},
                                       {"sink", sink_name},
                                       {"count", static_cast<int64_t>(retries.size())},
                                       {"error", status.ToString()}});
    absl::Status s =
        journal_->MarkRetrySync(retries, std::string(status.message()), std::move(retry_attempts));
    if (!s.ok()) log::Error("pipeline: cannot record retry", {{"error", s.ToString()}});
    if (metrics_.deliveries != nullptr) {
      metrics_.deliveries->With({waiting ? "wait" : "retry"})
          ->Inc(static_cast<double>(retries.size()));
    }
  }
  if (!dead.empty()) {
    const std::string reason = transient ? absl::StrCat("gave up after ", retry_.max_age_hours,
                                                        "h of retries: ", status.message())
                                         : std::string(status.message());
    log::Error(
        "pipeline: deliveries are dead (replayable once the cause is fixed)",
        {{"stage", stage}, {"count", static_cast<int64_t>(dead.size())}, {"reason", reason}});
    absl::Status s = journal_->MarkDeadSync(dead, reason, std::move(dead_attempts));
    if (!s.ok()) log::Error("pipeline: cannot record dead letters", {{"error", s.ToString()}});
    if (metrics_.deliveries != nullptr) {
      metrics_.deliveries->With({"dead"})->Inc(static_cast<double>(dead.size()));
    }
  }
}

}  // namespace mlc::writer
