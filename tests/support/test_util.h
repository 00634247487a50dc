// Test support: temp dirs, waiting on conditions, and child processes for the
// integration tests that run the real binaries.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mlc::testing {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Polls `cond` every few milliseconds until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& cond,
             std::chrono::milliseconds timeout = std::chrono::seconds(10));

void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

// One row of a query result: text values, nullopt for NULL.
using SqlRow = std::vector<std::optional<std::string>>;
// Runs `sql` on the SQLite database at `path` through a connection of its own
// (what any other process would see on disk). Errors are test failures
// (ADD_FAILURE) and yield the rows read so far.
std::vector<SqlRow> QueryRows(const std::string& path, const std::string& sql);

// A port that was free a moment ago on 127.0.0.1 (bind port 0, read, close). The
// binaries take listen addresses from config, so tests need a concrete number.
int PickFreePort();

// A child process with stdout+stderr captured to a file.
class Process {
 public:
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env,
          std::string log_path);
  ~Process();  // SIGKILL if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool Running();
  void Kill(int sig);
  // Waits for exit; returns the exit status as from waitpid (or -1 on timeout).
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::string log_path_;
};

}  // namespace mlc::testing
