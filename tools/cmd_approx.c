/*
 * cmd_approx.c: `cryptodl approx`, the command-line face of the approx layer
 * (include/cryptodl/approx.h): one approximation with its coefficients and
 * errors (text or JSON), a Markdown table of errors for every function x
 * method x degree, and a PNG plot (drawn by gnuplot) of a function, its
 * approximations and their errors.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"

#define CMD "approx"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cryptodl approx [--fn relu|sigmoid|tanh] [--degree D] [--interval A:B]\n"
            "                       [--method M] [--mu M] [--sigma S] [--tol T] [--json] [--out FILE.json]\n"
            "       cryptodl approx --table [--degrees 2,3,4,5,7,9,15] [--out FILE.md]\n"
            "       cryptodl approx --plot OUT.png [--fn F] [--degree D] [--interval A:B] [--methods M1,M2,...]\n"
            "       cryptodl approx --convergence OUT.png [--fn F] [--interval A:B] [--degrees 1,2,...]\n"
            "       cryptodl approx --load FILE.json [--json] [--plot OUT.png] [--mu M] [--sigma S]\n\n"
            "Polynomial approximation of an activation function on an interval, with its error:\n"
            "max |f - p| on [A, B], the RMS error on [A, B], and E[(f(x) - p(x))^2] for x ~ N(mu, sigma)\n"
            "over the whole real line.\n\n"
            "methods (--method):\n"
            "  ls           least squares on [A, B], uniform weight\n"
            "  ls_gauss     least squares weighted by N(mu, sigma) (the pre-activation distribution)\n"
            "  cheb_interp  interpolation at the D+1 Chebyshev points\n"
            "  cheb_proj    truncated Chebyshev series\n"
            "  remez        minimax (best uniform approximation), Remez exchange   [default]\n"
            "  derivative   CryptoDL: least-squares fit of f' (a step for ReLU), integrated\n"
            "  taylor       Taylor series at 0 (baseline; undefined for ReLU)\n\n"
            "options:\n"
            "  --fn F           relu (default), sigmoid or tanh\n"
            "  --degree D       1..%d (default 4)\n"
            "  --interval A:B   default -6:6 for relu and tanh, -8:8 for sigmoid\n"
            "  --mu M           mean of the Gaussian weight and error (default: the middle of [A, B])\n"
            "  --sigma S        its standard deviation (default (B - A) / 6)\n"
            "  --tol T          Remez stops when the relative spread of |error| on the extrema < T (1e-9)\n"
            "  --json           print the JSON description (coefficients in the power basis, lowest\n"
            "                   degree first; chebyshev; max_abs_error; rms_error; gaussian_mse; ...)\n"
            "  --out FILE       write the JSON description (or, with --table, the Markdown) to FILE\n"
            "  --table          Markdown tables of the errors of every function x method x degree\n"
            "  --degrees LIST   degrees for --table (default 2,3,4,5,7,9,15) or --convergence (1..15)\n"
            "  --plot OUT.png   draw f, its approximations of degree D and their errors (needs gnuplot)\n"
            "  --methods LIST   methods for --plot (default: all that apply)\n"
            "  --convergence OUT.png  max |f - p| against the degree (default 1..15) for every method\n"
            "  --load FILE.json read a polynomial activation (docs/activations.md schema, e.g. one the\n"
            "                   trainer learned) and report its errors and CKKS cost, or plot it\n"
            "  -h, --help       this help\n\n"
            "examples:\n"
            "  cryptodl approx --fn relu --degree 4 --interval -6:6 --method remez --json\n"
            "  cryptodl approx --table --out table.md\n"
            "  cryptodl approx --plot relu4.png --fn relu --degree 4\n",
            CDL_APPROX_MAX_DEGREE);
}

static void default_interval(cdl_activation fn, double *a, double *b)
{
    *a = fn == CDL_ACT_SIGMOID ? -8.0 : -6.0;
    *b = -*a;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_interval(const char *s, double *a, double *b)
{
    const char *colon = strchr(s + 1, ':'); /* skip a leading '-' */
    if (!colon)
        return -1;
    char left[64];
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof left)
        return -1;
    memcpy(left, s, n);
    left[n] = 0;
    if (parse_double(left, a) || parse_double(colon + 1, b) || !(*a < *b))
        return -1;
    return 0;
}

/* Parse "2,3,4" into ints (max n); returns the count, or -1. */
static int parse_int_list(const char *s, int *out, int n)
{
    int count = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || count >= n || v < 1 || v > CDL_APPROX_MAX_DEGREE)
            return -1;
        out[count++] = (int)v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    return count;
}

static void print_text(const cdl_poly_approx *p, double tol)
{
    if (p->fn == CDL_ACT_NONE)
        printf("polynomial activation of degree %d on [%g, %g] (method: %s; no reference function)\n", p->degree,
               p->a, p->b, cdl_approx_method_name(p->method));
    else
        printf("%s approximated by %s, degree %d, on [%g, %g]\n", cdl_activation_name(p->fn),
               cdl_approx_method_name(p->method), p->degree, p->a, p->b);
    printf("power coefficients (p(x) = sum c_k x^k):\n");
    for (int k = 0; k <= p->degree; k++)
        printf("  c%-2d = % .17g\n", k, p->power[k]);
    printf("Chebyshev coefficients (p(x) = sum a_k T_k(t), t = (2x - a - b)/(b - a)):\n");
    for (int k = 0; k <= p->degree; k++)
        printf("  a%-2d = % .17g\n", k, p->chebyshev[k]);
    if (p->fn == CDL_ACT_NONE) {
        printf("no reference function: no errors to report\n");
    } else {
        printf("max_abs_error   %.6e   (max over [%g, %g] of |f - p|)\n", p->max_abs_error, p->a, p->b);
        printf("rms_error       %.6e   (RMS of f - p over [%g, %g])\n", p->rms_error, p->a, p->b);
        printf("gaussian_mse    %.6e   (E[(f - p)^2], x ~ N(%g, %g))\n", p->gaussian_mse, p->gauss_mu,
               p->gauss_sigma);
    }
    cdl_poly_eval_plan plan;
    if (cdl_poly_eval_plan_chebyshev(p->chebyshev, p->degree, &plan) == CDL_OK)
        printf("on a CKKS ciphertext (Chebyshev basis): %d levels, %d ciphertext multiplications (%d for the "
               "basis), %d constant multiplications\n",
               plan.depth, plan.ct_mults, plan.power_mults, plan.const_mults);
    if (p->method == CDL_APPROX_REMEZ)
        printf("remez: %d iterations, equioscillation spread %.3e (tolerance %.1e): %s\n", p->iterations,
               p->equioscillation_spread, tol, p->converged ? "converged" : "NOT converged");
}

static const int default_degrees[] = {2, 3, 4, 5, 7, 9, 15};

static int run_table(const int *degrees, int nd, const cdl_approx_options *opt, const char *out_path)
{
    FILE *out = stdout;
    if (out_path) {
        out = fopen(out_path, "w");
        if (!out) {
            fprintf(stderr, "cryptodl approx: cannot write '%s': %s\n", out_path, strerror(errno));
            return CLI_EXIT_FAILURE;
        }
    }
    static const char *const what[3] = {"max |f - p| on the interval", "RMS error on the interval",
                                        "E[(f - p)^2] under N(0, sigma)"};
    cli_progress prog;
    cli_progress_start(&prog, "approx table", (size_t)CDL_ACT_COUNT * CDL_APPROX_METHOD_COUNT * (size_t)nd);
    size_t done = 0;
    int rc = CLI_EXIT_OK;
    for (int f = 0; f < CDL_ACT_COUNT; f++) {
        double a, b;
        default_interval((cdl_activation)f, &a, &b);
        double sigma = opt->sigma > 0 ? opt->sigma : (b - a) / 6.0;
        static cdl_poly_approx res[CDL_APPROX_METHOD_COUNT][16];
        int ok[CDL_APPROX_METHOD_COUNT][16] = {{0}};
        for (int m = 0; m < CDL_APPROX_METHOD_COUNT; m++)
            for (int d = 0; d < nd; d++) {
                cdl_status st = cdl_approx_compute((cdl_activation)f, (cdl_approx_method)m, degrees[d], a, b, opt,
                                                   &res[m][d]);
                ok[m][d] = st == CDL_OK;
                if (st != CDL_OK && st != CDL_ERR_UNSUPPORTED) {
                    fprintf(stderr, "cryptodl approx: %s/%s/%d failed: %s\n", cdl_activation_name((cdl_activation)f),
                            cdl_approx_method_name((cdl_approx_method)m), degrees[d], cdl_last_error());
                    rc = CLI_EXIT_FAILURE;
                }
                cli_progress_update(&prog, ++done);
            }
        fprintf(out, "### %s on [%g, %g] (sigma = %g)\n\n", cdl_activation_name((cdl_activation)f), a, b, sigma);
        for (int w = 0; w < 3; w++) {
            fprintf(out, "%s:\n\n| method |", what[w]);
            for (int d = 0; d < nd; d++)
                fprintf(out, " d=%d |", degrees[d]);
            fprintf(out, "\n| --- |");
            for (int d = 0; d < nd; d++)
                fprintf(out, " ---: |");
            fprintf(out, "\n");
            for (int m = 0; m < CDL_APPROX_METHOD_COUNT; m++) {
                fprintf(out, "| %s |", cdl_approx_method_name((cdl_approx_method)m));
                for (int d = 0; d < nd; d++) {
                    if (!ok[m][d]) {
                        fprintf(out, " n/a |");
                        continue;
                    }
                    double v = w == 0 ? res[m][d].max_abs_error
                                      : (w == 1 ? res[m][d].rms_error : res[m][d].gaussian_mse);
                    fprintf(out, " %.2e%s |", v,
                            (m == CDL_APPROX_REMEZ && !res[m][d].converged) ? " (not converged)" : "");
                }
                fprintf(out, "\n");
            }
            fprintf(out, "\n");
        }
    }
    cli_progress_finish(&prog);
    if (out != stdout && fclose(out) != 0) {
        fprintf(stderr, "cryptodl approx: could not finish writing '%s'\n", out_path);
        return CLI_EXIT_FAILURE;
    }
    return rc;
}

static int draw_plot(cdl_activation fn, int degree, double a, double b, const cdl_poly_approx *res, const int *used,
                     int nu, const char *png);

static int run_plot(cdl_activation fn, int degree, double a, double b, const int *methods, int nm,
                    const cdl_approx_options *opt, const char *png)
{
    cdl_poly_approx res[CDL_APPROX_METHOD_COUNT];
    int used[CDL_APPROX_METHOD_COUNT];
    int nu = 0;
    for (int i = 0; i < nm; i++) {
        cdl_status st = cdl_approx_compute(fn, (cdl_approx_method)methods[i], degree, a, b, opt, &res[nu]);
        if (st == CDL_ERR_UNSUPPORTED && nm == CDL_APPROX_METHOD_COUNT)
            continue; /* "all methods": skip Taylor for ReLU quietly */
        if (st != CDL_OK)
            return cli_fail_status(CMD, "approximation failed");
        used[nu++] = methods[i];
    }
    return draw_plot(fn, degree, a, b, res, used, nu, png);
}

/* Create the temporary gnuplot data file named by the mkstemp template
 * `path` (rewritten in place); NULL after printing why. */
static FILE *open_plot_data(char *path)
{
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "cryptodl approx: cannot create a temporary file: %s\n", strerror(errno));
        return NULL;
    }
    FILE *df = fdopen(fd, "w");
    if (!df) {
        fprintf(stderr, "cryptodl approx: cannot write a temporary file: %s\n", strerror(errno));
        close(fd);
        unlink(path);
    }
    return df;
}

/* Draw f (if known), the polynomials res[0..nu) (labelled by their method) and their errors. */
static int draw_plot(cdl_activation fn, int degree, double a, double b, const cdl_poly_approx *res, const int *used,
                     int nu, const char *png)
{
    char data[] = "/tmp/cdl-approx-XXXXXX";
    FILE *df = open_plot_data(data);
    if (!df)
        return CLI_EXIT_FAILURE;
    const int n = 1200;
    double fmin = INFINITY, fmax = -INFINITY, emax = 0.0, emax_all = 0.0;
    for (int i = 0; i <= n; i++) {
        double x = a + (b - a) * i / n;
        double f = cdl_activation_eval(fn, x);
        fmin = fmin < f ? fmin : f;
        fmax = fmax > f ? fmax : f;
        fprintf(df, "%.10g %.10g", x, f);
        for (int k = 0; k < nu; k++)
            fprintf(df, " %.10g", cdl_poly_eval_chebyshev(res[k].chebyshev, degree, a, b, x));
        for (int k = 0; k < nu; k++)
            fprintf(df, " %.10g", f - cdl_poly_eval_chebyshev(res[k].chebyshev, degree, a, b, x));
        fprintf(df, "\n");
    }
    fclose(df);
    for (int k = 0; k < nu; k++) {
        if (used[k] != CDL_APPROX_TAYLOR && res[k].max_abs_error > emax)
            emax = res[k].max_abs_error;
        if (res[k].max_abs_error > emax_all)
            emax_all = res[k].max_abs_error;
    }
    if (emax == 0.0)
        emax = emax_all > 0 ? emax_all : 1.0;
    double pad = 0.25 * (fmax - fmin);
    FILE *gp = popen("gnuplot", "w");
    if (!gp) {
        unlink(data);
        fprintf(stderr, "cryptodl approx: cannot run gnuplot: install gnuplot-nox (Debian) for --plot\n");
        return CLI_EXIT_FAILURE;
    }
    fprintf(gp, "set terminal pngcairo size 1100,900 noenhanced font 'DejaVu Sans,11'\n");
    fprintf(gp, "set output '%s'\n", png);
    fprintf(gp, "set multiplot layout 2,1 title '%s: degree-%d polynomial approximations on [%g, %g]'\n",
            cdl_activation_name(fn), degree, a, b);
    /* one fixed, distinguishable style per method (Remez thick, Taylor dashed) */
    static const char *const style[CDL_APPROX_METHOD_COUNT] = {
        "lc rgb '#1b9e77' lw 1.8",         "lc rgb '#d95f02' lw 1.8",          "lc rgb '#7570b3' lw 1.8",
        "lc rgb '#e7298a' lw 1.8 dt 2",    "lc rgb '#1f3fbf' lw 3",            "lc rgb '#a6761d' lw 1.8 dt 4",
        "lc rgb '#777777' lw 1.5 dt 3"};
    fprintf(gp, "set grid\nset key outside right top box\nset lmargin 10\nset rmargin 34\n");
    fprintf(gp, "set xrange [%g:%g]\n", a, b);
    fprintf(gp, "set yrange [%g:%g]\nset ylabel 'f(x), p(x)'\n", fmin - pad, fmax + pad);
    fprintf(gp, "plot '%s' using 1:2 with lines lw 3 lc rgb 'black' title '%s'", data, cdl_activation_name(fn));
    for (int k = 0; k < nu; k++)
        fprintf(gp, ", '' using 1:%d with lines %s title '%s'", 3 + k,
                style[used[k] < CDL_APPROX_METHOD_COUNT ? used[k] : 0],
                cdl_approx_method_name((cdl_approx_method)used[k]));
    fprintf(gp, "\nset yrange [%g:%g]\nset ylabel 'f(x) - p(x)'\nset xlabel 'x'\n", -1.3 * emax, 1.3 * emax);
    fprintf(gp, "plot 0 with lines lc rgb 'gray' notitle");
    for (int k = 0; k < nu; k++)
        fprintf(gp, ", '%s' using 1:%d with lines %s title '%s (max %.2g)'", data, 3 + nu + k,
                style[used[k] < CDL_APPROX_METHOD_COUNT ? used[k] : 0],
                cdl_approx_method_name((cdl_approx_method)used[k]), res[k].max_abs_error);
    fprintf(gp, "\nunset multiplot\n");
    int st = pclose(gp);
    unlink(data);
    if (st != 0) {
        fprintf(stderr, "cryptodl approx: gnuplot failed (status %d) writing '%s'\n", st, png);
        return CLI_EXIT_FAILURE;
    }
    printf("wrote %s\n", png);
    return CLI_EXIT_OK;
}

/* max |f - p| against the degree, one line per method, log scale. */
static int run_convergence(cdl_activation fn, double a, double b, const int *degrees, int nd,
                           const cdl_approx_options *opt, const char *png)
{
    char data[] = "/tmp/cdl-approx-XXXXXX";
    FILE *df = open_plot_data(data);
    if (!df)
        return CLI_EXIT_FAILURE;
    for (int d = 0; d < nd; d++) {
        fprintf(df, "%d", degrees[d]);
        for (int m = 0; m < CDL_APPROX_METHOD_COUNT; m++) {
            cdl_poly_approx r;
            cdl_status st = cdl_approx_compute(fn, (cdl_approx_method)m, degrees[d], a, b, opt, &r);
            if (st != CDL_OK && st != CDL_ERR_UNSUPPORTED) {
                fclose(df);
                unlink(data);
                return cli_fail_status(CMD, "approximation failed");
            }
            if (st == CDL_OK)
                fprintf(df, " %.6e %.6e", r.max_abs_error, r.gaussian_mse);
            else
                fprintf(df, " NaN NaN");
        }
        fprintf(df, "\n");
    }
    fclose(df);
    FILE *gp = popen("gnuplot", "w");
    if (!gp) {
        unlink(data);
        fprintf(stderr, "cryptodl approx: cannot run gnuplot: install gnuplot-nox (Debian)\n");
        return CLI_EXIT_FAILURE;
    }
    double sigma = opt->sigma > 0 ? opt->sigma : (b - a) / 6.0;
    fprintf(gp, "set terminal pngcairo size 1400,600 enhanced font 'DejaVu Sans,11'\n");
    fprintf(gp, "set output '%s'\nset grid\nset logscale y\nset format y '10^{%%L}'\n", png);
    fprintf(gp, "set multiplot layout 1,2 title '%s, approximated on [%g, %g]: error against the degree'\n",
            cdl_activation_name(fn), a, b);
    fprintf(gp, "set xlabel 'degree'\nset key top right box opaque font ',9'\n");
    fprintf(gp, "set yrange [*:%g]\n", fn == CDL_ACT_RELU ? 10.0 : 100.0);
    static const char *const style[CDL_APPROX_METHOD_COUNT] = {
        "lc rgb '#1b9e77' lw 1.8 pt 7",       "lc rgb '#d95f02' lw 1.8 pt 5", "lc rgb '#7570b3' lw 1.8 pt 9",
        "lc rgb '#e7298a' lw 1.8 dt 2 pt 11", "lc rgb '#1f3fbf' lw 3 pt 13",  "lc rgb '#a6761d' lw 1.8 dt 4 pt 3",
        "lc rgb '#777777' lw 1.5 dt 3 pt 1"};
    for (int panel = 0; panel < 2; panel++) {
        if (panel == 0)
            fprintf(gp, "set title 'max |f - p| on [%g, %g]'\nset ylabel 'max |f - p|'\n", a, b);
        else
            fprintf(gp,
                    "set title 'E[(f - p)^2] under N(%g, %g), whole real line'\nset ylabel 'mean squared error'\nset key bottom left\n"
                    "set yrange [*:1e3]\n",
                    isnan(opt->mu) ? 0.5 * (a + b) : opt->mu, sigma);
        fprintf(gp, "plot");
        int first = 1;
        for (int m = 0; m < CDL_APPROX_METHOD_COUNT; m++) {
            if (m == CDL_APPROX_TAYLOR && fn == CDL_ACT_RELU)
                continue;
            char title[64];
            snprintf(title, sizeof title, "%s", cdl_approx_method_name((cdl_approx_method)m));
            for (char *q = title; *q; q++)
                if (*q == '_')
                    *q = '-'; /* enhanced text would subscript an underscore */
            fprintf(gp, "%s '%s' using 1:%d with linespoints %s title '%s'", first ? "" : ",", data,
                    2 + 2 * m + panel, style[m], title);
            first = 0;
        }
        fprintf(gp, "\n");
    }
    fprintf(gp, "unset multiplot\n");
    int st = pclose(gp);
    unlink(data);
    if (st != 0) {
        fprintf(stderr, "cryptodl approx: gnuplot failed (status %d) writing '%s'\n", st, png);
        return CLI_EXIT_FAILURE;
    }
    printf("wrote %s\n", png);
    return CLI_EXIT_OK;
}

/* Save the description to out_path (if given), then print it as JSON or text. */
static int emit_result(const cdl_poly_approx *p, const char *out_path, int json, double remez_tol)
{
    if (out_path && cdl_poly_approx_save(p, out_path) != CDL_OK)
        return cli_fail_status(CMD, "could not write the JSON description");
    if (json) {
        char *text;
        if (cdl_poly_approx_to_json(p, &text) != CDL_OK)
            return cli_fail_status(CMD, "could not format JSON");
        printf("%s\n", text);
        cdl_approx_string_free(text);
    } else {
        print_text(p, remez_tol);
    }
    return CLI_EXIT_OK;
}

int cmd_approx(int argc, char **argv)
{
    enum { O_FN = 256, O_DEGREE, O_INTERVAL, O_METHOD, O_MU, O_SIGMA, O_TOL, O_JSON, O_OUT, O_TABLE, O_DEGREES,
           O_PLOT, O_METHODS, O_CONV, O_LOAD };
    static const struct option longopts[] = {
        {"fn", required_argument, 0, O_FN},           {"degree", required_argument, 0, O_DEGREE},
        {"interval", required_argument, 0, O_INTERVAL}, {"method", required_argument, 0, O_METHOD},
        {"mu", required_argument, 0, O_MU},           {"sigma", required_argument, 0, O_SIGMA},
        {"tol", required_argument, 0, O_TOL},         {"json", no_argument, 0, O_JSON},
        {"out", required_argument, 0, O_OUT},         {"table", no_argument, 0, O_TABLE},
        {"degrees", required_argument, 0, O_DEGREES}, {"plot", required_argument, 0, O_PLOT},
        {"methods", required_argument, 0, O_METHODS}, {"convergence", required_argument, 0, O_CONV},
        {"load", required_argument, 0, O_LOAD},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    cdl_activation fn = CDL_ACT_RELU;
    cdl_approx_method method = CDL_APPROX_REMEZ;
    int degree = 4, json = 0, table = 0, have_interval = 0;
    double a = 0, b = 0;
    const char *out_path = NULL, *plot = NULL, *conv = NULL, *load = NULL;
    int degrees[16], nd = 0;
    int methods[CDL_APPROX_METHOD_COUNT], nm = 0;
    cdl_approx_options opt;
    cdl_approx_options_default(&opt);

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return CLI_EXIT_OK;
        case O_FN:
            if (cdl_activation_from_name(optarg, &fn) != CDL_OK)
                return cli_usage_error(CMD, "unknown --fn '%s': use relu, sigmoid or tanh", optarg);
            break;
        case O_DEGREE: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 1 || v > CDL_APPROX_MAX_DEGREE)
                return cli_usage_error(CMD, "--degree must be an integer in 1..%d, not '%s'", CDL_APPROX_MAX_DEGREE,
                                       optarg);
            degree = (int)v;
            break;
        }
        case O_INTERVAL:
            if (parse_interval(optarg, &a, &b))
                return cli_usage_error(CMD, "--interval must be A:B with numbers A < B (e.g. -6:6), not '%s'",
                                       optarg);
            have_interval = 1;
            break;
        case O_METHOD:
            if (cdl_approx_method_from_name(optarg, &method) != CDL_OK)
                return cli_usage_error(CMD, "%s", cdl_last_error());
            break;
        case O_MU:
            if (parse_double(optarg, &opt.mu))
                return cli_usage_error(CMD, "--mu must be a number, not '%s'", optarg);
            break;
        case O_SIGMA:
            if (parse_double(optarg, &opt.sigma) || !(opt.sigma > 0))
                return cli_usage_error(CMD, "--sigma must be a positive number, not '%s'", optarg);
            break;
        case O_TOL:
            if (parse_double(optarg, &opt.remez_tol) || !(opt.remez_tol > 0))
                return cli_usage_error(CMD, "--tol must be a positive number, not '%s'", optarg);
            break;
        case O_JSON:
            json = 1;
            break;
        case O_OUT:
            out_path = optarg;
            break;
        case O_TABLE:
            table = 1;
            break;
        case O_DEGREES:
            nd = parse_int_list(optarg, degrees, 16);
            if (nd <= 0)
                return cli_usage_error(CMD, "--degrees must be a comma list of up to 16 degrees in 1..%d, not '%s'",
                                       CDL_APPROX_MAX_DEGREE, optarg);
            break;
        case O_PLOT:
            plot = optarg;
            break;
        case O_CONV:
            conv = optarg;
            break;
        case O_LOAD:
            load = optarg;
            break;
        case O_METHODS: {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            nm = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                cdl_approx_method m;
                if (cdl_approx_method_from_name(tok, &m) != CDL_OK || nm >= CDL_APPROX_METHOD_COUNT)
                    return cli_usage_error(CMD, "--methods: %s", cdl_last_error());
                methods[nm++] = (int)m;
            }
            break;
        }
        default:
            return cli_usage_error(CMD, "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(CMD, "unexpected argument '%s'", argv[optind]);
    if ((table != 0) + (plot != NULL) + (conv != NULL) > 1)
        return cli_usage_error(CMD, "--table, --plot and --convergence are separate runs: give one of them");

    if (load) {
        /* a saved description (ours or the trainer's): errors, cost, picture */
        if (table || conv)
            return cli_usage_error(CMD, "--load goes with --json, --out, --plot, --mu and --sigma only");
        cdl_poly_approx p;
        if (cdl_poly_approx_load(load, &p) != CDL_OK)
            return cli_fail_status(CMD, "could not load the description");
        if ((!isnan(opt.mu) || opt.sigma > 0) && cdl_approx_analyze(&p, opt.mu, opt.sigma) != CDL_OK)
            return cli_fail_status(CMD, "could not analyse the description");
        if (plot) {
            if (p.fn == CDL_ACT_NONE)
                return cli_usage_error(CMD, "'%s' names no reference function (relu, sigmoid, tanh) to plot against",
                                       load);
            int used = (int)p.method;
            return draw_plot(p.fn, p.degree, p.a, p.b, &p, &used, 1, plot);
        }
        return emit_result(&p, out_path, json, opt.remez_tol);
    }
    if (table) {
        if (nd == 0) {
            nd = (int)(sizeof default_degrees / sizeof default_degrees[0]);
            memcpy(degrees, default_degrees, sizeof default_degrees);
        }
        if (have_interval)
            fprintf(stderr, "cryptodl approx: note: --table uses each function's default interval\n");
        return run_table(degrees, nd, &opt, out_path);
    }
    if (!have_interval)
        default_interval(fn, &a, &b);
    if (conv) {
        if (nd == 0)
            for (int d = 1; d <= 15; d++)
                degrees[nd++] = d;
        return run_convergence(fn, a, b, degrees, nd, &opt, conv);
    }
    if (plot) {
        if (nm == 0)
            for (int m = 0; m < CDL_APPROX_METHOD_COUNT; m++)
                methods[nm++] = m;
        return run_plot(fn, degree, a, b, methods, nm, &opt, plot);
    }

    cdl_poly_approx p;
    if (cdl_approx_compute(fn, method, degree, a, b, &opt, &p) != CDL_OK)
        return cli_fail_status(CMD, "approximation failed");
    int rc = emit_result(&p, out_path, json, opt.remez_tol);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (p.method == CDL_APPROX_REMEZ && !p.converged) {
        fprintf(stderr, "cryptodl approx: warning: Remez did not reach the tolerance %.1e (spread %.2e); "
                        "try a larger --tol or a smaller degree\n", opt.remez_tol, p.equioscillation_spread);
    }
    return CLI_EXIT_OK;
}
