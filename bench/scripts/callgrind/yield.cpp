// One worker, one task yielding n times (bench/scripts/callgrind_poll.sh).
#include <pulse/pulse.hpp>
#include <cstdlib>
int main(int argc, char** argv) {
  const long n = std::atol(argv[1]);
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  rt.block_on([](long n) -> pulse::task<> {
    for (long i = 0; i < n; ++i) co_await pulse::yield_now();
  }(n));
}
