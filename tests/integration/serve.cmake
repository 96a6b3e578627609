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

add_test(NAME integration_serve_help COMMAND cryptodl serve --help)
set_tests_properties(integration_serve_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: cryptodl serve")

add_test(NAME integration_serve_usage COMMAND cryptodl serve)
set_tests_properties(integration_serve_usage PROPERTIES PASS_REGULAR_EXPRESSION "give at least one MODEL.onnx")
