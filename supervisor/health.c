/*
 * supervisor/health.c — health checks of ready instances.
 *
 * Every `interval` after READY, one check at a time per instance, each
 * bounded by `timeout`:
 *   rpc   Debug.Health at the address the instance sent with READY=1
 *         (SVC_ADDRESS=); healthy when it answers status "ok".  Calls are
 *         blocking libsvc calls, so they run on one helper thread with its
 *         own client; results come back to the loop through an ev_async.
 *   exec  /bin/sh -c COMMAND in its own process group (SVC_PID is the
 *         instance's pid); healthy on exit 0; killed at the timeout.
 *   tcp   a non-blocking connect to HOST:PORT.
 *   http  connect, "GET PATH HTTP/1.0", healthy on a 2xx status line.
 * The result goes to sup_instance_health, which restarts the instance after
 * `failures` failures in a row.  Results of a check that outlived its
 * instance's process (generation changed) are dropped.
 */
#include "sup.h"
#include "svc/svc.h"
#include "debug.pb-c.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* An rpc check handed to the helper thread, and its result. */
typedef struct s_job {
    sup_instance *inst;       /* identity only: checked against generation on return */
    uint64_t generation;
    char *service, *address;
    int timeout_ms;
    bool ok;
    char detail[160];
    struct s_job *next;
} s_job;

typedef struct s_rpc {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_job *todo, *done;       /* under mu */
    bool quit;
    ev_async wake;            /* results are ready */
    sup *sup;
} s_rpc;

/* Is inst still the same process the check was started for? */
static bool s_current(sup *s, sup_instance *inst, uint64_t gen)
{
    for (sup_service *v = s->services; v; v = v->next)
        for (int k = 0; k < v->n_inst; k++)
            if (&v->inst[k] == inst)
                return inst->generation == gen && inst->check.active;
    return false;
}

static void s_finish(sup_instance *i, bool ok, const char *detail)
{
    sup_check *c = &i->check;
    struct ev_loop *loop = i->svc->sup->loop;
    ev_timer_stop(loop, &c->timeout);
    if (c->fd >= 0) {
        ev_io_stop(loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    if (c->pid > 0) {
        ev_child_stop(loop, &c->child);
        killpg(c->pid, SIGKILL);   /* reaped by libev's SIGCHLD handling */
        c->pid = 0;
    }
    c->active = false;
    sup_instance_health(i, ok, detail);
}

/* ---- rpc: the helper thread --------------------------------------------------------- */

static void *s_rpc_main(void *arg)
{
    s_rpc *r = arg;
    svc_client *c = svc_client_new(NULL);
    pthread_mutex_lock(&r->mu);
    while (!r->quit) {
        s_job *j = r->todo;
        if (!j) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        r->todo = j->next;
        pthread_mutex_unlock(&r->mu);
        Svc__Debug__HealthRequest req = SVC__DEBUG__HEALTH_REQUEST__INIT;
        ProtobufCMessage *rsp = NULL;
        svc_error err = SVC_ERROR_INIT;
        svc_call_opts o = { .timeout_ms = j->timeout_ms, .retries = -1, .address = j->address };
        int rc = c ? svc_call(c, j->service, "Debug.Health", &req.base,
                              &svc__debug__health_response__descriptor, &rsp, &o, &err)
                   : -ENOMEM;
        const char *st = rsp ? ((Svc__Debug__HealthResponse *)rsp)->status : NULL;
        j->ok = rc == 0 && st && strcmp(st, "ok") == 0;
        if (!j->ok)
            snprintf(j->detail, sizeof j->detail, "Debug.Health: %s",
                     rc == 0 ? (st ? st : "no status") : err.detail ? err.detail : svc_strerror(rc));
        if (rsp)
            protobuf_c_message_free_unpacked(rsp, NULL);
        svc_error_release(&err);
        pthread_mutex_lock(&r->mu);
        j->next = r->done;
        r->done = j;
        ev_async_send(r->sup->loop, &r->wake);
    }
    pthread_mutex_unlock(&r->mu);
    svc_client_destroy(&c);
    return NULL;
}

static void s_job_free(s_job *j)
{
    free(j->service);
    free(j->address);
    free(j);
}

static void s_on_rpc_done(struct ev_loop *loop, ev_async *w, int revents)
{
    s_rpc *r = w->data;
    pthread_mutex_lock(&r->mu);
    s_job *done = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->mu);
    while (done) {
        s_job *j = done;
        done = j->next;
        if (s_current(r->sup, j->inst, j->generation))
            s_finish(j->inst, j->ok, j->detail);
        s_job_free(j);
    }
}

static int s_rpc_start(sup_instance *i)
{
    s_rpc *r = i->svc->sup->health;
    if (!i->address)
        return SVC_EINVAL;
    s_job *j = calloc(1, sizeof *j);
    if (!j || !(j->service = strdup(i->svc->m->name)) || !(j->address = strdup(i->address))) {
        if (j)
            s_job_free(j);
        return -ENOMEM;
    }
    j->inst = i;
    j->generation = i->generation;
    j->timeout_ms = (int)(i->svc->m->health_timeout * 1000);
    if (j->timeout_ms < 1)
        j->timeout_ms = 1;
    pthread_mutex_lock(&r->mu);
    j->next = r->todo;
    r->todo = j;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

/* ---- exec ------------------------------------------------------------------------ */

static void s_on_exec_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    sup_instance *i = w->data;
    ev_child_stop(loop, w);
    i->check.pid = 0;
    char d[96];
    int st = w->rstatus;
    if (WIFEXITED(st))
        snprintf(d, sizeof d, "check command exited %d", WEXITSTATUS(st));
    else
        snprintf(d, sizeof d, "check command killed by signal %d", WTERMSIG(st));
    s_finish(i, WIFEXITED(st) && WEXITSTATUS(st) == 0, d);
}

static int s_exec_start(sup_instance *i)
{
    sup_check *c = &i->check;
    char pidenv[32];
    snprintf(pidenv, sizeof pidenv, "SVC_PID=%d", (int)i->pid);
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env)
        return -ENOMEM;
    memcpy(env, environ, n * sizeof *env);
    env[n] = pidenv;
    char *argv[] = { "/bin/sh", "-c", i->svc->m->health_target, NULL };
    posix_spawnattr_t a;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_init(&a);
    posix_spawn_file_actions_init(&fa);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setpgroup(&a, 0);
    posix_spawnattr_setsigmask(&a, &none);
    posix_spawnattr_setsigdefault(&a, &all);
    posix_spawnattr_setflags(&a, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", &fa, &a, argv, env);
    posix_spawnattr_destroy(&a);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    if (rc != 0)
        return -rc;
    c->pid = pid;
    ev_child_init(&c->child, s_on_exec_exit, pid, 0);
    c->child.data = i;
    ev_child_start(i->svc->sup->loop, &c->child);
    return 0;
}

/* ---- tcp and http ------------------------------------------------------------------ */

/* Splits "HOST:PORT" (or "[v6]:PORT") into host and port; false if malformed. */
static bool s_hostport(const char *hp, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon = strrchr(hp, ':');
    if (!colon || !colon[1])
        return false;
    const char *h = hp;
    size_t len = (size_t)(colon - hp);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']')
        h++, len -= 2;
    if (len == 0 || len >= hl || strlen(colon + 1) >= pl)
        return false;
    memcpy(host, h, len);
    host[len] = 0;
    snprintf(port, pl, "%s", colon + 1);
    return true;
}

static void s_on_sock(struct ev_loop *loop, ev_io *w, int revents)
{
    sup_instance *i = w->data;
    sup_check *c = &i->check;
    if (c->phase == 0) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e) {
            char d[128];
            snprintf(d, sizeof d, "connect: %s", strerror(e));
            s_finish(i, false, d);
            return;
        }
        if (i->svc->m->health == SUP_HEALTH_TCP) {
            s_finish(i, true, "connected");
            return;
        }
        /* http: send the request; it fits in the socket buffer at once. */
        const char *url = i->svc->m->health_target + 7;
        const char *slash = strchr(url, '/');
        char req[1024];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: %.*s\r\nConnection: close\r\n\r\n",
                         slash ? slash : "/", slash ? (int)(slash - url) : (int)strlen(url), url);
        if (n < 0 || (size_t)n >= sizeof req || send(c->fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
            s_finish(i, false, "cannot send the request");
            return;
        }
        c->phase = 1;
        c->len = 0;
        ev_io_stop(loop, w);
        ev_io_set(w, c->fd, EV_READ);
        ev_io_start(loop, w);
        return;
    }
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n > 0)
        c->len += (size_t)n;
    c->buf[c->len] = 0;
    char *eol = strstr(c->buf, "\r\n");
    if (!eol && n > 0 && c->len < sizeof c->buf - 1)
        return;
    /* The status line: "HTTP/1.x NNN reason". */
    int code = 0;
    bool ok = strncmp(c->buf, "HTTP/1.", 7) == 0 && c->len >= 12 && sscanf(c->buf + 9, "%3d", &code) == 1;
    char d[128];
    snprintf(d, sizeof d, ok ? "http status %d" : "no http status line", code);
    s_finish(i, ok && code >= 200 && code < 300, d);
}

static int s_sock_start(sup_instance *i)
{
    sup_check *c = &i->check;
    const char *t = i->svc->m->health_target;
    char hp[300], host[256], port[16];
    if (i->svc->m->health == SUP_HEALTH_HTTP) {
        snprintf(hp, sizeof hp, "%s", t + 7);
        hp[strcspn(hp, "/")] = 0;
        if (!strrchr(hp, ':') || strrchr(hp, ']') > strrchr(hp, ':'))
            strncat(hp, ":80", sizeof hp - strlen(hp) - 1);
    } else {
        snprintf(hp, sizeof hp, "%s", t);
    }
    if (!s_hostport(hp, host, sizeof host, port, sizeof port))
        return SVC_EINVAL;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return SVC_EINVAL;
    c->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = c->fd >= 0 ? connect(c->fd, res->ai_addr, res->ai_addrlen) : -1;
    freeaddrinfo(res);
    if (c->fd < 0 || (rc < 0 && errno != EINPROGRESS)) {
        int e = errno;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = -1;
        return -e;
    }
    c->phase = 0;
    ev_io_init(&c->io, s_on_sock, c->fd, EV_WRITE);
    c->io.data = i;
    ev_io_start(i->svc->sup->loop, &c->io);
    return 0;
}

/* ---- scheduling --------------------------------------------------------------------- */

static void s_on_check_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    sup_instance *i = w->data;
    char d[64];
    snprintf(d, sizeof d, "no answer within %.3fs", i->svc->m->health_timeout);
    s_finish(i, false, d);
}

static void s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    sup_instance *i = w->data;
    sup_check *c = &i->check;
    if (c->active || (i->state != SUP_READY && i->state != SUP_UNHEALTHY))
        return;
    int rc;
    switch (i->svc->m->health) {
    case SUP_HEALTH_RPC: rc = s_rpc_start(i); break;
    case SUP_HEALTH_EXEC: rc = s_exec_start(i); break;
    case SUP_HEALTH_TCP:
    case SUP_HEALTH_HTTP: rc = s_sock_start(i); break;
    default: return;
    }
    c->active = true;
    ev_timer_init(&c->timeout, s_on_check_timeout, i->svc->m->health_timeout, 0.);
    c->timeout.data = i;
    if (rc < 0) {
        char d[128];
        snprintf(d, sizeof d, "cannot start the check: %s",
                 rc == SVC_EINVAL && !i->address && i->svc->m->health == SUP_HEALTH_RPC
                     ? "no SVC_ADDRESS= came with READY=1" : svc_strerror(rc));
        s_finish(i, false, d);
        return;
    }
    ev_timer_start(loop, &c->timeout);
}

void sup_health_arm(sup_instance *i)
{
    const sup_manifest *m = i->svc->m;
    if (m->health == SUP_HEALTH_NONE)
        return;
    ev_timer_init(&i->health_timer, s_on_tick, m->health_interval, m->health_interval);
    i->health_timer.data = i;
    ev_timer_start(i->svc->sup->loop, &i->health_timer);
}

void sup_health_disarm(sup_instance *i)
{
    struct ev_loop *loop = i->svc->sup->loop;
    if (i->health_timer.data)
        ev_timer_stop(loop, &i->health_timer);
    sup_check *c = &i->check;
    if (!c->active)
        return;
    ev_timer_stop(loop, &c->timeout);
    if (c->fd >= 0) {
        ev_io_stop(loop, &c->io);
        close(c->fd);
        c->fd = -1;
    }
    if (c->pid > 0) {
        ev_child_stop(loop, &c->child);
        killpg(c->pid, SIGKILL);
        c->pid = 0;
    }
    c->active = false;   /* an rpc result still on its way is dropped (s_current) */
}

int sup_health_init(sup *s)
{
    s_rpc *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->sup = s;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    ev_async_init(&r->wake, s_on_rpc_done);
    r->wake.data = r;
    ev_async_start(s->loop, &r->wake);
    int rc = pthread_create(&r->thread, NULL, s_rpc_main, r);
    if (rc) {
        ev_async_stop(s->loop, &r->wake);
        free(r);
        return -rc;
    }
    s->health = r;
    return 0;
}

void sup_health_release(sup *s)
{
    s_rpc *r = s->health;
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    ev_async_stop(s->loop, &r->wake);
    for (s_job *lists[2] = { r->todo, r->done }, *j, **l = lists; l < lists + 2; l++)
        while ((j = *l)) {
            *l = j->next;
            s_job_free(j);
        }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    s->health = NULL;
}
