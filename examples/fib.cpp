// fib(n) with one spawned task per call: a stress test of spawn and join.
//   fib [n] [workers]
#include <chrono>
#include <cstdio>
#include <pulse/pulse.hpp>

#include "args.hpp"

constexpr const char* usage = "usage: fib [n=27 (0-35)] [workers (1-256), default: hardware threads]\n";

pulse::task<long> fib(int n) {
  if (n < 2) co_return n;
  auto a = pulse::spawn(fib(n - 1));
  auto b = pulse::spawn(fib(n - 2));
  co_return co_await a + co_await b;
}

int main(int argc, char** argv) {
  const example::args args("fib", usage, argc, argv);
  const int n = args.integer(1, "n", 27, 0, 35);
  auto builder = pulse::runtime::builder();
  args.worker_threads(builder, 2);
  auto rt = builder.build();
  const auto start = std::chrono::steady_clock::now();
  const long r = rt.block_on(fib(n));
  const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start);
  // fib(n) spawns 2*fib(n+1)-1 tasks counting the root.
  long a = 0, b = 1;
  for (int i = 0; i < n + 1; ++i) { const long t = a + b; a = b; b = t; }
  const long tasks = 2 * a - 1;
  std::printf("fib(%d) = %ld: %ld tasks on %zu workers in %.1f ms (%.1f ns per task)\n", n, r,
              tasks, rt.worker_count(), ns.count() / 1e6, ns.count() / static_cast<double>(tasks));
}
