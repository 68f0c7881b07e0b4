/* bench/args.c — svc-bench's shared flags.  See args.h. */
#include "args.h"
#include "window.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* One flag: how it is spelled, what it sets, what --help says. */
typedef struct s_flag {
    unsigned bit;                                 /* BM_F_* */
    const char *name;                             /* without the dashes */
    const char *arg;                              /* placeholder in --help */
    int (*apply)(bm_args *a, const char *v, const char *flag);
    const char *help;
} s_flag;

static int s_double(const char *v, const char *flag, double lo, double hi, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "svc-bench: invalid value \"%s\" for --%s: want seconds from %g to %g\n",
                v, flag, lo, hi);
        return -1;
    }
    *out = d;
    return 0;
}

static int s_long(const char *v, const char *flag, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "svc-bench: invalid value \"%s\" for --%s: want an integer from %ld to %ld\n",
                v, flag, lo, hi);
        return -1;
    }
    *out = n;
    return 0;
}

static int f_seconds(bm_args *a, const char *v, const char *f) { return s_double(v, f, 0.01, 3600, &a->seconds); }
static int f_warmup(bm_args *a, const char *v, const char *f) { return s_double(v, f, 0, 3600, &a->warmup); }
static int f_size(bm_args *a, const char *v, const char *f) { return s_long(v, f, 1, 1 << 20, &a->size); }
static int f_registry(bm_args *a, const char *v, const char *f) { a->registry = v; return 0; }
static int f_service(bm_args *a, const char *v, const char *f) { a->service = v; return 0; }
static int f_endpoint(bm_args *a, const char *v, const char *f) { a->endpoint = v; return 0; }
static int f_address(bm_args *a, const char *v, const char *f) { a->address = v; return 0; }
static int f_wait(bm_args *a, const char *v, const char *f) { return s_long(v, f, 0, 600000, &a->wait_ms); }
static int f_label(bm_args *a, const char *v, const char *f)
{
    if (!*v || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v)) {
        fprintf(stderr, "svc-bench: invalid value \"%s\" for --%s: want lowercase letters, digits, -\n", v, f);
        return -1;
    }
    a->label = v;
    return 0;
}

static int f_in_flight(bm_args *a, const char *v, const char *f) { return s_long(v, f, 1, BM_WINDOW_MAX, &a->in_flight); }
static int f_codec(bm_args *a, const char *v, const char *f)
{
    if (strcmp(v, "protobuf") != 0 && strcmp(v, "json") != 0) {
        fprintf(stderr, "svc-bench: invalid value \"%s\" for --%s: want protobuf or json\n", v, f);
        return -1;
    }
    a->codec = v;
    return 0;
}

static int f_client(bm_args *a, const char *v, const char *f)
{
    if (strcmp(v, "async") != 0 && strcmp(v, "wire") != 0) {
        fprintf(stderr, "svc-bench: invalid value \"%s\" for --%s: want async or wire\n", v, f);
        return -1;
    }
    a->client = v;
    return 0;
}

static const s_flag s_flags[] = {
    { BM_F_SECONDS, "seconds", "S", f_seconds, "measure for S seconds (default 3)" },
    { BM_F_WARMUP, "warmup", "S", f_warmup, "run unmeasured for S seconds first (default 0.5)" },
    { BM_F_SIZE, "size", "BYTES", f_size, "payload size (default 64)" },
    { BM_F_REGISTRY, "registry", "ADDR", f_registry, "registry address (env SVC_REGISTRY_ADDRESS)" },
    { BM_F_SERVICE, "service", "NAME", f_service, "service to call (default bench.echo)" },
    { BM_F_ENDPOINT, "endpoint", "NAME", f_endpoint, "endpoint to call (default Echo.Call)" },
    { BM_F_ADDRESS, "address", "ADDR", f_address, "call this node directly, not via the registry" },
    { BM_F_WAIT, "wait", "MS", f_wait, "wait up to MS for the first answer (default 10000)" },
    { BM_F_LABEL, "label", "NAME", f_label, "bench name in the result lines (default per command)" },
    { BM_F_INFLIGHT, "in-flight", "N", f_in_flight, "keep N requests in flight (default 1)" },
    { BM_F_CODEC, "codec", "NAME", f_codec, "body encoding: protobuf (default) or json" },
    { BM_F_CLIENT, "client", "NAME", f_client,
      "with --in-flight > 1: async (svc_call_cb, default) or wire (bare wire encoder)" },
    { 0, NULL, NULL, NULL, NULL },
};

void bm_args_usage(FILE *f, unsigned mask, const char *usage)
{
    fprintf(f, "usage: %s\n\n", usage);
    for (const s_flag *fl = s_flags; fl->name; fl++) {
        if (!(mask & fl->bit))
            continue;
        char left[48];
        snprintf(left, sizeof left, "--%s %s", fl->name, fl->arg);
        fprintf(f, "  %-20s %s\n", left, fl->help);
    }
    fprintf(f, "  %-20s %s\n", "--help", "show this help");
}

int bm_args_parse(int argc, char **argv, unsigned mask, const char *positional,
                  const char *usage, bm_args *a)
{
    *a = (bm_args){ .seconds = 3, .warmup = 0.5, .size = 64, .service = "bench.echo",
                    .endpoint = "Echo.Call", .wait_ms = 10000, .in_flight = 1,
                    .codec = "protobuf", .client = "async" };
    enum { N = sizeof s_flags / sizeof *s_flags };
    struct option longs[N + 1];
    int n = 0;
    for (int i = 0; s_flags[i].name; i++)
        if (mask & s_flags[i].bit)
            longs[n++] = (struct option){ s_flags[i].name, required_argument, NULL, i };
    longs[n++] = (struct option){ "help", no_argument, NULL, 'h' };
    longs[n] = (struct option){ NULL, 0, NULL, 0 };

    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        if (c == 'h') {
            bm_args_usage(stdout, mask, usage);
            return 1;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "svc-bench: %s \"%s\" (see svc-bench %s --help)\n",
                    c == ':' ? "option needs a value" : "unknown option", argv[optind - 1],
                    argv[0]);
            return 64;
        }
        if (s_flags[c].apply(a, optarg, s_flags[c].name) < 0)
            return 64;
    }
    int want = positional ? 1 : 0;
    if (argc - optind != want) {
        if (argc - optind > want)
            fprintf(stderr, "svc-bench: unexpected argument \"%s\" (see svc-bench %s --help)\n",
                    argv[optind + want], argv[0]);
        else
            fprintf(stderr, "svc-bench: %s needs %s (see svc-bench %s --help)\n", argv[0], positional,
                    argv[0]);
        return 64;
    }
    a->positional = positional ? argv[optind] : NULL;
    return 0;
}

const char *bm_transport(const char *address)
{
    static const char *schemes[] = { "tcp", "ipc", "inproc", NULL };
    for (int i = 0; address && schemes[i]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(address, schemes[i], n) == 0 && strncmp(address + n, "://", 3) == 0)
            return schemes[i];
    }
    return "other";
}
