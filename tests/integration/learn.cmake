# tests/integration/learn.cmake: `cryptodl logreg` and `cryptodl train-encrypted`, training on encrypted
# data, end to end on the MNIST test set shipped in data/ (the train split is
# not shipped, so --train-from-test trains on its first 64 samples of 3 and 8
# and tests on the next 300). Passes when the encrypted training's weights
# equal the plaintext twin's to better than 1e-5 and the accuracy is reported;
# refusals: too many iterations for N = 2^14's levels (exit 2, says how many
# fit), a bad --classes, and --help.
add_test(NAME cli_logreg_tiny
         COMMAND cryptodl logreg --train-from-test --train 64 --test 300 --iters 3 --log-n 14 --threads 1 --json
                 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(cli_logreg_tiny PROPERTIES TIMEOUT 300
  PASS_REGULAR_EXPRESSION "\"iterations\":3,\"max_iterations\":3,\"levels_per_iteration\":4,\"level_left\":0.*\"accuracy_encrypted\":0\\.[5-9][0-9]*.*\"max_weight_diff\":[0-9.]+e-(0[6-9]|[1-9][0-9])"
  FAIL_REGULAR_EXPRESSION "nan")

add_test(NAME cli_logreg_too_many_iters
         COMMAND cryptodl logreg --train-from-test --train 64 --iters 4 --log-n 14 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(cli_logreg_too_many_iters PROPERTIES WILL_FAIL TRUE)
add_test(NAME cli_logreg_too_many_iters_message
         COMMAND cryptodl logreg --train-from-test --train 64 --iters 4 --log-n 14 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(cli_logreg_too_many_iters_message PROPERTIES PASS_REGULAR_EXPRESSION "at most 3 iterations fit")

add_test(NAME cli_logreg_bad_classes COMMAND cryptodl logreg --classes 3,3)
set_tests_properties(cli_logreg_bad_classes PROPERTIES PASS_REGULAR_EXPRESSION "--classes wants two different digits")

add_test(NAME cli_logreg_help COMMAND cryptodl logreg --help)
set_tests_properties(cli_logreg_help PROPERTIES PASS_REGULAR_EXPRESSION "usage: cryptodl logreg.*example:")

# `cryptodl train-encrypted`: logistic regression with bootstrapping, at
# INSECURE test parameters (--log-n 12: the insecure bootstrapping preset with
# the 128-bit preset's 9 computation levels) on the shipped MNIST test split:
# 6 iterations (2 bootstraps of beta and v), encrypted weights within 1e-5 of
# the plaintext twin's, labelled insecure; checkpoint and resume; the tasks
# that do not exist yet are refused with exit 2.
add_test(NAME cli_learn_train_encrypted_tiny
         COMMAND cryptodl train-encrypted --task logreg --log-n 12 --train-from-test --train 64 --test 300 --iters 6
                 --threads 1 --json --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(cli_learn_train_encrypted_tiny PROPERTIES TIMEOUT 120
  PASS_REGULAR_EXPRESSION "\"task\":\"logreg\".*\"iterations\":6,.*\"bootstraps\":2,.*\"log_n\":12,\"secure\":false.*\"encrypted_accuracy\":0\\.[6-9][0-9]*.*\"max_weight_diff\":[0-9.]+e-(0[6-9]|[1-9][0-9])"
  FAIL_REGULAR_EXPRESSION "nan")

add_test(NAME cli_learn_train_encrypted_resume
         COMMAND ${CMAKE_COMMAND} -DCRYPTODL=$<TARGET_FILE:cryptodl> -DDATA=${PROJECT_SOURCE_DIR}/data
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_encrypted_resume
                 -P ${PROJECT_SOURCE_DIR}/tests/integration/train_encrypted_resume.cmake)
set_tests_properties(cli_learn_train_encrypted_resume PROPERTIES TIMEOUT 120)

add_test(NAME cli_learn_train_encrypted_softmax COMMAND cryptodl train-encrypted --task softmax)
set_tests_properties(cli_learn_train_encrypted_softmax PROPERTIES WILL_FAIL TRUE)
add_test(NAME cli_learn_train_encrypted_mlp_message COMMAND cryptodl train-encrypted --task mlp)
set_tests_properties(cli_learn_train_encrypted_mlp_message PROPERTIES PASS_REGULAR_EXPRESSION "--task mlp is not implemented yet")
add_test(NAME cli_learn_train_encrypted_help COMMAND cryptodl train-encrypted --help)
set_tests_properties(cli_learn_train_encrypted_help PROPERTIES
  PASS_REGULAR_EXPRESSION "usage: cryptodl train-encrypted.*softmax +multiclass softmax regression: not implemented yet.*mlp.*not implemented yet")
