/*
 * stored — the svc key-value store, locks and leader election, served as
 * service "svc.store" (docs/store.md).
 *
 *   stored [--data-dir DIR] [--map-size MIB] [--checkpoint-size KIB] [service options]
 *
 * Start: take the data dir, open LMDB (clearing stale reader slots), start
 * the group-commit writer, the expiry thread and the observer thread, then
 * serve.  Stop (SIGTERM): libsvc drains the handlers, then the threads stop
 * in reverse order; the writer applies what is still queued first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stored.h"

#define KV_ENV_DIR      "SVC_STORE_DIR"
#define KV_ENV_MAP      "SVC_STORE_MAP_SIZE"
#define KV_ENV_CKPT     "SVC_STORE_CHECKPOINT_SIZE"
#define KV_DEFAULT_DIR  "/var/lib/svc/store"
#define KV_DEFAULT_MAP  1024           /* MiB */
#define KV_DEFAULT_CKPT 4096           /* KiB */
#define KV_REAP_MS      250

typedef struct kv_flags {
    const char *dir;      /* --data-dir */
    size_t map_mb;        /* --map-size */
    size_t ckpt_kb;       /* --checkpoint-size */
} kv_flags;

static void s_usage(void)
{
    printf("usage: stored [--data-dir DIR] [--map-size MIB] [--checkpoint-size KIB] [service options]\n\n"
           "Serves the svc key-value store, locks and leader election as \"svc.store\".\n\n"
           "stored options (flag, environment variable):\n"
           "  --data-dir DIR               " KV_ENV_DIR "          LMDB and log files (default $SVC_STATE_DIR/store,\n"
           "                                                      set by the supervisor; else " KV_DEFAULT_DIR ")\n"
           "  --map-size MIB               " KV_ENV_MAP "     largest store size (default %d)\n"
           "  --checkpoint-size KIB        " KV_ENV_CKPT "\n"
           "                                                      write-ahead log written between two\n"
           "                                                      checkpoints into LMDB (default %d)\n"
           "  (a write waiting for its commit, or a lock call waiting for its lock, holds no\n"
           "  thread: the commit thread answers them)\n\n",
           KV_DEFAULT_MAP, KV_DEFAULT_CKPT);
    fflush(stdout);
}

/* A size flag: a whole number from lo to hi, in unit. */
static int s_size(const char *what, const char *unit, long lo, long hi, const char *v, size_t *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "stored: invalid %s \"%s\": want %s from %ld to %ld\n", what, v, unit, lo, hi);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

static int s_map_size(const char *v, size_t *out) { return s_size("map size", "MiB", 1, 1L << 22, v, out); }
static int s_ckpt_size(const char *v, size_t *out) { return s_size("checkpoint size", "KiB", 16, 1L << 20, v, out); }

/* stored's own flags: name, environment variable, parser (NULL = a path). */
static const struct s_flag {
    const char *name, *env;
    int (*parse)(const char *v, size_t *out);
} s_flag_table[] = {
    { "--data-dir", KV_ENV_DIR, NULL },
    { "--map-size", KV_ENV_MAP, s_map_size },
    { "--checkpoint-size", KV_ENV_CKPT, s_ckpt_size },
    { NULL, NULL, NULL },
};

static int s_set(kv_flags *f, const struct s_flag *fl, const char *v)
{
    if (!fl->parse) {
        if (!*v) {
            fprintf(stderr, "stored: %s is empty\n", fl->name);
            return -1;
        }
        f->dir = v;
        return 0;
    }
    return fl->parse(v, fl->parse == s_map_size ? &f->map_mb : &f->ckpt_kb);
}

/* The flag a names (--name or --name=value, *v then set), or NULL. */
static const struct s_flag *s_match(const char *a, const char **v)
{
    for (const struct s_flag *fl = s_flag_table; fl->name; fl++) {
        size_t n = strlen(fl->name);
        if (strncmp(a, fl->name, n) == 0 && (a[n] == 0 || a[n] == '=')) {
            *v = a[n] == '=' ? a + n + 1 : NULL;
            return fl;
        }
    }
    return NULL;
}

/* Takes stored's own flags out of argv (the rest go to libsvc); 0, 64 on a bad one. */
static int s_flags(int *argc, char **argv, kv_flags *f)
{
    /* Default: the supervisor's state directory, else the installed path. */
    static char state_dir[4096];
    const char *e, *st = getenv("SVC_STATE_DIR");
    f->dir = KV_DEFAULT_DIR;
    if (st && *st && (size_t)snprintf(state_dir, sizeof state_dir, "%s/store", st) < sizeof state_dir)
        f->dir = state_dir;
    f->map_mb = KV_DEFAULT_MAP;
    f->ckpt_kb = KV_DEFAULT_CKPT;
    for (const struct s_flag *fl = s_flag_table; fl->name; fl++)
        if ((e = getenv(fl->env)) && *e && s_set(f, fl, e) < 0)
            return 64;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i], *v;
        const struct s_flag *fl = s_match(a, &v);
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            s_usage();   /* libsvc prints the service options and exits */
        if (!fl) {
            argv[out++] = argv[i];
            continue;
        }
        if (!v && ++i >= *argc) {
            fprintf(stderr, "stored: option \"%s\" needs a value\n", a);
            return 64;
        }
        if (s_set(f, fl, v ? v : argv[i]) < 0)
            return 64;
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

static int s_add(svc_service *s, const kv_endpoint *eps)
{
    for (; eps->name; eps++) {
        int rc = eps->sfn ? svc_handle_stream(s, eps->name, eps->sfn, eps->req, eps->rsp)
                 : eps->inline_ ? svc_handle_inline(s, eps->name, eps->fn, eps->req, eps->rsp)
                                : svc_handle(s, eps->name, eps->fn, eps->req, eps->rsp);
        if (rc)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    kv_flags f;
    int code = s_flags(&argc, argv, &f);
    if (code)
        return code;
    svc_service *s = svc_new("svc.store", argc, argv);
    if (!s)
        return 1;

    char err[512];
    kv_state st = { .svc = s };
    st.b = kv_lmdb_open(f.dir, f.map_mb, f.ckpt_kb << 10, err, sizeof err);
    if (!st.b) {
        fprintf(stderr, "stored: %s\n", err);
        svc_destroy(&s);
        return 1;
    }
    code = 1;
    st.sync = kv_sync_new(&st);
    if (!st.sync || !(st.commit = kv_commit_start(st.b, kv_sync_committed, st.sync)))
        goto out_sync;
    kv_reaper *reaper = kv_reaper_start(&st, KV_REAP_MS);
    if (!reaper || kv_sync_start(st.sync) < 0)
        goto out_reaper;
    svc_set_data(s, &st);
    if (s_add(s, kv_store_endpoints) || s_add(s, kv_sync_endpoints)) {
        fprintf(stderr, "stored: cannot add endpoints\n");
        goto out_reaper;
    }
    svc_info("store open\tbackend=%s dir=%s map_mib=%zu", st.b->kv->name, f.dir, f.map_mb);
    code = svc_run(s);

out_reaper:
    kv_reaper_stop(&reaper);
    kv_sync_stop(st.sync);       /* ends Observe streams and lock waits before the service goes */
    kv_commit_stop(&st.commit);
out_sync:
    kv_sync_destroy(&st.sync);
    st.b->kv->destroy(st.b);
    svc_destroy(&s);
    return code;
}
