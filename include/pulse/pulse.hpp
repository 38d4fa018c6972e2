// Umbrella header: everything an application needs.
#pragma once

#include "pulse/errors.hpp"
#include "pulse/io/address.hpp"
#include "pulse/io/backend.hpp"
#include "pulse/io/file.hpp"
#include "pulse/io/tcp.hpp"
#include "pulse/io/udp.hpp"
#include "pulse/io/unix.hpp"
#include "pulse/join_handle.hpp"
#include "pulse/runtime.hpp"
#include "pulse/spawn.hpp"
#include "pulse/task.hpp"
#include "pulse/time.hpp"
#include "pulse/yield.hpp"
