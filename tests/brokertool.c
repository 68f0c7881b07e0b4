/*
 * svc-brokertool — drives brokerd for the integration tests and bench/broker.sh.
 *
 *   svc-brokertool pub --topic T --count N [--size B] [--id K]
 *       publishes N messages (body: publisher id K, sequence, padding to B bytes)
 *   svc-brokertool sub --topic P [--queue G] --count N [--seconds S] [--stall]
 *       counts messages until N arrived (0: no limit), S seconds passed or
 *       SIGTERM came, then prints the result; checks that each
 *       publisher's sequence only goes up; --stall stops reading after the first
 *   svc-brokertool epub --stream S --count N [--prefix P] [--inflight K] [--seconds S]
 *       durable publishes with ids P-0 .. P-(N-1), each retried until acked
 *   svc-brokertool epub-async --stream S --count N [--prefix P] [--seconds S]
 *       the same with svc_events_publish_async (many in flight), failed ones again
 *   svc-brokertool econsume --stream S --group G --count N [--seconds S]
 *       fetches and acks until N distinct ids were seen; reports duplicates, gaps
 *   svc-brokertool bench-pubsub --subs K [--seconds S] [--size B] [--queue]
 *   svc-brokertool bench-epub --inflight K [--seconds S] [--size B]
 *   svc-brokertool bench-epub-async [--seconds S] [--size B]   (svc_events_publish_async)
 *   svc-brokertool bench-consume [--seconds S] [--size B]
 *   svc-brokertool bench-zmq --subs K [--seconds S] [--size B]   (raw PUB/SUB floor)
 *
 * Results are one JSON object on stdout; "ready" on stderr once a
 * subscriber is subscribed.  Exit 0 ok, 1 failure, 64 usage.
 */
#include "svc/svc.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct opts {
    const char *topic, *queue, *stream, *group, *prefix, *registry;
    long count, size, id, inflight, subs;
    double seconds;
    int stall, use_queue;
} opts;

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int s_parse(int argc, char **argv, opts *o)
{
    static const struct option longs[] = {
        { "topic", required_argument, NULL, 't' }, { "queue", required_argument, NULL, 'q' },
        { "stream", required_argument, NULL, 's' }, { "group", required_argument, NULL, 'g' },
        { "prefix", required_argument, NULL, 'p' }, { "count", required_argument, NULL, 'n' },
        { "size", required_argument, NULL, 'b' },   { "id", required_argument, NULL, 'i' },
        { "inflight", required_argument, NULL, 'f' }, { "subs", required_argument, NULL, 'k' },
        { "seconds", required_argument, NULL, 'S' }, { "stall", no_argument, NULL, 'x' },
        { "use-queue", no_argument, NULL, 'u' },    { "registry", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    *o = (opts){ .topic = "bench.t", .stream = "bench", .group = "g", .prefix = "ev", .count = 1000,
                 .size = 64, .inflight = 1, .subs = 1, .seconds = 30 };
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 't': o->topic = optarg; break;
        case 'q': o->queue = optarg; break;
        case 's': o->stream = optarg; break;
        case 'g': o->group = optarg; break;
        case 'p': o->prefix = optarg; break;
        case 'r': o->registry = optarg; break;
        case 'n': o->count = atol(optarg); break;
        case 'b': o->size = atol(optarg); break;
        case 'i': o->id = atol(optarg); break;
        case 'f': o->inflight = atol(optarg); break;
        case 'k': o->subs = atol(optarg); break;
        case 'S': o->seconds = atof(optarg); break;
        case 'x': o->stall = 1; break;
        case 'u': o->use_queue = 1; break;
        default:
            fprintf(stderr, "svc-brokertool: bad option\n");
            return -1;
        }
    }
    if (o->size < 16)
        o->size = 16;
    if (o->inflight < 1 || o->inflight > 256 || o->subs < 1 || o->subs > 64) {
        fprintf(stderr, "svc-brokertool: --inflight 1..256, --subs 1..64\n");
        return -1;
    }
    return 0;
}

/* ---- pub / sub ------------------------------------------------------------------ */

static int c_pub(const opts *o)
{
    svc_broker *b = svc_broker_new(o->registry);
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_broker_connect(b, &err);
    char *body = calloc(1, (size_t)o->size);
    double t0 = s_now();
    for (long i = 0; rc == 0 && i < o->count; i++) {
        uint32_t id = (uint32_t)o->id;
        uint64_t seq = (uint64_t)i;
        memcpy(body, &id, 4);
        memcpy(body + 4, &seq, 8);
        rc = svc_broker_publish(b, o->topic, body, (size_t)o->size, NULL, NULL);
    }
    if (rc == 0)
        rc = svc_broker_flush(b, 30000, &err);
    double dt = s_now() - t0;
    if (rc < 0)
        fprintf(stderr, "svc-brokertool: pub: %s %s\n", svc_strerror(rc), err.detail ? err.detail : "");
    else
        printf("{\"sent\":%ld,\"seconds\":%.3f}\n", o->count, dt);
    free(body);
    svc_error_release(&err);
    svc_broker_destroy(&b);
    return rc < 0;
}

#define MAX_PUBS 64

typedef struct subctx {
    atomic_long received;
    long out_of_order;
    int64_t last[MAX_PUBS];     /* last sequence seen per publisher id */
    int stall;
    double first, lastt;
} subctx;

static void s_on_msg(const svc_message *m, void *arg)
{
    subctx *c = arg;
    if (c->stall) {
        while (1)
            sleep(1000);   /* stops reading: brokerd's queue for us fills up */
    }
    if (m->len >= 12) {
        uint32_t id;
        uint64_t seq;
        memcpy(&id, m->body, 4);
        memcpy(&seq, (const char *)m->body + 4, 8);
        if (id < MAX_PUBS) {
            if ((int64_t)seq <= c->last[id])
                c->out_of_order++;
            c->last[id] = (int64_t)seq;
        }
    }
    if (atomic_load(&c->received) == 0)
        c->first = s_now();
    c->lastt = s_now();
    atomic_fetch_add(&c->received, 1);
}

static volatile sig_atomic_t s_term;

static void s_on_term(int sig)
{
    s_term = 1;
}

static int c_sub(const opts *o)
{
    signal(SIGTERM, s_on_term);   /* prints the result and exits 0 */
    subctx *c = calloc(1, sizeof *c);
    for (int i = 0; i < MAX_PUBS; i++)
        c->last[i] = -1;
    c->stall = o->stall;
    svc_broker *b = svc_broker_new(o->registry);
    int rc = svc_broker_subscribe(b, o->topic, o->queue, s_on_msg, c, NULL);
    if (rc < 0) {
        fprintf(stderr, "svc-brokertool: subscribe failed: %s\n", svc_strerror(rc));
        svc_broker_destroy(&b);
        return 1;
    }
    fprintf(stderr, "ready\n");
    double end = s_now() + o->seconds;
    while (!s_term && s_now() < end && (o->count == 0 || atomic_load(&c->received) < o->count))
        usleep(10000);
    printf("{\"received\":%ld,\"out_of_order\":%ld,\"seconds\":%.3f}\n", atomic_load(&c->received),
           c->out_of_order, c->lastt > c->first ? c->lastt - c->first : 0);
    fflush(stdout);
    if (o->stall)
        _exit(0);   /* the handler never returns */
    svc_broker_destroy(&b);
    free(c);
    return 0;
}

/* ---- durable publish with retries ------------------------------------------------- */

typedef struct epub_shared {
    const opts *o;
    atomic_long next;          /* next index to publish */
    atomic_long acked, retries, duplicates;
    atomic_int failed;
    double deadline;
} epub_shared;

static void *s_epub_thread(void *arg)
{
    epub_shared *sh = arg;
    const opts *o = sh->o;
    svc_events *ev = svc_events_new(o->registry);
    svc_events_set_timeout(ev, 3000);
    char *body = calloc(1, (size_t)o->size);
    for (;;) {
        long i = atomic_fetch_add(&sh->next, 1);
        if (i >= o->count)
            break;
        char id[96];
        snprintf(id, sizeof id, "%s-%ld", o->prefix, i);
        snprintf(body, (size_t)o->size, "%s", id);
        for (;;) {
            svc_error err = SVC_ERROR_INIT;
            svc_event_publish_opts po = { .id = id };
            bool dup = false;
            int rc = svc_events_publish(ev, o->stream, body, (size_t)o->size, &po, NULL, &dup, &err);
            svc_error_release(&err);
            if (rc == 0) {
                atomic_fetch_add(&sh->acked, 1);
                if (dup)
                    atomic_fetch_add(&sh->duplicates, 1);
                break;
            }
            atomic_fetch_add(&sh->retries, 1);
            if (s_now() > sh->deadline) {
                atomic_store(&sh->failed, 1);
                goto out;
            }
            usleep(20000);
        }
    }
out:
    free(body);
    svc_events_destroy(&ev);
    return NULL;
}

static int c_epub(const opts *o)
{
    epub_shared sh = { .o = o, .deadline = s_now() + o->seconds };
    pthread_t th[256];
    double t0 = s_now();
    for (long i = 0; i < o->inflight; i++)
        pthread_create(&th[i], NULL, s_epub_thread, &sh);
    for (long i = 0; i < o->inflight; i++)
        pthread_join(th[i], NULL);
    printf("{\"acked\":%ld,\"retries\":%ld,\"duplicates\":%ld,\"seconds\":%.3f}\n",
           atomic_load(&sh.acked), atomic_load(&sh.retries), atomic_load(&sh.duplicates),
           s_now() - t0);
    return atomic_load(&sh.failed) ? 1 : 0;
}

/* ---- asynchronous durable publish, retried until every id is acked ---------------------- */

typedef struct aslot {
    long idx;                  /* event index */
    struct async_state *st;
} aslot;

typedef struct async_state {
    unsigned char *acked;      /* per index */
    long *retry;               /* indexes that failed, to publish again */
    long n_retry;
    long n_acked, duplicates, failures;
    pthread_mutex_t mu;
    aslot *slots;
} async_state;

static void s_async_ack(uint64_t seq, bool dup, const svc_error *err, void *arg)
{
    aslot *a = arg;
    async_state *st = a->st;
    pthread_mutex_lock(&st->mu);
    if (err) {
        st->failures++;
        st->retry[st->n_retry++] = a->idx;
    } else if (!st->acked[a->idx]) {
        st->acked[a->idx] = 1;
        st->n_acked++;
        st->duplicates += dup;
    }
    pthread_mutex_unlock(&st->mu);
}

static int c_epub_async(const opts *o)
{
    async_state st = { .acked = calloc((size_t)o->count, 1), .retry = calloc((size_t)o->count, sizeof(long)) };
    pthread_mutex_init(&st.mu, NULL);
    st.slots = calloc((size_t)o->count, sizeof *st.slots);
    svc_events *ev = svc_events_new(o->registry);
    svc_events_set_timeout(ev, 3000);
    char *body = calloc(1, (size_t)o->size);
    double t0 = s_now(), end = t0 + o->seconds;
    long *todo = malloc((size_t)o->count * sizeof *todo), n_todo = o->count, rounds = 0;
    for (long i = 0; i < o->count; i++)
        todo[i] = i;
    while (n_todo && s_now() < end) {
        for (long k = 0; k < n_todo; k++) {
            long i = todo[k];
            char id[96];
            snprintf(id, sizeof id, "%s-%ld", o->prefix, i);
            st.slots[i] = (aslot){ i, &st };
            svc_event_publish_opts po = { .id = id };
            while (svc_events_publish_async(ev, o->stream, body, (size_t)o->size, &po, s_async_ack,
                                            &st.slots[i]) < 0 && s_now() < end)
                usleep(50000);   /* brokerd not found (restarting): try again */
        }
        svc_events_flush(ev, 30000);
        pthread_mutex_lock(&st.mu);
        memcpy(todo, st.retry, (size_t)st.n_retry * sizeof *todo);
        n_todo = st.n_retry;
        st.n_retry = 0;
        pthread_mutex_unlock(&st.mu);
        rounds++;
        if (n_todo)
            usleep(100000);
    }
    double dt = s_now() - t0;
    printf("{\"acked\":%ld,\"acked_per_s\":%.0f,\"failures\":%ld,\"duplicates\":%ld,\"rounds\":%ld}\n",
           st.n_acked, st.n_acked / dt, st.failures, st.duplicates, rounds);
    svc_events_destroy(&ev);
    int rc = st.n_acked == o->count ? 0 : 1;
    free(st.acked);
    free(st.retry);
    free(st.slots);
    free(todo);
    free(body);
    return rc;
}

/* ---- consume and count ---------------------------------------------------------- */

static int c_econsume(const opts *o)
{
    svc_events *ev = svc_events_new(o->registry);
    svc_events_set_timeout(ev, 3000);
    unsigned char *seen = calloc((size_t)o->count + 1, 1);
    unsigned char *seqs = calloc((size_t)o->count * 2 + 2, 1);
    long distinct = 0, deliveries = 0, duplicates = 0, failures = 0, redelivered = 0;
    uint64_t max_seq = 0;
    double end = s_now() + o->seconds;
    size_t plen = strlen(o->prefix);
    svc_consume_opts co = { .ack_wait_ms = 2000 };
    while (distinct < o->count && s_now() < end) {
        Svc__Broker__ConsumeResponse *r = NULL;
        svc_error err = SVC_ERROR_INIT;
        int rc = svc_events_fetch(ev, o->stream, o->group, &co, 500, 500, &r, &err);
        svc_error_release(&err);
        if (rc < 0) {
            failures++;
            usleep(20000);
            continue;
        }
        for (size_t i = 0; i < r->n_events; i++) {
            Svc__Broker__Event *e = r->events[i];
            deliveries++;
            redelivered += e->delivery > 1;
            if (e->seq > max_seq)
                max_seq = e->seq;
            if (e->seq <= (uint64_t)o->count * 2)
                seqs[e->seq] = 1;
            long idx = -1;
            if (strncmp(e->id, o->prefix, plen) == 0 && e->id[plen] == '-')
                idx = atol(e->id + plen + 1);
            if (idx < 0 || idx >= o->count)
                continue;
            if (seen[idx])
                duplicates++;
            else
                distinct++;
            seen[idx] = 1;
        }
        if (r->n_events &&
            svc_events_ack_many(ev, o->stream, o->group, r->events, r->n_events, NULL, &err) < 0)
            failures++;
        svc_error_release(&err);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    long gaps = 0;
    for (uint64_t s = 1; s <= max_seq && s <= (uint64_t)o->count * 2; s++)
        gaps += !seqs[s];
    printf("{\"distinct\":%ld,\"deliveries\":%ld,\"duplicates\":%ld,\"redelivered\":%ld,"
           "\"max_seq\":%" PRIu64 ",\"gaps\":%ld,\"failures\":%ld}\n",
           distinct, deliveries, duplicates, redelivered, max_seq, gaps, failures);
    free(seen);
    free(seqs);
    svc_events_destroy(&ev);
    return distinct == o->count ? 0 : 1;
}

/* ---- benchmarks -------------------------------------------------------------------- */

static void s_count_msg(const svc_message *m, void *arg)
{
    atomic_fetch_add((atomic_long *)arg, 1);
}

static int c_bench_pubsub(const opts *o)
{
    svc_broker *subs[64];
    atomic_long got[64];
    char topic[64];
    snprintf(topic, sizeof topic, "bench.%d", (int)getpid());
    for (long i = 0; i < o->subs; i++) {
        atomic_init(&got[i], 0);
        subs[i] = svc_broker_new(o->registry);
        if (svc_broker_subscribe(subs[i], topic, o->use_queue ? "q" : NULL, s_count_msg, &got[i],
                                 NULL) < 0) {
            fprintf(stderr, "svc-brokertool: subscribe failed\n");
            return 1;
        }
    }
    svc_broker *pub = svc_broker_new(o->registry);
    char *body = calloc(1, (size_t)o->size);
    double t0 = s_now(), end = t0 + o->seconds;
    long sent = 0;
    while (s_now() < end) {
        for (int k = 0; k < 1000; k++)
            if (svc_broker_publish(pub, topic, body, (size_t)o->size, NULL, NULL) == 0)
                sent++;
    }
    svc_broker_flush(pub, 10000, NULL);
    double pub_dt = s_now() - t0;
    /* Let queued deliveries arrive (they were published within the window). */
    long total = 0, prev = -1;
    for (int i = 0; i < 200 && total != prev; i++) {
        prev = total;
        usleep(20000);
        total = 0;
        for (long k = 0; k < o->subs; k++)
            total += atomic_load(&got[k]);
    }
    double dt = s_now() - t0 - 0.02 * 1;
    printf("{\"sent\":%ld,\"published_per_s\":%.0f,\"delivered\":%ld,\"delivered_per_s\":%.0f,"
           "\"expected\":%ld,\"seconds\":%.3f}\n",
           sent, sent / pub_dt, total, total / dt, o->use_queue ? sent : sent * o->subs, dt);
    for (long i = 0; i < o->subs; i++)
        svc_broker_destroy(&subs[i]);
    svc_broker_destroy(&pub);
    free(body);
    return 0;
}

typedef struct ebench {
    const opts *o;
    double end;
    atomic_long done;
    atomic_int failed;
} ebench;

static void *s_ebench_thread(void *arg)
{
    ebench *b = arg;
    svc_events *ev = svc_events_new(b->o->registry);
    char *body = calloc(1, (size_t)b->o->size);
    while (s_now() < b->end) {
        svc_error err = SVC_ERROR_INIT;
        int rc = svc_events_publish(ev, b->o->stream, body, (size_t)b->o->size, NULL, NULL, NULL, &err);
        svc_error_release(&err);
        if (rc < 0) {
            atomic_store(&b->failed, 1);
            break;
        }
        atomic_fetch_add(&b->done, 1);
    }
    free(body);
    svc_events_destroy(&ev);
    return NULL;
}

static int c_bench_epub(const opts *o)
{
    ebench b = { .o = o };
    pthread_t th[256];
    double t0 = s_now();
    b.end = t0 + o->seconds;
    for (long i = 0; i < o->inflight; i++)
        pthread_create(&th[i], NULL, s_ebench_thread, &b);
    for (long i = 0; i < o->inflight; i++)
        pthread_join(th[i], NULL);
    double dt = s_now() - t0;
    printf("{\"acked\":%ld,\"acked_per_s\":%.0f,\"inflight\":%ld}\n", atomic_load(&b.done),
           atomic_load(&b.done) / dt, o->inflight);
    return atomic_load(&b.failed);
}

static void s_count_ack(uint64_t seq, bool dup, const svc_error *err, void *arg)
{
    if (err && atomic_fetch_add((atomic_long *)arg + 1, 1) == 0)
        fprintf(stderr, "svc-brokertool: first failed ack: %d %s\n", err->code,
                err->detail ? err->detail : "");
    else if (!err)
        atomic_fetch_add((atomic_long *)arg, 1);
}

/* Asynchronous durable publishes for --seconds (up to 4096 in flight), then waits for the acks. */
static int c_bench_epub_async(const opts *o)
{
    svc_events *ev = svc_events_new(o->registry);
    atomic_long counts[2];
    atomic_init(&counts[0], 0);
    atomic_init(&counts[1], 0);
    char *body = calloc(1, (size_t)o->size);
    double t0 = s_now(), end = t0 + o->seconds;
    long sent = 0;
    int rc;
    while (s_now() < end)
        for (int k = 0; k < 100; k++, sent++)
            if ((rc = svc_events_publish_async(ev, o->stream, body, (size_t)o->size, NULL,
                                               s_count_ack, counts)) < 0) {
                fprintf(stderr, "svc-brokertool: publish_async: %s\n", svc_strerror(rc));
                return 1;
            }
    if ((rc = svc_events_flush(ev, 60000)) < 0)
        fprintf(stderr, "svc-brokertool: flush: %s\n", svc_strerror(rc));
    double dt = s_now() - t0;
    printf("{\"acked\":%ld,\"acked_per_s\":%.0f,\"failed\":%ld,\"inflight\":4096}\n",
           atomic_load(&counts[0]), atomic_load(&counts[0]) / dt, atomic_load(&counts[1]));
    svc_events_destroy(&ev);
    free(body);
    return atomic_load(&counts[1]) ? 1 : 0;
}

static int c_bench_consume(const opts *o)
{
    svc_events *ev = svc_events_new(o->registry);
    double t0 = s_now(), end = t0 + o->seconds;
    long n = 0;
    Svc__Broker__ConsumeResponse *prev = NULL;   /* acked with the next fetch */
    while (s_now() < end) {
        Svc__Broker__ConsumeResponse *r = NULL;
        svc_error err = SVC_ERROR_INIT;
        int rc = svc_events_ack_fetch(ev, o->stream, o->group, prev ? prev->events : NULL,
                                      prev ? prev->n_events : 0, NULL, 500, 0, &r, &err);
        svc_error_release(&err);
        if (prev)
            protobuf_c_message_free_unpacked(&prev->base, NULL);
        prev = NULL;
        if (rc < 0)
            return 1;
        n += (long)r->n_events;
        if (r->n_events == 0) {
            protobuf_c_message_free_unpacked(&r->base, NULL);
            break;
        }
        prev = r;
    }
    if (prev) {   /* the last batch */
        svc_error err = SVC_ERROR_INIT;
        svc_events_ack_many(ev, o->stream, o->group, prev->events, prev->n_events, NULL, &err);
        svc_error_release(&err);
        protobuf_c_message_free_unpacked(&prev->base, NULL);
    }
    double dt = s_now() - t0;
    printf("{\"consumed\":%ld,\"consumed_per_s\":%.0f}\n", n, n / dt);
    svc_events_destroy(&ev);
    return 0;
}

typedef struct zsub {
    void *sock;
    atomic_long got;
    atomic_int stop;
} zsub;

static void *s_zsub_thread(void *arg)
{
    zsub *z = arg;
    char buf[65536];
    int to = 100;
    zmq_setsockopt(z->sock, ZMQ_RCVTIMEO, &to, sizeof to);
    while (!atomic_load(&z->stop)) {
        if (zmq_recv(z->sock, buf, sizeof buf, 0) >= 0) {
            int more = 0;
            size_t ml = sizeof more;
            zmq_getsockopt(z->sock, ZMQ_RCVMORE, &more, &ml);
            if (!more)
                atomic_fetch_add(&z->got, 1);
        }
    }
    return NULL;
}

/* Raw ZeroMQ PUB/SUB over tcp loopback with the same two frames (topic, body). */
static int c_bench_zmq(const opts *o)
{
    void *ctx = zmq_ctx_new();
    void *pub = zmq_socket(ctx, ZMQ_PUB);
    int hwm = 100000;
    zmq_setsockopt(pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_bind(pub, "tcp://127.0.0.1:*");
    char ep[256];
    size_t el = sizeof ep;
    zmq_getsockopt(pub, ZMQ_LAST_ENDPOINT, ep, &el);
    zsub subs[64];
    pthread_t th[64];
    for (long i = 0; i < o->subs; i++) {
        subs[i].sock = zmq_socket(ctx, ZMQ_SUB);
        atomic_init(&subs[i].got, 0);
        atomic_init(&subs[i].stop, 0);
        zmq_setsockopt(subs[i].sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(subs[i].sock, ZMQ_SUBSCRIBE, "bench", 5);
        zmq_connect(subs[i].sock, ep);
        pthread_create(&th[i], NULL, s_zsub_thread, &subs[i]);
    }
    usleep(300000);   /* subscriptions travel to the PUB */
    char *body = calloc(1, (size_t)o->size);
    double t0 = s_now(), end = t0 + o->seconds;
    long sent = 0;
    while (s_now() < end)
        for (int k = 0; k < 1000; k++) {
            zmq_send(pub, "bench.t", 7, ZMQ_SNDMORE);
            zmq_send(pub, body, (size_t)o->size, 0);
            sent++;
        }
    long total = 0, prev = -1;
    for (int i = 0; i < 200 && total != prev; i++) {
        prev = total;
        usleep(20000);
        total = 0;
        for (long k = 0; k < o->subs; k++)
            total += atomic_load(&subs[k].got);
    }
    double dt = s_now() - t0;
    printf("{\"sent\":%ld,\"delivered\":%ld,\"delivered_per_s\":%.0f}\n", sent, total, total / dt);
    for (long i = 0; i < o->subs; i++) {
        atomic_store(&subs[i].stop, 1);
        pthread_join(th[i], NULL);
        zmq_close(subs[i].sock);
    }
    zmq_close(pub);
    zmq_ctx_term(ctx);
    free(body);
    return 0;
}

static const struct {
    const char *name;
    int (*run)(const opts *o);
} s_cmds[] = {
    { "pub", c_pub }, { "sub", c_sub }, { "epub", c_epub }, { "econsume", c_econsume },
    { "epub-async", c_epub_async },
    { "bench-pubsub", c_bench_pubsub }, { "bench-epub", c_bench_epub },
    { "bench-consume", c_bench_consume }, { "bench-epub-async", c_bench_epub_async }, { "bench-zmq", c_bench_zmq }, { NULL, NULL },
};

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: svc-brokertool pub|sub|epub|econsume|bench-pubsub|bench-epub|"
                "bench-consume|bench-zmq [flags] (see tests/brokertool.c)\n");
        return argc < 2 ? 64 : 0;
    }
    if (!getenv("SVC_LOG_LEVEL"))
        svc_log_set_level(SVC_LOG_ERROR);
    opts o;
    if (s_parse(argc - 1, argv + 1, &o) < 0)
        return 64;
    for (int i = 0; s_cmds[i].name; i++)
        if (strcmp(argv[1], s_cmds[i].name) == 0)
            return s_cmds[i].run(&o);
    fprintf(stderr, "svc-brokertool: unknown command \"%s\"\n", argv[1]);
    return 64;
}
