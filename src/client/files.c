/*
 * files.c: the file conveniences of the client layer (the "files" section of
 * include/cryptodl/client.h), on top of its functions on memory: a model and
 * a plan file read from disk, and the CLI's keys folder (secret.key mode
 * 0600 in a folder made 0700). POSIX only: a build without files (the
 * WebAssembly page) leaves this file out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "core/error.h"
#include "core/memory.h"

/* A whole file, mapped read-only (empty files and non-files refused). */
static cdl_status map_file(const char *path, const uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    if (!path)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "no file name");
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return cdl_fail(CDL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cdl_fail(CDL_ERR_IO, "%s is not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return cdl_fail(CDL_ERR_FORMAT, "%s is empty", path);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (p == MAP_FAILED)
        return cdl_fail(CDL_ERR_IO, "cannot read %s: %s", path, strerror(err));
    *data = p;
    *len = (size_t)st.st_size;
    return CDL_OK;
}

static void unmap_file(const uint8_t *data, size_t len)
{
    if (data)
        munmap((void *)data, len);
}

cdl_status cdl_client_plan_compile_file(const char *model_path, const cdl_client_options *opt, cdl_client_plan **out)
{
    if (out)
        *out = NULL;
    const uint8_t *m = NULL;
    size_t ml = 0;
    CDL_TRY(map_file(model_path, &m, &ml));
    cdl_status st = cdl_client_plan_compile(m, ml, model_path, opt, out);
    unmap_file(m, ml);
    return st;
}

cdl_status cdl_client_plan_open_file(const char *model_path, const char *plan_path, const cdl_client_options *opt,
                                     cdl_client_plan **out)
{
    if (out)
        *out = NULL;
    const uint8_t *m = NULL, *p = NULL;
    size_t ml = 0, pl = 0;
    CDL_TRY(map_file(model_path, &m, &ml));
    cdl_status st = map_file(plan_path, &p, &pl);
    if (st == CDL_OK)
        st = cdl_client_plan_open(m, ml, model_path, p, pl, plan_path, opt, out);
    unmap_file(p, pl);
    unmap_file(m, ml);
    return st;
}

static const char *const key_files[CDL_CLIENT_KEY_KINDS] = {"secret.key", "public.key", "relin.key", "galois.key"};

static int write_all(int fd, const uint8_t *data, size_t len)
{
    size_t at = 0;
    while (at < len) {
        ssize_t w = write(fd, data + at, len - at);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        at += (size_t)w;
    }
    return 0;
}

/* path <- data, mode 0600 if secret (also when the file existed), else 0644. */
static cdl_status write_file(const char *path, const uint8_t *data, size_t len, int secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, secret ? 0600 : 0644);
    if (fd < 0)
        return cdl_fail(CDL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if ((secret && fchmod(fd, 0600) != 0) || write_all(fd, data, len) != 0) {
        int err = errno;
        close(fd);
        return cdl_fail(CDL_ERR_IO, "cannot write %s: %s", path, strerror(err));
    }
    if (close(fd) != 0)
        return cdl_fail(CDL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    return CDL_OK;
}

cdl_status cdl_client_keys_save_dir(const cdl_client_keys *keys, const char *dir, int overwrite)
{
    if (!keys || !dir)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_save_dir: NULL argument");
    char path[4096];
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cdl_fail(CDL_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, key_files[CDL_CLIENT_SECRET_KEY]);
    if (!overwrite && cdl_client_keys_has(keys, CDL_CLIENT_SECRET_KEY) && stat(path, &st) == 0)
        return cdl_fail(CDL_ERR_IO, "%s exists; a new key could not decrypt what the old one encrypted: use another "
                                    "folder, or overwrite it on purpose", path);
    /* secret first (0600), then the others in the CLI's order */
    static const cdl_client_key_kind order[] = {CDL_CLIENT_SECRET_KEY, CDL_CLIENT_RELIN_KEY, CDL_CLIENT_PUBLIC_KEY,
                                                CDL_CLIENT_GALOIS_KEYS};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const cdl_client_key_kind kind = order[i];
        if (!cdl_client_keys_has(keys, kind))
            continue;
        uint8_t *blob = NULL;
        size_t len = 0;
        CDL_TRY(cdl_client_keys_save(keys, kind, 0, &blob, &len));
        snprintf(path, sizeof path, "%s/%s", dir, key_files[kind]);
        cdl_status s = write_file(path, blob, len, kind == CDL_CLIENT_SECRET_KEY);
        if (kind == CDL_CLIENT_SECRET_KEY)
            cdl_wipe(blob, len);
        cdl_free_bytes(blob);
        if (s != CDL_OK)
            return s;
    }
    return CDL_OK;
}

cdl_status cdl_client_keys_load_dir(cdl_client_keys *keys, const char *dir, unsigned kinds)
{
    if (!keys || !dir)
        return cdl_fail(CDL_ERR_INVALID_ARGUMENT, "cdl_client_keys_load_dir: NULL argument");
    char path[4096];
    for (int kind = 0; kind < CDL_CLIENT_KEY_KINDS; kind++) {
        if (!(kinds & (1u << kind)))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, key_files[kind]);
        /* the kind from the first bytes before the rest is read (a secret key is not read where it is not wanted) */
        uint8_t head[8];
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return cdl_fail(CDL_ERR_IO, "cannot open %s: %s", path, strerror(errno));
        ssize_t got = read(fd, head, sizeof head);
        close(fd);
        if (got == (ssize_t)sizeof head)
            CDL_TRY(cdl_client_key_check_kind(head, sizeof head, (cdl_client_key_kind)kind, path));
        const uint8_t *d = NULL;
        size_t len = 0;
        CDL_TRY(map_file(path, &d, &len));
        cdl_status st = cdl_client_keys_load(keys, (cdl_client_key_kind)kind, d, len, path);
        unmap_file(d, len);
        if (st != CDL_OK)
            return st;
    }
    return CDL_OK;
}
