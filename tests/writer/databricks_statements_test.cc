// StatementClient against the fake workspace (DATABRICKS.md §2, DESIGN.md §4):
// the request it sends, results and MERGE counts it returns, slow statements
// polled instead of resubmitted, 429/503 retried with Retry-After honoured, write
// conflicts resubmitted, a dropped connection after the write was applied resent
// only for idempotent statements (and the table ends right), an invalid token
// re-minted once, FAILED statements classified into the documented Status codes,
// and CancelAll() cancelling what runs at shutdown.
#include "writer/databricks_statements.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "common/metrics.h"
#include "tests/fakes/fake_databricks.h"
#include "tests/support/test_util.h"
#include "writer/databricks_token.h"

namespace mlc::writer {
namespace {

using ::testing::ElementsAre;
using ::testing::Ge;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::StartsWith;
using Endpoint = testing::FakeDatabricks::Endpoint;
using ExecResult = testing::FakeDatabricks::ExecResult;
using Param = testing::FakeDatabricks::Param;
using Scope = testing::FakeDatabricks::Scope;
using Cells = std::vector<std::optional<std::string>>;

// ---------------------------------------------------------------------------
// Pure functions

struct ClassifyCase {
  const char* sql_state;
  const char* message;
  StatementErrorClass want;
};

TEST(ClassifyStatementErrorTest, Table) {
  using C = StatementErrorClass;
  const ClassifyCase cases[] = {
      // Write conflicts: retry.
      {"2D521", "[DELTA_CONCURRENT_APPEND] Files were added to the root of the table", C::kRetry},
      {"2D521", "", C::kRetry},
      {"", "[DELTA_CONCURRENT_DELETE_READ] This transaction attempted to read", C::kRetry},
      {"", "[DELTA_METADATA_CHANGED] MetadataChangedException", C::kRetry},
      {"", "[DELTA_PROTOCOL_CHANGED] ProtocolChangedException", C::kRetry},
      {"", "io.delta.exceptions: [DELTA_CONCURRENT_WRITE] ConcurrentWriteException", C::kRetry},
      {"40001", "serialization failure", C::kRetry},
      // Missing table or schema: provision, then retry.
      {"42P01", "[TABLE_OR_VIEW_NOT_FOUND] The table or view `c`.`s`.`t` cannot be found.",
       C::kReprovision},
      {"42P01", "", C::kReprovision},
      {"", "[TABLE_OR_VIEW_NOT_FOUND] The table or view cannot be found.", C::kReprovision},
      {"42704", "[SCHEMA_NOT_FOUND] The schema `finance`.`freshbooks` cannot be found.",
       C::kReprovision},
      {"", "[DELTA_TABLE_NOT_FOUND] Delta table `x` doesn't exist.", C::kReprovision},
      // Missing column: evolve, then retry.
      {"42703",
       "[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function "
       "parameter with name `memo` cannot be resolved.",
       C::kEvolve},
      {"", "[UNRESOLVED_COLUMN.WITHOUT_SUGGESTION] ...", C::kEvolve},
      {"42601", "[DELTA_MERGE_UNRESOLVED_EXPRESSION] Cannot resolve s.memo in UPDATE clause",
       C::kEvolve},
      // Permanent.
      {"42501", "[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have MODIFY",
       C::kPermanent},
      {"22005", "[DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields 'amount' and 'amount'",
       C::kPermanent},
      {"42601", "[PARSE_SYNTAX_ERROR] Syntax error at or near 'MERG'.", C::kPermanent},
      {"21506",
       "[DELTA_MULTIPLE_SOURCE_ROW_MATCHING_TARGET_ROW_IN_MERGE] Cannot perform Merge as "
       "multiple source rows matched",
       C::kPermanent},
      {"42704", "[CATALOG_NOT_FOUND] The catalog `finance` cannot be found.", C::kPermanent},
      {"42704", "[NO_SUCH_CATALOG_EXCEPTION] Catalog 'finance' was not found.", C::kPermanent},
      {"", "", C::kPermanent},
      {"XX000", "Internal error", C::kPermanent},
      {"", "[not_a_class] lower case is not an error class", C::kPermanent},
  };
  for (const ClassifyCase& c : cases) {
    EXPECT_EQ(ClassifyStatementError(c.sql_state, c.message), c.want)
        << "sql_state=" << c.sql_state << " message=" << c.message;
  }
}

TEST(ErrorClassOfTest, FindsTheBracketedClassWithoutSubclass) {
  EXPECT_EQ(ErrorClassOf("[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column"), "UNRESOLVED_COLUMN");
  EXPECT_EQ(ErrorClassOf("[DELTA_CONCURRENT_APPEND] x"), "DELTA_CONCURRENT_APPEND");
  EXPECT_EQ(ErrorClassOf("org.apache.spark.SparkException: [DIVIDE_BY_ZERO] x"), "DIVIDE_BY_ZERO");
  EXPECT_EQ(ErrorClassOf("values [1, 2] then [REAL_CLASS] x"), "REAL_CLASS");
  EXPECT_EQ(ErrorClassOf("no class here"), "");
  EXPECT_EQ(ErrorClassOf("[unterminated"), "");
  EXPECT_EQ(ErrorClassOf(""), "");
}

TEST(IsInvalidTokenAnswerTest, RecognisesExpiredAndInvalidTokens) {
  EXPECT_TRUE(IsInvalidTokenAnswer(401, ""));
  EXPECT_TRUE(IsInvalidTokenAnswer(403, R"({"error_code":403,"message":"Invalid access token."})"));
  EXPECT_TRUE(IsInvalidTokenAnswer(403, R"({"message":"Token is expired."})"));
  EXPECT_FALSE(IsInvalidTokenAnswer(
      403, R"({"error_code":"PERMISSION_DENIED","message":"User is not authorized"})"));
  EXPECT_FALSE(IsInvalidTokenAnswer(400, "Invalid access token"));
  EXPECT_FALSE(IsInvalidTokenAnswer(200, ""));
}

// ---------------------------------------------------------------------------
// Against the fake workspace

class SleepRecorder {
 public:
  std::function<void(absl::Duration)> Fn() {
    return [this](absl::Duration d) {
      std::lock_guard<std::mutex> lock(mu_);
      delays_.push_back(d);
    };
  }
  std::vector<absl::Duration> delays() {
    std::lock_guard<std::mutex> lock(mu_);
    return delays_;
  }

 private:
  std::mutex mu_;
  std::vector<absl::Duration> delays_;
};

// Fails the first `n` sends as if the connection could not be made.
class RefusingHttpClient final : public HttpClient {
 public:
  RefusingHttpClient(HttpClient* inner, int n) : inner_(inner), remaining_(n) {}
  absl::StatusOr<HttpResponse> Send(const HttpRequest& request) override {
    if (request.url.find("/api/") != std::string::npos && remaining_.fetch_sub(1) > 0) {
      return MarkRequestNotSent(absl::UnavailableError("http: cannot connect (test)"));
    }
    return inner_->Send(request);
  }

 private:
  HttpClient* inner_;
  std::atomic<int> remaining_;
};

class DatabricksStatementsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fake_.Start().ok());
    DatabricksTokenOptions t;
    t.host = fake_.url();
    t.client_id = fake_.options().client_id;
    t.client_secret = fake_.options().client_secret;
    tokens_ = std::make_unique<DatabricksTokenSource>(t, &http_, RealClock::Get());
  }

  StatementClientOptions Options() {
    StatementClientOptions o;
    o.host = fake_.url();
    o.warehouse_id = fake_.options().warehouse_id;
    o.wait_timeout = absl::Seconds(5);
    o.request_timeout = absl::Seconds(5);
    o.poll_initial = absl::Milliseconds(5);
    o.poll_max = absl::Milliseconds(20);
    o.backoff = {absl::Milliseconds(1), absl::Milliseconds(10)};
    o.max_http_attempts = 4;
    o.max_conflict_attempts = 4;
    return o;
  }

  std::unique_ptr<StatementClient> Client(StatementClientOptions o, HttpClient* http = nullptr) {
    return std::make_unique<StatementClient>(
        std::move(o), http ? http : &http_, tokens_.get(), RealClock::Get(),
        StatementMetrics{&latency_, &retries_, &failed_,
                         DatabricksRequestCounter(requests_, "acme")});
  }
  std::unique_ptr<StatementClient> Client() { return Client(Options()); }

  // mlc_databricks_requests_total{connection="acme", status}.
  double Requests(const std::string& status) { return requests_->With({"acme", status})->Value(); }

  // Every statement returns its SQL text and parameter count as one row.
  void EchoExecutor() {
    fake_.SetExecutor([](const std::string& sql, const std::vector<Param>& params) {
      ExecResult r;
      r.columns = {{"sql", "STRING"}, {"n", "INT"}};
      r.rows = {{sql, absl::StrCat(params.size())}};
      return absl::StatusOr<ExecResult>(r);
    });
  }

  // Executes one statement failing with `message` (and its SQLSTATE, derived).
  absl::StatusOr<StatementResult> FailWith(const std::string& message) {
    fake_.SetExecutor([message](const std::string&, const std::vector<Param>&) {
      return absl::StatusOr<ExecResult>(absl::InvalidArgumentError(message));
    });
    return Client()->Execute(Statement{"MERGE INTO t USING s ON t.id = s.id", {}, "", "", true});
  }

  testing::FakeDatabricks fake_;
  HttplibClient http_;
  std::unique_ptr<DatabricksTokenSource> tokens_;
  SleepRecorder sleeps_;
  Histogram latency_{LatencyBuckets()};
  Counter retries_;
  Counter failed_;
  Registry registry_;
  Family<Counter>* requests_ =
      registry_.AddCounter("mlc_databricks_requests_total", "requests", {"connection", "status"});
};

TEST_F(DatabricksStatementsTest, SendsTheDocumentedRequestAndReturnsRows) {
  std::vector<Param> seen;
  testing::FakeDatabricks::Context seen_context;
  fake_.SetContextExecutor([&](const std::string&, const std::vector<Param>& params,
                               const testing::FakeDatabricks::Context& context) {
    seen = params;
    seen_context = context;
    ExecResult r;
    r.columns = {{"id", "BIGINT"}, {"memo", "STRING"}};
    r.rows = {{"1", std::nullopt}, {"2", "two"}};
    return absl::StatusOr<ExecResult>(r);
  });
  Statement s;
  s.sql = "SELECT id, memo FROM t WHERE account_id = :account AND id > :min AND x = :nothing";
  s.parameters = {
      {"account", "6BApk", "STRING"}, {"min", "0", "BIGINT"}, {"nothing", {}, "STRING"}};
  s.catalog = "finance";
  s.schema = "freshbooks";
  absl::StatusOr<StatementResult> r = Client()->Execute(s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->state, "SUCCEEDED");
  EXPECT_FALSE(r->statement_id.empty());
  EXPECT_THAT(r->columns, ElementsAre("id", "memo"));
  EXPECT_THAT(r->data_array, ElementsAre(Cells{"1", std::nullopt}, Cells{"2", "two"}));
  EXPECT_FALSE(r->num_affected_rows.has_value());

  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].name, "account");
  EXPECT_EQ(seen[0].value, "6BApk");
  EXPECT_EQ(seen[1].type, "BIGINT");
  EXPECT_FALSE(seen[2].value.has_value());
  EXPECT_EQ(seen_context.catalog, "finance");
  EXPECT_EQ(seen_context.schema, "freshbooks");

  const std::vector<std::string> bodies = fake_.ExecuteRequestBodies();
  ASSERT_EQ(bodies.size(), 1u);
  const nlohmann::json body = nlohmann::json::parse(bodies[0]);
  EXPECT_EQ(body["warehouse_id"], fake_.options().warehouse_id);
  EXPECT_EQ(body["statement"], s.sql);
  EXPECT_EQ(body["wait_timeout"], "5s");
  EXPECT_EQ(body["on_wait_timeout"], "CONTINUE");
  EXPECT_EQ(body["catalog"], "finance");
  EXPECT_EQ(body["schema"], "freshbooks");
  ASSERT_EQ(body["parameters"].size(), 3u);
  EXPECT_EQ(body["parameters"][2]["name"], "nothing");
  EXPECT_FALSE(body["parameters"][2].contains("value"));  // NULL: value omitted
  EXPECT_EQ(latency_.Count(), 1u);
}

TEST_F(DatabricksStatementsTest, ReturnsMergeCounts) {
  fake_.SetExecutor([](const std::string&, const std::vector<Param>&) {
    return absl::StatusOr<ExecResult>(ExecResult::MergeCounts(5, 2, 0, 3));
  });
  absl::StatusOr<StatementResult> r =
      Client()->Execute(Statement{"MERGE INTO t ...", {}, "", "", true});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->num_affected_rows, Optional(5));
  EXPECT_THAT(r->num_updated_rows, Optional(2));
  EXPECT_THAT(r->num_deleted_rows, Optional(0));
  EXPECT_THAT(r->num_inserted_rows, Optional(3));
}

TEST_F(DatabricksStatementsTest, FollowsResultChunks) {
  fake_.SetChunkRows(2);
  fake_.SetExecutor([](const std::string&, const std::vector<Param>&) {
    ExecResult r;
    r.columns = {{"i", "INT"}};
    for (int i = 0; i < 5; ++i) r.rows.push_back({absl::StrCat(i)});
    return absl::StatusOr<ExecResult>(r);
  });
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT i", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->data_array,
              ElementsAre(Cells{"0"}, Cells{"1"}, Cells{"2"}, Cells{"3"}, Cells{"4"}));
  EXPECT_EQ(fake_.Requests(Endpoint::kGetChunk), 2);
}

TEST_F(DatabricksStatementsTest, SlowStatementIsPolledNotResubmitted) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Milliseconds(150));
  StatementClientOptions o = Options();
  o.wait_timeout = absl::ZeroDuration();  // answer at once: PENDING, poll
  absl::StatusOr<StatementResult> r = Client(o)->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->data_array[0][0], "SELECT 1");
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 1);
  EXPECT_GE(fake_.Requests(Endpoint::kGetStatement), 1);
  EXPECT_EQ(fake_.StatementsExecuted(), 1);
  EXPECT_EQ(nlohmann::json::parse(fake_.ExecuteRequestBodies()[0])["wait_timeout"], "0s");
}

TEST_F(DatabricksStatementsTest, StatementWithinWaitTimeoutNeedsNoPolling) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Milliseconds(100));
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kGetStatement), 0);
}

TEST_F(DatabricksStatementsTest, ThrottlingAndUnavailabilityRetriedHonouringRetryAfter) {
  EchoExecutor();
  fake_.ThrottleNext(1, /*retry_after_seconds=*/3, Scope::kExecute);
  fake_.UnavailableNext(1, /*retry_after_seconds=*/2, Scope::kExecute);
  StatementClientOptions o = Options();
  o.sleep = sleeps_.Fn();
  absl::StatusOr<StatementResult> r = Client(o)->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 3);
  EXPECT_EQ(fake_.StatementsExecuted(), 1);
  const std::vector<absl::Duration> delays = sleeps_.delays();
  ASSERT_EQ(delays.size(), 2u);
  EXPECT_GE(delays[0], absl::Seconds(3));
  EXPECT_GE(delays[1], absl::Seconds(2));
  EXPECT_EQ(retries_.Value(), 2);
}

TEST_F(DatabricksStatementsTest, RetryAfterIsReallyWaited) {
  EchoExecutor();
  fake_.ThrottleNext(1, /*retry_after_seconds=*/1, Scope::kExecute);
  const absl::Time start = absl::Now();
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
}

TEST_F(DatabricksStatementsTest, PollsAreRetriedOnThrottling) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Milliseconds(50));
  fake_.ThrottleNext(2, 0, Scope::kGetStatement);
  StatementClientOptions o = Options();
  o.wait_timeout = absl::ZeroDuration();
  absl::StatusOr<StatementResult> r = Client(o)->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 1);
  EXPECT_EQ(fake_.StatementsExecuted(), 1);
}

TEST_F(DatabricksStatementsTest, PersistentThrottlingIsResourceExhausted) {
  fake_.ThrottleNext(100, 0, Scope::kExecute);
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 1", {}, "", "", false});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("gave up after 4 attempts"));
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 4);
  EXPECT_EQ(fake_.StatementsExecuted(), 0);
  EXPECT_EQ(failed_.Value(), 1);
}

TEST_F(DatabricksStatementsTest, PersistentUnavailabilityIsUnavailable) {
  fake_.UnavailableNext(100, -1, Scope::kExecute);
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 1", {}, "", "", false});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("TEMPORARILY_UNAVAILABLE"));
}

TEST_F(DatabricksStatementsTest, WriteConflictIsResubmitted) {
  EchoExecutor();
  fake_.ConflictNext(2);
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"MERGE 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 3);
  EXPECT_EQ(fake_.StatementsExecuted(), 1);
}

TEST_F(DatabricksStatementsTest, PersistentConflictIsAbortedAndClassified) {
  fake_.ConflictNext(100);
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"MERGE 1", {}, "", "", true});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_EQ(StatementErrorClassOf(r.status()), StatementErrorClass::kRetry);
  EXPECT_EQ(StatementSqlStateOf(r.status()), "2D521");
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("[DELTA_CONCURRENT_APPEND]"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("statement 01"));
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 4);
  EXPECT_EQ(fake_.StatementsExecuted(), 0);
}

// A keyed upsert: applying it twice leaves the same table.
class KeyedTable {
 public:
  testing::FakeDatabricks::Executor Executor() {
    return [this](const std::string&, const std::vector<Param>& params) {
      std::lock_guard<std::mutex> lock(mu_);
      ++applied_;
      const bool existed = rows_.count(*params[0].value) > 0;
      rows_[*params[0].value] = *params[1].value;
      return absl::StatusOr<ExecResult>(
          ExecResult::MergeCounts(1, existed ? 1 : 0, 0, existed ? 0 : 1));
    };
  }
  std::map<std::string, std::string> rows() {
    std::lock_guard<std::mutex> lock(mu_);
    return rows_;
  }
  int applied() {
    std::lock_guard<std::mutex> lock(mu_);
    return applied_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::string> rows_;
  int applied_ = 0;
};

Statement Upsert(bool idempotent) {
  Statement s;
  s.sql =
      "MERGE INTO t USING (SELECT :id AS id, :v AS v) s ON t.id = s.id "
      "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *";
  s.parameters = {{"id", "42", "BIGINT"}, {"v", "hello", "STRING"}};
  s.idempotent = idempotent;
  return s;
}

TEST_F(DatabricksStatementsTest, DroppedAfterApplyIsResentWhenIdempotent) {
  KeyedTable table;
  fake_.SetExecutor(table.Executor());
  fake_.DropConnectionAfterNextStatements(1);
  absl::StatusOr<StatementResult> r = Client()->Execute(Upsert(/*idempotent=*/true));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 2);
  EXPECT_EQ(table.applied(), 2);  // the lost answer's write did happen...
  EXPECT_EQ(table.rows(), (std::map<std::string, std::string>{{"42", "hello"}}));  // ...once
  EXPECT_THAT(r->num_updated_rows, Optional(1));  // the resend matched the applied row
  EXPECT_THAT(r->num_inserted_rows, Optional(0));
}

TEST_F(DatabricksStatementsTest, DroppedAfterApplyIsNotResentWhenNotIdempotent) {
  KeyedTable table;
  fake_.SetExecutor(table.Executor());
  fake_.DropConnectionAfterNextStatements(1);
  absl::StatusOr<StatementResult> r = Client()->Execute(Upsert(/*idempotent=*/false));
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("outcome unknown"));
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 1);
  EXPECT_EQ(table.applied(), 1);
}

TEST_F(DatabricksStatementsTest, DroppedPollIsRetriedWithoutResubmitting) {
  KeyedTable table;
  fake_.SetExecutor(table.Executor());
  fake_.SetStatementLatency(absl::Milliseconds(60));
  fake_.DropConnectionAfterNextStatements(1);
  StatementClientOptions o = Options();
  o.wait_timeout = absl::ZeroDuration();  // applied during a poll, whose answer is lost
  absl::StatusOr<StatementResult> r = Client(o)->Execute(Upsert(/*idempotent=*/false));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 1);
  EXPECT_EQ(table.applied(), 1);
  EXPECT_THAT(r->num_inserted_rows, Optional(1));
}

TEST_F(DatabricksStatementsTest, UnsentRequestIsRetriedEvenIfNotIdempotent) {
  EchoExecutor();
  RefusingHttpClient refusing(&http_, 2);
  absl::StatusOr<StatementResult> r =
      Client(Options(), &refusing)->Execute(Statement{"INSERT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.StatementsExecuted(), 1);
}

TEST_F(DatabricksStatementsTest, EveryCallIsCountedByStatus) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Milliseconds(50));
  fake_.ThrottleNext(1, /*retry_after_seconds=*/0, Scope::kExecute);
  RefusingHttpClient refusing(&http_, 1);
  StatementClientOptions o = Options();
  o.wait_timeout = absl::ZeroDuration();  // PENDING at once: polled
  absl::StatusOr<StatementResult> r =
      Client(o, &refusing)->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Requests("network"), 1);  // the refused connection
  EXPECT_EQ(Requests("429"), 1);
  ASSERT_GE(fake_.Requests(Endpoint::kGetStatement), 1);
  // The accepted submission and every poll; the token source counts its own calls.
  EXPECT_EQ(Requests("200"), 1 + fake_.Requests(Endpoint::kGetStatement));

  // A rejected token is counted before the re-mint and the retry.
  fake_.RejectTokensNext(1);
  ASSERT_TRUE(Client()->Execute(Statement{"SELECT 2", {}, "", "", false}).ok());
  EXPECT_EQ(Requests("401") + Requests("403"), 1);
  EXPECT_EQ(Requests("200"), 2 + fake_.Requests(Endpoint::kGetStatement));
  // Bounded labels: no statement id or path in the exposition.
  EXPECT_THAT(registry_.Render(), Not(HasSubstr(r->statement_id)));
}

TEST_F(DatabricksStatementsTest, InvalidTokenIsReMintedOnceAndRetried) {
  EchoExecutor();
  ASSERT_TRUE(tokens_->Token().ok());
  fake_.RejectTokensNext(1);
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.TokensMinted(), 2);
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 2);
  EXPECT_EQ(fake_.StatementsExecuted(), 1);
}

TEST_F(DatabricksStatementsTest, RevokedTokenIsReplaced) {
  EchoExecutor();
  ASSERT_TRUE(Client()->Execute(Statement{"SELECT 1", {}, "", "", false}).ok());
  fake_.RevokeAllTokens();  // e.g. expired server-side before our schedule said so
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 2", {}, "", "", false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(fake_.TokensMinted(), 2);
}

TEST_F(DatabricksStatementsTest, TokenRejectedTwiceFailsWithoutLeakingIt) {
  absl::StatusOr<std::string> token = tokens_->Token();
  ASSERT_TRUE(token.ok());
  fake_.RejectTokensNext(2);
  absl::StatusOr<StatementResult> r = Client()->Execute(Statement{"SELECT 1", {}, "", "", false});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("Invalid access token"));
  EXPECT_THAT(r.status().ToString(), Not(HasSubstr(*token)));
  EXPECT_THAT(r.status().ToString(), Not(HasSubstr(fake_.options().client_secret)));
  EXPECT_EQ(fake_.TokensMinted(), 2);
  EXPECT_EQ(fake_.StatementsExecuted(), 0);
}

struct FailureCase {
  const char* message;
  absl::StatusCode code;
  StatementErrorClass cls;
  const char* sql_state;
  const char* prefix;
};

TEST_F(DatabricksStatementsTest, FailedStatementsMapToDocumentedStatuses) {
  const FailureCase cases[] = {
      {"[TABLE_OR_VIEW_NOT_FOUND] The table or view `finance`.`freshbooks`.`t` cannot be found.",
       absl::StatusCode::kNotFound, StatementErrorClass::kReprovision, "42P01",
       "databricks: table or schema missing: statement "},
      {"[SCHEMA_NOT_FOUND] The schema `finance`.`freshbooks` cannot be found.",
       absl::StatusCode::kNotFound, StatementErrorClass::kReprovision, "42704",
       "databricks: table or schema missing: statement "},
      {"[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column with name `memo` cannot be resolved.",
       absl::StatusCode::kFailedPrecondition, StatementErrorClass::kEvolve, "42703",
       "databricks: missing column: statement "},
      {"[INSUFFICIENT_PERMISSIONS] Insufficient privileges: User does not have MODIFY on Table",
       absl::StatusCode::kFailedPrecondition, StatementErrorClass::kPermanent, "42501",
       "databricks: statement failed: statement "},
      {"[DELTA_FAILED_TO_MERGE_FIELDS] Failed to merge fields 'amount' and 'amount'",
       absl::StatusCode::kFailedPrecondition, StatementErrorClass::kPermanent, "22005",
       "databricks: statement failed: statement "},
      {"[PARSE_SYNTAX_ERROR] Syntax error at or near 'MERG'.",
       absl::StatusCode::kFailedPrecondition, StatementErrorClass::kPermanent, "42601",
       "databricks: statement failed: statement "},
  };
  for (const FailureCase& c : cases) {
    absl::StatusOr<StatementResult> r = FailWith(c.message);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().code(), c.code) << r.status();
    EXPECT_EQ(StatementErrorClassOf(r.status()), c.cls) << r.status();
    EXPECT_EQ(StatementSqlStateOf(r.status()), c.sql_state) << r.status();
    EXPECT_THAT(std::string(r.status().message()), StartsWith(c.prefix));
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr(absl::StrCat("SQLSTATE ", c.sql_state)));
  }
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 6);  // none retried
}

TEST_F(DatabricksStatementsTest, RequestLevelErrorsAreNotRetried) {
  Statement s{"SELECT :a", {{"a", "[1]", "ARRAY<INT>"}}, "", "", true};
  absl::StatusOr<StatementResult> r = Client()->Execute(s);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("INVALID_PARAMETER_VALUE"));
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 1);

  StatementClientOptions o = Options();
  o.warehouse_id = "nosuchwarehouse";
  r = Client(o)->Execute(Statement{"SELECT 1", {}, "", "", true});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("warehouse_id"));
}

TEST_F(DatabricksStatementsTest, RejectsTooManyParametersLocally) {
  Statement s{"SELECT 1", {}, "", "", true};
  for (int i = 0; i < 257; ++i) s.parameters.push_back({absl::StrCat("p", i), "1", "INT"});
  EXPECT_EQ(Client()->Execute(s).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), 0);
}

TEST_F(DatabricksStatementsTest, ConcurrentExecutes) {
  EchoExecutor();
  auto client = Client();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        const std::string sql = absl::StrCat("SELECT ", t, ", ", i);
        absl::StatusOr<StatementResult> r = client->Execute(Statement{sql, {}, "", "", true});
        if (r.ok() && r->data_array.size() == 1 && r->data_array[0][0] == sql) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 30);
  EXPECT_EQ(fake_.TokensMinted(), 1);
}

TEST_F(DatabricksStatementsTest, CancelAllCancelsRunningStatementsAtShutdown) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Seconds(30));
  StatementClientOptions o = Options();
  o.wait_timeout = absl::ZeroDuration();
  o.poll_max = absl::Seconds(5);  // a waiting poller must be woken, not wait this out
  auto client = Client(o);
  absl::StatusOr<StatementResult> result;
  std::thread runner([&] { result = client->Execute(Statement{"MERGE slow", {}, "", "", true}); });
  ASSERT_TRUE(testing::WaitFor([&] { return !client->InFlight().empty(); }));
  const std::string id = client->InFlight()[0];
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it reach a long wait
  const absl::Time start = absl::Now();
  client->CancelAll();
  runner.join();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_THAT(std::string(result.status().message()), HasSubstr(id));
  EXPECT_EQ(fake_.StatementState(id), "CANCELED");
  EXPECT_EQ(fake_.StatementsCanceled(), 1);
  EXPECT_EQ(fake_.StatementsExecuted(), 0);
  EXPECT_TRUE(client->InFlight().empty());

  // After shutdown nothing new is submitted.
  const int before = fake_.Requests(Endpoint::kExecute);
  EXPECT_EQ(client->Execute(Statement{"SELECT 1", {}, "", "", true}).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(fake_.Requests(Endpoint::kExecute), before);
}

TEST_F(DatabricksStatementsTest, SubmissionInFlightAtShutdownIsCanceledOnceItsIdArrives) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Seconds(30));
  auto client = Client();  // wait_timeout 5 s: the fake holds the submission that long
  absl::StatusOr<StatementResult> result;
  std::thread runner([&] { result = client->Execute(Statement{"MERGE slow", {}, "", "", true}); });
  ASSERT_TRUE(testing::WaitFor([&] { return fake_.RunningStatements().size() == 1; }));
  const std::string id = fake_.RunningStatements()[0];
  client->CancelAll();  // no id known yet: nothing to cancel
  EXPECT_EQ(fake_.StatementsCanceled(), 0);
  runner.join();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled) << result.status();
  EXPECT_EQ(fake_.StatementState(id), "CANCELED");
  EXPECT_EQ(fake_.StatementsExecuted(), 0);
  EXPECT_EQ(fake_.Requests(Endpoint::kGetStatement), 0);
}

TEST_F(DatabricksStatementsTest, StatementStillRunningAtItsTimeoutIsCanceled) {
  EchoExecutor();
  fake_.SetStatementLatency(absl::Seconds(30));
  FakeClock clock;
  StatementClientOptions o = Options();
  o.wait_timeout = absl::ZeroDuration();
  o.statement_timeout = absl::Minutes(1);
  o.poll_max = absl::Seconds(10);
  o.sleep = [&clock](absl::Duration d) { clock.Advance(d); };  // time flies, no sleeping
  StatementClient client(o, &http_, tokens_.get(), &clock);
  absl::StatusOr<StatementResult> r = client.Execute(Statement{"MERGE slow", {}, "", "", true});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("canceled"));
  ASSERT_EQ(fake_.ExecuteRequestBodies().size(), 1u);
  EXPECT_EQ(fake_.StatementsCanceled(), 1);
  EXPECT_TRUE(fake_.RunningStatements().empty());
  EXPECT_TRUE(client.InFlight().empty());
}

TEST_F(DatabricksStatementsTest, CancelOfAFinishedOrUnknownStatementIsHarmless) {
  EchoExecutor();
  auto client = Client();
  absl::StatusOr<StatementResult> r = client->Execute(Statement{"SELECT 1", {}, "", "", true});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(client->Cancel(r->statement_id).ok());
  EXPECT_EQ(fake_.StatementState(r->statement_id), "SUCCEEDED");
  EXPECT_TRUE(client->Cancel("01f0fa4e-dead-beef-8000-000000000000").ok());
}

}  // namespace
}  // namespace mlc::writer
