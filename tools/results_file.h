/*
 * results_file.h: the per-image results of a long `predict` run, kept in a
 * JSON Lines file (`--results FILE`) and appended as each batch finishes, so
 * that an interrupted run resumes where it stopped and an uninterrupted one
 * writes the same lines.
 *
 * Line 1 names the run (model SHA-256, dataset, packing, CKKS parameters); a
 * file made by another run is refused rather than mixed. Every other line is
 * one image, in order from image 0:
 *   {"image":0,"label":3,"plaintext_class":3,"encrypted_class":3,
 *    "max_abs_logit_diff":6.2e-07,"max_abs_logit":4.54,"seconds":61.2}
 * (the class fields are deterministic; the logit difference depends on the
 * encryption noise and "seconds" on the machine). A line is written with one
 * write() and flushed to disk before the next image starts; a line cut short
 * by a crash is dropped when the file is opened again.
 */
#ifndef CDL_TOOLS_RESULTS_FILE_H
#define CDL_TOOLS_RESULTS_FILE_H

#include <stddef.h>

typedef struct results_run {
    char sha256[65];   /* the model file's */
    char dataset[32];
    char packing[8];   /* "batch" or "slots" */
    int log_n, levels, scale_bits;
} results_run;

typedef struct result_line {
    size_t image;
    int label, plaintext_class, encrypted_class;
    double max_abs_logit_diff, max_abs_logit, seconds;
} result_line;

typedef struct results_file {
    int fd;              /* -1: kept in memory only (no --results) */
    const char *path;
    result_line *lines;  /* every image so far, from the file and from this run */
    size_t n, cap;
    size_t resumed;      /* images that were already in the file */
} results_file;

/* Open (or create) path for this run; path NULL keeps the results in memory.
 * Refuses a file of another run or one that is not a results file. 0, or a
 * CLI exit code after a message on stderr. */
int results_open(const char *cmd, const char *path, const results_run *run, results_file *rf);
/* Append lines (in memory, and to the file with one write + fsync). */
int results_append(const char *cmd, results_file *rf, const result_line *lines, size_t n);
void results_close(results_file *rf);

#endif
