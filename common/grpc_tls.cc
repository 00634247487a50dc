#include "common/grpc_tls.h"

#include <fcntl.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/openssl_ptr.h"
#include "common/status_macros.h"

namespace mlc {
namespace {

// Certificates and keys are a few KiB; a bigger file is the wrong file.
constexpr size_t kMaxPemBytes = 1 << 20;

std::string Where(const std::string& setting, const std::string& path) {
  return absl::StrCat(setting, " \"", path, "\"");
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& setting, const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(setting, ": is empty"));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(Where(setting, path), ": cannot read: ", std::strerror(errno)));
  }
  std::string out;
  char buf[8192];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::FailedPreconditionError(
          absl::StrCat(Where(setting, path), ": cannot read: ", std::strerror(err)));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxPemBytes) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
          Where(setting, path), ": is larger than 1 MiB; expected a PEM certificate or key"));
    }
  }
  ::close(fd);
  return out;
}

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Never asks for a passphrase: an encrypted key fails to load.
int NoPassphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*u*/) { return -1; }

// The first certificate of `pem`, and how many there are.
X509Ptr FirstCertificate(const std::string& pem, int* count) {
  *count = 0;
  BioPtr bio = MemBio(pem);
  X509Ptr first;
  while (bio != nullptr) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) break;
    ++*count;
    if (first == nullptr) first = std::move(cert);
  }
  ERR_clear_error();  // the read that ended the loop left an error behind
  return first;
}

PkeyPtr PrivateKey(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  if (bio == nullptr) return nullptr;
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr));
  ERR_clear_error();
  return key;
}

absl::Status CheckPem(const std::string& setting, const std::string& path, const std::string& pem,
                      PemKind kind) {
  if (kind == PemKind::kCertificates) {
    int count = 0;
    if (FirstCertificate(pem, &count) == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          Where(setting, path), ": holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"));
    }
    return absl::OkStatus();
  }
  if (PrivateKey(pem) != nullptr) return absl::OkStatus();
  if (absl::StrContains(pem, "ENCRYPTED")) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(setting, path),
                     ": is an encrypted private key; give an unencrypted PEM key (gRPC cannot "
                     "ask for a passphrase)"));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      Where(setting, path), ": holds no PEM private key (\"-----BEGIN PRIVATE KEY-----\")"));
}

// Both PEMs were checked by ReadPemFile.
absl::Status CheckKeyMatches(const std::string& cert_setting, const std::string& cert_path,
                             const std::string& cert_pem, const std::string& key_setting,
                             const std::string& key_path, const std::string& key_pem) {
  int count = 0;
  X509Ptr cert = FirstCertificate(cert_pem, &count);
  PkeyPtr key = PrivateKey(key_pem);
  if (cert == nullptr || key == nullptr) {
    return absl::InternalError("certificate or key vanished between checks");
  }
  const bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  if (!match) {
    return absl::InvalidArgumentError(absl::StrCat(
        Where(key_setting, key_path), ": is not the private key of the certificate in ",
        Where(cert_setting, cert_path), " (the first certificate of the file must be ",
        "the one the key belongs to)"));
  }
  return absl::OkStatus();
}

struct KeyCertPair {
  std::string cert_pem;
  std::string key_pem;
};

absl::StatusOr<KeyCertPair> ReadKeyCertPair(const std::string& cert_setting,
                                            const std::string& cert_path,
                                            const std::string& key_setting,
                                            const std::string& key_path) {
  KeyCertPair p;
  MLC_ASSIGN_OR_RETURN(p.cert_pem, ReadPemFile(cert_setting, cert_path, PemKind::kCertificates));
  MLC_ASSIGN_OR_RETURN(p.key_pem, ReadPemFile(key_setting, key_path, PemKind::kPrivateKey));
  MLC_RETURN_IF_ERROR(
      CheckKeyMatches(cert_setting, cert_path, p.cert_pem, key_setting, key_path, p.key_pem));
  return p;
}

}  // namespace

absl::StatusOr<std::string> ReadPemFile(const std::string& setting, const std::string& path,
                                        PemKind kind) {
  MLC_ASSIGN_OR_RETURN(std::string pem, ReadWholeFile(setting, path));
  MLC_RETURN_IF_ERROR(CheckPem(setting, path, pem, kind));
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsServerConfig& config, const std::string& key_prefix) {
  if (!config.enabled()) return grpc::InsecureServerCredentials();
  const std::string cert_setting = key_prefix + ".cert_file";
  const std::string key_setting = key_prefix + ".key_file";
  if (config.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(key_setting, ": is empty; TLS needs the private key of ", cert_setting));
  }
  // Checked here so that a bad file stops the service with a clear message; gRPC
  // then reads the same files itself, and again every reload_seconds.
  MLC_RETURN_IF_ERROR(
      ReadKeyCertPair(cert_setting, config.cert_file, key_setting, config.key_file).status());
  const bool mutual = !config.client_ca_file.empty();
  if (mutual) {
    MLC_RETURN_IF_ERROR(
        ReadPemFile(key_prefix + ".client_ca_file", config.client_ca_file, PemKind::kCertificates)
            .status());
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      config.key_file, config.cert_file, mutual ? config.client_ca_file : "",
      static_cast<unsigned int>(config.reload_seconds));
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (mutual) {
    options.watch_root_certs();
    options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(options);
}

std::string DescribeServerTls(const TlsServerConfig& config) {
  if (!config.enabled()) return "plaintext";
  return config.client_ca_file.empty() ? "tls" : "mutual tls";
}

TlsClientSettings TlsClientSettings::ConfigKeys(const std::string& prefix) {
  return {prefix + ".ca_file", prefix + ".cert_file", prefix + ".key_file"};
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsClientConfig& config, const TlsClientSettings& settings,
    grpc::ChannelArguments* args) {
  if (!config.enabled()) return grpc::InsecureChannelCredentials();
  // Checked here for a clear message at startup; gRPC then reads the same files
  // itself, and again every reload_seconds.
  MLC_RETURN_IF_ERROR(
      ReadPemFile(settings.ca_file, config.ca_file, PemKind::kCertificates).status());
  const bool client_cert = !config.cert_file.empty() || !config.key_file.empty();
  if (client_cert) {
    if (config.cert_file.empty() || config.key_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("a client certificate needs both ",
                                                     settings.cert_file, " and ", settings.key_file,
                                                     " (or neither)"));
    }
    MLC_RETURN_IF_ERROR(
        ReadKeyCertPair(settings.cert_file, config.cert_file, settings.key_file, config.key_file)
            .status());
  }
  if (!config.server_name.empty()) {
    if (args == nullptr) {
      return absl::InternalError("ChannelCredentials: a server_name needs channel arguments");
    }
    args->SetSslTargetNameOverride(config.server_name);
  }
  auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      client_cert ? config.key_file : "", client_cert ? config.cert_file : "", config.ca_file,
      static_cast<unsigned int>(config.reload_seconds));
  grpc::experimental::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(provider);
  options.watch_root_certs();
  if (client_cert) options.watch_identity_key_cert_pairs();
  return grpc::experimental::TlsCredentials(options);
}

std::string DescribeClientTls(const TlsClientConfig& config) {
  if (!config.enabled()) return "plaintext";
  return config.cert_file.empty() ? "tls" : "tls with client certificate";
}

absl::StatusOr<absl::Time> CertificateNotAfter(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  X509Ptr cert(bio == nullptr ? nullptr : PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (cert == nullptr) return absl::InvalidArgumentError("no PEM certificate");
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &tm) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the certificate's notAfter cannot be read");
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(timegm(&tm)));
}

namespace {

// The notAfter of the certificate in `cert_pem`; the PEM was checked already.
TlsFileMonitor::Found Presenting(const std::string& cert_pem) {
  absl::StatusOr<absl::Time> not_after = CertificateNotAfter(cert_pem);
  if (!not_after.ok()) return {not_after.status(), std::nullopt};
  return {absl::OkStatus(), *not_after};
}

}  // namespace

std::unique_ptr<TlsFileMonitor> TlsFileMonitor::ForServer(const TlsServerConfig& config,
                                                          const std::string& key_prefix,
                                                          Registry* registry) {
  if (!config.enabled()) return nullptr;
  return std::make_unique<TlsFileMonitor>(
      [config, key_prefix]() -> Found {
        absl::StatusOr<KeyCertPair> pair = ReadKeyCertPair(
            key_prefix + ".cert_file", config.cert_file, key_prefix + ".key_file", config.key_file);
        if (!pair.ok()) return {pair.status(), std::nullopt};
        if (!config.client_ca_file.empty()) {
          absl::Status ca = ReadPemFile(key_prefix + ".client_ca_file", config.client_ca_file,
                                        PemKind::kCertificates)
                                .status();
          if (!ca.ok()) return {ca, std::nullopt};
        }
        return Presenting(pair->cert_pem);
      },
      config.reload_seconds, registry);
}

std::unique_ptr<TlsFileMonitor> TlsFileMonitor::ForClient(const TlsClientConfig& config,
                                                          const TlsClientSettings& settings,
                                                          Registry* registry) {
  if (!config.enabled()) return nullptr;
  return std::make_unique<TlsFileMonitor>(
      [config, settings]() -> Found {
        absl::Status ca =
            ReadPemFile(settings.ca_file, config.ca_file, PemKind::kCertificates).status();
        if (!ca.ok()) return {ca, std::nullopt};
        if (config.cert_file.empty()) return {absl::OkStatus(), std::nullopt};
        absl::StatusOr<KeyCertPair> pair = ReadKeyCertPair(settings.cert_file, config.cert_file,
                                                           settings.key_file, config.key_file);
        if (!pair.ok()) return {pair.status(), std::nullopt};
        return Presenting(pair->cert_pem);
      },
      config.reload_seconds, registry);
}

TlsFileMonitor::TlsFileMonitor(std::function<Found()> check, int64_t every_seconds,
                               Registry* registry)
    : check_(std::move(check)),
      every_(absl::Seconds(every_seconds)),
      usable_(registry
                  ->AddGauge("mlc_tls_files_usable",
                             "1 when the gRPC TLS files (certificate, key, CA) can be used")
                  ->With({})),
      expiry_(registry
                  ->AddGauge("mlc_tls_certificate_expiry_timestamp_seconds",
                             "When the certificate this service presents over gRPC expires "
                             "(Unix time; 0 when it presents none)")
                  ->With({})) {
  // The files were checked when the credentials were made; this sets the gauges.
  CheckOnce(/*was_usable=*/true);
  thread_ = std::thread([this] { Run(); });
}

TlsFileMonitor::~TlsFileMonitor() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  thread_.join();
}

bool TlsFileMonitor::CheckOnce(bool was_usable) {
  const Found found = check_();
  const bool usable = found.status.ok();
  usable_->Set(usable ? 1 : 0);
  if (found.not_after.has_value()) {
    expiry_->Set(static_cast<double>(absl::ToUnixSeconds(*found.not_after)));
  }
  if (!usable && was_usable) {
    log::Error("cannot use the TLS files: new TLS connections fail until they are fixed",
               {{"error", std::string(found.status.message())}});
  } else if (usable && !was_usable) {
    log::Info("TLS files usable again");
  }
  return usable;
}

void TlsFileMonitor::Run() {
  bool usable = usable_->Value() == 1;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopping), every_)) return;
    }
    usable = CheckOnce(usable);
  }
}

ConnectFailure ClassifyConnectFailure(const std::string& grpc_message) {
  if (absl::StrContains(grpc_message, "wrong version number")) return ConnectFailure::kNotTls;
  if (absl::StrContains(grpc_message, "certificate verify failed")) {
    return ConnectFailure::kUntrustedServer;
  }
  // The first is SslCredentials' wording, the second TlsCredentials' (what
  // ChannelCredentials makes).
  if (absl::StrContains(grpc_message, "is not in peer certificate") ||
      absl::StrContains(grpc_message, "Hostname Verification Check failed")) {
    return ConnectFailure::kServerNameMismatch;
  }
  if (absl::StrContains(grpc_message, "Socket closed") ||
      absl::StrContains(grpc_message, "Connection reset") ||
      absl::StrContains(grpc_message, "Broken pipe")) {
    return ConnectFailure::kHungUp;
  }
  return ConnectFailure::kOther;
}

}  // namespace mlc
