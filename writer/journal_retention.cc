#include "writer/journal_retention.h"

#include "common/logging.h"

namespace mlc::writer {

JournalRetention::JournalRetention(Journal* journal, Clock* clock, int retention_days,
                                   absl::Duration interval, RetentionMetrics metrics)
    : journal_(journal),
      clock_(clock),
      retention_days_(retention_days),
      interval_(interval),
      metrics_(metrics) {}

JournalRetention::~JournalRetention() { Stop(); }

void JournalRetention::Start() {
  if (retention_days_ <= 0) {
    log::Info("journal: audit retention off (writer.audit_retention_days: 0); keeping everything");
    return;
  }
  thread_ = std::thread([this] { Loop(); });
}

void JournalRetention::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

bool JournalRetention::stopping() const {
  absl::MutexLock lock(&mu_);
  return stopping_;
}

void JournalRetention::Loop() {
  while (true) {
    absl::StatusOr<int64_t> removed = RunOnce();
    if (!removed.ok()) {
      log::Error("journal: audit retention compaction failed; trying again next interval",
                 {{"error", removed.status().ToString()}});
    }
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), interval_);
    if (stopping_) return;
  }
}

absl::StatusOr<int64_t> JournalRetention::RunOnce() {
  if (retention_days_ <= 0) return 0;
  const absl::Time start = clock_->Now();
  const absl::Time cutoff = start - absl::Hours(24) * retention_days_;
  const absl::Time t0 = absl::Now();
  absl::StatusOr<int64_t> removed =
      journal_->Compact(cutoff, kRowsPerTransaction, [this] { return stopping(); });
  const int64_t bytes = journal_->FileBytes();
  if (metrics_.journal_bytes != nullptr) metrics_.journal_bytes->Set(static_cast<double>(bytes));
  if (!removed.ok()) return removed;
  if (metrics_.compacted != nullptr) metrics_.compacted->Inc(static_cast<double>(*removed));
  {
    absl::MutexLock lock(&mu_);
    last_compaction_ = clock_->Now();
    compacted_total_ += *removed;
  }
  if (*removed > 0) {
    log::Info("journal: audit retention removed old deliveries",
              {{"removed", *removed},
               {"finished_before", absl::FormatTime(cutoff, absl::UTCTimeZone())},
               {"retention_days", retention_days_},
               {"ms", absl::ToDoubleMilliseconds(absl::Now() - t0)},
               {"journal_bytes", bytes}});
  }
  return removed;
}

RetentionStatus JournalRetention::status() const {
  absl::MutexLock lock(&mu_);
  return RetentionStatus{retention_days_, last_compaction_, compacted_total_};
}

}  // namespace mlc::writer
