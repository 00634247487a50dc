// Small helpers for absl::Status propagation. Debian's Abseil (20220623) ships no
// RETURN_IF_ERROR / ASSIGN_OR_RETURN, so the project defines its own once, here.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define MLC_CONCAT_INNER_(a, b) a##b
#define MLC_CONCAT_(a, b) MLC_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define MLC_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status mlc_status_ = (expr);       \
    if (!mlc_status_.ok()) return mlc_status_; \
  } while (0)

// `MLC_ASSIGN_OR_RETURN(auto x, Foo());` assigns the value or returns the error.
#define MLC_ASSIGN_OR_RETURN(lhs, rexpr) \
  MLC_ASSIGN_OR_RETURN_IMPL_(MLC_CONCAT_(mlc_statusor_, __LINE__), lhs, rexpr)

// NOLINTBEGIN(bugprone-macro-parentheses): `lhs` is a declaration, it cannot be
// parenthesised.
#define MLC_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) return statusor.status();          \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)
