# FindLibUring
# ------------
#
# Finds liburing, which ships no CMake package (Debian 12 has 2.3 with a
# pkg-config file only). Installed next to pulseConfig.cmake so that consumers
# of the static library can resolve the link dependency too.
#
# Imported target:
#   LibUring::LibUring
#
# Result variables:
#   LibUring_FOUND, LibUring_VERSION, LibUring_INCLUDE_DIRS, LibUring_LIBRARIES
#
# Cache variables:
#   LibUring_INCLUDE_DIR, LibUring_LIBRARY

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(PC_LibUring QUIET liburing)
endif()

find_path(LibUring_INCLUDE_DIR
  NAMES liburing.h
  HINTS ${PC_LibUring_INCLUDEDIR} ${PC_LibUring_INCLUDE_DIRS})
find_library(LibUring_LIBRARY
  NAMES uring
  HINTS ${PC_LibUring_LIBDIR} ${PC_LibUring_LIBRARY_DIRS})

if(PC_LibUring_VERSION)
  set(LibUring_VERSION "${PC_LibUring_VERSION}")
elseif(LibUring_INCLUDE_DIR AND EXISTS "${LibUring_INCLUDE_DIR}/liburing/io_uring_version.h")
  # liburing >= 2.4 records its version in a header.
  file(STRINGS "${LibUring_INCLUDE_DIR}/liburing/io_uring_version.h" _liburing_version_lines
       REGEX "#define IO_URING_VERSION_(MAJOR|MINOR)")
  string(REGEX REPLACE ".*IO_URING_VERSION_MAJOR ([0-9]+).*" "\\1" _liburing_major "${_liburing_version_lines}")
  string(REGEX REPLACE ".*IO_URING_VERSION_MINOR ([0-9]+).*" "\\1" _liburing_minor "${_liburing_version_lines}")
  set(LibUring_VERSION "${_liburing_major}.${_liburing_minor}")
  unset(_liburing_version_lines)
  unset(_liburing_major)
  unset(_liburing_minor)
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(LibUring
  REQUIRED_VARS LibUring_LIBRARY LibUring_INCLUDE_DIR
  VERSION_VAR LibUring_VERSION)

if(LibUring_FOUND)
  set(LibUring_INCLUDE_DIRS "${LibUring_INCLUDE_DIR}")
  set(LibUring_LIBRARIES "${LibUring_LIBRARY}")
  if(NOT TARGET LibUring::LibUring)
    add_library(LibUring::LibUring UNKNOWN IMPORTED)
    set_target_properties(LibUring::LibUring PROPERTIES
      IMPORTED_LOCATION "${LibUring_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${LibUring_INCLUDE_DIR}")
  endif()
endif()

mark_as_advanced(LibUring_INCLUDE_DIR LibUring_LIBRARY)
