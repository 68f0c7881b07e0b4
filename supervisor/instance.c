/*
 * supervisor/instance.c — one supervised process and its state machine.
 *
 * state × event → action (s_table below):
 *
 *               START        STOP         READY      EXIT        TIMER
 *   STOPPED     spawn        -            -          -           -
 *   STARTING    -            stop         ready      exited      ready timeout: stop
 *   READY       -            stop         -          exited      -
 *   UNHEALTHY   -            stop         -          exited      -
 *   STOPPING    then restart -            -          exited      SIGKILL
 *   BACKOFF     spawn        cancel       -          -           spawn
 *   FAILED      spawn        cancel       -          -           -
 *
 * exited: a stop that was asked for ends in STOPPED (or a new spawn for a
 * restart); any other exit is weighed against the restart policy, the start
 * limit (start_limit_burst starts within start_limit_interval, then FAILED)
 * and the backoff (initial × factor^failures, capped, ± jitter).  A run that
 * stayed up longer than start_limit_interval resets both counters.
 *
 * Every instance runs in its own process group; stop signals go to the
 * group, and whatever is left of the group when the main process exits is
 * SIGKILLed, so nothing of an instance outlives it.
 */
#include "sup.h"
#include "svc/error.h"
#include "svc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef enum s_event { E_START, E_STOP, E_READY, E_EXIT, E_TIMER, S_N_EVENTS } s_event;
typedef void (*s_action)(sup_instance *i);

static void s_spawn(sup_instance *i);
static void s_stop(sup_instance *i);
static void s_ready(sup_instance *i);
static void s_exited(sup_instance *i);
static void s_ready_timeout(sup_instance *i);
static void s_sigkill(sup_instance *i);
static void s_cancel(sup_instance *i);
static void s_restart_after(sup_instance *i);

static const s_action s_table[SUP_N_STATES][S_N_EVENTS] = {
    [SUP_STOPPED]   = { [E_START] = s_spawn },
    [SUP_STARTING]  = { [E_STOP] = s_stop, [E_READY] = s_ready, [E_EXIT] = s_exited,
                        [E_TIMER] = s_ready_timeout },
    [SUP_READY]     = { [E_STOP] = s_stop, [E_EXIT] = s_exited },
    [SUP_UNHEALTHY] = { [E_STOP] = s_stop, [E_EXIT] = s_exited },
    [SUP_STOPPING]  = { [E_START] = s_restart_after, [E_EXIT] = s_exited, [E_TIMER] = s_sigkill },
    [SUP_BACKOFF]   = { [E_START] = s_spawn, [E_STOP] = s_cancel, [E_TIMER] = s_spawn },
    [SUP_FAILED]    = { [E_START] = s_spawn, [E_STOP] = s_cancel },
};

static const char *const s_state_names[SUP_N_STATES] = {
    "stopped", "starting", "ready", "unhealthy", "stopping", "backoff", "failed",
};

const char *sup_state_name(sup_state st)
{
    return st < SUP_N_STATES ? s_state_names[st] : "?";
}

static void s_fire(sup_instance *i, s_event e)
{
    s_action a = s_table[i->state][e];
    if (a)
        a(i);
}

static void s_set_state(sup_instance *i, sup_state st)
{
    if (i->state == st)
        return;
    svc_debug("state\tservice=%s instance=%d from=%s to=%s", i->svc->m->name, i->index,
              sup_state_name(i->state), sup_state_name(st));
    i->state = st;
}

static void s_timer(sup_instance *i, double after)
{
    ev_timer_stop(i->svc->sup->loop, &i->timer);
    ev_timer_set(&i->timer, after, 0.);
    ev_timer_start(i->svc->sup->loop, &i->timer);
}

/* ---- libev callbacks ------------------------------------------------------------ */

static void s_on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    sup_instance *i = w->data;
    ev_child_stop(loop, w);
    i->last_exit = w->rstatus;
    s_fire(i, E_EXIT);
}

static void s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    s_fire(w->data, E_TIMER);
}

static void s_on_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    sup_instance *i = w->data;
    if (i->state != SUP_STARTING && i->state != SUP_READY && i->state != SUP_UNHEALTHY)
        return;
    svc_warn("watchdog expired: killing\tservice=%s instance=%d pid=%d watchdog=%.3fs",
             i->svc->m->name, i->index, (int)i->pid, i->svc->m->watchdog);
    sup_logs_event(i, "watchdog expired after %.3fs: SIGKILL", i->svc->m->watchdog);
    i->reason = SUP_KILL_WATCHDOG;
    sup_health_disarm(i);
    killpg(i->pid, SIGKILL);
    s_set_state(i, SUP_STOPPING);
    s_timer(i, i->svc->m->stop_timeout);
}

void sup_instance_init(sup_instance *i, sup_service *v, int index)
{
    memset(i, 0, sizeof *i);
    i->svc = v;
    i->index = index;
    i->state = SUP_STOPPED;
    i->last_health = -1;
    i->last_exit = -1;
    ev_init(&i->child, s_on_child);
    i->child.data = i;
    ev_init(&i->timer, s_on_timer);
    i->timer.data = i;
    ev_init(&i->watchdog, s_on_watchdog);
    i->watchdog.data = i;
    int burst = v->m->start_limit_burst;
    i->starts = calloc(burst > 0 ? (size_t)burst : 1, sizeof *i->starts);
    i->out.inst = i->err.inst = i;
    i->err.is_err = true;
    i->check.fd = -1;
}

void sup_instance_release(sup_instance *i)
{
    struct ev_loop *loop = i->svc->sup->loop;
    ev_child_stop(loop, &i->child);
    ev_timer_stop(loop, &i->timer);
    ev_timer_stop(loop, &i->watchdog);
    sup_health_disarm(i);
    sup_logs_detach(i);
    free(i->starts);
    free(i->address);
    i->starts = NULL;
    i->address = NULL;
}

/* ---- spawning --------------------------------------------------------------------- */

/* Resolves the program: a path as given (relative to the manifest's folder),
 * else next to the supervisor, else in PATH.  Returns a malloc'd path or NULL. */
static char *s_resolve(sup *s, const sup_manifest *m)
{
    char *p = NULL;
    if (m->command[0] == '/')
        return strdup(m->command);
    if (strchr(m->command, '/')) {
        const char *slash = strrchr(m->file, '/');
        int dl = slash ? (int)(slash - m->file) : 1;
        if (asprintf(&p, "%.*s/%s", dl, slash ? m->file : ".", m->command) < 0)
            return NULL;
        return p;
    }
    if (asprintf(&p, "%s/%s", s->bin_dir, m->command) >= 0 && access(p, X_OK) == 0)
        return p;
    free(p);
    const char *path = getenv("PATH");
    for (const char *d = path ? path : "/usr/bin:/bin"; d && *d;) {
        const char *e = strchr(d, ':');
        int n = e ? (int)(e - d) : (int)strlen(d);
        if (asprintf(&p, "%.*s/%s", n, d, m->command) >= 0 && access(p, X_OK) == 0)
            return p;
        free(p);
        p = NULL;
        d = e ? e + 1 : NULL;
    }
    return strdup(m->command);   /* exec fails; the error names it */
}

static bool s_env_skip(const char *e)
{
    static const char *const drop[] = { "NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
                                        "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=",
                                        "JOURNAL_STREAM=", "INVOCATION_ID=", "SVC_INSTANCE=",
                                        "SVC_SERVICE=", "SVC_STATE_DIR=", NULL };
    for (const char *const *d = drop; *d; d++)
        if (strncmp(e, *d, strlen(*d)) == 0)
            return true;
    return false;
}

/* Is e overridden by one of the manifest's entries? */
static bool s_env_overridden(const sup_manifest *m, const char *e)
{
    const char *eq = strchr(e, '=');
    size_t kl = eq ? (size_t)(eq - e) : strlen(e);
    for (size_t j = 0; j < m->n_env; j++)
        if (strncmp(m->env[j], e, kl) == 0 && m->env[j][kl] == '=')
            return true;
    return false;
}

/* The environment of a new process; *wd_pid points at the WATCHDOG_PID digits. */
static char **s_envp(sup_instance *i, char **wd_pid)
{
    const sup_manifest *m = i->svc->m;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + m->n_env + 8, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t j = 0; j < n; j++)
        if (!s_env_skip(environ[j]) && !s_env_overridden(m, environ[j]))
            env[k++] = strdup(environ[j]);
    for (size_t j = 0; j < m->n_env; j++)
        env[k++] = strdup(m->env[j]);
    if (asprintf(&env[k++], "NOTIFY_SOCKET=%s", i->svc->sup->notify_path) < 0)
        env[k - 1] = NULL;
    if (asprintf(&env[k++], "SVC_SERVICE=%s", m->name) < 0)
        env[k - 1] = NULL;
    if (asprintf(&env[k++], "SVC_INSTANCE=%d", i->index) < 0)
        env[k - 1] = NULL;
    /* Where platform daemons keep their data by default (stored, brokerd). */
    if (!s_env_overridden(m, "SVC_STATE_DIR=") &&
        asprintf(&env[k++], "SVC_STATE_DIR=%s", i->svc->sup->state_dir) < 0)
        env[k - 1] = NULL;
    *wd_pid = NULL;
    if (m->watchdog > 0) {
        if (asprintf(&env[k++], "WATCHDOG_USEC=%llu", (unsigned long long)(m->watchdog * 1e6)) < 0)
            env[k - 1] = NULL;
        env[k++] = strdup("WATCHDOG_PID=0000000000");
        if (env[k - 1])
            *wd_pid = env[k - 1] + strlen("WATCHDOG_PID=");
    }
    for (size_t j = 0; j < k; j++)
        if (!env[j]) {
            for (size_t x = 0; x < k; x++)
                free(env[x]);
            free(env);
            return NULL;
        }
    return env;
}

static void s_free_envp(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

/* The credentials to switch to, resolved in the parent (getpwnam is not async-signal-safe). */
typedef struct s_creds {
    bool set;
    uid_t uid;
    gid_t gid;
    char name[64];
} s_creds;

static int s_lookup_creds(const sup_manifest *m, s_creds *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (!m->user && !m->group)
        return 0;
    c->set = true;
    c->uid = getuid();
    c->gid = getgid();
    if (m->user) {
        struct passwd *pw = getpwnam(m->user);
        char *end;
        unsigned long u = strtoul(m->user, &end, 10);
        if (pw) {
            c->uid = pw->pw_uid;
            c->gid = pw->pw_gid;
            snprintf(c->name, sizeof c->name, "%s", pw->pw_name);
        } else if (*end == 0 && end != m->user) {
            c->uid = (uid_t)u;
        } else {
            snprintf(err, errlen, "unknown user \"%s\"", m->user);
            return SVC_EINVAL;
        }
    }
    if (m->group) {
        struct group *gr = getgrnam(m->group);
        char *end;
        unsigned long g = strtoul(m->group, &end, 10);
        if (gr)
            c->gid = gr->gr_gid;
        else if (*end == 0 && end != m->group)
            c->gid = (gid_t)g;
        else {
            snprintf(err, errlen, "unknown group \"%s\"", m->group);
            return SVC_EINVAL;
        }
    }
    return 0;
}

/* Writes n in decimal into the 10 characters at p (async-signal-safe). */
static void s_put_pid(char *p, pid_t n)
{
    char tmp[16];
    int k = 0;
    unsigned long v = (unsigned long)n;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && k < 10);
    int j = 0;
    while (k)
        p[j++] = tmp[--k];
    p[j] = 0;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void s_child(const sup_manifest *m, const char *path, char **argv, char **envp,
                    char *wd_pid, const s_creds *c, pid_t parent, int fd_in, int fd_out,
                    int fd_err, int fd_status) __attribute__((noreturn));
static void s_child(const sup_manifest *m, const char *path, char **argv, char **envp,
                    char *wd_pid, const s_creds *c, pid_t parent, int fd_in, int fd_out,
                    int fd_err, int fd_status)
{
    int e = 0;
    setpgid(0, 0);
    /* Ends with the supervisor (its leftovers are handled at the next start). */
    prctl(PR_SET_PDEATHSIG, m->stop_signal);
    if (getppid() != parent)
        _exit(1);
    sigset_t none;
    sigemptyset(&none);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(fd_in, 0) < 0 || dup2(fd_out, 1) < 0 || dup2(fd_err, 2) < 0)
        goto fail;
    for (size_t r = 0; r < m->n_rlimits; r++) {
        struct rlimit rl = { (rlim_t)m->rlimits[r].value, (rlim_t)m->rlimits[r].value };
        if (setrlimit(m->rlimits[r].resource, &rl) < 0)
            goto fail;
    }
    if (m->workdir && chdir(m->workdir) < 0)
        goto fail;
    if (c->set) {
        if (c->name[0] ? initgroups(c->name, c->gid) < 0 : setgroups(0, NULL) < 0)
            if (errno != EPERM || getuid() == 0)
                goto fail;
        if (setgid(c->gid) < 0 || setuid(c->uid) < 0)
            goto fail;
    }
    if (wd_pid)
        s_put_pid(wd_pid, getpid());
    execve(path, argv, envp);
fail:
    e = errno;
    while (write(fd_status, &e, sizeof e) < 0 && errno == EINTR)
        ;
    _exit(127);
}

/* Fork and exec; returns the pid, or a negative code with err filled. */
static pid_t s_fork_exec(sup_instance *i, char *err, size_t errlen)
{
    sup *s = i->svc->sup;
    const sup_manifest *m = i->svc->m;
    int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, st[2] = { -1, -1 }, devnull = -1;
    pid_t pid = -1;
    char *wd_pid = NULL;
    s_creds creds;
    char *path = s_resolve(s, m);
    char **envp = s_envp(i, &wd_pid);
    char **argv = calloc(m->n_args + 2, sizeof *argv);
    if (!path || !envp || !argv) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    argv[0] = (char *)m->command;
    for (size_t a = 0; a < m->n_args; a++)
        argv[a + 1] = m->args[a];
    if (s_lookup_creds(m, &creds, err, errlen) < 0)
        goto out;
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
        pipe2(st, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "cannot create pipes: %s", strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0)
        s_child(m, path, argv, envp, wd_pid, &creds, parent, devnull, outp[1], errp[1], st[1]);
    if (pid < 0) {
        snprintf(err, errlen, "cannot fork: %s", strerror(errno));
        goto out;
    }
    setpgid(pid, pid);   /* both sides, so that killpg works at once */
    close(st[1]);
    st[1] = -1;
    int e = 0;
    ssize_t n;
    while ((n = read(st[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof e)
        snprintf(err, errlen, "cannot execute \"%s\": %s", path, strerror(e));
    sup_logs_attach(i, outp[0], errp[0]);
    outp[0] = errp[0] = -1;
out:
    for (int *fd = (int[]){ outp[0], outp[1], errp[0], errp[1], st[0], st[1], devnull }, k = 0;
         k < 7; k++)
        if (fd[k] >= 0)
            close(fd[k]);
    free(path);
    free(argv);
    s_free_envp(envp);
    return pid;
}

/* Records a start in the ring; returns how many fall within the interval. */
static int s_count_starts(sup_instance *i, double now)
{
    const sup_manifest *m = i->svc->m;
    int c = 0;
    for (int k = 0; k < i->n_starts; k++)
        if (now - i->starts[k] < m->start_limit_interval)
            c++;
    return c;
}

static void s_note_start(sup_instance *i, double now)
{
    int burst = i->svc->m->start_limit_burst;
    if (burst <= 0)
        return;
    i->starts[i->start_pos] = now;
    i->start_pos = (i->start_pos + 1) % burst;
    if (i->n_starts < burst)
        i->n_starts++;
}

static void s_spawn(sup_instance *i)
{
    sup *s = i->svc->sup;
    const sup_manifest *m = i->svc->m;
    double now = sup_now(s);
    char err[512] = "";
    ev_timer_stop(s->loop, &i->timer);
    if (i->state == SUP_FAILED || i->state == SUP_STOPPED) {
        if (i->state == SUP_FAILED)
            i->failures = 0, i->n_starts = 0;
    }
    i->reason = SUP_KILL_NONE;
    i->ready_at = 0;
    i->health_fails = 0;
    i->last_health = -1;
    i->status[0] = 0;
    free(i->address);
    i->address = NULL;
    i->generation++;
    s_note_start(i, now);
    pid_t pid = s_fork_exec(i, err, sizeof err);
    if (pid < 0) {
        svc_warn("cannot start\tservice=%s instance=%d error=\"%s\"", m->name, i->index, err);
        sup_logs_event(i, "cannot start: %s", err);
        i->pid = 0;
        i->last_exit = 127 << 8;
        s_set_state(i, SUP_STARTING);
        s_exited(i);
        return;
    }
    if (err[0]) {
        svc_warn("cannot start\tservice=%s instance=%d error=\"%s\"", m->name, i->index, err);
        sup_logs_event(i, "%s", err);
    }
    i->pid = pid;
    i->spawned_at = now;
    ev_child_set(&i->child, pid, 0);
    ev_child_start(s->loop, &i->child);
    sup_statedir_record(i);
    svc_info("started\tservice=%s instance=%d pid=%d", m->name, i->index, (int)pid);
    sup_logs_event(i, "started pid %d", (int)pid);
    if (m->watchdog > 0) {
        ev_timer_set(&i->watchdog, 0., m->watchdog);
        ev_timer_again(s->loop, &i->watchdog);
    }
    if (m->ready == SUP_READY_NOTIFY) {
        s_set_state(i, SUP_STARTING);
        if (m->ready_timeout > 0)
            s_timer(i, m->ready_timeout);
    } else {
        s_set_state(i, SUP_STARTING);
        s_ready(i);
    }
}

static void s_ready(sup_instance *i)
{
    sup *s = i->svc->sup;
    ev_timer_stop(s->loop, &i->timer);
    i->ready_at = sup_now(s);
    s_set_state(i, SUP_READY);
    svc_info("ready\tservice=%s instance=%d pid=%d after=%.3fs", i->svc->m->name, i->index,
             (int)i->pid, i->ready_at - i->spawned_at);
    sup_health_arm(i);
    sup_changed(s);
}

static void s_send_stop(sup_instance *i, int sig)
{
    if (i->pid > 0) {
        killpg(i->pid, sig);
        killpg(i->pid, SIGCONT);   /* a stopped process must see it */
    }
}

static void s_stop(sup_instance *i)
{
    const sup_manifest *m = i->svc->m;
    sup_health_disarm(i);
    ev_timer_stop(i->svc->sup->loop, &i->watchdog);
    svc_info("stopping\tservice=%s instance=%d pid=%d signal=%s", m->name, i->index, (int)i->pid,
             sup_signal_name(m->stop_signal));
    s_send_stop(i, m->stop_signal);
    s_set_state(i, SUP_STOPPING);
    s_timer(i, m->stop_timeout);
}

static void s_sigkill(sup_instance *i)
{
    svc_warn("stop timeout: SIGKILL\tservice=%s instance=%d pid=%d", i->svc->m->name, i->index,
             (int)i->pid);
    sup_logs_event(i, "did not stop within %.3fs: SIGKILL", i->svc->m->stop_timeout);
    s_send_stop(i, SIGKILL);
    s_timer(i, 5.0);   /* SIGKILL again if it is still not reaped */
}

static void s_ready_timeout(sup_instance *i)
{
    svc_warn("not ready in time\tservice=%s instance=%d pid=%d ready_timeout=%.3fs",
             i->svc->m->name, i->index, (int)i->pid, i->svc->m->ready_timeout);
    sup_logs_event(i, "not ready within %.3fs", i->svc->m->ready_timeout);
    s_stop(i);
    i->reason = SUP_KILL_READY_TIMEOUT;
}

static void s_cancel(sup_instance *i)
{
    ev_timer_stop(i->svc->sup->loop, &i->timer);
    s_set_state(i, SUP_STOPPED);
    sup_changed(i->svc->sup);
}

static void s_restart_after(sup_instance *i)
{
    i->reason = SUP_KILL_RESTART;
}

static double s_backoff(sup_instance *i)
{
    const sup_manifest *m = i->svc->m;
    double d = m->backoff_initial;
    for (int k = 0; k < i->failures && d < m->backoff_cap; k++)
        d *= m->backoff_factor;
    if (d > m->backoff_cap)
        d = m->backoff_cap;
    if (m->backoff_jitter > 0)
        d *= 1 + m->backoff_jitter * (2.0 * drand48() - 1.0);
    return d < 0 ? 0 : d;
}

static void s_describe_exit(int st, char *buf, size_t len)
{
    if (st < 0)
        snprintf(buf, len, "not started");
    else if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %s (%d)", sup_signal_name(WTERMSIG(st)), WTERMSIG(st));
    else
        snprintf(buf, len, "status %d", st);
}

static void s_exited(sup_instance *i)
{
    sup *s = i->svc->sup;
    const sup_manifest *m = i->svc->m;
    double now = sup_now(s);
    char how[64];
    s_describe_exit(i->last_exit, how, sizeof how);
    ev_timer_stop(s->loop, &i->timer);
    ev_timer_stop(s->loop, &i->watchdog);
    ev_child_stop(s->loop, &i->child);
    sup_health_disarm(i);
    if (i->pid > 0) {
        killpg(i->pid, SIGKILL);   /* what is left of its process group */
        sup_logs_detach(i);
        sup_statedir_forget(i);
        svc_info("exited\tservice=%s instance=%d pid=%d status=\"%s\" ran=%.3fs", m->name, i->index,
                 (int)i->pid, how, now - i->spawned_at);
        sup_logs_event(i, "pid %d exited: %s", (int)i->pid, how);
    }
    i->pid = 0;
    sup_kill_reason why = i->reason;
    i->reason = SUP_KILL_NONE;
    if (why == SUP_KILL_STOP || s->stopping || !i->svc->want_up || i->svc->removing ||
        i->svc->next_m) {
        s_set_state(i, SUP_STOPPED);
        sup_changed(s);
        return;
    }
    if (why == SUP_KILL_RESTART) {
        i->failures = 0;
        s_set_state(i, SUP_STOPPED);
        s_spawn(i);
        return;
    }
    bool clean = why == SUP_KILL_NONE && i->last_exit >= 0 && WIFEXITED(i->last_exit) &&
                 WEXITSTATUS(i->last_exit) == 0;
    double up_since = i->ready_at > 0 ? i->ready_at : 0;
    if (up_since > 0 && now - up_since >= m->start_limit_interval) {
        i->failures = 0;   /* it was up long enough: a fresh start */
        i->n_starts = 0;
    }
    bool restart = m->restart == SUP_RESTART_ALWAYS ||
                   (m->restart == SUP_RESTART_ON_FAILURE && !clean);
    if (!restart) {
        s_set_state(i, clean ? SUP_STOPPED : SUP_FAILED);
        sup_changed(s);
        return;
    }
    if (m->start_limit_burst > 0 && s_count_starts(i, now) >= m->start_limit_burst) {
        svc_warn("start limit hit: failed\tservice=%s instance=%d starts=%d interval=%.3fs", m->name,
                 i->index, m->start_limit_burst, m->start_limit_interval);
        sup_logs_event(i, "start limit hit (%d starts within %.3fs): failed", m->start_limit_burst,
                       m->start_limit_interval);
        s_set_state(i, SUP_FAILED);
        sup_changed(s);
        return;
    }
    double d = s_backoff(i);
    i->failures++;
    i->restarts++;
    svc_info("restarting after backoff\tservice=%s instance=%d delay=%.3fs", m->name, i->index, d);
    s_set_state(i, SUP_BACKOFF);
    s_timer(i, d);
    sup_changed(s);
}

/* ---- the public events -------------------------------------------------------------- */

void sup_instance_start(sup_instance *i) { s_fire(i, E_START); }

void sup_instance_stop(sup_instance *i, sup_kill_reason why)
{
    s_fire(i, E_STOP);
    if (i->state == SUP_STOPPING && why > i->reason)
        i->reason = why;
}

void sup_instance_ready(sup_instance *i) { s_fire(i, E_READY); }

void sup_instance_watchdog_ping(sup_instance *i)
{
    if (i->svc->m->watchdog > 0 && ev_is_active(&i->watchdog))
        ev_timer_again(i->svc->sup->loop, &i->watchdog);
}

void sup_instance_health(sup_instance *i, bool ok, const char *detail)
{
    const sup_manifest *m = i->svc->m;
    if (i->state != SUP_READY && i->state != SUP_UNHEALTHY)
        return;
    i->last_health = ok ? 1 : 0;
    if (ok) {
        if (i->state == SUP_UNHEALTHY)
            svc_info("healthy again\tservice=%s instance=%d", m->name, i->index);
        i->health_fails = 0;
        s_set_state(i, SUP_READY);
        return;
    }
    i->health_fails++;
    svc_warn("health check failed\tservice=%s instance=%d failures=%d/%d detail=\"%s\"", m->name,
             i->index, i->health_fails, m->health_failures, detail);
    sup_logs_event(i, "health check failed (%d/%d): %s", i->health_fails, m->health_failures, detail);
    s_set_state(i, SUP_UNHEALTHY);
    if (i->health_fails >= m->health_failures) {
        sup_instance_stop(i, SUP_KILL_HEALTH);
        i->reason = SUP_KILL_HEALTH;
    }
}

sup_instance *sup_instance_by_pid(sup *s, pid_t pid)
{
    for (sup_service *v = s->services; v; v = v->next)
        for (int k = 0; k < v->n_inst; k++)
            if (v->inst[k].pid == pid)
                return &v->inst[k];
    return NULL;
}
