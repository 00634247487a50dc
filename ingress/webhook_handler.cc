#include "ingress/webhook_handler.h"

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace mlc::ingress {
namespace {

std::string ErrorBody(const std::string& error) {
  return nlohmann::json{{"error", error}}.dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
}

const std::string* FindField(const FormFields& fields, const std::string& name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

const char* CodeName(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return "ok";
    case absl::StatusCode::kUnauthenticated:
      return "unauthenticated";
    case absl::StatusCode::kUnavailable:
      return "unavailable";
    case absl::StatusCode::kDeadlineExceeded:
      return "deadline_exceeded";
    case absl::StatusCode::kNotFound:
      return "not_found";
    case absl::StatusCode::kInvalidArgument:
      return "invalid_argument";
    default:
      return "error";
  }
}

}  // namespace

bool ValidConnectionId(const std::string& id) {
  if (id.empty() || id.size() > 63) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '-'))) return false;
  }
  return true;
}

WebhookHandler::WebhookHandler(KeyCache* keys, WriterClient* writer, Limits limits,
                               WebhookMetrics metrics)
    : keys_(keys), writer_(writer), limits_(limits), metrics_(metrics) {}

void WebhookHandler::Record(const WebhookRequest& request, const WebhookResponse& response,
                            const std::string& cause) {
  if (metrics_.webhooks != nullptr) metrics_.webhooks->With({response.outcome})->Inc();
  if (response.status >= 400) {
    log::Warn("webhook rejected", {{"connection", request.connection_id},
                                   {"status", response.status},
                                   {"outcome", response.outcome},
                                   {"cause", cause},
                                   {"remote", request.remote_addr}});
  }
}

WebhookResponse WebhookHandler::Reject(const WebhookRequest& request, int status,
                                       const std::string& outcome, const std::string& cause) {
  WebhookResponse r{status, ErrorBody(cause), outcome};
  Record(request, r, cause);
  return r;
}

WebhookResponse WebhookHandler::Handle(const WebhookRequest& request) {
  if (!ValidConnectionId(request.connection_id)) {
    return Reject(request, 404, "unknown_connection", "unknown connection");
  }
  // Media type without parameters, case-insensitive.
  std::string media = request.content_type.substr(0, request.content_type.find(';'));
  media = absl::AsciiStrToLower(absl::StripAsciiWhitespace(media));
  if (media != "application/x-www-form-urlencoded") {
    return Reject(request, 415, "unsupported_media_type",
                  "Content-Type must be application/x-www-form-urlencoded");
  }
  auto fields = ParseWebhookForm(request.body, form_limits_);
  if (!fields.ok()) {
    return Reject(request, 400, "malformed",
                  absl::StrCat("malformed form: ", fields.status().message()));
  }

  std::optional<std::vector<Key>> keys = keys_->Lookup(request.connection_id);
  if (!keys.has_value()) {
    absl::Status s = keys_->RefreshIfStale();
    keys = keys_->Lookup(request.connection_id);
    if (!keys.has_value()) {
      if (!keys_->loaded()) {
        return Reject(request, 503, "writer_unavailable",
                      absl::StrCat("cannot load connections from the writer: ", s.message()));
      }
      return Reject(request, 404, "unknown_connection", "unknown connection");
    }
  }

  // Verification handshake: it cannot be authenticated (the verifier *is* the
  // key); the writer holds it until registration confirms it with FreshBooks.
  if (const std::string* verifier = FindField(*fields, "verifier"); verifier != nullptr) {
    const std::string* callback_id = FindField(*fields, "object_id");
    if (callback_id == nullptr || callback_id->empty() || verifier->empty()) {
      return Reject(request, 400, "malformed", "handshake needs verifier and object_id");
    }
    mlconnector::v1::SubmitRequest submit;
    auto* h = submit.mutable_handshake();
    h->set_connection_id(request.connection_id);
    h->set_callback_id(*callback_id);
    h->set_verifier(*verifier);
    h->set_received_at_unix_micros(absl::ToUnixMicros(request.received_at));
    return SubmitToWriter(request, submit, /*handshake=*/true);
  }

  if (!request.has_signature || request.signature.empty()) {
    return Reject(request, 401, "bad_signature", "missing X-FreshBooks-Hmac-SHA256 header");
  }
  auto verify = [&](const std::vector<Key>& ks) -> const Key* {
    for (const Key& k : ks) {
      if (VerifyFreshBooksSignature(k.secret, *fields, request.signature)) return &k;
    }
    return nullptr;
  };
  std::string key_id;
  if (const Key* k = verify(*keys); k != nullptr) {
    key_id = k->key_id;
  } else {
    // Perhaps a key registered since the last refresh (rate-limited).
    (void)keys_->RefreshIfStale();
    keys = keys_->Lookup(request.connection_id);
    const Key* k2 = keys.has_value() ? verify(*keys) : nullptr;
    if (k2 == nullptr) {
      return Reject(request, 401, "bad_signature", "signature does not verify");
    }
    key_id = k2->key_id;
  }

  const std::string* name = FindField(*fields, "name");
  const std::string* object_id = FindField(*fields, "object_id");
  const std::string* account_id = FindField(*fields, "account_id");
  if (name == nullptr || object_id == nullptr || account_id == nullptr || name->empty() ||
      object_id->empty() || account_id->empty()) {
    return Reject(request, 400, "malformed", "name, object_id and account_id are required");
  }
  const size_t dot = name->find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == name->size()) {
    return Reject(request, 400, "malformed", "field name: expected <object>.<action>");
  }

  mlconnector::v1::SubmitRequest submit;
  auto* e = submit.mutable_event();
  e->set_connection_id(request.connection_id);
  e->set_event_type(*name);
  e->set_object_type(name->substr(0, dot));
  e->set_action(name->substr(dot + 1));
  e->set_object_id(*object_id);
  e->set_account_id(*account_id);
  if (const auto* v = FindField(*fields, "business_id")) e->set_business_id(*v);
  if (const auto* v = FindField(*fields, "identity_id")) e->set_identity_id(*v);
  if (const auto* v = FindField(*fields, "user_id")) e->set_user_id(*v);
  e->set_received_at_unix_micros(absl::ToUnixMicros(request.received_at));
  e->set_signing_key_id(key_id);
  for (const auto& [k, v] : *fields) {
    auto* f = e->add_fields();
    f->set_name(k);
    f->set_value(v);
  }
  return SubmitToWriter(request, submit, /*handshake=*/false);
}

WebhookResponse WebhookHandler::SubmitToWriter(const WebhookRequest& request,
                                               const mlconnector::v1::SubmitRequest& submit,
                                               bool handshake) {
  absl::StatusOr<std::string> id = writer_->Submit(submit, limits_.writer_deadline);
  if (metrics_.writer_calls != nullptr) {
    metrics_.writer_calls->With({"Submit", CodeName(id.status().code())})->Inc();
  }
  if (!id.ok()) {
    switch (id.status().code()) {
      case absl::StatusCode::kNotFound:
        return Reject(request, 404, "unknown_connection", "unknown connection");
      case absl::StatusCode::kInvalidArgument:
        return Reject(request, 400, "malformed", std::string(id.status().message()));
      case absl::StatusCode::kUnauthenticated:
        log::Error(
            "the writer rejected ingress's internal token: check that ingress and "
            "writer share internal_token (MLC_INTERNAL_TOKEN)");
        return Reject(request, 503, "writer_unavailable", "writer unavailable");
      default:
        keys_->Nudge();
        return Reject(request, 503, "writer_unavailable",
                      absl::StrCat("writer unavailable: ", id.status().message()));
    }
  }
  WebhookResponse r;
  if (handshake) {
    r = {200, nlohmann::json{{"delivery_id", *id}, {"handshake", "received"}}.dump(), "handshake"};
  } else {
    r = {202, nlohmann::json{{"delivery_id", *id}}.dump(), "accepted"};
    if (metrics_.ack_seconds != nullptr) {
      metrics_.ack_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - request.received_at));
    }
  }
  Record(request, r, "");
  log::Debug("webhook accepted", {{"connection", request.connection_id}, {"delivery_id", *id}});
  return r;
}

}  // namespace mlc::ingress
