# onnx_ops.cmake: the CLI on models with the ops PyTorch exports that are not
# polynomials (tests/fixtures/onnx/make_fixtures.py): a trailing softmax is
# reported as dropped (the encrypted result is the logits) by `info` and
# `predict --plan`; a max pool is refused for HE with the way out.
set(CDL_ONNX_FIX ${PROJECT_SOURCE_DIR}/tests/fixtures/onnx)

add_test(NAME cli_info_trailing_softmax COMMAND cryptodl info ${CDL_ONNX_FIX}/he_softmax_opset13.onnx)
set_tests_properties(cli_info_trailing_softmax PROPERTIES PASS_REGULAR_EXPRESSION
  "softmax.*dropped under encryption.*HE: every layer can run encrypted.*the encrypted result is the logits")

add_test(NAME cli_info_softmax_json COMMAND cryptodl info ${CDL_ONNX_FIX}/he_softmax_opset13.onnx --json)
set_tests_properties(cli_info_softmax_json PROPERTIES PASS_REGULAR_EXPRESSION
  "\"he_ready\":true,\"he_softmax_dropped\":1,")

add_test(NAME cli_plan_trailing_softmax COMMAND cryptodl predict ${CDL_ONNX_FIX}/he_softmax_opset13.onnx --plan)
set_tests_properties(cli_plan_trailing_softmax PROPERTIES PASS_REGULAR_EXPRESSION
  "levels: 3\noutput: the logits before the trailing softmax '/Softmax'")

add_test(NAME cli_plan_maxpool_refused COMMAND cryptodl predict ${CDL_ONNX_FIX}/maxpool_softmax_opset13.onnx --plan
  --approx relu=ls:2:-4:4,leakyrelu=ls:2:-4:4)
set_tests_properties(cli_plan_maxpool_refused PROPERTIES PASS_REGULAR_EXPRESSION
  "MaxPool.*average pooling")

add_test(NAME cli_info_maxpool COMMAND cryptodl info ${CDL_ONNX_FIX}/maxpool_softmax_opset13.onnx)
set_tests_properties(cli_info_maxpool PROPERTIES PASS_REGULAR_EXPRESSION
  "maxpool.*NO\n +-> max is not a polynomial.*leakyrelu.*--approx leakyrelu=")
