// Poll traces: builder().trace(path) records every poll in per-thread rings
// and writes Chrome Trace Event JSON at shutdown or on demand.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <pulse/pulse.hpp>

#include "common/helpers.hpp"

using pulse::task;

#if PULSE_PREEMPTION

namespace {
std::string temp_path(const char* stem) {
  return std::string("/tmp/") + stem + "-" + std::to_string(::getpid()) + ".json";
}
std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}
std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}
task<> yields(int n) {
  for (int i = 0; i < n; ++i) co_await pulse::yield_now();
}
}  // namespace

TEST_CASE("a traced runtime writes every poll as Chrome trace JSON at shutdown", "[trace]") {
  const std::string path = temp_path("pulse-trace");
  std::remove(path.c_str());
  {
    auto rt = pulse::runtime::builder().worker_threads(2).trace(path).build();
    rt.block_on([]() -> task<> {
      std::vector<pulse::join_handle<void>> hs;
      for (int i = 0; i < 20; ++i) hs.push_back(pulse::spawn(yields(4)));
      for (auto& h : hs) co_await h;
    }());
  }  // shutdown writes the file
  const std::string json = slurp(path);
  std::remove(path.c_str());
  REQUIRE(!json.empty());
  CHECK(json.rfind("{\"displayTimeUnit\":\"ns\"", 0) == 0);
  CHECK(json.find("\"traceEvents\":[") != std::string::npos);
  CHECK(json.substr(json.size() - 4) == "\n]}\n");
  CHECK(json.find("\"name\":\"worker-0\"") != std::string::npos);
  // 20 tasks x 5 polls (4 yields, then completion) plus the root's polls.
  CHECK(count(json, "\"ph\":\"X\"") >= 100);
  CHECK(count(json, "\"outcome\":\"completed\"") >= 21);
  CHECK(count(json, "\"outcome\":\"yielded\"") >= 80);
}

TEST_CASE("a trace names each poll by its task's name, or its id", "[trace]") {
  const std::string path = temp_path("pulse-trace-names");
  {
    auto rt = pulse::runtime::builder().worker_threads(1).trace(path).build();
    rt.block_on([]() -> task<> {
      auto a = pulse::spawn(yields(2), {.name = "fetch-user"});
      auto b = pulse::spawn(yields(2), {.name = "say \"hi\"\n"});  // escaped in the JSON
      auto c = pulse::spawn(yields(2));
      co_await a;
      co_await b;
      co_await c;
    }());
  }
  const std::string json = slurp(path);
  std::remove(path.c_str());
  CHECK(count(json, "\"name\":\"fetch-user\"") == 3);
  CHECK(count(json, R"("name":"say \"hi\"\u000a")") == 3);
  CHECK(count(json, "\"name\":\"block_on\"") >= 1);
  CHECK(count(json, "\"name\":\"task ") >= 3);  // the unnamed one, by id
  CHECK(json.find("\"args\":{\"task\":") != std::string::npos);
}

TEST_CASE("write_trace writes on demand while the runtime runs", "[trace]") {
  const std::string path = temp_path("pulse-trace-live");
  const std::string on_demand = temp_path("pulse-trace-now");
  {
    auto rt = pulse::runtime::builder().worker_threads(1).trace(path).build();
    rt.block_on(yields(10));
    rt.write_trace(on_demand);
    const std::string json = slurp(on_demand);
    // 11 polls; block_on may return before the worker has recorded the
    // finished recording the last one (the completing poll), so 10 are certain.
    CHECK(count(json, "\"ph\":\"X\"") >= 10);
    CHECK_THROWS_AS(rt.write_trace("/nonexistent-dir/x.json"), std::system_error);
  }
  std::remove(path.c_str());
  std::remove(on_demand.c_str());
}

#endif

TEST_CASE("tracing misuse is diagnosed", "[trace][usage]") {
  CHECK_THROWS_AS(pulse::runtime::builder().trace(""), pulse::usage_error);
  auto rt = pulse::runtime::builder().worker_threads(1).build();
  CHECK_THROWS_WITH(rt.write_trace("/tmp/x.json"), Catch::Contains("trac"));
}
