/*
 * brokerd — pub/sub and durable event streams for svc, as service
 * "svc.broker" (docs/broker.md).
 *
 * brokerd's own options (flag, else environment variable, else default),
 * followed by every libsvc service option (svc/service.h):
 *   --data-dir DIR         SVC_BROKER_DIR        event store, default $SVC_STATE_DIR/broker
 *                                                (set by the supervisor), else ./brokerd-data
 *   --pubsub-address ADDR  SVC_BROKER_PUBSUB     BRK1 socket, default tcp://127.0.0.1:7701
 *   --sub-hwm N            SVC_BROKER_SUB_HWM    messages queued per subscriber, default 10000
 *   --max-payload BYTES    SVC_BROKER_MAX_PAYLOAD largest message body, default 1048576
 *   --map-size MIB         SVC_BROKER_MAP_SIZE   LMDB map size, default 4096
 */
#include "api.h"
#include "backend.h"
#include "pubsub.h"
#include "zctx.h"
#include "svc/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct brk_opts {
    const char *data_dir;
    const char *pubsub;
    long sub_hwm;
    long max_payload;
    long map_mib;
} brk_opts;

typedef struct s_flag {
    const char *flag;          /* without "--" */
    const char *env;
    const char *arg;
    const char *help;
    long lo, hi;               /* numeric range; lo > hi for strings */
    size_t off;                /* field in brk_opts */
} s_flag;

#define S_STR(f) offsetof(brk_opts, f)
static const s_flag s_flags[] = {
    { "data-dir", "SVC_BROKER_DIR", "DIR", "event store directory (default $SVC_STATE_DIR/broker, else ./brokerd-data)", 1, 0,
      S_STR(data_dir) },
    { "pubsub-address", "SVC_BROKER_PUBSUB", "ADDR",
      "BRK1 pub/sub socket to bind (default tcp://127.0.0.1:7701)", 1, 0, S_STR(pubsub) },
    { "sub-hwm", "SVC_BROKER_SUB_HWM", "N",
      "messages queued per subscriber connection before drops (default 10000)", 1, 10000000,
      S_STR(sub_hwm) },
    { "max-payload", "SVC_BROKER_MAX_PAYLOAD", "BYTES",
      "largest message or event body (default 1048576)", 1, 16 * 1024 * 1024, S_STR(max_payload) },
    { "map-size", "SVC_BROKER_MAP_SIZE", "MIB", "LMDB map size in MiB (default 4096)", 16,
      1024 * 1024, S_STR(map_mib) },
    { NULL, NULL, NULL, NULL, 0, 0, 0 },
};

static int s_apply(brk_opts *o, const s_flag *f, const char *v, const char *from)
{
    if (f->lo > f->hi) {
        if (!*v) {
            fprintf(stderr, "brokerd: empty value for %s\n", from);
            return -1;
        }
        *(const char **)((char *)o + f->off) = v;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < f->lo || n > f->hi) {
        fprintf(stderr, "brokerd: invalid value \"%s\" for %s: want a whole number from %ld to %ld\n",
                v, from, f->lo, f->hi);
        return -1;
    }
    *(long *)((char *)o + f->off) = n;
    return 0;
}

/*
 * Takes brokerd's flags out of argv (leaving libsvc's), environment first.
 * Returns 0, 1 for --help (printed), or -1 on a bad value (printed).
 */
static int s_parse(brk_opts *o, int *argc, char **argv)
{
    for (const s_flag *f = s_flags; f->flag; f++) {
        const char *v = getenv(f->env);
        if (v && s_apply(o, f, v, f->env) < 0)
            return -1;
    }
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            printf("usage: brokerd [options]\n\n"
                   "svc.broker: pub/sub with queue groups and wildcards, and durable event\n"
                   "streams on LMDB (docs/broker.md).\n\nbrokerd options:\n");
            for (const s_flag *f = s_flags; f->flag; f++) {
                char left[64];
                snprintf(left, sizeof left, "--%s %s", f->flag, f->arg);
                printf("  %-26s %-23s %s\n", left, f->env, f->help);
            }
            printf("\nand every svc service option:\n\n");
            argv[out++] = argv[i];   /* libsvc prints its options and exits 0 */
            continue;
        }
        const s_flag *f = NULL;
        const char *v = NULL;
        if (strncmp(a, "--", 2) == 0) {
            for (const s_flag *g = s_flags; g->flag; g++) {
                size_t n = strlen(g->flag);
                if (strncmp(a + 2, g->flag, n) == 0 && (a[2 + n] == 0 || a[2 + n] == '=')) {
                    f = g;
                    v = a[2 + n] == '=' ? a + 3 + n : NULL;
                }
            }
        }
        if (!f) {
            argv[out++] = argv[i];
            continue;
        }
        if (!v) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "brokerd: option \"--%s\" needs a value\n", f->flag);
                return -1;
            }
            v = argv[++i];
        }
        char from[64];
        snprintf(from, sizeof from, "--%s", f->flag);
        if (s_apply(o, f, v, from) < 0)
            return -1;
    }
    argv[out] = NULL;
    *argc = out;
    if (!svc__address_valid(o->pubsub)) {
        fprintf(stderr, "brokerd: invalid address \"%s\" for --pubsub-address: want "
                "tcp://HOST:PORT or ipc://PATH\n", o->pubsub);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Under the supervisor the data lives in its state directory. */
    const char *state = getenv("SVC_STATE_DIR");
    char *state_data = NULL;
    if (state && *state && asprintf(&state_data, "%s/broker", state) < 0)
        return 1;
    brk_opts o = { state_data ? state_data : "brokerd-data", "tcp://127.0.0.1:7701", 10000,
                   1024 * 1024, 4096 };
    if (s_parse(&o, &argc, argv) < 0) {
        free(state_data);
        return 64;
    }
    svc_service *s = svc_new("svc.broker", argc, argv);
    if (!s) {
        free(state_data);
        return 1;
    }

    int code = 1;
    brk_api api = { .max_payload = (uint32_t)o.max_payload, .sub_hwm = (int)o.sub_hwm };
    brk_lmdb_cfg lc = { o.data_dir, (size_t)o.map_mib << 20, (uint32_t)o.max_payload };
    if (brk_lmdb_open(&api.backend, &lc) < 0)
        goto out_svc;
    brk_pubsub_cfg pc = { o.pubsub, (int)o.sub_hwm, (size_t)o.max_payload, api.backend };
    if (brk_pubsub_start(&api.pubsub, &pc) < 0)
        goto out_backend;
    svc_set_metadata(s, "pubsub", brk_pubsub_address(api.pubsub));
    if (brk_api_register(s, &api) < 0) {
        svc_error_log("cannot register endpoints");
        goto out_pubsub;
    }
    svc_info("pub/sub listening\taddress=%s sub_hwm=%ld", brk_pubsub_address(api.pubsub), o.sub_hwm);
    code = svc_run(s);
out_pubsub:
    /* The backend's last completions go back to the pub/sub thread: stop it last. */
    brk_pubsub_detach_backend(api.pubsub);
    api.backend->vt->close(&api.backend);
    brk_pubsub_stop(&api.pubsub);
    svc_destroy(&s);
    free(state_data);
    return code;
out_backend:
    api.backend->vt->close(&api.backend);
out_svc:
    svc_destroy(&s);
    free(state_data);
    return code;
}
