// Exceptions thrown by Pulse.
#pragma once

#include <stdexcept>
#include <string>

namespace pulse {

/// The API was used in a way it does not allow: no runtime on this thread,
/// block_on on a worker, worker_threads(0), a join_handle awaited twice, a
/// spawn on a runtime that is shut down. Thrown at the call that misused it.
class usage_error : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Awaiting the join_handle of a task that was aborted (join_handle::abort,
/// a timeout, or runtime shutdown) before it finished.
class task_aborted : public std::runtime_error {
 public:
  task_aborted() : std::runtime_error("pulse: the task was aborted before it finished") {}
};

/// pulse::timeout ran out of time; the inner operation has been cancelled.
class timed_out : public std::runtime_error {
 public:
  timed_out() : std::runtime_error("pulse: the operation timed out") {}
};

/// The runtime shut down while a block_on call was waiting for its task.
class runtime_shut_down : public std::runtime_error {
 public:
  runtime_shut_down()
      : std::runtime_error("pulse: the runtime shut down before the task finished") {}
};

}  // namespace pulse
