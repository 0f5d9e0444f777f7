// The Diag service (proto/diag.proto) that every Heka server answers: Ping tells who is who,
// Echo serves `heka rpc ping`, the tests and the benchmarks.
#pragma once

#include "rpc/registry.h"

namespace heka::rpc {

inline constexpr char kDiagEcho[] = "heka.diag.Diag.Echo";
inline constexpr char kDiagPing[] = "heka.diag.Diag.Ping";
inline constexpr char kDiagPush[] = "heka.diag.Diag.Push";

// Adds Diag.Echo and Diag.Ping to `registry`.
void RegisterDiag(HandlerRegistry& registry);

}  // namespace heka::rpc
