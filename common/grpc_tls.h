// TLS for the internal gRPC services (DESIGN.md §5: "both can run over TLS"): turns
// the config's TlsServerConfig (writer.tls) and TlsClientConfig (ingress.writer_tls,
// or mlc's --tls-* flags) into gRPC credentials.
//
// Contract: the PEM files are read once, when the credentials are made (at
// startup), and checked before gRPC sees them: a file that cannot be read, that
// holds no PEM certificate (or no unencrypted PEM private key), or a key that does
// not belong to its certificate is an InvalidArgument/FailedPrecondition naming the
// setting and the file, e.g. `writer.tls.cert_file "/x.pem": cannot read: No such
// file or directory`, so a service refuses to start with a clear message instead of
// failing every handshake later. Messages never contain key material. A config
// that is not enabled() gives plaintext (insecure) credentials. gRPC then re-reads
// the files every reload_seconds (its FileWatcherCertificateProvider), so a
// renewed certificate is used for new connections without a restart. A file
// that becomes invalid is not refused by gRPC: new handshakes fail until it is
// fixed (TlsFileMonitor logs it, naming the setting).
//
// Free functions without shared state; thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/config.h"
#include "common/metrics.h"

namespace mlc {

enum class PemKind {
  kCertificates,  // one or more "CERTIFICATE" blocks (a chain or a CA bundle)
  kPrivateKey,    // one unencrypted private key
};

// Reads `path` and checks that it holds PEM of `kind`. `setting` names where the
// path came from in errors ("writer.tls.cert_file", "--tls-ca").
absl::StatusOr<std::string> ReadPemFile(const std::string& setting, const std::string& path,
                                        PemKind kind);

// The writer's listener: insecure when !config.enabled(); TLS with cert_file and
// key_file; with client_ca_file, clients must present a certificate signed by that
// CA (GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY). `key_prefix`
// names the config block in errors.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(
    const TlsServerConfig& config, const std::string& key_prefix = "writer.tls");

// How a TlsServerConfig secures the listener, for the startup log: "plaintext",
// "tls" or "mutual tls".
std::string DescribeServerTls(const TlsServerConfig& config);

// Where each file of a TlsClientConfig came from, for error messages.
struct TlsClientSettings {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;

  // "<prefix>.ca_file", "<prefix>.cert_file", "<prefix>.key_file".
  static TlsClientSettings ConfigKeys(const std::string& prefix);
};

// A client channel: insecure when !config.enabled(); otherwise TLS trusting only
// ca_file, presenting cert_file/key_file when set (for a writer that requires
// mutual TLS). A server_name is set on `*args` as GRPC_SSL_TARGET_NAME_OVERRIDE_ARG
// (the name checked against the server's certificate instead of the target's
// host); `args` may be null only when server_name is empty.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsClientConfig& config, const TlsClientSettings& settings, grpc::ChannelArguments* args);
inline absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const TlsClientConfig& config, const std::string& key_prefix, grpc::ChannelArguments* args) {
  return ChannelCredentials(config, TlsClientSettings::ConfigKeys(key_prefix), args);
}

// How a TlsClientConfig secures a channel, for logs: "plaintext", "tls" or "tls with
// client certificate".
std::string DescribeClientTls(const TlsClientConfig& config);

// When the first certificate of a PEM chain expires (its notAfter).
absl::StatusOr<absl::Time> CertificateNotAfter(const std::string& pem);

// Watches the TLS files of a service the way gRPC re-reads them (every
// reload_seconds) and logs, naming the setting and the file, when they stop being
// usable ("cannot use the TLS files"; gRPC then fails new handshakes until they
// are fixed, while connections already made carry on) and when they are usable
// again. It keeps two gauges in `registry`: mlc_tls_files_usable (1 or 0) and
// mlc_tls_certificate_expiry_timestamp_seconds, when the certificate the
// service presents (the writer's, or ingress's client certificate) expires, so
// an expiry can be alerted on before it happens. Checks run on a thread of its
// own until the object is destroyed.
class TlsFileMonitor {
 public:
  // What one check found: an error naming the setting, or the notAfter of the
  // certificate presented (absent for a client without one).
  struct Found {
    absl::Status status;
    std::optional<absl::Time> not_after;
  };

  // Null when `config` is not enabled() (and then no gauges are registered).
  static std::unique_ptr<TlsFileMonitor> ForServer(const TlsServerConfig& config,
                                                   const std::string& key_prefix,
                                                   Registry* registry);
  static std::unique_ptr<TlsFileMonitor> ForClient(const TlsClientConfig& config,
                                                   const TlsClientSettings& settings,
                                                   Registry* registry);

  TlsFileMonitor(std::function<Found()> check, int64_t every_seconds, Registry* registry);
  ~TlsFileMonitor();
  TlsFileMonitor(const TlsFileMonitor&) = delete;
  TlsFileMonitor& operator=(const TlsFileMonitor&) = delete;

 private:
  void Run();
  // Runs the check, updates the gauges; returns whether the files are usable.
  bool CheckOnce(bool was_usable);

  std::function<Found()> check_;
  absl::Duration every_;
  Gauge* usable_;
  Gauge* expiry_;
  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Why a channel could not connect, read from the message of the UNAVAILABLE
// status gRPC gives a call on a channel that never became ready. gRPC reports a
// failed connection attempt only in that text; these are the phrases of its TLS
// layer and of a peer that hangs up during the handshake. Each caller words the
// fix in its own terms (mlc's flags, ingress's config keys).
enum class ConnectFailure {
  kOther,               // refused, unreachable, unknown host, anything else
  kNotTls,              // a TLS client at a plaintext server
  kUntrustedServer,     // the server's certificate is not signed by our CA, or expired
  kServerNameMismatch,  // the server's certificate is not for the name checked
  // The server closed the connection during the handshake: a plaintext client
  // at a TLS server, or a client certificate missing or not accepted.
  kHungUp,
};
ConnectFailure ClassifyConnectFailure(const std::string& grpc_message);

}  // namespace mlc
