/* error.c: per-thread last-error message and status names. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cryptodl/version.h"

static _Thread_local char last_error[512];

cdl_status cdl_fail(cdl_status status, const char *fmt, ...)
{
    /* formatted aside first: callers may pass cdl_last_error() itself as an
     * argument ("%s: %s", path, cdl_last_error()), and vsnprintf into the
     * buffer it reads from is undefined */
    char buf[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    memcpy(last_error, buf, sizeof buf);
    return status;
}

const char *cdl_last_error(void) { return last_error; }

void cdl_clear_error(void) { last_error[0] = '\0'; }

const char *cdl_status_name(cdl_status status)
{
    switch (status) {
    case CDL_OK: return "ok";
    case CDL_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CDL_ERR_NO_MEMORY: return "out of memory";
    case CDL_ERR_IO: return "input/output error";
    case CDL_ERR_FORMAT: return "malformed data";
    case CDL_ERR_INSECURE: return "insecure parameters";
    case CDL_ERR_PARAMETERS: return "unusable parameters";
    case CDL_ERR_MISMATCH: return "mismatched operands";
    case CDL_ERR_UNSUPPORTED: return "unsupported";
    case CDL_ERR_EXHAUSTED: return "exhausted";
    case CDL_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

const char *cdl_version(void) { return CDL_VERSION_STRING; }
