/*
 * supervisor/sup.h — the supervisor's shared types (internal to supervisor/).
 *
 *   main.c      flags, start-up, the two threads
 *   manifest.c  INI manifests
 *   sup.c       the set of services: start in dependency order, stop in
 *               reverse, reload
 *   instance.c  one process: the state machine, spawning, exits, backoff
 *   notify.c    the NOTIFY_SOCKET children report READY=1 / WATCHDOG=1 to
 *   health.c    health checks (rpc, exec, tcp, http)
 *   logs.c      captured stdout/stderr: files, journal, the in-memory tail
 *   statedir.c  pid records in the state directory; leftovers at start
 *   control.c   the svc.supervisor RPC API (runs on the libsvc thread)
 *
 * Threads: everything here belongs to the main thread, which runs the libev
 * default loop (child watchers need it).  The control API runs in libsvc's
 * own loop and worker threads; it never touches this state: it queues a
 * command and waits for the main loop to run it (control.c).
 */
#ifndef SUP_H
#define SUP_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "manifest.h"

typedef struct sup sup;
typedef struct sup_service sup_service;
typedef struct sup_instance sup_instance;

/* The lifecycle of one instance (see the table in instance.c). */
typedef enum sup_state {
    SUP_STOPPED = 0,   /* no process, none wanted */
    SUP_STARTING,      /* spawned, waiting for READY=1 */
    SUP_READY,         /* running and ready (healthy or not yet checked) */
    SUP_UNHEALTHY,     /* ready, but the last health check(s) failed */
    SUP_STOPPING,      /* stop signal sent, waiting for the exit (SIGKILL at stop_timeout) */
    SUP_BACKOFF,       /* exited; waiting out the restart delay */
    SUP_FAILED,        /* start limit hit, or exited and not to be restarted */
    SUP_N_STATES,
} sup_state;

/* Why an instance is being stopped: decides what its exit leads to. */
typedef enum sup_kill_reason {
    SUP_KILL_NONE = 0,       /* not asked: the process exited by itself */
    SUP_KILL_STOP,           /* asked to stop: STOPPED */
    SUP_KILL_RESTART,        /* asked to restart: start again at once */
    SUP_KILL_HEALTH,         /* health checks failed: a failure, restart per policy */
    SUP_KILL_WATCHDOG,       /* missed its watchdog: a failure */
    SUP_KILL_READY_TIMEOUT,  /* not ready in time: a failure */
} sup_kill_reason;

/* A line-splitting reader of one captured pipe. */
typedef struct sup_pipe {
    ev_io io;                 /* read side, non-blocking */
    sup_instance *inst;       /* owner */
    bool is_err;              /* stderr (else stdout) */
    char buf[4096];           /* partial line */
    size_t len;               /* bytes in buf */
} sup_pipe;

/* One health check in flight (tcp/http connect, exec child). */
typedef struct sup_check {
    bool active;              /* a check is running */
    ev_timer timeout;         /* its deadline */
    ev_io io;                 /* tcp/http socket */
    ev_child child;           /* exec check process */
    int fd;                   /* tcp/http socket, or -1 */
    pid_t pid;                /* exec check process, or 0 */
    int phase;                /* http: 0 connecting, 1 reading the status line */
    char buf[256];            /* http status line read so far */
    size_t len;
} sup_check;

struct sup_instance {
    sup_service *svc;         /* owner */
    int index;                /* 0..instances-1 */
    sup_state state;
    sup_kill_reason reason;   /* why the current stop was started */
    pid_t pid;                /* running process (its own process group), or 0 */
    uint64_t generation;      /* bumped at each spawn: stale async results are dropped */
    ev_child child;           /* exit of pid */
    ev_timer timer;           /* ready timeout / stop timeout / backoff delay */
    ev_timer watchdog;        /* WATCHDOG=1 deadline */
    ev_timer health_timer;    /* next health check */
    sup_check check;          /* health check in flight */
    sup_pipe out, err;        /* captured stdout and stderr */
    double spawned_at;        /* ev_now of the spawn */
    double ready_at;          /* ev_now of READY (0 if not) */
    unsigned restarts;        /* automatic restarts since the supervisor started */
    int failures;             /* consecutive failed runs: the backoff exponent */
    double *starts;           /* ring of recent start times, start_limit_burst long */
    int n_starts;             /* starts recorded (<= burst) */
    int start_pos;            /* next slot in the ring */
    int health_fails;         /* consecutive failed health checks */
    int last_health;          /* 1 ok, 0 failing, -1 not checked */
    char *address;            /* SVC_ADDRESS= from the notify message, or NULL */
    char status[128];         /* last STATUS= text */
    int last_exit;            /* last wait status, -1 for none */
};

struct sup_service {
    sup *sup;                 /* owner */
    sup_manifest *m;          /* owned */
    sup_manifest *next_m;     /* changed by reload: swapped in once stopped (owned) */
    sup_instance *inst;       /* m->instances of them */
    int n_inst;
    bool want_up;             /* should be running */
    bool removing;            /* reload dropped it: freed once every instance stopped */
    bool started;             /* instances were started for the current want_up */
    int log_fd;               /* file sink, or -1 */
    unsigned long long log_size; /* bytes in the current file */
    char **tail;              /* ring of the last SUP_TAIL_LINES lines, owned */
    size_t tail_pos, tail_n;
    sup_service *next;
};

#define SUP_TAIL_LINES 1000

struct sup {
    struct ev_loop *loop;     /* the default loop */
    char *state_dir;          /* absolute */
    char *manifest_dir;
    char *bin_dir;            /* directory of the supervisor binary (commands resolve here first) */
    char *control_addr;       /* ipc://<state-dir>/supervisor.sock unless set */
    char notify_path[108];    /* our NOTIFY_SOCKET */
    int notify_fd;
    ev_io notify_io;
    char *sd_notify_socket;   /* systemd's NOTIFY_SOCKET when run under it, else NULL */
    ev_timer sd_watchdog;     /* WATCHDOG=1 to systemd */
    bool sd_ready_sent;
    bool under_systemd;       /* INVOCATION_ID set: log sink auto = journal */
    sup_service *services;    /* in manifest order */
    bool stopping;            /* shutting down: stop everything, then exit */
    int exit_code;
    ev_idle plan;             /* runs the start/stop plan after instances change state */
    ev_signal sighup;
    ev_async wake;            /* control commands or shutdown from the libsvc thread */
    void *control;            /* control.c state */
    void *health;             /* health.c rpc thread */
};

/* ---- sup.c ---------------------------------------------------------------- */

/* Builds services from set (taking its manifests) and starts them in order. */
int sup_apply_initial(sup *s, sup_manifest_set *set);

/* Starts every wanted service whose dependencies are all ready. */
void sup_schedule(sup *s);

/* Re-reads the manifest directory; on error (err filled) nothing changes. */
int sup_reload(sup *s, char *err, size_t errlen, char *summary, size_t sumlen);

/* Begins the shutdown: every service stops, dependants before their dependencies. */
void sup_shutdown(sup *s);

/* Called after an instance reached STOPPED/FAILED/READY: moves the plan on. */
void sup_changed(sup *s);

/* Service by name, or NULL. */
sup_service *sup_find(sup *s, const char *name);

/* Asks a service to start, stop or restart (svcctl). */
void sup_service_start(sup_service *v);
void sup_service_stop(sup_service *v);
void sup_service_restart(sup_service *v);

/* True when every instance is READY or UNHEALTHY. */
bool sup_service_up(const sup_service *v);

/* True when no instance has a process. */
bool sup_service_down(const sup_service *v);

/* ---- instance.c --------------------------------------------------------------- */

void sup_instance_init(sup_instance *i, sup_service *v, int index);
void sup_instance_release(sup_instance *i);
void sup_instance_start(sup_instance *i);
void sup_instance_stop(sup_instance *i, sup_kill_reason why);
void sup_instance_ready(sup_instance *i);            /* READY=1 from its pid */
void sup_instance_watchdog_ping(sup_instance *i);    /* WATCHDOG=1 from its pid */
void sup_instance_health(sup_instance *i, bool ok, const char *detail);
const char *sup_state_name(sup_state st);

/* Instance whose process is pid, or NULL. */
sup_instance *sup_instance_by_pid(sup *s, pid_t pid);

/* ---- notify.c ----------------------------------------------------------------- */

int sup_notify_open(sup *s);
void sup_notify_close(sup *s);
/* Sends text to systemd's notify socket, if the supervisor runs under systemd. */
void sup_sd_notify(sup *s, const char *text);

/* ---- health.c ----------------------------------------------------------------- */

int sup_health_init(sup *s);
void sup_health_release(sup *s);
void sup_health_arm(sup_instance *i);      /* start periodic checks (on READY) */
void sup_health_disarm(sup_instance *i);   /* stop checks and any check in flight */

/* ---- logs.c ------------------------------------------------------------------- */

/* Starts reading the parent ends of an instance's stdout/stderr pipes. */
void sup_logs_attach(sup_instance *i, int out_fd, int err_fd);
/* Reads what is left and closes both pipes. */
void sup_logs_detach(sup_instance *i);
/* A line from the supervisor itself about the instance (spawn, exit...). */
void sup_logs_event(sup_instance *i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sup_logs_release(sup_service *v);

/* ---- statedir.c --------------------------------------------------------------- */

int sup_statedir_open(sup *s, char *err, size_t errlen);   /* mkdir, lock */
void sup_statedir_kill_leftovers(sup *s);
void sup_statedir_record(sup_instance *i);
void sup_statedir_forget(sup_instance *i);

/* ---- control.c ---------------------------------------------------------------- */

int sup_control_start(sup *s, int argc, char **argv);
void sup_control_run_pending(sup *s);     /* on the main loop, from `wake` */
void sup_control_stop(sup *s);            /* at exit: stop the API thread */
/* A captured log line for followers (svcctl logs -f). */
void sup_control_log_line(sup *s, const char *service, const char *line);
/* The API thread's svc_run returned (SIGTERM/SIGINT, or it could not bind: *rc != 0). */
bool sup_control_finished(sup *s, int *rc);

/* Monotonic seconds (ev_now of the default loop). */
double sup_now(sup *s);

#endif
