/*
 * stored — the svc key-value store, locks and leader election, served as
 * service "svc.store" (docs/store.md).
 *
 *   stored [--data-dir DIR] [--map-size MIB] [service options]
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
#define KV_DEFAULT_DIR  "/var/lib/svc/store"
#define KV_DEFAULT_MAP  1024           /* MiB */
#define KV_REAP_MS      250

typedef struct kv_flags {
    const char *dir;      /* --data-dir */
    size_t map_mb;        /* --map-size */
} kv_flags;

static void s_usage(void)
{
    printf("usage: stored [--data-dir DIR] [--map-size MIB] [service options]\n\n"
           "Serves the svc key-value store, locks and leader election as \"svc.store\".\n\n"
           "stored options (flag, environment variable):\n"
           "  --data-dir DIR               " KV_ENV_DIR "          LMDB files (default $SVC_STATE_DIR/store,\n"
           "                                                      set by the supervisor; else " KV_DEFAULT_DIR ")\n"
           "  --map-size MIB               " KV_ENV_MAP "     largest store size (default %d)\n"
           "  (a write waiting for its commit, or a lock call waiting for its lock, holds no\n"
           "  thread: the commit thread answers them)\n\n",
           KV_DEFAULT_MAP);
    fflush(stdout);
}

static int s_map_size(const char *v, size_t *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > (1L << 22)) {
        fprintf(stderr, "stored: invalid map size \"%s\": want MiB from 1 to 4194304\n", v);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

/* Takes stored's own flags out of argv (the rest go to libsvc); 0, 64 on a bad one. */
static int s_flags(int *argc, char **argv, kv_flags *f)
{
    /* Default: the supervisor's state directory, else the installed path. */
    static char state_dir[4096];
    const char *e = getenv(KV_ENV_DIR), *st = getenv("SVC_STATE_DIR");
    f->dir = KV_DEFAULT_DIR;
    if (e && *e)
        f->dir = e;
    else if (st && *st && (size_t)snprintf(state_dir, sizeof state_dir, "%s/store", st) <
                               sizeof state_dir)
        f->dir = state_dir;
    f->map_mb = KV_DEFAULT_MAP;
    if ((e = getenv(KV_ENV_MAP)) && *e && s_map_size(e, &f->map_mb) < 0)
        return 64;
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        bool dir = strcmp(a, "--data-dir") == 0, map = strcmp(a, "--map-size") == 0;
        const char *v = NULL;
        if (strncmp(a, "--data-dir=", 11) == 0)
            v = a + 11, dir = true;
        else if (strncmp(a, "--map-size=", 11) == 0)
            v = a + 11, map = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            s_usage();   /* libsvc prints the service options and exits */
        if (!dir && !map) {
            argv[out++] = argv[i];
            continue;
        }
        if (!v && ++i >= *argc) {
            fprintf(stderr, "stored: option \"%s\" needs a value\n", a);
            return 64;
        }
        v = v ? v : argv[i];
        if (dir && !*v) {
            fprintf(stderr, "stored: --data-dir is empty\n");
            return 64;
        }
        if (dir)
            f->dir = v;
        else if (s_map_size(v, &f->map_mb) < 0)
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
    st.b = kv_lmdb_open(f.dir, f.map_mb, err, sizeof err);
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
