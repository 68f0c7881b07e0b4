/*
 * supervisor/control.c — the svc.supervisor API (proto/supervisor.proto).
 *
 * The API is a libsvc service running svc_run on its own thread, bound to
 * the well-known control address (ipc://<state-dir>/supervisor.sock unless
 * --address says otherwise) and registered by name, so svcctl reaches it
 * with or without the registry.  Its handlers run on libsvc worker threads
 * and never touch the supervisor's state: each queues a command, wakes the
 * main loop (sup->wake) and waits until the main loop has run it.
 *
 *   Supervisor.Ps       instances with state, pid, uptime, restarts, health
 *   Supervisor.Start    Supervisor.Stop    Supervisor.Restart   (by service name)
 *   Supervisor.Reload   re-read the manifests (all or nothing)
 *   Supervisor.Logs     the last N captured lines of a service
 *   Supervisor.Follow   stream: the last N lines, then every new one
 */
#include "sup.h"
#include "svc/svc.h"
#include "supervisor.pb-c.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

typedef enum s_kind { C_PS, C_START, C_STOP, C_RESTART, C_RELOAD, C_LOGS, C_FOLLOW } s_kind;

/* A request waiting for the main loop; lives on the handler's stack. */
typedef struct s_cmd {
    s_kind kind;
    const void *req;
    void *rsp;
    svc_stream *stream;        /* C_FOLLOW */
    int code;                  /* 0, or the HTTP-like error code */
    char err[1024];
    bool done;
    struct s_cmd *next;
} s_cmd;

/* A `svcctl logs -f` stream. */
typedef struct s_follower {
    svc_stream *stream;        /* owned (the handler handed it over) */
    char *service;
    struct s_follower *next;
} s_follower;

typedef struct s_ctl {
    sup *sup;
    svc_service *svc;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_cmd *queue;              /* under mu */
    bool finished;             /* svc_run returned; under mu */
    int run_rc;                /* what it returned (1: could not bind, ...); under mu */
    bool closed;               /* the main loop takes no more commands; under mu */
    s_follower *followers;     /* main thread only */
} s_ctl;

/* Runs cmd on the main loop and waits for it. */
static int s_submit(svc_ctx *ctx, s_cmd *c)
{
    s_ctl *k = svc_ctx_data(ctx);
    pthread_mutex_lock(&k->mu);
    if (k->closed) {
        pthread_mutex_unlock(&k->mu);
        return svc_ctx_error(ctx, 503, "supervisor is shutting down");
    }
    c->next = k->queue;
    k->queue = c;
    ev_async_send(k->sup->loop, &k->sup->wake);
    while (!c->done)
        pthread_cond_wait(&k->cv, &k->mu);
    pthread_mutex_unlock(&k->mu);
    return c->code ? svc_ctx_error(ctx, c->code, "%s", c->err) : 0;
}

#define S_HANDLER(fn, kind_)                                                           \
    static int fn(svc_ctx *ctx, const void *req, void *rsp)                           \
    {                                                                                 \
        s_cmd c = { .kind = kind_, .req = req, .rsp = rsp };                          \
        return s_submit(ctx, &c);                                                     \
    }

S_HANDLER(h_ps, C_PS)
S_HANDLER(h_start, C_START)
S_HANDLER(h_stop, C_STOP)
S_HANDLER(h_restart, C_RESTART)
S_HANDLER(h_reload, C_RELOAD)
S_HANDLER(h_logs, C_LOGS)

static int h_follow(svc_ctx *ctx, const void *req, svc_stream *st)
{
    s_cmd c = { .kind = C_FOLLOW, .req = req, .stream = st };
    return s_submit(ctx, &c);
}

/* ---- on the main loop -------------------------------------------------------------- */

static char *s_dup(const char *v) { return strdup(v ? v : ""); }

static int s_fill_instance(sup *s, const sup_instance *i, Svc__Supervisor__Instance **out)
{
    Svc__Supervisor__Instance *x = malloc(sizeof *x);
    if (!x)
        return -ENOMEM;
    svc__supervisor__instance__init(x);
    *out = x;
    x->service = s_dup(i->svc->m->name);
    x->instance = (uint32_t)i->index;
    x->pid = i->pid;
    x->state = s_dup(sup_state_name(i->state));
    x->uptime_ms = i->pid > 0 ? (uint64_t)((sup_now(s) - i->spawned_at) * 1000) : 0;
    x->restarts = i->restarts;
    x->health = s_dup(i->svc->m->health == SUP_HEALTH_NONE || i->last_health < 0 ? "-"
                      : i->last_health ? "ok" : "failing");
    x->status = s_dup(i->status);
    x->address = s_dup(i->address);
    char how[64] = "";
    int st = i->last_exit;
    if (st >= 0 && WIFEXITED(st))
        snprintf(how, sizeof how, "exit %d", WEXITSTATUS(st));
    else if (st >= 0 && WIFSIGNALED(st))
        snprintf(how, sizeof how, "signal %s (%d)", sup_signal_name(WTERMSIG(st)), WTERMSIG(st));
    x->last_exit = s_dup(how);
    return x->service && x->state && x->health && x->status && x->address && x->last_exit ? 0 : -ENOMEM;
}

static void c_ps(sup *s, s_cmd *c)
{
    const Svc__Supervisor__PsRequest *rq = c->req;
    Svc__Supervisor__PsResponse *rs = c->rsp;
    size_t n = 0;
    for (sup_service *v = s->services; v; v = v->next)
        n += (size_t)v->n_inst;
    rs->instances = calloc(n ? n : 1, sizeof *rs->instances);
    if (!rs->instances)
        goto oom;
    if (rq->service[0] && !sup_find(s, rq->service)) {
        c->code = 404;
        snprintf(c->err, sizeof c->err, "service \"%s\" not found", rq->service);
        return;
    }
    for (sup_service *v = s->services; v; v = v->next) {
        if (rq->service[0] && strcmp(rq->service, v->m->name) != 0)
            continue;
        for (int k = 0; k < v->n_inst; k++)
            if (s_fill_instance(s, &v->inst[k], &rs->instances[rs->n_instances++]) < 0)
                goto oom;
    }
    return;
oom:
    c->code = 500;
    snprintf(c->err, sizeof c->err, "out of memory");
}

static sup_service *s_named(sup *s, s_cmd *c)
{
    const Svc__Supervisor__ControlRequest *rq = c->req;
    sup_service *v = rq->service[0] ? sup_find(s, rq->service) : NULL;
    if (!v) {
        c->code = rq->service[0] ? 404 : 400;
        snprintf(c->err, sizeof c->err, rq->service[0] ? "service \"%s\" not found"
                                                       : "no service named%s", rq->service);
    }
    return v;
}

static void c_control(sup *s, s_cmd *c)
{
    sup_service *v = s_named(s, c);
    if (!v)
        return;
    if (s->stopping) {
        c->code = 503;
        snprintf(c->err, sizeof c->err, "supervisor is shutting down");
        return;
    }
    ((Svc__Supervisor__ControlResponse *)c->rsp)->instances = (uint32_t)v->n_inst;
    if (c->kind == C_START)
        sup_service_start(v);
    else if (c->kind == C_STOP)
        sup_service_stop(v);
    else
        sup_service_restart(v);
}

/* Splits "added a\nremoved b" lines into the response's lists. */
static int s_summary(Svc__Supervisor__ReloadResponse *rs, char *sum)
{
    size_t n = 1;
    for (char *p = sum; *p; p++)
        n += *p == '\n';
    rs->added = calloc(n, sizeof(char *));
    rs->removed = calloc(n, sizeof(char *));
    rs->changed = calloc(n, sizeof(char *));
    if (!rs->added || !rs->removed || !rs->changed)
        return -ENOMEM;
    for (char *l = strtok(sum, "\n"); l; l = strtok(NULL, "\n")) {
        char *sp = strchr(l, ' ');
        if (!sp)
            continue;
        *sp = 0;
        char *name = strdup(sp + 1);
        if (!name)
            return -ENOMEM;
        if (strcmp(l, "added") == 0)
            rs->added[rs->n_added++] = name;
        else if (strcmp(l, "removed") == 0)
            rs->removed[rs->n_removed++] = name;
        else
            rs->changed[rs->n_changed++] = name;
    }
    return 0;
}

static void c_reload(sup *s, s_cmd *c)
{
    char sum[8192];
    if (s->stopping) {
        c->code = 503;
        snprintf(c->err, sizeof c->err, "supervisor is shutting down");
        return;
    }
    int rc = sup_reload(s, c->err, sizeof c->err, sum, sizeof sum);
    if (rc < 0) {
        c->code = rc == -ENOMEM ? 500 : 400;
        return;
    }
    if (s_summary(c->rsp, sum) < 0) {
        c->code = 500;
        snprintf(c->err, sizeof c->err, "out of memory");
    }
}

/* The service named by a LogsRequest, with an error set when there is none. */
static sup_service *s_log_service(sup *s, s_cmd *c, size_t *lines)
{
    const Svc__Supervisor__LogsRequest *rq = c->req;
    sup_service *v = rq->service[0] ? sup_find(s, rq->service) : NULL;
    if (!v) {
        c->code = 404;
        snprintf(c->err, sizeof c->err, "service \"%s\" not found", rq->service);
        return NULL;
    }
    *lines = rq->lines ? rq->lines : 10;
    if (*lines > v->tail_n)
        *lines = v->tail_n;
    return v;
}

/* The k-th of the last n lines of v's tail (oldest first). */
static const char *s_tail_line(const sup_service *v, size_t n, size_t k)
{
    return v->tail[(v->tail_pos + SUP_TAIL_LINES - n + k) % SUP_TAIL_LINES];
}

static void c_logs(sup *s, s_cmd *c)
{
    size_t n;
    sup_service *v = s_log_service(s, c, &n);
    if (!v)
        return;
    Svc__Supervisor__LogsResponse *rs = c->rsp;
    rs->lines = calloc(n ? n : 1, sizeof *rs->lines);
    for (size_t k = 0; rs->lines && k < n; k++)
        if ((rs->lines[rs->n_lines] = strdup(s_tail_line(v, n, k))))
            rs->n_lines++;
}

static int s_send_line(svc_stream *st, const char *line)
{
    Svc__Supervisor__LogLine l = SVC__SUPERVISOR__LOG_LINE__INIT;
    l.line = (char *)line;
    return svc_stream_send(st, &l.base);
}

static void c_follow(sup *s, s_cmd *c)
{
    s_ctl *k = s->control;
    size_t n;
    sup_service *v = s_log_service(s, c, &n);
    if (!v)
        return;
    s_follower *f = calloc(1, sizeof *f);
    if (!f || !(f->service = strdup(v->m->name))) {
        free(f);
        c->code = 500;
        snprintf(c->err, sizeof c->err, "out of memory");
        return;
    }
    f->stream = c->stream;
    f->next = k->followers;
    k->followers = f;
    for (size_t j = 0; j < n; j++)
        s_send_line(f->stream, s_tail_line(v, n, j));
}

typedef void (*s_runner)(sup *s, s_cmd *c);

static const s_runner s_runners[] = {
    [C_PS] = c_ps, [C_START] = c_control, [C_STOP] = c_control, [C_RESTART] = c_control,
    [C_RELOAD] = c_reload, [C_LOGS] = c_logs, [C_FOLLOW] = c_follow,
};

void sup_control_run_pending(sup *s)
{
    s_ctl *k = s->control;
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    s_cmd *q = k->queue;
    k->queue = NULL;
    pthread_mutex_unlock(&k->mu);
    /* Oldest first: the queue is a stack. */
    s_cmd *rev = NULL;
    while (q) {
        s_cmd *n = q->next;
        q->next = rev;
        rev = q;
        q = n;
    }
    for (s_cmd *c = rev, *n; c; c = n) {
        n = c->next;
        s_runners[c->kind](s, c);
        pthread_mutex_lock(&k->mu);
        c->done = true;
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
    }
}

void sup_control_log_line(sup *s, const char *service, const char *line)
{
    s_ctl *k = s->control;
    if (!k)
        return;
    for (s_follower **p = &k->followers; *p;) {
        s_follower *f = *p;
        if (strcmp(f->service, service) == 0 && s_send_line(f->stream, line) < 0) {
            *p = f->next;
            svc_stream_close(&f->stream, NULL);
            free(f->service);
            free(f);
            continue;
        }
        p = &f->next;
    }
}

/* ---- the API thread ----------------------------------------------------------------- */

static void *s_thread(void *arg)
{
    s_ctl *k = arg;
    int rc = svc_run(k->svc);
    pthread_mutex_lock(&k->mu);
    k->finished = true;
    k->run_rc = rc;
    pthread_mutex_unlock(&k->mu);
    if (rc != 0)
        svc_warn("control API stopped\tcode=%d", rc);
    ev_async_send(k->sup->loop, &k->sup->wake);
    return NULL;
}

int sup_control_start(sup *s, int argc, char **argv)
{
    s_ctl *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    k->sup = s;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    k->svc = svc_new("svc.supervisor", argc, argv);
    if (!k->svc) {
        free(k);
        return -ENOMEM;
    }
    svc_log_set_name("supervisor");
    svc_set_data(k->svc, k);
    if (svc_set_address(k->svc, s->control_addr) < 0) {
        svc_error_log("invalid control address\taddress=\"%s\"", s->control_addr);
        svc_destroy(&k->svc);
        free(k);
        return SVC_EINVAL;
    }
    svc_handle(k->svc, "Supervisor.Ps", h_ps, &svc__supervisor__ps_request__descriptor,
               &svc__supervisor__ps_response__descriptor);
    svc_handle(k->svc, "Supervisor.Start", h_start, &svc__supervisor__control_request__descriptor,
               &svc__supervisor__control_response__descriptor);
    svc_handle(k->svc, "Supervisor.Stop", h_stop, &svc__supervisor__control_request__descriptor,
               &svc__supervisor__control_response__descriptor);
    svc_handle(k->svc, "Supervisor.Restart", h_restart, &svc__supervisor__control_request__descriptor,
               &svc__supervisor__control_response__descriptor);
    svc_handle(k->svc, "Supervisor.Reload", h_reload, &svc__supervisor__reload_request__descriptor,
               &svc__supervisor__reload_response__descriptor);
    svc_handle(k->svc, "Supervisor.Logs", h_logs, &svc__supervisor__logs_request__descriptor,
               &svc__supervisor__logs_response__descriptor);
    svc_handle_stream(k->svc, "Supervisor.Follow", h_follow, &svc__supervisor__logs_request__descriptor,
                      &svc__supervisor__log_line__descriptor);
    s->control = k;
    int rc = pthread_create(&k->thread, NULL, s_thread, k);
    if (rc) {
        s->control = NULL;
        svc_destroy(&k->svc);
        free(k);
        return -rc;
    }
    k->running = true;
    return 0;
}

bool sup_control_finished(sup *s, int *rc)
{
    s_ctl *k = s->control;
    if (!k)
        return false;
    pthread_mutex_lock(&k->mu);
    bool f = k->finished;
    *rc = k->run_rc;
    pthread_mutex_unlock(&k->mu);
    return f;
}

void sup_control_stop(sup *s)
{
    s_ctl *k = s->control;
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->closed = true;
    pthread_mutex_unlock(&k->mu);
    sup_control_run_pending(s);   /* answer what is queued (503 once closed is set) */
    while (k->followers) {
        s_follower *f = k->followers;
        k->followers = f->next;
        svc_stream_close(&f->stream, NULL);
        free(f->service);
        free(f);
    }
    if (k->running) {
        svc_stop(k->svc);
        pthread_join(k->thread, NULL);
    }
    svc_destroy(&k->svc);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
    s->control = NULL;
}
