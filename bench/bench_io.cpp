// I/O round trips: io_uring vs epoll backend.
//
//   build/release/bench/bench_io [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
//
// BM_tcp_echo/<backend>/clients:C/workers:W: C connections over loopback to
// an echo task each, in one runtime of W workers; every client writes 64 bytes and
// reads them back, in a loop. Time per round trip (all clients together:
// items_per_second is round trips per second). BM_unix_pingpong: one pair
// of Unix sockets, two tasks bouncing one byte.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <string>
#include <vector>

#include <pulse/pulse.hpp>

namespace {

pulse::runtime make(pulse::io_backend b, std::size_t workers = 2) {
  return pulse::runtime::builder().worker_threads(workers).io_backend(b).build();
}

pulse::task<void> echo(pulse::tcp_stream s) {
  std::byte buf[4096];
  for (;;) {
    const std::size_t n = co_await s.read(buf);
    if (n == 0) co_return;
    co_await s.write_all(std::span(buf, n));
  }
}

pulse::task<void> client_rounds(pulse::tcp_stream& s, std::int64_t rounds) {
  std::byte msg[64] = {};
  std::byte back[64];
  for (std::int64_t i = 0; i < rounds; ++i) {
    co_await s.write_all(msg);
    co_await s.read_exact(back);
  }
}

pulse::task<void> all_rounds(std::vector<pulse::tcp_stream>& cs, std::int64_t rounds) {
  std::vector<pulse::join_handle<void>> hs;
  for (auto& c : cs) hs.push_back(pulse::spawn(client_rounds(c, rounds)));
  for (auto& h : hs) co_await h;
}

pulse::task<std::vector<pulse::tcp_stream>> setup(const pulse::tcp_listener& l, int clients) {
  std::vector<pulse::tcp_stream> cs;
  for (int i = 0; i < clients; ++i) {
    auto c = pulse::spawn(pulse::tcp_stream::connect(l.local_address()));
    auto s = co_await l.accept();
    s.set_nodelay(true);
    pulse::spawn(echo(std::move(s))).detach();
    cs.push_back(co_await c);
    cs.back().set_nodelay(true);
  }
  co_return cs;
}

void BM_tcp_echo(benchmark::State& state, pulse::io_backend backend) {
  const int clients = static_cast<int>(state.range(0));
  auto rt = make(backend, static_cast<std::size_t>(state.range(1)));
  auto l = pulse::tcp_listener::bind("127.0.0.1:0");
  auto cs = rt.block_on(setup(l, clients));
  constexpr std::int64_t batch = 500;
  while (state.KeepRunningBatch(batch * clients)) rt.block_on(all_rounds(cs, batch));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(pulse::to_string(rt.io_backend()));
}

void BM_unix_pingpong(benchmark::State& state, pulse::io_backend backend) {
  auto rt = make(backend);
  auto [a, b] = pulse::unix_stream::pair();
  constexpr std::int64_t batch = 1000;
  while (state.KeepRunningBatch(batch))
    rt.block_on([](pulse::unix_stream& a, pulse::unix_stream& b, std::int64_t n) -> pulse::task<void> {
      auto peer = pulse::spawn([](pulse::unix_stream& b, std::int64_t n) -> pulse::task<void> {
        std::byte x[1];
        for (std::int64_t i = 0; i < n; ++i) {
          co_await b.read_exact(x);
          co_await b.write_all(x);
        }
      }(b, n));
      std::byte x[1] = {std::byte{1}};
      for (std::int64_t i = 0; i < n; ++i) {
        co_await a.write_all(x);
        co_await a.read_exact(x);
      }
      co_await peer;
    }(a, b, batch));
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(pulse::to_string(rt.io_backend()));
}

}  // namespace

BENCHMARK_CAPTURE(BM_tcp_echo, io_uring, pulse::io_backend::io_uring)
    ->ArgNames({"clients", "workers"})->Args({1, 1})->Args({1, 2})->Args({64, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_tcp_echo, epoll, pulse::io_backend::epoll)
    ->ArgNames({"clients", "workers"})->Args({1, 1})->Args({1, 2})->Args({64, 2})->UseRealTime();
BENCHMARK_CAPTURE(BM_unix_pingpong, io_uring, pulse::io_backend::io_uring)->UseRealTime();
BENCHMARK_CAPTURE(BM_unix_pingpong, epoll, pulse::io_backend::epoll)->UseRealTime();
