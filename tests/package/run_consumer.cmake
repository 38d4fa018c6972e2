# Run by ctest (see tests/package/CMakeLists.txt):
#   cmake -DMODE=<install|find_package|pkg_config|add_subdirectory> ... -P run_consumer.cmake
#
# Configures, builds and runs a consumer project with the compiler and flags of
# the build under test, so a sanitizer build is checked with sanitizers too.

cmake_minimum_required(VERSION 3.25)

function(run)
  string(REPLACE ";" " " _shown "${ARGV}")
  message(STATUS "+ ${_shown}")
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "command failed (${_rc}): ${_shown}")
  endif()
endfunction()

# Run the consumer binary; it prints the result and exits 0 on success.
function(run_consumer exe)
  message(STATUS "+ ${exe}")
  execute_process(COMMAND "${exe}" RESULT_VARIABLE _rc TIMEOUT 120)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "consumer ${exe} failed: ${_rc}")
  endif()
endfunction()

set(_common_cache_args
  -G "${CONSUMER_GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CONSUMER_CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${CONSUMER_BUILD_TYPE}"
  "-DCMAKE_CXX_FLAGS=${CONSUMER_CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${CONSUMER_EXE_LINKER_FLAGS}"
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
if(CONSUMER_MAKE_PROGRAM)
  list(APPEND _common_cache_args "-DCMAKE_MAKE_PROGRAM=${CONSUMER_MAKE_PROGRAM}")
endif()
if(CONSUMER_BUILD_TYPE)
  string(TOUPPER "${CONSUMER_BUILD_TYPE}" _bt)
  list(APPEND _common_cache_args "-DCMAKE_CXX_FLAGS_${_bt}=${CONSUMER_CXX_FLAGS_CONFIG}")
endif()

if(MODE STREQUAL "install")
  # A fresh prefix each time, so a file the install no longer provides is missed.
  file(REMOVE_RECURSE "${PULSE_PREFIX}")
  run("${CMAKE_COMMAND}" --install "${PULSE_BINARY_DIR}" --prefix "${PULSE_PREFIX}")

elseif(MODE STREQUAL "find_package")
  file(REMOVE_RECURSE "${CONSUMER_BINARY_DIR}")
  run("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${CONSUMER_BINARY_DIR}"
      ${_common_cache_args} "-DCMAKE_PREFIX_PATH=${PULSE_PREFIX}")
  run("${CMAKE_COMMAND}" --build "${CONSUMER_BINARY_DIR}")
  run_consumer("${CONSUMER_BINARY_DIR}/consumer")

elseif(MODE STREQUAL "add_subdirectory")
  # Incremental: this build compiles the whole library again.
  run("${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${CONSUMER_BINARY_DIR}"
      ${_common_cache_args} "-DPULSE_SOURCE_DIR=${PULSE_SOURCE_DIR}")
  run("${CMAKE_COMMAND}" --build "${CONSUMER_BINARY_DIR}")
  run_consumer("${CONSUMER_BINARY_DIR}/consumer")

elseif(MODE STREQUAL "pkg_config")
  file(REMOVE_RECURSE "${CONSUMER_BINARY_DIR}")
  file(MAKE_DIRECTORY "${CONSUMER_BINARY_DIR}")
  file(GLOB _pc_files "${PULSE_PREFIX}/*/pkgconfig/pulse.pc" "${PULSE_PREFIX}/*/*/pkgconfig/pulse.pc")
  list(LENGTH _pc_files _n)
  if(NOT _n EQUAL 1)
    message(FATAL_ERROR "expected one installed pulse.pc under ${PULSE_PREFIX}, found: ${_pc_files}")
  endif()
  get_filename_component(_pc_dir "${_pc_files}" DIRECTORY)
  get_filename_component(_libdir "${_pc_dir}" DIRECTORY)
  set(ENV{PKG_CONFIG_PATH} "${_pc_dir}")
  execute_process(
    COMMAND "${PKG_CONFIG_EXECUTABLE}" --cflags --libs --static pulse
    OUTPUT_VARIABLE _pc_flags OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "pkg-config --cflags --libs --static pulse failed")
  endif()
  message(STATUS "pkg-config says: ${_pc_flags}")
  separate_arguments(_pc_flags UNIX_COMMAND "${_pc_flags}")
  separate_arguments(_flags UNIX_COMMAND "${CONSUMER_CXX_FLAGS} ${CONSUMER_CXX_FLAGS_CONFIG} ${CONSUMER_EXE_LINKER_FLAGS}")
  set(_exe "${CONSUMER_BINARY_DIR}/consumer")
  # The rpath matters only for a shared libpulse_runtime outside the loader's path.
  run("${CONSUMER_CXX_COMPILER}" -std=c++20 ${_flags} "${CONSUMER_SOURCE_DIR}/main.cpp" ${_pc_flags}
      "-Wl,-rpath,${_libdir}" -o "${_exe}")
  run_consumer("${_exe}")

else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()
