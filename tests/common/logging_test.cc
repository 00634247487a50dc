#include "common/logging.h"

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace mlc::log {
namespace {

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    unsetenv("MLC_LOG_LEVEL");
    Init("writer", Level::kDebug);
  }
  void TearDown() override {
    unsetenv("MLC_LOG_LEVEL");
    Init("writer", Level::kInfo);
  }
};

// YYYY-MM-DDTHH:MM:SS.ffffffZ (std::regex trips GCC 12 warnings under sanitizers).
bool IsRfc3339Micros(const std::string& ts) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.ddddddZ";
  if (ts.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    const bool ok = shape[i] == 'd' ? (ts[i] >= '0' && ts[i] <= '9') : ts[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

// The part of a line after the timestamp, which is the only non-deterministic field.
std::string AfterTs(const std::string& line) {
  const size_t pos = line.find("\",\"level\"");
  return pos == std::string::npos ? line : line.substr(pos + 2);
}

TEST_F(LoggingTest, FormatWritesFieldsInOrder) {
  const std::string line =
      Format(Level::kInfo, "delivery accepted",
             {{"connection", "acme"}, {"n", 3}, {"delivery_id", std::string("d-1")}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(AfterTs(line),
            "\"level\":\"info\",\"service\":\"writer\",\"msg\":\"delivery accepted\","
            "\"connection\":\"acme\",\"n\":3,\"delivery_id\":\"d-1\"}");

  const auto json = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (const auto& item : json.items()) keys.push_back(item.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"ts", "level", "service", "msg", "connection", "n",
                                            "delivery_id"}));
  EXPECT_TRUE(IsRfc3339Micros(json["ts"].get<std::string>())) << json["ts"];
}

TEST_F(LoggingTest, LevelNames) {
  EXPECT_EQ(nlohmann::json::parse(Format(Level::kDebug, "m", {}))["level"], "debug");
  EXPECT_EQ(nlohmann::json::parse(Format(Level::kInfo, "m", {}))["level"], "info");
  EXPECT_EQ(nlohmann::json::parse(Format(Level::kWarn, "m", {}))["level"], "warn");
  EXPECT_EQ(nlohmann::json::parse(Format(Level::kError, "m", {}))["level"], "error");
}

TEST_F(LoggingTest, EscapesQuotesNewlinesControlCharactersAndKeepsUnicode) {
  const std::string tricky =
      std::string("say \"hi\"\\ back\nline\r\ttab\b\f") + '\x01' + '\x1f' + '\0' + "\x7f héllo ✓ 😀";
  const std::string line = Format(Level::kWarn, tricky, {{"k\"ey\n", tricky}});
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find(R"(say \"hi\"\\ back\nline\r\ttab\b\f\u0001\u001f\u0000)"), std::string::npos)
      << line;
  EXPECT_NE(line.find("héllo ✓ 😀"), std::string::npos) << "UTF-8 is passed through";

  const auto json = nlohmann::json::parse(line);
  EXPECT_EQ(json["msg"], tricky);
  EXPECT_EQ(json["k\"ey\n"], tricky);
}

TEST_F(LoggingTest, InvalidUtf8BecomesReplacementCharacters) {
  const std::string bad_cases[] = {
      "\xff",                  // never valid
      "abc\xc3",               // truncated 2-byte sequence
      "\xc0\xaf",              // overlong '/'
      "\xed\xa0\x80",          // UTF-16 surrogate
      "\xf4\x90\x80\x80",      // above U+10FFFF
      "\xe2\x82",              // truncated 3-byte sequence
      "\x80\x80 continuation"  // stray continuation bytes
  };
  for (const std::string& bad : bad_cases) {
    std::string line;
    ASSERT_NO_THROW(line = Format(Level::kInfo, bad, {{bad, bad}}));
    nlohmann::json json;
    ASSERT_NO_THROW(json = nlohmann::json::parse(line)) << line;
    const std::string msg = json["msg"].get<std::string>();
    EXPECT_NE(msg.find("\xEF\xBF\xBD"), std::string::npos) << msg;
  }
  const auto json = nlohmann::json::parse(Format(Level::kInfo,
                                                 "a\xff"
                                                 "b\xc3",
                                                 {}));
  EXPECT_EQ(json["msg"],
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
}

TEST_F(LoggingTest, NumbersAreJsonNumbers) {
  const std::string line = Format(Level::kInfo, "numbers",
                                  {{"int", 42},
                                   {"neg", int64_t{-7}},
                                   {"min", std::numeric_limits<int64_t>::min()},
                                   {"max_u", std::numeric_limits<uint64_t>::max()},
                                   {"ratio", 0.25},
                                   {"third", 1.0 / 3},
                                   {"ok", true},
                                   {"failed", false},
                                   {"nan", std::numeric_limits<double>::quiet_NaN()},
                                   {"inf", std::numeric_limits<double>::infinity()},
                                   {"text", "42"}});
  const auto json = nlohmann::json::parse(line);
  EXPECT_TRUE(json["int"].is_number_integer());
  EXPECT_EQ(json["int"], 42);
  EXPECT_EQ(json["neg"], -7);
  EXPECT_EQ(json["min"].get<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(json["max_u"].get<uint64_t>(), std::numeric_limits<uint64_t>::max());
  EXPECT_TRUE(json["ratio"].is_number_float());
  EXPECT_EQ(json["ratio"], 0.25);
  EXPECT_EQ(json["third"].get<double>(), 1.0 / 3);
  EXPECT_EQ(json["ok"], true);
  EXPECT_EQ(json["failed"], false);
  // JSON has no NaN/Infinity: they are logged as strings, keeping the line valid.
  EXPECT_EQ(json["nan"], "NaN");
  EXPECT_EQ(json["inf"], "Infinity");
  EXPECT_TRUE(json["text"].is_string());
}

TEST_F(LoggingTest, ParseLevel) {
  EXPECT_EQ(ParseLevel("debug"), Level::kDebug);
  EXPECT_EQ(ParseLevel("info"), Level::kInfo);
  EXPECT_EQ(ParseLevel("warn"), Level::kWarn);
  EXPECT_EQ(ParseLevel("WARNING"), Level::kWarn);
  EXPECT_EQ(ParseLevel("error"), Level::kError);
  EXPECT_EQ(ParseLevel("verbose"), Level::kInfo);
  EXPECT_EQ(ParseLevel(""), Level::kInfo);
}

TEST_F(LoggingTest, InitSetsLevelAndEnvironmentOverridesIt) {
  Init("writer", Level::kWarn);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kWarn));
  EXPECT_TRUE(Enabled(Level::kError));

  setenv("MLC_LOG_LEVEL", "debug", 1);
  Init("writer", Level::kError);
  EXPECT_TRUE(Enabled(Level::kDebug));

  setenv("MLC_LOG_LEVEL", "error", 1);
  Init("writer", Level::kDebug);
  EXPECT_FALSE(Enabled(Level::kWarn));
  EXPECT_TRUE(Enabled(Level::kError));
}

TEST_F(LoggingTest, InitSetsServiceName) {
  Init("ingress", Level::kInfo);
  EXPECT_EQ(nlohmann::json::parse(Format(Level::kInfo, "m", {}))["service"], "ingress");
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_F(LoggingTest, WriteEmitsOneJsonLinePerEnabledEvent) {
  Init("writer", Level::kInfo);
  ::testing::internal::CaptureStderr();
  Debug("hidden");
  Info("shown", {{"connection", "acme"}});
  Error("broken", {{"statement_id", "s-1"}});
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 2u);
  const auto info = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(info["msg"], "shown");
  EXPECT_EQ(info["connection"], "acme");
  const auto error = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(error["level"], "error");
  EXPECT_EQ(error["statement_id"], "s-1");
}

TEST_F(LoggingTest, ConcurrentWritersNeverInterleaveLines) {
  constexpr int kThreads = 4;
  constexpr int kLines = 200;
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      for (int i = 0; i < kLines; ++i) {
        Info("concurrent", {{"thread", t}, {"i", i}, {"payload", std::string(100, 'x')}});
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), static_cast<size_t>(kThreads * kLines));
  std::set<std::pair<int, int>> seen;
  for (const std::string& line : lines) {
    ASSERT_TRUE(nlohmann::json::accept(line)) << line;
    const auto json = nlohmann::json::parse(line);
    seen.emplace(json["thread"].get<int>(), json["i"].get<int>());
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kThreads * kLines));
}

}  // namespace
}  // namespace mlc::log
