# tests/integration/tests.cmake: programs and command lines run by CTest on
# top of the unit tests (included from CMakeLists.txt).
#
# ckks_example: examples/ckks_example.c, the C example quoted in docs/ckks.md;
#   it exits non-zero unless encrypt -> mul_relin -> rescale -> rotate ->
#   decrypt matches plain double arithmetic to 2^-16 in every slot.
# cli_bench_ckks_*: `cryptodl bench ckks` works end to end (a tiny, quick run;
#   speed is never asserted, only that the rows come out); cli_bench_ckks_vs_seal_*:
#   --vs-seal PATH with a stand-in sealbench, and its errors.

# The real data sets (../shared/data or $CDL_DATA_DIR): test_data's checks of
# them run as a test of their own, reported as skipped (exit 77) when missing.
add_test(NAME test_data_real_datasets COMMAND test_data --real-datasets)
set_tests_properties(test_data_real_datasets PROPERTIES SKIP_RETURN_CODE 77
  ENVIRONMENT "CDL_SOURCE_DIR=${PROJECT_SOURCE_DIR}" TIMEOUT 300)

add_executable(ckks_example ${PROJECT_SOURCE_DIR}/examples/ckks_example.c)
target_link_libraries(ckks_example PRIVATE cryptodl_static)
add_test(NAME ckks_example COMMAND ckks_example)
set_tests_properties(ckks_example PROPERTIES TIMEOUT 300)

add_test(NAME cli_bench_ckks_help COMMAND cryptodl bench ckks --help)
set_tests_properties(cli_bench_ckks_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: cryptodl bench ckks")

add_test(NAME cli_bench_ckks_bad_option COMMAND cryptodl bench ckks --n 13 --frobnicate)
set_tests_properties(cli_bench_ckks_bad_option PROPERTIES PASS_REGULAR_EXPRESSION "unknown option '--frobnicate'")

# Every operation and the precision pass at N = 2^13 (about a second).
add_test(NAME cli_bench_ckks_json
         COMMAND cryptodl bench ckks --json --quick --precision --n 13)
set_tests_properties(cli_bench_ckks_json PROPERTIES TIMEOUT 300
  PASS_REGULAR_EXPRESSION "\"bench\": \"ntt_fwd\", \"n\": 8192, \"log_q\": 218, \"threads\": 1, \"us\": [0-9.]+.*\"bench\": \"rotate_hoisted8\", \"n\": 8192.*\"precision\": \"rotate \\(1 step\\)\", \"n\": 8192, \"log_q\": 218, \"bits\": [0-9]")

# --vs-seal PATH runs SEAL's sealbench in the same run: here a stand-in
# (tests/fixtures/fake_sealbench.py, fixed times, honours --benchmark_filter)
# whose times must come out beside ours: EvaluateMulCt 0.321 ms + EvaluateRelinInplace
# 2345 us for mul_relin, 8 x 3456 us for rotate_hoisted8, 98765 ns for ntt_fwd.
if(EXISTS /usr/bin/python3)
  add_test(NAME cli_bench_ckks_vs_seal_json
           COMMAND cryptodl bench ckks --json --quick --n 13 --ops ntt_fwd,mul_relin,rotate_hoisted8
                   --vs-seal ${PROJECT_SOURCE_DIR}/tests/fixtures/fake_sealbench.py)
  set_tests_properties(cli_bench_ckks_vs_seal_json PROPERTIES TIMEOUT 120
    PASS_REGULAR_EXPRESSION "\"bench\": \"ntt_fwd\", \"n\": 8192,[^\n]*\"seal_measured_us\": 98\\.77, \"seal_log_q\": 218, \"seal_benchmark\": \"UTIL / NTTForwardLowLevel\", \"seal_source\": \"measured in this run: [^\n]*fake_sealbench\\.py\", \"ratio\": [0-9.]+}.*\"bench\": \"mul_relin\"[^\n]*\"seal_measured_us\": 2666\\.00,.*\"bench\": \"rotate_hoisted8\"[^\n]*\"seal_measured_us\": 27648\\.00,")
  add_test(NAME cli_bench_ckks_vs_seal_table
           COMMAND cryptodl bench ckks --quick --n 13 --ops rotate
                   --vs-seal ${PROJECT_SOURCE_DIR}/tests/fixtures/fake_sealbench.py)
  set_tests_properties(cli_bench_ckks_vs_seal_table PROPERTIES TIMEOUT 120
    PASS_REGULAR_EXPRESSION "SEAL now us.*\nrotate +8192 +218 +1 +[0-9.]+ +[0-9]+ +3456 +[0-9.]+ .*SEAL column: measured in this run")
  # A program that prints no JSON (only its text banner): a clear error and exit status 1.
  add_test(NAME cli_bench_ckks_vs_seal_no_json
           COMMAND cryptodl bench ckks --quick --n 13 --vs-seal ${PROJECT_SOURCE_DIR}/tests/fixtures/fake_sealbench.py)
  set_tests_properties(cli_bench_ckks_vs_seal_no_json PROPERTIES ENVIRONMENT "FAKE_SEALBENCH_MODE=nojson" WILL_FAIL TRUE)
  add_test(NAME cli_bench_ckks_vs_seal_no_json_message
           COMMAND cryptodl bench ckks --quick --n 13 --vs-seal ${PROJECT_SOURCE_DIR}/tests/fixtures/fake_sealbench.py)
  set_tests_properties(cli_bench_ckks_vs_seal_no_json_message PROPERTIES ENVIRONMENT "FAKE_SEALBENCH_MODE=nojson"
    PASS_REGULAR_EXPRESSION "--vs-seal: .*fake_sealbench\\.py printed no JSON")
endif()
# A missing PATH: nonzero exit (WILL_FAIL) and a message naming it and the build script.
add_test(NAME cli_bench_ckks_vs_seal_missing
         COMMAND cryptodl bench ckks --quick --n 13 --vs-seal ${PROJECT_BINARY_DIR}/no-such-sealbench)
set_tests_properties(cli_bench_ckks_vs_seal_missing PROPERTIES WILL_FAIL TRUE)
add_test(NAME cli_bench_ckks_vs_seal_missing_message
         COMMAND cryptodl bench ckks --quick --n 13 --vs-seal ${PROJECT_BINARY_DIR}/no-such-sealbench)
set_tests_properties(cli_bench_ckks_vs_seal_missing_message PROPERTIES
  PASS_REGULAR_EXPRESSION "--vs-seal: [^\n]*no-such-sealbench: No such file or directory \\(build SEAL's sealbench with: bash \\.\\./shared/peers/build-seal\\.sh\\)")

add_test(NAME docs_ckks_example_quoted
         COMMAND ${CMAKE_COMMAND} -DDOC=${PROJECT_SOURCE_DIR}/docs/ckks.md
                 -DSRC=${PROJECT_SOURCE_DIR}/examples/ckks_example.c -P ${PROJECT_SOURCE_DIR}/tests/integration/check_doc_example.cmake)

# The user pipeline (compile, keygen, encrypt, evaluate, decrypt as commands).
include(${CMAKE_CURRENT_LIST_DIR}/pipeline.cmake)
