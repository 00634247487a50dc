// A fake writer for ingress tests: records every SubmitRequest and answers with
// whatever the test configured (a delivery id, or an error such as Unavailable),
// serves a configurable set of connections and signing keys, and answers
// CompleteAuthorization with a scripted result while recording the last request.
// Thread-safe, so it can sit behind a real IngressServer.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "ingress/writer_client.h"

namespace mlc::testing {

class FakeWriterClient final : public ingress::WriterClient {
 public:
  // Adds a signing key to a connection (creating the connection) and bumps the
  // key-set version, as the writer does when a callback is verified.
  void AddKey(const std::string& connection_id, const std::string& key_id,
              const std::string& secret) {
    absl::MutexLock lock(&mu_);
    keys_[connection_id].emplace_back(key_id, secret);
    ++version_;
  }

  // Makes ListSigningKeys fail with `status` (OK: serve the keys again).
  void SetListStatus(absl::Status status) {
    absl::MutexLock lock(&mu_);
    list_status_ = std::move(status);
  }

  // Makes Submit fail with `status` (OK: answer with delivery ids again).
  void SetSubmitStatus(absl::Status status) {
    absl::MutexLock lock(&mu_);
    submit_status_ = std::move(status);
  }

  // Delivery ids are "<prefix><n>" with n counting accepted submits from 1.
  void SetDeliveryIdPrefix(std::string prefix) {
    absl::MutexLock lock(&mu_);
    id_prefix_ = std::move(prefix);
  }

  // What CompleteAuthorization answers from now on (a response or an error).
  void SetAuthorizationResult(
      absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> result) {
    absl::MutexLock lock(&mu_);
    authorization_result_ = std::move(result);
  }
  size_t authorization_calls() const {
    absl::MutexLock lock(&mu_);
    return authorization_calls_;
  }
  mlconnector::v1::CompleteAuthorizationRequest last_authorization_request() const {
    absl::MutexLock lock(&mu_);
    return last_authorization_request_;
  }
  std::chrono::milliseconds last_authorization_deadline() const {
    absl::MutexLock lock(&mu_);
    return last_authorization_deadline_;
  }

  std::vector<mlconnector::v1::SubmitRequest> submits() const {
    absl::MutexLock lock(&mu_);
    return submits_;
  }
  size_t submit_calls() const {
    absl::MutexLock lock(&mu_);
    return submit_calls_;
  }
  size_t list_calls() const {
    absl::MutexLock lock(&mu_);
    return list_calls_;
  }
  std::chrono::milliseconds last_submit_deadline() const {
    absl::MutexLock lock(&mu_);
    return last_submit_deadline_;
  }

  absl::StatusOr<std::string> Submit(const mlconnector::v1::SubmitRequest& request,
                                     std::chrono::milliseconds deadline) override {
    absl::MutexLock lock(&mu_);
    ++submit_calls_;
    last_submit_deadline_ = deadline;
    if (!submit_status_.ok()) return submit_status_;
    submits_.push_back(request);  // only durable deliveries are "in the journal"
    return absl::StrCat(id_prefix_, submits_.size());
  }

  absl::StatusOr<mlconnector::v1::ListSigningKeysResponse> ListSigningKeys(
      std::chrono::milliseconds /*deadline*/) override {
    absl::MutexLock lock(&mu_);
    ++list_calls_;
    if (!list_status_.ok()) return list_status_;
    mlconnector::v1::ListSigningKeysResponse response;
    for (const auto& [connection_id, keys] : keys_) {
      auto* c = response.add_connections();
      c->set_connection_id(connection_id);
      for (const auto& [key_id, secret] : keys) {
        auto* k = c->add_keys();
        k->set_key_id(key_id);
        k->set_secret(secret);
      }
    }
    response.set_version(version_);
    return response;
  }

  absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> CompleteAuthorization(
      const mlconnector::v1::CompleteAuthorizationRequest& request,
      std::chrono::milliseconds deadline) override {
    absl::MutexLock lock(&mu_);
    ++authorization_calls_;
    last_authorization_request_ = request;
    last_authorization_deadline_ = deadline;
    return authorization_result_;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> keys_
      ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Status list_status_ ABSL_GUARDED_BY(mu_);
  absl::Status submit_status_ ABSL_GUARDED_BY(mu_);
  std::string id_prefix_ ABSL_GUARDED_BY(mu_) = "dlv-";
  std::vector<mlconnector::v1::SubmitRequest> submits_ ABSL_GUARDED_BY(mu_);
  size_t submit_calls_ ABSL_GUARDED_BY(mu_) = 0;
  size_t list_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::chrono::milliseconds last_submit_deadline_ ABSL_GUARDED_BY(mu_){0};
  absl::StatusOr<mlconnector::v1::CompleteAuthorizationResponse> authorization_result_
      ABSL_GUARDED_BY(mu_) = absl::UnimplementedError("no authorization result scripted");
  size_t authorization_calls_ ABSL_GUARDED_BY(mu_) = 0;
  mlconnector::v1::CompleteAuthorizationRequest last_authorization_request_ ABSL_GUARDED_BY(mu_);
  std::chrono::milliseconds last_authorization_deadline_ ABSL_GUARDED_BY(mu_){0};
};

}  // namespace mlc::testing
