#pragma once
// spool::ControlServer: the daemon's end of `portrelay queue retry|delete|bounce`.
//
// A Unix stream socket at <spool>/control (owner only: whoever may touch the spool files
// may use it). One request line per connection, one answer line back, then close:
//   retry <id>|all   ->  "ok 3 message(s) due now"
//   delete <id>      ->  "ok <id> deleted"
//   bounce <id>      ->  "ok <id> bounced" / "error no message <id> in the queue"
//   reload           ->  "ok <what was applied>" / "error <why the old configuration is kept>"
//                        (`portrelay reload`; answered by the handler set_reload installs)
// Listing needs no daemon: `queue list` reads the files (spool_directory.hpp).
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "portrelay/net/loop.hpp"
#include "portrelay/net/pipe_listener.hpp"
#include "portrelay/spool/spool.hpp"

namespace portrelay::spool {

// Applies one request line to the spool; the answer line without its newline. Pure glue,
// tested with the spool.
std::string control_request(Spool& spool, const std::string& line);

class ControlServer {
 public:
  ControlServer(net::Loop& loop, Spool& spool, std::string path);
  ~ControlServer();
  // Binds the socket (replacing a stale one: the caller holds the spool lock). Throws
  // std::runtime_error.
  void start();
  void stop();
  // Answers the "reload" request: runs on the loop and returns the answer line. Unset: the
  // request is answered "error reload is not available".
  void set_reload(std::function<std::string()> reload) { reload_ = std::move(reload); }

 private:
  struct Client;
  void accept(std::unique_ptr<net::PipeStream> pipe);
  void on_read(Client* client, std::string_view data, int status);
  void finish(Client* client);

  net::Loop& loop_;
  Spool& spool_;
  std::string path_;
  net::PipeListener listener_;
  std::map<Client*, std::unique_ptr<Client>> clients_;
  std::function<std::string()> reload_;
};

}  // namespace portrelay::spool
