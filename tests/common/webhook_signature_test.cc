#include "common/webhook_signature.h"

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mlc {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// FRESHBOOKS.md §2, verbatim.
struct Vector {
  std::string_view verifier;
  std::string_view body;
  std::string_view message;
  std::string_view header;
};

constexpr Vector kVectors[] = {
    {"scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd",
     "name=invoice.create&object_id=1234567&account_id=6BApk&business_id=6543&identity_id=1234&"
     "user_id=1",
     R"({"name": "invoice.create", "object_id": "1234567", "account_id": "6BApk", )"
     R"("business_id": "6543", "identity_id": "1234", "user_id": "1"})",
     "/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc="},
    {"scADVVi5QuKuj5qTjVkbJNYQe7V7USpGd",
     "name=client.update&object_id=921895&user_id=1&identity_id=14051539&business_id=14393743&"
     "account_id=p7rQW5",
     // The table says "same order as the body".
     R"({"name": "client.update", "object_id": "921895", "user_id": "1", )"
     R"("identity_id": "14051539", "business_id": "14393743", "account_id": "p7rQW5"})",
     "iJZOXmjrd3oWVqpjPSOD3T4h++SND5zKcEcZTK3y6g0="},
    {"test_verifier", "name=invoice.update&object_id=42&account_id=Ab%2FC%C3%A9&note=a+b%22c",
     R"({"name": "invoice.update", "object_id": "42", "account_id": "Ab/C\u00e9", )"
     R"("note": "a b\"c"})",
     "DVla5ywFIZCO6OaIO87dqE1sCFheEpyVNH8QMhh/y78="},
    {"k3y", "name=payment.create&object_id=7&account_id=x%F0%9F%98%80y&memo=tab%09nl%0Abs%5C",
     R"({"name": "payment.create", "object_id": "7", "account_id": "x\ud83d\ude00y", )"
     R"("memo": "tab\tnl\nbs\\"})",
     "LEbMZbPCUSCpJhgv4Zr5p4qJZm3Ozu/fX0asySOuz6k="},
};

// The HMAC of row 1's raw body: what a naive gateway computes. Must be rejected.
constexpr std::string_view kRawBodyHmacRow1 = "53P2UswGzbvlPS2+pFzhcWDdnV4/8rAO0PI1mWr7nhA=";

FormFields MustParse(std::string_view body) {
  auto fields = ParseWebhookForm(body);
  EXPECT_TRUE(fields.ok()) << body << ": " << fields.status();
  return fields.ok() ? *std::move(fields) : FormFields();
}

// Expects ParseWebhookForm to fail with InvalidArgument and a message containing `cause`.
void ExpectParseError(std::string_view body, std::string_view cause,
                      const FormLimits& limits = FormLimits()) {
  const auto fields = ParseWebhookForm(body, limits);
  ASSERT_FALSE(fields.ok()) << "accepted: " << body;
  EXPECT_EQ(fields.status().code(), absl::StatusCode::kInvalidArgument) << fields.status();
  EXPECT_THAT(std::string(fields.status().message()), HasSubstr(std::string(cause)))
      << "body: " << body;
}

TEST(WebhookSignatureTest, DocumentedVectors) {
  for (const Vector& v : kVectors) {
    SCOPED_TRACE(v.body);
    const FormFields fields = MustParse(v.body);
    EXPECT_EQ(FreshBooksSignedMessage(fields), v.message);
    EXPECT_EQ(FreshBooksSignature(v.verifier, fields), v.header);
    EXPECT_TRUE(VerifyFreshBooksSignature(v.verifier, fields, v.header));
  }
}

TEST(WebhookSignatureTest, DocumentedVectorsDecodeFields) {
  EXPECT_THAT(MustParse(kVectors[2].body),
              ElementsAre(Pair("name", "invoice.update"), Pair("object_id", "42"),
                          Pair("account_id", "Ab/C\xc3\xa9"), Pair("note", "a b\"c")));
  EXPECT_THAT(MustParse(kVectors[3].body),
              ElementsAre(Pair("name", "payment.create"), Pair("object_id", "7"),
                          Pair("account_id", "x\xf0\x9f\x98\x80y"), Pair("memo", "tab\tnl\nbs\\")));
}

TEST(WebhookSignatureTest, RejectsRawBodyHmac) {
  const Vector& v = kVectors[0];
  // Confirms the constant really is the raw-body HMAC, so the rejection means something.
  ASSERT_EQ(Base64Encode(HmacSha256(v.verifier, v.body)), kRawBodyHmacRow1);
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, MustParse(v.body), kRawBodyHmacRow1));
}

TEST(WebhookSignatureTest, RejectsWrongKey) {
  for (const Vector& v : kVectors) {
    const FormFields fields = MustParse(v.body);
    EXPECT_FALSE(VerifyFreshBooksSignature(std::string(v.verifier) + "x", fields, v.header));
    EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier.substr(1), fields, v.header));
    EXPECT_FALSE(VerifyFreshBooksSignature("", fields, v.header));
  }
}

TEST(WebhookSignatureTest, RejectsTamperedField) {
  const Vector& v = kVectors[0];
  FormFields fields = MustParse(v.body);
  fields[1].second = "1234568";
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, v.header));
  fields = MustParse(v.body);
  fields[0].first = "Name";
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, v.header));
  fields = MustParse(v.body);
  fields.pop_back();
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, v.header));
  fields = MustParse(v.body);
  fields.emplace_back("extra", "");
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, v.header));
}

TEST(WebhookSignatureTest, RejectsReorderedFields) {
  // The signature covers field order; a body with the same fields in another order
  // is a different message.
  const Vector& v = kVectors[0];
  FormFields fields = MustParse(v.body);
  std::swap(fields[1], fields[2]);
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, v.header));
  EXPECT_FALSE(VerifyFreshBooksSignature(
      v.verifier,
      MustParse("object_id=1234567&name=invoice.create&account_id=6BApk&business_id=6543&"
                "identity_id=1234&user_id=1"),
      v.header));
}

TEST(WebhookSignatureTest, RejectsEmptyAndGarbageHeader) {
  const Vector& v = kVectors[0];
  const FormFields fields = MustParse(v.body);
  for (std::string_view header :
       {std::string_view(""), std::string_view("   "), std::string_view("garbage"),
        std::string_view("/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc"),    // padding dropped
        std::string_view("/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc=="),  // extra padding
        std::string_view("/s03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc="),   // case changed
        std::string_view("_S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc="),   // base64url
        std::string_view("/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc= x"),
        std::string_view("sha256=/S03vyYmI7CekM4YXBHUhs9o5rnMtqGLrW3aA8S9gPc="),
        std::string_view("fd2d37bf262623b09e90ce185c1507"
                         "86cf68e6b9ccb6a18bad6dda03c4bd80f7")}) {  // hex, not base64
    EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, header)) << header;
  }
}

TEST(WebhookSignatureTest, AcceptsSurroundingWhitespace) {
  const Vector& v = kVectors[0];
  const FormFields fields = MustParse(v.body);
  const std::string h(v.header);
  for (const std::string& header :
       {" " + h, h + " ", "\t" + h + "\r\n", "  " + h + "\t ", h + "\n"}) {
    EXPECT_TRUE(VerifyFreshBooksSignature(v.verifier, fields, header)) << header;
  }
  // Whitespace inside is not whitespace around.
  EXPECT_FALSE(VerifyFreshBooksSignature(v.verifier, fields, h.substr(0, 10) + " " + h.substr(10)));
}

TEST(WebhookSignatureTest, EmptyBodyAndTrailingAmpersand) {
  EXPECT_THAT(MustParse(""), ElementsAre());
  EXPECT_THAT(MustParse("a=1&"), ElementsAre(Pair("a", "1")));
  EXPECT_THAT(MustParse("a=&b="), ElementsAre(Pair("a", ""), Pair("b", "")));
  EXPECT_THAT(MustParse("a=b=c"), ElementsAre(Pair("a", "b=c")));
  EXPECT_EQ(FreshBooksSignedMessage({}), "{}");
}

TEST(WebhookSignatureTest, DecodesPlusAndEitherHexCase) {
  EXPECT_THAT(MustParse("k%2b%2B=a+b%20c%e2%82%ac%E2%82%AC"),
              ElementsAre(Pair("k++", "a b c\xe2\x82\xac\xe2\x82\xac")));
}

TEST(WebhookSignatureTest, ControlCharactersAndNulAreAllowedAndEscaped) {
  const FormFields fields = MustParse("k=%00%01%1F%7F%08%0C%0D/%22");
  ASSERT_THAT(fields, ElementsAre(Pair("k", std::string("\0\x01\x1f\x7f\b\f\r/\"", 9))));
  // CPython escapes DEL too: its ASCII-safe range is ' '..'~'.
  EXPECT_EQ(FreshBooksSignedMessage(fields), R"({"k": "\u0000\u0001\u001f\u007f\b\f\r/\""})");
}

TEST(WebhookSignatureTest, SignedMessageEscapesNonAscii) {
  const FormFields fields = {
      {"\xc3\xa9", "\xe4\xb8\xad\xe2\x80\xa8\xef\xbf\xbf"},  // é : 中 U+2028 U+FFFF
      {"astral", "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"},        // U+10000 U+10FFFF
      {"edges", "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80"},
  };
  EXPECT_EQ(FreshBooksSignedMessage(fields),
            R"({"\u00e9": "\u4e2d\u2028\uffff", "astral": "\ud800\udc00\udbff\udfff", )"
            R"("edges": "\u0080\u07ff\u0800\ud7ff\ue000"})");
}

TEST(WebhookSignatureTest, RejectsDuplicateKey) {
  ExpectParseError("name=a&object_id=1&name=b", R"(field "name" repeated)");
  // Same key after decoding.
  ExpectParseError("a+b=1&a%20b=2", R"(field "a b" repeated)");
  ExpectParseError("k=1&k=1", R"(field "k" repeated)");
}

TEST(WebhookSignatureTest, RejectsDuplicateKeyBeyondLinearScan) {
  FormLimits limits;
  limits.max_fields = 100;
  std::string body;
  for (int i = 0; i < 40; ++i) absl::StrAppend(&body, "f", i, "=", i, "&");
  EXPECT_EQ(ParseWebhookForm(body, limits).value().size(), 40u);
  ExpectParseError(body + "f3=x", R"(field "f3" repeated)", limits);
  ExpectParseError(body + "f39=x", R"(field "f39" repeated)", limits);
  ExpectParseError(body + "g=1&g=2", R"(field "g" repeated)", limits);
}

TEST(WebhookSignatureTest, RejectsInvalidUtf8) {
  struct Case {
    std::string_view body;
    std::string_view cause;
  };
  const Case cases[] = {
      {"name=x&memo=%C0%AF", R"(field "memo": invalid UTF-8 in value at byte 0)"},  // overlong /
      {"memo=a%E0%80%AF", R"(field "memo": invalid UTF-8 in value at byte 1)"},     // overlong
      {"memo=%F0%80%80%AF", "invalid UTF-8"},                                       // overlong
      {"memo=%C1%BF", "invalid UTF-8"},                                             // overlong
      {"memo=%ED%A0%80", R"(field "memo": invalid UTF-8)"},  // surrogate U+D800
      {"memo=%ED%BF%BF", "invalid UTF-8"},                   // surrogate U+DFFF
      {"memo=%E2%82", "invalid UTF-8"},                      // truncated
      {"memo=%E2%82x", "invalid UTF-8"},                     // truncated mid-string
      {"memo=%F0%9F%98", "invalid UTF-8"},                   // truncated 4-byte
      {"memo=%80", "invalid UTF-8"},                         // stray continuation
      {"memo=a%BFb", "invalid UTF-8"},                       // stray continuation
      {"memo=%F4%90%80%80", "invalid UTF-8"},                // U+110000
      {"memo=%F5%80%80%80", "invalid UTF-8"},                // lead byte F5
      {"memo=%FF", "invalid UTF-8"},
      {"a=1&b=2&%C0%AF=x", "field 3: invalid UTF-8 in key"},
      {"%ED%A0%80=x", "field 1: invalid UTF-8 in key"},
  };
  for (const Case& c : cases) ExpectParseError(c.body, c.cause);
}

TEST(WebhookSignatureTest, RejectsBadPercentEscapes) {
  ExpectParseError("a=%", "invalid percent-escape at byte 2");
  ExpectParseError("a=%4", "invalid percent-escape at byte 2");
  ExpectParseError("a=%GZ", "invalid percent-escape at byte 2");
  ExpectParseError("a=%4G", "invalid percent-escape at byte 2");
  ExpectParseError("a=1&bb=x%", "invalid percent-escape at byte 8");
  ExpectParseError("a=%4&b=2", "invalid percent-escape at byte 2");  // '&' is not a hex digit
  ExpectParseError("k%=1", "invalid percent-escape at byte 1");
  ExpectParseError("%%41=1", "invalid percent-escape at byte 0");
}

TEST(WebhookSignatureTest, RejectsMalformedFields) {
  ExpectParseError("name", "field 1: missing '='");
  ExpectParseError("a=1&name", "field 2: missing '='");
  ExpectParseError("a=1&&b=2", "field 2 is empty");
  ExpectParseError("&a=1", "field 1 is empty");
  ExpectParseError("&", "field 1 is empty");
  ExpectParseError("a=1&&", "field 2 is empty");
  ExpectParseError("=1", "field 1: empty key");
  ExpectParseError("a=1&=", "field 2: empty key");
}

TEST(WebhookSignatureTest, EnforcesLimits) {
  std::string body;
  for (int i = 0; i < 32; ++i) absl::StrAppend(&body, i == 0 ? "" : "&", "f", i, "=v");
  EXPECT_EQ(MustParse(body).size(), 32u);
  EXPECT_EQ(MustParse(body + "&").size(), 32u);
  ExpectParseError(body + "&f32=v", "more than 32 fields");

  const std::string key64(64, 'k');
  const std::string value1024(1024, 'v');
  EXPECT_THAT(MustParse(key64 + "=" + value1024), ElementsAre(Pair(key64, value1024)));
  ExpectParseError("a=1&" + key64 + "k=1", "field 2: key longer than 64 bytes");
  ExpectParseError("memo=" + value1024 + "v", R"(field "memo": value longer than 1024 bytes)");
  // Limits count decoded bytes: 1024 escapes decode to 1024 bytes.
  std::string escaped;
  for (int i = 0; i < 1024; ++i) escaped += "%41";
  EXPECT_EQ(MustParse("memo=" + escaped)[0].second, std::string(1024, 'A'));
  ExpectParseError("memo=" + escaped + "+", "value longer than 1024 bytes");

  FormLimits small;
  small.max_fields = 2;
  small.max_key_bytes = 3;
  small.max_value_bytes = 4;
  EXPECT_TRUE(ParseWebhookForm("abc=1234&d=", small).ok());
  ExpectParseError("a=1&b=2&c=3", "more than 2 fields", small);
  ExpectParseError("abcd=1", "field 1: key longer than 3 bytes", small);
  ExpectParseError("a=12345", R"(field "a": value longer than 4 bytes)", small);
}

TEST(WebhookSignatureTest, ErrorMessagesKeepNamesSane) {
  // A hostile key: control bytes, quotes and 200 bytes. The message shows at most 64
  // printable bytes of it.
  FormLimits limits;
  limits.max_key_bytes = 1000;
  const std::string key = "%0A%1B[31m%22" + std::string(200, 'x');
  const auto fields = ParseWebhookForm(key + "=1&" + key + "=2", limits);
  ASSERT_FALSE(fields.ok());
  const std::string message(fields.status().message());
  EXPECT_THAT(message, HasSubstr(R"(field "??[31m?xxx)"));
  EXPECT_THAT(message, HasSubstr(R"(xxx"... repeated)"));
  EXPECT_LT(message.size(), 100u);
  for (const char c : message) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << message;
}

TEST(WebhookSignatureTest, EncodeUsesPlusAndUppercaseHex) {
  EXPECT_EQ(EncodeWebhookForm({{"name", "invoice.create"}, {"note", "a b/c+d%e~_-.\xc3\xa9&="}}),
            "name=invoice.create&note=a+b%2Fc%2Bd%25e~_-.%C3%A9%26%3D");
  EXPECT_EQ(EncodeWebhookForm({}), "");
  EXPECT_EQ(EncodeWebhookForm({{"k", ""}}), "k=");
}

TEST(WebhookSignatureTest, EncodeParseRoundTrip) {
  const FormFields fields = {
      {"name", "invoice.create"},
      {"object_id", "1234567"},
      {"memo", std::string("a b+c%d&e=f\"g\\h/\0\x01\x7f\t\n", 21)},
      {"k e&y=", "\xc3\xa9\xe4\xb8\xad\xe2\x80\xa8\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"},
      {"empty", ""},
  };
  const std::string body = EncodeWebhookForm(fields);
  auto parsed = ParseWebhookForm(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, fields);
  for (const Vector& v : kVectors) {
    const FormFields original = MustParse(v.body);
    EXPECT_EQ(MustParse(EncodeWebhookForm(original)), original);
    // Re-encoding does not change what is signed.
    EXPECT_TRUE(
        VerifyFreshBooksSignature(v.verifier, MustParse(EncodeWebhookForm(original)), v.header));
  }
}

}  // namespace
}  // namespace mlc
