// Structured concurrency over a fixed set of operations: pulse::when_all and
// pulse::when_any.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "pulse/detail/awaitable.hpp"
#include "pulse/detail/task_header.hpp"
#include "pulse/detail/worker.hpp"
#include "pulse/errors.hpp"
#include "pulse/join_handle.hpp"
#include "pulse/spawn.hpp"
#include "pulse/sync/notify.hpp"
#include "pulse/task.hpp"

namespace pulse {

namespace detail {

/// What an operation yields in when_all / when_any: its result, with void
/// replaced by std::monostate so it can live in a tuple or variant.
template <class T>
using when_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

/// Any awaitable as a task (tasks pass through unchanged).
template <class T>
task<T> to_task(task<T>&& t) {
  return std::move(t);
}
template <class A>
task<await_result_t<A>> to_task(A&& aw) {
  return [](std::remove_cvref_t<A> a) -> task<await_result_t<A>> {
    co_return co_await std::move(a);
  }(std::forward<A>(aw));
}

// Orders exceptions of concurrently running children by when they happened.
inline std::atomic<std::uint64_t> failure_clock{0};

/// How a child ended: a value or an exception (stamped with failure_clock).
template <class T>
struct outcome {
  std::optional<when_value_t<T>> value;
  std::exception_ptr error;
  std::uint64_t stamp = 0;
};

template <class T>
task<outcome<T>> outcome_of(task<T> t) {
  outcome<T> o;
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(t);
      o.value.emplace();
    } else {
      o.value.emplace(co_await std::move(t));
    }
  } catch (...) {
    o.error = std::current_exception();
    o.stamp = failure_clock.fetch_add(1, std::memory_order_relaxed);
  }
  co_return o;
}

/// Awaits `h` (if not consumed yet) into `out`; an aborted child becomes an
/// outcome holding task_aborted. Lets operation_cancelled through.
template <class T>
task<> join_into(join_handle<outcome<T>>& h, std::optional<outcome<T>>& out) {
  if (!h.valid()) co_return;
  bool aborted = false;
  try {
    out.emplace(co_await h);
  } catch (const task_aborted&) {
    aborted = true;
  }
  if (aborted) {
    out.emplace();
    out->error = std::make_exception_ptr(task_aborted());
    out->stamp = ~std::uint64_t{0};  // never "first": it was aborted by us
  }
}

/// Awaits `aw` with the task's cancellation scope switched off: used to
/// wait for children that were just aborted, which must be awaited even
/// when (because) the scope was cancelled.
template <class Aw>
class shielded_awaiter {
 public:
  explicit shielded_awaiter(Aw&& a) : inner_(std::move(a)) {}
  shielded_awaiter(const shielded_awaiter&) = delete;
  shielded_awaiter& operator=(const shielded_awaiter&) = delete;
  ~shielded_awaiter() { restore(); }

  bool await_ready() {
    me_ = current_task("pulse: shielded await outside a pulse task");
    prev_ = std::exchange(me_->cancel, nullptr);
    on_ = true;
    return inner_.await_ready();
  }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    return inner_.await_suspend(h);
  }
  decltype(auto) await_resume() {
    restore();
    return inner_.await_resume();
  }

 private:
  void restore() noexcept {
    if (on_) {
      me_->cancel = prev_;
      on_ = false;
    }
  }
  Aw inner_;
  task_header* me_ = nullptr;
  cancel_state* prev_ = nullptr;
  bool on_ = false;
};

template <class T>
struct shielded {
  task<T> t;
  shielded_awaiter<typename task<T>::awaiter> operator co_await() && {
    return shielded_awaiter<typename task<T>::awaiter>(std::move(t).operator co_await());
  }
};
template <class T>
shielded<T> shield(task<T>&& t) {
  return {std::move(t)};
}

/// Aborts every child still held when the awaiting task is destroyed (it
/// was aborted itself), so that no child runs on unobserved.
template <class Tuple>
struct abort_on_destroy {
  Tuple* hs;
  ~abort_on_destroy() {
    std::apply([](auto&... h) { (h.abort(), ...); }, *hs);
  }
};

template <class Outs, std::size_t... I>
std::exception_ptr first_failure(Outs& outs, std::index_sequence<I...>) {
  std::exception_ptr first;
  std::uint64_t best = ~std::uint64_t{0};
  bool any = false;
  auto look = [&](auto& o) {
    if (o && o->error && (!any || o->stamp < best)) {
      first = o->error;
      best = o->stamp;
      any = true;
    }
  };
  (look(std::get<I>(outs)), ...);
  return first;
}

template <class... T, std::size_t... I>
task<std::tuple<when_value_t<T>...>> when_all_impl(std::index_sequence<I...>, task<T>... ts) {
  auto hs = std::make_tuple(pulse::spawn(outcome_of(std::move(ts)))...);
  abort_on_destroy<decltype(hs)> guard{&hs};
  std::tuple<std::optional<outcome<T>>...> outs;
  bool cancelled = false;
  try {
    (co_await join_into(std::get<I>(hs), std::get<I>(outs)), ...);
  } catch (const operation_cancelled&) {
    cancelled = true;
  }
  if (cancelled) {
    // Our scope was cancelled: cancel the children too and wait for them.
    (std::get<I>(hs).abort(), ...);
    (co_await shield(join_into(std::get<I>(hs), std::get<I>(outs))), ...);
    throw operation_cancelled();
  }
  if (std::exception_ptr e = first_failure(outs, std::index_sequence<I...>{})) std::rethrow_exception(e);
  co_return std::tuple<when_value_t<T>...>(std::move(*std::get<I>(outs)->value)...);
}

struct any_state {
  static constexpr std::size_t none = ~std::size_t{0};
  std::atomic<std::size_t> winner{none};
  pulse::notify ready;
};

template <std::size_t I, class T>
task<outcome<T>> any_child(task<T> t, std::shared_ptr<any_state> st) {
  outcome<T> o = co_await outcome_of(std::move(t));
  std::size_t expected = any_state::none;
  if (st->winner.compare_exchange_strong(expected, I, std::memory_order_acq_rel)) st->ready.notify_one();
  co_return o;
}

template <class... R>
inline constexpr bool all_same_v = sizeof...(R) > 0 &&
    (std::is_same_v<std::tuple_element_t<0, std::tuple<R...>>, R> && ...);

}  // namespace detail

/// What when_any returns: which operation finished first, and its result.
/// `value` is that result when every operation yields the same type, else a
/// std::variant whose alternative `index` holds it (void is std::monostate).
template <class... R>
struct when_any_result {
  std::size_t index = 0;
  std::conditional_t<detail::all_same_v<R...>, std::tuple_element_t<0, std::tuple<R...>>, std::variant<R...>>
      value;
};

namespace detail {

template <class... T, std::size_t... I>
task<when_any_result<when_value_t<T>...>> when_any_impl(std::index_sequence<I...>, task<T>... ts) {
  auto st = std::make_shared<any_state>();
  auto hs = std::make_tuple(pulse::spawn(any_child<I>(std::move(ts), st))...);
  abort_on_destroy<decltype(hs)> guard{&hs};
  bool cancelled = false;
  try {
    co_await st->ready.notified();
  } catch (const operation_cancelled&) {
    cancelled = true;
  }
  // The losers are cancelled and awaited: nothing outlives this call.
  (std::get<I>(hs).abort(), ...);
  std::tuple<std::optional<outcome<T>>...> outs;
  (co_await shield(join_into(std::get<I>(hs), std::get<I>(outs))), ...);
  if (cancelled) throw operation_cancelled();

  const std::size_t w = st->winner.load(std::memory_order_acquire);
  std::optional<when_any_result<when_value_t<T>...>> result;
  std::exception_ptr error;
  auto pick = [&](auto idx, auto& o) {
    constexpr std::size_t J = decltype(idx)::value;
    if (J != w) return;
    if (o->error) {
      error = o->error;
      return;
    }
    if constexpr (all_same_v<when_value_t<T>...>)
      result.emplace(when_any_result<when_value_t<T>...>{J, std::move(*o->value)});
    else
      result.emplace(when_any_result<when_value_t<T>...>{
          J, decltype(result->value)(std::in_place_index<J>, std::move(*o->value))});
  };
  (pick(std::integral_constant<std::size_t, I>{}, std::get<I>(outs)), ...);
  if (error) std::rethrow_exception(error);
  co_return std::move(*result);
}

}  // namespace detail

/// `auto [a, b] = co_await pulse::when_all(fa(), fb());` runs every
/// operation concurrently, each as a task of its own on the runtime (so on
/// any worker), and waits until all have finished. Returns a tuple of their
/// results in argument order (void becomes std::monostate).
///
/// - Operations: tasks (by value: pass std::move(t) or a call) or any Pulse
///   awaitable (channel recv, sleep_for, ...).
/// - Errors: when some of them throw, when_all still waits for all the
///   others to finish (it does not cancel them), then rethrows the exception
///   that happened first.
/// - Cancellation: when the enclosing with_cancellation scope is cancelled,
///   every operation still running is aborted and awaited, then
///   operation_cancelled is thrown. If the task awaiting when_all is itself
///   aborted, the operations are aborted too (but, from a destructor, not
///   awaited).
/// Must be awaited inside a Pulse task (usage_error otherwise).
template <class... A>
[[nodiscard]] auto when_all(A&&... ops)
    -> task<std::tuple<detail::when_value_t<detail::await_result_t<A>>...>> {
  return detail::when_all_impl(std::index_sequence_for<A...>{}, detail::to_task(std::forward<A>(ops))...);
}

/// `auto r = co_await pulse::when_any(fa(), fb());` runs every operation
/// concurrently (each as a task of its own) and returns as soon as one of
/// them finishes: r.index says which, r.value holds its result (see
/// when_any_result). If the first to finish threw, that exception is
/// rethrown instead.
///
/// - The others (the losers) are aborted and awaited before when_any
///   returns, so nothing outlives the call. A loser that was waiting on a
///   Pulse primitive leaves it cleanly: a value, permit or lock that had
///   just been handed to it is passed on, not lost. A loser that had
///   already finished has its result discarded.
/// - Cancellation: like when_all.
/// Must be awaited inside a Pulse task; needs at least one operation.
template <class... A>
[[nodiscard]] auto when_any(A&&... ops)
    -> task<when_any_result<detail::when_value_t<detail::await_result_t<A>>...>> {
  static_assert(sizeof...(A) > 0, "pulse::when_any needs at least one operation");
  return detail::when_any_impl(std::index_sequence_for<A...>{}, detail::to_task(std::forward<A>(ops))...);
}

}  // namespace pulse
