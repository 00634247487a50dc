// Checks ParseWebhookForm / FreshBooksSignedMessage / FreshBooksSignature against an
// independent reference: tests/common/reference_signature.py, which does what
// FreshBooks does with CPython's own urllib.parse, json.dumps and hmac. Thousands of
// deterministic random payloads cover what the four documented vectors cannot:
// every escape class, astral characters, field order, '+' vs '%20', hex case.
//
// python3 is required: without it the test fails (CI installs it), because a
// silently skipped reference check would look like a passing one.
#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/webhook_signature.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/support/test_util.h"

namespace mlc {
namespace {

constexpr int kValidCases = 3000;
constexpr int kInvalidCases = 400;
constexpr uint32_t kSeed = 20240607;

constexpr char kStandardKeys[][12] = {"name",        "object_id",   "account_id",
                                      "business_id", "identity_id", "user_id"};

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

class Generator {
 public:
  explicit Generator(uint32_t seed) : rng_(seed) {}

  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool OneIn(int n) { return Uniform(1, n) == 1; }
  std::mt19937& rng() { return rng_; }

  // One character (1..4 UTF-8 bytes) from a class chosen at random.
  void AppendAtom(std::string* out) {
    static constexpr std::string_view kAlnum =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static constexpr std::string_view kPunct = "\"\\/+% &=~-._;:?#[]{}!'*(),<>@$^|`";
    static constexpr uint32_t kBmp[] = {0xe9,   0x4e2d, 0x2028, 0x2029, 0x80,   0xff,
                                        0x7ff,  0x800,  0xd7ff, 0xe000, 0xfeff, 0xfdd0,
                                        0xfffd, 0xfffe, 0xffff, 0x3000, 0x85,   0xa0};
    static constexpr uint32_t kAstral[] = {0x1f600, 0x10ffff, 0x10000, 0x1f4a9, 0x20000};
    switch (Uniform(0, 9)) {
      case 0:
      case 1:
      case 2:
        out->push_back(kAlnum[Uniform(0, kAlnum.size() - 1)]);
        break;
      case 3:
      case 4:
        out->push_back(kPunct[Uniform(0, kPunct.size() - 1)]);
        break;
      case 5: {  // control characters, NUL and DEL included
        const int c = Uniform(0, 0x20);
        out->push_back(static_cast<char>(c == 0x20 ? 0x7f : c));
        break;
      }
      case 6:
        AppendUtf8(kBmp[Uniform(0, std::size(kBmp) - 1)], out);
        break;
      case 7: {  // any BMP scalar value above ASCII
        uint32_t cp;
        do {
          cp = static_cast<uint32_t>(Uniform(0x80, 0xffff));
        } while (cp >= 0xd800 && cp <= 0xdfff);
        AppendUtf8(cp, out);
        break;
      }
      case 8:
        AppendUtf8(kAstral[Uniform(0, std::size(kAstral) - 1)], out);
        break;
      default:
        AppendUtf8(static_cast<uint32_t>(Uniform(0x10000, 0x10ffff)), out);
        break;
    }
  }

  std::string RandomText(int min_atoms, int max_atoms) {
    std::string s;
    const int n = Uniform(min_atoms, max_atoms);
    for (int i = 0; i < n; ++i) AppendAtom(&s);
    return s;
  }

  std::string StandardValue(std::string_view key) {
    if (OneIn(2)) return RandomText(0, 40);
    if (key == "name") return OneIn(2) ? "invoice.create" : "payment.update";
    if (key == "account_id") return "6BApk";
    return std::to_string(Uniform(1, 99999999));
  }

  FormFields RandomFields() {
    const int n = Uniform(1, 12);
    const int standard = std::min(n, 6);
    std::vector<std::string> keys(std::begin(kStandardKeys), std::end(kStandardKeys));
    std::shuffle(keys.begin(), keys.end(), rng_);
    keys.resize(standard);
    FormFields fields;
    for (const std::string& key : keys) fields.emplace_back(key, StandardValue(key));
    while (static_cast<int>(fields.size()) < n) {
      std::string key = absl::StrCat("x", RandomText(0, 10));
      const bool taken = std::any_of(fields.begin(), fields.end(),
                                     [&](const auto& field) { return field.first == key; });
      if (!taken) fields.emplace_back(std::move(key), RandomText(0, 40));
    }
    std::shuffle(fields.begin(), fields.end(), rng_);
    return fields;
  }

  std::string RandomVerifier() {
    if (OneIn(8)) return RandomText(1, 20);  // not what FreshBooks issues, but must still agree
    static constexpr std::string_view kAlnum =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string v;
    const int n = Uniform(0, 48);
    for (int i = 0; i < n; ++i) v.push_back(kAlnum[Uniform(0, kAlnum.size() - 1)]);
    return v;
  }

  // A form encoder independent of EncodeWebhookForm, with the variations a real
  // sender may use: space as '+' or "%20", lower- or uppercase hex, and unreserved
  // characters needlessly escaped.
  std::string VariantEncode(const FormFields& fields) {
    const int space_mode = Uniform(0, 2);  // 0 '+', 1 "%20", 2 per character
    const int hex_mode = Uniform(0, 2);    // 0 upper, 1 lower, 2 per escape
    const bool escape_unreserved = OneIn(3);
    std::string body;
    auto escape = [&](unsigned char c) {
      const bool lower = hex_mode == 1 || (hex_mode == 2 && OneIn(2));
      const char* digits = lower ? "0123456789abcdef" : "0123456789ABCDEF";
      body.push_back('%');
      body.push_back(digits[c >> 4]);
      body.push_back(digits[c & 0xf]);
    };
    auto encode = [&](std::string_view s) {
      for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~';
        if (unreserved && !(escape_unreserved && OneIn(4))) {
          body.push_back(ch);
        } else if (c == ' ' && (space_mode == 0 || (space_mode == 2 && OneIn(2)))) {
          body.push_back('+');
        } else {
          escape(c);
        }
      }
    };
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) body.push_back('&');
      encode(fields[i].first);
      body.push_back('=');
      encode(fields[i].second);
    }
    return body;
  }

 private:
  std::mt19937 rng_;
};

struct Case {
  std::string verifier;
  FormFields fields;  // empty for cases that must be rejected
  std::string body;
  bool valid = true;
};

std::vector<Case> GenerateCases() {
  Generator gen(kSeed);
  std::vector<Case> cases;
  cases.reserve(kValidCases + kInvalidCases);
  for (int i = 0; i < kValidCases; ++i) {
    Case c;
    c.verifier = gen.RandomVerifier();
    c.fields = gen.RandomFields();
    c.body = gen.OneIn(3) ? EncodeWebhookForm(c.fields) : gen.VariantEncode(c.fields);
    cases.push_back(std::move(c));
  }
  // Bodies both sides must reject: invalid UTF-8 at the end of some value (so no
  // following byte can complete a truncated sequence), or a repeated key.
  static constexpr std::string_view kInvalidUtf8[] = {
      "%C0%AF",    "%c1%bf", "%E0%80%AF", "%F0%80%80%AF", "%ED%A0%80",    "%ed%bf%bf", "%E2%82",
      "%F0%9F%98", "%80",    "%BF",       "%F4%90%80%80", "%F5%80%80%80", "%FF",       "%FE"};
  for (int i = 0; i < kInvalidCases; ++i) {
    Case c;
    c.valid = false;
    c.verifier = gen.RandomVerifier();
    const FormFields fields = gen.RandomFields();
    c.body = EncodeWebhookForm(fields);
    if (i % 2 == 0) {
      std::vector<size_t> value_ends;
      for (size_t p = 0; p < c.body.size(); ++p) {
        if (c.body[p] == '&') value_ends.push_back(p);
      }
      value_ends.push_back(c.body.size());
      const size_t at = value_ends[gen.Uniform(0, value_ends.size() - 1)];
      c.body.insert(at, kInvalidUtf8[gen.Uniform(0, std::size(kInvalidUtf8) - 1)]);
    } else {
      const auto& repeated = fields[gen.Uniform(0, fields.size() - 1)];
      FormFields extra = {{repeated.first, gen.RandomText(0, 5)}};
      absl::StrAppend(&c.body, "&", EncodeWebhookForm(extra));
    }
    cases.push_back(std::move(c));
  }
  return cases;
}

// Splits on `sep`; at most `max_parts` parts (the last keeps any further separators).
std::vector<std::string_view> Split(std::string_view s, char sep,
                                    size_t max_parts = std::string_view::npos) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const size_t at = s.find(sep);
    if (at == std::string_view::npos) break;
    parts.push_back(s.substr(0, at));
    s.remove_prefix(at + 1);
  }
  parts.push_back(s);
  return parts;
}

std::string ShellQuote(std::string_view s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  return out;
}

TEST(WebhookSignatureReferenceTest, MatchesCPythonReference) {
  ASSERT_EQ(std::system("command -v python3 >/dev/null 2>&1"), 0)
      << "python3 not found on PATH: this test compares against the CPython reference "
         "tests/common/reference_signature.py and cannot pass without it (CI installs "
         "python3; install it locally, e.g. apt-get install python3)";

  const std::vector<Case> cases = GenerateCases();
  testing::TempDir dir;
  const std::string input = dir.File("cases.jsonl");
  const std::string errors = dir.File("stderr.txt");
  {
    std::string lines;
    for (const Case& c : cases) {
      absl::StrAppend(&lines, nlohmann::json{{"verifier", c.verifier}, {"body", c.body}}.dump(),
                      "\n");
    }
    testing::WriteFile(input, lines);
  }

  const std::string script = std::string(MLC_SOURCE_DIR) + "/tests/common/reference_signature.py";
  const std::string command = absl::StrCat("python3 ", ShellQuote(script), " ", ShellQuote(input),
                                           " 2>", ShellQuote(errors));
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr) << "popen failed: " << command;
  std::string output;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << command << " failed (status " << status << "):\n"
      << testing::ReadFile(errors);

  std::vector<std::string_view> lines = Split(output, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  ASSERT_EQ(lines.size(), cases.size()) << "reference output:\n" << output.substr(0, 2000);

  int verified = 0;
  int rejected = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(absl::StrCat("case ", i, " body: ", c.body));
    const std::vector<std::string_view> parts = Split(lines[i], '\t', 3);
    const auto parsed = ParseWebhookForm(c.body);
    if (!c.valid) {
      EXPECT_EQ(parts[0], "ERROR") << "the reference accepted a body meant to be invalid";
      EXPECT_FALSE(parsed.ok()) << "accepted a body the reference rejects";
      if (!parsed.ok()) ++rejected;
      continue;
    }
    ASSERT_EQ(parts.size(), 3u) << "reference: " << lines[i];
    ASSERT_EQ(parts[0], "OK");
    const std::string_view signature = parts[1];
    const std::string_view message = parts[2];
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, c.fields) << "decoding does not round-trip";
    EXPECT_EQ(FreshBooksSignedMessage(*parsed), message);
    EXPECT_EQ(FreshBooksSignature(c.verifier, *parsed), signature);
    const bool accepted = VerifyFreshBooksSignature(c.verifier, *parsed, signature);
    EXPECT_TRUE(accepted);
    if (accepted && FreshBooksSignedMessage(*parsed) == message) ++verified;
    if (::testing::Test::HasFailure()) {
      FAIL() << "stopping at the first mismatching case; reference line: " << lines[i];
    }
  }
  EXPECT_EQ(verified, kValidCases);
  EXPECT_EQ(rejected, kInvalidCases);
  std::printf(
      "verified %d generated cases against the CPython reference; %d invalid bodies "
      "rejected by both\n",
      verified, rejected);
}

}  // namespace
}  // namespace mlc
