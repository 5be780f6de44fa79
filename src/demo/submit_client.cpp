#include "portrelay/demo/submit_client.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <stdexcept>

#include "portrelay/demo/socket_util.hpp"
#include "portrelay/smtp/data_reader.hpp"
#include "portrelay/smtp/reply.hpp"

namespace portrelay::demo {
namespace {

class Dialog {
 public:
  Dialog(UniqueFd fd, std::chrono::milliseconds timeout, SubmitResult& result)
      : fd_(std::move(fd)), timeout_(timeout), result_(result) {}

  smtp::Reply read_reply() {
    while (true) {
      if (auto reply = parser_.next()) {
        result_.transcript.push_back("S: " + reply->summary());
        return *reply;
      }
      if (parser_.failed()) throw std::runtime_error("malformed reply: " + parser_.error());
      pollfd pfd{fd_.get(), POLLIN, 0};
      if (::poll(&pfd, 1, static_cast<int>(timeout_.count())) <= 0)
        throw std::runtime_error("timed out waiting for a reply");
      char buffer[4096];
      ssize_t got = ::recv(fd_.get(), buffer, sizeof(buffer), 0);
      if (got <= 0) throw std::runtime_error("connection closed by the server");
      parser_.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
    }
  }

  void send(const std::string& bytes, const std::string& shown) {
    if (!shown.empty()) result_.transcript.push_back("C: " + shown);
    std::size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_.get(), bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) throw std::runtime_error("send failed");
      sent += static_cast<std::size_t>(n);
    }
  }

  smtp::Reply command(const std::string& line) {
    send(line + "\r\n", line);
    return read_reply();
  }

 private:
  UniqueFd fd_;
  std::chrono::milliseconds timeout_;
  SubmitResult& result_;
  smtp::ReplyParser parser_;
};

}  // namespace

SubmitResult submit_message(const std::string& host, std::uint16_t port, const std::string& from,
                            const std::string& to, const std::string& content,
                            std::chrono::milliseconds timeout) {
  SubmitResult result;
  try {
    auto outcome = connect_with_timeout(host, port, timeout);
    if (outcome.result != ConnectResult::kConnected)
      throw std::runtime_error("cannot connect to " + host + ":" + std::to_string(port));
    Dialog dialog(std::move(outcome.fd), timeout, result);
    auto expect = [&](const smtp::Reply& reply, int code) {
      if (reply.code != code) {
        result.final_reply = reply.summary();
        throw std::runtime_error("unexpected reply");
      }
    };
    expect(dialog.read_reply(), 220);
    expect(dialog.command("EHLO demo-client.portrelay.test"), 250);
    expect(dialog.command("MAIL FROM:<" + from + ">"), 250);
    expect(dialog.command("RCPT TO:<" + to + ">"), 250);
    expect(dialog.command("DATA"), 354);
    std::string wire;
    smtp::DotStuffer stuffer;
    stuffer.encode(content, wire);
    stuffer.finish(wire);
    dialog.send(wire, "(" + std::to_string(content.size()) + " bytes of message content)");
    auto final_reply = dialog.read_reply();
    result.final_reply = final_reply.summary();
    result.delivered = final_reply.success();
    dialog.command("QUIT");
  } catch (const std::exception& error) {
    if (result.final_reply.empty()) result.final_reply = error.what();
  }
  return result;
}

}  // namespace portrelay::demo
