# Python tests of the training companion (python/): PolyAct, loaders, BN folding, ONNX
# export round trip (independent numpy evaluator), trainer resume, committed models and
# fixtures. Runs Debian's interpreter explicitly: the python3 first on PATH may differ.
#
# python_client_api, python_client_serve: the ctypes bindings (python/cryptodl) over this
# build's libcryptodl.so (CRYPTODL_LIB), against the plaintext references and a live
# `cryptodl serve` (CRYPTODL_CLI); kept out of python_tests, which they would slow down.
if(CDL_PYTHON_TESTS)
  # The glob is absolute: pytest makes a relative --ignore-glob absolute from the working
  # directory (the build folder under CTest), where */test_client_*.py matched nothing, so
  # python_tests ran python_client_api and python_client_serve a second time, against
  # whichever build*/libcryptodl.so was newest (an ASan one kills the interpreter).
  add_test(NAME python_tests
           COMMAND /usr/bin/python3 -m pytest -q -p no:cacheprovider
                   --ignore-glob=${PROJECT_SOURCE_DIR}/tests/python/test_client_*.py
                   ${PROJECT_SOURCE_DIR}/tests/python)
  set_tests_properties(python_tests PROPERTIES
    ENVIRONMENT "CDL_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=2"
    TIMEOUT 600)
  foreach(t client_api client_serve)
    add_test(NAME python_${t}
             COMMAND /usr/bin/python3 -m pytest -q -s -p no:cacheprovider ${PROJECT_SOURCE_DIR}/tests/python/test_${t}.py)
    set_tests_properties(python_${t} PROPERTIES
      ENVIRONMENT "CDL_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=2;CRYPTODL_LIB=$<TARGET_FILE:cryptodl_shared>;CRYPTODL_CLI=$<TARGET_FILE:cryptodl>"
      TIMEOUT 900)
  endforeach()
endif()
