/*
 * libsvc/options.c — a service's options from flags, the environment and
 * defaults, in that order of precedence.  One table drives parsing, the
 * environment and --help.
 */
#include "service_int.h"
#include "zctx.h"
#include "svc/log.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef int (*s_apply_fn)(svc_service *s, const char *value, const char *name);

typedef struct s_option {
    const char *flag;     /* long flag without "--" */
    const char *env;      /* environment variable */
    const char *arg;      /* argument name in --help */
    s_apply_fn apply;     /* validates and stores */
    const char *help;     /* one line */
} s_option;

static int s_set_str(char **dst, const char *v)
{
    char *c = strdup(v);
    if (!c)
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

static int s_int(const char *v, const char *name, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "%s: invalid value \"%s\" for %s: want a whole number from %d to %d\n",
                program_invocation_short_name, v, name, lo, hi);
        return SVC_EINVAL;
    }
    *out = (int)n;
    return 0;
}

static int s_addr(const char *v, const char *name)
{
    if (svc__address_valid(v))
        return 0;
    fprintf(stderr, "%s: invalid address \"%s\" for %s: want tcp://HOST:PORT or ipc://PATH\n",
            program_invocation_short_name, v, name);
    return SVC_EINVAL;
}

static int o_name(svc_service *s, const char *v, const char *n)
{
    if (!*v || strpbrk(v, " \t\n/")) {
        fprintf(stderr, "%s: invalid service name \"%s\" for %s\n",
                program_invocation_short_name, v, n);
        return SVC_EINVAL;
    }
    return s_set_str(&s->name, v);
}
static int o_version(svc_service *s, const char *v, const char *n) { return s_set_str(&s->version, v); }
static int o_address(svc_service *s, const char *v, const char *n)
{
    return s_addr(v, n) ?: s_set_str(&s->address, v);
}
static int o_advertise(svc_service *s, const char *v, const char *n)
{
    return s_addr(v, n) ?: s_set_str(&s->advertise, v);
}
static int o_registry(svc_service *s, const char *v, const char *n)
{
    return s_addr(v, n) ?: s_set_str(&s->registry, v);
}
static int o_metadata(svc_service *s, const char *v, const char *n)
{
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return -ENOMEM;
    int rc = 0;
    for (char *kv = strtok_r(copy, ",", &save); kv && rc == 0; kv = strtok_r(NULL, ",", &save)) {
        rc = svc_meta_parse(&s->meta, kv);
        if (rc == SVC_EINVAL)
            fprintf(stderr, "%s: invalid metadata \"%s\" for %s: want KEY=VALUE\n",
                    program_invocation_short_name, kv, n);
    }
    free(copy);
    return rc;
}
static int o_ttl(svc_service *s, const char *v, const char *n) { return s_int(v, n, 1, 86400, &s->ttl_s); }
static int o_interval(svc_service *s, const char *v, const char *n) { return s_int(v, n, 1, 86400, &s->interval_s); }
static int o_workers(svc_service *s, const char *v, const char *n) { return s_int(v, n, 1, 1024, &s->workers); }
static int o_drain(svc_service *s, const char *v, const char *n) { return s_int(v, n, 0, 3600, &s->drain_s); }
static int o_hwm(svc_service *s, const char *v, const char *n) { return s_int(v, n, 10, 1000000, &s->send_hwm); }
static int o_log(svc_service *s, const char *v, const char *n)
{
    int l = svc_log_parse_level(v);
    if (l < 0) {
        fprintf(stderr, "%s: invalid log level \"%s\" for %s: want debug, info, warn or error\n",
                program_invocation_short_name, v, n);
        return SVC_EINVAL;
    }
    svc_log_set_level((svc_log_level)l);
    return 0;
}

static int o_log_requests(svc_service *s, const char *v, const char *n)
{
    static const char *yes[] = { "1", "true", "yes", "on", NULL };
    static const char *no[] = { "0", "false", "no", "off", NULL };
    for (int i = 0; yes[i] && no[i]; i++) {
        if (strcasecmp(v, yes[i]) == 0 || strcasecmp(v, no[i]) == 0) {
            s->log_requests = strcasecmp(v, yes[i]) == 0;
            return 0;
        }
    }
    fprintf(stderr, "%s: invalid value \"%s\" for %s: want 1 or 0 (true/false, yes/no, on/off)\n",
            program_invocation_short_name, v, n);
    return SVC_EINVAL;
}

/* arg NULL: a flag without a value, applied as "1". */
static const s_option s_options[] = {
    { "name", "SVC_NAME", "NAME", o_name, "service name" },
    { "version", "SVC_VERSION", "V", o_version, "service version (default latest)" },
    { "address", "SVC_ADDRESS", "ADDR", o_address, "address to bind (default tcp://127.0.0.1:*, any free port)" },
    { "advertise", "SVC_ADVERTISE", "ADDR", o_advertise, "address registered for callers (default: the bound one)" },
    { "metadata", "SVC_METADATA", "K=V", o_metadata, "node metadata; repeat or separate with commas" },
    { "registry", "SVC_REGISTRY_ADDRESS", "ADDR", o_registry, "registry address (default " SVC_DEFAULT_REGISTRY ")" },
    { "register-ttl", "SVC_REGISTER_TTL", "SECONDS", o_ttl, "registration expires after this (default 90)" },
    { "register-interval", "SVC_REGISTER_INTERVAL", "SECONDS", o_interval, "register again this often (default 30)" },
    { "workers", "SVC_WORKERS", "N", o_workers, "handler threads (default 16)" },
    { "drain-timeout", "SVC_DRAIN_TIMEOUT", "SECONDS", o_drain, "on stop, wait this long for requests in flight (default 10)" },
    { "send-hwm", "SVC_SEND_HWM", "N", o_hwm, "messages queued per caller before its streams end with 429 (default 10000)" },
    { "log-level", "SVC_LOG_LEVEL", "LEVEL", o_log, "debug, info, warn or error (default info)" },
    { "log-requests", "SVC_LOG_REQUESTS", NULL, o_log_requests, "log every request and onward call, with trace ids (env: 1 or 0)" },
    { NULL, NULL, NULL, NULL, NULL },
};

static void s_usage(const svc_service *s)
{
    printf("usage: %s [options]\n\nRuns the svc service \"%s\".\n\noptions (flag, environment variable):\n",
           program_invocation_short_name, s->name);
    for (const s_option *o = s_options; o->flag; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->flag, o->arg ? " " : "", o->arg ? o->arg : "");
        printf("  %-28s %-22s %s\n", left, o->env, o->help);
    }
    printf("  %-28s %-22s %s\n", "--help", "", "show this help");
    printf("\nStops cleanly on SIGTERM or SIGINT: deregisters, then finishes requests in flight.\n");
}

/* True when arg is "--FLAG=..." for a FLAG of the table that takes no value. */
static bool s_is_bare_flag_with_value(const char *arg)
{
    const char *eq = strchr(arg, '=');
    if (!eq || strncmp(arg, "--", 2) != 0)
        return false;
    for (const s_option *o = s_options; o->flag; o++)
        if (!o->arg && strlen(o->flag) == (size_t)(eq - arg - 2) &&
            strncmp(o->flag, arg + 2, (size_t)(eq - arg - 2)) == 0)
            return true;
    return false;
}

int svc__options_parse(svc_service *s, int argc, char **argv)
{
    /* Environment first, so flags override it. */
    for (const s_option *o = s_options; o->flag; o++) {
        const char *v = getenv(o->env);
        if (v && *v && o->apply(s, v, o->env) < 0)
            return SVC_EINVAL;
    }
    if (!argv)
        return 0;

    enum { N = sizeof s_options / sizeof *s_options };
    struct option longs[N + 1];
    int i = 0;
    for (const s_option *o = s_options; o->flag; o++, i++)
        longs[i] = (struct option){ o->flag, o->arg ? required_argument : no_argument, NULL, i };
    longs[i++] = (struct option){ "help", no_argument, NULL, 'h' };
    longs[i] = (struct option){ NULL, 0, NULL, 0 };

    optind = 1;
    opterr = 0;
    for (;;) {
        int idx = -1;
        int c = getopt_long(argc, argv, "+:h", longs, &idx);
        if (c == -1)
            break;
        if (c == 'h') {
            s_usage(s);
            exit(0);
        }
        if (c == '?' || c == ':') {
            const char *bad = argv[optind - 1];
            if (c == ':')
                fprintf(stderr, "%s: option \"%s\" needs a value\n", program_invocation_short_name, bad);
            else if (s_is_bare_flag_with_value(bad))
                fprintf(stderr, "%s: option \"%.*s\" takes no value\n",
                        program_invocation_short_name, (int)(strchr(bad, '=') - bad), bad);
            else
                fprintf(stderr, "%s: unknown option \"%s\" (see --help)\n", program_invocation_short_name, bad);
            return SVC_EINVAL;
        }
        char flag[80];
        snprintf(flag, sizeof flag, "--%s", s_options[c].flag);
        if (s_options[c].apply(s, optarg ? optarg : "1", flag) < 0)
            return SVC_EINVAL;
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\" (see --help)\n",
                program_invocation_short_name, argv[optind]);
        return SVC_EINVAL;
    }
    return 0;
}
