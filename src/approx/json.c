/*
 * json.c: the JSON description of a polynomial activation, the interchange
 * format between this library, the Python training companion and the ONNX
 * importer (docs/activations.md states the schema):
 *
 *   {"type": "poly_activation", "function": "relu", "method": "remez",
 *    "degree": 4, "interval": [-6, 6], "basis": "power",
 *    "coefficients": [c0, c1, ...],      <- in `basis`, lowest degree first
 *    "chebyshev": [...],                  <- always Chebyshev on the interval
 *    "max_abs_error": ..., "rms_error": ..., "gaussian_mse": ...,
 *    "gaussian": {"mu": 0, "sigma": 2}}
 *
 * Written and parsed with libjansson; numbers are written with 17
 * significant digits so that doubles round-trip exactly.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "approx/approx_internal.h"
#include "core/error.h"
#include "core/memory.h"

static json_t *array_of(const double *v, int n)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    for (int i = 0; i < n; i++)
        if (json_array_append_new(arr, json_real(v[i])) != 0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static json_t *to_object(const cdl_poly_approx *p)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    double iv[2] = {p->a, p->b};
    int bad = 0;
    bad |= json_object_set_new(o, "type", json_string("poly_activation"));
    bad |= json_object_set_new(o, "function", json_string(cdl_activation_name(p->fn)));
    bad |= json_object_set_new(o, "method", json_string(cdl_approx_method_name(p->method)));
    bad |= json_object_set_new(o, "degree", json_integer(p->degree));
    bad |= json_object_set_new(o, "interval", array_of(iv, 2));
    bad |= json_object_set_new(o, "basis", json_string("power"));
    bad |= json_object_set_new(o, "coefficients", array_of(p->power, p->degree + 1));
    bad |= json_object_set_new(o, "chebyshev", array_of(p->chebyshev, p->degree + 1));
    if (p->fn != CDL_ACT_NONE) { /* NaN is not JSON: no errors without a reference */
        bad |= json_object_set_new(o, "max_abs_error", json_real(p->max_abs_error));
        bad |= json_object_set_new(o, "rms_error", json_real(p->rms_error));
        bad |= json_object_set_new(o, "gaussian_mse", json_real(p->gaussian_mse));
    }
    json_t *g = json_object();
    if (g) {
        bad |= json_object_set_new(g, "mu", json_real(p->gauss_mu));
        bad |= json_object_set_new(g, "sigma", json_real(p->gauss_sigma));
    }
    bad |= json_object_set_new(o, "gaussian", g);
    {
        /* what evaluating it on a ciphertext costs (Chebyshev basis in t, as
         * cdl_ckks_eval_poly_approx does it; see poly_eval.c) */
        cdl_poly_eval_plan plan;
        if (cdl_poly_eval_plan_chebyshev(p->chebyshev, p->degree, &plan) == CDL_OK) {
            json_t *e = json_object();
            if (e) {
                bad |= json_object_set_new(e, "depth", json_integer(plan.depth));
                bad |= json_object_set_new(e, "ct_mults", json_integer(plan.ct_mults));
                bad |= json_object_set_new(e, "const_mults", json_integer(plan.const_mults));
            }
            bad |= json_object_set_new(o, "he_cost", e);
        }
    }
    if (p->method == CDL_APPROX_REMEZ) {
        json_t *r = json_object();
        if (r) {
            bad |= json_object_set_new(r, "iterations", json_integer(p->iterations));
            bad |= json_object_set_new(r, "equioscillation_spread", json_real(p->equioscillation_spread));
            bad |= json_object_set_new(r, "converged", json_boolean(p->converged));
        }
        bad |= json_object_set_new(o, "remez", r);
    }
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

cdl_status cdl_poly_approx_to_json(const cdl_poly_approx *p, char **json)
{
    if (!p || !json || p->degree < 0 || p->degree > CDL_APPROX_MAX_DEGREE || !cdl_activation_name(p->fn) ||
        !cdl_approx_method_name(p->method) || !(p->a < p->b))
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx to_json: invalid polynomial description");
    json_t *o = to_object(p);
    if (!o)
        return cdl_fail(CDL_ERR_NO_MEMORY, "approx to_json: out of memory building the JSON object");
    char *s = json_dumps(o, JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        return cdl_fail(CDL_ERR_NO_MEMORY, "approx to_json: out of memory writing the JSON text");
    *json = s;
    return CDL_OK;
}

void cdl_approx_string_free(char *s) { free(s); }

static cdl_status read_array(json_t *arr, const char *key, double *out, int n)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"%s\" must be an array of %d numbers (degree + 1)", key,
                        n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"%s\"[%d] is not a finite number", key, i);
        out[i] = json_number_value(v);
    }
    return CDL_OK;
}

static cdl_status from_object(json_t *o, cdl_poly_approx *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o))
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: the JSON text is not an object");
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type || strcmp(type, "poly_activation"))
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"type\" must be \"poly_activation\"");
    json_t *fnv = json_object_get(o, "function"), *mv = json_object_get(o, "method");
    if ((fnv && !json_is_string(fnv)) || (mv && !json_is_string(mv)))
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"function\" and \"method\" must be strings");
    const char *fn = json_string_value(fnv), *method = json_string_value(mv);
    /* a polynomial without a known reference (learned, square, ...) is still a valid activation */
    if (!fn || cdl_activation_from_name(fn, &out->fn) != CDL_OK)
        out->fn = CDL_ACT_NONE;
    if (!method || cdl_approx_method_from_name(method, &out->method) != CDL_OK)
        out->method = CDL_APPROX_GIVEN;
    cdl_clear_error();
    json_t *deg = json_object_get(o, "degree");
    if (!json_is_integer(deg) || json_integer_value(deg) < 0 || json_integer_value(deg) > CDL_APPROX_MAX_DEGREE)
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"degree\" must be an integer in 0..%d",
                        CDL_APPROX_MAX_DEGREE);
    out->degree = (int)json_integer_value(deg);
    double iv[2] = {-1.0, 1.0};
    if (json_object_get(o, "interval"))
        CDL_TRY(read_array(json_object_get(o, "interval"), "interval", iv, 2));
    if (!(iv[0] < iv[1]))
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"interval\" [%g, %g] must have a < b", iv[0], iv[1]);
    out->a = iv[0];
    out->b = iv[1];
    const char *basis = json_string_value(json_object_get(o, "basis"));
    if (!basis)
        basis = "power";
    int n = out->degree + 1;
    if (!strcmp(basis, "power")) {
        CDL_TRY(read_array(json_object_get(o, "coefficients"), "coefficients", out->power, n));
        CDL_TRY(cdl_poly_power_to_chebyshev(out->power, out->degree, out->a, out->b, out->chebyshev));
    } else if (!strcmp(basis, "chebyshev")) {
        CDL_TRY(read_array(json_object_get(o, "coefficients"), "coefficients", out->chebyshev, n));
        CDL_TRY(cdl_poly_chebyshev_to_power(out->chebyshev, out->degree, out->a, out->b, out->power));
    } else {
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"basis\" must be \"power\" or \"chebyshev\", not '%s'",
                        basis);
    }
    double mu = NAN, sigma = 0.0; /* defaults: the middle of the interval, (b - a) / 6 */
    json_t *g = json_object_get(o, "gaussian");
    if (json_is_object(g)) {
        json_t *m = json_object_get(g, "mu"), *s = json_object_get(g, "sigma");
        if (json_is_number(m))
            mu = json_number_value(m);
        if (json_is_number(s))
            sigma = json_number_value(s);
    }
    if ((!isnan(mu) && !isfinite(mu)) || !isfinite(sigma) || sigma < 0)
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: \"gaussian\" needs finite mu and sigma >= 0");
    CDL_TRY(cdl_approx_analyze(out, mu, sigma));
    /* Finite coefficients can still overflow once converted to the other
     * basis or evaluated for the error figures: refuse what we could not
     * write back as JSON (which has no infinities). */
    for (int i = 0; i < n; i++)
        if (!isfinite(out->power[i]) || !isfinite(out->chebyshev[i]))
            return cdl_fail(CDL_ERR_FORMAT, "poly_activation: the coefficients are too large: the polynomial "
                            "overflows a double on [%g, %g]", out->a, out->b);
    if (out->fn != CDL_ACT_NONE &&
        (!isfinite(out->max_abs_error) || !isfinite(out->rms_error) || !isfinite(out->gaussian_mse)))
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: the coefficients are too large: its error against %s "
                        "overflows a double", cdl_activation_name(out->fn));
    return CDL_OK;
}

cdl_status cdl_poly_approx_from_json(const char *text, cdl_poly_approx *out)
{
    if (!text || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx from_json: NULL argument");
    json_error_t err;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    if (!o)
        return cdl_fail(CDL_ERR_FORMAT, "poly_activation: invalid JSON at line %d column %d: %s", err.line,
                        err.column, err.text);
    cdl_status st = from_object(o, out);
    json_decref(o);
    return st;
}

cdl_status cdl_poly_approx_save(const cdl_poly_approx *p, const char *path)
{
    if (!path)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx save: NULL path");
    char *s;
    CDL_TRY(cdl_poly_approx_to_json(p, &s));
    FILE *f = fopen(path, "w");
    if (!f) {
        free(s);
        return cdl_fail(CDL_ERR_IO, "cannot open '%s' for writing: check the folder exists and is writable", path);
    }
    int bad = fputs(s, f) < 0 || fputc('\n', f) == EOF;
    bad |= fclose(f) != 0;
    free(s);
    if (bad)
        return cdl_fail(CDL_ERR_IO, "could not write '%s' (disk full?)", path);
    return CDL_OK;
}

cdl_status cdl_poly_approx_load(const char *path, cdl_poly_approx *out)
{
    if (!path || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "approx load: NULL argument");
    json_error_t err;
    FILE *f = fopen(path, "rb");
    if (!f)
        return cdl_fail(CDL_ERR_IO, "cannot open '%s': check the path and the permissions", path);
    json_t *o = json_loadf(f, JSON_REJECT_DUPLICATES, &err);
    fclose(f);
    if (!o)
        return cdl_fail(CDL_ERR_FORMAT, "'%s' is not valid JSON (line %d column %d): %s", path, err.line, err.column,
                        err.text);
    cdl_status st = from_object(o, out);
    json_decref(o);
    return st;
}
