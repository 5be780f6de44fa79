#include "support/smtp_test_client.hpp"

#include <cctype>

namespace portrelay::test {

namespace {

bool is_code(std::string_view line) {
  return line.size() >= 3 && std::isdigit(static_cast<unsigned char>(line[0])) &&
         std::isdigit(static_cast<unsigned char>(line[1])) &&
         std::isdigit(static_cast<unsigned char>(line[2]));
}

}  // namespace

SmtpTestClient::SmtpTestClient(std::chrono::milliseconds timeout) : timeout_(timeout) {}

SmtpTestClient::~SmtpTestClient() { close(); }

void SmtpTestClient::connect(const std::string& host, uint16_t port) {
  close();
  ConnectOutcome outcome = connect_with_timeout(host, port, timeout_);
  if (outcome.result != ConnectResult::kConnected) {
    throw SmtpTestError("connect to " + host + ":" + std::to_string(port) + " failed (errno " +
                        std::to_string(outcome.error) + ")");
  }
  fd_ = std::move(outcome.fd);
  channel_ = std::make_unique<PlainChannel>(fd_.get());
}

void SmtpTestClient::connect_tls(const std::string& host, uint16_t port,
                                 const TlsClientOptions& options) {
  connect(host, port);
  tls_context_ = make_client_tls_context(options);
  std::string error;
  auto tls = TlsChannel::connect(tls_context_.get(), fd_.get(), options, timeout_, &error);
  if (!tls) throw SmtpTestError("TLS handshake failed: " + error);
  channel_ = std::move(tls);
}

SmtpReply SmtpTestClient::starttls(const TlsClientOptions& options,
                                   std::string_view pipelined_plaintext) {
  send_raw("STARTTLS\r\n" + std::string(pipelined_plaintext));
  SmtpReply reply = read_reply();
  if (reply.code != 220) throw SmtpTestError("STARTTLS refused: " + reply.raw);
  buffer_.clear();  // plaintext sent before the handshake must not be trusted (RFC 3207)
  tls_context_ = make_client_tls_context(options);
  std::string error;
  auto tls = TlsChannel::connect(tls_context_.get(), fd_.get(), options, timeout_, &error);
  if (!tls) throw SmtpTestError("TLS handshake failed: " + error);
  channel_ = std::move(tls);
  return reply;
}

bool SmtpTestClient::is_tls() const { return channel_ && channel_->is_tls(); }

void SmtpTestClient::close() {
  channel_.reset();  // TLS close_notify needs the fd, so the channel goes first
  fd_.reset();
  tls_context_.reset();
  buffer_.clear();
  peer_closed_ = false;
}

Channel& SmtpTestClient::channel() {
  if (!channel_) throw SmtpTestError("not connected");
  return *channel_;
}

bool SmtpTestClient::fill_buffer(std::chrono::steady_clock::time_point deadline) {
  if (peer_closed_) return false;
  auto remaining =
      std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (remaining.count() < 0) remaining = std::chrono::milliseconds(0);
  char chunk[16384];
  ReadResult result = channel().read(chunk, sizeof(chunk), remaining);
  switch (result.status) {
    case IoStatus::kOk:
      buffer_.append(chunk, result.bytes);
      return true;
    case IoStatus::kClosed:
      peer_closed_ = true;
      return false;
    case IoStatus::kTimeout:
      throw SmtpTestError("timed out waiting for the server; buffered: '" + buffer_ + "'");
    case IoStatus::kError:
      break;
  }
  throw SmtpTestError("read error");
}

SmtpReply SmtpTestClient::read_reply() {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  SmtpReply reply;
  std::size_t consumed = 0;
  while (true) {
    std::size_t newline = buffer_.find('\n', consumed);
    if (newline == std::string::npos) {
      if (!fill_buffer(deadline)) {
        throw SmtpTestError("connection closed while reading a reply; got '" + buffer_ + "'");
      }
      continue;
    }
    std::string_view line(buffer_.data() + consumed, newline - consumed);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    consumed = newline + 1;
    bool continued = line.size() > 3 && line[3] == '-';
    if (!is_code(line) || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      throw SmtpTestError("malformed reply line: '" + std::string(line) + "'");
    }
    int code = std::stoi(std::string(line.substr(0, 3)));
    if (reply.code != 0 && code != reply.code) {
      throw SmtpTestError("reply code changed within a multi-line reply: '" +
                          buffer_.substr(0, consumed) + "'");
    }
    reply.code = code;
    reply.lines.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    if (!continued) break;
  }
  reply.raw = buffer_.substr(0, consumed);
  buffer_.erase(0, consumed);
  for (std::size_t i = 0; i < reply.lines.size(); ++i) {
    if (i > 0) reply.text += '\n';
    reply.text += reply.lines[i];
  }
  return reply;
}

void SmtpTestClient::send_line(std::string_view command) {
  std::string line(command);
  line += "\r\n";
  send_raw(line);
}

void SmtpTestClient::send_raw(std::string_view bytes) {
  if (!channel().write_all(bytes, timeout_)) throw SmtpTestError("write failed or timed out");
}

SmtpReply SmtpTestClient::command(std::string_view command) {
  send_line(command);
  return read_reply();
}

SmtpReply SmtpTestClient::send_message(std::string_view from,
                                       const std::vector<std::string>& recipients,
                                       std::string_view content) {
  SmtpReply reply = command("MAIL FROM:<" + std::string(from) + ">");
  if (reply.code / 100 != 2) return reply;
  bool any_accepted = false;
  for (const std::string& recipient : recipients) {
    reply = command("RCPT TO:<" + recipient + ">");
    any_accepted = any_accepted || reply.code / 100 == 2;
  }
  if (!any_accepted) return reply;
  reply = command("DATA");
  if (reply.code != 354) return reply;
  std::string data = dot_stuff(content);
  bool ends_with_crlf = data.size() >= 2 && data.compare(data.size() - 2, 2, "\r\n") == 0;
  if (!data.empty() && !ends_with_crlf) data += "\r\n";
  data += ".\r\n";
  send_raw(data);
  return read_reply();
}

bool SmtpTestClient::closed(std::chrono::milliseconds wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  try {
    while (fill_buffer(deadline)) {
    }
    return true;
  } catch (const SmtpTestError&) {
    return false;  // timeout: still open
  }
}

}  // namespace portrelay::test
