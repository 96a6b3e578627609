# onnx.cmake: generate the protobuf-c reader for ONNX at build time from the
# onnx.proto that Debian's libonnx-dev installs (no generated code is vendored),
# and link libprotobuf-c (parser runtime) and jansson (parity fixtures, JSON
# output) through cdl_deps. Included by CMakeLists.txt after cdl_objects exists.
find_program(CDL_PROTOC_C protoc-c REQUIRED)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)

set(CDL_ONNX_PROTO_DIR "/usr/include/onnx" CACHE PATH "Folder holding onnx.proto (Debian: libonnx-dev)")
if(NOT EXISTS "${CDL_ONNX_PROTO_DIR}/onnx.proto")
  message(FATAL_ERROR "onnx.proto not found in ${CDL_ONNX_PROTO_DIR}: install libonnx-dev or set CDL_ONNX_PROTO_DIR")
endif()

set(CDL_ONNX_GEN_DIR "${PROJECT_BINARY_DIR}/generated/onnx")
file(MAKE_DIRECTORY "${CDL_ONNX_GEN_DIR}")
add_custom_command(
  OUTPUT "${CDL_ONNX_GEN_DIR}/onnx.pb-c.c" "${CDL_ONNX_GEN_DIR}/onnx.pb-c.h"
  COMMAND ${CDL_PROTOC_C} "--proto_path=${CDL_ONNX_PROTO_DIR}" "--c_out=${CDL_ONNX_GEN_DIR}" "${CDL_ONNX_PROTO_DIR}/onnx.proto"
  DEPENDS "${CDL_ONNX_PROTO_DIR}/onnx.proto"
  COMMENT "protoc-c: generating the ONNX reader from ${CDL_ONNX_PROTO_DIR}/onnx.proto"
  VERBATIM)
# Generated code is not ours to fix: no -Werror noise from it.
set_source_files_properties("${CDL_ONNX_GEN_DIR}/onnx.pb-c.c" PROPERTIES GENERATED TRUE COMPILE_OPTIONS "-Wno-error;-w")
target_sources(cdl_objects PRIVATE "${CDL_ONNX_GEN_DIR}/onnx.pb-c.c")
target_include_directories(cdl_objects PRIVATE "${CDL_ONNX_GEN_DIR}")
target_link_libraries(cdl_deps INTERFACE PkgConfig::PROTOBUFC PkgConfig::JANSSON)
# Where the shipped MNIST test set lives when neither --data-dir nor CDL_SOURCE_DIR says.
target_compile_definitions(cdl_objects PRIVATE CDL_SOURCE_DIR_DEFAULT="${PROJECT_SOURCE_DIR}")
