#pragma once
// Turns OpenSSL's thread-local error queue into readable text for TlsError and
// Engine::error(). Used by the TLS layer and by the test PKI generator.
#include <string>

namespace portrelay::tls {

// Drains the whole error queue and returns its entries joined by "; ", each as
// "<library>: <reason> (<detail>)". Returns `fallback` when the queue is empty.
std::string take_openssl_errors(const std::string& fallback = "unknown OpenSSL error");

}  // namespace portrelay::tls
