# train_encrypted_softmax_resume.cmake: `cryptodl train-encrypted --task softmax
# --checkpoint` at INSECURE test parameters (--log-n 13). A run stopped after
# iteration 3 (as by Ctrl-C: exit 130) and resumed must end in the same
# encrypted state, bit for bit, as an uninterrupted run from the same client
# key seed; the feature cache is written by the first run and read by the
# others; a checkpoint is not resumed with other options.
# Run as: cmake -DCRYPTODL=... -DDATA=... -DSRC=... -DWORK=... -P train_encrypted_softmax_resume.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(ENV{CDL_SOURCE_DIR} ${SRC})
set(run ${CRYPTODL} train-encrypted --task softmax --log-n 13 --train-from-test --train 128 --test 300 --iters 5
        --threads 1 --json --data-dir ${DATA} --features-cache ${WORK}/features.cache)

# 1. uninterrupted (extracts the features and fills the cache)
execute_process(COMMAND ${run} --checkpoint ${WORK}/a.ckpt RESULT_VARIABLE rc OUTPUT_VARIABLE out_a ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "uninterrupted run failed (${rc}): ${err}")
endif()
string(REGEX MATCH "\"state_blake2b\":\"[0-9a-f]+\"" state_a "${out_a}")
if(state_a STREQUAL "" OR NOT out_a MATCHES "\"bootstraps\":2," OR NOT out_a MATCHES "\"resumed_from\":0,"
   OR NOT out_a MATCHES "\"features_from_cache\":0" OR NOT EXISTS ${WORK}/features.cache)
  message(FATAL_ERROR "unexpected output: ${out_a}")
endif()

# 2. the same key seed, stopped after iteration 3
file(COPY_FILE ${WORK}/a.ckpt.key ${WORK}/b.ckpt.key)
execute_process(COMMAND ${run} --checkpoint ${WORK}/b.ckpt --resume --stop-after 3 RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 130 OR NOT err MATCHES "interrupted after iteration 3 of 5" OR NOT EXISTS ${WORK}/b.ckpt
   OR NOT err MATCHES "from the cache")
  message(FATAL_ERROR "stopped run: exit ${rc}, ${err}")
endif()

# 3. resumed
execute_process(COMMAND ${run} --checkpoint ${WORK}/b.ckpt --resume RESULT_VARIABLE rc OUTPUT_VARIABLE out_b
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out_b MATCHES "\"resumed_from\":3," OR NOT out_b MATCHES "\"bootstraps\":2,")
  message(FATAL_ERROR "resumed run failed (${rc}): ${out_b} ${err}")
endif()
string(REGEX MATCH "\"state_blake2b\":\"[0-9a-f]+\"" state_b "${out_b}")
if(NOT state_a STREQUAL state_b)
  message(FATAL_ERROR "resumed state differs from the uninterrupted one: ${state_a} vs ${state_b}")
endif()

# 4. refusals: other options with --resume; an existing checkpoint without --resume
execute_process(COMMAND ${run} --checkpoint ${WORK}/a.ckpt --resume --lr 0.3 RESULT_VARIABLE rc ERROR_VARIABLE err
                OUTPUT_QUIET)
if(NOT rc EQUAL 2 OR NOT err MATCHES "belongs to another run")
  message(FATAL_ERROR "checkpoint resumed with other options? exit ${rc}: ${err}")
endif()
execute_process(COMMAND ${run} --checkpoint ${WORK}/a.ckpt RESULT_VARIABLE rc ERROR_VARIABLE err OUTPUT_QUIET)
if(NOT rc EQUAL 2 OR NOT err MATCHES "exists: pass --resume")
  message(FATAL_ERROR "existing checkpoint overwritten? exit ${rc}: ${err}")
endif()
message(STATUS "resumed = uninterrupted: ${state_b}")
