# tests/integration/inference.cmake: the main job end to end. Encrypted
# inference with the shipped model on the shipped MNIST test set (data/mnist):
# keygen, encrypt, evaluate on ciphertexts, decrypt, and the same argmax as the
# plaintext reference runtime on every image (argmax_agreement 1.000000).
add_test(NAME integration_predict_mnist
         COMMAND cryptodl predict ${PROJECT_SOURCE_DIR}/models/mnist_cryptonets.onnx --limit 32 --json
                 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(integration_predict_mnist PROPERTIES TIMEOUT 600
  PASS_REGULAR_EXPRESSION "\"argmax_agreement\":1\\.000000"
  FAIL_REGULAR_EXPRESSION "\"argmax_agreement\":0\\.")

add_test(NAME integration_predict_help COMMAND cryptodl predict --help)
set_tests_properties(integration_predict_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: cryptodl predict")

# Slots packing (one image across the slots, rotations with Galois keys): real
# MNIST test images, the same argmax as the plaintext runtime on every image,
# both for the small model (two images share a ciphertext) and for the 99.53%
# deep model that batch packing cannot hold in memory (a few images: about a
# second each).
add_test(NAME integration_predict_mnist_slots
         COMMAND cryptodl predict ${PROJECT_SOURCE_DIR}/models/mnist_cryptonets.onnx --packing slots --limit 8 --json
                 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(integration_predict_mnist_slots PROPERTIES TIMEOUT 600
  PASS_REGULAR_EXPRESSION "\"argmax_agreement\":1\\.000000.*\"packing\":\"slots\""
  FAIL_REGULAR_EXPRESSION "\"argmax_agreement\":0\\.")
add_test(NAME integration_predict_mnist_deep_slots
         COMMAND cryptodl predict ${PROJECT_SOURCE_DIR}/models/mnist_deep.onnx --packing slots --limit 3 --json
                 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(integration_predict_mnist_deep_slots PROPERTIES TIMEOUT 900
  PASS_REGULAR_EXPRESSION "\"argmax_agreement\":1\\.000000.*\"packing\":\"slots\""
  FAIL_REGULAR_EXPRESSION "\"argmax_agreement\":0\\.")
