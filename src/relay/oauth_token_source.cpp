#include "portrelay/relay/oauth_token_source.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

extern char** environ;

namespace portrelay::relay {
namespace {

using Token = OAuthTokenSource::Token;

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

Token problem(std::string text) { return Token{"", std::move(text)}; }

}  // namespace

Token run_token_command(const std::string& command, std::chrono::milliseconds timeout) {
  const std::vector<std::string> words = split_on_spaces(command);
  if (words.empty()) return problem("oauth_token_command is empty");
  const std::string& program = words.front();

  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0)
    return problem(std::string("cannot create a pipe: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  std::vector<char*> argv;
  for (const std::string& word : words) argv.push_back(const_cast<char*>(word.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawn_error =
      ::posix_spawnp(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipe_fds[1]);
  if (spawn_error != 0) {
    ::close(pipe_fds[0]);
    return problem("cannot run oauth_token_command " + program + ": " + std::strerror(spawn_error));
  }

  // Read until EOF or the deadline; the output is bounded, the wait too.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string output;
  bool timed_out = false;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd descriptor{pipe_fds[0], POLLIN, 0};
    const int ready = ::poll(&descriptor, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) continue;  // the deadline check above ends it
    char buffer[4096];
    const ssize_t got = ::read(pipe_fds[0], buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (output.size() < kMaxOutput) output.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(pipe_fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return problem("oauth_token_command " + program + " did not finish within " +
                   config::format_duration(timeout) + " (killed)");
  }
  if (WIFSIGNALED(status))
    return problem("oauth_token_command " + program + " killed by signal " +
                   std::to_string(WTERMSIG(status)));
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    return problem("oauth_token_command " + program + " exited with status " +
                   std::to_string(WEXITSTATUS(status)));
  std::string token = first_line(output);
  if (token.empty()) return problem("oauth_token_command " + program + " printed no token");
  return Token{std::move(token), ""};
}

OAuthTokenSource::OAuthTokenSource(const config::Credentials& credentials,
                                   std::chrono::milliseconds command_timeout)
    : file_(credentials.oauth_token_file),
      command_(credentials.oauth_token_command),
      lifetime_(credentials.oauth_token_lifetime),
      command_timeout_(command_timeout) {}

Token OAuthTokenSource::read_source() const {
  if (!command_.empty()) return run_token_command(command_, command_timeout_);
  std::ifstream file(file_);
  std::string line;
  if (!file || !std::getline(file, line)) return problem("cannot read oauth_token_file " + file_);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.empty()) return problem("oauth_token_file " + file_ + " has an empty first line");
  return Token{std::move(line), ""};
}

Token OAuthTokenSource::current() {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (cached_ && now - read_at_ < lifetime_) return Token{*cached_, ""};
  Token token = read_source();
  if (token.problem.empty()) {
    cached_ = token.value;
    read_at_ = now;
  } else {
    cached_.reset();  // never keep using an expired token because its source broke
  }
  return token;
}

void OAuthTokenSource::invalidate() {
  std::lock_guard lock(mutex_);
  cached_.reset();
}

}  // namespace portrelay::relay
