// A throwaway public key infrastructure for TLS tests, generated in-process with
// OpenSSL (EC P-256 keys, X.509 v3 certificates; no `openssl` command): a CA, a
// server certificate for "localhost" and 127.0.0.1 signed by it, a client
// certificate signed by it, and a second, unrelated CA with a server and a client
// certificate of its own (for "wrong CA" tests). Everything is written as PEM files
// into a directory the caller owns (certificates valid from an hour ago for a day).
//
// MakeTestPki throws std::runtime_error when OpenSSL fails. The returned value is
// plain data; the files stay until the caller removes the directory.
#pragma once

#include <string>

namespace mlc::testing {

struct TestPki {
  // Paths of PEM files.
  std::string ca_cert;      // the CA: signs everything below except other_*
  std::string server_cert;  // CN=localhost, SAN DNS:localhost, IP:127.0.0.1; serverAuth
  std::string server_key;
  std::string client_cert;  // CN=mlc-test-client; clientAuth
  std::string client_key;
  std::string other_ca_cert;      // an unrelated CA
  std::string other_server_cert;  // like server_cert, signed by other_ca
  std::string other_server_key;
  std::string other_client_cert;  // like client_cert, signed by other_ca
  std::string other_client_key;
};

// Generates the files into `dir` (which must exist) and returns their paths.
TestPki MakeTestPki(const std::string& dir);

}  // namespace mlc::testing
