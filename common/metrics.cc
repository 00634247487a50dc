#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mlc {
namespace {

enum Kind : int { kCounter = 0, kGauge = 1, kHistogram = 2 };

// Misuse of the registry is a bug in our code (or a bad constant), never input
// from the outside world, so it stops the process with a message naming the metric.
[[noreturn]] void Fatal(const std::string& message) {
  std::fprintf(stderr, "fatal: metrics: %s\n", message.c_str());
  std::fflush(stderr);
  std::abort();
}

// std::atomic<double>::fetch_add is C++20; this is the C++17 equivalent.
void AtomicAdd(std::atomic<double>& target, double v) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + v, std::memory_order_relaxed)) {
  }
}

bool IsMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

bool IsLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// Prometheus number spelling: integral values without a decimal point, others in
// the shortest form that round-trips (as the Go client's 'g' format), and the
// special values as +Inf, -Inf and NaN.
std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::to_chars_result result;
  // Below 1e15 every integral double is exact as an int64 and prints as one.
  if (std::fabs(v) < 1e15 && v == std::trunc(v)) {
    result = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
  } else {
    result = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general);
  }
  return std::string(buf, result.ptr);
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// `{a="x",b="y"}`, with `extra` (already rendered, e.g. `le="0.5"`) appended;
// empty when there are no labels at all.
std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra = "") {
  std::vector<std::string> pairs;
  pairs.reserve(names.size() + 1);
  for (size_t i = 0; i < names.size(); ++i) {
    pairs.push_back(absl::StrCat(names[i], "=\"", EscapeLabelValue(values[i]), "\""));
  }
  if (!extra.empty()) pairs.push_back(extra);
  if (pairs.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(pairs, ","), "}");
}

void ValidateFamily(const std::string& name, const std::vector<std::string>& label_names,
                    bool histogram) {
  if (!IsMetricName(name)) {
    Fatal(absl::StrCat("invalid metric name \"", name, "\" (want [a-zA-Z_:][a-zA-Z0-9_:]*)"));
  }
  for (const std::string& label : label_names) {
    if (!IsLabelName(label)) {
      Fatal(absl::StrCat("metric ", name, ": invalid label name \"", label,
                         "\" (want [a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
    }
    if (histogram && label == "le") {
      Fatal(absl::StrCat("histogram ", name, ": label name \"le\" is reserved"));
    }
    if (std::count(label_names.begin(), label_names.end(), label) > 1) {
      Fatal(absl::StrCat("metric ", name, ": label name \"", label, "\" appears twice"));
    }
  }
}

template <typename T>
std::unique_ptr<T> MakeChild(const std::vector<double>& bounds) {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_unique<Histogram>(bounds);
  } else {
    (void)bounds;
    return std::make_unique<T>();
  }
}

}  // namespace

void Counter::Inc(double v) {
  // Counters only go up; a negative (or NaN) increment is a caller bug that
  // must not corrupt the series, so it is dropped.
  if (!(v > 0)) return;
  AtomicAdd(value_, v);
}

void Gauge::Add(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  // A trailing +Inf is implied; accept it being spelled out.
  if (!bounds_.empty() && std::isinf(bounds_.back()) && bounds_.back() > 0) bounds_.pop_back();
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (std::isnan(bounds_[i]) || (i > 0 && !(bounds_[i - 1] < bounds_[i]))) {
      Fatal("histogram bucket bounds must be strictly ascending and not NaN");
    }
  }
  buckets_ = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  // Bucket i counts observations in (bounds_[i-1], bounds_[i]]; NaN only reaches +Inf.
  size_t index = bounds_.size();
  if (!std::isnan(v)) {
    index =
        static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  }
  buckets_[index].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

uint64_t Histogram::Count() const {
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
  }
  return total;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

template <typename T>
T* Family<T>::With(const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names_.size()) {
    Fatal(absl::StrCat("metric ", name_, ": With() got ", label_values.size(), " label values for ",
                       label_names_.size(), " label names [", absl::StrJoin(label_names_, ","),
                       "]"));
  }
  absl::MutexLock lock(&mu_);
  auto it = children_.find(label_values);
  if (it == children_.end()) {
    it = children_.emplace(label_values, MakeChild<T>(bounds_)).first;
  }
  return it->second.get();
}

template Counter* Family<Counter>::With(const std::vector<std::string>&);
template Gauge* Family<Gauge>::With(const std::vector<std::string>&);
template Histogram* Family<Histogram>::With(const std::vector<std::string>&);

void Registry::CheckNewNameLocked(const std::string& name) const {
  const auto taken = [&name](const auto& families) {
    return std::any_of(families.begin(), families.end(),
                       [&name](const auto& family) { return family->name_ == name; });
  };
  if (taken(counters_) || taken(gauges_) || taken(histograms_)) {
    Fatal(absl::StrCat("metric family \"", name,
                       "\" registered twice; register each family once and share the pointer"));
  }
}

Family<Counter>* Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> label_names) {
  ValidateFamily(name, label_names, /*histogram=*/false);
  const bool unlabelled = label_names.empty();
  std::unique_ptr<Family<Counter>> family(
      new Family<Counter>(name, help, std::move(label_names), {}));
  // A family without labels has exactly one series, exposed from the start.
  if (unlabelled) family->With({});
  absl::MutexLock lock(&mu_);
  CheckNewNameLocked(name);
  counters_.push_back(std::move(family));
  order_.emplace_back(kCounter, counters_.size() - 1);
  return counters_.back().get();
}

Family<Gauge>* Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> label_names) {
  ValidateFamily(name, label_names, /*histogram=*/false);
  const bool unlabelled = label_names.empty();
  std::unique_ptr<Family<Gauge>> family(new Family<Gauge>(name, help, std::move(label_names), {}));
  if (unlabelled) family->With({});
  absl::MutexLock lock(&mu_);
  CheckNewNameLocked(name);
  gauges_.push_back(std::move(family));
  order_.emplace_back(kGauge, gauges_.size() - 1);
  return gauges_.back().get();
}

Family<Histogram>* Registry::AddHistogram(const std::string& name, const std::string& help,
                                          std::vector<std::string> label_names,
                                          std::vector<double> bounds) {
  ValidateFamily(name, label_names, /*histogram=*/true);
  // Validate the bounds now (a throwaway Histogram aborts on bad ones), so a bad
  // constant fails at registration rather than on the first labelled observation.
  bounds = Histogram(std::move(bounds)).bounds();
  const bool unlabelled = label_names.empty();
  std::unique_ptr<Family<Histogram>> family(
      new Family<Histogram>(name, help, std::move(label_names), std::move(bounds)));
  if (unlabelled) family->With({});
  absl::MutexLock lock(&mu_);
  CheckNewNameLocked(name);
  histograms_.push_back(std::move(family));
  order_.emplace_back(kHistogram, histograms_.size() - 1);
  return histograms_.back().get();
}

std::string Registry::Render() const {
  std::string out;
  // Shared by the three kinds; `sample` appends one child's lines.
  const auto render_family = [&out](const auto& family, const char* type, const auto& sample) {
    absl::StrAppend(&out, "# HELP ", family.name_, " ", EscapeHelp(family.help_), "\n");
    absl::StrAppend(&out, "# TYPE ", family.name_, " ", type, "\n");
    absl::MutexLock lock(&family.mu_);
    // std::map keeps children sorted by label values.
    for (const auto& [label_values, child] : family.children_) {
      sample(family, label_values, *child);
    }
  };
  const auto scalar = [&out](const auto& family, const std::vector<std::string>& values,
                             const auto& child) {
    absl::StrAppend(&out, family.name_, LabelSet(family.label_names_, values), " ",
                    FormatNumber(child.Value()), "\n");
  };
  const auto histogram = [&out](const Family<Histogram>& family,
                                const std::vector<std::string>& values, const Histogram& child) {
    const std::vector<uint64_t> counts = child.CumulativeCounts();
    const double sum = child.Sum();
    const std::vector<double>& bounds = child.bounds();
    for (size_t i = 0; i < counts.size(); ++i) {
      const std::string le = i < bounds.size() ? FormatNumber(bounds[i]) : "+Inf";
      absl::StrAppend(&out, family.name_, "_bucket",
                      LabelSet(family.label_names_, values, absl::StrCat("le=\"", le, "\"")), " ",
                      counts[i], "\n");
    }
    const std::string labels = LabelSet(family.label_names_, values);
    absl::StrAppend(&out, family.name_, "_sum", labels, " ", FormatNumber(sum), "\n");
    // _count from the same snapshot as the buckets, so it always equals le="+Inf".
    absl::StrAppend(&out, family.name_, "_count", labels, " ", counts.back(), "\n");
  };

  absl::MutexLock lock(&mu_);
  for (const auto& [kind, index] : order_) {
    switch (kind) {
      case kCounter:
        render_family(*counters_[index], "counter", scalar);
        break;
      case kGauge:
        render_family(*gauges_[index], "gauge", scalar);
        break;
      case kHistogram:
        render_family(*histograms_[index], "histogram", histogram);
        break;
      default:
        break;
    }
  }
  return out;
}

}  // namespace mlc
