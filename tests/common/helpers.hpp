// Shared helpers for the Pulse test suite.
#pragma once

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include <pulse/pulse.hpp>

// ------------------------------------------------------- sanitizer scaling ---

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define PULSE_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define PULSE_TEST_SANITIZED 1
#endif
#endif
#ifndef PULSE_TEST_SANITIZED
#define PULSE_TEST_SANITIZED 0
#endif

#if defined(__SANITIZE_THREAD__)
#define PULSE_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PULSE_TEST_TSAN 1
#endif
#endif
#ifndef PULSE_TEST_TSAN
#define PULSE_TEST_TSAN 0
#endif

namespace pulse_test {

inline constexpr bool sanitized = PULSE_TEST_SANITIZED != 0;
inline constexpr bool tsan = PULSE_TEST_TSAN != 0;

/// The size a release build uses, divided by 10 under a sanitizer (which
/// makes everything 5-20x slower), so the suite stays fast everywhere.
constexpr std::size_t scaled(std::size_t release_size, std::size_t divisor = 10) noexcept {
  return sanitized ? (release_size / divisor ? release_size / divisor : 1) : release_size;
}

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

/// Depth for tests of long or deep await chains. g++ 12 turns symmetric
/// transfer into a tail call only with sibling-call optimisation, and neither
/// ASan (its use-after-scope instrumentation; -fno-sanitize-address-use-after-scope
/// restores the tail call) nor TSan (__tsan_func_exit after every call) lets
/// it happen: each await then costs real stack, and a worker's 8 MiB overflow
/// somewhere below 10,000 levels under ASan. So sanitizer builds check these
/// chains for correctness at a depth that fits; release builds check the
/// "no stack growth" property at full size.
constexpr std::size_t await_depth(std::size_t release_depth) noexcept {
  return sanitized ? (release_depth < 2'000 ? release_depth : 2'000) : release_depth;
}

// ------------------------------------------------------ lifetime counting ---

/// Counts constructions and destructions of `tracked` objects.
struct lifetime_counter {
  std::atomic<long> constructed{0};
  std::atomic<long> destroyed{0};
  long live() const noexcept { return constructed.load() - destroyed.load(); }
};

/// An object whose every construction (including copies and moves) and
/// destruction is counted: put one in a coroutine's locals or parameters to
/// see when its frame is destroyed.
class tracked {
 public:
  explicit tracked(lifetime_counter& c) noexcept : c_(&c) { c_->constructed.fetch_add(1); }
  tracked(const tracked& o) noexcept : c_(o.c_) { c_->constructed.fetch_add(1); }
  tracked(tracked&& o) noexcept : c_(o.c_) { c_->constructed.fetch_add(1); }
  tracked& operator=(const tracked&) = delete;
  tracked& operator=(tracked&&) = delete;
  ~tracked() { c_->destroyed.fetch_add(1); }

 private:
  lifetime_counter* c_;
};

// ----------------------------------------------------------------- waiting ---

/// Polls `pred` from a plain thread until it holds or `limit` passes.
template <class Pred>
bool wait_until(Pred&& pred, std::chrono::milliseconds limit = std::chrono::milliseconds(30000)) {
  const auto deadline = steady::now() + limit;
  while (!pred()) {
    if (steady::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

inline pulse::runtime make_runtime(std::size_t workers) {
  return pulse::runtime::builder().worker_threads(workers).build();
}

// ------------------------------------------------------------- environment ---

/// Sets (or, for nullopt, unsets) an environment variable for its lifetime
/// and restores the previous state afterwards.
class scoped_env {
 public:
  scoped_env(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = std::string(old);
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;
  ~scoped_env() {
    if (old_)
      ::setenv(name_.c_str(), old_->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// ---------------------------------------------------------------- CPU time ---

/// User + system CPU time of the whole process.
inline std::chrono::microseconds process_cpu_time() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const auto us = [](const timeval& tv) {
    return std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec);
  };
  return std::chrono::duration_cast<std::chrono::microseconds>(us(ru.ru_utime) + us(ru.ru_stime));
}

}  // namespace pulse_test

// ------------------------------------------------------- foreign coroutine ---

#include <coroutine>
#include <exception>

namespace pulse_test {

/// A minimal eager coroutine that is not a Pulse task: it runs on the calling
/// thread at once and keeps the exception that escaped it. Used to await
/// Pulse awaitables outside a runtime (which must throw usage_error).
class foreign_coroutine {
 public:
  struct promise_type {
    std::exception_ptr error;
    foreign_coroutine get_return_object() {
      return foreign_coroutine(std::coroutine_handle<promise_type>::from_promise(*this));
    }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_always final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };
  foreign_coroutine(const foreign_coroutine&) = delete;
  foreign_coroutine& operator=(const foreign_coroutine&) = delete;
  ~foreign_coroutine() {
    if (h_) h_.destroy();
  }
  /// True when the coroutine ran to its end (it never suspended for good).
  bool done() const { return h_.done(); }
  /// Rethrows what escaped the coroutine, if anything.
  void rethrow() const {
    if (h_.promise().error) std::rethrow_exception(h_.promise().error);
  }

 private:
  explicit foreign_coroutine(std::coroutine_handle<promise_type> h) : h_(h) {}
  std::coroutine_handle<promise_type> h_;
};

}  // namespace pulse_test
