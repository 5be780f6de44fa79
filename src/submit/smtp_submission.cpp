#include "portrelay/submit/smtp_submission.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <stdexcept>

#include "portrelay/smtp/capabilities.hpp"
#include "portrelay/smtp/command.hpp"
#include "portrelay/smtp/data_reader.hpp"

namespace portrelay::submit {
namespace {

using Outcome = SubmissionResult::Outcome;

// Any failure of the connection itself: the relay is unreachable for this message.
struct ConnectionFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A command line that would carry a second command (the caller's bug, or its caller's
// input): nothing more is sent.
struct UnsafeCommand : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Connection {
 public:
  Connection(const SubmissionRequest& request, const std::function<void(const std::string&)>& trace)
      : trace_(trace) {
    sockaddr_storage storage{};
    socklen_t length = 0;
    auto* v4 = reinterpret_cast<sockaddr_in*>(&storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&storage);
    if (::inet_pton(AF_INET, request.host.c_str(), &v4->sin_addr) == 1) {
      v4->sin_family = AF_INET;
      v4->sin_port = htons(request.port);
      length = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, request.host.c_str(), &v6->sin6_addr) == 1) {
      v6->sin6_family = AF_INET6;
      v6->sin6_port = htons(request.port);
      length = sizeof(sockaddr_in6);
    } else {
      throw ConnectionFailure("not a numeric address: " + request.host);
    }
    where_ = request.host + ":" + std::to_string(request.port);
    fd_ = ::socket(storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) fail_errno("socket");
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
      if (errno != EINPROGRESS) fail_errno("connect to " + where_);
      wait_for(POLLOUT, request.connect_timeout, "connecting to " + where_);
      int error = 0;
      socklen_t size = sizeof(error);
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size);
      if (error != 0) {
        errno = error;
        fail_errno("connect to " + where_);
      }
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  ~Connection() {
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  smtp::Reply read_reply(std::chrono::milliseconds timeout) {
    while (true) {
      if (auto reply = parser_.next()) {
        if (trace_) trace_("S: " + reply->summary());
        return *reply;
      }
      if (parser_.failed()) throw ConnectionFailure("malformed reply: " + parser_.error());
      wait_for(POLLIN, timeout, "waiting for a reply from " + where_);
      char buffer[4096];
      const ssize_t got = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (got < 0) fail_errno("reading from " + where_);
      if (got == 0) throw ConnectionFailure(where_ + " closed the connection");
      parser_.feed(std::string_view(buffer, static_cast<std::size_t>(got)));
    }
  }

  void send(std::string_view bytes, std::chrono::milliseconds timeout) {
    while (!bytes.empty()) {
      const ssize_t sent = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (sent < 0 && (errno == EAGAIN || errno == EINTR)) {
        wait_for(POLLOUT, timeout, "sending to " + where_);
        continue;
      }
      if (sent < 0) fail_errno("sending to " + where_);
      bytes.remove_prefix(static_cast<std::size_t>(sent));
    }
  }

  smtp::Reply command(const std::string& line, std::chrono::milliseconds timeout) {
    if (!smtp::is_single_command_line(line))
      throw UnsafeCommand("refusing to send a command holding CR, LF or NUL");
    if (trace_) trace_("C: " + line);
    send(line + "\r\n", timeout);
    return read_reply(timeout);
  }

 private:
  [[noreturn]] void fail_errno(const std::string& what) {
    throw ConnectionFailure(what + ": " + std::strerror(errno));
  }

  void wait_for(short events, std::chrono::milliseconds timeout, const std::string& what) {
    pollfd pfd{fd_, events, 0};
    int ready;
    do {
      ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    } while (ready < 0 && errno == EINTR);
    if (ready == 0) throw ConnectionFailure("timed out " + what);
    if (ready < 0) fail_errno(what);
  }

  int fd_ = -1;
  std::string where_;
  smtp::ReplyParser parser_;
  const std::function<void(const std::string&)>& trace_;
};

// The outcome a non-2xx reply decides.
SubmissionResult refused(const smtp::Reply& reply, const std::string& step) {
  SubmissionResult result;
  result.outcome = reply.transient()   ? Outcome::kTransient
                   : reply.permanent() ? Outcome::kRejected
                                       : Outcome::kUnreachable;  // 1xx/3xx: not SMTP as we know it
  result.detail = step + ": " + reply.summary();
  return result;
}

// RSET and QUIT once the outcome is decided are courtesy: a server that hangs up on them,
// or a connection that breaks then, changes nothing about the message, so it must not
// turn a refused recipient (EX_NOUSER) or a 4xx (EX_TEMPFAIL) into "unreachable" (which
// would send the message to the maildrop).
void say_goodbye(Connection& connection, std::initializer_list<const char*> commands,
                 std::chrono::milliseconds timeout) {
  try {
    for (const char* command : commands) connection.command(command, timeout);
  } catch (const ConnectionFailure&) {
  }
}

}  // namespace

SubmissionResult submit_message(const SubmissionRequest& request,
                                const std::function<void(const std::string&)>& trace) {
  try {
    Connection connection(request, trace);
    const auto timeout = request.reply_timeout;
    auto greeting = connection.read_reply(timeout);
    if (greeting.code != 220) return refused(greeting, "greeting");
    auto ehlo = connection.command("EHLO " + request.helo_name, timeout);
    if (!ehlo.success()) return refused(ehlo, "EHLO");
    const auto capabilities = smtp::Capabilities::from_ehlo(ehlo);

    std::string mail = "MAIL FROM:<" + request.sender + ">";
    if (request.eight_bit && capabilities.eight_bit_mime) mail += " BODY=8BITMIME";
    auto mail_reply = connection.command(mail, timeout);
    if (!mail_reply.success()) return refused(mail_reply, "MAIL FROM");

    SubmissionResult result;
    std::size_t accepted = 0;
    for (const auto& recipient : request.recipients) {
      auto reply = connection.command("RCPT TO:<" + recipient + ">", timeout);
      if (reply.success()) {
        ++accepted;
      } else if (reply.permanent()) {
        result.refused_recipients.push_back(recipient + ": " + reply.summary());
      } else {
        // 4xx (or nonsense): send to nobody now, so that sending again later reaches every
        // recipient once rather than some of them twice.
        auto failure = refused(reply, "RCPT TO:<" + recipient + ">");
        say_goodbye(connection, {"RSET", "QUIT"}, timeout);
        return failure;
      }
    }
    if (accepted == 0) {
      result.outcome = Outcome::kNoRecipients;
      result.detail = "every recipient was refused";
      say_goodbye(connection, {"QUIT"}, timeout);
      return result;
    }
    auto data = connection.command("DATA", timeout);
    if (data.code != 354) return refused(data, "DATA");
    std::string wire;
    smtp::DotStuffer stuffer;
    stuffer.encode(request.content, wire);
    stuffer.finish(wire);
    if (trace) trace("C: (" + std::to_string(request.content.size()) + " octets of message)");
    connection.send(wire, request.final_reply_timeout);
    auto final_reply = connection.read_reply(request.final_reply_timeout);
    if (!final_reply.success()) return refused(final_reply, "end of data");
    result.outcome = Outcome::kDelivered;
    result.detail = final_reply.summary();
    say_goodbye(connection, {"QUIT"}, timeout);  // the message is accepted
    return result;
  } catch (const UnsafeCommand& unsafe) {
    SubmissionResult result;
    result.outcome = Outcome::kRejected;
    result.detail = unsafe.what();
    return result;
  } catch (const ConnectionFailure& failure) {
    SubmissionResult result;
    result.outcome = Outcome::kUnreachable;
    result.detail = failure.what();
    return result;
  }
}

}  // namespace portrelay::submit
