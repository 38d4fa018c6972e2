// One worker, n tasks spawned and then joined (bench/scripts/callgrind_poll.sh).
#include <pulse/pulse.hpp>
#include <cstdlib>
#include <vector>
int main(int argc, char** argv) {
  const long n = std::atol(argv[1]);
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  rt.block_on([](long n) -> pulse::task<> {
    std::vector<pulse::join_handle<int>> hs;
    hs.reserve(n);
    for (long i = 0; i < n; ++i) hs.push_back(pulse::spawn([]() -> pulse::task<int> { co_return 1; }()));
    long s = 0;
    for (auto& h : hs) s += co_await h;
    if (s != n) std::abort();
  }(n));
}
