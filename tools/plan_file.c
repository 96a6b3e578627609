/*
 * plan_file.c: the CLI's side of the JSON plan file (see plan_file.h): the
 * SHA-256 of a model file, and the library's plan-file functions under the
 * names the commands and their tests use.
 */
#include "plan_file.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int plan_sha256_file(const char *path, char hex[65], char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    unsigned char buf[1 << 16], digest[crypto_hash_sha256_BYTES];
    size_t r;
    while ((r = fread(buf, 1, sizeof buf, f)) > 0)
        crypto_hash_sha256_update(&st, buf, r);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errcap, "cannot read %s", path);
        return -1;
    }
    crypto_hash_sha256_final(&st, digest);
    sodium_bin2hex(hex, 65, digest, sizeof digest);
    return 0;
}

void plan_record_from(const cdl_he_plan *plan, const cdl_nn_graph *g, const plan_options *opt, const char *sha256,
                      plan_record *rec)
{
    cdl_plan_record_from(plan, g, opt, sha256, rec);
}

char *plan_record_json(const plan_record *rec, const char *model_file) { return cdl_plan_record_json(rec, model_file); }

int plan_record_parse(const uint8_t *data, size_t len, plan_record *rec, char *err, size_t errcap)
{
    return cdl_plan_record_parse(data, len, rec, err, errcap);
}

int plan_record_compare(const plan_record *file, const plan_record *now, char *err, size_t errcap)
{
    return cdl_plan_record_compare(file, now, err, errcap);
}

const char *plan_packing_name(int packing) { return cdl_plan_packing_name(packing); }
