/*
 * svc-testclient — drives svc-testsvc's Test.Echo for the client tests.
 *
 *   svc-testclient [options]
 *
 * Makes --count calls to Test.Echo of --service (default testsvc), each
 * tagged with its number; with --inflight W > 1 keeps W calls in flight from
 * this one thread (callbacks), else makes them one after another
 * (futures).  Prints one line per call:
 *   ok TAG NODE ATTEMPTS ELAPSED_MS          (the answer carried TAG back)
 *   mismatch TAG GOT_TAG NODE                (an answer to another call)
 *   error TAG CODE ATTEMPTS ELAPSED_MS DETAIL
 * ATTEMPTS is "-" with --inflight > 1.  Exits 0 when every call was ok, 1
 * otherwise, 64 on bad usage.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/svc.h"
#include "testsvc.pb-c.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: svc-testclient [options]\n"
               "\n"
               "Calls Test.Echo of svc-testsvc --count times and reports each answer.\n"
               "\n"
               "  --service NAME        service to call (default testsvc)\n"
               "  --count N             calls (default 1)\n"
               "  --inflight W          calls kept in flight at once (default 1)\n"
               "  --interval MS         pause between calls when --inflight is 1\n"
               "  --ms MS               Test.Echo sleeps this long (default 0)\n"
               "  --onward NAME         Test.Echo then calls NAME's Test.Echo\n"
               "  --strategy S          random, round-robin or least\n"
               "  --timeout MS          deadline of each call\n"
               "  --retries N           retries of each call (-1: none)\n"
               "  --backoff MS[,FACTOR[,MAX_MS[,JITTER]]]  backoff before retries\n"
               "  --retry-on LIST       comma list of transport, 503, timeout and codes\n"
               "  --attempt-timeout MS  with timeout in --retry-on: time of one attempt\n"
               "  --deadline-passed     give every call a deadline already in the past\n"
               "  --cache-ms MS         registry view lifetime without the watch\n"
               "  --no-watch            do not watch the registry\n"
               "  --help                show this help\n");
}

static int s_num(const char *v, const char *flag, long lo, long hi, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "svc-testclient: invalid value \"%s\" for %s\n", v, flag);
        return -1;
    }
    *out = n;
    return 0;
}

static int s_backoff(const char *v, svc_retry_policy *p)
{
    double ms = 0, factor = p->backoff_factor, max = -1, jitter = p->jitter;
    int n = sscanf(v, "%lf,%lf,%lf,%lf", &ms, &factor, &max, &jitter);
    if (n < 1)
        return -1;
    p->backoff_ms = (int)ms;
    p->backoff_factor = factor;
    p->backoff_max_ms = max >= 0 ? (int)max : p->backoff_max_ms < p->backoff_ms ? p->backoff_ms
                                                                                 : p->backoff_max_ms;
    p->jitter = jitter;
    return svc_retry_policy_check(p);
}

static int s_retry_on(const char *v, svc_retry_policy *p)
{
    char *copy = strdup(v), *save = NULL;
    int nc = 0, rc = 0;
    p->on = 0;
    memset(p->codes, 0, sizeof p->codes);
    for (char *w = strtok_r(copy, ",", &save); w && rc == 0; w = strtok_r(NULL, ",", &save)) {
        if (strcmp(w, "transport") == 0)
            p->on |= SVC_RETRY_TRANSPORT;
        else if (strcmp(w, "503") == 0)
            p->on |= SVC_RETRY_UNAVAILABLE;
        else if (strcmp(w, "timeout") == 0)
            p->on |= SVC_RETRY_TIMEOUT;
        else if (atoi(w) >= 100 && nc < SVC_RETRY_MAX_CODES)
            p->codes[nc++] = atoi(w);
        else
            rc = -1;
    }
    free(copy);
    return rc;
}

typedef struct run {
    svc_client *client;
    const char *service;
    svc_call_opts opts;
    bool deadline_passed;
    long count, started, ms;
    const char *onward;
    int failures;
} run;

typedef struct slot {
    run *r;
    long tag;
    int64_t t0;
} slot;

/* Encodes the request of call tag into buf (256 bytes). */
static size_t s_request(const run *r, long tag, uint8_t *buf, char tagbuf[24])
{
    snprintf(tagbuf, 24, "%ld", tag);
    Testsvc__EchoRequest req = TESTSVC__ECHO_REQUEST__INIT;
    req.tag = tagbuf;
    req.ms = (uint32_t)r->ms;
    req.onward = (char *)(r->onward ? r->onward : "");
    return testsvc__echo_request__pack(&req, buf);
}

/* Prints the outcome of call tag; counts failures. */
static void s_report(run *r, long tag, int rc, const svc_reply *reply, const svc_error *err,
                     int attempts, int64_t t0)
{
    char att[16];
    snprintf(att, sizeof att, attempts > 0 ? "%d" : "-", attempts);
    long elapsed = (long)(svc_now_ms() - t0);
    if (rc < 0) {
        printf("error %ld %d %s %ld %s\n", tag, err->code, att, elapsed, err->detail ? err->detail : "");
        r->failures++;
        fflush(stdout);
        return;
    }
    Testsvc__EchoResponse *rsp = testsvc__echo_response__unpack(NULL, reply->len, reply->body);
    char want[24];
    snprintf(want, sizeof want, "%ld", tag);
    if (!rsp) {
        printf("error %ld 500 %s %ld answer does not decode\n", tag, att, elapsed);
        r->failures++;
    } else if (strcmp(rsp->tag, want) != 0) {
        printf("mismatch %ld %s %s\n", tag, rsp->tag, rsp->node);
        r->failures++;
    } else {
        printf("ok %ld %s %s %ld\n", tag, rsp->node, att, elapsed);
    }
    if (rsp)
        testsvc__echo_response__free_unpacked(rsp, NULL);
    fflush(stdout);
}

static void s_start(run *r);

static void s_done(void *arg, int rc, svc_reply *reply, svc_error *err)
{
    slot *s = arg;
    s_report(s->r, s->tag, rc, reply, err, 0, s->t0);
    run *r = s->r;
    free(s);
    s_start(r);   /* keep the window full */
}

static void s_start(run *r)
{
    if (r->started >= r->count)
        return;
    slot *s = malloc(sizeof *s);
    if (!s)
        return;
    s->r = r;
    s->tag = r->started++;
    s->t0 = svc_now_ms();
    uint8_t buf[256];
    char tag[24];
    size_t len = s_request(r, s->tag, buf, tag);
    if (r->deadline_passed)
        r->opts.deadline_ms = svc_now_ms() - 1;
    if (svc_call_cb(r->client, r->service, "Test.Echo", buf, len, &r->opts, s_done, s) < 0) {
        printf("error %ld 500 - 0 cannot start the call\n", s->tag);
        r->failures++;
        free(s);
    }
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "service", required_argument, NULL, 'S' },
        { "count", required_argument, NULL, 'c' },
        { "inflight", required_argument, NULL, 'w' },
        { "interval", required_argument, NULL, 'i' },
        { "ms", required_argument, NULL, 'M' },
        { "onward", required_argument, NULL, 'o' },
        { "strategy", required_argument, NULL, 's' },
        { "timeout", required_argument, NULL, 't' },
        { "retries", required_argument, NULL, 'r' },
        { "backoff", required_argument, NULL, 'b' },
        { "retry-on", required_argument, NULL, 'O' },
        { "attempt-timeout", required_argument, NULL, 'A' },
        { "deadline-passed", no_argument, NULL, 'D' },
        { "cache-ms", required_argument, NULL, 'C' },
        { "no-watch", no_argument, NULL, 'W' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    run r = { .service = "testsvc", .count = 1 };
    svc_retry_policy policy = SVC_RETRY_POLICY_INIT;
    bool custom_policy = false, watch = true;
    long inflight = 1, interval = 0, v, cache_ms = -1;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", longs, NULL)) != -1) {
        switch (c) {
        case 'S': r.service = optarg; break;
        case 'c': if (s_num(optarg, "--count", 1, 10000000, &r.count) < 0) return 64; break;
        case 'w': if (s_num(optarg, "--inflight", 1, 100000, &inflight) < 0) return 64; break;
        case 'i': if (s_num(optarg, "--interval", 0, 60000, &interval) < 0) return 64; break;
        case 'M': if (s_num(optarg, "--ms", 0, 600000, &r.ms) < 0) return 64; break;
        case 'o': r.onward = optarg; break;
        case 't':
            if (s_num(optarg, "--timeout", 1, 3600000, &v) < 0)
                return 64;
            r.opts.timeout_ms = (int)v;
            break;
        case 'r':
            if (s_num(optarg, "--retries", -1, 100, &v) < 0)
                return 64;
            r.opts.retries = (int)v;
            break;
        case 'A':
            if (s_num(optarg, "--attempt-timeout", 1, 3600000, &v) < 0)
                return 64;
            policy.attempt_timeout_ms = (int)v;
            custom_policy = true;
            break;
        case 'b':
            if (s_backoff(optarg, &policy) < 0) {
                fprintf(stderr, "svc-testclient: invalid value \"%s\" for --backoff\n", optarg);
                return 64;
            }
            custom_policy = true;
            break;
        case 'O':
            if (s_retry_on(optarg, &policy) < 0) {
                fprintf(stderr, "svc-testclient: invalid value \"%s\" for --retry-on\n", optarg);
                return 64;
            }
            custom_policy = true;
            break;
        case 's':
            r.opts.strategy = strcmp(optarg, "random") == 0        ? SVC_SELECT_RANDOM
                              : strcmp(optarg, "round-robin") == 0 ? SVC_SELECT_ROUND_ROBIN
                              : strcmp(optarg, "least") == 0       ? SVC_SELECT_LEAST_OUTSTANDING
                                                                   : SVC_SELECT_DEFAULT;
            if (!r.opts.strategy) {
                fprintf(stderr, "svc-testclient: invalid value \"%s\" for --strategy\n", optarg);
                return 64;
            }
            break;
        case 'D': r.deadline_passed = true; break;
        case 'C': if (s_num(optarg, "--cache-ms", 0, 3600000, &cache_ms) < 0) return 64; break;
        case 'W': watch = false; break;
        case 'h': s_usage(stdout); return 0;
        default:
            fprintf(stderr, "svc-testclient: %s \"%s\" (see --help)\n",
                    c == ':' ? "option needs a value" : "unknown option", argv[optind - 1]);
            return 64;
        }
    }
    if (optind != argc) {
        s_usage(stderr);
        return 64;
    }
    r.client = svc_client_new(NULL);
    if (!r.client)
        return 1;
    if (custom_policy && svc_retry_policy_check(&policy) < 0) {
        fprintf(stderr, "svc-testclient: invalid retry policy\n");
        return 64;
    }
    if (custom_policy)
        r.opts.retry = &policy;
    if (cache_ms >= 0)
        svc_client_set_cache(r.client, (int)cache_ms);
    svc_client_set_watch(r.client, watch);

    if (inflight > 1) {
        for (long i = 0; i < inflight; i++)
            s_start(&r);
        while (svc_client_poll(r.client, -1) > 0)
            ;
    } else {
        for (long i = 0; i < r.count; i++) {
            if (i && interval) {
                struct timespec ts = { interval / 1000, (interval % 1000) * 1000000L };
                nanosleep(&ts, NULL);
            }
            uint8_t buf[256];
            char tag[24];
            size_t len = s_request(&r, i, buf, tag);
            if (r.deadline_passed)
                r.opts.deadline_ms = svc_now_ms() - 1;
            int64_t t0 = svc_now_ms();
            svc_future *f;
            if (svc_call_async(r.client, r.service, "Test.Echo", buf, len, &r.opts, &f) < 0)
                return 1;
            svc_future_wait(f, -1);
            svc_reply rep = SVC_REPLY_INIT;
            svc_error err = SVC_ERROR_INIT;
            int rc = svc_future_result(f, &rep, &err);
            s_report(&r, i, rc, &rep, &err, svc_future_attempts(f), t0);
            svc_reply_release(&rep);
            svc_error_release(&err);
            svc_future_destroy(&f);
        }
    }
    svc_client_destroy(&r.client);
    return r.failures ? 1 : 0;
}
