// Counting a Databricks workspace's HTTP calls for DESIGN.md §6 ("Databricks
// requests by status"): mlc_databricks_requests_total{connection, status}, where
// status is the HTTP status code ("200", "429", ...) or "network" when no answer
// came (refused, timed out, dropped). Labels stay bounded: a connection id and a
// status, never a path, statement id or token.
//
// DatabricksRequestCounter is what the token source and the statement client
// count with (every attempt, retries included). CountingHttpClient forwards to
// another HttpClient and counts each call; the writer puts it in front of the
// Unity Catalog calls that DatabricksSink makes itself.
//
// Both are thread-safe. A default-constructed counter counts nothing. The Family
// and the wrapped HttpClient are not owned and must outlive these objects.
#pragma once

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "common/http_client.h"
#include "common/metrics.h"

namespace mlc::writer {

class DatabricksRequestCounter {
 public:
  DatabricksRequestCounter() = default;
  // `family` has the labels {connection, status}; null counts nothing.
  DatabricksRequestCounter(Family<Counter>* family, std::string connection);

  // Counts one HTTP call by its outcome (HttpClient::Send's result).
  void Count(const absl::StatusOr<HttpResponse>& response) const;

 private:
  Family<Counter>* family_ = nullptr;
  std::string connection_;
};

class CountingHttpClient final : public HttpClient {
 public:
  CountingHttpClient(HttpClient* http, DatabricksRequestCounter counter)
      : http_(http), counter_(std::move(counter)) {}

  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override;

 private:
  HttpClient* const http_;
  const DatabricksRequestCounter counter_;
};

}  // namespace mlc::writer
