/*
 * supervisor — starts, watches and restarts the services of a host from
 * manifests (docs/supervisor.md, docs/manifest.md).
 *
 *   supervisor [--manifests DIR] [--state-dir DIR] [--address ADDR] [--check]
 *
 * Exit codes: 0 after a clean stop; 1 on a fatal error; 64 usage; 65 the
 * manifests are invalid (the first error is printed as FILE:LINE: reason).
 */
#include "sup.h"
#include "svc/svc.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define S_DEFAULT_MANIFESTS "/etc/svc/manifests"
#define S_DEFAULT_STATE     "/var/lib/svc"

double sup_now(sup *s) { return ev_now(s->loop); }

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: supervisor [options]\n"
            "\n"
            "Starts the services described by the manifests (one INI file per service) in\n"
            "dependency order, restarts them per policy, runs their health checks and\n"
            "watchdogs, captures their output, and serves svc.supervisor for svcctl.\n"
            "SIGTERM or SIGINT stops every service, dependants first; SIGHUP reloads.\n"
            "\n"
            "options (flag, else environment variable, else default):\n"
            "  --manifests DIR   SVC_MANIFESTS            default %s\n"
            "  --state-dir DIR   SVC_STATE_DIR            default %s (logs, pid records, sockets)\n"
            "  --address ADDR    SVC_SUPERVISOR_ADDRESS   control API, default ipc://STATE-DIR/supervisor.sock\n"
            "  --registry ADDR   SVC_REGISTRY_ADDRESS     where svc.supervisor registers (default %s)\n"
            "  --log-level LVL   SVC_LOG_LEVEL            debug|info|warn|error\n"
            "  --check           check the manifests, print the first error, exit 0 or 65\n"
            "  --help\n"
            "\n"
            "exit codes: 0 clean stop, 1 fatal error, 64 usage, 65 invalid manifests\n",
            S_DEFAULT_MANIFESTS, S_DEFAULT_STATE, SVC_DEFAULT_REGISTRY);
}

static const char *s_opt(const char *flag, const char *env, const char *def)
{
    const char *e = getenv(env);
    return flag ? flag : e && *e ? e : def;
}

static char *s_absolute(const char *p)
{
    char *r = realpath(p, NULL);
    if (r)
        return r;
    if (p[0] == '/')
        return strdup(p);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return strdup(p);
    char *a = NULL;
    return asprintf(&a, "%s/%s", cwd, p) < 0 ? NULL : a;
}

static char *s_bin_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return strdup("/usr/local/bin");
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    return strdup(exe);
}

static void s_on_wake(struct ev_loop *loop, ev_async *w, int revents)
{
    sup *s = w->data;
    int rc = 0;
    sup_control_run_pending(s);
    if (sup_control_finished(s, &rc) && !s->stopping) {
        if (rc != 0) {
            fprintf(stderr, "supervisor: the control API on \"%s\" failed; stopping\n", s->control_addr);
            s->exit_code = 1;
        }
        sup_shutdown(s);   /* SIGTERM/SIGINT reached the API thread's loop */
    }
}

static void s_on_hup(struct ev_loop *loop, ev_signal *w, int revents)
{
    sup *s = w->data;
    char err[1024], sum[4096];
    svc_info("reloading manifests (SIGHUP)\tdir=%s", s->manifest_dir);
    if (!s->stopping && sup_reload(s, err, sizeof err, sum, sizeof sum) < 0)
        fprintf(stderr, "supervisor: reload rejected: %s\n", err);
}

static void s_on_sd_watchdog(struct ev_loop *loop, ev_timer *w, int revents)
{
    sup_sd_notify(w->data, "WATCHDOG=1");
}

/* Keeps systemd's notify socket and watchdog for ourselves; children get ours. */
static void s_take_systemd_env(sup *s)
{
    uint64_t usec = 0;
    const char *ns = getenv("NOTIFY_SOCKET");
    if (ns && *ns)
        s->sd_notify_socket = strdup(ns);
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        ev_timer_init(&s->sd_watchdog, s_on_sd_watchdog, (double)usec / 2e6, (double)usec / 2e6);
        s->sd_watchdog.data = s;
        ev_timer_start(s->loop, &s->sd_watchdog);
    }
    s->under_systemd = getenv("INVOCATION_ID") != NULL;
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "manifests", required_argument, NULL, 'm' }, { "state-dir", required_argument, NULL, 's' },
        { "address", required_argument, NULL, 'a' },   { "registry", required_argument, NULL, 'r' },
        { "log-level", required_argument, NULL, 'l' }, { "check", no_argument, NULL, 'c' },
        { "help", no_argument, NULL, 'h' },            { NULL, 0, NULL, 0 },
    };
    const char *fm = NULL, *fs = NULL, *fa = NULL, *fr = NULL, *fl = NULL;
    bool check = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (c) {
        case 'm': fm = optarg; break;
        case 's': fs = optarg; break;
        case 'a': fa = optarg; break;
        case 'r': fr = optarg; break;
        case 'l': fl = optarg; break;
        case 'c': check = true; break;
        case 'h': s_usage(stdout); return 0;
        case ':':
            fprintf(stderr, "supervisor: option \"%s\" needs a value\n", argv[optind - 1]);
            return 64;
        default:
            fprintf(stderr, "supervisor: unknown option \"%s\" (see --help)\n", argv[optind - 1]);
            return 64;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "supervisor: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        return 64;
    }
    const char *level = s_opt(fl, "SVC_LOG_LEVEL", "info");
    if (svc_log_parse_level(level) < 0) {
        fprintf(stderr, "supervisor: invalid log level \"%s\": want debug, info, warn or error\n", level);
        return 64;
    }
    svc_log_set_name("supervisor");
    svc_log_set_level((svc_log_level)svc_log_parse_level(level));

    static sup s;
    s.notify_fd = -1;
    s.manifest_dir = s_absolute(s_opt(fm, "SVC_MANIFESTS", S_DEFAULT_MANIFESTS));
    char err[2048];
    sup_manifest_set set = { 0 };
    if (sup_manifest_load_dir(s.manifest_dir, &set, err, sizeof err) < 0) {
        fprintf(stderr, "supervisor: invalid manifests: %s\n", err);
        return 65;
    }
    if (check) {
        printf("%zu manifests ok in %s\n", set.n, s.manifest_dir);
        sup_manifest_set_release(&set);
        free(s.manifest_dir);
        return 0;
    }
    s.state_dir = s_absolute(s_opt(fs, "SVC_STATE_DIR", S_DEFAULT_STATE));
    s.bin_dir = s_bin_dir();
    const char *addr = s_opt(fa, "SVC_SUPERVISOR_ADDRESS", NULL);
    if (addr ? !(s.control_addr = strdup(addr)) : asprintf(&s.control_addr, "ipc://%s/supervisor.sock", s.state_dir) < 0)
        return 1;
    if (strncmp(s.control_addr, "ipc://", 6) != 0 && strncmp(s.control_addr, "tcp://", 6) != 0) {
        fprintf(stderr, "supervisor: invalid address \"%s\": want ipc://PATH or tcp://HOST:PORT\n", s.control_addr);
        return 64;
    }
    s.loop = ev_default_loop(EVFLAG_AUTO);
    if (!s.loop) {
        fprintf(stderr, "supervisor: cannot create the event loop\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    srand48((long)getpid() ^ (long)time(NULL));
    s_take_systemd_env(&s);
    if (sup_statedir_open(&s, err, sizeof err) < 0) {
        fprintf(stderr, "supervisor: %s\n", err);
        return 1;
    }
    sup_statedir_kill_leftovers(&s);
    /* Orphans of our instances (double forks) become our children and are reaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (sup_notify_open(&s) < 0 || sup_health_init(&s) < 0)
        return 1;
    ev_async_init(&s.wake, s_on_wake);
    s.wake.data = &s;
    ev_async_start(s.loop, &s.wake);
    ev_signal_init(&s.sighup, s_on_hup, SIGHUP);
    s.sighup.data = &s;
    ev_signal_start(s.loop, &s.sighup);

    const char *reg = s_opt(fr, "SVC_REGISTRY_ADDRESS", SVC_DEFAULT_REGISTRY);
    char *cargv[] = { "supervisor", "--registry", (char *)reg, "--workers", "2", "--log-level",
                      (char *)level, NULL };
    if (sup_control_start(&s, 7, cargv) < 0) {
        fprintf(stderr, "supervisor: cannot start the control API on \"%s\"\n", s.control_addr);
        return 1;
    }
    svc_info("supervising\tmanifests=%s state_dir=%s control=%s services=%zu", s.manifest_dir,
             s.state_dir, s.control_addr, set.n);
    if (sup_apply_initial(&s, &set) < 0) {
        fprintf(stderr, "supervisor: out of memory\n");
        return 1;
    }
    ev_run(s.loop, 0);

    svc_info("every service stopped");
    sup_control_stop(&s);
    sup_health_release(&s);
    sup_notify_close(&s);
    while (s.services) {
        sup_service *v = s.services;
        s.services = v->next;
        for (int k = 0; k < v->n_inst; k++)
            sup_instance_release(&v->inst[k]);
        free(v->inst);
        sup_logs_release(v);
        free(v->tail);
        sup_manifest_free(&v->m);
        sup_manifest_free(&v->next_m);
        free(v);
    }
    ev_async_stop(s.loop, &s.wake);
    ev_signal_stop(s.loop, &s.sighup);
    if (s.sd_watchdog.data)
        ev_timer_stop(s.loop, &s.sd_watchdog);
    free(s.state_dir);
    free(s.manifest_dir);
    free(s.bin_dir);
    free(s.control_addr);
    free(s.sd_notify_socket);
    return s.exit_code;
}
