// Input limits and timeouts of the public webhook endpoint (DESIGN.md §5). These
// are deliberately not configuration: they bound what an anonymous client can make
// ingress hold, and FreshBooks never comes near them.
#pragma once

#include <chrono>
#include <cstddef>

namespace mlc::ingress {

struct Limits {
  // Whole request (headers and body) must arrive within this long once its
  // first byte is readable: a client that trickles bytes cannot hold a worker.
  std::chrono::milliseconds request_read_timeout{5000};
  // An idle keep-alive connection is closed after this long.
  std::chrono::milliseconds keep_alive_timeout{5000};
  // Deadline of every call to the writer. FreshBooks waits 10 s for an answer.
  std::chrono::milliseconds writer_deadline{5000};
  std::chrono::milliseconds write_timeout{5000};
  size_t max_requests_per_connection = 10000;
  size_t worker_threads = 192;
  // Keys are re-read from the writer this often, and at most this often on a miss.
  std::chrono::milliseconds keys_refresh_interval{5000};
  std::chrono::milliseconds keys_min_refetch_interval{500};
  // Deadline of a key fetch (it waits for the writer's channel to connect).
  std::chrono::milliseconds keys_fetch_deadline{1000};
};

}  // namespace mlc::ingress
