/*
 * cmd_bench_bootstrap.c: `cryptodl bench bootstrap`: one full-slot CKKS
 * bootstrap timed (median of --runs) at the 128-bit preset (N = 2^16) or an
 * insecure test size, with its precision (worst slot and mean, bits, over
 * random real inputs in [-1, 1]), the levels left, key and plaintext bytes,
 * key generation time and peak resident memory. docs/bootstrapping.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cryptodl/cryptodl.h"

#define CMD "bench bootstrap"
#define MAX_THREADS 8

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cryptodl bench bootstrap [--n LOG_N] [--log-slots L] [--threads LIST] [--runs R] [--no-sse] [--refined]\n"
            "                               [--json]\n\n"
            "Bootstraps a full-slot CKKS ciphertext of random values in [-1, 1] and reports the time\n"
            "(median of R runs), the precision left (bits, worst slot and mean), the levels left for\n"
            "computation, the key material and the peak resident memory.\n\n"
            "options:\n"
            "  --n LOG_N       16 (default): the 128-bit preset (N = 2^16, secret of Hamming weight 192,\n"
            "                  sparse-secret encapsulation to weight 32); 10..14: INSECURE test presets\n"
            "  --log-slots L   sparse slots: 2^L values (repeated over the N/2 slots), L < LOG_N - 1;\n"
            "                  default: full slots (N/2)\n"
            "  --threads LIST  thread counts, e.g. 1,2 (default 1)\n"
            "  --runs R        bootstraps per thread count (default 3)\n"
            "  --no-sse        ModRaise under the context's own secret (no encapsulation)\n"
            "  --refined       two passes (cdl_ckks_bootstrap_refined): the first bootstrap's error is\n"
            "                  bootstrapped too; twice the time, one level fewer, more bits\n"
            "  --json          one JSON object per thread count on stdout\n"
            "  --help          this text\n\n"
            "Progress goes to stderr. Key generation at N = 2^16 takes about a minute and ~10 GB.\n");
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct boot_run {
    int refined;
    cdl_ckks_context *ctx;
    cdl_rng *rng;
    cdl_ckks_secret_key *sk;
    cdl_ckks_relin_key *rlk;
    cdl_ckks_bootstrapper *bt;
    cdl_ckks_bootstrap_keys *bk;
    cdl_ckks_bootstrap_params bp;
    cdl_ckks_param_spec spec;
} boot_run;

static void run_free(boot_run *r)
{
    cdl_ckks_bootstrap_keys_free(r->bk);
    cdl_ckks_bootstrapper_free(r->bt);
    cdl_ckks_relin_key_free(r->rlk);
    cdl_ckks_secret_key_free(r->sk);
    cdl_rng_free(r->rng);
    cdl_ckks_context_free(r->ctx);
}

/* Encrypt random values at level 0, bootstrap, measure. */
static int one_bootstrap(boot_run *r, double *values, double *seconds, double *worst_bits, double *mean_bits)
{
    const size_t n = cdl_ckks_slots(r->ctx);
    const size_t period = r->bp.log_slots ? (size_t)1 << r->bp.log_slots : n;
    for (size_t i = 0; i < n; i++)
        values[i] = i < period ? 2.0 * ((double)(cdl_rng_u64(r->rng) >> 11) / 9007199254740992.0) - 1.0
                               : values[i % period];
    cdl_ckks_plaintext *pt = NULL;
    cdl_ckks_ciphertext *ct = NULL, *out = NULL;
    double *got = malloc(n * sizeof(double));
    cdl_status st = got ? CDL_OK : CDL_ERR_NO_MEMORY;
    if (st == CDL_OK)
        st = cdl_ckks_plaintext_new(r->ctx, &pt);
    if (st == CDL_OK)
        st = cdl_ckks_encode(r->ctx, values, n, cdl_ckks_default_scale(r->ctx), 0, pt);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(r->ctx, &ct);
    if (st == CDL_OK)
        st = cdl_ckks_ciphertext_new(r->ctx, &out);
    if (st == CDL_OK)
        st = cdl_ckks_encrypt_sk(r->ctx, r->sk, pt, r->rng, ct);
    double t0 = cli_now_seconds();
    if (st == CDL_OK)
        st = r->refined ? cdl_ckks_bootstrap_refined(r->bt, r->bk, r->rlk, ct, out)
                        : cdl_ckks_bootstrap(r->bt, r->bk, r->rlk, ct, out);
    *seconds = cli_now_seconds() - t0;
    if (st == CDL_OK)
        st = cdl_ckks_decrypt(r->ctx, r->sk, out, pt);
    if (st == CDL_OK)
        st = cdl_ckks_decode(r->ctx, pt, got, n);
    if (st == CDL_OK) {
        double worst = 0, sum = 0;
        for (size_t i = 0; i < n; i++) {
            double e = fabs(got[i] - values[i]);
            worst = e > worst ? e : worst;
            sum += e;
        }
        *worst_bits = -log2(worst);
        *mean_bits = -log2(sum / (double)n);
    }
    free(got);
    cdl_ckks_plaintext_free(pt);
    cdl_ckks_ciphertext_free(ct);
    cdl_ckks_ciphertext_free(out);
    return st == CDL_OK ? 0 : cli_fail_status(CMD, "bootstrapping failed");
}

int cmd_bench_bootstrap(int argc, char **argv)
{
    int log_n = 16, log_slots = 0, json = 0, sse = 1, refined = 0, threads[MAX_THREADS] = {1}, t_count = 1;
    long long runs = 3;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--no-sse")) {
            sse = 0;
        } else if (!strcmp(a, "--refined")) {
            refined = 1;
        } else if (!strcmp(a, "--n") || !strcmp(a, "--runs") || !strcmp(a, "--threads") ||
                   !strcmp(a, "--log-slots")) {
            if (i + 1 >= argc)
                return cli_usage_error(CMD, "%s needs a value", a);
            const char *v = argv[++i];
            long long x;
            if (!strcmp(a, "--n")) {
                if (cli_parse_positive(CMD, a, v, &x) < 0)
                    return CLI_EXIT_USAGE;
                if (x < 10 || x > 16 || x == 15)
                    return cli_usage_error(CMD, "--n %lld: bootstrapping presets exist for 16 and 10..14", x);
                log_n = (int)x;
            } else if (!strcmp(a, "--log-slots")) {
                if (cli_parse_positive(CMD, a, v, &x) < 0)
                    return CLI_EXIT_USAGE;
                if (x > 15)
                    return cli_usage_error(CMD, "--log-slots %lld: at most LOG_N - 2", x);
                log_slots = (int)x;
            } else if (!strcmp(a, "--runs")) {
                if (cli_parse_positive(CMD, a, v, &runs) < 0)
                    return CLI_EXIT_USAGE;
                if (runs > 100)
                    return cli_usage_error(CMD, "--runs %lld: at most 100", runs);
            } else {
                t_count = 0;
                char *copy = strdup(v), *save = NULL;
                if (!copy)
                    return CLI_EXIT_FAILURE;
                for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                    if (t_count == MAX_THREADS || cli_parse_threads(CMD, tok, &threads[t_count]) < 0) {
                        free(copy);
                        return t_count == MAX_THREADS ? cli_usage_error(CMD, "at most %d thread counts", MAX_THREADS)
                                                      : CLI_EXIT_USAGE;
                    }
                    t_count++;
                }
                free(copy);
                if (!t_count)
                    return cli_usage_error(CMD, "--threads needs at least one count");
            }
        } else {
            return cli_usage_error(CMD, "unknown option '%s'", a);
        }
    }

    boot_run r;
    memset(&r, 0, sizeof(r));
    r.refined = refined;
    if (cdl_ckks_bootstrap_preset(log_n, &r.spec, &r.bp) != CDL_OK)
        return cli_fail_status(CMD, "no preset");
    if (!sse)
        r.bp.sse_hamming_weight = 0;
    if (log_slots >= log_n - 1)
        return cli_usage_error(CMD, "--log-slots %d: sparse slots need fewer than 2^%d (full is the default)",
                               log_slots, log_n - 1);
    r.bp.log_slots = log_slots;
    if (log_slots && r.bp.cts_levels > log_slots)
        r.bp.cts_levels = log_slots;
    if (log_slots && r.bp.stc_levels > log_slots)
        r.bp.stc_levels = log_slots;
    fprintf(stderr, "cryptodl bench bootstrap: N = 2^%d%s, building the context and the DFT matrices...\n", log_n,
            log_n < 16 ? " (INSECURE test parameters)" : "");
    cdl_set_threads(threads[0] > 2 ? threads[0] : 2);
    double t0 = cli_now_seconds();
    int rc = CLI_EXIT_OK;
    cdl_ckks_bootstrap_info info;
    if (cdl_ckks_context_new(&r.spec, &r.ctx) != CDL_OK || cdl_rng_new_system(&r.rng) != CDL_OK ||
        cdl_ckks_bootstrapper_new(r.ctx, &r.bp, &r.bt) != CDL_OK ||
        cdl_ckks_bootstrapper_info(r.bt, &info) != CDL_OK) {
        rc = cli_fail_status(CMD, "setup failed");
        run_free(&r);
        return rc;
    }
    const double setup_s = cli_now_seconds() - t0;
    fprintf(stderr, "  bootstrapper ready in %.1f s (%.0f MB of encoded DFT diagonals); generating keys "
                    "(%d rotation keys, conjugation, relinearization%s)...\n",
            setup_s, info.plaintext_bytes / 1048576.0, info.rotation_keys, sse ? ", encapsulation" : "");
    t0 = cli_now_seconds();
    if (cdl_ckks_keygen_secret(r.ctx, r.rng, &r.sk) != CDL_OK ||
        cdl_ckks_keygen_relin(r.ctx, r.sk, r.rng, &r.rlk) != CDL_OK ||
        cdl_ckks_bootstrap_keygen(r.bt, r.sk, r.rng, &r.bk) != CDL_OK) {
        rc = cli_fail_status(CMD, "key generation failed");
        run_free(&r);
        return rc;
    }
    const double keygen_s = cli_now_seconds() - t0;
    const size_t key_bytes = cdl_ckks_bootstrap_keys_bytes(r.bk);
    fprintf(stderr, "  keys ready in %.1f s (%.2f GB of bootstrapping keys)\n", keygen_s, key_bytes / 1e9);
    const size_t n = cdl_ckks_slots(r.ctx);
    double *values = malloc(n * sizeof(double)), *times = malloc((size_t)runs * sizeof(double));
    if (!values || !times) {
        free(values);
        free(times);
        run_free(&r);
        return CLI_EXIT_FAILURE;
    }
    for (int ti = 0; ti < t_count && rc == CLI_EXIT_OK; ti++) {
        cdl_set_threads(threads[ti]);
        double worst_bits = 1e9, mean_bits = 0;
        for (long long k = 0; k < runs && rc == CLI_EXIT_OK; k++) {
            double wb = 0, mb = 0;
            rc = one_bootstrap(&r, values, &times[k], &wb, &mb);
            worst_bits = wb < worst_bits ? wb : worst_bits;
            mean_bits += mb / (double)runs;
            if (rc == CLI_EXIT_OK)
                fprintf(stderr, "  %d thread%s, run %lld/%lld: %.2f s, %.1f bits worst slot\n", threads[ti],
                        threads[ti] > 1 ? "s" : "", k + 1, runs, times[k], wb);
        }
        if (rc != CLI_EXIT_OK)
            break;
        qsort(times, (size_t)runs, sizeof(double), cmp_double);
        const double median = runs % 2 ? times[runs / 2] : 0.5 * (times[runs / 2 - 1] + times[runs / 2]);
        if (json) {
            printf("{\"bench\":\"bootstrap\",\"log_n\":%d,\"slots\":%d,\"log_qp\":%.1f,\"secret_hamming_weight\":%d,"
                   "\"sse_hamming_weight\":%d,\"passes\":%d,\"secure\":%s,\"threads\":%d,\"runs\":%lld,\"seconds\":%.3f,"
                   "\"min_seconds\":%.3f,\"precision_bits_worst\":%.2f,\"precision_bits_mean\":%.2f,"
                   "\"levels_left\":%d,\"depth\":%d,\"rotation_keys\":%d,\"key_switches\":%d,\"relinearizations\":%d,"
                   "\"key_bytes\":%zu,\"plaintext_bytes\":%zu,\"keygen_seconds\":%.1f,\"setup_seconds\":%.1f,"
                   "\"peak_rss_mb\":%.0f}\n",
                   log_n, info.slots, cdl_ckks_log_qp(r.ctx), r.spec.secret_hamming_weight, r.bp.sse_hamming_weight,
                   refined ? 2 : 1, r.spec.allow_insecure ? "false" : "true", threads[ti], runs, median, times[0], worst_bits,
                   mean_bits, info.level_out - refined, info.depth + refined, info.rotation_keys, info.rotations, info.relinearizations, key_bytes,
                   info.plaintext_bytes, keygen_s, setup_s, cli_peak_rss_mb());
        } else {
            printf("bootstrap N=2^%d (%d slots, log QP %.0f, h %d%s%s), %d thread%s: %.2f s median of %lld "
                   "(fastest %.2f s)\n",
                   log_n, info.slots, cdl_ckks_log_qp(r.ctx), r.spec.secret_hamming_weight, sse ? ", SSE h' " : "",
                   sse ? "32" : "", threads[ti], threads[ti] > 1 ? "s" : "", median, runs, times[0]);
            printf("  precision %.1f bits worst slot, %.1f mean; %d levels left (bootstrap spends %d)\n", worst_bits,
                   mean_bits, info.level_out - refined, info.depth + refined);
            printf("  keys %.2f GB (%d rotation keys), DFT diagonals %.2f GB, key generation %.1f s, peak "
                   "resident %.0f MB%s\n",
                   key_bytes / 1e9, info.rotation_keys, info.plaintext_bytes / 1e9, keygen_s, cli_peak_rss_mb(),
                   r.spec.allow_insecure ? "\n  INSECURE test parameters" : "");
        }
        fflush(stdout);
    }
    free(values);
    free(times);
    run_free(&r);
    return rc;
}
