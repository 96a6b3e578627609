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
# the plaintext twin's, labelled insecure; checkpoint and resume.
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

# --task softmax: transfer learning on the features of the shipped compact MNIST
# model (the input of its last dense layer), extracted in plaintext by the
# client, at INSECURE test parameters (--log-n 13: the insecure bootstrapping
# preset with the 128-bit preset's 9 computation levels; 32 samples per
# ciphertext): 256 training images of the shipped test split, 4 iterations (one
# bootstrap of the packed weights and momentum), the encrypted weights within
# 1e-5 of the plaintext twin's and the same test accuracy.
add_test(NAME cli_learn_train_encrypted_softmax_tiny
         COMMAND cryptodl train-encrypted --task softmax --log-n 13 --train-from-test --train 256 --test 500 --iters 4
                 --threads 1 --json --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(cli_learn_train_encrypted_softmax_tiny PROPERTIES TIMEOUT 300
  ENVIRONMENT "CDL_SOURCE_DIR=${PROJECT_SOURCE_DIR}"
  PASS_REGULAR_EXPRESSION "\"task\":\"softmax\".*\"trunk_features\":128,.*\"classes\":10,\"n_train\":256,.*\"iterations\":4,.*\"bootstraps\":1,.*\"log_n\":13,\"secure\":false.*\"encrypted_accuracy\":0\\.9[0-9]*.*\"max_weight_diff\":[0-9.]+e-(0[6-9]|[1-9][0-9])"
  FAIL_REGULAR_EXPRESSION "nan")

add_test(NAME cli_learn_train_encrypted_softmax_resume
         COMMAND ${CMAKE_COMMAND} -DCRYPTODL=$<TARGET_FILE:cryptodl> -DDATA=${PROJECT_SOURCE_DIR}/data
                 -DSRC=${PROJECT_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_encrypted_softmax_resume
                 -P ${PROJECT_SOURCE_DIR}/tests/integration/train_encrypted_softmax_resume.cmake)
set_tests_properties(cli_learn_train_encrypted_softmax_resume PROPERTIES TIMEOUT 300)

# refusals: options of another task, a dataset the task does not take, a missing feature extractor, bad sizes
add_test(NAME cli_learn_train_encrypted_softmax_bad_option COMMAND cryptodl train-encrypted --task softmax --classes 3,8)
set_tests_properties(cli_learn_train_encrypted_softmax_bad_option PROPERTIES
  PASS_REGULAR_EXPRESSION "--classes, --bound and --constant-lr are options of --task logreg")
add_test(NAME cli_learn_train_encrypted_logreg_cifar COMMAND cryptodl train-encrypted --task logreg --dataset cifar-10)
set_tests_properties(cli_learn_train_encrypted_logreg_cifar PROPERTIES PASS_REGULAR_EXPRESSION "use mnist or fashion-mnist")
add_test(NAME cli_learn_train_encrypted_softmax_no_model
         COMMAND cryptodl train-encrypted --task softmax --log-n 13 --features /nonexistent/model.onnx --train-from-test
                 --train 64 --data-dir ${PROJECT_SOURCE_DIR}/data)
set_tests_properties(cli_learn_train_encrypted_softmax_no_model PROPERTIES
  PASS_REGULAR_EXPRESSION "cannot find the feature extractor /nonexistent/model.onnx")
add_test(NAME cli_learn_train_encrypted_mlp_bad_hidden COMMAND cryptodl train-encrypted --task mlp --hidden 48)
set_tests_properties(cli_learn_train_encrypted_mlp_bad_hidden PROPERTIES
  PASS_REGULAR_EXPRESSION "--hidden 48: use a power of two from 16 to 256")
add_test(NAME cli_learn_train_encrypted_mlp_bad_option COMMAND cryptodl train-encrypted --task softmax --hidden 64)
set_tests_properties(cli_learn_train_encrypted_mlp_bad_option PROPERTIES
  PASS_REGULAR_EXPRESSION "--hidden, --batch, --momentum and --seed are options of --task mlp")

# --task mlp: a 197-16-10 network (pooled pixels and a bias, square activation) trained end to end on
# 128 images of the shipped test split at INSECURE test parameters (--log-n 14: 32 samples per ciphertext, the
# bootstrapping test preset with 9 computation levels; the smallest N that lays out 197 features), updates
# of 64 samples, one bootstrap each: the decrypted weights within 1e-4 of the plaintext twin's (the JSON's
# max_weight_diff), no NaN; then stopped and resumed bit for bit (train_encrypted_mlp_resume.cmake).
# One test: the uninterrupted run of the resume script is the former cli_learn_train_encrypted_mlp_tiny
# (its checks are made there), so the network (~4 s of CPU per update, ~20 s under ASan) is not trained
# once more for nothing; 3 updates (not 4) are enough for a resume after update 2 that wraps around.
add_test(NAME cli_learn_train_encrypted_mlp_resume
         COMMAND ${CMAKE_COMMAND} -DCRYPTODL=$<TARGET_FILE:cryptodl> -DDATA=${PROJECT_SOURCE_DIR}/data
                 -DWORK=${CMAKE_CURRENT_BINARY_DIR}/train_encrypted_mlp_resume
                 -P ${PROJECT_SOURCE_DIR}/tests/integration/train_encrypted_mlp_resume.cmake)
set_tests_properties(cli_learn_train_encrypted_mlp_resume PROPERTIES TIMEOUT 300)
add_test(NAME cli_learn_train_encrypted_help COMMAND cryptodl train-encrypted --help)
set_tests_properties(cli_learn_train_encrypted_help PROPERTIES
  PASS_REGULAR_EXPRESSION "usage: cryptodl train-encrypted --task logreg\\|softmax\\|mlp.*softmax +multiclass softmax regression on encrypted CNN features.*mlp +a 197-H-10 network.*--features M.*--hidden H")
