#include "common/grpc_util.h"

#include "common/crypto.h"

namespace mlc {

bool HasBearerToken(const grpc::ServerContextBase& ctx, std::string_view expected) {
  if (expected.empty()) return false;
  const auto& md = ctx.client_metadata();
  auto it = md.find(kAuthorizationHeader);
  if (it == md.end()) return false;
  std::string_view value(it->second.data(), it->second.size());
  constexpr std::string_view kPrefix = "Bearer ";
  if (value.size() < kPrefix.size() || value.substr(0, kPrefix.size()) != kPrefix) return false;
  return ConstantTimeEquals(value.substr(kPrefix.size()), expected);
}

void AddBearerToken(grpc::ClientContext* ctx, const std::string& token) {
  ctx->AddMetadata(kAuthorizationHeader, "Bearer " + token);
}

}  // namespace mlc
