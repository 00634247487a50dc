#include "common/crypto.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

namespace mlc {
namespace {

TEST(CryptoTest, HmacSha256Rfc4231TestCase1) {
  const std::string key(20, '\x0b');
  EXPECT_EQ(HexEncode(HmacSha256(key, "Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(CryptoTest, HmacSha256Rfc4231TestCase2) {
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, HmacSha256WithEmptyKeyAndMessage) {
  EXPECT_EQ(HexEncode(HmacSha256("", "")),
            "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(CryptoTest, HmacSha256KeyLongerThanBlock) {
  // RFC 4231 test case 6: a 131-byte key is hashed first.
  const std::string key(131, '\xaa');
  EXPECT_EQ(HexEncode(HmacSha256(key, "Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST(CryptoTest, Sha256) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256("abc").size(), 32u);
}

TEST(CryptoTest, Base64Rfc4648Vectors) {
  const std::pair<std::string, std::string> cases[] = {
      {"", ""},
      {"f", "Zg=="},
      {"fo", "Zm8="},
      {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="},
      {"fooba", "Zm9vYmE="},
      {"foobar", "Zm9vYmFy"},
  };
  for (const auto& [plain, encoded] : cases) {
    EXPECT_EQ(Base64Encode(plain), encoded);
    const absl::StatusOr<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << encoded << ": " << decoded.status();
    EXPECT_EQ(*decoded, plain);
  }
}

TEST(CryptoTest, Base64RoundTripsBinaryOfEveryShortLength) {
  for (size_t len = 0; len <= 5; ++len) {
    for (const char fill : {'\0', '\xff', '\x7f', '\x80'}) {
      const std::string data(len, fill);
      const absl::StatusOr<std::string> decoded = Base64Decode(Base64Encode(data));
      ASSERT_TRUE(decoded.ok()) << "len " << len << ": " << decoded.status();
      EXPECT_EQ(*decoded, data) << "len " << len;
    }
  }
  for (size_t len = 0; len <= 64; ++len) {
    const std::string data = RandomBytes(len);
    const std::string encoded = Base64Encode(data);
    EXPECT_EQ(encoded.size(), 4 * ((len + 2) / 3));
    const absl::StatusOr<std::string> decoded = Base64Decode(encoded);
    ASSERT_TRUE(decoded.ok()) << "len " << len << ": " << decoded.status();
    EXPECT_EQ(*decoded, data) << "len " << len;
  }
  std::string all_bytes;
  for (int c = 0; c < 256; ++c) all_bytes.push_back(static_cast<char>(c));
  EXPECT_EQ(Base64Decode(Base64Encode(all_bytes)).value(), all_bytes);
}

TEST(CryptoTest, Base64DecodeIsStrict) {
  const std::string bad_cases[] = {
      "Zg",                     // missing padding
      "Zg=",                    // length not a multiple of 4
      "Zm9vY",                  // length not a multiple of 4
      " Zm9v",                  // whitespace
      "Zm9v\n",                 // trailing newline
      "Zm9v\r\nZm9v",           // line break inside
      "Zm-v",                   // URL-safe alphabet
      "Zm_v",                   // URL-safe alphabet
      "Zm9\x80",                // non-ASCII
      std::string("Zm\0v", 4),  // NUL
      "====",                   // padding only
      "Z===",                   // too much padding
      "=Zm9",                   // padding first
      "Zg=a",                   // data after padding
      "Z=g=",                   // padding in the middle
      "Zg==Zm9v",               // padding before the last quantum
      "Zm9v====",               // a whole quantum of padding
  };
  for (const std::string& bad : bad_cases) {
    const absl::StatusOr<std::string> decoded = Base64Decode(bad);
    EXPECT_FALSE(decoded.ok()) << "accepted \"" << bad << "\"";
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(CryptoTest, HexEncode) {
  EXPECT_EQ(HexEncode(""), "");
  EXPECT_EQ(HexEncode(std::string("\x00\x01\x7f\x80\xab\xff", 6)), "00017f80abff");
  EXPECT_EQ(HexEncode("Jefe"), "4a656665");
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("secret", "secret"));
  EXPECT_TRUE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secreT"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "Secret"));
  EXPECT_FALSE(ConstantTimeEquals("secret", "secret "));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), "a"));
}

TEST(CryptoTest, RandomBytesHaveTheRequestedLengthAndDoNotRepeat) {
  EXPECT_EQ(RandomBytes(0), "");
  EXPECT_EQ(RandomBytes(1).size(), 1u);
  EXPECT_EQ(RandomBytes(1000).size(), 1000u);
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string bytes = RandomBytes(32);
    ASSERT_EQ(bytes.size(), 32u);
    EXPECT_TRUE(seen.insert(bytes).second) << "repeated random bytes";
  }
}

TEST(CryptoTest, RandomTokenIsLowercaseHex) {
  const std::string token = RandomToken();
  EXPECT_EQ(token.size(), 48u);
  EXPECT_EQ(token.find_first_not_of("0123456789abcdef"), std::string::npos) << token;
  EXPECT_NE(RandomToken(), RandomToken());
  EXPECT_EQ(RandomToken(4).size(), 8u);
}

// AES-256-GCM (DESIGN.md §5): what the credential store relies on.

std::string TestKey(char fill = 'k') { return std::string(32, fill); }

TEST(CryptoTest, AeadRoundTrips) {
  const std::string key = RandomBytes(32);
  for (const std::string& plain : {std::string("refresh-token-abc"), std::string(1, '\0'),
                                   std::string(1000, 'x'), RandomBytes(17)}) {
    const absl::StatusOr<std::string> sealed = Aes256GcmSeal(key, plain, "aad");
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    EXPECT_EQ(sealed->size(), 12 + plain.size() + 16);
    const absl::StatusOr<std::string> opened = Aes256GcmOpen(key, *sealed, "aad");
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plain);
  }
}

TEST(CryptoTest, AeadSealsEmptyPlaintextAndEmptyAad) {
  const absl::StatusOr<std::string> sealed = Aes256GcmSeal(TestKey(), "", "");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), 28u);
  const absl::StatusOr<std::string> opened = Aes256GcmOpen(TestKey(), *sealed, "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "");
  // Even an empty value is authenticated.
  EXPECT_EQ(Aes256GcmOpen(TestKey(), *sealed, "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST(CryptoTest, AeadKnownAnswer) {
  // Test Case 14 of the GCM specification (McGrew & Viega): all-zero key, nonce
  // and 16-byte plaintext. Checks the nonce || ciphertext || tag layout against
  // an outside reference, by opening a value assembled by hand.
  const std::string key(32, '\0');
  const std::string nonce(12, '\0');
  const std::string plain(16, '\0');
  const std::string ciphertext_hex = "cea7403d4d606b6e074ec5d3baf39d18";
  const std::string tag_hex = "d0d1c8a799996bf0265b98b5d48ab919";
  auto unhex = [](const std::string& hex) {
    std::string out;
    for (size_t i = 0; i < hex.size(); i += 2) {
      out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    }
    return out;
  };
  const std::string sealed = nonce + unhex(ciphertext_hex) + unhex(tag_hex);
  const absl::StatusOr<std::string> opened = Aes256GcmOpen(key, sealed, "");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, plain);
}

TEST(CryptoTest, AeadUsesAFreshNonceEverySeal) {
  std::set<std::string> nonces;
  std::set<std::string> sealed_values;
  for (int i = 0; i < 50; ++i) {
    const absl::StatusOr<std::string> sealed = Aes256GcmSeal(TestKey(), "same", "same");
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    EXPECT_TRUE(nonces.insert(sealed->substr(0, 12)).second) << "nonce reused";
    EXPECT_TRUE(sealed_values.insert(*sealed).second) << "identical ciphertext";
  }
}

TEST(CryptoTest, AeadCiphertextDoesNotContainThePlaintext) {
  const std::string plain = "a-very-recognizable-secret-value";
  const absl::StatusOr<std::string> sealed = Aes256GcmSeal(TestKey(), plain, "");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->find(plain), std::string::npos);
}

TEST(CryptoTest, AeadRejectsWrongKeyAndWrongAad) {
  const absl::StatusOr<std::string> sealed = Aes256GcmSeal(TestKey('a'), "secret", "name-1");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  const absl::StatusOr<std::string> wrong_key = Aes256GcmOpen(TestKey('b'), *sealed, "name-1");
  EXPECT_EQ(wrong_key.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(wrong_key.status().message(), "authentication failed");
  const absl::StatusOr<std::string> wrong_aad = Aes256GcmOpen(TestKey('a'), *sealed, "name-2");
  EXPECT_EQ(wrong_aad.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Aes256GcmOpen(TestKey('a'), *sealed, "").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(Aes256GcmOpen(TestKey('a'), *sealed, "name-1").ok());
}

TEST(CryptoTest, AeadRejectsAnyFlippedBit) {
  const absl::StatusOr<std::string> sealed = Aes256GcmSeal(TestKey(), "0123456789", "aad");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  ASSERT_EQ(sealed->size(), 12u + 10u + 16u);
  // Every byte: nonce (0..11), ciphertext (12..21) and tag (22..37).
  for (size_t i = 0; i < sealed->size(); ++i) {
    for (const char mask : {'\x01', '\x80'}) {
      std::string tampered = *sealed;
      tampered[i] = static_cast<char>(tampered[i] ^ mask);
      const absl::StatusOr<std::string> opened = Aes256GcmOpen(TestKey(), tampered, "aad");
      EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << "byte " << i;
    }
  }
}

TEST(CryptoTest, AeadRejectsTruncatedAndExtendedInput) {
  const absl::StatusOr<std::string> sealed = Aes256GcmSeal(TestKey(), "0123456789", "");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  for (size_t len = 0; len < sealed->size(); ++len) {
    EXPECT_EQ(Aes256GcmOpen(TestKey(), sealed->substr(0, len), "").status().code(),
              absl::StatusCode::kDataLoss)
        << "length " << len;
  }
  EXPECT_EQ(Aes256GcmOpen(TestKey(), *sealed + "x", "").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(CryptoTest, AeadRejectsKeysThatAreNot32Bytes) {
  for (const int len : {0, 16, 24, 31, 33, 64}) {
    const std::string key(static_cast<size_t>(len), 'k');
    const absl::StatusOr<std::string> sealed = Aes256GcmSeal(key, "x", "");
    EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument) << len;
    const absl::StatusOr<std::string> opened = Aes256GcmOpen(key, std::string(40, 'x'), "");
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument) << len;
  }
}

}  // namespace
}  // namespace mlc
