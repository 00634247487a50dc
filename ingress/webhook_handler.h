// What ingress answers to a FreshBooks webhook (DESIGN.md §3.3), as plain C++: no
// sockets here, so every answer is unit-testable. The HTTP adapter turns a request
// into a WebhookRequest and a WebhookResponse back into HTTP.
//
// Order of checks: connection id shape (404), content type (415), form (400),
// handshake (200 once handed to the writer), signature under any of the
// connection's keys (401), required fields (400), then Submit to the writer with a
// deadline: 202 only when the writer says the delivery is durable; 503 when it is
// unreachable, slow, or rejects our internal token. Every outcome is counted and
// every rejection is logged with its cause (never with a key or the signature).
// Thread-safe.
#pragma once

#include <string>

#include "absl/time/time.h"
#include "common/metrics.h"
#include "common/webhook_signature.h"
#include "ingress/key_cache.h"
#include "ingress/limits.h"
#include "ingress/writer_client.h"

namespace mlc::ingress {

struct WebhookRequest {
  std::string connection_id;
  std::string content_type;
  std::string body;
  std::string signature;  // X-FreshBooks-Hmac-SHA256, empty if absent
  bool has_signature = false;
  std::string remote_addr;
  absl::Time received_at;
};

struct WebhookResponse {
  int status = 500;
  std::string body;     // JSON
  std::string outcome;  // metric label
};

struct WebhookMetrics {
  Family<Counter>* webhooks = nullptr;      // {outcome}
  Histogram* ack_seconds = nullptr;         // accepted webhooks: request read -> answer
  Family<Counter>* writer_calls = nullptr;  // {method, code}
};

class WebhookHandler {
 public:
  WebhookHandler(KeyCache* keys, WriterClient* writer, Limits limits, WebhookMetrics metrics);
  WebhookResponse Handle(const WebhookRequest& request);
  // Counts and logs an answer produced outside Handle (413 from the HTTP layer).
  void Record(const WebhookRequest& request, const WebhookResponse& response,
              const std::string& cause);

 private:
  WebhookResponse Reject(const WebhookRequest& request, int status, const std::string& outcome,
                         const std::string& cause);
  WebhookResponse SubmitToWriter(const WebhookRequest& request,
                                 const mlconnector::v1::SubmitRequest& submit, bool handshake);

  KeyCache* keys_;
  WriterClient* writer_;
  Limits limits_;
  WebhookMetrics metrics_;
  FormLimits form_limits_;
};

// [a-z0-9][a-z0-9_-]{0,62}
bool ValidConnectionId(const std::string& id);

}  // namespace mlc::ingress
