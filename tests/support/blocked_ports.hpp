#pragma once
#include "portrelay/demo/blocked_ports.hpp"

namespace portrelay::test {
using demo::BlackholePort;
using demo::refused_port;
using demo::RefusedPort;
}  // namespace portrelay::test
