/*
 * svcctl/cmd_broker.c — publish, subscribe, streams, stream-info, consume:
 * brokerd's pub/sub and event streams from the command line.
 */
#include "svcctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = 1;
}

static void s_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static bool s_count(const char *verb, const char *v, long max, long *out)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || n > max) {
        ctl_err("%s: invalid number \"%s\": want 0..%ld", verb, v, max);
        return false;
    }
    *out = n;
    return true;
}

/* Calls svc.broker with a JSON body; parsed answer or NULL after printing the error. */
static json_t *s_call(const ctl_opts *o, const char *endpoint, json_t *req, int timeout_ms,
                      int *code)
{
    svc_client *c = svc_client_new(o->registry);
    char *body = json_dumps(req, JSON_COMPACT);
    svc_call_opts co = { .timeout_ms = timeout_ms ? timeout_ms : (o->timeout_ms ? o->timeout_ms : 5000),
                         .content_type = SVC_CT_JSON };
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    json_t *j = NULL;
    int rc = c && body ? svc_client_call_raw(c, "svc.broker", endpoint, body, strlen(body), &co,
                                             &r, &err)
                       : -ENOMEM;
    if (rc == 0) {
        json_error_t je;
        j = json_loadb(r.body ? r.body : "{}", r.body ? r.len : 2, 0, &je);
    }
    if (!j) {
        *code = 1;
        if (rc == SVC_ENOTFOUND)
            ctl_err("svc.broker is not registered: is brokerd running?");
        else
            ctl_print_error("svc.broker", &err);
    }
    svc_reply_release(&r);
    svc_error_release(&err);
    free(body);
    svc_client_destroy(&c);
    return j;
}

static long long s_num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return json_is_integer(v) ? json_integer_value(v) : 0;
}

/* ---- publish ------------------------------------------------------------------- */

int ctl_publish(const ctl_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        { "stream", required_argument, NULL, 's' },
        { "id", required_argument, NULL, 'i' },
        { "metadata", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const ctl_verb *v = ctl_verb_find("publish");
    const char *stream = NULL, *id = NULL;
    svc_meta meta = SVC_META_INIT;
    int code = 0, opt;
    optind = 0;   /* 0: glibc re-initialises getopt (options may follow arguments) */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (opt) {
        case 's':
            stream = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'm':
            if (svc_meta_parse(&meta, optarg) < 0) {
                ctl_err("publish: invalid metadata \"%s\": want KEY=VALUE", optarg);
                code = EXIT_USAGE;
            }
            break;
        case 'h':
            ctl_usage(v, 2, (char *[]){ argv[0], "--help", NULL }, 0, 0, &code);
            svc_meta_release(&meta);
            return 0;
        default:
            ctl_err("publish: unknown or incomplete option \"%s\"", argv[optind - 1]);
            code = EXIT_USAGE;
        }
    }
    if (code || argc - optind != 2) {
        if (!code)
            ctl_err("publish: expected %s", v->args);
        svc_meta_release(&meta);
        return EXIT_USAGE;
    }
    const char *topic = argv[optind], *text = argv[optind + 1];
    json_error_t je;
    json_t *check = json_loads(text, JSON_DECODE_ANY, &je);
    if (!check) {
        ctl_err("publish: invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        svc_meta_release(&meta);
        return EXIT_DATA;
    }
    json_decref(check);
    svc_error err = SVC_ERROR_INIT;
    if (stream) {
        svc_events *ev = svc_events_new(o->registry);
        svc_events_set_timeout(ev, o->timeout_ms ? o->timeout_ms : 5000);
        svc_event_publish_opts po = { .id = id, .topic = topic, .content_type = SVC_CT_JSON,
                                      .meta = &meta };
        uint64_t seq = 0;
        bool dup = false;
        int rc = svc_events_publish(ev, stream, text, strlen(text), &po, &seq, &dup, &err);
        if (rc < 0) {
            ctl_print_error("publish", &err);
            code = 1;
        } else if (o->json) {
            printf("{\"seq\":%" PRIu64 ",\"duplicate\":%s}\n", seq, dup ? "true" : "false");
        } else {
            printf("seq %" PRIu64 "%s\n", seq, dup ? " (duplicate: stored before)" : "");
        }
        svc_events_destroy(&ev);
    } else {
        svc_broker *b = svc_broker_new(o->registry);
        int rc = svc_broker_connect(b, &err);
        if (rc == 0)
            rc = svc_broker_publish(b, topic, text, strlen(text), SVC_CT_JSON, &meta);
        if (rc == 0)
            rc = svc_broker_flush(b, o->timeout_ms ? o->timeout_ms : 5000, &err);
        if (rc < 0) {
            if (rc == SVC_EINVAL)
                ctl_err("publish: invalid topic \"%s\"", topic);
            else if (svc_error_isset(&err))
                ctl_print_error("publish", &err);
            else
                ctl_err("publish: %s", svc_strerror(rc));
            code = rc == SVC_EINVAL ? EXIT_USAGE : 1;
        }
        svc_broker_destroy(&b);
    }
    svc_error_release(&err);
    svc_meta_release(&meta);
    return code;
}

/* ---- subscribe ------------------------------------------------------------------- */

typedef struct s_subctx {
    const ctl_opts *o;
    atomic_long seen;
} s_subctx;

/* Prints a body: as-is when it is JSON (in json mode) or text. */
static void s_print_message(const ctl_opts *o, const svc_message *m)
{
    if (o->json) {
        json_t *meta = json_object();
        for (size_t i = 0; i < m->meta->n; i++)
            json_object_set_new(meta, m->meta->pairs[i].key, json_string(m->meta->pairs[i].value));
        json_error_t je;
        json_t *body = json_loadb(m->body, m->len, JSON_DECODE_ANY, &je);
        if (!body)
            body = json_stringn_nocheck(m->body, m->len);
        json_t *j = json_pack("{s:s,s:s,s:o,s:o}", "topic", m->topic, "content_type",
                              m->content_type, "metadata", meta, "body", body ? body : json_null());
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%s %.*s\n", m->topic, (int)m->len, (const char *)m->body);
    }
    fflush(stdout);
}

static void s_on_message(const svc_message *m, void *arg)
{
    s_subctx *c = arg;
    s_print_message(c->o, m);
    atomic_fetch_add(&c->seen, 1);
}

int ctl_subscribe(const ctl_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        { "queue", required_argument, NULL, 'q' },
        { "count", required_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const ctl_verb *v = ctl_verb_find("subscribe");
    const char *queue = NULL;
    long count = 0;
    int code = 0, opt;
    optind = 0;   /* 0: glibc re-initialises getopt (options may follow arguments) */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (opt) {
        case 'q':
            queue = optarg;
            break;
        case 'c':
            if (!s_count("subscribe", optarg, 1000000000, &count))
                return EXIT_USAGE;
            break;
        case 'h':
            ctl_usage(v, 2, (char *[]){ argv[0], "--help", NULL }, 0, 0, &code);
            return 0;
        default:
            ctl_err("subscribe: unknown or incomplete option \"%s\"", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        ctl_err("subscribe: expected %s", v->args);
        return EXIT_USAGE;
    }
    s_catch_signals();
    s_subctx ctx = { .o = o };
    svc_error err = SVC_ERROR_INIT;
    svc_broker *b = svc_broker_new(o->registry);
    int rc = svc_broker_connect(b, &err);
    if (rc == 0)
        rc = svc_broker_subscribe(b, argv[optind], queue, s_on_message, &ctx, NULL);
    if (rc < 0) {
        if (rc == SVC_EINVAL)
            ctl_err("subscribe: invalid topic pattern \"%s\" or queue \"%s\"", argv[optind],
                    queue ? queue : "");
        else if (svc_error_isset(&err))
            ctl_print_error("subscribe", &err);
        else
            ctl_err("subscribe: %s", svc_strerror(rc));
        code = rc == SVC_EINVAL ? EXIT_USAGE : 1;
    } else {
        /* Tell a script waiting on stderr that messages published from now on arrive. */
        fprintf(stderr, "svcctl: subscribed to \"%s\"%s%s\n", argv[optind], queue ? " in queue " : "",
                queue ? queue : "");
        while (!s_stop && (!count || atomic_load(&ctx.seen) < count))
            usleep(20000);
    }
    svc_broker_destroy(&b);
    svc_error_release(&err);
    return code;
}

/* ---- streams, stream-info ------------------------------------------------------------ */

int ctl_streams(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("streams"), argc, argv, 0, 0, &code))
        return code;
    json_t *req = json_object();
    json_t *ans = s_call(o, "Events.Streams", req, 0, &code);
    json_decref(req);
    if (!ans)
        return code;
    json_t *list = json_object_get(ans, "streams");
    if (o->json) {
        ctl_print_json(list);
    } else {
        static const char *const h[] = { "STREAM", "MESSAGES", "BYTES", "FIRST", "LAST", "CONSUMERS" };
        ctl_table *t = ctl_table_new(6, h);
        size_t i;
        json_t *s;
        json_array_foreach(list, i, s) {
            char c[5][24];
            snprintf(c[0], 24, "%lld", s_num(s, "messages"));
            snprintf(c[1], 24, "%lld", s_num(s, "bytes"));
            snprintf(c[2], 24, "%lld", s_num(s, "first_seq"));
            snprintf(c[3], 24, "%lld", s_num(s, "last_seq"));
            snprintf(c[4], 24, "%zu", json_array_size(json_object_get(s, "consumers")));
            const char *name = json_string_value(json_object_get(json_object_get(s, "config"), "name"));
            const char *row[] = { name ? name : "", c[0], c[1], c[2], c[3], c[4] };
            ctl_table_add(t, row);
        }
        ctl_table_print(t);
        ctl_table_free(t);
    }
    json_decref(ans);
    return code;
}

int ctl_stream_info(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("stream-info"), argc, argv, 1, 1, &code))
        return code;
    json_t *req = json_pack("{s:s}", "stream", argv[1]);
    json_t *ans = s_call(o, "Events.StreamInfo", req, 0, &code);
    json_decref(req);
    if (!ans)
        return code;
    if (o->json) {
        ctl_print_json(ans);
        json_decref(ans);
        return 0;
    }
    json_t *cfg = json_object_get(ans, "config");
    printf("stream     %s\n", argv[1]);
    printf("messages   %lld\nbytes      %lld\nfirst_seq  %lld\nlast_seq   %lld\n",
           s_num(ans, "messages"), s_num(ans, "bytes"), s_num(ans, "first_seq"),
           s_num(ans, "last_seq"));
    printf("limits     max_msgs=%lld max_bytes=%lld max_age_ms=%lld dedup_window_ms=%lld "
           "max_msg_size=%lld\n\n",
           s_num(cfg, "max_msgs"), s_num(cfg, "max_bytes"), s_num(cfg, "max_age_ms"),
           s_num(cfg, "dedup_window_ms"), s_num(cfg, "max_msg_size"));
    static const char *const h[] = { "GROUP", "NEXT", "ACK_FLOOR", "PENDING", "REDELIVERED",
                                     "DEAD_LETTERED", "MISSED" };
    ctl_table *t = ctl_table_new(7, h);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ans, "consumers"), i, c) {
        static const char *const keys[] = { "next_seq", "ack_floor", "pending", "redelivered",
                                            "dead_lettered", "missed" };
        char cells[6][24];
        for (int k = 0; k < 6; k++)
            snprintf(cells[k], 24, "%lld", s_num(c, keys[k]));
        const char *g = json_string_value(json_object_get(c, "group"));
        const char *row[] = { g ? g : "", cells[0], cells[1], cells[2], cells[3], cells[4], cells[5] };
        ctl_table_add(t, row);
    }
    ctl_table_print(t);
    ctl_table_free(t);
    json_decref(ans);
    return 0;
}

/* ---- consume ----------------------------------------------------------------------- */

/* Parses --start: beginning | end | seq=N | time=UNIX_MS. */
static bool s_start(const char *v, svc_consume_opts *co)
{
    char *end;
    if (strcmp(v, "beginning") == 0) {
        co->start = SVC_START_BEGINNING;
    } else if (strcmp(v, "end") == 0) {
        co->start = SVC_START_END;
    } else if (strncmp(v, "seq=", 4) == 0) {
        co->start = SVC_START_SEQ;
        co->start_seq = strtoull(v + 4, &end, 10);
        return *end == 0 && v[4] && co->start_seq > 0;
    } else if (strncmp(v, "time=", 5) == 0) {
        co->start = SVC_START_TIME;
        co->start_time_ms = strtoll(v + 5, &end, 10);
        return *end == 0 && v[5] && co->start_time_ms > 0;
    } else {
        return false;
    }
    return true;
}

static void s_print_event(const ctl_opts *o, const Svc__Broker__Event *e)
{
    if (o->json) {
        json_error_t je;
        json_t *body = json_loadb((const char *)e->body.data, e->body.len, JSON_DECODE_ANY, &je);
        if (!body)
            body = json_stringn_nocheck((const char *)e->body.data, e->body.len);
        json_t *j = json_pack("{s:s,s:I,s:i,s:s,s:s,s:I,s:o}", "stream", e->stream, "seq",
                              (json_int_t)e->seq, "delivery", (int)e->delivery, "id", e->id,
                              "topic", e->topic, "time_ms", (json_int_t)e->time_ms, "body",
                              body ? body : json_null());
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        printf("%" PRIu64 " %u %.*s\n", e->seq, e->delivery, (int)e->body.len,
               (const char *)e->body.data);
    }
}

int ctl_consume(const ctl_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        { "group", required_argument, NULL, 'g' },
        { "count", required_argument, NULL, 'c' },
        { "start", required_argument, NULL, 's' },
        { "batch", required_argument, NULL, 'b' },
        { "ack-wait", required_argument, NULL, 'a' },
        { "max-deliver", required_argument, NULL, 'x' },
        { "no-ack", no_argument, NULL, 'n' },
        { "once", no_argument, NULL, '1' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const ctl_verb *v = ctl_verb_find("consume");
    const char *group = NULL;
    long count = 0, batch = 100, l;
    bool noack = false, once = false, have_cfg = false;
    svc_consume_opts co = { .start = SVC_START_BEGINNING };
    int code = 0, opt;
    optind = 0;   /* 0: glibc re-initialises getopt (options may follow arguments) */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (opt) {
        case 'g':
            group = optarg;
            break;
        case 'c':
            if (!s_count("consume", optarg, 1000000000, &count))
                return EXIT_USAGE;
            break;
        case 'b':
            if (!s_count("consume", optarg, 1000, &batch) || batch == 0)
                return EXIT_USAGE;
            break;
        case 's':
            if (!s_start(optarg, &co)) {
                ctl_err("consume: invalid --start \"%s\": want beginning, end, seq=N or time=UNIX_MS",
                        optarg);
                return EXIT_USAGE;
            }
            have_cfg = true;
            break;
        case 'a':
            if (!s_count("consume", optarg, 3600000, &l))
                return EXIT_USAGE;
            co.ack_wait_ms = (uint32_t)l;
            have_cfg = true;
            break;
        case 'x':
            if (!s_count("consume", optarg, 1000, &l))
                return EXIT_USAGE;
            co.max_deliver = (uint32_t)l;
            have_cfg = true;
            break;
        case 'n':
            noack = true;
            break;
        case '1':
            once = true;
            break;
        case 'h':
            ctl_usage(v, 2, (char *[]){ argv[0], "--help", NULL }, 0, 0, &code);
            return 0;
        default:
            ctl_err("consume: unknown or incomplete option \"%s\"", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || !group) {
        ctl_err("consume: expected %s", v->args);
        return EXIT_USAGE;
    }
    const char *stream = argv[optind];
    s_catch_signals();
    svc_events *ev = svc_events_new(o->registry);
    svc_events_set_timeout(ev, o->timeout_ms ? o->timeout_ms : 5000);
    long seen = 0;
    while (!s_stop && (!count || seen < count)) {
        Svc__Broker__ConsumeResponse *r = NULL;
        svc_error err = SVC_ERROR_INIT;
        long want = count && count - seen < batch ? count - seen : batch;
        int rc = svc_events_fetch(ev, stream, group, have_cfg ? &co : NULL, (unsigned)want,
                                  once ? 0 : 1000, &r, &err);
        if (rc < 0) {
            ctl_print_error("consume", &err);
            svc_error_release(&err);
            code = 1;
            break;
        }
        if (r->missed)
            fprintf(stderr, "svcctl: consume: %" PRIu64 " events were removed by retention before "
                    "group \"%s\" read them; continuing at %" PRIu64 "\n", r->missed, group,
                    r->first_seq);
        for (size_t i = 0; i < r->n_events; i++)
            s_print_event(o, r->events[i]);
        fflush(stdout);
        if (!noack && r->n_events &&
            svc_events_ack_many(ev, stream, group, r->events, r->n_events, NULL, &err) < 0) {
            ctl_print_error("consume: ack", &err);
            code = 1;
        }
        seen += (long)r->n_events;
        protobuf_c_message_free_unpacked(&r->base, NULL);
        svc_error_release(&err);
        if (code || once)
            break;
    }
    svc_events_destroy(&ev);
    return code;
}
