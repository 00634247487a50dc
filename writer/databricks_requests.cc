// Counting Databricks HTTP calls by connection and status.
#include "writer/databricks_requests.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace mlc::writer {

DatabricksRequestCounter::DatabricksRequestCounter(Family<Counter>* family, std::string connection)
    : family_(family), connection_(std::move(connection)) {}

void DatabricksRequestCounter::Count(const absl::StatusOr<HttpResponse>& response) const {
  if (family_ == nullptr) return;
  const std::string status = response.ok() ? absl::StrCat(response->status) : "network";
  family_->With({connection_, status})->Inc();
}

absl::StatusOr<HttpResponse> CountingHttpClient::Send(const HttpRequest& request) {
  absl::StatusOr<HttpResponse> response = http_->Send(request);
  counter_.Count(response);
  return response;
}

}  // namespace mlc::writer
