/*
 * supervisor/statedir.c — the state directory, and no orphans across a crash.
 *
 *   <state-dir>/lock             flock'd by the running supervisor: one per directory
 *   <state-dir>/run/<svc>.<n>    "pid starttime stop_signal stop_timeout_ms" of each
 *                                running instance (written at spawn, removed at exit)
 *   <state-dir>/logs/            log files (logs.c)
 *   <state-dir>/notify.sock, supervisor.sock
 *
 * Instances also get PR_SET_PDEATHSIG (their stop signal), so when the
 * supervisor is SIGKILLed its children are told to stop at once.  What may
 * still run at the next start — an instance that ignores the signal, or
 * processes it left in its process group — is found from the records: a
 * record whose pid still runs with the same start time (so the pid was not
 * reused), or whose process group still has members (a group id cannot be
 * reused while the group exists), gets its stop signal, then SIGKILL after
 * its stop timeout, before anything new is started.  So the supervisor
 * always ends up with exactly the instances its manifests ask for.
 */
#include "sup.h"
#include "svc/error.h"
#include "svc/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int s_lock_fd = -1;

static int s_mkdir(const char *p, char *err, size_t errlen)
{
    if (mkdir(p, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot create directory \"%s\": %s", p, strerror(errno));
        return -errno;
    }
    return 0;
}

int sup_statedir_open(sup *s, char *err, size_t errlen)
{
    char p[PATH_MAX];
    if (s_mkdir(s->state_dir, err, errlen) < 0)
        return SVC_EINVAL;
    snprintf(p, sizeof p, "%s/run", s->state_dir);
    if (s_mkdir(p, err, errlen) < 0)
        return SVC_EINVAL;
    snprintf(p, sizeof p, "%s/logs", s->state_dir);
    if (s_mkdir(p, err, errlen) < 0)
        return SVC_EINVAL;
    snprintf(p, sizeof p, "%s/lock", s->state_dir);
    s_lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (s_lock_fd < 0) {
        snprintf(err, errlen, "cannot open \"%s\": %s", p, strerror(errno));
        return -errno;
    }
    if (flock(s_lock_fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(s_lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        snprintf(err, errlen, "state directory \"%s\" is in use by another supervisor (pid %s)",
                 s->state_dir, pid[0] ? pid : "?");
        return SVC_EEXIST;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(s_lock_fd, 0) < 0 || pwrite(s_lock_fd, buf, (size_t)n, 0) != n)
        svc_warn("cannot write pid to lock file\tpath=\"%s\"", p);
    return 0;
}

/* Field 22 of /proc/pid/stat (start time in clock ticks), and whether it is a zombie. */
static unsigned long long s_starttime(pid_t pid, bool *zombie)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *c = strrchr(buf, ')');   /* the command may hold spaces and parentheses */
    if (!c)
        return 0;
    char state = 0;
    unsigned long long st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
       utime stime cutime cstime priority nice threads itrealvalue starttime */
    if (sscanf(c + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
               &state, &st) != 2)
        return 0;
    if (zombie)
        *zombie = state == 'Z';
    return st;
}

/* Does process group pgid have a member that is not a zombie? (scans /proc) */
static bool s_group_alive(pid_t pgid)
{
    if (kill(-pgid, 0) < 0 && errno == ESRCH)
        return false;
    DIR *d = opendir("/proc");
    if (!d)
        return true;
    bool alive = false;
    struct dirent *e;
    while (!alive && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char p[64], buf[512];
        snprintf(p, sizeof p, "/proc/%ld/stat", pid);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = 0;
        char *c = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (c && sscanf(c + 2, "%c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z')
            alive = true;
    }
    closedir(d);
    return alive;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Stops one recorded leftover group; bounded by its stop timeout plus 2 s. */
static void s_stop_leftover(const char *name, pid_t pid, unsigned long long start, int sig, int stop_ms)
{
    bool zombie = false;
    unsigned long long now_start = s_starttime(pid, &zombie);
    bool leader = now_start != 0 && now_start == start && !zombie;
    if (now_start != 0 && now_start != start)
        return;   /* the pid was reused: the old group ended before that */
    if (!leader && !s_group_alive(pid))
        return;
    svc_warn("stopping a leftover instance from before a restart\trecord=%s pid=%d", name, (int)pid);
    killpg(pid, sig);
    killpg(pid, SIGCONT);
    int waited = 0;
    while (s_group_alive(pid) && waited < stop_ms) {
        s_sleep_ms(10);
        waited += 10;
    }
    if (s_group_alive(pid)) {
        svc_warn("leftover did not stop: SIGKILL\trecord=%s pid=%d", name, (int)pid);
        killpg(pid, SIGKILL);
        for (waited = 0; s_group_alive(pid) && waited < 2000; waited += 10)
            s_sleep_ms(10);
    }
}

void sup_statedir_kill_leftovers(sup *s)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/run", s->state_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX + 256], buf[256];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        int pid = 0, sig = SIGTERM, ms = 10000;
        unsigned long long start = 0;
        if (n > 0) {
            buf[n] = 0;
            if (sscanf(buf, "%d %llu %d %d", &pid, &start, &sig, &ms) != 4 || pid <= 1 ||
                sig <= 0 || sig >= NSIG || ms < 0 || ms > 86400000)
                svc_warn("ignoring a malformed pid record\tpath=\"%s\"", p);
            else
                s_stop_leftover(e->d_name, pid, start, sig, ms);
        }
        unlink(p);
    }
    closedir(d);
}

static void s_record_path(const sup_instance *i, char *buf, size_t len)
{
    snprintf(buf, len, "%s/run/%s.%d", i->svc->sup->state_dir, i->svc->m->name, i->index);
}

void sup_statedir_record(sup_instance *i)
{
    char p[PATH_MAX], tmp[PATH_MAX + 8], buf[128];
    s_record_path(i, p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    int n = snprintf(buf, sizeof buf, "%d %llu %d %d\n", (int)i->pid, s_starttime(i->pid, NULL),
                     i->svc->m->stop_signal, (int)(i->svc->m->stop_timeout * 1000));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0 || write(fd, buf, (size_t)n) != n || rename(tmp, p) < 0)
        svc_warn("cannot write pid record\tpath=\"%s\" error=\"%s\"", p, strerror(errno));
    if (fd >= 0)
        close(fd);
}

void sup_statedir_forget(sup_instance *i)
{
    char p[PATH_MAX];
    s_record_path(i, p, sizeof p);
    unlink(p);
}
