# pulse_target_warnings(<target>)
#
# Warning flags for everything built in this repository (the library, tests,
# benchmarks, examples). PRIVATE, so consumers never inherit them.
function(pulse_target_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
    if(PULSE_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  elseif(MSVC)
    target_compile_options(${target} PRIVATE /W4 $<$<BOOL:${PULSE_WARNINGS_AS_ERRORS}>:/WX>)
  endif()
endfunction()
