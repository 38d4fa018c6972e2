// Consumer smoke test: the umbrella header, spawn, join and block_on work
// from outside the source tree. fib(27) = 196418.
#include <pulse/pulse.hpp>
#include <pulse/version.hpp>

#include <cstdio>
#include <cstring>

pulse::task<long> fib(int n) {
  if (n < 2) co_return n;
  auto a = pulse::spawn(fib(n - 1));
  auto b = pulse::spawn(fib(n - 2));
  co_return co_await a + co_await b;
}

int main() {
  if (std::strcmp(pulse::version(), PULSE_VERSION_STRING) != 0) {
    std::printf("library version %s != header version %s\n", pulse::version(), PULSE_VERSION_STRING);
    return 1;
  }
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  long r = rt.block_on(fib(27));
  std::printf("pulse %s: fib(27) = %ld\n", pulse::version(), r);
  return r == 196418 ? 0 : 1;
}
