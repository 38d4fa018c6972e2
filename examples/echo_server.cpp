// A TCP echo server: every connection gets back what it sends.
//
//   echo_server [address] [workers]      default 127.0.0.1:7000, hardware threads
//
// Prints "listening on <address>" once it accepts connections (port 0 picks
// a free one). Runs until killed.
#include <cstdio>
#include <exception>
#include <string>

#include <pulse/pulse.hpp>

#include "args.hpp"

namespace {

pulse::task<void> serve(pulse::tcp_stream s) {
  std::byte buf[16 * 1024];
  try {
    for (;;) {
      const std::size_t n = co_await s.read(buf);
      if (n == 0) co_return;  // the client closed its side
      co_await s.write_all(std::span(buf, n));
    }
  } catch (const std::system_error& e) {
    // A client that resets its connection ends only its own task.
    std::fprintf(stderr, "echo_server: %s\n", e.what());
  }
}

pulse::task<void> accept_loop(pulse::tcp_listener listener) {
  for (;;) {
    pulse::tcp_stream s = co_await listener.accept();
    s.set_nodelay(true);
    pulse::spawn(serve(std::move(s))).detach();
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string addr = argc > 1 ? argv[1] : "127.0.0.1:7000";
    auto builder = pulse::runtime::builder();
    const example::args args("echo_server", "usage: echo_server [address=127.0.0.1:7000] [workers (1-256)]\n",
                             argc, argv);
    args.worker_threads(builder, 2);
    auto rt = builder.build();
    auto listener = pulse::tcp_listener::bind(addr);
    std::printf("listening on %s (%s)\n", listener.local_address().to_string().c_str(),
                pulse::to_string(rt.io_backend()));
    std::fflush(stdout);
    rt.block_on(accept_loop(std::move(listener)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
