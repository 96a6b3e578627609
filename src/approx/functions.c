/*
 * functions.c: the activations (ReLU, Sigmoid, Tanh), their derivatives, their
 * names, and their Taylor series at 0.
 *
 * Taylor coefficients come from the Riccati equation tanh' = 1 - tanh^2,
 * which gives (n+1) t_{n+1} = [n == 0] - sum_{k=0..n} t_k t_{n-k}, and from
 * sigmoid(x) = (1 + tanh(x/2)) / 2. The series converge only for |x| < pi/2
 * (tanh) and |x| < pi (sigmoid): the poles at +-i pi/2 and +-i pi are why a
 * Taylor polynomial is useless on [-6, 6] and the other methods are needed.
 * ReLU is not analytic at 0, so it has no Taylor series (the library says so
 * instead of substituting a surrogate).
 */
#include <math.h>
#include <strings.h>

#include "approx/approx_internal.h"
#include "core/error.h"

static const char *const act_names[CDL_ACT_COUNT] = {"relu", "sigmoid", "tanh"};
static const char *const method_names[CDL_APPROX_METHOD_COUNT] = {"ls",        "ls_gauss", "cheb_interp", "cheb_proj",
                                                                  "remez",     "derivative", "taylor"};

const char *cdl_activation_name(cdl_activation fn)
{
    if (fn == CDL_ACT_NONE)
        return "none";
    return ((unsigned)fn < CDL_ACT_COUNT) ? act_names[fn] : NULL;
}

cdl_status cdl_activation_from_name(const char *name, cdl_activation *out)
{
    if (!name || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "activation name: NULL argument");
    for (int i = 0; i < CDL_ACT_COUNT; i++)
        if (!strcasecmp(name, act_names[i])) {
            *out = (cdl_activation)i;
            return CDL_OK;
        }
    return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "unknown activation '%s': use relu, sigmoid or tanh", name);
}

const char *cdl_approx_method_name(cdl_approx_method method)
{
    if (method == CDL_APPROX_GIVEN)
        return "given";
    return ((unsigned)method < CDL_APPROX_METHOD_COUNT) ? method_names[method] : NULL;
}

cdl_status cdl_approx_method_from_name(const char *name, cdl_approx_method *out)
{
    static const struct {
        const char *alias;
        cdl_approx_method m;
    } aliases[] = {{"lsq", CDL_APPROX_LS},          {"gauss", CDL_APPROX_LS_GAUSS},
                   {"chebyshev", CDL_APPROX_CHEB_INTERP}, {"minimax", CDL_APPROX_REMEZ},
                   {"deriv", CDL_APPROX_DERIVATIVE}};
    if (!name || !out)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "method name: NULL argument");
    for (int i = 0; i < CDL_APPROX_METHOD_COUNT; i++)
        if (!strcasecmp(name, method_names[i])) {
            *out = (cdl_approx_method)i;
            return CDL_OK;
        }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (!strcasecmp(name, aliases[i].alias)) {
            *out = aliases[i].m;
            return CDL_OK;
        }
    return cdl_fail(CDL_ERR_INVALID_ARGUMENT,
                    "unknown method '%s': use ls, ls_gauss, cheb_interp, cheb_proj, remez, derivative or taylor", name);
}

static long double relu_l(long double x, const void *ctx)
{
    (void)ctx;
    return x > 0 ? x : 0.0L;
}
static long double relu_d(long double x, const void *ctx)
{
    (void)ctx;
    return x > 0 ? 1.0L : (x < 0 ? 0.0L : 0.5L);
}
static long double sigmoid_l(long double x, const void *ctx)
{
    (void)ctx;
    if (x >= 0)
        return 1.0L / (1.0L + expl(-x));
    long double e = expl(x);
    return e / (1.0L + e);
}
static long double sigmoid_d(long double x, const void *ctx)
{
    long double s = sigmoid_l(x, ctx);
    return s * (1.0L - s);
}
static long double tanh_l(long double x, const void *ctx)
{
    (void)ctx;
    return tanhl(x);
}
static long double tanh_d(long double x, const void *ctx)
{
    (void)ctx;
    long double c = coshl(x);
    return 1.0L / (c * c);
}

void cdl_approx_target_activation(cdl_activation fn, cdl_approx_target *t)
{
    t->ctx = NULL;
    t->n_kinks = 0;
    switch (fn) {
    case CDL_ACT_RELU:
        t->f = relu_l;
        t->df = relu_d;
        t->n_kinks = 1;
        t->kinks[0] = 0.0L;
        break;
    case CDL_ACT_SIGMOID:
        t->f = sigmoid_l;
        t->df = sigmoid_d;
        break;
    default:
        t->f = tanh_l;
        t->df = tanh_d;
        break;
    }
}

double cdl_activation_eval(cdl_activation fn, double x)
{
    cdl_approx_target t;
    if ((unsigned)fn >= CDL_ACT_COUNT)
        return NAN;
    cdl_approx_target_activation(fn, &t);
    return (double)t.f((long double)x, NULL);
}

void cdl_taylor_tanh(int degree, long double *p)
{
    long double t[CDL_APPROX_NMAX + 1] = {0};
    t[0] = 0.0L;
    for (int n = 0; n < degree; n++) {
        long double s = (n == 0) ? 1.0L : 0.0L;
        for (int k = 0; k <= n; k++)
            s -= t[k] * t[n - k];
        t[n + 1] = s / (long double)(n + 1);
    }
    for (int n = 0; n <= degree; n++)
        p[n] = t[n];
}

void cdl_taylor_sigmoid(int degree, long double *p)
{
    cdl_taylor_tanh(degree, p);
    long double scale = 0.5L;
    for (int n = 0; n <= degree; n++) {
        p[n] *= scale; /* tanh(x/2)/2: coefficient t_n / 2^(n+1) */
        scale *= 0.5L;
    }
    p[0] += 0.5L;
}
