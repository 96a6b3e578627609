/* fuzz_plan_file.c: libFuzzer target for the JSON plan file reader of the
 * client layer (src/client/plan_record.c, what cdl_client_plan_open and the
 * CLI's --plan read): any byte string is refused with a message or accepted
 * with every field in range; an accepted record written out and read again
 * must give the same record. Seeds: tests/fuzz/corpus/plan_file/. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/plan_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cdl_plan_record r, back;
    char err[512];
    if (cdl_plan_record_parse(data, size, &r, err, sizeof err) != 0) {
        if (!err[0])
            abort(); /* a refusal always says why */
        return 0;
    }
    if (r.log_n < 13 || r.log_n > 16 || r.q_count < 1 || r.p_count < 1 || r.input_rank < 1 ||
        r.input_rank > CDL_NN_MAX_RANK ||
        (r.packing == CDL_HE_PACKING_BATCH ? r.batch_capacity != (size_t)1 << (r.log_n - 1)
                                           : r.batch_capacity > (size_t)1 << (r.log_n - 1)) ||
        (r.packing == CDL_HE_PACKING_BATCH && (r.n_galois || r.input_ciphertexts != r.input_size)) ||
        (r.opt.log_n && (r.opt.log_n < 13 || r.opt.log_n > 16)) || r.opt.output_bits < 2 || r.opt.output_bits > 30)
        abort();
    char *text = cdl_plan_record_json(&r, "fuzz");
    if (!text)
        return 0;
    if (cdl_plan_record_parse((const uint8_t *)text, strlen(text), &back, err, sizeof err) != 0 ||
        cdl_plan_record_compare(&back, &r, err, sizeof err) != 0 || memcmp(&back.opt, &r.opt, sizeof r.opt) != 0)
        abort();
    free(text);
    return 0;
}
