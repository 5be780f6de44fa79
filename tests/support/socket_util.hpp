#pragma once
// The test peers use the same plain-POSIX socket helpers as the demo's simulated ports.
#include "portrelay/demo/socket_util.hpp"

namespace portrelay::test {
using demo::connect_with_timeout;
using demo::ConnectOutcome;
using demo::ConnectResult;
using demo::disable_nagle;
using demo::listen_ephemeral;
using demo::listen_on;
using demo::local_port;
using demo::make_address;
using demo::set_nonblocking;
using demo::SocketAddress;
using demo::UniqueFd;
}  // namespace portrelay::test
