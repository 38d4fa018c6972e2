// Bounded per-worker run queue: one owner pushes and pops (FIFO), any number
// of stealers take half of it at a time.
//
// head_ packs two 32-bit indices: `steal` (where an in-progress steal began)
// and `real` (the next item to pop). While they differ, a stealer is copying
// items [steal, real) out and owns them; the owner may not overwrite them.
// Indices wrap modulo 2^32; the buffer index is the low bits.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "pulse/detail/config.hpp"

namespace pulse::detail {

template <class T, std::uint32_t Capacity = 256>
class local_queue {
  static_assert((Capacity & (Capacity - 1)) == 0, "capacity must be a power of two");

 public:
  static constexpr std::uint32_t capacity = Capacity;
  static constexpr std::uint32_t mask = Capacity - 1;

  local_queue() = default;
  local_queue(const local_queue&) = delete;
  local_queue& operator=(const local_queue&) = delete;

  /// Owner only. Appends `v`; when full, moves half of the queue plus `v`
  /// into `overflow(first, last, count)` (a batch linked through `next`)
  /// instead. While a steal is in progress a full queue hands just `v` over.
  template <class Overflow>
  PULSE_ALWAYS_INLINE void push_back(T* v, Overflow&& overflow) {
    for (;;) {
      const std::uint64_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t steal = unpack_steal(h);
      const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (tail - steal < Capacity) [[likely]] {
        buf_[tail & mask].store(v, std::memory_order_relaxed);
        tail_.store(tail + 1, std::memory_order_release);
        return;
      }
      if (steal != unpack_real(h)) {
        // A stealer is draining us right now: it will make room, but we do
        // not wait for it.
        v->next = nullptr;
        overflow(v, v, 1u);
        return;
      }
      if (push_overflow(v, unpack_real(h), tail, overflow)) return;
      // A stealer took items between our load and CAS; there is room now.
    }
  }

  /// Owner only. FIFO pop; nullptr when empty.
  PULSE_ALWAYS_INLINE T* pop() noexcept {
    std::uint64_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t steal = unpack_steal(h);
      const std::uint32_t real = unpack_real(h);
      const std::uint32_t tail = tail_.load(std::memory_order_relaxed);
      if (real == tail) return nullptr;
      const std::uint32_t next_real = real + 1;
      const std::uint64_t next =
          steal == real ? pack(next_real, next_real) : pack(steal, next_real);
      if (head_.compare_exchange_weak(h, next, std::memory_order_acq_rel,
                                      std::memory_order_acquire)) [[likely]]
        return buf_[real & mask].load(std::memory_order_relaxed);
    }
  }

  /// Any thread, where `dst` is owned by the calling thread. Moves half of
  /// this queue into `dst` and returns one of the stolen items (to run at
  /// once), or nullptr when there was nothing to take.
  T* steal_into(local_queue& dst) noexcept {
    const std::uint32_t dst_tail = dst.tail_.load(std::memory_order_relaxed);
    const std::uint32_t dst_steal = unpack_steal(dst.head_.load(std::memory_order_acquire));
    if (dst_tail - dst_steal > Capacity / 2) return nullptr;  // dst has work of its own

    // Phase 1: claim [real, real + n) by advancing `real` while keeping `steal`.
    std::uint64_t h = head_.load(std::memory_order_acquire);
    std::uint32_t first, n;
    for (;;) {
      const std::uint32_t steal = unpack_steal(h);
      const std::uint32_t real = unpack_real(h);
      if (steal != real) return nullptr;  // someone else is stealing
      const std::uint32_t tail = tail_.load(std::memory_order_acquire);
      n = tail - real;
      n -= n / 2;
      if (n == 0) return nullptr;
      if (head_.compare_exchange_weak(h, pack(steal, real + n), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        first = real;
        break;
      }
    }
    // Copy out the claimed items; the owner cannot overwrite them until phase 2.
    for (std::uint32_t i = 0; i < n; ++i) {
      T* v = buf_[(first + i) & mask].load(std::memory_order_relaxed);
      dst.buf_[(dst_tail + i) & mask].store(v, std::memory_order_relaxed);
    }
    // Phase 2: release the claim (steal catches up with real; the owner may
    // have popped more in between).
    h = head_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t real = unpack_real(h);
      if (head_.compare_exchange_weak(h, pack(real, real), std::memory_order_acq_rel,
                                      std::memory_order_acquire))
        break;
    }
    T* last = dst.buf_[(dst_tail + n - 1) & mask].load(std::memory_order_relaxed);
    if (n > 1) dst.tail_.store(dst_tail + n - 1, std::memory_order_release);
    return last;
  }

  /// Approximate, any thread.
  std::uint32_t size() const noexcept {
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_acquire) - unpack_steal(h);
  }
  bool empty() const noexcept {
    const std::uint64_t h = head_.load(std::memory_order_acquire);
    return tail_.load(std::memory_order_acquire) == unpack_real(h);
  }

 private:
  static constexpr std::uint64_t pack(std::uint32_t steal, std::uint32_t real) noexcept {
    return (std::uint64_t{steal} << 32) | real;
  }
  static constexpr std::uint32_t unpack_steal(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>(h >> 32);
  }
  static constexpr std::uint32_t unpack_real(std::uint64_t h) noexcept {
    return static_cast<std::uint32_t>(h);
  }

  template <class Overflow>
  PULSE_NOINLINE bool push_overflow(T* v, std::uint32_t real, std::uint32_t tail,
                                    Overflow& overflow) {
    constexpr std::uint32_t half = Capacity / 2;
    (void)tail;  // == real + Capacity: the queue is full
    std::uint64_t expect = pack(real, real);
    if (!head_.compare_exchange_strong(expect, pack(real + half, real + half),
                                       std::memory_order_acq_rel, std::memory_order_acquire))
      return false;
    T* first = buf_[real & mask].load(std::memory_order_relaxed);
    T* prev = first;
    for (std::uint32_t i = 1; i < half; ++i) {
      T* cur = buf_[(real + i) & mask].load(std::memory_order_relaxed);
      prev->next = cur;
      prev = cur;
    }
    prev->next = v;
    v->next = nullptr;
    overflow(first, v, half + 1);
    return true;
  }

  alignas(cache_line) std::atomic<std::uint64_t> head_{0};
  alignas(cache_line) std::atomic<std::uint32_t> tail_{0};
  alignas(cache_line) std::array<std::atomic<T*>, Capacity> buf_{};
};

}  // namespace pulse::detail
