// A minimal HTTP/1.1 server that answers every request with "Hello, World!"
// and keeps connections alive (pipelined requests included).
//
//   http_hello [port] [workers]      default port 8080 on 127.0.0.1, hardware threads
//
// Prints "listening on <address>" once it accepts connections (port 0 picks
// a free one). Runs until killed. Requests are not parsed beyond finding
// their end (a blank line) and "Connection: close"; bodies are not supported.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>

#include <pulse/pulse.hpp>

#include "args.hpp"

namespace {

constexpr std::string_view response =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "\r\n"
    "Hello, World!";

bool wants_close(std::string_view head) {
  // Header names are case-insensitive; HTTP/1.1 clients send "close" to end.
  for (std::size_t i = 0; (i = head.find(':', i)) != std::string_view::npos; ++i) {
    const std::size_t line = head.rfind('\n', i) + 1;
    std::string name(head.substr(line, i - line));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    if (name != "connection") continue;
    const std::size_t end = head.find('\r', i);
    std::string value(head.substr(i + 1, end - i - 1));
    std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
    return value.find("close") != std::string::npos;
  }
  return false;
}

pulse::task<void> serve(pulse::tcp_stream s) {
  char buf[8192];
  std::size_t have = 0;
  std::string out;
  try {
    for (;;) {
      const std::size_t n = co_await s.read(std::as_writable_bytes(std::span(buf + have, sizeof buf - have)));
      if (n == 0) co_return;
      have += n;
      // Answer every complete request in the buffer with one write.
      std::size_t start = 0;
      bool close = false;
      out.clear();
      for (;;) {
        const std::string_view pending(buf + start, have - start);
        const std::size_t end = pending.find("\r\n\r\n");
        if (end == std::string_view::npos) break;
        out += response;
        close |= wants_close(pending.substr(0, end));
        start += end + 4;
      }
      if (!out.empty()) co_await s.write_all(std::as_bytes(std::span(out.data(), out.size())));
      if (close) co_return;
      std::memmove(buf, buf + start, have - start);
      have -= start;
      if (have == sizeof buf) co_return;  // a request head larger than the buffer
    }
  } catch (const std::system_error&) {
    // The client went away mid-request: only this connection ends.
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
    const example::args args("http_hello", "usage: http_hello [port=8080 (0-65535)] [workers (1-256)]\n", argc,
                             argv);
    const std::string port = std::to_string(args.integer(1, "port", 8080, 0, 65535));
    auto builder = pulse::runtime::builder();
    args.worker_threads(builder, 2);
    auto rt = builder.build();
    auto listener = pulse::tcp_listener::bind("127.0.0.1:" + port);
    std::printf("listening on %s (%s)\n", listener.local_address().to_string().c_str(),
                pulse::to_string(rt.io_backend()));
    std::fflush(stdout);
    rt.block_on(accept_loop(std::move(listener)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_hello: %s\n", e.what());
    return 1;
  }
}
