# tests/integration/browser.cmake: the browser client (web/, docs/browser.md).
# integration_browser builds the WebAssembly client (scripts/build-wasm.sh into
# the build tree's browser_work/wasm, incremental), serves it with `cryptodl
# serve --packing slots --web`, and drives the page in headless Chromium over
# the DevTools protocol (tests/integration/browser_test.py, Python standard
# library only): real MNIST test images classified encrypted, keys made in the
# browser, and the server shown to receive only evaluation keys and
# ciphertexts. Skipped (exit 77, "SKIP: why") without emscripten or chromium.
# Included by serve.cmake.
if(EXISTS /usr/bin/python3)
  add_test(NAME integration_browser
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/browser_test.py $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/browser_work)
  set_tests_properties(integration_browser PROPERTIES TIMEOUT 900 SKIP_RETURN_CODE 77 ENVIRONMENT "OMP_NUM_THREADS=2"
    PASS_REGULAR_EXPRESSION "browser client: OK;SKIP:" FAIL_REGULAR_EXPRESSION "FAIL:")
else()
  message(STATUS "/usr/bin/python3 not found: integration_browser is not registered")
endif()
