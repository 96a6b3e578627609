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

# Long runs: `predict --limit N --results FILE` interrupted by Ctrl-C resumes
# and ends with the same results as an uninterrupted run; a line cut short by
# a crash is dropped; a file of another run is refused (results_resume_test.py).
# Encrypted CIFAR-10-shaped inference at reduced depth: a two-block residual
# CNN on 3 x 32 x 32 inputs in slots packing through compile / keygen /
# encrypt / evaluate / decrypt, against a numpy evaluation of the ONNX graph
# (residual_cifar_slots_test.py).
if(CDL_PYTHON_TESTS)
  add_test(NAME integration_predict_results_resume
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/results_resume_test.py $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/results_resume_work)
  set_tests_properties(integration_predict_results_resume PROPERTIES TIMEOUT 900
    PASS_REGULAR_EXPRESSION "OK: resumed results equal")
  add_test(NAME integration_residual_cifar_slots
           COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/residual_cifar_slots_test.py $<TARGET_FILE:cryptodl>
                   ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR}/residual_cifar_work)
  set_tests_properties(integration_residual_cifar_slots PROPERTIES TIMEOUT 1200 ENVIRONMENT "OMP_NUM_THREADS=2"
    PASS_REGULAR_EXPRESSION "OK: 2 encrypted predictions of the residual CNN")
endif()
