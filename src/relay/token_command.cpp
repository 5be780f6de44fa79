#include "portrelay/relay/token_command.hpp"

#include <signal.h>

#include <sstream>
#include <vector>

#include "portrelay/config/config.hpp"

namespace portrelay::relay {
namespace {

// Enough for any real access token (Microsoft's are about 2 KB); more is not a token.
constexpr std::size_t kMaxOutput = 64 * 1024;

std::string first_line(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::vector<std::string> split_on_spaces(const std::string& command) {
  std::vector<std::string> words;
  std::istringstream stream(command);
  for (std::string word; stream >> word;) words.push_back(word);
  return words;
}

}  // namespace

// The process handle must stay open until the child is reaped (closing it earlier makes
// libuv forget the pid, and the child would stay a zombie), which can be after the
// TokenCommand is gone: the handle lives in this box, freed in its close callback.
struct TokenCommand::Child {
  uv_process_t process{};
  TokenCommand* owner = nullptr;  // null once the run was given up
};

TokenCommand::TokenCommand(net::Loop& loop, std::string command, std::chrono::milliseconds timeout)
    : loop_(loop),
      command_(std::move(command)),
      timeout_(timeout),
      output_pipe_(this),
      deadline_(loop.uv()) {}

TokenCommand::~TokenCommand() { abandon(); }

OAuthToken TokenCommand::problem(std::string text) const { return OAuthToken{"", std::move(text)}; }

std::optional<OAuthToken> TokenCommand::start(Done done) {
  const std::vector<std::string> words = split_on_spaces(command_);
  if (words.empty()) return problem("oauth_token_command is empty");
  program_ = words.front();

  uv_pipe_init(loop_.uv(), output_pipe_.get(), 0);
  output_pipe_.set_initialized();
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;  // libuv opens /dev/null for it
  stdio[1].flags = static_cast<uv_stdio_flags>(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = output_pipe_.as_stream();
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  std::vector<char*> argv;
  for (const std::string& word : words) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);
  uv_process_options_t options{};
  options.file = program_.c_str();
  options.args = argv.data();
  options.exit_cb = &TokenCommand::on_exit;
  options.stdio = stdio;
  options.stdio_count = 3;
  // setsid(): the command leads a process group of its own, which the deadline kills.
  options.flags = UV_PROCESS_DETACHED;

  auto* child = new Child;
  child->owner = this;
  child->process.data = child;
  const int error = uv_spawn(loop_.uv(), &child->process, &options);
  if (error != 0) {
    // The handle was initialised all the same and must be closed.
    uv_close(reinterpret_cast<uv_handle_t*>(&child->process),
             [](uv_handle_t* handle) { delete static_cast<Child*>(handle->data); });
    output_pipe_.close();
    return problem("cannot run oauth_token_command " + program_ + ": " + uv_strerror(error));
  }
  child_ = child;
  pid_ = child->process.pid;
  done_ = std::move(done);
  uv_read_start(
      output_pipe_.as_stream(),
      [](uv_handle_t* handle, std::size_t, uv_buf_t* buffer) {
        TokenCommand* self = net::UvHandle<uv_pipe_t, TokenCommand>::owner_of(handle);
        *buffer = self ? uv_buf_init(self->read_buffer_, sizeof self->read_buffer_)
                       : uv_buf_init(nullptr, 0);
      },
      [](uv_stream_t* stream, ssize_t size, const uv_buf_t* buffer) {
        if (TokenCommand* self = net::UvHandle<uv_pipe_t, TokenCommand>::owner_of(stream))
          self->on_output(size, buffer);
      });
  deadline_.start(timeout_, [this]() {
    abandon();
    finish(problem("oauth_token_command " + program_ + " did not finish within " +
                   config::format_duration(timeout_) + " (killed)"));
  });
  return std::nullopt;
}

void TokenCommand::on_output(ssize_t size, const uv_buf_t* buffer) {
  if (size > 0) {
    if (output_.size() < kMaxOutput) output_.append(buffer->base, static_cast<std::size_t>(size));
    return;
  }
  if (size == 0) return;  // EAGAIN
  output_closed_ = true;  // EOF, or an error: either way nothing more comes
  output_pipe_.close();
  finish_if_done();
}

void TokenCommand::on_exit(uv_process_t* process, int64_t exit_status, int term_signal) {
  auto* child = static_cast<Child*>(process->data);
  TokenCommand* self = child->owner;
  uv_close(reinterpret_cast<uv_handle_t*>(process),
           [](uv_handle_t* handle) { delete static_cast<Child*>(handle->data); });
  if (!self) return;  // given up and killed; now reaped
  self->child_ = nullptr;
  self->exited_ = true;
  self->exit_status_ = exit_status;
  self->term_signal_ = term_signal;
  self->finish_if_done();
}

// Done when the process has exited and its output is closed (a child it left behind
// holding the pipe keeps the run going, up to the deadline).
void TokenCommand::finish_if_done() {
  if (!exited_ || !output_closed_) return;
  deadline_.stop();
  if (term_signal_ != 0)
    return finish(problem("oauth_token_command " + program_ + " killed by signal " +
                          std::to_string(term_signal_)));
  if (exit_status_ != 0)
    return finish(problem("oauth_token_command " + program_ + " exited with status " +
                          std::to_string(exit_status_)));
  std::string token = first_line(output_);
  if (token.empty())
    return finish(problem("oauth_token_command " + program_ + " printed no token"));
  finish(OAuthToken{std::move(token), ""});
}

void TokenCommand::finish(OAuthToken token) {
  if (finished_) return;
  finished_ = true;
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(std::move(token));
}

void TokenCommand::stop() {
  abandon();
  done_ = nullptr;
}

void TokenCommand::abandon() {
  deadline_.stop();
  output_pipe_.close();
  if (!child_) return;
  // The whole group: what the command started dies with it. The exit callback reaps it.
  ::kill(-pid_, SIGKILL);
  child_->owner = nullptr;
  child_ = nullptr;
}

}  // namespace portrelay::relay
