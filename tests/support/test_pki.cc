#include "tests/support/test_pki.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <memory>
#include <stdexcept>

#include "common/openssl_ptr.h"
#include "tests/support/test_util.h"

namespace mlc::testing {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::string detail;
  for (uint64_t e = ERR_get_error(); e != 0; e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    detail += std::string("; ") + buf;
  }
  throw std::runtime_error("test PKI: " + what + detail);
}

void Check(int ok, const std::string& what) {
  if (ok != 1) Fail(what);
}

PkeyPtr NewKey() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (key == nullptr) Fail("EC key generation");
  return key;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) Fail(std::string("extension ") + value);
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  Check(added, "X509_add_ext");
}

struct Issued {
  X509Ptr cert;
  PkeyPtr key;
};

enum class Role { kCa, kServer, kClient };

// A certificate for `cn` signed by `issuer` (self-signed when null).
Issued Issue(const std::string& cn, Role role, const Issued* issuer) {
  Issued out{X509Ptr(X509_new()), NewKey()};
  X509* x = out.cert.get();
  if (x == nullptr) Fail("X509_new");
  Check(X509_set_version(x, 2), "X509_set_version");
  // Random serials, as a real CA makes them: no two certificates of one issuer share one.
  std::unique_ptr<BIGNUM, decltype(&BN_free)> serial(BN_new(), &BN_free);
  if (serial == nullptr || BN_rand(serial.get(), 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(x)) == nullptr) {
    Fail("serial");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(x), 24L * 3600) == nullptr) {
    Fail("validity");
  }
  Check(X509_set_pubkey(x, out.key.get()), "X509_set_pubkey");
  X509_NAME* name = X509_get_subject_name(x);
  Check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("ml-connector tests"), -1,
                                   -1, 0),
        "subject O");
  Check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0),
        "subject CN");
  X509* issuer_cert = issuer != nullptr ? issuer->cert.get() : x;
  EVP_PKEY* issuer_key = issuer != nullptr ? issuer->key.get() : out.key.get();
  Check(X509_set_issuer_name(x, X509_get_subject_name(issuer_cert)), "issuer name");
  AddExtension(x, issuer_cert, NID_subject_key_identifier, "hash");
  AddExtension(x, issuer_cert, NID_authority_key_identifier, "keyid:always");
  switch (role) {
    case Role::kCa:
      AddExtension(x, issuer_cert, NID_basic_constraints, "critical,CA:TRUE");
      AddExtension(x, issuer_cert, NID_key_usage, "critical,keyCertSign,cRLSign");
      break;
    case Role::kServer:
      AddExtension(x, issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
      AddExtension(x, issuer_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
      AddExtension(x, issuer_cert, NID_ext_key_usage, "serverAuth");
      AddExtension(x, issuer_cert, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
      break;
    case Role::kClient:
      AddExtension(x, issuer_cert, NID_basic_constraints, "critical,CA:FALSE");
      AddExtension(x, issuer_cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
      AddExtension(x, issuer_cert, NID_ext_key_usage, "clientAuth");
      break;
  }
  if (X509_sign(x, issuer_key, EVP_sha256()) <= 0) Fail("X509_sign");
  return out;
}

std::string Drain(BIO* bio) {
  char* data = nullptr;
  const int64_t n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

void WriteCert(const std::string& path, const X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) Fail("BIO_new");
  Check(PEM_write_bio_X509(bio.get(), cert), "PEM_write_bio_X509");
  WriteFile(path, Drain(bio.get()));
}

void WriteKey(const std::string& path, const EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr) Fail("BIO_new");
  Check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr),
        "PEM_write_bio_PrivateKey");
  WriteFile(path, Drain(bio.get()));
}

}  // namespace

TestPki MakeTestPki(const std::string& dir) {
  TestPki pki;
  auto path = [&dir](const char* name) { return dir + "/" + name; };

  const Issued ca = Issue("mlc test CA", Role::kCa, nullptr);
  const Issued server = Issue("localhost", Role::kServer, &ca);
  const Issued client = Issue("mlc-test-client", Role::kClient, &ca);
  const Issued other_ca = Issue("unrelated test CA", Role::kCa, nullptr);
  const Issued other_server = Issue("localhost", Role::kServer, &other_ca);
  const Issued other_client = Issue("mlc-test-client", Role::kClient, &other_ca);

  pki.ca_cert = path("ca.pem");
  pki.server_cert = path("server.pem");
  pki.server_key = path("server-key.pem");
  pki.client_cert = path("client.pem");
  pki.client_key = path("client-key.pem");
  pki.other_ca_cert = path("other-ca.pem");
  pki.other_server_cert = path("other-server.pem");
  pki.other_server_key = path("other-server-key.pem");
  pki.other_client_cert = path("other-client.pem");
  pki.other_client_key = path("other-client-key.pem");

  WriteCert(pki.ca_cert, ca.cert.get());
  WriteCert(pki.server_cert, server.cert.get());
  WriteKey(pki.server_key, server.key.get());
  WriteCert(pki.client_cert, client.cert.get());
  WriteKey(pki.client_key, client.key.get());
  WriteCert(pki.other_ca_cert, other_ca.cert.get());
  WriteCert(pki.other_server_cert, other_server.cert.get());
  WriteKey(pki.other_server_key, other_server.key.get());
  WriteCert(pki.other_client_cert, other_client.cert.get());
  WriteKey(pki.other_client_key, other_client.key.get());
  return pki;
}

}  // namespace mlc::testing
