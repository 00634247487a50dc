// Graceful shutdown of the real binaries (STYLE.md: main "waits for SIGTERM,
// shuts down gracefully"):
//  - ingress: a webhook in flight when SIGTERM arrives gets its real answer (202
//    once journaled), new connections are refused at once, and ingress exits 0.
//  - writer: SIGTERM while a batch is being written to a slow Databricks sink
//    exits 0 within a bound with the journal closed cleanly; what was not written
//    stays pending and is written exactly once after a restart. An idle writer
//    stops quickly.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <future>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/webhook_signature.h"
#include "tests/support/databricks_world.h"
#include "tests/support/freshbooks_world.h"
#include "tests/support/services.h"
#include "tests/support/test_util.h"

namespace mlc::testing {
namespace {

constexpr char kEvents[] = "finance.freshbooks.freshbooks_events";

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool ExitedZero(int status) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string DescribeExit(int status) {
  if (status == -1) return "still running";
  if (WIFEXITED(status)) return absl::StrCat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return absl::StrCat("killed by signal ", WTERMSIG(status));
  return absl::StrCat("status ", status);
}

// A TCP connection to 127.0.0.1:`port` made with plain sockets, so the test
// knows its local port (to find the server's side of it in /proc/net/tcp).
class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      connect_errno_ = errno;
      return;
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    local_port_ = ntohs(addr.sin_port);
    timeval tv{};
    tv.tv_sec = 20;  // bounds Read() if the server never answers
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return local_port_ != 0; }
  int connect_errno() const { return connect_errno_; }
  int local_port() const { return local_port_; }

  bool WriteAll(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  // Everything until the server closes (the request says Connection: close).
  std::string ReadToEnd() {
    std::string out;
    char buf[4096];
    while (true) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  int connect_errno_ = 0;
  int local_port_ = 0;
};

// One socket of /proc/net/tcp or /proc/net/tcp6 (gRPC listens dual-stack, so
// the writer's connections are IPv6 sockets with v4-mapped addresses).
struct TcpSocket {
  int local_port = 0;
  int remote_port = 0;
  int state = 0;    // 1: ESTABLISHED
  long unread = 0;  // rx_queue: received, not yet read by the process
  std::string line;
};

std::vector<TcpSocket> TcpSockets() {
  std::vector<TcpSocket> out;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    const std::vector<std::string> lines = absl::StrSplit(ReadFile(path), '\n');
    for (size_t i = 1; i < lines.size(); ++i) {  // lines[0] is the header
      // "sl local_address rem_address st tx_queue:rx_queue ...", addresses as HEX:PORT.
      const std::vector<std::string> fields = absl::StrSplit(lines[i], ' ', absl::SkipEmpty());
      if (fields.size() < 5) continue;
      const auto port_of = [](const std::string& address) {
        const size_t colon = address.rfind(':');
        return colon == std::string::npos ? 0 : std::stoi(address.substr(colon + 1), nullptr, 16);
      };
      const std::string& queues = fields[4];
      const size_t colon = queues.find(':');
      if (colon == std::string::npos) continue;
      TcpSocket socket;
      socket.local_port = port_of(fields[1]);
      socket.remote_port = port_of(fields[2]);
      socket.state = std::stoi(fields[3], nullptr, 16);
      socket.unread = std::stol(queues.substr(colon + 1), nullptr, 16);
      socket.line = lines[i];
      out.push_back(std::move(socket));
    }
  }
  return out;
}

// Bytes the server side of established loopback connections to `server_port`
// has received but its process has not read: of the one from `client_port`
// (nullopt if there is none) or, with `client_port` 0, summed over all of them.
std::optional<long> UnreadBytes(int server_port, int client_port) {
  std::optional<long> sum;
  for (const TcpSocket& socket : TcpSockets()) {
    if (socket.local_port != server_port || socket.state != 1) continue;
    if (client_port == 0) {
      sum = sum.value_or(0) + socket.unread;
    } else if (socket.remote_port == client_port) {
      return socket.unread;
    }
  }
  return sum;
}

// The sockets from or to `port`, for failure messages.
std::string TcpTable(int port) {
  std::string out;
  for (const TcpSocket& socket : TcpSockets()) {
    if (socket.local_port == port || socket.remote_port == port) {
      absl::StrAppend(&out, socket.line, "\n");
    }
  }
  return out;
}

// True once `pid` is stopped (state T in /proc/<pid>/stat).
bool IsStopped(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'T';
}

// True if a new TCP connection to 127.0.0.1:`port` is refused.
bool ConnectionRefused(int port) {
  RawConnection c(port);
  return !c.connected() && c.connect_errno() == ECONNREFUSED;
}

struct HttpAnswer {
  int status = 0;
  std::string body;
};

HttpAnswer ParseHttpAnswer(const std::string& raw) {
  HttpAnswer a;
  if (raw.rfind("HTTP/1.1 ", 0) == 0 && raw.size() >= 12) a.status = std::stoi(raw.substr(9, 3));
  const size_t body = raw.find("\r\n\r\n");
  if (body != std::string::npos) a.body = raw.substr(body + 4);
  return a;
}

TEST(ShutdownTest, IngressFinishesAWebhookInFlightAndRefusesNewConnections) {
  Services s;
  s.StartAll();
  // One webhook first: ingress's channel to the writer is up and the key known.
  ASSERT_EQ(s.Send(StandardEvent("invoice.create", "1")).status, 202);

  // The writer stops answering: ingress's Submit waits (up to its 5 s writer
  // deadline) for the durable ack.
  s.KillWriter(SIGSTOP);
  struct ContinueWriter {  // whatever happens below, the writer runs again
    Services* s;
    ~ContinueWriter() { s->KillWriter(SIGCONT); }
  } continue_writer{&s};
  ASSERT_TRUE(WaitFor([&] { return IsStopped(s.writer()->pid()); }, std::chrono::seconds(2)));
  const long writer_unread_before = UnreadBytes(s.writer_port(), 0).value_or(0);
  const FormFields fields = StandardEvent("invoice.update", "2");
  const std::string body = EncodeWebhookForm(fields);
  const std::string request =
      absl::StrCat("POST /webhooks/freshbooks/", s.options().connection_id,
                   " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   "Content-Type: application/x-www-form-urlencoded\r\nX-FreshBooks-Hmac-SHA256: ",
                   FreshBooksSignature(s.options().verifier, fields),
                   "\r\nContent-Length: ", body.size(), "\r\n\r\n", body);
  RawConnection conn(s.ingress_port());
  ASSERT_TRUE(conn.connected()) << "errno " << conn.connect_errno();
  ASSERT_TRUE(conn.WriteAll(request));
  std::future<std::string> answer =
      std::async(std::launch::async, [&conn] { return conn.ReadToEnd(); });
  // Ingress has the webhook once it has read the request and its Submit waits
  // in the stopped writer's socket.
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::optional<long> unread = UnreadBytes(s.ingress_port(), conn.local_port());
        return unread.has_value() && *unread == 0 &&
               UnreadBytes(s.writer_port(), 0).value_or(0) > writer_unread_before;
      },
      std::chrono::seconds(3)))
      << "ingress did not pass the webhook on to the writer; connections to the writer:\n"
      << TcpTable(s.writer_port()) << "to ingress:\n"
      << TcpTable(s.ingress_port());

  const auto sigterm_at = std::chrono::steady_clock::now();
  s.KillIngress(SIGTERM);
  // New connections are refused at once, while the webhook is still in flight.
  EXPECT_TRUE(WaitFor([&] { return ConnectionRefused(s.ingress_port()); }, std::chrono::seconds(2)))
      << s.IngressLog();
  EXPECT_TRUE(s.ingress()->Running()) << "ingress exited with a request in flight";
  EXPECT_EQ(answer.wait_for(std::chrono::milliseconds(0)), std::future_status::timeout)
      << "answered before the writer could journal it";
  ASSERT_LT(std::chrono::steady_clock::now() - sigterm_at, std::chrono::seconds(3))
      << "too slow: ingress's writer deadline would expire";

  s.KillWriter(SIGCONT);
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const HttpAnswer a = ParseHttpAnswer(answer.get());
  ASSERT_EQ(a.status, 202) << a.body << s.IngressLog();
  const nlohmann::json j = nlohmann::json::parse(a.body, nullptr, false);
  ASSERT_TRUE(j.is_object() && j.contains("delivery_id") && j["delivery_id"].is_string()) << a.body;
  const std::string delivery_id = j["delivery_id"].get<std::string>();

  const int status = s.ingress()->Wait(std::chrono::seconds(10));
  EXPECT_TRUE(ExitedZero(status)) << DescribeExit(status) << "\n" << s.IngressLog();
  EXPECT_TRUE(Contains(s.IngressLog(), "ingress stopped")) << s.IngressLog();
  EXPECT_EQ(s.Query("journal.db", absl::StrCat("SELECT COUNT(*) FROM deliveries WHERE "
                                               "delivery_id = '",
                                               delivery_id, "'")),
            "1");
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

TEST(ShutdownTest, WriterStopsMidBatchAndResumesExactlyOnceAfterARestart) {
  DatabricksWorld world;
  ServicesOptions o;
  o.sink = "databricks";
  o.databricks_host = world.url();
  o.max_rows = 2;  // several batches, written one after another
  o.max_delay_ms = 20;
  Services s(o);
  s.StartAll();
  ASSERT_TRUE(s.WaitReadyz(s.metrics_port(), 200)) << s.WriterLog();

  // A slow warehouse: each MERGE takes 2 s.
  world.server().SetStatementLatency(absl::Seconds(2));
  constexpr int kWebhooks = 6;
  std::vector<std::string> ids;
  for (int i = 0; i < kWebhooks; ++i) {
    Services::Answer a = s.Send(StandardEvent("invoice.create", absl::StrCat(100 + i)));
    ASSERT_EQ(a.status, 202) << a.body;
    ids.push_back(a.delivery_id);
  }
  ASSERT_TRUE(WaitFor([&] { return !world.server().RunningStatements().empty(); }))
      << "no batch reached the warehouse\n"
      << s.WriterLog();

  const auto sigterm_at = std::chrono::steady_clock::now();
  s.KillWriter(SIGTERM);
  const int status = s.writer()->Wait(std::chrono::seconds(10));
  const auto took = std::chrono::steady_clock::now() - sigterm_at;
  ASSERT_TRUE(ExitedZero(status)) << DescribeExit(status) << "\n" << s.WriterLog();
  EXPECT_LT(took, std::chrono::seconds(10));
  EXPECT_TRUE(Contains(s.WriterLog(), "writer stopped")) << s.WriterLog();

  // The journal was closed cleanly: its WAL checkpointed away, the file intact.
  const std::string journal = s.data_dir() + "/journal.db";
  const int64_t wal = FileSize(journal + "-wal");
  EXPECT_TRUE(wal == -1 || wal == 0) << "journal.db-wal has " << wal << " bytes";
  EXPECT_EQ(s.Query("journal.db", "PRAGMA integrity_check"), "ok");

  // What was not written is still pending; nothing was lost or given up on.
  const int written =
      std::stoi(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status = 'written'"));
  const int pending =
      std::stoi(s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'"));
  EXPECT_EQ(written + pending, kWebhooks);
  EXPECT_GE(pending, 1) << "the shutdown waited for every batch instead of stopping";
  std::map<std::string, int> rows = world.EventRowCounts();
  for (const auto& [id, n] : rows) EXPECT_EQ(n, 1) << id;

  // After a restart (and a fast warehouse) everything lands exactly once.
  world.server().SetStatementLatency(absl::ZeroDuration());
  s.StartWriter();
  ASSERT_TRUE(WaitFor(
      [&] {
        return s.Query("journal.db", "SELECT COUNT(*) FROM deliveries WHERE status = 'written'") ==
               absl::StrCat(kWebhooks);
      },
      std::chrono::seconds(30)))
      << s.WriterLog();
  rows = world.EventRowCounts();
  EXPECT_EQ(rows.size(), static_cast<size_t>(kWebhooks));
  for (const std::string& id : ids) EXPECT_EQ(rows[id], 1) << id;
}

TEST(ShutdownTest, IdleWriterStopsQuickly) {
  Services s;
  s.StartAll();
  ASSERT_EQ(s.Send(StandardEvent("client.create", "7")).status, 202);
  ASSERT_TRUE(WaitFor([&] { return s.EventRowCounts().size() == 1; })) << s.WriterLog();

  const auto sigterm_at = std::chrono::steady_clock::now();
  s.KillWriter(SIGTERM);
  const int status = s.writer()->Wait(std::chrono::seconds(10));
  const auto took = std::chrono::steady_clock::now() - sigterm_at;
  ASSERT_TRUE(ExitedZero(status)) << DescribeExit(status) << "\n" << s.WriterLog();
  EXPECT_LT(took, std::chrono::seconds(3))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  EXPECT_TRUE(Contains(s.WriterLog(), "writer stopped")) << s.WriterLog();
  const int64_t wal = FileSize(s.data_dir() + "/journal.db-wal");
  EXPECT_TRUE(wal == -1 || wal == 0) << "journal.db-wal has " << wal << " bytes";
}

// An operator's `mlc sync --full` against a slow FreshBooks is running when the
// writer gets SIGTERM: the sync stops between pages (its watermarks stay) instead
// of holding the shutdown for the whole backfill.
TEST(ShutdownTest, WriterStopsDuringALongSync) {
  FreshBooksWorld w;
  w.StartAuthorized();
  // 300 objects of every entity at 400 ms per request: a full sync needs well over
  // a minute of requests.
  w.fb().Seed(300);
  w.fb().SetLatency(absl::Milliseconds(400));
  auto count_runs = [&] {
    const std::string log = w.services().WriterLog();
    size_t n = 0;
    for (size_t at = log.find("sync: run started"); at != std::string::npos;
         at = log.find("sync: run started", at + 1)) {
      ++n;
    }
    return n;
  };
  const size_t runs = count_runs();
  std::string cli_out;
  std::future<int> cli = std::async(std::launch::async, [&] {
    return w.services().RunCli({"sync", "--connection", "acme", "--full"}, &cli_out);
  });
  ASSERT_TRUE(WaitFor([&] { return count_runs() > runs; })) << w.services().WriterLog();

  const auto sigterm_at = std::chrono::steady_clock::now();
  w.services().KillWriter(SIGTERM);
  const int status = w.services().writer()->Wait(std::chrono::seconds(30));
  const auto took = std::chrono::steady_clock::now() - sigterm_at;
  ASSERT_TRUE(ExitedZero(status)) << DescribeExit(status) << "\n" << w.services().WriterLog();
  EXPECT_LT(took, std::chrono::seconds(8))
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms\n"
      << w.services().WriterLog();
  EXPECT_TRUE(Contains(w.services().WriterLog(), "writer stopped"));
  cli.wait();
}

}  // namespace
}  // namespace mlc::testing
