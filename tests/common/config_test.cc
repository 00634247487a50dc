// Tests of the config loader (DESIGN.md §3.2): the documented example parses, every
// class of mistake is reported with the key's full path, `${VAR}` substitution
// follows the role rules, and no secret value ever appears in an error message.
#include "common/config.h"

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace mlc {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kMasterKey[] = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";  // 32 bytes
constexpr char kInternalToken[] = "internal-token-0123456789abcdef";
constexpr char kAdminToken[] = "admin-token-0123456789abcdef";
constexpr char kFbSecret[] = "fb-client-secret-XYZZY";
constexpr char kDbxSecret[] = "dbx-client-secret-PLUGH";

// The injected environment. GetEnvFn is a plain function pointer, so the fake reads
// a file-level map that each test resets.
std::map<std::string, std::string>& Env() {
  static auto* env = new std::map<std::string, std::string>();
  return *env;
}

const char* FakeGetEnv(const char* name) {
  auto it = Env().find(name);
  return it == Env().end() ? nullptr : it->second.c_str();
}

// DESIGN.md §3.2, verbatim.
constexpr char kDesignExample[] = R"yaml(
ingress:
  listen: "0.0.0.0:8080"
  writer: "127.0.0.1:50051"
  internal_token: "${MLC_INTERNAL_TOKEN}"   # presented to the writer's Ingest service
  max_body_bytes: 65536
writer:
  listen: "0.0.0.0:50051"
  metrics_listen: "0.0.0.0:9091"
  data_dir: "./var"                          # journal, audit trail, encrypted credentials
  master_key: "${MLC_MASTER_KEY}"            # base64 of 32 random bytes; encrypts secrets at rest
  internal_token: "${MLC_INTERNAL_TOKEN}"
  admin_token: "${MLC_ADMIN_TOKEN}"          # required by the Admin service
  sink: "databricks"                         # or "sqlite" (embedded default: <data_dir>/lakehouse.db)
  batch: { max_rows: 500, max_delay_ms: 1000 }
  retry: { initial_ms: 1000, max_ms: 300000, max_age_hours: 72 }
connections:
  - id: "acme"                               # appears in the webhook URL
    freshbooks:
      client_id: "..."
      client_secret: "${FB_CLIENT_SECRET}"
      redirect_uri: "https://hooks.example.com/oauth/freshbooks/callback"
      webhook_url: "https://hooks.example.com/webhooks/freshbooks/acme"
      account_id: "6BApk"                    # optional: discovered at authorization
      events: ["invoice", "payment", "bill", "bill_vendor", "expense", "client"]  # default: all
      verifiers: []                          # optional static signing keys
      api_url: "https://api.freshbooks.com"  # overridable for tests
      auth_url: "https://auth.freshbooks.com"
      sync_interval_minutes: 360
    databricks:
      host: "https://dbc-1234.cloud.databricks.com"
      client_id: "..."
      client_secret: "${DATABRICKS_CLIENT_SECRET}"
      warehouse_id: "abcdef0123456789"
      catalog: "finance"
      schema: "freshbooks"
)yaml";

// Smallest configs each role accepts; tests append or substitute into them.
constexpr char kMinimalIngress[] = R"yaml(
ingress:
  internal_token: "internal-token-0123456789abcdef"
)yaml";
constexpr char kMinimalWriter[] = R"yaml(
writer:
  internal_token: "internal-token-0123456789abcdef"
)yaml";

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Env() = {{"MLC_INTERNAL_TOKEN", kInternalToken},
             {"MLC_MASTER_KEY", kMasterKey},
             {"MLC_ADMIN_TOKEN", kAdminToken},
             {"FB_CLIENT_SECRET", kFbSecret},
             {"DATABRICKS_CLIENT_SECRET", kDbxSecret}};
  }

  static absl::StatusOr<Config> Parse(const std::string& yaml, ConfigRole role) {
    return ParseConfig(yaml, role, &FakeGetEnv);
  }

  // The error message of parsing `yaml`, or "OK".
  static std::string Error(const std::string& yaml, ConfigRole role = ConfigRole::kWriter) {
    absl::StatusOr<Config> config = Parse(yaml, role);
    if (config.ok()) return "OK";
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << config.status();
    return {config.status().message().data(), config.status().message().size()};
  }

  // A writer config with one sqlite connection whose freshbooks block is `fb`.
  static std::string WithFreshBooks(const std::string& fb) {
    return absl::StrCat(kMinimalWriter, "connections:\n  - id: acme\n    freshbooks:\n", fb);
  }
};

TEST_F(ConfigTest, DesignExampleParsesForTheWriter) {
  absl::StatusOr<Config> config = Parse(kDesignExample, ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();

  EXPECT_EQ(config->ingress.listen, "0.0.0.0:8080");
  EXPECT_EQ(config->ingress.writer, "127.0.0.1:50051");
  EXPECT_EQ(config->ingress.internal_token, kInternalToken);
  EXPECT_EQ(config->ingress.max_body_bytes, 65536);

  const WriterConfig& w = config->writer;
  EXPECT_EQ(w.listen, "0.0.0.0:50051");
  EXPECT_EQ(w.metrics_listen, "0.0.0.0:9091");
  EXPECT_EQ(w.data_dir, "./var");
  EXPECT_EQ(w.master_key, kMasterKey);
  EXPECT_EQ(w.internal_token, kInternalToken);
  EXPECT_EQ(w.admin_token, kAdminToken);
  EXPECT_EQ(w.sink, "databricks");
  EXPECT_EQ(w.batch.max_rows, 500);
  EXPECT_EQ(w.batch.max_delay_ms, 1000);
  EXPECT_EQ(w.retry.initial_ms, 1000);
  EXPECT_EQ(w.retry.max_ms, 300000);
  EXPECT_EQ(w.retry.max_age_hours, 72);

  ASSERT_EQ(config->connections.size(), 1u);
  const ConnectionConfig& c = config->connections[0];
  EXPECT_EQ(c.id, "acme");
  EXPECT_EQ(c.freshbooks.client_id, "...");
  EXPECT_EQ(c.freshbooks.client_secret, kFbSecret);
  EXPECT_EQ(c.freshbooks.redirect_uri, "https://hooks.example.com/oauth/freshbooks/callback");
  EXPECT_EQ(c.freshbooks.webhook_url, "https://hooks.example.com/webhooks/freshbooks/acme");
  EXPECT_EQ(c.freshbooks.account_id, "6BApk");
  EXPECT_THAT(c.freshbooks.events,
              ElementsAre("invoice", "payment", "bill", "bill_vendor", "expense", "client"));
  EXPECT_TRUE(c.freshbooks.verifiers.empty());
  EXPECT_EQ(c.freshbooks.api_url, "https://api.freshbooks.com");
  EXPECT_EQ(c.freshbooks.auth_url, "https://auth.freshbooks.com");
  EXPECT_EQ(c.freshbooks.sync_interval_minutes, 360);
  ASSERT_TRUE(c.databricks.has_value());
  EXPECT_EQ(c.databricks->host, "https://dbc-1234.cloud.databricks.com");
  EXPECT_EQ(c.databricks->client_id, "...");
  EXPECT_EQ(c.databricks->client_secret, kDbxSecret);
  EXPECT_EQ(c.databricks->warehouse_id, "abcdef0123456789");
  EXPECT_EQ(c.databricks->catalog, "finance");
  EXPECT_EQ(c.databricks->schema, "freshbooks");
}

TEST_F(ConfigTest, DesignExampleParsesForIngressWithOnlyItsOwnEnvironment) {
  Env() = {{"MLC_INTERNAL_TOKEN", kInternalToken}};
  absl::StatusOr<Config> config = Parse(kDesignExample, ConfigRole::kIngress);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ingress.internal_token, kInternalToken);
  // Writer-only references resolve to "" silently.
  EXPECT_EQ(config->writer.master_key, "");
  EXPECT_EQ(config->writer.admin_token, "");
  EXPECT_EQ(config->connections[0].freshbooks.client_secret, "");
  EXPECT_EQ(config->connections[0].databricks->client_secret, "");
}

TEST_F(ConfigTest, DesignExampleFailsForTheWriterWithoutItsEnvironment) {
  Env() = {{"MLC_INTERNAL_TOKEN", kInternalToken}};
  EXPECT_EQ(Error(kDesignExample, ConfigRole::kWriter),
            "writer.master_key: environment variable MLC_MASTER_KEY is not set");
}

TEST_F(ConfigTest, DefaultsApplyForMissingSections) {
  absl::StatusOr<Config> config = Parse(kMinimalIngress, ConfigRole::kIngress);
  ASSERT_TRUE(config.ok()) << config.status();
  const Config defaults;
  EXPECT_EQ(config->ingress.listen, defaults.ingress.listen);
  EXPECT_EQ(config->ingress.writer, defaults.ingress.writer);
  EXPECT_EQ(config->ingress.max_body_bytes, defaults.ingress.max_body_bytes);
  EXPECT_EQ(config->writer.sink, "sqlite");
  EXPECT_EQ(config->writer.data_dir, "./var");
  EXPECT_EQ(config->writer.batch.max_rows, 500);
  EXPECT_TRUE(config->connections.empty());

  // A key with no value keeps its default.
  config = Parse(absl::StrCat(kMinimalWriter, "  sink:\n  batch:\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->writer.sink, "sqlite");
}

TEST_F(ConfigTest, EmptyOrNonMapDocumentIsAnError) {
  EXPECT_THAT(Error(""), HasSubstr("config is empty"));
  EXPECT_THAT(Error("# only a comment\n"), HasSubstr("config is empty"));
  EXPECT_THAT(Error("- a\n- b\n"), HasSubstr("expected a map with keys ingress, writer"));
  EXPECT_THAT(Error("hello\n"), HasSubstr("expected a map with keys ingress, writer"));
}

TEST_F(ConfigTest, YamlSyntaxErrorHasLineAndColumn) {
  EXPECT_THAT(Error("writer:\n  listen: [unclosed\n"), HasSubstr("invalid YAML at line"));
  EXPECT_THAT(Error("writer:\n  sink: a\n bad: 1\n"),
              HasSubstr("invalid YAML at line 3, column 2: end of map not found"));
  EXPECT_THAT(Error("a: b: c\n"), HasSubstr("invalid YAML at line 1, column 5"));
}

TEST_F(ConfigTest, UnknownKeysNameTheFullPathAndTheKnownKeys) {
  EXPECT_EQ(Error(absl::StrCat(kMinimalWriter, "  batch: { max_row: 5 }\n")),
            "writer.batch.max_row: unknown key (known: max_rows, max_delay_ms)");
  EXPECT_THAT(Error("ingres: {}\n"),
              HasSubstr("ingres: unknown key (known: ingress, writer, connections)"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  retry: { max_age_hour: 1 }\n")),
              HasSubstr("writer.retry.max_age_hour: unknown key"));
  EXPECT_THAT(Error(WithFreshBooks("      api_uri: https://x.example\n")),
              HasSubstr("connections[0].freshbooks.api_uri: unknown key (known: client_id,"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter,
                                 "connections:\n  - id: a\n  - id: b\n    databrick: {}\n")),
              HasSubstr("connections[1].databrick: unknown key (known: id, freshbooks, "
                        "databricks)"));
  EXPECT_THAT(
      Error(absl::StrCat(kMinimalWriter, "connections:\n  - id: a\n    databricks: {hots: x}\n")),
      HasSubstr("connections[0].databricks.hots: unknown key"));
}

TEST_F(ConfigTest, DuplicateKeysAreAnError) {
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  sink: sqlite\n  sink: databricks\n")),
              HasSubstr("writer.sink: duplicate key"));
}

TEST_F(ConfigTest, WrongTypesNameTheKeyAndWhatIsExpected) {
  EXPECT_EQ(Error(absl::StrCat(kMinimalWriter, "  listen: { host: x }\n")),
            "writer.listen: expected a string, got a map");
  EXPECT_EQ(Error(absl::StrCat(kMinimalWriter, "  batch: { max_rows: abc }\n")),
            "writer.batch.max_rows: expected an integer, got \"abc\"");
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  batch: { max_rows: 1.5 }\n")),
              HasSubstr("writer.batch.max_rows: expected an integer"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  batch: { max_rows: [1] }\n")),
              HasSubstr("writer.batch.max_rows: expected an integer, got a list"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  batch: 5\n")),
              HasSubstr("writer.batch: expected a map"));
  EXPECT_THAT(Error("writer: [1, 2]\n"), HasSubstr("writer: expected a map, got a list"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "connections: { id: acme }\n")),
              HasSubstr("connections: expected a list"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "connections:\n  - acme\n")),
              HasSubstr("connections[0]: expected a map"));
  EXPECT_THAT(Error(WithFreshBooks("      events: invoice\n")),
              HasSubstr("connections[0].freshbooks.events: expected a list of strings"));
  EXPECT_THAT(Error(WithFreshBooks("      events: [invoice, {a: b}]\n")),
              HasSubstr("connections[0].freshbooks.events[1]: expected a string, got a map"));
  // Quoted numbers are accepted where an integer is expected.
  absl::StatusOr<Config> config =
      Parse(absl::StrCat(kMinimalWriter, "  batch: { max_rows: \"42\" }\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->writer.batch.max_rows, 42);
}

TEST_F(ConfigTest, EnvSubstitutionExpandsSeveralVariablesPerValue) {
  Env()["HOST"] = "hooks.example.com";
  Env()["PORT"] = "8443";
  absl::StatusOr<Config> config =
      Parse(WithFreshBooks("      webhook_url: \"https://${HOST}:${PORT}/webhooks/${HOST}\"\n"),
            ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections[0].freshbooks.webhook_url,
            "https://hooks.example.com:8443/webhooks/hooks.example.com");
}

TEST_F(ConfigTest, EnvValuesWithYamlSpecialCharactersAreTakenLiterally) {
  Env()["WEIRD"] = "a: b # c, [d] {e} 'f' \"g\" ${NOT_EXPANDED}\n- h";
  absl::StatusOr<Config> config =
      Parse(WithFreshBooks("      client_id: ${WEIRD}\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections[0].freshbooks.client_id, Env()["WEIRD"]);
}

TEST_F(ConfigTest, EnvSubstitutionWorksForIntegers) {
  Env()["ROWS"] = "77";
  absl::StatusOr<Config> config = Parse(
      absl::StrCat(kMinimalWriter, "  batch: { max_rows: \"${ROWS}\" }\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->writer.batch.max_rows, 77);
}

TEST_F(ConfigTest, UnsetVariableIsAnErrorOnlyForKeysTheRoleUses) {
  const std::string yaml = R"yaml(
ingress:
  internal_token: "${ING_TOKEN}"
  listen: "${ING_LISTEN}"
writer:
  internal_token: "${WR_TOKEN}"
  sink: "${WR_SINK}"
  batch: { max_rows: "${WR_ROWS}" }
connections:
  - id: "${CONN_ID}"
    freshbooks: { client_secret: "${FB_SECRET}", api_url: "https://${FB_HOST}/" }
)yaml";
  Env() = {{"ING_TOKEN", kInternalToken}, {"ING_LISTEN", "127.0.0.1:0"}, {"CONN_ID", "acme"}};
  absl::StatusOr<Config> config = Parse(yaml, ConfigRole::kIngress);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->writer.internal_token, "");
  EXPECT_EQ(config->writer.sink, "");
  EXPECT_EQ(config->writer.batch.max_rows, 500);  // default kept
  EXPECT_EQ(config->connections[0].freshbooks.client_secret, "");

  EXPECT_EQ(Error(yaml, ConfigRole::kWriter),
            "writer.internal_token: environment variable WR_TOKEN is not set");

  Env() = {{"WR_TOKEN", kInternalToken}, {"WR_SINK", "sqlite"}, {"WR_ROWS", "10"},
           {"CONN_ID", "acme"},          {"FB_SECRET", "s"},    {"FB_HOST", "fb.example"}};
  config = Parse(yaml, ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->ingress.internal_token, "");
  EXPECT_EQ(config->writer.batch.max_rows, 10);
  EXPECT_EQ(Error(yaml, ConfigRole::kIngress),
            "ingress.internal_token: environment variable ING_TOKEN is not set");

  // Both roles use connection ids.
  Env().erase("CONN_ID");
  EXPECT_EQ(Error(yaml, ConfigRole::kWriter),
            "connections[0].id: environment variable CONN_ID is not set");
  Env()["CONN_ID"] = "acme";
  Env().erase("FB_HOST");
  EXPECT_EQ(Error(yaml, ConfigRole::kWriter),
            "connections[0].freshbooks.api_url: environment variable FB_HOST is not set");
}

TEST_F(ConfigTest, MalformedReferencesAreErrors) {
  EXPECT_THAT(Error(WithFreshBooks("      client_id: \"abc${OOPS\"\n")),
              HasSubstr("connections[0].freshbooks.client_id: unterminated \"${\""));
  EXPECT_THAT(Error(WithFreshBooks("      client_id: \"${1BAD}\"\n")),
              HasSubstr("connections[0].freshbooks.client_id: invalid variable reference"));
  EXPECT_THAT(Error(WithFreshBooks("      client_id: \"${}\"\n")),
              HasSubstr("invalid variable reference"));
  // A lone `$` is literal.
  absl::StatusOr<Config> config =
      Parse(WithFreshBooks("      client_id: \"a$b$\"\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections[0].freshbooks.client_id, "a$b$");
}

TEST_F(ConfigTest, ParseHostPortSplitsHostAndPort) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseHostPort("k", "0.0.0.0:8080", &host, &port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(ParseHostPort("k", "[::1]:50051", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 50051);
  ASSERT_TRUE(ParseHostPort("k", "writer.svc:65535", &host, &port).ok());
  EXPECT_EQ(host, "writer.svc");

  for (const char* bad : {"", "8080", "host", "host:", ":8080", "host:65536", "host:-1", "host:80x",
                          "::1:80", "[::1]80", "[::1]", "a b:80"}) {
    absl::Status status = ParseHostPort("ingress.writer", bad, &host, &port);
    EXPECT_FALSE(status.ok()) << bad;
    EXPECT_THAT(status.message(), HasSubstr("ingress.writer")) << bad;
  }
}

TEST_F(ConfigTest, AddressesAreValidated) {
  // Listen addresses accept port 0 ("pick any", for tests).
  absl::StatusOr<Config> config =
      Parse(absl::StrCat(kMinimalWriter, "  listen: 127.0.0.1:0\n  metrics_listen: \"[::1]:0\"\n"),
            ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  config = Parse(absl::StrCat(kMinimalIngress, "  listen: 127.0.0.1:0\n"), ConfigRole::kIngress);
  ASSERT_TRUE(config.ok()) << config.status();

  EXPECT_THAT(Error(absl::StrCat(kMinimalIngress, "  writer: 127.0.0.1:0\n"), ConfigRole::kIngress),
              HasSubstr("ingress.writer \"127.0.0.1:0\": port must be between 1 and 65535"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalIngress, "  listen: \"8080\"\n"), ConfigRole::kIngress),
              HasSubstr("ingress.listen \"8080\": expected host:port"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  metrics_listen: \"x:99999\"\n")),
              HasSubstr("writer.metrics_listen \"x:99999\""));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter, "  listen: \"\"\n")),
              HasSubstr("writer.listen \"\""));
}

TEST_F(ConfigTest, InternalTokenIsRequiredForBothRoles) {
  EXPECT_THAT(Error("ingress: {}\n", ConfigRole::kIngress),
              HasSubstr("ingress.internal_token: is empty; generate one with `openssl rand -hex"));
  EXPECT_THAT(Error("{}\n", ConfigRole::kWriter), HasSubstr("writer.internal_token: is empty"));
  // The other role's token may be missing.
  EXPECT_EQ(Error(kMinimalIngress, ConfigRole::kIngress), "OK");
  EXPECT_EQ(Error(kMinimalWriter, ConfigRole::kWriter), "OK");
}

TEST_F(ConfigTest, ShortTokensAreRejectedWithoutPrintingThem) {
  const std::string shorty = "sh0rt-SECRET";
  std::string msg =
      Error(absl::StrCat("ingress:\n  internal_token: ", shorty, "\n"), ConfigRole::kIngress);
  EXPECT_THAT(msg, HasSubstr("ingress.internal_token: is 12 characters, needs at least 16"));
  EXPECT_THAT(msg, HasSubstr("openssl rand -hex 24"));
  EXPECT_THAT(msg, Not(HasSubstr(shorty)));

  msg = Error(absl::StrCat(kMinimalWriter, "  admin_token: ", shorty, "\n"));
  EXPECT_THAT(msg, HasSubstr("writer.admin_token"));
  EXPECT_THAT(msg, Not(HasSubstr(shorty)));
  // An empty admin token is fine (the Admin service comes later).
  EXPECT_EQ(Error(absl::StrCat(kMinimalWriter, "  admin_token: \"\"\n")), "OK");
}

TEST_F(ConfigTest, MasterKeyMustBeBase64Of32BytesAndIsNeverPrinted) {
  // 16 bytes, valid base64.
  const std::string short_key = "MDEyMzQ1Njc4OWFiY2RlZg==";
  std::string msg = Error(absl::StrCat(kMinimalWriter, "  master_key: \"", short_key, "\"\n"));
  EXPECT_THAT(msg, HasSubstr("writer.master_key: decodes to 16 bytes"));
  EXPECT_THAT(msg, HasSubstr("exactly 32 bytes"));
  EXPECT_THAT(msg, Not(HasSubstr(short_key)));

  const std::string not_base64 = "this-is-not*base64!SECRETSECRETSECRETSECRET";
  msg = Error(absl::StrCat(kMinimalWriter, "  master_key: \"", not_base64, "\"\n"));
  EXPECT_THAT(msg, HasSubstr("writer.master_key: is not valid base64"));
  EXPECT_THAT(msg, Not(HasSubstr(not_base64)));
  EXPECT_THAT(msg, Not(HasSubstr("SECRET")));

  EXPECT_EQ(Error(absl::StrCat(kMinimalWriter, "  master_key: \"", kMasterKey, "\"\n")), "OK");
}

TEST_F(ConfigTest, WriterValuesAreRangeChecked) {
  auto writer = [](const std::string& lines) { return absl::StrCat(kMinimalWriter, lines); };
  EXPECT_EQ(Error(writer("  sink: lakehouse\n")),
            "writer.sink \"lakehouse\": must be \"sqlite\" or \"databricks\"");
  EXPECT_EQ(Error(writer("  batch: { max_rows: 0 }\n")),
            "writer.batch.max_rows: must be between 1 and 100000, got 0");
  EXPECT_THAT(Error(writer("  batch: { max_rows: 100001 }\n")),
              HasSubstr("writer.batch.max_rows: must be between 1 and 100000"));
  EXPECT_THAT(Error(writer("  batch: { max_rows: 99999999999999999999 }\n")),
              HasSubstr("writer.batch.max_rows: expected an integer"));
  EXPECT_THAT(Error(writer("  batch: { max_delay_ms: -1 }\n")),
              HasSubstr("writer.batch.max_delay_ms: must be between 0 and 600000"));
  EXPECT_THAT(Error(writer("  batch: { max_delay_ms: 600001 }\n")),
              HasSubstr("writer.batch.max_delay_ms"));
  EXPECT_EQ(Error(writer("  batch: { max_delay_ms: 0 }\n")), "OK");
  EXPECT_THAT(Error(writer("  retry: { initial_ms: 0 }\n")),
              HasSubstr("writer.retry.initial_ms: must be at least 1"));
  EXPECT_THAT(Error(writer("  retry: { initial_ms: 5000, max_ms: 4000 }\n")),
              HasSubstr("writer.retry.max_ms: is 4000, must be at least writer.retry.initial_ms"));
  EXPECT_THAT(Error(writer("  retry: { max_age_hours: 0 }\n")),
              HasSubstr("writer.retry.max_age_hours: must be at least 1"));
  EXPECT_THAT(Error(writer("  data_dir: \"\"\n")), HasSubstr("writer.data_dir: is empty"));
}

TEST_F(ConfigTest, IngressMaxBodyBytesIsRangeChecked) {
  auto ingress = [](const std::string& lines) { return absl::StrCat(kMinimalIngress, lines); };
  EXPECT_THAT(Error(ingress("  max_body_bytes: 255\n"), ConfigRole::kIngress),
              HasSubstr("ingress.max_body_bytes: must be between 256 and 16777216"));
  EXPECT_THAT(Error(ingress("  max_body_bytes: 16777217\n"), ConfigRole::kIngress),
              HasSubstr("ingress.max_body_bytes"));
  EXPECT_EQ(Error(ingress("  max_body_bytes: 256\n"), ConfigRole::kIngress), "OK");
  EXPECT_EQ(Error(ingress("  max_body_bytes: 16777216\n"), ConfigRole::kIngress), "OK");
}

TEST_F(ConfigTest, ConnectionIdsAreValidatedAndUnique) {
  auto conns = [](const std::string& items) {
    return absl::StrCat(kMinimalWriter, "connections:\n", items);
  };
  EXPECT_EQ(Error(conns("  - id: \"Acme!\"\n")),
            "connections[0].id \"Acme!\": must match [a-z0-9][a-z0-9_-]{0,62} (it appears in the "
            "webhook URL)");
  EXPECT_THAT(Error(conns("  - id: \"-acme\"\n")), HasSubstr("connections[0].id \"-acme\""));
  EXPECT_THAT(Error(conns("  - freshbooks: {}\n")), HasSubstr("connections[0].id \"\""));
  EXPECT_THAT(Error(conns(absl::StrCat("  - id: ", std::string(64, 'a'), "\n"))),
              HasSubstr("must match"));
  EXPECT_EQ(Error(conns(absl::StrCat("  - id: ", std::string(63, 'a'), "\n"))), "OK");
  EXPECT_EQ(Error(conns("  - id: 0acme_eu-2\n")), "OK");
  EXPECT_THAT(Error(conns("  - id: acme\n  - id: beta\n  - id: acme\n")),
              HasSubstr("connections[2].id \"acme\": duplicate of connections[0].id"));
  // Ingress checks ids too.
  EXPECT_THAT(
      Error(absl::StrCat(kMinimalIngress, "connections:\n  - id: \"A\"\n"), ConfigRole::kIngress),
      HasSubstr("connections[0].id \"A\": must match"));
}

TEST_F(ConfigTest, DatabricksBlockIsRequiredOnlyWithDatabricksSink) {
  const std::string sqlite = absl::StrCat(kMinimalWriter, "connections:\n  - id: acme\n");
  EXPECT_EQ(Error(sqlite), "OK");
  const std::string databricks =
      absl::StrCat(kMinimalWriter, "  sink: databricks\nconnections:\n  - id: acme\n");
  EXPECT_THAT(Error(databricks),
              HasSubstr("connections[0].databricks: is missing (required with writer.sink "
                        "\"databricks\""));
  // Ingress does not use the databricks block.
  EXPECT_EQ(Error(absl::StrCat(databricks, "ingress: {internal_token: ", kInternalToken, "}\n"),
                  ConfigRole::kIngress),
            "OK");

  const std::string full_block = R"yaml(    databricks:
      host: https://dbc.example.com
      client_id: cid
      client_secret: "${DATABRICKS_CLIENT_SECRET}"
      warehouse_id: wh
      catalog: finance
      schema: freshbooks
)yaml";
  EXPECT_EQ(Error(absl::StrCat(databricks, full_block)), "OK");
  for (const char* field :
       {"host", "client_id", "client_secret", "warehouse_id", "catalog", "schema"}) {
    std::string block = full_block;
    const size_t at = block.find(absl::StrCat(field, ": "));
    ASSERT_NE(at, std::string::npos);
    block.replace(at, block.find('\n', at) - at, absl::StrCat(field, ": \"\""));
    EXPECT_EQ(Error(absl::StrCat(databricks, block)),
              absl::StrCat("connections[0].databricks.", field,
                           ": is empty (required with writer.sink \"databricks\")"));
  }
}

TEST_F(ConfigTest, CatalogAndSchemaMustBeLowercaseIdentifiers) {
  const std::string base = absl::StrCat(kMinimalWriter, "connections:\n  - id: acme\n");
  EXPECT_THAT(Error(absl::StrCat(base, "    databricks: { catalog: Finance }\n")),
              HasSubstr("connections[0].databricks.catalog \"Finance\": must match "
                        "[a-z_][a-z0-9_]*"));
  EXPECT_THAT(Error(absl::StrCat(base, "    databricks: { schema: 1fb }\n")),
              HasSubstr("connections[0].databricks.schema \"1fb\""));
  EXPECT_THAT(Error(absl::StrCat(base, "    databricks: { schema: fresh-books }\n")),
              HasSubstr("connections[0].databricks.schema"));
  EXPECT_EQ(Error(absl::StrCat(base, "    databricks: { catalog: _fin_2, schema: fb }\n")), "OK");
}

TEST_F(ConfigTest, HttpUrlsAreAcceptedOnlyForLoopbackHosts) {
  for (const char* url : {"http://127.0.0.1:8080", "http://localhost/x", "http://LOCALHOST:1",
                          "http://[::1]:9000/api", "http://127.1.2.3", "https://api.example.com",
                          "HTTPS://api.example.com"}) {
    EXPECT_EQ(Error(WithFreshBooks(absl::StrCat("      api_url: \"", url, "\"\n"))), "OK") << url;
  }
  for (const char* url : {"http://api.example.com", "http://127.evil.com/", "http://10.0.0.1",
                          "http://localhost.evil.com", "http://[::2]:80", "ftp://localhost",
                          "api.freshbooks.com", "http://user@example.com"}) {
    const std::string msg = Error(WithFreshBooks(absl::StrCat("      auth_url: \"", url, "\"\n")));
    EXPECT_THAT(msg, HasSubstr("connections[0].freshbooks.auth_url")) << url;
    EXPECT_THAT(msg, HasSubstr("https://")) << url;
  }
  EXPECT_THAT(Error(WithFreshBooks("      redirect_uri: \"http://hooks.example.com/cb\"\n")),
              HasSubstr("connections[0].freshbooks.redirect_uri \"http://hooks.example.com/cb\": "
                        "https:// is required"));
  EXPECT_THAT(Error(WithFreshBooks("      webhook_url: \"http://hooks.example.com/wh\"\n")),
              HasSubstr("connections[0].freshbooks.webhook_url"));
  EXPECT_THAT(Error(WithFreshBooks("      api_url: \"https://\"\n")), HasSubstr("has no host"));
  EXPECT_THAT(Error(absl::StrCat(kMinimalWriter,
                                 "connections:\n  - id: a\n    databricks: { host: "
                                 "\"http://dbc.example.com\" }\n")),
              HasSubstr("connections[0].databricks.host \"http://dbc.example.com\": https:// is "
                        "required"));
}

TEST_F(ConfigTest, EventsDefaultToAllObjects) {
  for (const char* fb : {"      client_id: x\n", "      events: []\n", "      events:\n"}) {
    absl::StatusOr<Config> config = Parse(WithFreshBooks(fb), ConfigRole::kWriter);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->connections[0].freshbooks.events, AllFreshBooksEventObjects()) << fb;
  }
  absl::StatusOr<Config> config =
      Parse(absl::StrCat(kMinimalWriter, "connections:\n  - id: acme\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections[0].freshbooks.events, AllFreshBooksEventObjects());
  EXPECT_THAT(AllFreshBooksEventObjects(),
              ElementsAre("bill", "bill_vendor", "category", "client", "credit_note", "estimate",
                          "expense", "invoice", "item", "payment", "project", "recurring",
                          "service", "tax", "time_entry"));
}

TEST_F(ConfigTest, EventsAreValidated) {
  absl::StatusOr<Config> config =
      Parse(WithFreshBooks("      events: [invoice, payment.create, time_entry.delete, "
                           "invoice.sendByEmail, estimate.sendByEmail, bill_vendor.update]\n"),
            ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections[0].freshbooks.events.size(), 6u);

  EXPECT_THAT(Error(WithFreshBooks("      events: [invoice, invoce]\n")),
              HasSubstr("connections[0].freshbooks.events[1] \"invoce\": unknown event"));
  for (const char* bad : {"invoice.send", "payment.sendByEmail", "journal_entry", "invoice.",
                          ".create", "Invoice", "invoice.create.x"}) {
    EXPECT_THAT(Error(WithFreshBooks(absl::StrCat("      events: [\"", bad, "\"]\n"))),
                HasSubstr("connections[0].freshbooks.events[0]"))
        << bad;
  }
}

TEST_F(ConfigTest, SyncIntervalMustBeNonNegative) {
  EXPECT_EQ(Error(WithFreshBooks("      sync_interval_minutes: 0\n")), "OK");
  EXPECT_THAT(Error(WithFreshBooks("      sync_interval_minutes: -1\n")),
              HasSubstr("connections[0].freshbooks.sync_interval_minutes: must be at least 0"));
}

TEST_F(ConfigTest, VerifiersMayNotBeEmpty) {
  absl::StatusOr<Config> config = Parse(
      WithFreshBooks("      verifiers: [\"k1\", \"${FB_CLIENT_SECRET}\"]\n"), ConfigRole::kWriter);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_THAT(config->connections[0].freshbooks.verifiers, ElementsAre("k1", kFbSecret));
  EXPECT_THAT(Error(WithFreshBooks("      verifiers: [\"k1\", \"\"]\n")),
              HasSubstr("connections[0].freshbooks.verifiers[1]: is empty"));
}

TEST_F(ConfigTest, GrpcTlsKeysParse) {
  absl::StatusOr<Config> writer = Parse(absl::StrCat(kMinimalWriter,
                                                     "  tls:\n"
                                                     "    cert_file: /etc/mlc/writer.pem\n"
                                                     "    key_file: /etc/mlc/writer-key.pem\n"
                                                     "    client_ca_file: /etc/mlc/ca.pem\n"),
                                        ConfigRole::kWriter);
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_TRUE(writer->writer.tls.enabled());
  EXPECT_EQ(writer->writer.tls.cert_file, "/etc/mlc/writer.pem");
  EXPECT_EQ(writer->writer.tls.key_file, "/etc/mlc/writer-key.pem");
  EXPECT_EQ(writer->writer.tls.client_ca_file, "/etc/mlc/ca.pem");
  EXPECT_EQ(writer->writer.tls.reload_seconds, 60);  // the default

  absl::StatusOr<Config> ingress =
      Parse(absl::StrCat(kMinimalIngress,
                         "  writer_tls: { ca_file: /etc/mlc/ca.pem, cert_file: /etc/mlc/in.pem, "
                         "key_file: /etc/mlc/in-key.pem, server_name: writer.internal, "
                         "reload_seconds: 300 }\n"),
            ConfigRole::kIngress);
  ASSERT_TRUE(ingress.ok()) << ingress.status();
  EXPECT_TRUE(ingress->ingress.writer_tls.enabled());
  EXPECT_EQ(ingress->ingress.writer_tls.ca_file, "/etc/mlc/ca.pem");
  EXPECT_EQ(ingress->ingress.writer_tls.cert_file, "/etc/mlc/in.pem");
  EXPECT_EQ(ingress->ingress.writer_tls.key_file, "/etc/mlc/in-key.pem");
  EXPECT_EQ(ingress->ingress.writer_tls.server_name, "writer.internal");
  EXPECT_EQ(ingress->ingress.writer_tls.reload_seconds, 300);

  // Absent: plaintext.
  absl::StatusOr<Config> plain = Parse(kDesignExample, ConfigRole::kWriter);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->writer.tls.enabled());
  EXPECT_FALSE(plain->ingress.writer_tls.enabled());
  // Paths come through ${VAR} like any value.
  Env()["TLS_DIR"] = "/run/secrets";
  absl::StatusOr<Config> env = Parse(
      absl::StrCat(kMinimalWriter,
                   "  tls: { cert_file: \"${TLS_DIR}/c.pem\", key_file: \"${TLS_DIR}/k.pem\" }\n"),
      ConfigRole::kWriter);
  ASSERT_TRUE(env.ok()) << env.status();
  EXPECT_EQ(env->writer.tls.key_file, "/run/secrets/k.pem");
}

TEST_F(ConfigTest, GrpcTlsMistakesNameTheKey) {
  auto writer = [](const std::string& tls) {
    return Error(absl::StrCat(kMinimalWriter, "  tls: ", tls, "\n"));
  };
  EXPECT_EQ(writer("{ cert_file: /c.pem }"),
            "writer.tls: set both cert_file and key_file (or neither, for plaintext)");
  EXPECT_EQ(writer("{ key_file: /k.pem }"),
            "writer.tls: set both cert_file and key_file (or neither, for plaintext)");
  EXPECT_EQ(writer("{ client_ca_file: /ca.pem }"),
            "writer.tls.client_ca_file: mutual TLS needs the server's own cert_file and key_file "
            "too");
  EXPECT_EQ(writer("{ cert_file: /c.pem, key_file: /k.pem }"), "OK");
  EXPECT_EQ(writer("{ cert: /c.pem }"),
            "writer.tls.cert: unknown key (known: cert_file, key_file, client_ca_file, "
            "reload_seconds)");
  EXPECT_THAT(writer("{ cert_file: /c.pem, key_file: /k.pem, reload_seconds: 0 }"),
              HasSubstr("writer.tls.reload_seconds: "));
  EXPECT_THAT(writer("/c.pem"), HasSubstr("writer.tls: expected a map"));

  auto ingress = [](const std::string& tls) {
    return Error(absl::StrCat(kMinimalIngress, "  writer_tls: ", tls, "\n"), ConfigRole::kIngress);
  };
  EXPECT_EQ(ingress("{ ca_file: /ca.pem, cert_file: /c.pem }"),
            "ingress.writer_tls: set both cert_file and key_file for a client certificate (or "
            "neither)");
  EXPECT_EQ(ingress("{ ca_file: /ca.pem, key_file: /k.pem }"),
            "ingress.writer_tls: set both cert_file and key_file for a client certificate (or "
            "neither)");
  EXPECT_EQ(ingress("{ cert_file: /c.pem, key_file: /k.pem }"),
            "ingress.writer_tls.ca_file: is empty; TLS to the writer needs the CA that signed its "
            "certificate");
  EXPECT_EQ(ingress("{ server_name: writer.internal }"),
            "ingress.writer_tls.ca_file: is empty; TLS to the writer needs the CA that signed its "
            "certificate");
  EXPECT_EQ(ingress("{ ca_file: /ca.pem }"), "OK");
  EXPECT_THAT(ingress("{ ca: /ca.pem }"), HasSubstr("ingress.writer_tls.ca: unknown key"));
  EXPECT_THAT(ingress("{ ca_file: /ca.pem, reload_seconds: 86401 }"),
              HasSubstr("ingress.writer_tls.reload_seconds: "));

  // Each role checks only its own block.
  EXPECT_EQ(Error(absl::StrCat(kMinimalIngress, "writer:\n  tls: { cert_file: /c.pem }\n"),
                  ConfigRole::kIngress),
            "OK");
  EXPECT_EQ(Error(absl::StrCat(kMinimalWriter, "ingress:\n  writer_tls: { cert_file: /c.pem }\n")),
            "OK");
}

// Secrets in every position where a message could be produced for them.
TEST_F(ConfigTest, SecretValuesNeverAppearInErrorMessages) {
  const std::string secret = "S3cr3tV4lu3-do-not-print";
  Env()["SECRET"] = secret;
  const std::vector<std::string> cases = {
      // Too short after expansion, or wrong format.
      absl::StrCat("ingress:\n  internal_token: \"x${SECRET}\"\n  writer: bad\n"),
      absl::StrCat(kMinimalWriter, "  admin_token: \"", secret.substr(0, 10), "\"\n"),
      absl::StrCat(kMinimalWriter, "  master_key: \"", secret, "\"\n"),
      absl::StrCat(kMinimalWriter, "  master_key: \"${SECRET}\"\n"),
      // Malformed references inside secret values.
      absl::StrCat(kMinimalWriter, "  internal_token: \"", secret, "${UNCLOSED\"\n"),
      absl::StrCat(kMinimalWriter, "  internal_token: \"", secret, "${1x}\"\n"),
      // Wrong types around secret values.
      absl::StrCat(kMinimalWriter, "  internal_token: [\"", secret, "\"]\n"),
      WithFreshBooks(absl::StrCat("      client_secret: { \"", secret, "\": 1 }\n")),
      WithFreshBooks(absl::StrCat("      verifiers: \"", secret, "\"\n")),
      WithFreshBooks(absl::StrCat("      verifiers: [[\"", secret, "\"]]\n")),
      // Errors next to secrets.
      absl::StrCat(kMinimalWriter, "  sink: databricks\nconnections:\n  - id: acme\n",
                   "    databricks: { client_secret: \"", secret, "\", host: \"\" }\n"),
  };
  for (const std::string& yaml : cases) {
    for (ConfigRole role : {ConfigRole::kIngress, ConfigRole::kWriter}) {
      absl::StatusOr<Config> config = Parse(yaml, role);
      if (config.ok()) continue;
      EXPECT_THAT(config.status().message(), Not(HasSubstr(secret))) << yaml;
      EXPECT_THAT(config.status().message(), Not(HasSubstr(secret.substr(0, 10)))) << yaml;
    }
    EXPECT_FALSE(Parse(yaml, ConfigRole::kWriter).ok()) << "every case is an error: " << yaml;
  }
}

TEST_F(ConfigTest, LoadConfigFileReadsTheFile) {
  testing::TempDir dir;
  const std::string path = dir.File("mlc.yaml");
  testing::WriteFile(path, kDesignExample);
  absl::StatusOr<Config> config = LoadConfigFile(path, ConfigRole::kWriter, &FakeGetEnv);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->connections[0].id, "acme");
}

TEST_F(ConfigTest, LoadConfigFileErrorsNameTheFile) {
  testing::TempDir dir;
  const std::string missing = dir.File("missing.yaml");
  absl::StatusOr<Config> config = LoadConfigFile(missing, ConfigRole::kWriter, &FakeGetEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            absl::StrCat("config file ", missing, ": cannot read: No such file or directory"));

  config = LoadConfigFile(dir.path(), ConfigRole::kWriter, &FakeGetEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr(absl::StrCat("config file ", dir.path(), ": cannot read: ")));

  const std::string broken = dir.File("broken.yaml");
  testing::WriteFile(broken, "writer:\n  listen: \"0.0.0.0:1\"\n  batch: [1,\n");
  config = LoadConfigFile(broken, ConfigRole::kWriter, &FakeGetEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr(absl::StrCat("config file ", broken, ": invalid YAML at line ")));
  EXPECT_THAT(config.status().message(), HasSubstr("column"));

  const std::string empty = dir.File("empty.yaml");
  testing::WriteFile(empty, "");
  config = LoadConfigFile(empty, ConfigRole::kWriter, &FakeGetEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              HasSubstr(absl::StrCat("config file ", empty, ": config is empty")));

  const std::string invalid = dir.File("invalid.yaml");
  testing::WriteFile(invalid, absl::StrCat(kMinimalWriter, "  sink: nope\n"));
  config = LoadConfigFile(invalid, ConfigRole::kWriter, &FakeGetEnv);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            absl::StrCat("config file ", invalid,
                         ": writer.sink \"nope\": must be \"sqlite\" or \"databricks\""));
}

}  // namespace
}  // namespace mlc
