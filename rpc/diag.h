// The Diag service (proto/diag.proto) that every Heka server answers: Ping tells who is who,
// Echo serves `heka rpc ping`, the tests and the benchmarks, Stats counts the calls served.
#pragma once

#include "rpc/registry.h"

namespace heka::rpc {

inline constexpr char kDiagEcho[] = "heka.diag.Diag.Echo";
inline constexpr char kDiagPing[] = "heka.diag.Diag.Ping";
inline constexpr char kDiagPush[] = "heka.diag.Diag.Push";
inline constexpr char kDiagStats[] = "heka.diag.Diag.Stats";

// Adds Diag.Echo, Diag.Ping and Diag.Stats (the calls `registry` served, per method) to
// `registry`, which must outlive the servers using it.
void RegisterDiag(HandlerRegistry& registry);

}  // namespace heka::rpc
