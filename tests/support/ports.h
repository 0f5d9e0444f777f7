#pragma once

namespace heka::testing {

// A loopback port for a test server, free for TCP (and for UDP too when `udp_too`) right now.
//
// Ports come in turn from 20000-26999: below the kernel's ephemeral range, so no outgoing
// connection of any process takes one while its server is down between a kill and a restart;
// and through a counter that every test process on the machine shares (a file under flock), so
// two test executables that ctest runs side by side never pick the same one, nor one process
// the same one twice. Returns 0 if none is free.
int FreePort(bool udp_too = false);

}  // namespace heka::testing
