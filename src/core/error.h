/*
 * error.h: how the library reports failures. cdl_fail() records a formatted
 * message in the calling thread's last-error buffer and returns the status,
 * so that a failing path reads `return cdl_fail(CDL_ERR_FORMAT, "...", ...);`.
 */
#ifndef CDL_CORE_ERROR_H
#define CDL_CORE_ERROR_H

#include "cryptodl/common.h"

#if defined(__GNUC__)
#define CDL_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define CDL_PRINTF(fmt_index, first_arg)
#endif

cdl_status cdl_fail(cdl_status status, const char *fmt, ...) CDL_PRINTF(2, 3);

/* Propagate a failure: evaluate expr once, return its status if not CDL_OK. */
#define CDL_TRY(expr)                         \
    do {                                      \
        cdl_status cdl_try_status_ = (expr);  \
        if (cdl_try_status_ != CDL_OK)        \
            return cdl_try_status_;           \
    } while (0)

/* Same, but jump to a cleanup label after storing the status in `st`. */
#define CDL_TRY_GOTO(st, expr, label) \
    do {                              \
        (st) = (expr);                \
        if ((st) != CDL_OK)           \
            goto label;               \
    } while (0)

#endif
