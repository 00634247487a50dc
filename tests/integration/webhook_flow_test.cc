// The webhook path through the real binaries: mlc-ingress and mlc-writer run as
// processes, webhooks arrive over HTTP, rows are read from the SQLite lakehouse.
#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include "absl/strings/str_cat.h"
#include "tests/support/services.h"

namespace mlc::testing {
namespace {

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(WebhookFlowTest, SignedWebhookBecomesOneEventRow) {
  Services s;
  s.StartAll();
  Services::Answer a = s.Send(StandardEvent("invoice.create", "1234567"));
  ASSERT_EQ(a.status, 202) << a.body << s.IngressLog();
  ASSERT_FALSE(a.delivery_id.empty());

  ASSERT_TRUE(WaitFor([&] { return s.DeliveryStatus(a.delivery_id) == "written"; }))
      << s.WriterLog();
  const std::string where = " FROM freshbooks_events WHERE delivery_id='" + a.delivery_id + "'";
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT connection_id" + where), "acme");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT event_type" + where), "invoice.create");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT object_type" + where), "invoice");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT object_id" + where), "1234567");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT account_id" + where), "6BApk");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT business_id" + where), "6543");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT identity_id" + where), "1234");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT user_id" + where), "1");
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT data IS NULL" + where), "1");
  const std::string received = s.Query("lakehouse.db", "SELECT received_at" + where);
  EXPECT_EQ(received.size(), 27u) << received;  // 2026-11-26T12:00:00.000000Z
  EXPECT_EQ(received.back(), 'Z');

  // The audit trail shows each step.
  EXPECT_EQ(s.Query("journal.db",
                    "SELECT group_concat(stage || ':' || outcome, ',') FROM "
                    "(SELECT stage, outcome FROM attempts WHERE delivery_id='" +
                        a.delivery_id + "' ORDER BY id)"),
            "journal:ok,write:ok");
  // The raw payload is kept in body order.
  EXPECT_EQ(s.Query("journal.db",
                    "SELECT payload FROM deliveries WHERE delivery_id='" + a.delivery_id + "'"),
            R"([["name","invoice.create"],["object_id","1234567"],["account_id","6BApk"],)"
            R"(["business_id","6543"],["identity_id","1234"],["user_id","1"]])");
}

TEST(WebhookFlowTest, FreshBooksDocumentedVectorIsAccepted) {
  Services s;  // default verifier is the one of FRESHBOOKS.md §2 row 1
  s.StartAll();
  const std::string body =
      "name=invoice.create&object_id=1234567&account_id=6BApk&business_id=6543&identity_id=1234&"
      "user_id=1";
  Services::Answer ok = s.SendRaw(body, "application/x-www-form-urlencoded",
                                  "/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc=");
  EXPECT_EQ(ok.status, 202) << ok.body;
  // An HMAC over the raw body is what naive gateways compute: it must fail.
  Services::Answer raw = s.SendRaw(body, "application/x-www-form-urlencoded",
                                   "53P2UswGzbvlPS2+pFzhcWDdnV4/8rAO0PI1mWr7nhA=");
  EXPECT_EQ(raw.status, 401) << raw.body;
}

TEST(WebhookFlowTest, BadInputGetsTheRightStatusAndStoresNothing) {
  ServicesOptions o;
  o.max_body_bytes = 1024;
  Services s(o);
  s.StartAll();
  const FormFields event = StandardEvent("payment.create", "77");
  const std::string body = EncodeWebhookForm(event);

  EXPECT_EQ(s.SendRaw(body, "application/x-www-form-urlencoded", "AAAA").status, 401);
  EXPECT_EQ(s.SendRaw(body, "application/x-www-form-urlencoded", std::nullopt).status, 401);
  EXPECT_EQ(s.SendRaw(body, "application/json", FreshBooksSignature(o.verifier, event)).status,
            415);
  EXPECT_EQ(s.SendRaw("name=a&name=b", "application/x-www-form-urlencoded", "x").status, 400);
  EXPECT_EQ(s.SendRaw("name=%FF", "application/x-www-form-urlencoded", "x").status, 400);
  EXPECT_EQ(s.SendRaw(std::string(2048, 'a'), "application/x-www-form-urlencoded", "x").status,
            413);
  FormFields missing = {{"name", "invoice.create"}, {"object_id", "1"}};
  EXPECT_EQ(s.Send(missing).status, 400);

  httplib::Client c("127.0.0.1", s.ingress_port());
  auto get = c.Get("/webhooks/freshbooks/acme");
  ASSERT_TRUE(get);
  EXPECT_EQ(get->status, 405);
  auto unknown = c.Post("/webhooks/freshbooks/nobody", body, "application/x-www-form-urlencoded");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);

  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries"), "0");
  const std::string metrics = s.HttpGet(s.ingress_port(), "/metrics");
  EXPECT_TRUE(Contains(metrics, R"(mlc_webhooks_total{outcome="bad_signature"} 2)")) << metrics;
  EXPECT_TRUE(Contains(metrics, R"(mlc_webhooks_total{outcome="too_large"} 1)")) << metrics;
  EXPECT_TRUE(Contains(metrics, R"(mlc_webhooks_total{outcome="malformed"} 3)")) << metrics;
  EXPECT_TRUE(Contains(metrics, R"(mlc_webhooks_total{outcome="unsupported_media_type"} 1)"));
  EXPECT_TRUE(Contains(s.IngressLog(), "signature does not verify"));
}

TEST(WebhookFlowTest, WrongInternalTokenIsNever202) {
  ServicesOptions o;
  o.ingress_token = "not-the-writers-token-0000000000";
  Services s(o);
  s.StartWriter();
  s.StartIngress();
  // ingress cannot even load keys with a wrong token: not ready, and every
  // delivery is answered 503 so FreshBooks retries.
  ASSERT_TRUE(s.WaitReadyz(s.ingress_port(), 503)) << s.IngressLog();
  Services::Answer a = s.Send(StandardEvent("invoice.create", "1"));
  EXPECT_EQ(a.status, 503) << a.body;
  EXPECT_TRUE(WaitFor([&] { return Contains(s.WriterLog(), "without a valid internal token"); }))
      << s.WriterLog();
  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries"), "0");
}

TEST(WebhookFlowTest, WriterDownMeans503ThenRecovers) {
  Services s;
  s.StartAll();
  ASSERT_EQ(s.Send(StandardEvent("client.update", "1")).status, 202);
  s.KillWriter(SIGKILL);
  s.WaitWriter();
  Services::Answer down = s.Send(StandardEvent("client.update", "2"));
  EXPECT_EQ(down.status, 503) << down.body;
  EXPECT_TRUE(s.WaitReadyz(s.ingress_port(), 503));  // readiness is cached for a second
  s.StartWriter();
  Services::Answer up;
  ASSERT_TRUE(WaitFor([&] {
    up = s.Send(StandardEvent("client.update", "3"));
    return up.status == 202;
  }));
  EXPECT_TRUE(WaitFor([&] { return s.EventRowCounts().size() == 2; })) << s.WriterLog();
}

TEST(WebhookFlowTest, HandshakeIsForwardedAndItsVerifierNeverStored) {
  Services s;
  s.StartAll();
  const std::string secret = "handshake-verifier-XYZ-123456";
  Services::Answer a = s.SendRaw("verifier=" + secret + "&object_id=987",
                                 "application/x-www-form-urlencoded", std::nullopt);
  EXPECT_EQ(a.status, 200) << a.body;
  EXPECT_EQ(s.Query("journal.db", "SELECT status || ':' || object_id FROM deliveries"),
            "handshake:987");
  s.KillWriter(SIGTERM);
  s.WaitWriter();
  for (const char* f : {"journal.db", "journal.db-wal", "lakehouse.db", "lakehouse.db-wal"}) {
    const std::string bytes = ReadFile(s.data_dir() + "/" + f);
    EXPECT_FALSE(Contains(bytes, secret)) << f;
  }
  EXPECT_FALSE(Contains(s.WriterLog(), secret));
  EXPECT_FALSE(Contains(s.IngressLog(), secret));
}

TEST(WebhookFlowTest, SecretsStayOutOfLogsAndMetrics) {
  ServicesOptions o;
  o.log_level = "debug";
  Services s(o);
  s.StartAll();
  ASSERT_EQ(s.Send(StandardEvent("expense.create", "5")).status, 202);
  EXPECT_EQ(s.SendRaw("name=x.y&object_id=1&account_id=a", "application/x-www-form-urlencoded",
                      "bm90IGEgc2lnbmF0dXJl")
                .status,
            401);
  const std::string everything = s.WriterLog() + s.IngressLog() +
                                 s.HttpGet(s.ingress_port(), "/metrics") +
                                 s.HttpGet(s.metrics_port(), "/metrics");
  EXPECT_FALSE(Contains(everything, o.verifier));
  EXPECT_FALSE(Contains(everything, o.internal_token));
  EXPECT_FALSE(Contains(everything, "bm90IGEgc2lnbmF0dXJl"));
}

TEST(WebhookFlowTest, MetricsOnBothServices) {
  Services s;
  s.StartAll();
  ASSERT_EQ(s.Send(StandardEvent("bill.create", "9")).status, 202);
  int status = 0;
  std::string writer;
  // Rows land before the journal marks them written; wait for the mark.
  EXPECT_TRUE(WaitFor([&] {
    writer = s.HttpGet(s.metrics_port(), "/metrics", &status);
    return Contains(writer, R"(mlc_pipeline_deliveries_total{outcome="written"} 1)");
  })) << writer;
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(Contains(writer, "mlc_journal_commits_total"));
  EXPECT_TRUE(Contains(writer, R"(mlc_journal_deliveries{status="written"} 1)")) << writer;
  EXPECT_TRUE(Contains(writer, R"(mlc_pipeline_deliveries_total{outcome="written"} 1)"));
  EXPECT_TRUE(Contains(writer, "mlc_end_to_end_seconds_count 1"));
  const std::string ingress = s.HttpGet(s.ingress_port(), "/metrics", &status);
  EXPECT_EQ(status, 200);
  EXPECT_TRUE(Contains(ingress, R"(mlc_webhooks_total{outcome="accepted"} 1)")) << ingress;
  EXPECT_TRUE(Contains(ingress, "mlc_webhook_ack_seconds_count 1"));
}

TEST(WebhookFlowTest, SigtermShutsBothDownCleanly) {
  Services s;
  s.StartAll();
  ASSERT_EQ(s.Send(StandardEvent("tax.create", "3")).status, 202);
  s.KillIngress(SIGTERM);
  s.KillWriter(SIGTERM);
  const int ingress_status = s.ingress()->Wait();
  const int writer_status = s.writer()->Wait();
  ASSERT_TRUE(WIFEXITED(ingress_status)) << s.IngressLog();
  EXPECT_EQ(WEXITSTATUS(ingress_status), 0);
  ASSERT_TRUE(WIFEXITED(writer_status)) << s.WriterLog();
  EXPECT_EQ(WEXITSTATUS(writer_status), 0);
  EXPECT_TRUE(Contains(s.WriterLog(), "writer stopped"));
  // A clean close checkpoints nothing away: the delivery is still there.
  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries"), "1");
}

TEST(WebhookFlowTest, InvalidConfigFailsFastNamingTheKey) {
  TempDir dir;
  WriteFile(dir.File("bad.yaml"), "writer:\n  batch: { max_row: 5 }\n");
  Process p({MLC_WRITER_BIN, "--config", dir.File("bad.yaml")}, {}, dir.File("log"));
  const int status = p.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_TRUE(Contains(p.Log(), "writer.batch.max_row")) << p.Log();
}

}  // namespace
}  // namespace mlc::testing
