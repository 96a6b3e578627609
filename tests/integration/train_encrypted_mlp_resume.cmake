# train_encrypted_mlp_resume.cmake: `cryptodl train-encrypted --task mlp
# --checkpoint` at INSECURE test parameters (--log-n 14). A run stopped after
# update 2 (as by Ctrl-C: exit 130) and resumed must end in the same encrypted
# state, bit for bit, as an uninterrupted run from the same client key seed; the
# uninterrupted run's weights are within 1e-4 of the plaintext twin's. 128
# training images are 4 ciphertexts, 2 batches of 64: update 3, the one made
# after resuming, wraps around to the first batch.
# Run as: cmake -DCRYPTODL=... -DDATA=... -DWORK=... -P train_encrypted_mlp_resume.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(run ${CRYPTODL} train-encrypted --task mlp --log-n 14 --hidden 16 --batch 64 --iters 3 --train-from-test
        --train 128 --test 200 --threads 1 --json --data-dir ${DATA})

execute_process(COMMAND ${run} --checkpoint ${WORK}/a.ckpt RESULT_VARIABLE rc OUTPUT_VARIABLE out_a ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "uninterrupted run failed (${rc}): ${err}")
endif()
string(REGEX MATCH "\"state_blake2b\":\"[0-9a-f]+\"" state_a "${out_a}")
if(state_a STREQUAL "" OR NOT out_a MATCHES "\"bootstraps\":3," OR NOT out_a MATCHES "\"resumed_from\":0,")
  message(FATAL_ERROR "unexpected output: ${out_a}")
endif()
# The uninterrupted run is also the end-to-end check (formerly cli_learn_train_encrypted_mlp_tiny):
# a 197-16-10 network, 3 updates with one bootstrap each at INSECURE N = 2^14, the decrypted
# weights within 1e-4 of the plaintext twin's, no NaN.
if(NOT out_a MATCHES "\"task\":\"mlp\",.*\"hidden\":16,.*\"iterations\":3,.*\"bootstraps\":3,.*\"log_n\":14,\"secure\":false.*\"max_weight_diff\":[0-9.]+e-(0[5-9]|[1-9][0-9])"
   OR "${out_a}${err}" MATCHES "nan")
  message(FATAL_ERROR "the uninterrupted run is not a 3-update mlp within 1e-4 of its plaintext twin: ${out_a}")
endif()

file(COPY_FILE ${WORK}/a.ckpt.key ${WORK}/b.ckpt.key)
execute_process(COMMAND ${run} --checkpoint ${WORK}/b.ckpt --resume --stop-after 2 RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 130 OR NOT err MATCHES "interrupted after iteration 2 of 3" OR NOT EXISTS ${WORK}/b.ckpt)
  message(FATAL_ERROR "stopped run: exit ${rc}, ${err}")
endif()

# The resumed run also decrypts and checks its state against the twin after its update (--check-every 1, a
# debugging option that must leave the encrypted state alone: the hash below still matches).
execute_process(COMMAND ${run} --checkpoint ${WORK}/b.ckpt --resume --check-every 1 RESULT_VARIABLE rc
                OUTPUT_VARIABLE out_b ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out_b MATCHES "\"resumed_from\":2," OR NOT out_b MATCHES "\"bootstraps\":3,")
  message(FATAL_ERROR "resumed run failed (${rc}): ${out_b} ${err}")
endif()
if(NOT out_b MATCHES "\"checks\":\\[{\"update\":3,\"max_weight_diff\":[0-9.]+e-(0[5-9]|[1-9][0-9]),[^}]*}\\]}"
   OR NOT err MATCHES "check after update 3: max \\|W_enc - W_plain\\| = ")
  message(FATAL_ERROR "--check-every 1 after resuming: no check of update 3 within 1e-4: ${out_b} ${err}")
endif()
string(REGEX MATCH "\"state_blake2b\":\"[0-9a-f]+\"" state_b "${out_b}")
if(NOT state_a STREQUAL state_b)
  message(FATAL_ERROR "resumed state differs from the uninterrupted one: ${state_a} vs ${state_b}")
endif()
execute_process(COMMAND ${run} --checkpoint ${WORK}/a.ckpt --resume --momentum 0.8 RESULT_VARIABLE rc
                ERROR_VARIABLE err OUTPUT_QUIET)
if(NOT rc EQUAL 2 OR NOT err MATCHES "belongs to another run")
  message(FATAL_ERROR "checkpoint resumed with other options? exit ${rc}: ${err}")
endif()
message(STATUS "resumed = uninterrupted: ${state_b}")
