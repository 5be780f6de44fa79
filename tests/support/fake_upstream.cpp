#include "support/fake_upstream.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <stdexcept>
#include <string_view>

#include "support/base64.hpp"
#include "support/channel.hpp"
#include "support/dot_stuffing.hpp"

namespace portrelay::test {

namespace {

using std::chrono::milliseconds;

// Short enough that stop() is prompt, long enough not to spin.
constexpr milliseconds kStopPollInterval(50);
constexpr milliseconds kWriteTimeout(5000);
constexpr milliseconds kHandshakeTimeout(5000);
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxCommandLine = 64 * 1024;

std::string to_lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string to_upper(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

bool starts_with_ci(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && to_upper(text.substr(0, prefix.size())) == prefix;
}

// "a\nb" -> "a\r\nb\r\n": tests write replies without caring about CRLF.
std::string wire_reply(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  std::string out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.append(line);
    out += "\r\n";
    start = end + 1;
  }
  return out;
}

int reply_code(std::string_view reply) {
  if (reply.size() < 3) return 0;
  int code = 0;
  for (int i = 0; i < 3; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(reply[i]))) return 0;
    code = code * 10 + (reply[i] - '0');
  }
  return code;
}

// "<a@b> SIZE=1" after "FROM:" / "TO:" -> address "a@b", params "SIZE=1".
bool parse_path(std::string_view argument, std::string* address, std::string* params) {
  while (!argument.empty() && argument.front() == ' ') argument.remove_prefix(1);
  if (argument.empty() || argument.front() != '<') return false;
  std::size_t close = argument.find('>');
  if (close == std::string_view::npos) return false;
  *address = std::string(argument.substr(1, close - 1));
  std::string_view rest = argument.substr(close + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  *params = std::string(rest);
  return true;
}

}  // namespace

StageAction StageAction::reply_with(std::string reply) {
  StageAction action;
  action.reply = std::move(reply);
  return action;
}

StageAction StageAction::delayed(milliseconds delay, std::string reply) {
  StageAction action = reply_with(std::move(reply));
  action.delay = delay;
  return action;
}

StageAction StageAction::close_connection(milliseconds delay) {
  StageAction action;
  action.kind = Kind::kClose;
  action.delay = delay;
  return action;
}

StageAction StageAction::hang() {
  StageAction action;
  action.kind = Kind::kHang;
  return action;
}

StageAction StageAction::only(int n) const {
  StageAction action = *this;
  action.times = n;
  return action;
}

// One accepted connection: the SMTP state machine over a Channel.
class FakeUpstream::Session {
 public:
  Session(FakeUpstream& server, UniqueFd fd, std::size_t index)
      : server_(server), config_(server.config_), fd_(std::move(fd)), index_(index) {}

  void run();
  // Ends the session from outside: a blocked read returns at once and the peer sees a FIN.
  void interrupt();
  // Closes the socket (after a TLS close_notify). Called by the session thread when done.
  void close();

 private:
  // Outcome of answering at a stage: the reply code sent, or nullopt if the session must end.
  using Answer = std::optional<int>;

  bool start_tls();
  bool send(std::string_view bytes) { return channel_->write_all(bytes, kWriteTimeout); }
  // Waits the action's delay and carries out close/hang; true if a reply should follow.
  bool perform_before_reply(const StageAction& action);
  Answer answer(SmtpStage stage, std::string_view normal, const std::string& recipient = "");
  // Next command line without its line ending; nullopt once the peer closed or we stop.
  std::optional<std::string> next_line();
  // Data up to the terminating CRLF.CRLF, still dot-stuffed; nullopt on close/stop.
  std::optional<std::string> read_data();
  // Reads more input into `sink`; false on close, error or stop.
  bool read_more(std::string& sink);

  bool handle(const std::string& line);  // false: end the session
  bool handle_ehlo(const std::string& verb, std::string_view argument);
  bool handle_mail(std::string_view argument);
  bool handle_rcpt(std::string_view argument);
  bool handle_data();
  bool handle_starttls();
  bool handle_auth(std::string_view argument);
  bool handle_oauth(const std::string& mechanism, const std::string& decoded, bool closed,
                    bool failed);
  std::string ehlo_reply() const;
  void reset_transaction() {
    transaction_ = Transaction{};
    has_mail_ = false;
  }

  FakeUpstream& server_;
  const FakeUpstreamConfig& config_;
  std::mutex fd_mutex_;  // interrupt() must never touch a closed (maybe reused) descriptor
  UniqueFd fd_;
  std::size_t index_;
  std::unique_ptr<Channel> channel_;
  std::string input_;

  bool greeted_ = false;
  bool has_mail_ = false;
  std::string auth_user_;
  Transaction transaction_;
};

void FakeUpstream::Session::run() {
  if (config_.implicit_tls) {
    if (!start_tls()) return;
  } else {
    channel_ = std::make_unique<PlainChannel>(fd_.get());
  }
  if (!config_.send_greeting) return server_.wait_until_stopped();
  if (!server_.sleep_unless_stopped(config_.greeting_delay)) return;
  if (!answer(SmtpStage::kGreeting, wire_reply(config_.greeting))) return;
  while (auto line = next_line()) {
    server_.record_command(index_, *line);
    if (!handle(*line)) return;
  }
}

void FakeUpstream::Session::interrupt() {
  std::lock_guard lock(fd_mutex_);
  if (fd_.valid()) ::shutdown(fd_.get(), SHUT_RDWR);
}

void FakeUpstream::Session::close() {
  std::lock_guard lock(fd_mutex_);
  channel_.reset();
  fd_.reset();
}

bool FakeUpstream::Session::start_tls() {
  std::string error;
  auto tls = TlsChannel::accept(server_.tls_context_.get(), fd_.get(), kHandshakeTimeout, &error);
  if (!tls) {
    server_.record_tls_failure(error);
    return false;
  }
  channel_ = std::move(tls);
  return true;
}

bool FakeUpstream::Session::perform_before_reply(const StageAction& action) {
  if (!server_.sleep_unless_stopped(action.delay)) return false;
  if (action.kind == StageAction::Kind::kHang) server_.wait_until_stopped();
  return action.kind == StageAction::Kind::kReply;
}

FakeUpstream::Session::Answer FakeUpstream::Session::answer(SmtpStage stage,
                                                            std::string_view normal,
                                                            const std::string& recipient) {
  std::optional<StageAction> action = server_.take_action(stage, recipient);
  std::string reply = action ? wire_reply(action->reply) : std::string(normal);
  if (action) {
    if (!perform_before_reply(*action)) return std::nullopt;
  }
  if (!send(reply)) return std::nullopt;
  int code = reply_code(reply);
  if (code == 421) return std::nullopt;  // "service closing transmission channel"
  return code;
}

bool FakeUpstream::Session::read_more(std::string& sink) {
  char chunk[kReadChunk];
  while (!server_.stopping()) {
    ReadResult result = channel_->read(chunk, sizeof(chunk), kStopPollInterval);
    if (result.status == IoStatus::kOk) {
      sink.append(chunk, result.bytes);
      return true;
    }
    if (result.status != IoStatus::kTimeout) return false;
  }
  return false;
}

std::optional<std::string> FakeUpstream::Session::next_line() {
  std::size_t scanned = 0;
  while (true) {
    std::size_t newline = input_.find('\n', scanned);
    if (newline != std::string::npos) {
      std::size_t end = newline > 0 && input_[newline - 1] == '\r' ? newline - 1 : newline;
      std::string line = input_.substr(0, end);
      input_.erase(0, newline + 1);
      return line;
    }
    if (input_.size() > kMaxCommandLine) return std::nullopt;
    scanned = input_.size();
    if (!read_more(input_)) return std::nullopt;
  }
}

std::optional<std::string> FakeUpstream::Session::read_data() {
  // A virtual CRLF in front lets one search find the terminator even when the message is
  // empty (".\r\n" right after the 354). Searching only the new bytes (plus 4 of overlap)
  // keeps large messages linear.
  std::string data = "\r\n";
  data += input_;
  input_.clear();
  std::size_t search_from = 0;
  while (true) {
    std::size_t end = data.find("\r\n.\r\n", search_from);
    if (end != std::string::npos) {
      input_ = data.substr(end + 5);  // pipelined commands after the dot
      data.resize(end + 2);           // the CRLF before the dot belongs to the message
      return data.substr(2);
    }
    search_from = data.size() >= 4 ? data.size() - 4 : 0;
    if (!read_more(data)) return std::nullopt;
  }
}

bool FakeUpstream::Session::handle(const std::string& line) {
  std::size_t space = line.find(' ');
  std::string verb = to_upper(line.substr(0, space));
  std::string_view argument =
      space == std::string::npos ? std::string_view() : std::string_view(line).substr(space + 1);
  if (verb == "EHLO" || verb == "HELO") return handle_ehlo(verb, argument);
  if (verb == "MAIL") return handle_mail(argument);
  if (verb == "RCPT") return handle_rcpt(argument);
  if (verb == "DATA") return handle_data();
  if (verb == "STARTTLS") return handle_starttls();
  if (verb == "AUTH") return handle_auth(argument);
  if (verb == "RSET") {
    reset_transaction();
    return answer(SmtpStage::kRset, "250 2.0.0 Ok\r\n").has_value();
  }
  if (verb == "NOOP") return answer(SmtpStage::kNoop, "250 2.0.0 Ok\r\n").has_value();
  if (verb == "QUIT") {
    answer(SmtpStage::kQuit, "221 2.0.0 Bye\r\n");
    return false;
  }
  return send("502 5.5.2 Command not recognized\r\n");
}

std::string FakeUpstream::Session::ehlo_reply() const {
  std::vector<std::string> lines = config_.ehlo_lines;
  if (lines.empty()) lines.push_back("fake.upstream");
  if (config_.offer_starttls && !channel_->is_tls()) lines.push_back("STARTTLS");
  bool auth_allowed = channel_->is_tls() || !config_.auth_requires_tls;
  if (!config_.auth_mechanisms.empty() && auth_allowed) {
    std::string auth = "AUTH";
    for (const std::string& mechanism : config_.auth_mechanisms) auth += " " + mechanism;
    lines.push_back(auth);
  }
  std::string reply;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    reply += (i + 1 < lines.size() ? "250-" : "250 ") + lines[i] + "\r\n";
  }
  return reply;
}

bool FakeUpstream::Session::handle_ehlo(const std::string& verb, std::string_view argument) {
  if (argument.empty()) return send("501 5.5.4 Domain required\r\n");
  std::string domain = config_.ehlo_lines.empty() ? "fake.upstream" : config_.ehlo_lines[0];
  std::string normal = verb == "EHLO" ? ehlo_reply() : "250 " + domain + "\r\n";
  Answer code = answer(SmtpStage::kEhlo, normal);
  if (!code) return false;
  reset_transaction();
  greeted_ = *code / 100 == 2;
  return true;
}

bool FakeUpstream::Session::handle_mail(std::string_view argument) {
  if (!greeted_) return send("503 5.5.1 Send EHLO first\r\n");
  if (has_mail_) return send("503 5.5.1 Nested MAIL command\r\n");
  if (config_.require_auth && auth_user_.empty()) {
    return send("530 5.7.0 Authentication required\r\n");
  }
  Transaction transaction;
  if (!starts_with_ci(argument, "FROM:") ||
      !parse_path(argument.substr(5), &transaction.mail_from, &transaction.mail_params)) {
    return send("501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
  }
  Answer code = answer(SmtpStage::kMail, "250 2.1.0 Ok\r\n");
  if (!code) return false;
  if (*code / 100 == 2) {
    transaction_ = std::move(transaction);
    has_mail_ = true;
  }
  return true;
}

bool FakeUpstream::Session::handle_rcpt(std::string_view argument) {
  if (!has_mail_) return send("503 5.5.1 Need MAIL command\r\n");
  std::string address;
  std::string params;
  if (!starts_with_ci(argument, "TO:") || !parse_path(argument.substr(3), &address, &params)) {
    return send("501 5.5.4 Syntax: RCPT TO:<address>\r\n");
  }
  Answer code = answer(SmtpStage::kRcpt, "250 2.1.5 Ok\r\n", address);
  if (!code) return false;
  if (*code / 100 == 2) transaction_.rcpt_to.push_back(address);
  return true;
}

bool FakeUpstream::Session::handle_data() {
  if (!has_mail_ || transaction_.rcpt_to.empty()) {
    return send("503 5.5.1 No valid recipients\r\n");
  }
  Answer code = answer(SmtpStage::kData, "354 End data with <CR><LF>.<CR><LF>\r\n");
  if (!code) return false;
  if (*code != 354) return true;
  std::optional<std::string> raw = read_data();
  if (!raw) return false;
  Transaction transaction = std::move(transaction_);
  reset_transaction();
  transaction.raw_data = std::move(*raw);
  transaction.content = dot_unstuff(transaction.raw_data);
  transaction.connection = index_;
  transaction.tls = channel_->is_tls();
  transaction.auth_user = auth_user_;
  // The queue id is only known once recorded, so the normal reply is built in two steps.
  std::optional<StageAction> action = server_.take_action(SmtpStage::kDataEnd, "");
  std::string reply;
  if (action) {
    if (!perform_before_reply(*action)) return false;
    reply = wire_reply(action->reply);
    if (reply_code(reply) / 100 == 2) server_.record_transaction(std::move(transaction));
  } else {
    std::size_t id = server_.record_transaction(std::move(transaction));
    reply = "250 2.0.0 Ok: queued as " + std::to_string(id) + "\r\n";
  }
  return send(reply) && reply_code(reply) != 421;
}

bool FakeUpstream::Session::handle_starttls() {
  if (!config_.offer_starttls || !server_.tls_context_) {
    return send("502 5.5.1 STARTTLS not supported\r\n");
  }
  if (channel_->is_tls()) return send("503 5.5.1 TLS already active\r\n");
  std::optional<StageAction> action = server_.take_action(SmtpStage::kStartTls, "");
  std::string reply = action ? wire_reply(action->reply) : "220 2.0.0 Ready to start TLS\r\n";
  if (action) {
    if (!perform_before_reply(*action)) return false;
  }
  if (reply_code(reply) != 220) return send(reply) && reply_code(reply) != 421;
  if (config_.starttls_injection) reply += "250 injected\r\n";
  if (!send(reply)) return false;
  // Plaintext pipelined behind STARTTLS must not leak into the TLS session.
  input_.clear();
  if (!start_tls()) return false;
  greeted_ = false;
  auth_user_.clear();
  reset_transaction();
  return true;
}

bool FakeUpstream::Session::handle_auth(std::string_view argument) {
  if (config_.auth_mechanisms.empty()) return send("502 5.5.1 AUTH not supported\r\n");
  if (config_.auth_requires_tls && !channel_->is_tls()) {
    return send("538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  }
  if (!greeted_) return send("503 5.5.1 Send EHLO first\r\n");
  if (!auth_user_.empty()) return send("503 5.5.1 Already authenticated\r\n");
  std::size_t space = argument.find(' ');
  std::string mechanism = to_upper(argument.substr(0, space));
  std::optional<std::string> initial;
  if (space != std::string_view::npos) initial = std::string(argument.substr(space + 1));
  auto offered =
      std::find(config_.auth_mechanisms.begin(), config_.auth_mechanisms.end(), mechanism);
  const bool oauth = mechanism == "XOAUTH2" || mechanism == "OAUTHBEARER";
  if (offered == config_.auth_mechanisms.end() ||
      (mechanism != "PLAIN" && mechanism != "LOGIN" && !oauth)) {
    return send("504 5.5.4 Unrecognized authentication type\r\n");
  }

  // Returns the decoded client response, prompting with `challenge` unless it was given
  // inline. Sets `failed` and answers the client when the session should stop this AUTH.
  bool failed = false;
  bool closed = false;
  auto response = [&](std::optional<std::string> inline_value, const char* challenge) {
    std::string encoded;
    if (inline_value) {
      encoded = *inline_value;
    } else {
      if (!send(std::string("334 ") + challenge + "\r\n")) {
        closed = true;
        return std::string();
      }
      std::optional<std::string> line = next_line();
      if (!line) {
        closed = true;
        return std::string();
      }
      server_.record_command(index_, *line);
      encoded = *line;
    }
    if (encoded == "*") {
      failed = true;
      closed = !send("501 5.7.0 Authentication cancelled\r\n");
      return std::string();
    }
    std::optional<std::string> decoded = encoded == "=" ? std::string() : base64_decode(encoded);
    if (!decoded) {
      failed = true;
      closed = !send("501 5.5.2 Invalid base64 data\r\n");
      return std::string();
    }
    return *decoded;
  };

  AuthAttempt attempt;
  attempt.mechanism = mechanism;
  attempt.tls = channel_->is_tls();
  attempt.connection = index_;
  if (oauth) {
    std::string decoded = response(initial, "");
    return handle_oauth(mechanism, decoded, closed, failed);
  }
  if (mechanism == "PLAIN") {
    std::string decoded = response(initial, "");
    if (closed) return false;
    if (failed) return true;
    // authzid \0 authcid \0 passwd
    std::size_t first = decoded.find('\0');
    std::size_t second = first == std::string::npos ? first : decoded.find('\0', first + 1);
    if (second == std::string::npos) return send("501 5.5.2 Malformed PLAIN response\r\n");
    attempt.username = decoded.substr(first + 1, second - first - 1);
    attempt.password = decoded.substr(second + 1);
  } else {
    attempt.username = response(initial, "VXNlcm5hbWU6");  // "Username:"
    if (closed) return false;
    if (failed) return true;
    attempt.password = response(std::nullopt, "UGFzc3dvcmQ6");  // "Password:"
    if (closed) return false;
    if (failed) return true;
  }
  attempt.success =
      attempt.username == config_.auth_username && attempt.password == config_.auth_password;
  std::string username = attempt.username;
  bool success = attempt.success;
  server_.record_auth(std::move(attempt));
  Answer code =
      answer(SmtpStage::kAuth, success ? "235 2.7.0 Authentication successful\r\n"
                                       : "535 5.7.8 Authentication credentials invalid\r\n");
  if (!code) return false;
  if (*code == 235) auth_user_ = username;
  return true;
}

// The SASL string is compared whole against what a correct client sends for the
// configured user and current token, so a stray byte (a missing ^A, a wrong port) fails.
bool FakeUpstream::Session::handle_oauth(const std::string& mechanism, const std::string& decoded,
                                         bool closed, bool failed) {
  if (closed) return false;
  if (failed) return true;
  const std::string token = server_.auth_token();
  const std::string host = config_.oauth_host.empty() ? config_.host : config_.oauth_host;
  auto expected = [&](const std::string& bearer) {
    if (mechanism == "XOAUTH2")
      return "user=" + config_.auth_username +
             "\x01"
             "auth=Bearer " +
             bearer + "\x01\x01";
    return "n,a=" + config_.auth_username + ",\x01host=" + host +
           "\x01port=" + std::to_string(server_.port()) +
           "\x01"
           "auth=Bearer " +
           bearer + "\x01\x01";
  };
  AuthAttempt attempt;
  attempt.mechanism = mechanism;
  attempt.tls = channel_->is_tls();
  attempt.connection = index_;
  attempt.username = config_.auth_username;
  // Which token was sent: whatever follows "auth=Bearer " up to the next ^A.
  const std::size_t bearer = decoded.find("auth=Bearer ");
  if (bearer != std::string::npos) {
    const std::size_t start = bearer + 12;
    attempt.password = decoded.substr(start, decoded.find('\x01', start) - start);
  }
  attempt.success = !token.empty() && decoded == expected(token);
  const bool success = attempt.success;
  server_.record_auth(std::move(attempt));
  if (success) {
    Answer code = answer(SmtpStage::kAuth, "235 2.7.0 Accepted\r\n");
    if (!code) return false;
    if (*code == 235) auth_user_ = config_.auth_username;
    return true;
  }
  // base64 of {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}
  if (!send("334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29v"
            "Z2xlLmNvbS8ifQ==\r\n"))
    return false;
  std::optional<std::string> line = next_line();
  if (!line) return false;
  server_.record_command(index_, *line);
  const std::string acknowledgement = mechanism == "XOAUTH2" ? "" : "AQ==";
  if (*line != acknowledgement) return send("501 5.5.2 Expected the error acknowledgement\r\n");
  return send("535 5.7.8 Username and Password not accepted\r\n");
}

void FakeUpstream::set_auth_token(std::string token) {
  std::lock_guard lock(mutex_);
  auth_token_ = std::move(token);
}

std::string FakeUpstream::auth_token() const {
  std::lock_guard lock(mutex_);
  return auth_token_;
}

FakeUpstream::FakeUpstream(Config config) : config_(std::move(config)) {
  auth_token_ = config_.auth_token;
  std::map<std::string, StageAction> by_lowercase_address;
  for (auto& [address, action] : config_.rcpt_overrides) {
    by_lowercase_address[to_lower(address)] = std::move(action);
  }
  config_.rcpt_overrides = std::move(by_lowercase_address);
  if (config_.implicit_tls || config_.offer_starttls) {
    if (config_.cert_file.empty() || config_.key_file.empty()) {
      throw std::invalid_argument("FakeUpstream: TLS needs cert_file and key_file");
    }
    tls_context_ = make_server_tls_context(config_.cert_file, config_.key_file);
  }
  // Room for a relay that opens hundreds of connections at once (300 concurrent
  // submissions): a full accept queue drops SYNs, and the retry comes after a second.
  listener_ = listen_on(config_.host, config_.port, 512, &port_);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

FakeUpstream::~FakeUpstream() { stop(); }

void FakeUpstream::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  // Wakes the accept thread's poll() at once (Linux), instead of after its next interval.
  if (listener_.valid()) ::shutdown(listener_.get(), SHUT_RDWR);
  if (accept_thread_.joinable()) accept_thread_.join();
  // The accept thread is gone, so no new sessions appear.
  std::vector<std::thread> threads;
  std::vector<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(mutex_);
    threads.swap(session_threads_);
    sessions.swap(sessions_);
  }
  for (auto& session : sessions) session->interrupt();
  for (std::thread& thread : threads) thread.join();
  listener_.reset();
}

void FakeUpstream::accept_loop() {
  while (!stopping()) {
    pollfd pfd{listener_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(kStopPollInterval.count())) <= 0) continue;
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!fd.valid()) continue;
    disable_nagle(fd.get());
    std::size_t index = add_connection();
    auto session = std::make_shared<Session>(*this, std::move(fd), index);
    std::lock_guard lock(mutex_);
    sessions_.push_back(session);
    session_threads_.emplace_back([this, session, index] {
      try {
        session->run();
      } catch (const std::exception& error) {
        // An escaping exception would terminate the whole test binary.
        std::fprintf(stderr, "FakeUpstream session %zu: %s\n", index, error.what());
      }
      session->close();
      connection_closed();
    });
  }
}

std::optional<StageAction> FakeUpstream::take_action(SmtpStage stage,
                                                     const std::string& recipient) {
  std::lock_guard lock(mutex_);
  auto consume = [](auto& map, auto it) -> std::optional<StageAction> {
    StageAction action = it->second;
    if (it->second.times > 0 && --it->second.times == 0) map.erase(it);
    return action;
  };
  if (stage == SmtpStage::kRcpt) {
    auto it = config_.rcpt_overrides.find(to_lower(recipient));
    if (it != config_.rcpt_overrides.end()) return consume(config_.rcpt_overrides, it);
  }
  auto it = config_.overrides.find(stage);
  if (it != config_.overrides.end()) return consume(config_.overrides, it);
  return std::nullopt;
}

void FakeUpstream::set_override(SmtpStage stage, StageAction action) {
  std::lock_guard lock(mutex_);
  config_.overrides[stage] = std::move(action);
}

void FakeUpstream::clear_override(SmtpStage stage) {
  std::lock_guard lock(mutex_);
  config_.overrides.erase(stage);
}

void FakeUpstream::set_rcpt_override(const std::string& address, StageAction action) {
  std::lock_guard lock(mutex_);
  config_.rcpt_overrides[to_lower(address)] = std::move(action);
}

bool FakeUpstream::sleep_unless_stopped(milliseconds duration) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, duration, [this] { return stopping_; });
  return !stopping_;
}

void FakeUpstream::wait_until_stopped() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [this] { return stopping_; });
}

bool FakeUpstream::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

std::size_t FakeUpstream::add_connection() {
  std::lock_guard lock(mutex_);
  commands_.emplace_back();
  ++open_connections_;
  changed_.notify_all();
  return commands_.size() - 1;
}

void FakeUpstream::connection_closed() {
  std::lock_guard lock(mutex_);
  --open_connections_;
  changed_.notify_all();
}

void FakeUpstream::record_command(std::size_t connection, const std::string& line) {
  std::lock_guard lock(mutex_);
  commands_.at(connection).push_back(line);
}

std::size_t FakeUpstream::record_transaction(Transaction transaction) {
  std::lock_guard lock(mutex_);
  transactions_.push_back(std::move(transaction));
  changed_.notify_all();
  return transactions_.size();
}

void FakeUpstream::record_auth(AuthAttempt attempt) {
  std::lock_guard lock(mutex_);
  auth_attempts_.push_back(std::move(attempt));
}

void FakeUpstream::record_tls_failure(const std::string& error) {
  std::lock_guard lock(mutex_);
  tls_failures_.push_back(error);
}

std::vector<FakeUpstream::Transaction> FakeUpstream::transactions() const {
  std::lock_guard lock(mutex_);
  return transactions_;
}

std::size_t FakeUpstream::connection_count() const {
  std::lock_guard lock(mutex_);
  return commands_.size();
}

std::vector<std::string> FakeUpstream::commands(std::size_t connection) const {
  std::lock_guard lock(mutex_);
  return connection < commands_.size() ? commands_[connection] : std::vector<std::string>{};
}

std::vector<std::vector<std::string>> FakeUpstream::all_commands() const {
  std::lock_guard lock(mutex_);
  return commands_;
}

std::vector<FakeUpstream::AuthAttempt> FakeUpstream::auth_attempts() const {
  std::lock_guard lock(mutex_);
  return auth_attempts_;
}

std::vector<std::string> FakeUpstream::tls_failures() const {
  std::lock_guard lock(mutex_);
  return tls_failures_;
}

std::size_t FakeUpstream::open_connections() const {
  std::lock_guard lock(mutex_);
  return open_connections_;
}

bool FakeUpstream::wait_for_transactions(std::size_t count, milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return transactions_.size() >= count; });
}

bool FakeUpstream::wait_for_connections(std::size_t count, milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return commands_.size() >= count; });
}

bool FakeUpstream::wait_for_idle(milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return open_connections_ == 0; });
}

}  // namespace portrelay::test
