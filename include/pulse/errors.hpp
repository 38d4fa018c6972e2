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

/// An await was interrupted because its cancellation scope
/// (pulse::with_cancellation) was cancelled; the waiter has been removed
/// from whatever it waited on and was given nothing.
class operation_cancelled : public std::runtime_error {
 public:
  operation_cancelled() : std::runtime_error("pulse: the operation was cancelled") {}
};

/// A send on a channel that no receiver can read any more: every receiver
/// was destroyed, or the channel was closed.
class channel_closed : public std::runtime_error {
 public:
  channel_closed() : std::runtime_error("pulse: the channel is closed") {}
};

/// Awaiting a oneshot whose sender was destroyed without sending a value or
/// an exception.
class broken_promise : public std::runtime_error {
 public:
  broken_promise()
      : std::runtime_error("pulse: the oneshot sender was destroyed without sending") {}
};

}  // namespace pulse
