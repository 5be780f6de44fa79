#include <algorithm>
#include <array>
#include <cstdio>
#include <sstream>

#include "portrelay/probe/probe.hpp"

namespace portrelay::probe {
namespace {

using portrelay::FailureReason;

std::string millis(double ms) {
  if (ms < 0) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.0f ms", ms);
  return text;
}

// Length of the UTF-8 sequence starting at `at`. `valid` says whether it is well-formed
// (RFC 3629: no overlongs, surrogates or code points above U+10FFFF); an ill-formed one is
// its maximal subpart (at least one byte), which becomes one U+FFFD as Unicode recommends.
std::size_t utf8_sequence(const std::string& text, std::size_t at, bool& valid) {
  auto lead = static_cast<unsigned char>(text[at]);
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    valid = false;
    return 1;
  }
  for (std::size_t k = 1; k < length; ++k) {
    if (at + k >= text.size()) {
      valid = false;
      return k;
    }
    auto next = static_cast<unsigned char>(text[at + k]);
    if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xbf)) {
      valid = false;
      return k;
    }
  }
  valid = true;
  return length;
}

// Greetings and EHLO lines come from the server and may hold any byte, but JSON is UTF-8.
std::string json_string(const std::string& value) {
  std::string out = "\"";
  for (std::size_t i = 0; i < value.size();) {
    auto c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      out += escaped;
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      bool valid = false;
      std::size_t length = utf8_sequence(value, i, valid);
      if (valid)
        out.append(value, i, length);
      else
        out += "\\ufffd";
      i += length;
    }
  }
  return out + "\"";
}

std::string json_number(double value) {
  if (value < 0) return "null";
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", value);
  return text;
}

}  // namespace

std::string verdict(const EndpointProbe& probe, config::Duration connect_timeout) {
  if (probe.ok) return probe.trace.authenticated ? "OK (AUTH OK)" : "OK";
  switch (probe.reason.value_or(FailureReason::Protocol)) {
    case FailureReason::Timeout:
      return "BLOCKED (no answer in " + config::format_duration(connect_timeout) + ")";
    case FailureReason::Refused:
      return "REFUSED";
    case FailureReason::Unreachable:
      return "UNREACHABLE";
    case FailureReason::Dns:
      return "DNS ERROR";
    case FailureReason::TlsHandshake:
      return "TLS ERROR";
    case FailureReason::TlsVerify:
      return "TLS CERT ERROR";
    case FailureReason::StartTlsUnavailable:
      return "NO STARTTLS";
    case FailureReason::GreetingTimeout:
      return "NO GREETING";
    case FailureReason::GreetingRejected:
      return "REJECTED";
    case FailureReason::AuthFailed:
      return "AUTH FAILED";
    case FailureReason::Protocol:
      return "PROTOCOL ERROR";
    case FailureReason::Closed:
      return "CLOSED";
    case FailureReason::TransactionTimeout:
      return "NO REPLY (timeout)";
    case FailureReason::TransactionReset:
      return "RESET";
    case FailureReason::TransactionProtocol:
      return "PROTOCOL ERROR (transaction)";
    case FailureReason::LocalResources:
      return "LOCAL ERROR (out of resources)";
    case FailureReason::CoolingDown:
      return "COOLING DOWN";
    case FailureReason::Limited:
      return "LIMITED";
  }
  return "ERROR";  // not a FailureReason: the switch above names every one (-Wswitch)
}

std::optional<std::size_t> endpoint_in_use(const std::vector<EndpointProbe>& probes) {
  for (std::size_t i = 0; i < probes.size(); ++i)
    if (probes[i].ok) return i;
  return std::nullopt;
}

std::string format_table(const std::vector<EndpointProbe>& probes,
                         config::Duration connect_timeout) {
  // Each column is as wide as its widest cell (endpoint names go up to 64 characters, host
  // names to 253), so long names push the columns right instead of out of line. DETAIL is
  // last and not padded.
  using Row = std::array<std::string, 7>;
  std::vector<Row> rows{{"#", "ENDPOINT", "TLS", "VERDICT", "TCP", "READY", "DETAIL"}};
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const auto& probe = probes[i];
    std::string detail;
    if (probe.ok) {
      detail = probe.trace.tls_version.empty() ? "plaintext" : probe.trace.tls_version;
      if (!probe.trace.client_certificate.empty())
        detail += "; client certificate " + probe.trace.client_certificate;
      detail += "; " + probe.trace.greeting;
    } else {
      detail = probe.detail;
    }
    rows.push_back({std::to_string(i + 1),
                    probe.endpoint.label() + " (" + probe.endpoint.host + ")",
                    config::to_string(probe.endpoint.tls), verdict(probe, connect_timeout),
                    millis(probe.trace.tcp_ms), millis(probe.trace.ready_ms), detail});
  }
  constexpr std::size_t kGap = 2;  // spaces between columns
  std::array<std::size_t, 7> widths{};
  for (const auto& row : rows)
    for (std::size_t column = 0; column < row.size(); ++column)
      widths[column] = std::max(widths[column], row[column].size());
  std::ostringstream out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t column = 0; column + 1 < row.size(); ++column) {
      line += row[column];
      line.append(widths[column] - row[column].size() + kGap, ' ');
    }
    line += row.back();
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out << line << "\n";
  }
  auto chosen = endpoint_in_use(probes);
  if (chosen)
    out << "\nThe relay would use now: " << probes[*chosen].endpoint.label() << " (endpoint "
        << (*chosen + 1) << " of " << probes.size() << ")\n";
  else
    out << "\nNo endpoint is usable: mail would be deferred (451 4.4.1).\n";
  return out.str();
}

std::string format_json(const std::vector<EndpointProbe>& probes,
                        config::Duration connect_timeout) {
  std::ostringstream out;
  auto chosen = endpoint_in_use(probes);
  out << "{\"endpoints\":[";
  for (std::size_t i = 0; i < probes.size(); ++i) {
    const auto& probe = probes[i];
    const auto& trace = probe.trace;
    if (i) out << ",";
    out << "{\"index\":" << i + 1 << ",\"name\":" << json_string(probe.endpoint.name)
        << ",\"host\":" << json_string(probe.endpoint.host) << ",\"port\":" << probe.endpoint.port
        << ",\"tls_mode\":" << json_string(config::to_string(probe.endpoint.tls))
        << ",\"usable\":" << (probe.ok ? "true" : "false")
        << ",\"verdict\":" << json_string(verdict(probe, connect_timeout)) << ",\"reason\":"
        << (probe.reason ? json_string(portrelay::to_string(*probe.reason)) : std::string("null"))
        << ",\"detail\":" << json_string(probe.detail) << ",\"addresses\":[";
    for (std::size_t a = 0; a < trace.addresses.size(); ++a)
      out << (a ? "," : "") << json_string(trace.addresses[a]);
    out << "],\"connected_address\":" << json_string(trace.connected_address)
        << ",\"dns_ms\":" << json_number(trace.resolved_ms)
        << ",\"tcp_ms\":" << json_number(trace.tcp_ms)
        << ",\"tls_ms\":" << json_number(trace.tls_ms)
        << ",\"ready_ms\":" << json_number(trace.ready_ms)
        << ",\"tls_version\":" << json_string(trace.tls_version)
        << ",\"tls_cipher\":" << json_string(trace.tls_cipher)
        << ",\"client_certificate\":" << json_string(trace.client_certificate)
        << ",\"greeting\":" << json_string(trace.greeting) << ",\"extensions\":[";
    for (std::size_t e = 0; e < trace.extensions.size(); ++e)
      out << (e ? "," : "") << json_string(trace.extensions[e]);
    out << "],\"authenticated\":" << (trace.authenticated ? "true" : "false") << "}";
  }
  out << "],\"in_use\":"
      << (chosen ? json_string(probes[*chosen].endpoint.label()) : std::string("null")) << "}\n";
  return out.str();
}

}  // namespace portrelay::probe
