// What ingress answers to FreshBooks (DESIGN.md §3.3), decided by WebhookHandler
// against a fake writer: the HTTP status, the response body, what reaches the
// writer, and the mlc_webhooks_total outcome an operator sees.
#include "ingress/webhook_handler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/crypto.h"
#include "common/metrics.h"
#include "common/webhook_signature.h"
#include "ingress/key_cache.h"
#include "ingress/limits.h"
#include "tests/ingress/fake_writer_client.h"
#include "tests/support/test_util.h"

namespace mlc::ingress {
namespace {

using mlc::testing::FakeWriterClient;
using mlc::testing::WaitFor;

constexpr char kForm[] = "application/x-www-form-urlencoded";
constexpr char kConnection[] = "acme";
constexpr char kVerifier[] = "scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd";
// FRESHBOOKS.md §2, row 1.
constexpr char kVectorBody[] =
    "name=invoice.create&object_id=1234567&account_id=6BApk&business_id=6543&identity_id=1234&"
    "user_id=1";
constexpr char kVectorSignature[] = "/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc=";
// HMAC over the raw body of row 1: what a generic webhook gateway would send.
constexpr char kRawBodySignature[] = "53P2UswGzbvlPS2+pFzhcWDdnV4/8rAO0PI1mWr7nhA=";

const absl::Time kReceivedAt = absl::FromUnixMicros(1700000000123456);

FormFields EventFields(const std::string& name = "invoice.create") {
  return {{"name", name},          {"object_id", "1234567"}, {"account_id", "6BApk"},
          {"business_id", "6543"}, {"identity_id", "1234"},  {"user_id", "1"}};
}

WebhookRequest Signed(const FormFields& fields, const std::string& verifier,
                      const std::string& connection = kConnection) {
  WebhookRequest r;
  r.connection_id = connection;
  r.content_type = kForm;
  r.body = EncodeWebhookForm(fields);
  r.signature = FreshBooksSignature(verifier, fields);
  r.has_signature = true;
  r.remote_addr = "192.0.2.7";
  r.received_at = kReceivedAt;
  return r;
}

WebhookRequest Unsigned(const std::string& body, const std::string& connection = kConnection) {
  WebhookRequest r;
  r.connection_id = connection;
  r.content_type = kForm;
  r.body = body;
  r.remote_addr = "192.0.2.7";
  r.received_at = kReceivedAt;
  return r;
}

Limits TestLimits() {
  Limits limits;
  limits.writer_deadline = std::chrono::milliseconds(1234);
  return limits;
}

// The handler wired as IngressServer wires it, with a fake writer and its own
// metrics registry. Keys are loaded once (as Start() does) unless told otherwise.
class Harness {
 public:
  explicit Harness(Limits limits = TestLimits(), bool load_keys = true)
      : limits_(limits), keys_(&writer_, limits_) {
    writer_.AddKey(kConnection, "callback:1", kVerifier);
    WebhookMetrics metrics;
    metrics.webhooks = registry_.AddCounter("mlc_webhooks_total", "Webhooks", {"outcome"});
    metrics.ack_seconds = registry_.AddHistogram("mlc_webhook_ack_seconds", "Ack")->With({});
    metrics.writer_calls =
        registry_.AddCounter("mlc_writer_calls_total", "Writer calls", {"method", "code"});
    webhooks_ = metrics.webhooks;
    writer_calls_ = metrics.writer_calls;
    ack_ = metrics.ack_seconds;
    handler_ = std::make_unique<WebhookHandler>(&keys_, &writer_, limits_, metrics);
    if (load_keys) {
      EXPECT_TRUE(keys_.Refresh().ok());
    }
  }

  WebhookResponse Handle(const WebhookRequest& request) { return handler_->Handle(request); }

  double Outcome(const std::string& outcome) { return webhooks_->With({outcome})->Value(); }
  double WriterCalls(const std::string& code) {
    return writer_calls_->With({"Submit", code})->Value();
  }

  WebhookHandler& handler() { return *handler_; }
  FakeWriterClient& writer() { return writer_; }
  KeyCache& keys() { return keys_; }
  Registry& registry() { return registry_; }
  Histogram* ack() { return ack_; }

 private:
  Limits limits_;
  Registry registry_;
  FakeWriterClient writer_;
  KeyCache keys_;
  std::unique_ptr<WebhookHandler> handler_;
  Family<Counter>* webhooks_ = nullptr;
  Family<Counter>* writer_calls_ = nullptr;
  Histogram* ack_ = nullptr;
};

nlohmann::json Json(const WebhookResponse& r) { return nlohmann::json::parse(r.body); }

// ---------------------------------------------------------------------------
// Accepted deliveries

TEST(WebhookHandlerTest, ValidSignedEventIsAcceptedWithDeliveryId) {
  Harness h;
  WebhookRequest request = Unsigned(kVectorBody);
  request.signature = kVectorSignature;
  request.has_signature = true;

  WebhookResponse r = h.Handle(request);

  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.outcome, "accepted");
  EXPECT_EQ(Json(r), nlohmann::json({{"delivery_id", "dlv-1"}}));
  ASSERT_EQ(h.writer().submits().size(), 1u);
  EXPECT_EQ(h.writer().last_submit_deadline(), std::chrono::milliseconds(1234));
  EXPECT_EQ(h.Outcome("accepted"), 1);
  EXPECT_EQ(h.WriterCalls("ok"), 1);
  EXPECT_EQ(h.ack()->Count(), 1u);
}

TEST(WebhookHandlerTest, SubmitRequestCarriesEveryFieldInBodyOrder) {
  Harness h;
  // FRESHBOOKS.md §2 row 2: fields in an order other than the usual one, plus an
  // extra field FreshBooks might add one day.
  const FormFields fields = {
      {"name", "client.update"},      {"object_id", "921895"},     {"user_id", "1"},
      {"identity_id", "14051539"},    {"business_id", "14393743"}, {"account_id", "p7rQW5"},
      {"note", "caf\xc3\xa9 & a/b=c"}};

  WebhookResponse r = h.Handle(Signed(fields, kVerifier));

  ASSERT_EQ(r.status, 202) << r.body;
  ASSERT_EQ(h.writer().submits().size(), 1u);
  const mlconnector::v1::SubmitRequest s = h.writer().submits()[0];
  ASSERT_TRUE(s.has_event());
  EXPECT_FALSE(s.has_handshake());
  const mlconnector::v1::WebhookEvent& e = s.event();
  EXPECT_EQ(e.connection_id(), "acme");
  EXPECT_EQ(e.event_type(), "client.update");
  EXPECT_EQ(e.object_type(), "client");
  EXPECT_EQ(e.action(), "update");
  EXPECT_EQ(e.object_id(), "921895");
  EXPECT_EQ(e.account_id(), "p7rQW5");
  EXPECT_EQ(e.business_id(), "14393743");
  EXPECT_EQ(e.identity_id(), "14051539");
  EXPECT_EQ(e.user_id(), "1");
  EXPECT_EQ(e.signing_key_id(), "callback:1");
  EXPECT_EQ(e.received_at_unix_micros(), 1700000000123456);
  ASSERT_EQ(e.fields_size(), static_cast<int>(fields.size()));
  for (size_t i = 0; i < fields.size(); ++i) {
    EXPECT_EQ(e.fields(static_cast<int>(i)).name(), fields[i].first) << i;
    EXPECT_EQ(e.fields(static_cast<int>(i)).value(), fields[i].second) << i;
  }
  // The signing key never travels to the writer inside the event.
  EXPECT_EQ(s.SerializeAsString().find(kVerifier), std::string::npos);
}

TEST(WebhookHandlerTest, OptionalIdsMayBeAbsentAndActionKeepsItsCase) {
  Harness h;
  const FormFields fields = {
      {"name", "invoice.sendByEmail"}, {"object_id", "9"}, {"account_id", "x1"}};
  WebhookResponse r = h.Handle(Signed(fields, kVerifier));
  ASSERT_EQ(r.status, 202) << r.body;
  const mlconnector::v1::WebhookEvent e = h.writer().submits().at(0).event();
  EXPECT_EQ(e.object_type(), "invoice");
  EXPECT_EQ(e.action(), "sendByEmail");
  EXPECT_EQ(e.business_id(), "");
  EXPECT_EQ(e.identity_id(), "");
  EXPECT_EQ(e.user_id(), "");
}

TEST(WebhookHandlerTest, AnyKeyOfTheConnectionVerifies) {
  Harness h(TestLimits(), /*load_keys=*/false);
  h.writer().AddKey(kConnection, "callback:2", "second-verifier");
  h.writer().AddKey(kConnection, "callback:3", "third-verifier");
  ASSERT_TRUE(h.keys().Refresh().ok());

  EXPECT_EQ(h.Handle(Signed(EventFields(), "third-verifier")).status, 202);
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 202);
  EXPECT_EQ(h.Handle(Signed(EventFields(), "second-verifier")).status, 202);

  const auto submits = h.writer().submits();
  ASSERT_EQ(submits.size(), 3u);
  EXPECT_EQ(submits[0].event().signing_key_id(), "callback:3");
  EXPECT_EQ(submits[1].event().signing_key_id(), "callback:1");
  EXPECT_EQ(submits[2].event().signing_key_id(), "callback:2");
}

TEST(WebhookHandlerTest, SignatureWithSurroundingWhitespaceVerifies) {
  Harness h;
  WebhookRequest request = Signed(EventFields(), kVerifier);
  request.signature = " " + request.signature + " ";
  EXPECT_EQ(h.Handle(request).status, 202);
}

TEST(WebhookHandlerTest, ContentTypeParametersAndCaseAreAccepted) {
  Harness h;
  for (const char* content_type :
       {"application/x-www-form-urlencoded; charset=utf-8", "Application/X-WWW-Form-URLEncoded",
        "APPLICATION/X-WWW-FORM-URLENCODED;charset=UTF-8", " application/x-www-form-urlencoded "}) {
    WebhookRequest request = Signed(EventFields(), kVerifier);
    request.content_type = content_type;
    EXPECT_EQ(h.Handle(request).status, 202) << content_type;
  }
  EXPECT_EQ(h.writer().submits().size(), 4u);
}

// ---------------------------------------------------------------------------
// Authentication

TEST(WebhookHandlerTest, BadSignatureIs401AndNothingIsSubmitted) {
  Harness h;
  WebhookRequest wrong_key = Signed(EventFields(), "not-the-verifier");
  WebhookRequest tampered = Signed(EventFields(), kVerifier);
  tampered.body = EncodeWebhookForm(EventFields("invoice.delete"));
  WebhookRequest garbage = Signed(EventFields(), kVerifier);
  garbage.signature = "not base64 at all";

  for (const WebhookRequest& request : {wrong_key, tampered, garbage}) {
    WebhookResponse r = h.Handle(request);
    EXPECT_EQ(r.status, 401);
    EXPECT_EQ(r.outcome, "bad_signature");
    EXPECT_TRUE(Json(r).contains("error"));
    // The answer never reveals the expected signature or the key.
    EXPECT_EQ(r.body.find(kVerifier), std::string::npos);
    EXPECT_EQ(r.body.find(FreshBooksSignature(kVerifier, EventFields())), std::string::npos);
  }
  EXPECT_EQ(h.writer().submit_calls(), 0u);
  EXPECT_EQ(h.Outcome("bad_signature"), 3);
  EXPECT_EQ(h.Outcome("accepted"), 0);
}

TEST(WebhookHandlerTest, MissingSignatureHeaderIs401) {
  Harness h;
  WebhookRequest absent = Signed(EventFields(), kVerifier);
  absent.has_signature = false;
  absent.signature.clear();
  WebhookRequest empty = Signed(EventFields(), kVerifier);
  empty.signature.clear();

  EXPECT_EQ(h.Handle(absent).status, 401);
  EXPECT_EQ(h.Handle(empty).status, 401);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
  EXPECT_EQ(h.Outcome("bad_signature"), 2);
}

TEST(WebhookHandlerTest, HmacOfTheRawBodyIs401) {
  Harness h;
  WebhookRequest request = Unsigned(kVectorBody);
  request.signature = kRawBodySignature;
  request.has_signature = true;
  ASSERT_EQ(Base64Encode(HmacSha256(kVerifier, kVectorBody)), kRawBodySignature);

  EXPECT_EQ(h.Handle(request).status, 401);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, KeyOfAnotherConnectionDoesNotVerify) {
  Harness h(TestLimits(), /*load_keys=*/false);
  h.writer().AddKey("other", "callback:9", "other-verifier");
  ASSERT_TRUE(h.keys().Refresh().ok());

  EXPECT_EQ(h.Handle(Signed(EventFields(), "other-verifier", kConnection)).status, 401);
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier, "other")).status, 401);
  EXPECT_EQ(h.Handle(Signed(EventFields(), "other-verifier", "other")).status, 202);
  ASSERT_EQ(h.writer().submits().size(), 1u);
  EXPECT_EQ(h.writer().submits()[0].event().connection_id(), "other");
}

TEST(WebhookHandlerTest, FloodOfBadSignaturesDoesNotFloodTheWriter) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::seconds(30);
  Harness h(limits);
  const size_t before = h.writer().list_calls();
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(h.Handle(Signed(EventFields(), "wrong")).status, 401);
    ASSERT_EQ(h.Handle(Signed(EventFields(), kVerifier, "ghost")).status, 404);
  }
  EXPECT_EQ(h.writer().list_calls(), before);
}

// ---------------------------------------------------------------------------
// Connections

TEST(WebhookHandlerTest, UnknownConnectionIs404AfterARefresh) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::milliseconds(0);
  Harness h(limits);
  const size_t before = h.writer().list_calls();

  WebhookResponse r = h.Handle(Signed(EventFields(), kVerifier, "ghost"));

  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.outcome, "unknown_connection");
  EXPECT_GT(h.writer().list_calls(), before) << "404 without asking the writer";
  EXPECT_EQ(h.writer().submit_calls(), 0u);
  EXPECT_EQ(h.Outcome("unknown_connection"), 1);
}

TEST(WebhookHandlerTest, ConnectionAddedSinceTheLastLoadIsFoundByTheRefresh) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::milliseconds(0);
  Harness h(limits);
  h.writer().AddKey("newco", "config:0", "newco-verifier");

  WebhookResponse r = h.Handle(Signed(EventFields(), "newco-verifier", "newco"));

  EXPECT_EQ(r.status, 202) << r.body;
  ASSERT_EQ(h.writer().submits().size(), 1u);
  EXPECT_EQ(h.writer().submits()[0].event().signing_key_id(), "config:0");
}

TEST(WebhookHandlerTest, InvalidConnectionIdShapeIs404WithoutAskingTheWriter) {
  Harness h;
  const size_t before = h.writer().list_calls();
  for (const std::string& id :
       {std::string(""), std::string("Acme"), std::string("-acme"), std::string("_acme"),
        std::string("ac me"), std::string("a/b"), std::string("a.b"), std::string("acme\n"),
        std::string(64, 'a'), std::string("acm\xc3\xa9")}) {
    WebhookResponse r = h.Handle(Signed(EventFields(), kVerifier, id));
    EXPECT_EQ(r.status, 404) << id;
    EXPECT_EQ(r.outcome, "unknown_connection") << id;
  }
  EXPECT_EQ(h.writer().list_calls(), before);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, ValidConnectionIdShapes) {
  EXPECT_TRUE(ValidConnectionId("a"));
  EXPECT_TRUE(ValidConnectionId("0"));
  EXPECT_TRUE(ValidConnectionId("acme-prod_2"));
  EXPECT_TRUE(ValidConnectionId(std::string(63, 'z')));
  EXPECT_FALSE(ValidConnectionId(std::string(64, 'z')));
  EXPECT_FALSE(ValidConnectionId(""));
  EXPECT_FALSE(ValidConnectionId("-a"));
  EXPECT_FALSE(ValidConnectionId("A"));
}

// ---------------------------------------------------------------------------
// Malformed requests

TEST(WebhookHandlerTest, WrongContentTypeIs415) {
  Harness h;
  for (const char* content_type :
       {"application/json", "text/plain", "", "multipart/form-data; boundary=x",
        "application/x-www-form-urlencodedx", "application/x-www-form"}) {
    WebhookRequest request = Signed(EventFields(), kVerifier);
    request.content_type = content_type;
    WebhookResponse r = h.Handle(request);
    EXPECT_EQ(r.status, 415) << content_type;
    EXPECT_EQ(r.outcome, "unsupported_media_type") << content_type;
  }
  EXPECT_EQ(h.writer().submit_calls(), 0u);
  EXPECT_EQ(h.Outcome("unsupported_media_type"), 6);
}

TEST(WebhookHandlerTest, MalformedFormIs400EvenWhenUnsigned) {
  Harness h;
  for (const char* body : {
           "name=invoice.create&object_id=1&account_id=%zz",  // bad escape
           "name=invoice.create&object_id=1&account_id=%4",   // truncated escape
           "name=invoice.create&&object_id=1",                // empty field
           "name=invoice.create&object_id",                   // no '='
           "=x&name=invoice.create",                          // empty key
       }) {
    WebhookResponse r = h.Handle(Unsigned(body));
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.outcome, "malformed") << body;
    EXPECT_TRUE(Json(r).contains("error")) << body;
  }
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, DuplicateKeysAre400EvenWithAValidSignature) {
  Harness h;
  // Whatever a parser that keeps the first or the last value would verify, a
  // repeated key is refused.
  const FormFields first = EventFields();
  WebhookRequest request = Signed(first, kVerifier);
  request.body += "&object_id=666";
  WebhookResponse r = h.Handle(request);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.outcome, "malformed");
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, InvalidUtf8Is400) {
  Harness h;
  for (const char* body : {
           "name=invoice.create&object_id=1&account_id=%ff",           // not UTF-8
           "name=invoice.create&object_id=1&account_id=%c0%af",        // overlong '/'
           "name=invoice.create&object_id=1&account_id=%ed%a0%80",     // surrogate
           "name=invoice.create&object_id=1&account_id=%f4%90%80%80",  // > U+10FFFF
       }) {
    WebhookRequest request = Unsigned(body);
    request.signature = "AAAA";
    request.has_signature = true;
    WebhookResponse r = h.Handle(request);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.outcome, "malformed") << body;
  }
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, OversizeFieldIs400) {
  Harness h;
  FormFields fields = EventFields();
  fields.emplace_back("note", std::string(5000, 'x'));
  WebhookResponse r = h.Handle(Signed(fields, kVerifier));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.outcome, "malformed");

  FormFields many = EventFields();
  for (int i = 0; i < 40; ++i) many.emplace_back("f" + std::to_string(i), "v");
  EXPECT_EQ(h.Handle(Signed(many, kVerifier)).status, 400);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, SignedButMissingRequiredFieldIs400) {
  Harness h;
  for (const char* missing : {"name", "object_id", "account_id"}) {
    FormFields fields;
    for (const auto& f : EventFields()) {
      if (f.first != missing) fields.push_back(f);
    }
    WebhookResponse r = h.Handle(Signed(fields, kVerifier));
    EXPECT_EQ(r.status, 400) << missing;
    EXPECT_EQ(r.outcome, "malformed") << missing;
  }
  for (const char* empty : {"name", "object_id", "account_id"}) {
    FormFields fields = EventFields();
    for (auto& f : fields) {
      if (f.first == empty) f.second.clear();
    }
    EXPECT_EQ(h.Handle(Signed(fields, kVerifier)).status, 400) << empty;
  }
  for (const char* name : {"invoice", ".create", "invoice."}) {
    EXPECT_EQ(h.Handle(Signed(EventFields(name), kVerifier)).status, 400) << name;
  }
  EXPECT_EQ(h.writer().submit_calls(), 0u);
  EXPECT_EQ(h.Outcome("malformed"), 9);
}

TEST(WebhookHandlerTest, UnsignedBodyMissingRequiredFieldsIs401NotSubmitted) {
  Harness h;
  WebhookResponse r = h.Handle(Unsigned("name=invoice.create"));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

// ---------------------------------------------------------------------------
// Verification handshake

TEST(WebhookHandlerTest, HandshakeIs200AndHandedToTheWriter) {
  Harness h;
  WebhookResponse r = h.Handle(Unsigned("name=callback.verify&verifier=v3r1f13r&object_id=42"));

  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.outcome, "handshake");
  EXPECT_EQ(Json(r)["delivery_id"], "dlv-1");
  ASSERT_EQ(h.writer().submits().size(), 1u);
  const mlconnector::v1::SubmitRequest s = h.writer().submits()[0];
  ASSERT_TRUE(s.has_handshake());
  EXPECT_FALSE(s.has_event());
  EXPECT_EQ(s.handshake().connection_id(), "acme");
  EXPECT_EQ(s.handshake().callback_id(), "42");
  EXPECT_EQ(s.handshake().verifier(), "v3r1f13r");
  EXPECT_EQ(s.handshake().received_at_unix_micros(), 1700000000123456);
  // The verifier is a future signing key: never echoed back.
  EXPECT_EQ(r.body.find("v3r1f13r"), std::string::npos);
  EXPECT_EQ(h.Outcome("handshake"), 1);
  EXPECT_EQ(h.Outcome("accepted"), 0);
}

TEST(WebhookHandlerTest, HandshakeWithoutName) {
  Harness h;
  EXPECT_EQ(h.Handle(Unsigned("verifier=abc&object_id=7")).status, 200);
  ASSERT_EQ(h.writer().submits().size(), 1u);
  EXPECT_EQ(h.writer().submits()[0].handshake().callback_id(), "7");
}

TEST(WebhookHandlerTest, IncompleteHandshakeIs400) {
  Harness h;
  for (const char* body : {"verifier=abc", "verifier=&object_id=7", "verifier=abc&object_id="}) {
    WebhookResponse r = h.Handle(Unsigned(body));
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(r.outcome, "malformed") << body;
  }
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, HandshakeForUnknownConnectionIs404) {
  Harness h;
  EXPECT_EQ(h.Handle(Unsigned("verifier=abc&object_id=7", "ghost")).status, 404);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, HandshakeWhenWriterIsDownIs503) {
  Harness h;
  h.writer().SetSubmitStatus(absl::UnavailableError("connection refused"));
  WebhookResponse r = h.Handle(Unsigned("verifier=abc&object_id=7"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.outcome, "writer_unavailable");
}

// ---------------------------------------------------------------------------
// The writer

TEST(WebhookHandlerTest, WriterUnreachableSlowOrRejectingOurTokenIs503NeverAccepted) {
  const std::vector<absl::Status> failures = {
      absl::UnavailableError("connection refused"),
      absl::DeadlineExceededError("deadline exceeded"),
      absl::UnauthenticatedError("bad internal token"),
      absl::InternalError("disk full"),
      absl::ResourceExhaustedError("too many"),
  };
  for (const absl::Status& failure : failures) {
    Harness h;
    h.writer().SetSubmitStatus(failure);
    WebhookResponse r = h.Handle(Signed(EventFields(), kVerifier));
    EXPECT_EQ(r.status, 503) << failure;
    EXPECT_EQ(r.outcome, "writer_unavailable") << failure;
    EXPECT_EQ(h.writer().submit_calls(), 1u) << failure;
    EXPECT_EQ(h.Outcome("accepted"), 0) << failure;
    EXPECT_EQ(h.Outcome("writer_unavailable"), 1) << failure;
    // The token is an internal matter: the answer does not mention it.
    EXPECT_EQ(r.body.find("token"), std::string::npos) << r.body;
  }
}

TEST(WebhookHandlerTest, WriterCallsAreCountedByCode) {
  Harness h;
  h.writer().SetSubmitStatus(absl::UnavailableError("down"));
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 503);
  h.writer().SetSubmitStatus(absl::DeadlineExceededError("slow"));
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 503);
  h.writer().SetSubmitStatus(absl::OkStatus());
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 202);

  EXPECT_EQ(h.WriterCalls("unavailable"), 1);
  EXPECT_EQ(h.WriterCalls("deadline_exceeded"), 1);
  EXPECT_EQ(h.WriterCalls("ok"), 1);
}

TEST(WebhookHandlerTest, WriterRecoversAfterUnavailable) {
  Harness h;
  h.writer().SetSubmitStatus(absl::UnavailableError("down"));
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 503);
  h.writer().SetSubmitStatus(absl::OkStatus());
  WebhookResponse r = h.Handle(Signed(EventFields(), kVerifier));
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(Json(r)["delivery_id"], "dlv-1");
}

TEST(WebhookHandlerTest, WriterNotFoundIs404) {
  Harness h;
  h.writer().SetSubmitStatus(absl::NotFoundError("connection acme was removed"));
  WebhookResponse r = h.Handle(Signed(EventFields(), kVerifier));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.outcome, "unknown_connection");
  EXPECT_EQ(h.WriterCalls("not_found"), 1);
}

TEST(WebhookHandlerTest, WriterInvalidArgumentIs400) {
  Harness h;
  h.writer().SetSubmitStatus(absl::InvalidArgumentError("object_id too long"));
  WebhookResponse r = h.Handle(Signed(EventFields(), kVerifier));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.outcome, "malformed");
}

TEST(WebhookHandlerTest, KeysNeverLoadedAndWriterDownIs503) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::milliseconds(0);
  Harness h(limits, /*load_keys=*/false);
  h.writer().SetListStatus(absl::UnavailableError("connection refused"));
  h.writer().SetSubmitStatus(absl::UnavailableError("connection refused"));

  for (const WebhookRequest& request :
       {Signed(EventFields(), kVerifier), Unsigned("verifier=abc&object_id=7"),
        Signed(EventFields(), kVerifier, "ghost")}) {
    WebhookResponse r = h.Handle(request);
    EXPECT_EQ(r.status, 503) << request.body;
    EXPECT_EQ(r.outcome, "writer_unavailable");
  }
  EXPECT_FALSE(h.keys().loaded());
  EXPECT_EQ(h.writer().submit_calls(), 0u);
  EXPECT_EQ(h.Outcome("writer_unavailable"), 3);
  EXPECT_EQ(h.Outcome("unknown_connection"), 0);
  EXPECT_EQ(h.Outcome("bad_signature"), 0);

  // The writer comes back: the next delivery loads the keys and is accepted.
  h.writer().SetListStatus(absl::OkStatus());
  h.writer().SetSubmitStatus(absl::OkStatus());
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 202);
}

TEST(WebhookHandlerTest, KeysLoadedOnceSurviveTheWriterGoingDown) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::milliseconds(0);
  Harness h(limits);
  h.writer().SetListStatus(absl::UnavailableError("down"));
  // The keys are still known: a good signature is accepted, a bad one is 401 and
  // an unknown connection 404 (not 503: we have a list).
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 202);
  EXPECT_EQ(h.Handle(Signed(EventFields(), "wrong")).status, 401);
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier, "ghost")).status, 404);
}

TEST(WebhookHandlerTest, KeyAddedToTheWriterIsHonouredAfterTheRefetchInterval) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::milliseconds(300);
  const auto loaded_at = std::chrono::steady_clock::now();
  Harness h(limits);
  h.writer().AddKey(kConnection, "callback:2", "new-verifier");

  WebhookResponse first = h.Handle(Signed(EventFields(), "new-verifier"));
  if (std::chrono::steady_clock::now() - loaded_at < limits.keys_min_refetch_interval) {
    // Within the interval the cache is not refetched: the new key is unknown yet.
    EXPECT_EQ(first.status, 401);
  }
  ASSERT_TRUE(WaitFor([&] { return h.Handle(Signed(EventFields(), "new-verifier")).status == 202; },
                      std::chrono::seconds(5)));
  const auto submits = h.writer().submits();
  ASSERT_FALSE(submits.empty());
  EXPECT_EQ(submits.back().event().signing_key_id(), "callback:2");
  // The old key still works.
  EXPECT_EQ(h.Handle(Signed(EventFields(), kVerifier)).status, 202);
}

// ---------------------------------------------------------------------------
// Metrics

TEST(WebhookHandlerTest, EveryOutcomeIsCounted) {
  Limits limits = TestLimits();
  limits.keys_min_refetch_interval = std::chrono::milliseconds(0);
  Harness h(limits);
  h.Handle(Signed(EventFields(), kVerifier));           // accepted
  h.Handle(Unsigned("verifier=abc&object_id=7"));       // handshake
  h.Handle(Signed(EventFields(), "wrong"));             // bad_signature
  h.Handle(Signed(EventFields(), kVerifier, "ghost"));  // unknown_connection
  h.Handle(Signed(EventFields(), kVerifier, "BAD"));    // unknown_connection
  h.Handle(Unsigned("a=%zz"));                          // malformed
  WebhookRequest json = Signed(EventFields(), kVerifier);
  json.content_type = "application/json";
  h.Handle(json);  // unsupported_media_type
  h.writer().SetSubmitStatus(absl::UnavailableError("down"));
  h.Handle(Signed(EventFields(), kVerifier));  // writer_unavailable

  const std::string text = h.registry().Render();
  for (const char* line : {
           "mlc_webhooks_total{outcome=\"accepted\"} 1\n",
           "mlc_webhooks_total{outcome=\"handshake\"} 1\n",
           "mlc_webhooks_total{outcome=\"bad_signature\"} 1\n",
           "mlc_webhooks_total{outcome=\"unknown_connection\"} 2\n",
           "mlc_webhooks_total{outcome=\"malformed\"} 1\n",
           "mlc_webhooks_total{outcome=\"unsupported_media_type\"} 1\n",
           "mlc_webhooks_total{outcome=\"writer_unavailable\"} 1\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line << "\nin:\n" << text;
  }
}

TEST(WebhookHandlerTest, RecordCountsAnswersFromTheHttpLayer) {
  Harness h;
  WebhookRequest request;
  request.connection_id = "/webhooks/freshbooks/acme";
  request.remote_addr = "192.0.2.7";
  h.handler().Record(request, WebhookResponse{413, "", "too_large"}, "body over max_body_bytes");
  EXPECT_EQ(h.Outcome("too_large"), 1);
  EXPECT_EQ(h.writer().submit_calls(), 0u);
}

TEST(WebhookHandlerTest, HandlerIsSafeToCallFromManyThreads) {
  Harness h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 25; ++i) {
        const bool good = (i + t) % 2 == 0;
        WebhookResponse r = h.Handle(Signed(EventFields(), good ? kVerifier : "wrong"));
        EXPECT_EQ(r.status, good ? 202 : 401);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(h.writer().submits().size(), 100u);
  EXPECT_EQ(h.Outcome("accepted"), 100);
  EXPECT_EQ(h.Outcome("bad_signature"), 100);
}

}  // namespace
}  // namespace mlc::ingress
