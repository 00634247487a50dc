// DESIGN.md §6 through a real Prometheus: both real binaries run, Debian's
// `prometheus` scrapes ingress's /metrics and the writer's metrics port every
// second, and the test asks Prometheus (its HTTP query API), not our own text,
// what it saw - so the exposition format, the HELP/TYPE lines, label escaping
// and histogram series are checked by the consumer that matters.
//
// The prometheus binary is a test dependency (scripts/install-deps installs it);
// without it these tests fail rather than skip, so a machine that cannot run them
// is noticed.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/support/databricks_world.h"
#include "tests/support/freshbooks_world.h"
#include "tests/support/services.h"
#include "tests/support/test_util.h"
#include "writer/freshbooks_entities.h"

namespace mlc::testing {
namespace {

using json = nlohmann::json;

constexpr char kInstallHint[] =
    "the prometheus binary is not installed (looked on PATH and in /usr/bin): run "
    "scripts/install-deps, which installs Debian's prometheus package";

// How long Prometheus gets to show a value: a few scrapes at 1 s, with slack for
// a loaded machine.
constexpr std::chrono::seconds kScrapeWait{20};

std::string Text(const json* j) {
  const auto* s = j == nullptr ? nullptr : j->get_ptr<const std::string*>();
  return s == nullptr ? "" : *s;
}

// The prometheus executable, or "" if there is none.
std::string FindPrometheus() {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    dirs = absl::StrSplit(path, ':', absl::SkipEmpty());
  }
  dirs.emplace_back("/usr/bin");
  for (const std::string& dir : dirs) {
    const std::string candidate = dir + "/prometheus";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

struct Sample {
  std::map<std::string, std::string> labels;
  double value = NAN;
};

// A real Prometheus server on a free loopback port, with its own storage in a
// temp dir, scraping `jobs` (job name -> port on 127.0.0.1) every second.
class PrometheusServer {
 public:
  PrometheusServer(const std::string& binary, const std::map<std::string, int>& jobs)
      : port_(PickFreePort()) {
    std::string config =
        "global:\n"
        "  scrape_interval: 1s\n"
        "  scrape_timeout: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n";
    for (const auto& [job, port] : jobs) {
      absl::StrAppend(&config, "  - job_name: \"", job, "\"\n", "    static_configs:\n",
                      "      - targets: [\"127.0.0.1:", port, "\"]\n");
    }
    WriteFile(dir_.File("prometheus.yml"), config);
    process_ = std::make_unique<Process>(
        std::vector<std::string>{binary, "--config.file=" + dir_.File("prometheus.yml"),
                                 "--storage.tsdb.path=" + dir_.File("data"),
                                 absl::StrCat("--web.listen-address=127.0.0.1:", port_),
                                 "--log.level=warn"},
        std::map<std::string, std::string>{}, dir_.File("prometheus.log"));
  }

  ~PrometheusServer() {
    if (process_->Running()) {
      process_->Kill(SIGTERM);
      if (process_->Wait(std::chrono::seconds(10)) == -1) process_->Kill(SIGKILL);
    }
  }

  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  bool WaitReady() {
    return WaitFor(
        [&] {
          httplib::Client client("127.0.0.1", port_);
          client.set_connection_timeout(1, 0);
          auto res = client.Get("/-/ready");
          return res && res->status == 200;
        },
        std::chrono::seconds(20));
  }

  std::string Log() const { return process_->Log(); }

  // GET `path` with `params`; the parsed JSON `data` of a "success" answer, or
  // nullopt with the reason in *error.
  std::optional<json> Api(const std::string& path, const httplib::Params& params,
                          std::string* error) const {
    httplib::Client client("127.0.0.1", port_);
    client.set_connection_timeout(2, 0);
    client.set_read_timeout(5, 0);
    auto res = client.Get(path.c_str(), params, httplib::Headers{});
    if (!res) {
      *error = absl::StrCat("GET ", path, ": no answer");
      return std::nullopt;
    }
    json body = json::parse(res->body, nullptr, false);
    if (res->status != 200 || Text(writer::JsonAt(body, "status")) != "success") {
      *error = absl::StrCat("GET ", path, ": HTTP ", res->status, ": ", res->body);
      return std::nullopt;
    }
    const json* data = writer::JsonAt(body, "data");
    if (data == nullptr) {
      *error = absl::StrCat("GET ", path, ": no data: ", res->body);
      return std::nullopt;
    }
    return *data;
  }

  // An instant query's vector result.
  std::optional<std::vector<Sample>> Query(const std::string& promql, std::string* error) const {
    std::optional<json> data = Api("/api/v1/query", {{"query", promql}}, error);
    if (!data.has_value()) return std::nullopt;
    const json* result = writer::JsonAt(*data, "result");
    if (Text(writer::JsonAt(*data, "resultType")) != "vector" || result == nullptr ||
        !result->is_array()) {
      *error = absl::StrCat(promql, ": not a vector: ", data->dump());
      return std::nullopt;
    }
    std::vector<Sample> out;
    out.reserve(result->size());
    for (const json& item : *result) {
      Sample s;
      if (const json* metric = writer::JsonAt(item, "metric");
          metric != nullptr && metric->is_object()) {
        for (const auto& [k, v] : metric->items()) {
          if (v.is_string()) s.labels[k] = v.get<std::string>();
        }
      }
      const json* value = writer::JsonAt(item, "value");
      if (value != nullptr && value->is_array() && value->size() == 2 && (*value)[1].is_string()) {
        double d = NAN;
        if (absl::SimpleAtod((*value)[1].get<std::string>(), &d)) s.value = d;
      }
      out.push_back(std::move(s));
    }
    return out;
  }

  // Polls `promql` until its single sample satisfies `ok`; the failure names the
  // query and what Prometheus answered last.
  ::testing::AssertionResult Eventually(const std::string& promql,
                                        const std::function<bool(double)>& ok,
                                        const std::string& want) const {
    std::string last = "no answer yet";
    const bool met = WaitFor(
        [&] {
          std::string error;
          std::optional<std::vector<Sample>> samples = Query(promql, &error);
          if (!samples.has_value()) {
            last = error;
            return false;
          }
          if (samples->size() != 1) {
            last = absl::StrCat(samples->size(), " samples");
            return false;
          }
          last = absl::StrCat((*samples)[0].value);
          return ok((*samples)[0].value);
        },
        kScrapeWait);
    if (met) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << promql << ": want " << want << ", Prometheus says " << last;
  }
  ::testing::AssertionResult EventuallyEquals(const std::string& promql, double want) const {
    return Eventually(
        promql, [want](double v) { return v == want; }, absl::StrCat(want));
  }
  ::testing::AssertionResult EventuallyAtLeast(const std::string& promql, double want) const {
    return Eventually(
        promql, [want](double v) { return v >= want; }, absl::StrCat(">= ", want));
  }

  // Every active target is up and its last scrape had no error.
  ::testing::AssertionResult TargetsHealthy(size_t want_targets) const {
    std::string error;
    std::optional<json> data = Api("/api/v1/targets", {{"state", "active"}}, &error);
    if (!data.has_value()) return ::testing::AssertionFailure() << error;
    const json* targets = writer::JsonAt(*data, "activeTargets");
    if (targets == nullptr || !targets->is_array() || targets->size() != want_targets) {
      return ::testing::AssertionFailure()
             << "want " << want_targets << " active targets: " << data->dump();
    }
    for (const json& t : *targets) {
      if (Text(writer::JsonAt(t, "health")) != "up" ||
          !Text(writer::JsonAt(t, "lastError")).empty()) {
        return ::testing::AssertionFailure() << "unhealthy scrape target: " << t.dump();
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  TempDir dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

// Waits until Prometheus has both jobs up and has scraped them without errors.
void ExpectBothJobsUp(const PrometheusServer& prom) {
  EXPECT_TRUE(prom.EventuallyEquals(R"(up{job="ingress"})", 1)) << prom.Log();
  EXPECT_TRUE(prom.EventuallyEquals(R"(up{job="writer"})", 1)) << prom.Log();
  EXPECT_TRUE(prom.TargetsHealthy(2)) << prom.Log();
}

// Series of a family Prometheus holds (histograms: pass the _count series).
::testing::AssertionResult FamilyPresent(const PrometheusServer& prom, const std::string& name) {
  return prom.EventuallyAtLeast(absl::StrCat("count({__name__=\"", name, "\"})"), 1);
}

// A requests-by-status family's series carry exactly connection and status (an
// HTTP code or "network"), plus Prometheus' own job and instance: no ids, paths
// or anything else that would grow without bound.
void ExpectBoundedStatusLabels(const PrometheusServer& prom, const std::string& family) {
  std::string error;
  std::optional<std::vector<Sample>> samples = prom.Query(family, &error);
  ASSERT_TRUE(samples.has_value()) << error;
  ASSERT_FALSE(samples->empty()) << family;
  const std::set<std::string> want_keys = {"__name__", "connection", "instance", "job", "status"};
  // An HTTP status code or "network" (std::regex trips GCC 12 warnings under sanitizers).
  const auto is_status = [](const std::string& v) {
    return v == "network" || (v.size() == 3 && v[0] >= '1' && v[0] <= '5' &&
                              absl::ascii_isdigit(static_cast<unsigned char>(v[1])) &&
                              absl::ascii_isdigit(static_cast<unsigned char>(v[2])));
  };
  for (const Sample& s : *samples) {
    std::set<std::string> keys;
    for (const auto& [k, v] : s.labels) keys.insert(k);
    EXPECT_EQ(keys, want_keys) << family;
    const auto status = s.labels.find("status");
    ASSERT_NE(status, s.labels.end());
    EXPECT_TRUE(is_status(status->second)) << family << ": " << status->second;
    EXPECT_EQ(s.labels.at("connection"), "acme");
  }
}

TEST(PrometheusTest, ScrapesBothServicesAndSeesEveryWebhookOnce) {
  const std::string binary = FindPrometheus();
  ASSERT_FALSE(binary.empty()) << kInstallHint;

  Services s;
  s.StartAll();
  PrometheusServer prom(binary, {{"ingress", s.ingress_port()}, {"writer", s.metrics_port()}});
  ASSERT_TRUE(prom.WaitReady()) << prom.Log();

  constexpr int kWebhooks = 25;
  for (int i = 0; i < kWebhooks; ++i) {
    Services::Answer a = s.Send(StandardEvent("invoice.create", absl::StrCat(9000 + i)));
    ASSERT_EQ(a.status, 202) << a.body << s.IngressLog();
  }
  // One unsigned request: counted under its own outcome, not as accepted.
  EXPECT_EQ(
      s.SendRaw("name=invoice.create", "application/x-www-form-urlencoded", std::nullopt).status,
      401);
  ASSERT_TRUE(WaitFor([&] { return s.EventRowCounts().size() == kWebhooks; })) << s.WriterLog();

  ExpectBothJobsUp(prom);
  // Webhooks by outcome; ack latency; journal depth; written; end to end.
  EXPECT_TRUE(prom.EventuallyEquals(R"(sum(mlc_webhooks_total{outcome="accepted"}))", kWebhooks));
  EXPECT_TRUE(prom.EventuallyEquals(R"(sum(mlc_webhooks_total{outcome!="accepted"}))", 1));
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_webhook_ack_seconds_count{job="ingress"})", kWebhooks));
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_webhook_ack_seconds_bucket{job="ingress",le="+Inf"})",
                                    kWebhooks));
  EXPECT_TRUE(
      prom.EventuallyEquals(R"(mlc_pipeline_deliveries_total{outcome="written"})", kWebhooks));
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_journal_deliveries{status="written"})", kWebhooks));
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_journal_deliveries{status="pending"})", 0));
  EXPECT_TRUE(prom.EventuallyAtLeast(R"(mlc_end_to_end_seconds_count{job="writer"})", kWebhooks));
  // Dead letters are series from the start, at 0.
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_journal_deliveries{status="dead"})", 0));
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_pipeline_deliveries_total{outcome="dead"})", 0));
  // Histograms are whole: buckets, sum and count.
  EXPECT_TRUE(prom.EventuallyAtLeast(R"(mlc_end_to_end_seconds_sum{job="writer"})", 0));
  EXPECT_TRUE(FamilyPresent(prom, "mlc_end_to_end_seconds_bucket"));
  EXPECT_TRUE(prom.TargetsHealthy(2)) << prom.Log();
}

// The §6 families that need FreshBooks and Databricks, against the fakes: a
// FreshBooks invoice arrives as a webhook, is hydrated from the fake FreshBooks
// and written to the fake Databricks, whose events table has a column of another
// type - so the delivery becomes a dead letter, the way an operator meets one.
TEST(PrometheusTest, FreshBooksAndDatabricksRequestsAndDeadLettersAreScraped) {
  const std::string binary = FindPrometheus();
  ASSERT_FALSE(binary.empty()) << kInstallHint;

  DatabricksWorld dbx;
  ASSERT_TRUE(dbx.engine().CreateSchemaDirect("finance", "freshbooks").ok());
  ASSERT_TRUE(dbx.engine()
                  .CreateTableDirect("finance.freshbooks.freshbooks_events",
                                     {{"delivery_id", "STRING", false}, {"received_at", "BIGINT"}})
                  .ok());
  FreshBooksWorldOptions o;
  o.services.sink = "databricks";
  o.services.databricks_host = dbx.url();
  o.services.max_delay_ms = 50;
  FreshBooksWorld w(o);
  Services& s = w.services();
  w.StartAuthorized();
  PrometheusServer prom(binary, {{"ingress", s.ingress_port()}, {"writer", s.metrics_port()}});
  ASSERT_TRUE(prom.WaitReady()) << prom.Log();

  std::mt19937_64 rng(5);
  w.fb().Create("invoice", NewSample("invoice", rng));  // FreshBooks sends the webhook
  ASSERT_TRUE(WaitFor(
      [&] {
        return s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status = 'dead'") ==
               "1";
      },
      std::chrono::seconds(30)))
      << s.WriterLog();

  ExpectBothJobsUp(prom);
  // Dead letters, both ways.
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_journal_deliveries{status="dead"})", 1));
  EXPECT_TRUE(prom.EventuallyEquals(R"(mlc_pipeline_deliveries_total{outcome="dead"})", 1));
  // FreshBooks requests by status: at least the OAuth code exchange and the
  // invoice's hydration.
  EXPECT_TRUE(prom.EventuallyAtLeast(
      R"(sum(mlc_freshbooks_requests_total{connection="acme",status="200"}))", 2));
  // Databricks requests by status (token, Unity Catalog, statements), statement
  // latency and token refreshes.
  EXPECT_TRUE(prom.EventuallyAtLeast(
      R"(sum(mlc_databricks_requests_total{connection="acme",status="200"}))", 3));
  EXPECT_TRUE(
      prom.EventuallyAtLeast(R"(mlc_databricks_statement_seconds_count{connection="acme"})", 1));
  EXPECT_TRUE(
      prom.EventuallyAtLeast(R"(mlc_databricks_token_refreshes_total{connection="acme"})", 1));
  ExpectBoundedStatusLabels(prom, "mlc_freshbooks_requests_total");
  ExpectBoundedStatusLabels(prom, "mlc_databricks_requests_total");

  // Every family DESIGN.md §6 names is in Prometheus.
  for (const char* family : {
           "mlc_webhooks_total",                      // webhooks by outcome
           "mlc_webhook_ack_seconds_bucket",          // ack latency histogram
           "mlc_journal_deliveries",                  // journal depth by status (dead letters)
           "mlc_pipeline_deliveries_total",           // dead letters as they happen
           "mlc_end_to_end_seconds_count",            // received -> in table
           "mlc_freshbooks_requests_total",           // FreshBooks requests by status
           "mlc_databricks_requests_total",           // Databricks requests by status
           "mlc_databricks_statement_seconds_count",  // statement latency
           "mlc_databricks_token_refreshes_total",    // token refreshes
           "mlc_freshbooks_token_refreshes_total",
       }) {
    EXPECT_TRUE(FamilyPresent(prom, family));
  }
  EXPECT_TRUE(prom.TargetsHealthy(2)) << prom.Log();
}

}  // namespace
}  // namespace mlc::testing
