// Cryptographic primitives over OpenSSL: HMAC-SHA256, SHA-256, base64, constant-time
// comparison and secure random bytes. Pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace mlc {

// Raw 32-byte HMAC-SHA256 of `message` under `key`.
std::string HmacSha256(std::string_view key, std::string_view message);
// Raw 32-byte SHA-256.
std::string Sha256(std::string_view data);

// Standard base64 with '=' padding, no line breaks.
std::string Base64Encode(std::string_view data);
// Strict standard base64 (padding required, no whitespace); InvalidArgument otherwise.
absl::StatusOr<std::string> Base64Decode(std::string_view text);
// Lowercase hex.
std::string HexEncode(std::string_view data);

// Compares without an early exit, so timing does not reveal where two secrets differ.
// Different lengths compare unequal (the length itself is not secret here).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// `n` bytes from the OS CSPRNG (OpenSSL RAND_bytes); aborts if it fails, since no
// caller can do anything safe without randomness.
std::string RandomBytes(size_t n);
// A URL-safe random token of `bytes` bytes of entropy (hex).
std::string RandomToken(size_t bytes = 24);

// AES-256-GCM authenticated encryption. `key` must be 32 bytes (InvalidArgument
// otherwise). Seal draws a fresh random 12-byte nonce per call and returns
// nonce(12) || ciphertext || tag(16), i.e. plaintext.size() + 28 bytes; `aad`
// (may be empty) is authenticated but not encrypted - bind the value to its
// context with it. Random nonces are safe for well under 2^32 seals per key.
absl::StatusOr<std::string> Aes256GcmSeal(std::string_view key, std::string_view plaintext,
                                          std::string_view aad);
// Reverses Seal. A wrong key, a different `aad`, or any modified byte is
// DataLoss("authentication failed") - never garbage plaintext. A `sealed` value
// shorter than 28 bytes is DataLoss too.
absl::StatusOr<std::string> Aes256GcmOpen(std::string_view key, std::string_view sealed,
                                          std::string_view aad);

}  // namespace mlc
