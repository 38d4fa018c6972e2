# cmake -DPULSE_INCLUDE_DIR=<repo>/include -P PulseCheckPublicHeaders.cmake
#
# Public headers must not expose liburing: it is a PRIVATE dependency, and
# only src/io/ may include <liburing.h>.
file(GLOB_RECURSE _headers "${PULSE_INCLUDE_DIR}/pulse/*")
set(_bad "")
foreach(_h IN LISTS _headers)
  file(STRINGS "${_h}" _hits REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]liburing")
  if(_hits)
    list(APPEND _bad "${_h}")
  endif()
endforeach()
if(_bad)
  list(JOIN _bad "\n  " _list)
  message(FATAL_ERROR "public headers include liburing:\n  ${_list}")
endif()
list(LENGTH _headers _n)
message(STATUS "${_n} public headers checked, none includes liburing")
