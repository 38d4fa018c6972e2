// Umbrella header: everything an application needs.
#pragma once

#include "pulse/errors.hpp"
#include "pulse/join_handle.hpp"
#include "pulse/runtime.hpp"
#include "pulse/spawn.hpp"
#include "pulse/task.hpp"
#include "pulse/time.hpp"
#include "pulse/yield.hpp"
