/*
 * cli.h: what the subcommands of the `cryptodl` tool share. Each subcommand
 * lives in its own tools/cmd_<name>.c and is listed in main.c's table. A
 * subcommand returns the process exit status: 0 success, 1 failure of the
 * work, 2 bad usage.
 */
#ifndef CDL_TOOLS_CLI_H
#define CDL_TOOLS_CLI_H

#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_INTERRUPTED 130 /* stopped by Ctrl-C (128 + SIGINT, as a shell reports it) */

typedef int (*cli_command_fn)(int argc, char **argv);

typedef struct cli_command {
    const char *name;
    const char *summary;
    cli_command_fn run;
} cli_command;

/* Print "cryptodl <cmd>: <message>: <cdl_last_error()>" to stderr and return CLI_EXIT_FAILURE. */
int cli_fail_status(const char *command, const char *what);
/* Print a usage error to stderr (with a pointer to --help) and return CLI_EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...);

/* Progress on stderr, in one of three styles for the whole process: a bar
 * with the rate and the time left when stderr is a terminal (or
 * CDL_PROGRESS=1), plain lines when it is not (or CDL_PROGRESS=0), nothing
 * after cli_set_quiet(1) (--quiet). */
typedef enum cli_style { CLI_STYLE_NONE = 0, CLI_STYLE_LINES = 1, CLI_STYLE_BAR = 2 } cli_style;
void cli_set_quiet(int quiet);
int cli_quiet(void);
cli_style cli_progress_style(void);

typedef struct cli_progress {
    const char *label;
    size_t total;
    double start;
    double last_draw;
    int enabled;     /* a bar is drawn */
    int lines;       /* plain lines are printed (CLI_STYLE_LINES with cli_progress_begin) */
    int last_tenth;  /* lines: the last tenth of the work a line was printed for */
    int printed;     /* lines: a line was printed */
} cli_progress;
/* A bar in the bar style, nothing otherwise (progress a log does not need). */
void cli_progress_start(cli_progress *p, const char *label, size_t total);
/* A bar in the bar style, and in the lines style a line at each tenth of the
 * work once a second has passed ("LABEL: 30/100 (30%), 3.1 s, about 7 s left")
 * and a last one: short jobs print nothing. */
void cli_progress_begin(cli_progress *p, const char *label, size_t total);
void cli_progress_update(cli_progress *p, size_t done);
void cli_progress_finish(cli_progress *p);
/* "[#########.....................]" for done of total, width characters inside. */
void cli_bar_text(char *buf, size_t cap, size_t done, size_t total, int width);
/* "42 s", "3.5 min", "2.1 h". */
void cli_duration_text(char *buf, size_t cap, double seconds);
double cli_now_seconds(void);
/* Peak resident memory of this process so far, in MB (getrusage; 0 if unavailable). */
double cli_peak_rss_mb(void);

/* Print s to stdout as a JSON string literal (quotes, backslashes and control
 * characters escaped). */
void cli_json_string(const char *s);

/* Parse a positive integer option value; on bad input print a usage error
 * for `command` naming `option`, and return -1 (the caller returns CLI_EXIT_USAGE). */
int cli_parse_positive(const char *command, const char *option, const char *text, long long *out);

/* Parse a --threads value (1..4096) the same way. */
int cli_parse_threads(const char *command, const char *text, int *out);
/* --packing batch|slots|auto into a cdl_he_packing (usage error printed, -1, on anything else). */
int cli_parse_packing(const char *command, const char *text, int *out);

/* Default dataset folder: $CDL_DATA_DIR, else ../shared/data if it exists, else NULL. */
const char *cli_default_data_dir(void);

int cmd_bench(int argc, char **argv);
int cmd_bench_bootstrap(int argc, char **argv);
int cmd_approx(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_decrypt(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_logreg(int argc, char **argv);
int cmd_train_encrypted(int argc, char **argv);

#endif
