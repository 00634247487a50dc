#include "common/ids.h"

#include "absl/strings/str_format.h"
#include "common/crypto.h"

namespace mlc {

std::string NewDeliveryId(absl::Time now) {
  const int64_t ms = absl::ToUnixMillis(now);
  return absl::StrFormat("d_%012x%s", ms & 0xffffffffffffLL, HexEncode(RandomBytes(8)));
}

}  // namespace mlc
