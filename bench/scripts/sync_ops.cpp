// One sync operation repeated n times in one task on a 1-worker runtime, for
// instruction counts under callgrind (bench/scripts/sync_callgrind.sh): the
// difference between two runs of different n is the cost of n operations.
//   sync_ops <channel|try|mutex|semaphore|oneshot|notify|pingpong> <n>
#include <pulse/pulse.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
int main(int argc, char** argv) {
  const int n = std::atoi(argv[2]);
  const char* what = argv[1];
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  rt.block_on([](const char* what, int n) -> pulse::task<> {
    if (!std::strcmp(what, "channel")) {        // one send + one recv, both ready
      auto [tx, rx] = pulse::make_channel<int>(1);
      for (int i = 0; i < n; ++i) { co_await tx.send(i); co_await rx.recv(); }
    } else if (!std::strcmp(what, "try")) {     // try_send + try_recv
      auto [tx, rx] = pulse::make_channel<int>(1);
      for (int i = 0; i < n; ++i) { tx.try_send(i); rx.try_recv(); }
    } else if (!std::strcmp(what, "mutex")) {   // uncontended lock + unlock
      pulse::mutex m;
      for (int i = 0; i < n; ++i) { auto g = co_await m.lock(); }
    } else if (!std::strcmp(what, "semaphore")) {
      pulse::semaphore s(1);
      for (int i = 0; i < n; ++i) { auto p = co_await s.acquire(); }
    } else if (!std::strcmp(what, "oneshot")) { // make, send, await (ready)
      for (int i = 0; i < n; ++i) { auto [tx, rx] = pulse::make_oneshot<int>(); tx.send(i); co_await rx; }
    } else if (!std::strcmp(what, "pingpong")) { // rendezvous round trip between two tasks: 2 suspensions
      auto [tx, rx] = pulse::make_channel<int>(0);
      auto [tx2, rx2] = pulse::make_channel<int>(0);
      auto h = pulse::spawn([](pulse::receiver<int> r, pulse::sender<int> s, int n) -> pulse::task<> {
        for (int i = 0; i < n; ++i) co_await s.send(*(co_await r.recv()));
      }(rx, tx2, n));
      for (int i = 0; i < n; ++i) { co_await tx.send(i); co_await rx2.recv(); }
      co_await h;
    } else if (!std::strcmp(what, "notify")) {  // notify_one stored, then consumed
      pulse::notify nt;
      for (int i = 0; i < n; ++i) { nt.notify_one(); co_await nt.notified(); }
    }
  }(what, n));
}
