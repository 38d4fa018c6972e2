// The smallest Pulse program: a runtime, a few spawned tasks, a timer.
#include <chrono>
#include <cstdio>
#include <vector>
#include <pulse/pulse.hpp>

using namespace std::chrono_literals;

pulse::task<int> square_later(int x) {
  co_await pulse::sleep_for(10ms);
  co_return x * x;
}

pulse::task<int> sum_of_squares(int n) {
  std::vector<pulse::join_handle<int>> handles;
  for (int i = 1; i <= n; ++i) handles.push_back(pulse::spawn(square_later(i)));
  int sum = 0;
  for (auto& h : handles) sum += co_await h;  // all sleep concurrently
  co_return sum;
}

int main() {
  auto rt = pulse::runtime::builder().worker_threads(2).build();
  const auto start = std::chrono::steady_clock::now();
  const int sum = rt.block_on(sum_of_squares(100));
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  std::printf("sum of squares 1..100 = %d (100 tasks slept 10 ms each, in %.1f ms total)\n", sum,
              ms.count());
  return sum == 338350 ? 0 : 1;
}
