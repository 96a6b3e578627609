# tests/integration/pipeline.cmake: the user pipeline as separate commands
# (included from tests.cmake). pipeline_test.py writes 20 MNIST test images
# as .npy and runs compile -> keygen -> encrypt -> evaluate (relin.key only)
# -> decrypt --csv; the predicted classes must equal an independent numpy
# evaluation of the ONNX graph (tests/python/onnx_numpy.py) on the same
# images. Then the refusals (plan of another model, secret key given to the
# server, wrong image shape, malformed plan) must exit 1 with a message.
if(CDL_PYTHON_TESTS)
  add_test(NAME integration_pipeline
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/pipeline_test.py $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/pipeline_test_work)
  set_tests_properties(integration_pipeline PROPERTIES TIMEOUT 600 ENVIRONMENT "OMP_NUM_THREADS=2"
    PASS_REGULAR_EXPRESSION "OK: refusals")
endif()

foreach(cmd compile keygen encrypt evaluate decrypt)
  add_test(NAME cli_${cmd}_help COMMAND cryptodl ${cmd} --help)
  set_tests_properties(cli_${cmd}_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: cryptodl ${cmd}.*example:")
endforeach()
