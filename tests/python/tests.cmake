# Python tests of the training companion (python/): PolyAct, loaders, BN folding, ONNX
# export round trip (independent numpy evaluator), trainer resume, committed models and
# fixtures. Runs Debian's interpreter explicitly: the python3 first on PATH may differ.
if(CDL_PYTHON_TESTS)
  add_test(NAME python_tests
           COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider ${PROJECT_SOURCE_DIR}/tests/python)
  set_tests_properties(python_tests PROPERTIES
    ENVIRONMENT "CDL_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=2"
    TIMEOUT 600)
endif()
