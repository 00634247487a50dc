#include "common/metrics.h"

#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace mlc {
namespace {

TEST(MetricsTest, EmptyRegistryRendersNothing) {
  Registry registry;
  EXPECT_EQ(registry.Render(), "");
}

TEST(MetricsTest, UnlabelledCounterRendersZeroBeforeFirstUse) {
  Registry registry;
  registry.AddCounter("mlc_token_refreshes_total", "Token refreshes.");
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_token_refreshes_total Token refreshes.\n"
            "# TYPE mlc_token_refreshes_total counter\n"
            "mlc_token_refreshes_total 0\n");
}

TEST(MetricsTest, CounterCountsUpAndIgnoresNegativeIncrements) {
  Registry registry;
  Counter* counter = registry.AddCounter("mlc_dead_letters_total", "Dead letters.")->With({});
  counter->Inc();
  counter->Inc(2);
  counter->Inc(-5);
  counter->Inc(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(counter->Value(), 3);
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_dead_letters_total Dead letters.\n"
            "# TYPE mlc_dead_letters_total counter\n"
            "mlc_dead_letters_total 3\n");
}

TEST(MetricsTest, LabelledCounterRendersOnlyCreatedChildrenSortedByLabelValues) {
  Registry registry;
  Family<Counter>* webhooks =
      registry.AddCounter("mlc_webhooks_total", "Webhooks by outcome.", {"connection", "outcome"});
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_webhooks_total Webhooks by outcome.\n"
            "# TYPE mlc_webhooks_total counter\n");

  webhooks->With({"zeta", "accepted"})->Inc();
  webhooks->With({"acme", "rejected"})->Inc(2);
  webhooks->With({"acme", "accepted"})->Inc(0.5);
  // The same label values return the same child.
  EXPECT_EQ(webhooks->With({"acme", "rejected"}), webhooks->With({"acme", "rejected"}));

  EXPECT_EQ(registry.Render(),
            "# HELP mlc_webhooks_total Webhooks by outcome.\n"
            "# TYPE mlc_webhooks_total counter\n"
            "mlc_webhooks_total{connection=\"acme\",outcome=\"accepted\"} 0.5\n"
            "mlc_webhooks_total{connection=\"acme\",outcome=\"rejected\"} 2\n"
            "mlc_webhooks_total{connection=\"zeta\",outcome=\"accepted\"} 1\n");
}

TEST(MetricsTest, GaugeSetsAndAdds) {
  Registry registry;
  Family<Gauge>* depth = registry.AddGauge("mlc_journal_depth", "Journal entries.", {"status"});
  depth->With({"pending"})->Set(10);
  depth->With({"pending"})->Add(-2.75);
  depth->With({"failed"})->Add(-1);
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_journal_depth Journal entries.\n"
            "# TYPE mlc_journal_depth gauge\n"
            "mlc_journal_depth{status=\"failed\"} -1\n"
            "mlc_journal_depth{status=\"pending\"} 7.25\n");
}

TEST(MetricsTest, NumbersUsePrometheusSpelling) {
  Registry registry;
  Family<Gauge>* g = registry.AddGauge("mlc_values", "Values.", {"case"});
  g->With({"a_int"})->Set(123456789);
  g->With({"b_fraction"})->Set(0.1);
  g->With({"c_large"})->Set(1e20);
  g->With({"d_small"})->Set(5e-7);
  g->With({"e_pos_inf"})->Set(std::numeric_limits<double>::infinity());
  g->With({"f_neg_inf"})->Set(-std::numeric_limits<double>::infinity());
  g->With({"g_nan"})->Set(std::numeric_limits<double>::quiet_NaN());
  g->With({"h_neg_zero"})->Set(-0.0);
  g->With({"i_third"})->Set(1.0 / 3);
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_values Values.\n"
            "# TYPE mlc_values gauge\n"
            "mlc_values{case=\"a_int\"} 123456789\n"
            "mlc_values{case=\"b_fraction\"} 0.1\n"
            "mlc_values{case=\"c_large\"} 1e+20\n"
            "mlc_values{case=\"d_small\"} 5e-07\n"
            "mlc_values{case=\"e_pos_inf\"} +Inf\n"
            "mlc_values{case=\"f_neg_inf\"} -Inf\n"
            "mlc_values{case=\"g_nan\"} NaN\n"
            "mlc_values{case=\"h_neg_zero\"} 0\n"
            "mlc_values{case=\"i_third\"} 0.3333333333333333\n");
}

TEST(MetricsTest, HistogramWithLabelsRendersCumulativeBucketsSumAndCount) {
  Registry registry;
  Family<Histogram>* latency = registry.AddHistogram(
      "mlc_ack_latency_seconds", "Webhook ack latency.", {"connection"}, {0.25, 1, 2.5});
  Histogram* acme = latency->With({"acme"});
  acme->Observe(0.125);
  acme->Observe(0.25);  // bounds are inclusive (le)
  acme->Observe(2);
  acme->Observe(10);
  EXPECT_EQ(acme->CumulativeCounts(), (std::vector<uint64_t>{2, 2, 3, 4}));
  EXPECT_EQ(acme->Count(), 4u);
  EXPECT_EQ(acme->Sum(), 12.375);

  EXPECT_EQ(registry.Render(),
            "# HELP mlc_ack_latency_seconds Webhook ack latency.\n"
            "# TYPE mlc_ack_latency_seconds histogram\n"
            "mlc_ack_latency_seconds_bucket{connection=\"acme\",le=\"0.25\"} 2\n"
            "mlc_ack_latency_seconds_bucket{connection=\"acme\",le=\"1\"} 2\n"
            "mlc_ack_latency_seconds_bucket{connection=\"acme\",le=\"2.5\"} 3\n"
            "mlc_ack_latency_seconds_bucket{connection=\"acme\",le=\"+Inf\"} 4\n"
            "mlc_ack_latency_seconds_sum{connection=\"acme\"} 12.375\n"
            "mlc_ack_latency_seconds_count{connection=\"acme\"} 4\n");
}

TEST(MetricsTest, UnlabelledHistogramRendersZerosBeforeFirstUse) {
  Registry registry;
  registry.AddHistogram("mlc_e2e_seconds", "End to end.", {}, {0.5, 1});
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_e2e_seconds End to end.\n"
            "# TYPE mlc_e2e_seconds histogram\n"
            "mlc_e2e_seconds_bucket{le=\"0.5\"} 0\n"
            "mlc_e2e_seconds_bucket{le=\"1\"} 0\n"
            "mlc_e2e_seconds_bucket{le=\"+Inf\"} 0\n"
            "mlc_e2e_seconds_sum 0\n"
            "mlc_e2e_seconds_count 0\n");
}

TEST(MetricsTest, HistogramPutsNaNOnlyInInfBucket) {
  Histogram histogram({1});
  histogram.Observe(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(histogram.CumulativeCounts(), (std::vector<uint64_t>{0, 1}));
}

TEST(MetricsTest, LatencyBucketsSpanHalfAMillisecondToAMinute) {
  EXPECT_EQ(LatencyBuckets(), (std::vector<double>{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                   0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}));
  Registry registry;
  registry.AddHistogram("mlc_statement_seconds", "Statement latency.");
  const std::string text = registry.Render();
  EXPECT_NE(text.find("mlc_statement_seconds_bucket{le=\"0.0005\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("mlc_statement_seconds_bucket{le=\"0.0025\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("mlc_statement_seconds_bucket{le=\"60\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("mlc_statement_seconds_bucket{le=\"+Inf\"} 0\n"), std::string::npos);
}

TEST(MetricsTest, EscapesLabelValuesAndHelp) {
  Registry registry;
  Family<Counter>* c =
      registry.AddCounter("mlc_escaped_total", "Help with \\ backslash\nand \"quotes\".", {"v"});
  c->With({"a\\b\"c\nd"})->Inc();
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_escaped_total Help with \\\\ backslash\\nand \"quotes\".\n"
            "# TYPE mlc_escaped_total counter\n"
            "mlc_escaped_total{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(MetricsTest, FamiliesRenderInRegistrationOrderAcrossKinds) {
  Registry registry;
  registry.AddGauge("mlc_b", "B.");
  registry.AddHistogram("mlc_c", "C.", {}, {});
  registry.AddCounter("mlc_a", "A.");
  EXPECT_EQ(registry.Render(),
            "# HELP mlc_b B.\n"
            "# TYPE mlc_b gauge\n"
            "mlc_b 0\n"
            "# HELP mlc_c C.\n"
            "# TYPE mlc_c histogram\n"
            "mlc_c_bucket{le=\"+Inf\"} 0\n"
            "mlc_c_sum 0\n"
            "mlc_c_count 0\n"
            "# HELP mlc_a A.\n"
            "# TYPE mlc_a counter\n"
            "mlc_a 0\n");
}

TEST(MetricsTest, ConcurrentIncrementsAreExact) {
  Registry registry;
  Counter* counter = registry.AddCounter("mlc_concurrent_total", "Concurrent.")->With({});
  Gauge* gauge = registry.AddGauge("mlc_concurrent_gauge", "Concurrent.")->With({});
  Histogram* histogram =
      registry.AddHistogram("mlc_concurrent_seconds", "Concurrent.", {}, {0.5})->With({});
  Family<Counter>* labelled = registry.AddCounter("mlc_labelled_total", "Labelled.", {"t"});
  constexpr int kThreads = 4;
  constexpr int kIncrements = 100000;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Counter* mine = labelled->With({std::to_string(t % 2)});
      for (int i = 0; i < kIncrements; ++i) {
        counter->Inc();
        gauge->Add(1);
        histogram->Observe(1);
        mine->Inc();
        if (i % 10000 == 0) registry.Render();  // exposition while writers run
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(counter->Value(), kThreads * kIncrements);
  EXPECT_EQ(gauge->Value(), kThreads * kIncrements);
  EXPECT_EQ(histogram->Count(), static_cast<uint64_t>(kThreads * kIncrements));
  EXPECT_EQ(histogram->Sum(), kThreads * kIncrements);
  EXPECT_EQ(labelled->With({"0"})->Value() + labelled->With({"1"})->Value(),
            kThreads * kIncrements);
  EXPECT_NE(registry.Render().find("mlc_concurrent_total 400000\n"), std::string::npos);
}

using MetricsDeathTest = ::testing::Test;

TEST_F(MetricsDeathTest, RegisteringANameTwiceAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.AddCounter("mlc_twice", "First.");
        registry.AddGauge("mlc_twice", "Second.");
      },
      "metric family \"mlc_twice\" registered twice");
}

TEST_F(MetricsDeathTest, WrongNumberOfLabelValuesAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Registry registry;
        registry.AddCounter("mlc_labels_total", "Labels.", {"connection", "outcome"})
            ->With({"acme"});
      },
      "mlc_labels_total: With\\(\\) got 1 label values for 2 label names");
}

TEST_F(MetricsDeathTest, InvalidNamesAndBoundsAbort) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(Registry().AddCounter("mlc-bad", "Bad."), "invalid metric name \"mlc-bad\"");
  EXPECT_DEATH(Registry().AddCounter("mlc_ok", "Bad label.", {"bad-label"}),
               "invalid label name \"bad-label\"");
  EXPECT_DEATH(Registry().AddHistogram("mlc_h", "Reserved.", {"le"}), "\"le\" is reserved");
  EXPECT_DEATH(Registry().AddHistogram("mlc_h", "Unsorted.", {}, {1, 0.5}), "strictly ascending");
}

}  // namespace
}  // namespace mlc
