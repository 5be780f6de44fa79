// portrelay_bench_sink: the benchmarks' upstream for the TLS measurements. A SinkServer
// (the same SMTP code as the relay) on 127.0.0.1, plain or implicit TLS, that counts messages
// and TLS handshakes. With --tls it makes a throw-away CA and certificate in --dir (the relay
// verifies against that CA). Prints "PORT <port> CA <ca-file>" once listening; on SIGUSR1
// prints the counters so far ("messages=<n> handshakes=<m>", so one sink serves several runs);
// on SIGTERM or SIGINT prints them and exits.
//
//   portrelay_bench_sink [--tls] [--dir DIR] [--port PORT]
#include <uv.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "portrelay/demo/sink_server.hpp"
#include "portrelay/demo/test_pki.hpp"
#include "portrelay/tls/context.hpp"

namespace {

struct Arguments {
  bool tls = false;
  std::string dir = "/tmp/portrelay-bench-sink";
  std::uint16_t port = 0;
};

bool parse(int argc, char** argv, Arguments& arguments) {
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument == "--tls") {
      arguments.tls = true;
    } else if (argument == "--dir" && i + 1 < argc) {
      arguments.dir = argv[++i];
    } else if (argument == "--port" && i + 1 < argc) {
      arguments.port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    } else {
      return false;
    }
  }
  return true;
}

void print_counters(const portrelay::demo::SinkServer& sink) {
  std::cout << "messages=" << sink.messages() << " handshakes=" << sink.tls_handshakes()
            << std::endl;
}

}  // namespace

int main(int argc, char** argv) {
  Arguments arguments;
  if (!parse(argc, argv, arguments)) {
    std::cerr << "usage: portrelay_bench_sink [--tls] [--dir DIR] [--port PORT]\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  uv_loop_t* loop = uv_default_loop();

  portrelay::demo::SinkOptions options;
  options.port = arguments.port;
  std::string ca_file = "-";
  if (arguments.tls) {
    auto pki = portrelay::tls::generate_test_pki(arguments.dir);
    options.implicit_tls = true;
    options.tls = portrelay::tls::Context::server({pki.good_cert, pki.good_key});
    ca_file = pki.ca_cert;
  }
  auto sink = std::make_unique<portrelay::demo::SinkServer>(loop, options);
  if (int rc = sink->start(); rc != 0) {
    std::cerr << "portrelay_bench_sink: cannot listen: " << uv_strerror(rc) << "\n";
    return 1;
  }
  std::cout << "PORT " << sink->port() << " CA " << ca_file << std::endl;

  struct StopContext {
    std::unique_ptr<portrelay::demo::SinkServer>* sink;
    uv_signal_t term{}, interrupt{}, report{};
  } context{&sink};
  auto on_signal = [](uv_signal_t* handle, int) {
    auto* context = static_cast<StopContext*>(handle->data);
    auto& sink = *context->sink;
    print_counters(*sink);
    sink.reset();  // closes the listener and every session
    for (auto* signal : {&context->term, &context->interrupt, &context->report})
      uv_close(reinterpret_cast<uv_handle_t*>(signal), nullptr);
  };
  for (auto [handle, signum] : {std::pair{&context.term, SIGTERM}, {&context.interrupt, SIGINT}}) {
    uv_signal_init(loop, handle);
    handle->data = &context;
    uv_signal_start(handle, on_signal, signum);
  }
  uv_signal_init(loop, &context.report);
  context.report.data = &context;
  uv_signal_start(
      &context.report,
      [](uv_signal_t* handle, int) {
        auto* context = static_cast<StopContext*>(handle->data);
        print_counters(**context->sink);
      },
      SIGUSR1);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}
