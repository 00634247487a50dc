#include "common/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/openssl_ptr.h"

namespace mlc {
namespace {

constexpr size_t kGcmKeyBytes = 32;
constexpr size_t kGcmNonceBytes = 12;
constexpr size_t kGcmTagBytes = 16;
// The same, as EVP_CIPHER_CTX_ctrl wants them.
constexpr int kGcmNonceInt = static_cast<int>(kGcmNonceBytes);
constexpr int kGcmTagInt = static_cast<int>(kGcmTagBytes);

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* Bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// EVP takes int lengths; anything near INT_MAX is a bug, not a secret.
absl::Status CheckGcmArgs(std::string_view key, std::string_view data, std::string_view aad) {
  if (key.size() != kGcmKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-256-GCM: key must be ", kGcmKeyBytes, " bytes, got ", key.size()));
  }
  constexpr size_t kMaxLen = INT_MAX - kGcmNonceBytes - kGcmTagBytes;
  if (data.size() > kMaxLen || aad.size() > kMaxLen) {
    return absl::InvalidArgumentError("AES-256-GCM: input too large");
  }
  return absl::OkStatus();
}

}  // namespace

std::string HmacSha256(std::string_view key, std::string_view message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out, &out_len);
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

std::string Sha256(std::string_view data) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  return std::string(reinterpret_cast<const char*>(out), sizeof(out));
}

std::string Base64Encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return absl::InvalidArgumentError("base64: length is not a multiple of 4");
  }
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    const bool pad_ok =
        c == '=' && i >= text.size() - 2 && (i == text.size() - 1 || text[text.size() - 1] == '=');
    if (!alnum && c != '+' && c != '/' && !pad_ok) {
      return absl::InvalidArgumentError("base64: invalid character");
    }
  }
  std::string out(3 * (text.size() / 4), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return absl::InvalidArgumentError("base64: invalid input");
  size_t len = static_cast<size_t>(n);
  // EVP_DecodeBlock counts padding as zero bytes; drop them.
  if (!text.empty() && text[text.size() - 1] == '=') --len;
  if (text.size() >= 2 && text[text.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string HexEncode(std::string_view data) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (unsigned char c : data) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "fatal: RAND_bytes failed\n");
    std::abort();
  }
  return out;
}

std::string RandomToken(size_t bytes) { return HexEncode(RandomBytes(bytes)); }

absl::StatusOr<std::string> Aes256GcmSeal(std::string_view key, std::string_view plaintext,
                                          std::string_view aad) {
  if (absl::Status s = CheckGcmArgs(key, plaintext, aad); !s.ok()) return s;
  const std::string nonce = RandomBytes(kGcmNonceBytes);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return absl::ResourceExhaustedError("AES-256-GCM: out of memory");
  std::string out = nonce;
  out.resize(kGcmNonceBytes + plaintext.size() + kGcmTagBytes);
  unsigned char* const body = Bytes(out) + kGcmNonceBytes;
  int len = 0;
  int final_len = 0;
  const bool ok =
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kGcmNonceInt, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key), Bytes(nonce)) == 1 &&
      (aad.empty() || EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(aad),
                                        static_cast<int>(aad.size())) == 1) &&
      EVP_EncryptUpdate(ctx.get(), body, &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), body + len, &final_len) == 1 &&
      static_cast<size_t>(len) + static_cast<size_t>(final_len) == plaintext.size() &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kGcmTagInt, body + plaintext.size()) ==
          1;
  if (!ok) return absl::InternalError("AES-256-GCM: encryption failed");
  return out;
}

absl::StatusOr<std::string> Aes256GcmOpen(std::string_view key, std::string_view sealed,
                                          std::string_view aad) {
  if (absl::Status s = CheckGcmArgs(key, sealed, aad); !s.ok()) return s;
  if (sealed.size() < kGcmNonceBytes + kGcmTagBytes) {
    return absl::DataLossError("authentication failed (sealed value too short)");
  }
  const std::string_view nonce = sealed.substr(0, kGcmNonceBytes);
  const std::string_view ciphertext =
      sealed.substr(kGcmNonceBytes, sealed.size() - kGcmNonceBytes - kGcmTagBytes);
  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer.
  std::string tag(sealed.substr(sealed.size() - kGcmTagBytes));
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return absl::ResourceExhaustedError("AES-256-GCM: out of memory");
  // One spare byte so the output pointer is valid even for an empty plaintext.
  std::string out(ciphertext.size() + 1, '\0');
  int len = 0;
  int final_len = 0;
  const bool setup_ok =
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kGcmNonceInt, nullptr) == 1 &&
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key), Bytes(nonce)) == 1 &&
      (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(aad),
                                        static_cast<int>(aad.size())) == 1) &&
      EVP_DecryptUpdate(ctx.get(), Bytes(out), &len, Bytes(ciphertext),
                        static_cast<int>(ciphertext.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kGcmTagInt, tag.data()) == 1;
  if (!setup_ok) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::InternalError("AES-256-GCM: decryption failed");
  }
  // The tag is checked here; until it passes, `out` is unauthenticated and discarded.
  if (EVP_DecryptFinal_ex(ctx.get(), Bytes(out) + len, &final_len) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return absl::DataLossError("authentication failed");
  }
  out.resize(static_cast<size_t>(len) + static_cast<size_t>(final_len));
  return out;
}

}  // namespace mlc
