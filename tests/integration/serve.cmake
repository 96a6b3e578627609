# tests/integration/serve.cmake: the HTTP service (`cryptodl serve`) end to
# end (included from CMakeLists.txt). Needs bash and curl.
#
# integration_serve_roundtrip: serve in the background on a free port, the
#   CLI's --keygen/--encrypt/--decrypt as the client, curl for the HTTP steps;
#   the decrypted predictions equal the plaintext reference's and the accuracy
#   equals the one-process `predict` (tests/integration/serve_roundtrip.sh).
# integration_serve_faults: faults on loopback against a slots-packing server
#   (tests/integration/serve_faults_test.py, Python standard library only):
#   disconnects mid-upload and during an evaluation, a slow client, truncated
#   and corrupted batches, a deleted session, SIGKILL during an evaluation and a
#   restart; after each, the server answers others correctly and its metrics
#   return to idle. ~20 s; 0.23 GB of keys in the work folder (removed
#   when the test passes).
# integration_scaleout: Redis, 3 replicas with --sessions redis:// and nginx in front, started by
#   deploy/scaleout.sh on free loopback ports (tests/integration/scaleout_test.py): a session created
#   through nginx, batches served by different replicas (nginx's access log), one replica killed
#   with SIGKILL mid-evaluation, the same session served by the others, every answer byte-identical
#   to a single `cryptodl serve` process's. Skipped (exit 77) when redis-server, nginx or curl is
#   missing or cryptodl has no libhiredis. ~1-2 min, 308 MB per batch through nginx.
# integration_serve_help / _usage: --help and a usage error.

find_program(CDL_CURL curl)
if(CDL_CURL)
  add_test(NAME integration_serve_roundtrip
           COMMAND bash ${PROJECT_SOURCE_DIR}/tests/integration/serve_roundtrip.sh $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR}/models/mnist_cryptonets.onnx ${PROJECT_SOURCE_DIR}/data 16)
  set_tests_properties(integration_serve_roundtrip PROPERTIES TIMEOUT 300
    PASS_REGULAR_EXPRESSION "serve round trip: OK")
else()
  message(STATUS "curl not found: integration_serve_roundtrip is not registered (scripts/setup-deps.sh installs it)")
endif()

if(EXISTS /usr/bin/python3)
  add_test(NAME integration_serve_faults
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/serve_faults_test.py $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/serve_faults_work)
  set_tests_properties(integration_serve_faults PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1"
    PASS_REGULAR_EXPRESSION "serve faults: OK" FAIL_REGULAR_EXPRESSION "FAIL:")
else()
  message(STATUS "/usr/bin/python3 not found: integration_serve_faults is not registered")
endif()

if(EXISTS /usr/bin/python3)
  add_test(NAME integration_scaleout
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/scaleout_test.py $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/scaleout_work)
  set_tests_properties(integration_scaleout PROPERTIES TIMEOUT 240 SKIP_RETURN_CODE 77
    PASS_REGULAR_EXPRESSION "scaleout: OK;SKIP:" FAIL_REGULAR_EXPRESSION "FAIL:")
endif()

add_test(NAME integration_serve_help COMMAND cryptodl serve --help)
set_tests_properties(integration_serve_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: cryptodl serve")

add_test(NAME integration_serve_usage COMMAND cryptodl serve)
set_tests_properties(integration_serve_usage PROPERTIES PASS_REGULAR_EXPRESSION "give at least one MODEL.onnx")

# --sessions / --key-cache-mb refusals: a bad value, a cache without Redis, a Redis nobody runs
# (the server must not start: "cannot reach Redis"; a build without libhiredis says so instead).
add_test(NAME integration_serve_sessions_usage
         COMMAND cryptodl serve ${PROJECT_SOURCE_DIR}/models/mnist_cryptonets.onnx --sessions postgres://x)
set_tests_properties(integration_serve_sessions_usage PROPERTIES
  PASS_REGULAR_EXPRESSION "--sessions must be memory or redis://HOST:PORT")
add_test(NAME integration_serve_cache_usage
         COMMAND cryptodl serve ${PROJECT_SOURCE_DIR}/models/mnist_cryptonets.onnx --key-cache-mb 64)
set_tests_properties(integration_serve_cache_usage PROPERTIES
  PASS_REGULAR_EXPRESSION "--key-cache-mb is for --sessions redis://")
add_test(NAME integration_serve_redis_unreachable
         COMMAND cryptodl serve ${PROJECT_SOURCE_DIR}/models/mnist_cryptonets.onnx --port 0
                 --sessions redis://127.0.0.1:1)
set_tests_properties(integration_serve_redis_unreachable PROPERTIES
  PASS_REGULAR_EXPRESSION "cannot reach Redis at 127.0.0.1:1/0|no Redis support")
# The browser client in headless Chromium (integration_browser).
include(${CMAKE_CURRENT_LIST_DIR}/browser.cmake)
