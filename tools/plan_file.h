/*
 * plan_file.h: the JSON plan file `cryptodl compile --out plan.json` writes
 * and the other pipeline commands read with --plan. The format, the strict
 * reader and the comparison with a fresh compilation are the library's
 * (src/client/plan_record.c, behind cdl_client_plan_json and
 * cdl_client_plan_open); these are the CLI's names for them, and the SHA-256
 * of a model file read from disk.
 *
 * No CLI dependency (only the library and libsodium), so the unit tests
 * compile it directly.
 */
#ifndef CDL_TOOLS_PLAN_FILE_H
#define CDL_TOOLS_PLAN_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "client/plan_record.h"
#include "cryptodl/cryptodl.h"

#define PLAN_FILE_FORMAT CDL_PLAN_FILE_FORMAT
#define PLAN_FILE_VERSION CDL_PLAN_FILE_VERSION
#define PLAN_FILE_MAX_BYTES CDL_PLAN_FILE_MAX_BYTES
#define PLAN_APPROX_MAX CDL_PLAN_APPROX_MAX
#define PLAN_MAX_GALOIS CDL_PLAN_MAX_GALOIS

typedef cdl_plan_options plan_options;
typedef cdl_plan_record plan_record;

/* SHA-256 of a file, lowercase hex (read in pieces). 0 on success, -1 with a message in err. */
int plan_sha256_file(const char *path, char hex[65], char *err, size_t errcap);

/* cdl_plan_record_from, _json, _parse, _compare and cdl_plan_packing_name (src/client/plan_record.h). */
void plan_record_from(const cdl_he_plan *plan, const cdl_nn_graph *g, const plan_options *opt, const char *sha256,
                      plan_record *rec);
char *plan_record_json(const plan_record *rec, const char *model_file);
int plan_record_parse(const uint8_t *data, size_t len, plan_record *rec, char *err, size_t errcap);
int plan_record_compare(const plan_record *file, const plan_record *now, char *err, size_t errcap);
const char *plan_packing_name(int packing);

#endif
