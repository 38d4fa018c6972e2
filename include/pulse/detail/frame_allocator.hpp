// Per-thread recycling allocator for coroutine frames.
//
// Worker threads own a frame_cache; frames freed on a worker go to that
// worker's bins whatever thread allocated them, so memory migrates between
// workers without any synchronisation. Threads without a cache (the main
// thread, foreign spawners) use the global allocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#include "pulse/detail/config.hpp"

// Set PULSE_FRAME_CACHE=0 to allocate frames with plain operator new (for
// measuring the cache against the general-purpose allocator).
#ifndef PULSE_FRAME_CACHE
#define PULSE_FRAME_CACHE 1
#endif

namespace pulse::detail {

class frame_cache {
 public:
  static constexpr std::size_t granule = 64;
  static constexpr std::size_t bins = 16;               // frames up to 1 KiB
  static constexpr std::uint32_t max_per_bin = 4096;    // bounds idle memory per size class

  frame_cache() = default;
  frame_cache(const frame_cache&) = delete;
  frame_cache& operator=(const frame_cache&) = delete;
  ~frame_cache() { release_all(); }

  PULSE_ALWAYS_INLINE static std::size_t bin_of(std::size_t n) noexcept {
    return (n - 1) / granule;
  }

  PULSE_ALWAYS_INLINE void* allocate(std::size_t n) {
    const std::size_t b = bin_of(n);
    if (b < bins) {
      if (node* h = bin_[b].head) [[likely]] {
        bin_[b].head = h->next;
        --bin_[b].count;
        return h;
      }
      return ::operator new((b + 1) * granule);
    }
    return ::operator new(n);
  }

  PULSE_ALWAYS_INLINE void deallocate(void* p, std::size_t n) noexcept {
    const std::size_t b = bin_of(n);
    if (b < bins && bin_[b].count < max_per_bin) [[likely]] {
      auto* h = static_cast<node*>(p);
      h->next = bin_[b].head;
      bin_[b].head = h;
      ++bin_[b].count;
      return;
    }
    ::operator delete(p);
  }

  void release_all() noexcept {
    for (auto& b : bin_) {
      while (node* h = b.head) {
        b.head = h->next;
        ::operator delete(h);
      }
      b.count = 0;
    }
  }

 private:
  struct node {
    node* next;
  };
  struct bin {
    node* head = nullptr;
    std::uint32_t count = 0;
  };
  bin bin_[bins];
};

// Set by a worker thread for its lifetime; null elsewhere. Read through
// this_frame_cache() (see this_worker() in worker.hpp for why).
inline constinit thread_local frame_cache* t_frame_cache = nullptr;

#if defined(__clang__)
frame_cache* this_frame_cache_slow() noexcept;
PULSE_ALWAYS_INLINE frame_cache* this_frame_cache() noexcept { return this_frame_cache_slow(); }
#else
PULSE_ALWAYS_INLINE frame_cache* this_frame_cache() noexcept { return t_frame_cache; }
#endif

PULSE_ALWAYS_INLINE void* allocate_frame(std::size_t n) {
  if (!PULSE_FRAME_CACHE) return ::operator new(n);
  if (frame_cache* c = this_frame_cache()) [[likely]]
    return c->allocate(n);
  // Round like the cache does so a block may later be recycled by a worker.
  const std::size_t b = frame_cache::bin_of(n);
  return ::operator new(b < frame_cache::bins ? (b + 1) * frame_cache::granule : n);
}

PULSE_ALWAYS_INLINE void deallocate_frame(void* p, std::size_t n) noexcept {
  if (!PULSE_FRAME_CACHE) {
    ::operator delete(p);
    return;
  }
  if (frame_cache* c = this_frame_cache()) [[likely]] {
    c->deallocate(p, n);
    return;
  }
  ::operator delete(p);
}

}  // namespace pulse::detail
