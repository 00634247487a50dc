// The writer's gRPC services over mutual TLS with the real binaries: ingress
// presents its client certificate and webhooks land in the table; `mlc` works with
// the right --tls-* flags and explains what is wrong without them; a writer whose
// key file cannot be read refuses to start and says which key.
#include <sys/wait.h>

#include <csignal>
#include <cstdio>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "tests/support/services.h"
#include "tests/support/test_pki.h"
#include "tests/support/test_util.h"

namespace mlc::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Mutual TLS everywhere: the writer requires client certificates from the test
// CA; ingress and mlc present one.
ServicesOptions MutualTls(const TestPki& pki) {
  ServicesOptions o;
  o.writer_tls = {pki.server_cert, pki.server_key, pki.ca_cert};
  o.ingress_writer_tls = {pki.ca_cert, pki.client_cert, pki.client_key, ""};
  o.cli_tls = {pki.ca_cert, pki.client_cert, pki.client_key, ""};
  return o;
}

int ExitCode(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

// "mlc_tls_certificate_expiry_timestamp_seconds <notAfter>" for the certificate
// in `pem_file`, with notAfter as the openssl command reads it.
std::string ExpiryMetric(const std::string& pem_file) {
  const std::string cmd =
      absl::StrCat("openssl x509 -noout -enddate -dateopt iso_8601 -in '", pem_file, "'");
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r"); p != nullptr) {
    char buf[256];
    while (std::fgets(buf, sizeof(buf), p) != nullptr) out += buf;
    ::pclose(p);
  }
  absl::Time t;
  std::string err;
  const std::string date(absl::StripAsciiWhitespace(absl::StripPrefix(out, "notAfter=")));
  if (!absl::ParseTime("%Y-%m-%d %H:%M:%SZ", date, &t, &err)) {
    ADD_FAILURE() << "openssl said " << out << ": " << err;
  }
  return absl::StrCat("mlc_tls_certificate_expiry_timestamp_seconds ", absl::ToUnixSeconds(t),
                      "\n");
}

class TlsFlowTest : public ::testing::Test {
 protected:
  TempDir pki_dir_;
  TestPki pki_ = MakeTestPki(pki_dir_.path());
};

TEST_F(TlsFlowTest, SignedWebhookReachesTheTableOverMutualTls) {
  Services s(MutualTls(pki_));
  s.StartAll();  // ingress is ready only once the writer answered it over TLS
  EXPECT_THAT(s.WriterLog(), HasSubstr(R"("tls":"mutual tls")"));
  EXPECT_THAT(s.IngressLog(), HasSubstr(R"("transport":"tls with client certificate")"));

  Services::Answer a = s.Send(StandardEvent("invoice.create", "4242"));
  ASSERT_EQ(a.status, 202) << a.body << s.IngressLog();
  ASSERT_FALSE(a.delivery_id.empty());
  ASSERT_TRUE(WaitFor([&] { return s.DeliveryStatus(a.delivery_id) == "written"; }))
      << s.WriterLog();
  EXPECT_EQ(s.Query("lakehouse.db", "SELECT object_id FROM freshbooks_events WHERE delivery_id='" +
                                        a.delivery_id + "'"),
            "4242");
  // No key material in either log.
  const std::string key = ReadFile(pki_.server_key);
  const std::string client_key = ReadFile(pki_.client_key);
  EXPECT_THAT(s.WriterLog(), Not(HasSubstr("PRIVATE KEY")));
  EXPECT_THAT(s.IngressLog(), Not(HasSubstr("PRIVATE KEY")));
  EXPECT_THAT(s.WriterLog(), Not(HasSubstr(key.substr(30, 40))));
  EXPECT_THAT(s.IngressLog(), Not(HasSubstr(client_key.substr(30, 40))));
  // Each service exports when the certificate it presents expires.
  const std::string writer_metrics = s.HttpGet(s.metrics_port(), "/metrics");
  EXPECT_THAT(writer_metrics, HasSubstr("mlc_tls_files_usable 1\n"));
  EXPECT_THAT(writer_metrics, HasSubstr(ExpiryMetric(pki_.server_cert)));
  const std::string ingress_metrics = s.HttpGet(s.ingress_port(), "/metrics");
  EXPECT_THAT(ingress_metrics, HasSubstr("mlc_tls_files_usable 1\n"));
  EXPECT_THAT(ingress_metrics, HasSubstr(ExpiryMetric(pki_.client_cert)));
}

TEST_F(TlsFlowTest, IngressWithoutAClientCertificateIsNotReady) {
  ServicesOptions o = MutualTls(pki_);
  o.ingress_writer_tls.cert_file.clear();
  o.ingress_writer_tls.key_file.clear();
  Services s(o);
  s.StartWriter();
  s.StartIngress();
  // Both are up (their HTTP endpoints answer), but the writer refuses ingress's
  // handshakes: ingress is not ready, says why, and answers webhooks 503
  // (FreshBooks retries).
  ASSERT_TRUE(s.WaitReadyz(s.metrics_port(), 200)) << s.WriterLog();
  int status = 0;
  std::string body;
  ASSERT_TRUE(WaitFor([&] {
    body = s.HttpGet(s.ingress_port(), "/readyz", &status);
    return status != 0;
  })) << s.IngressLog();
  EXPECT_EQ(status, 503) << body;
  ASSERT_TRUE(WaitFor([&] {
    body = s.HttpGet(s.ingress_port(), "/readyz", &status);
    return absl::StrContains(body, "closed the TLS connection");
  })) << body;
  EXPECT_THAT(body, HasSubstr("does it require a client certificate (writer.tls.client_ca_file)? "
                              "Then set ingress.writer_tls.cert_file and key_file"));
  EXPECT_TRUE(WaitFor([&] {
    return absl::StrContains(s.IngressLog(), "cannot refresh signing keys from the writer") &&
           absl::StrContains(s.IngressLog(), "ingress.writer_tls.cert_file");
  })) << s.IngressLog();
  EXPECT_EQ(s.Send(StandardEvent("invoice.create", "1")).status, 503) << s.IngressLog();
  EXPECT_EQ(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries"), "0");
}

TEST_F(TlsFlowTest, IngressSaysWhichWriterTlsSettingIsWrong) {
  struct Case {
    const char* what;
    TlsServerConfig writer;
    TlsClientConfig ingress;
    std::string says;
  };
  const TlsServerConfig mutual{pki_.server_cert, pki_.server_key, pki_.ca_cert};
  const TlsClientConfig client{pki_.ca_cert, pki_.client_cert, pki_.client_key, ""};
  const std::vector<Case> cases = {
      {"TLS at a plaintext writer",
       {},
       client,
       "does not speak TLS: set writer.tls on the writer, or remove ingress.writer_tls"},
      {"plaintext at a TLS writer", mutual, {}, "closed the connection: does it speak TLS?"},
      {"a CA that did not sign the writer's certificate",
       mutual,
       {pki_.other_ca_cert, pki_.client_cert, pki_.client_key, ""},
       absl::StrCat("is not signed by the CA in ingress.writer_tls.ca_file \"", pki_.other_ca_cert,
                    "\"")},
      {"a name the writer's certificate does not carry",
       mutual,
       {pki_.ca_cert, pki_.client_cert, pki_.client_key, "writer.example.com"},
       "is not for \"writer.example.com\": set ingress.writer_tls.server_name"},
      {"a client certificate from another CA",
       mutual,
       {pki_.ca_cert, pki_.other_client_cert, pki_.other_client_key, ""},
       absl::StrCat("did not accept the client certificate in ingress.writer_tls.cert_file \"",
                    pki_.other_client_cert, "\"")},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ServicesOptions o;
    o.writer_tls = c.writer;
    o.ingress_writer_tls = c.ingress;
    Services s(o);
    s.StartWriter();
    s.StartIngress();
    std::string body;
    EXPECT_TRUE(WaitFor([&] {
      int status = 0;
      body = s.HttpGet(s.ingress_port(), "/readyz", &status);
      return status == 503 && absl::StrContains(body, c.says);
    })) << body
        << s.IngressLog();
  }
}

TEST_F(TlsFlowTest, RotatedCertificatesAreUsedWithoutARestart) {
  // The writer's certificate and key, and ingress's CA bundle, in files that get
  // replaced the way a Kubernetes Secret update replaces them.
  TempDir live;
  const std::string cert = live.File("tls.crt");
  const std::string key = live.File("tls.key");
  const std::string ca = live.File("ca.crt");
  auto put = [](const std::string& from, const std::string& to) {
    WriteFile(to + ".new", ReadFile(from));
    ASSERT_EQ(std::rename((to + ".new").c_str(), to.c_str()), 0) << to;
  };
  put(pki_.server_cert, cert);
  put(pki_.server_key, key);
  put(pki_.ca_cert, ca);
  ServicesOptions o;
  o.writer_tls = {cert, key, "", /*reload_seconds=*/1};
  o.ingress_writer_tls = {ca, "", "", "", /*reload_seconds=*/1};
  o.cli_tls = {pki_.ca_cert, "", "", ""};
  Services s(o);
  s.StartAll();
  ASSERT_EQ(s.Send(StandardEvent("invoice.create", "1")).status, 202) << s.IngressLog();

  // A certificate from another CA replaces the writer's; ingress is given the
  // new CA. Without restarting either, new connections use both.
  put(pki_.other_server_cert, cert);
  put(pki_.other_server_key, key);
  put(pki_.other_ca_cert, ca);
  std::string out;
  EXPECT_TRUE(WaitFor([&] {
    return ExitCode(s.RunCli(TlsClientConfig{pki_.other_ca_cert, "", "", ""}, {"connections"},
                             &out)) == 0;
  })) << out;
  int status = s.RunCli(TlsClientConfig{pki_.ca_cert, "", "", ""}, {"connections"}, &out);
  EXPECT_EQ(ExitCode(status), 1) << out;
  EXPECT_THAT(out, HasSubstr("is not signed by the CA in --tls-ca"));
  // A file that is not a certificate (a botched edit): gRPC fails new
  // handshakes until it is fixed, and the writer's log names the setting.
  // (The test CAs issue certificates that expire in the same second, so this
  // checks the value the gauge holds, not that it changed.)
  const std::string rotated_expiry = ExpiryMetric(pki_.other_server_cert);
  EXPECT_TRUE(WaitFor([&] {
    return absl::StrContains(s.HttpGet(s.metrics_port(), "/metrics"), rotated_expiry);
  })) << rotated_expiry;
  put(pki_.other_server_key, cert);
  EXPECT_TRUE(WaitFor([&] {
    return absl::StrContains(s.WriterLog(), "cannot use the TLS files") &&
           absl::StrContains(s.WriterLog(), "writer.tls.cert_file");
  })) << s.WriterLog();
  EXPECT_THAT(s.HttpGet(s.metrics_port(), "/metrics"), HasSubstr("mlc_tls_files_usable 0\n"));
  put(pki_.other_server_cert, cert);
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(s.WriterLog(), "TLS files usable again"); }))
      << s.WriterLog();
  EXPECT_THAT(s.HttpGet(s.metrics_port(), "/metrics"), HasSubstr("mlc_tls_files_usable 1\n"));
  EXPECT_TRUE(WaitFor([&] {
    return ExitCode(s.RunCli(TlsClientConfig{pki_.other_ca_cert, "", "", ""}, {"connections"},
                             &out)) == 0;
  })) << out;
  // The same on ingress's side.
  put(pki_.server_key, ca);
  EXPECT_TRUE(WaitFor([&] {
    return absl::StrContains(s.IngressLog(), "cannot use the TLS files") &&
           absl::StrContains(s.IngressLog(), "ingress.writer_tls.ca_file");
  })) << s.IngressLog();
  put(pki_.other_ca_cert, ca);
  EXPECT_TRUE(WaitFor([&] { return absl::StrContains(s.IngressLog(), "TLS files usable again"); }))
      << s.IngressLog();
  // Ingress's open connection keeps working; a new one (after the writer
  // restarts) is made with the new CA from the reloaded file.
  s.KillWriter(SIGKILL);
  s.WaitWriter();
  s.StartWriter();
  EXPECT_TRUE(s.WaitReady()) << s.IngressLog();
  EXPECT_EQ(s.Send(StandardEvent("invoice.create", "2")).status, 202) << s.IngressLog();
}

TEST_F(TlsFlowTest, MlcNeedsTheRightFlagsAndSaysWhichAreMissing) {
  Services s(MutualTls(pki_));
  s.StartAll();
  std::string out;

  // The right CA and client certificate.
  int status = s.RunCli({"connections"}, &out);
  EXPECT_EQ(ExitCode(status), 0) << out;
  EXPECT_THAT(out, HasSubstr("acme"));

  // Each wrong setup: mlc's exit status (1: the call failed, 2: usage) and
  // what it says.
  struct Case {
    const char* what;
    TlsClientConfig tls;
    int exit_code;
    std::vector<std::string> says;
  };
  const std::string nope = pki_dir_.File("nope.pem");
  const std::vector<Case> cases = {
      {"no client certificate",
       {pki_.ca_cert, "", "", ""},
       1,
       {"certificate rejected: the writer at 127.0.0.1:",
        "requires a client certificate (--tls-cert/--tls-key"}},
      {"a client certificate from another CA",
       {pki_.ca_cert, pki_.other_client_cert, pki_.other_client_key, ""},
       1,
       {absl::StrCat("did not accept the client certificate in --tls-cert \"",
                     pki_.other_client_cert, "\"")}},
      {"plaintext at a TLS writer", {}, 1, {"the writer speaks TLS? pass --tls-ca FILE"}},
      {"a CA that did not sign the writer's certificate",
       {pki_.other_ca_cert, pki_.client_cert, pki_.client_key, ""},
       1,
       {absl::StrCat("is not signed by the CA in --tls-ca \"", pki_.other_ca_cert, "\"")}},
      {"a name the writer's certificate does not carry",
       {pki_.ca_cert, pki_.client_cert, pki_.client_key, "writer.example.com"},
       1,
       {"the writer's certificate is not for \"writer.example.com\"; pass "
        "--tls-server-name NAME"}},
      {"a CA file that cannot be read",
       {nope, "", "", ""},
       2,
       {absl::StrCat("--tls-ca \"", nope, "\": cannot read: No such file or directory")}},
      {"half a client certificate",
       {pki_.ca_cert, pki_.client_cert, "", ""},
       2,
       {"--tls-cert needs --tls-key too"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    status = s.RunCli(c.tls, {"connections"}, &out);
    EXPECT_EQ(ExitCode(status), c.exit_code) << out;
    for (const std::string& want : c.says) EXPECT_THAT(out, HasSubstr(want));
  }

  // A name the writer's certificate does carry.
  status = s.RunCli(TlsClientConfig{pki_.ca_cert, pki_.client_cert, pki_.client_key, "localhost"},
                    {"connections"}, &out);
  EXPECT_EQ(ExitCode(status), 0) << out;
}

TEST_F(TlsFlowTest, MlcWithTlsAtAPlaintextWriterSaysSo) {
  Services s;  // plaintext
  s.StartWriter();
  ASSERT_TRUE(s.WaitReadyz(s.metrics_port(), 200)) << s.WriterLog();
  EXPECT_THAT(s.WriterLog(), HasSubstr(R"("tls":"plaintext")"));
  std::string out;
  int status = s.RunCli(TlsClientConfig{pki_.ca_cert, "", "", ""}, {"connections"}, &out);
  EXPECT_EQ(ExitCode(status), 1) << out;
  EXPECT_THAT(out, HasSubstr("does not speak TLS (its writer.tls is not set): drop --tls-ca"));
  status = s.RunCli({"connections"}, &out);
  EXPECT_EQ(ExitCode(status), 0) << out;
}

TEST_F(TlsFlowTest, MlcTakesTlsSettingsFromTheEnvironment) {
  Services s(MutualTls(pki_));
  s.StartAll();
  const std::string log = pki_dir_.File("mlc-env.log");
  Process p({MLC_CLI_BIN, "--writer", absl::StrCat("127.0.0.1:", s.writer_port()), "connections"},
            {{"MLC_ADMIN_TOKEN", s.options().admin_token},
             {"MLC_TLS_CA", pki_.ca_cert},
             {"MLC_TLS_CERT", pki_.client_cert},
             {"MLC_TLS_KEY", pki_.client_key},
             {"MLC_TLS_SERVER_NAME", "localhost"}},
            log);
  EXPECT_EQ(ExitCode(p.Wait(std::chrono::seconds(60))), 0) << ReadFile(log);
  EXPECT_THAT(ReadFile(log), HasSubstr("acme"));

  // A variable names itself in errors.
  const std::string log2 = pki_dir_.File("mlc-env2.log");
  Process q({MLC_CLI_BIN, "--writer", absl::StrCat("127.0.0.1:", s.writer_port()), "connections"},
            {{"MLC_ADMIN_TOKEN", s.options().admin_token},
             {"MLC_TLS_CA", pki_.ca_cert},
             {"MLC_TLS_CERT", pki_.client_cert},
             {"MLC_TLS_KEY", pki_dir_.File("missing-key.pem")}},
            log2);
  EXPECT_EQ(ExitCode(q.Wait(std::chrono::seconds(60))), 2) << ReadFile(log2);
  EXPECT_THAT(ReadFile(log2),
              HasSubstr(absl::StrCat("$MLC_TLS_KEY \"", pki_dir_.File("missing-key.pem"),
                                     "\": cannot read")));
}

TEST_F(TlsFlowTest, WriterWithAnUnreadableKeyFileRefusesToStart) {
  ServicesOptions o = MutualTls(pki_);
  o.writer_tls.key_file = pki_dir_.File("missing-key.pem");
  Services s(o);
  s.StartWriter();
  const int status = s.WaitWriter();
  EXPECT_NE(ExitCode(status), 0) << s.WriterLog();
  EXPECT_THAT(s.WriterLog(),
              HasSubstr(absl::StrCat("writer.tls.key_file \\\"", pki_dir_.File("missing-key.pem"),
                                     "\\\": cannot read: No such file or directory")));
}

TEST_F(TlsFlowTest, IngressWithAnUnreadableCaFileRefusesToStart) {
  ServicesOptions o = MutualTls(pki_);
  o.ingress_writer_tls.ca_file = pki_dir_.File("missing-ca.pem");
  Services s(o);
  s.StartIngress();
  ASSERT_NE(s.ingress(), nullptr);
  EXPECT_NE(ExitCode(s.ingress()->Wait()), 0) << s.IngressLog();
  EXPECT_THAT(s.IngressLog(),
              HasSubstr(absl::StrCat("ingress.writer_tls.ca_file \\\"",
                                     pki_dir_.File("missing-ca.pem"), "\\\": cannot read")));
}

}  // namespace
}  // namespace mlc::testing
