/*
 * natsbench — the NATS side of bench/broker.sh, on libnats (Debian's
 * libnats-dev, a bench-only package).  Built by bench/broker.sh, not by make.
 *
 *   natsbench URL pubsub SUBS SECONDS SIZE     core pub/sub, 1 publisher -> SUBS subscribers
 *   natsbench URL jspub INFLIGHT SECONDS SIZE  JetStream publishes with acks
 *                                              (INFLIGHT 1: js_Publish; else js_PublishAsync)
 *   natsbench URL jsconsume SECONDS            pull-consume and ack what jspub stored
 *
 * Prints one JSON object like svc-brokertool.  Exit 0 ok, 1 failure, 64 usage.
 */
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void s_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    atomic_fetch_add((atomic_long *)closure, 1);
    natsMsg_Destroy(msg);
}

static int s_die(const char *what, natsStatus s)
{
    fprintf(stderr, "natsbench: %s: %s\n", what, natsStatus_GetText(s));
    return 1;
}

static int s_pubsub(const char *url, int subs, double secs, int size)
{
    natsConnection *sc[64], *pc;
    natsSubscription *sub[64];
    atomic_long got[64];
    natsStatus st;
    for (int i = 0; i < subs; i++) {
        atomic_init(&got[i], 0);
        if ((st = natsConnection_ConnectTo(&sc[i], url)) != NATS_OK)
            return s_die("connect", st);
        if ((st = natsConnection_Subscribe(&sub[i], sc[i], "bench.t", s_on_msg, &got[i])) != NATS_OK)
            return s_die("subscribe", st);
        natsSubscription_SetPendingLimits(sub[i], 100000, 64 * 1024 * 1024);
        natsConnection_Flush(sc[i]);
    }
    if ((st = natsConnection_ConnectTo(&pc, url)) != NATS_OK)
        return s_die("connect", st);
    char *body = calloc(1, (size_t)size);
    double t0 = s_now(), end = t0 + secs;
    long sent = 0;
    while (s_now() < end)
        for (int k = 0; k < 1000; k++)
            if (natsConnection_Publish(pc, "bench.t", body, size) == NATS_OK)
                sent++;
    natsConnection_Flush(pc);
    double pub_dt = s_now() - t0;
    long total = 0, prev = -1;
    for (int i = 0; i < 200 && total != prev; i++) {
        prev = total;
        usleep(20000);
        total = 0;
        for (int k = 0; k < subs; k++)
            total += atomic_load(&got[k]);
    }
    double dt = s_now() - t0;
    printf("{\"sent\":%ld,\"published_per_s\":%.0f,\"delivered\":%ld,\"delivered_per_s\":%.0f}\n",
           sent, sent / pub_dt, total, total / dt);
    for (int i = 0; i < subs; i++) {
        natsSubscription_Destroy(sub[i]);
        natsConnection_Destroy(sc[i]);
    }
    natsConnection_Destroy(pc);
    free(body);
    return 0;
}

static int s_stream(jsCtx *js)
{
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subj[] = { "ev.>" };
    cfg.Name = "BENCH";
    cfg.Subjects = subj;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_AddStream(&si, js, &cfg, NULL, &jerr);
    if (si)
        jsStreamInfo_Destroy(si);
    return st == NATS_OK || jerr == JSStreamNameExistErr ? 0 : s_die("add stream", st);
}

static int s_jspub(const char *url, int inflight, double secs, int size)
{
    natsConnection *nc;
    jsCtx *js;
    natsStatus st;
    if ((st = natsConnection_ConnectTo(&nc, url)) != NATS_OK)
        return s_die("connect", st);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = inflight;
    if ((st = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
        return s_die("jetstream", st);
    if (s_stream(js))
        return 1;
    char *body = calloc(1, (size_t)size);
    double t0 = s_now(), end = t0 + secs;
    long n = 0;
    while (s_now() < end) {
        if (inflight == 1) {
            jsPubAck *pa = NULL;
            jsErrCode jerr = 0;
            if ((st = js_Publish(&pa, js, "ev.a", body, size, NULL, &jerr)) != NATS_OK)
                return s_die("publish", st);
            jsPubAck_Destroy(pa);
            n++;
        } else {
            for (int k = 0; k < 100; k++, n++)
                if ((st = js_PublishAsync(js, "ev.a", body, size, NULL)) != NATS_OK)
                    return s_die("publish async", st);
        }
    }
    if (inflight > 1) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = 30000;
        if ((st = js_PublishAsyncComplete(js, &po)) != NATS_OK)
            return s_die("publish async complete", st);
    }
    double dt = s_now() - t0;
    printf("{\"acked\":%ld,\"acked_per_s\":%.0f,\"inflight\":%d}\n", n, n / dt, inflight);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(body);
    return 0;
}

static int s_jsconsume(const char *url, double secs)
{
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *sub;
    natsStatus st;
    jsErrCode jerr = 0;
    if ((st = natsConnection_ConnectTo(&nc, url)) != NATS_OK)
        return s_die("connect", st);
    if ((st = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK)
        return s_die("jetstream", st);
    if ((st = js_PullSubscribe(&sub, js, "ev.>", "bench", NULL, NULL, &jerr)) != NATS_OK)
        return s_die("pull subscribe", st);
    double t0 = s_now(), end = t0 + secs;
    long n = 0;
    while (s_now() < end) {
        natsMsgList list = { 0 };
        st = natsSubscription_Fetch(&list, sub, 500, 1000, &jerr);
        if (st == NATS_TIMEOUT || list.Count == 0) {
            natsMsgList_Destroy(&list);
            break;
        }
        for (int i = 0; i < list.Count; i++)
            natsMsg_Ack(list.Msgs[i], NULL);
        n += list.Count;
        natsMsgList_Destroy(&list);
    }
    double dt = s_now() - t0;
    printf("{\"consumed\":%ld,\"consumed_per_s\":%.0f}\n", n, n / dt);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: natsbench URL pubsub|jspub|jsconsume ARGS (see bench/nats/natsbench.c)\n");
        return 64;
    }
    int rc;
    if (strcmp(argv[2], "pubsub") == 0 && argc == 6)
        rc = s_pubsub(argv[1], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    else if (strcmp(argv[2], "jspub") == 0 && argc == 6)
        rc = s_jspub(argv[1], atoi(argv[3]), atof(argv[4]), atoi(argv[5]));
    else if (strcmp(argv[2], "jsconsume") == 0 && argc == 4)
        rc = s_jsconsume(argv[1], atof(argv[3]));
    else
        rc = 64;
    nats_Close();
    return rc;
}
