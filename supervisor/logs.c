/*
 * supervisor/logs.c — what instances write on stdout and stderr.
 *
 * Each instance's stdout and stderr are pipes read on the loop and cut into
 * lines (a line longer than 4 KiB is cut there).  A line is tagged
 *     2026-12-01T08:00:00.123Z greeter[1] err: <text>
 * and goes to the service's sink — the journal (SYSLOG_IDENTIFIER=service,
 * SVC_INSTANCE=n) or <state-dir>/logs/<service>.log, rotated at max_size into
 * .1 .. .<files> — and to an in-memory tail of SUP_TAIL_LINES lines that
 * `svcctl logs` reads and `svcctl logs -f` follows.  Lines of the
 * supervisor about an instance (started, exited, ...) are tagged "sup".
 */
#include "sup.h"
#include "svc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

static sup_log_sink s_sink(const sup_service *v)
{
    sup_log_sink k = v->m->log_sink;
    if (k == SUP_LOG_AUTO)
        k = v->sup->under_systemd ? SUP_LOG_JOURNAL : SUP_LOG_FILE;
    return k;
}

static void s_path(const sup_service *v, int gen, char *buf, size_t len)
{
    if (gen == 0)
        snprintf(buf, len, "%s/logs/%s.log", v->sup->state_dir, v->m->name);
    else
        snprintf(buf, len, "%s/logs/%s.log.%d", v->sup->state_dir, v->m->name, gen);
}

static void s_open_file(sup_service *v)
{
    char p[4096];
    s_path(v, 0, p, sizeof p);
    v->log_fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (v->log_fd < 0) {
        svc_warn("cannot open log file\tpath=\"%s\" error=\"%s\"", p, strerror(errno));
        return;
    }
    struct stat st;
    v->log_size = fstat(v->log_fd, &st) == 0 ? (unsigned long long)st.st_size : 0;
}

/* name.log -> name.log.1 -> ... -> name.log.<files>, dropping the oldest. */
static void s_rotate(sup_service *v)
{
    char from[4096], to[4096];
    close(v->log_fd);
    v->log_fd = -1;
    for (int g = v->m->log_files; g > 0; g--) {
        s_path(v, g - 1, from, sizeof from);
        s_path(v, g, to, sizeof to);
        if (rename(from, to) < 0 && errno != ENOENT)
            svc_warn("cannot rotate log file\tpath=\"%s\" error=\"%s\"", from, strerror(errno));
    }
    s_open_file(v);
}

static void s_write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

/* One tagged line to the sink, the tail and followers. */
static void s_emit(sup_instance *i, const char *stream, const char *text, size_t n)
{
    sup_service *v = i->svc;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char *line = NULL;
    int len = asprintf(&line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: %.*s\n",
                       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                       tm.tm_sec, ts.tv_nsec / 1000000, v->m->name, i->index, stream, (int)n, text);
    if (len < 0)
        return;
    switch (s_sink(v)) {
    case SUP_LOG_FILE:
        if (v->log_fd < 0)
            s_open_file(v);
        if (v->log_fd >= 0) {
            if (v->log_size + (unsigned long long)len > v->m->log_max_size && v->log_size > 0)
                s_rotate(v);
            if (v->log_fd >= 0) {
                s_write_all(v->log_fd, line, (size_t)len);
                v->log_size += (unsigned long long)len;
            }
        }
        break;
    case SUP_LOG_JOURNAL:
        sd_journal_send("MESSAGE=%.*s", (int)n, text, "PRIORITY=%d", strcmp(stream, "err") == 0 ? 4 : 6,
                        "SYSLOG_IDENTIFIER=%s", v->m->name, "SVC_INSTANCE=%d", i->index,
                        "SVC_STREAM=%s", stream, NULL);
        break;
    default:
        break;
    }
    line[len - 1] = 0;   /* the tail and followers get it without the newline */
    sup_control_log_line(v->sup, v->m->name, line);
    free(v->tail[v->tail_pos]);
    v->tail[v->tail_pos] = line;
    v->tail_pos = (v->tail_pos + 1) % SUP_TAIL_LINES;
    if (v->tail_n < SUP_TAIL_LINES)
        v->tail_n++;
}

/* Emits every complete line in the pipe's buffer; with flush, the rest too. */
static void s_lines(sup_pipe *p, bool flush)
{
    const char *tag = p->is_err ? "err" : "out";
    size_t start = 0;
    for (size_t k = 0; k < p->len; k++) {
        if (p->buf[k] == '\n') {
            s_emit(p->inst, tag, p->buf + start, k - start);
            start = k + 1;
        }
    }
    if (start == 0 && p->len == sizeof p->buf)
        flush = true;   /* a line longer than the buffer: cut it */
    if (flush && start < p->len) {
        s_emit(p->inst, tag, p->buf + start, p->len - start);
        start = p->len;
    }
    memmove(p->buf, p->buf + start, p->len - start);
    p->len -= start;
}

static void s_close_pipe(sup_pipe *p, struct ev_loop *loop)
{
    if (p->io.fd < 0)
        return;
    ev_io_stop(loop, &p->io);
    close(p->io.fd);
    p->io.fd = -1;
    s_lines(p, true);
}

/* Reads what is there; returns false at end of file or error. */
static bool s_read(sup_pipe *p)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(p->io.fd, p->buf + p->len, sizeof p->buf - p->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN;
        if (n == 0)
            return false;
        p->len += (size_t)n;
        s_lines(p, false);
    }
    return true;
}

static void s_on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    sup_pipe *p = w->data;
    if (!s_read(p))
        s_close_pipe(p, loop);
}

static void s_attach(sup_pipe *p, struct ev_loop *loop, int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    p->len = 0;
    ev_io_init(&p->io, s_on_read, fd, EV_READ);
    p->io.data = p;
    ev_io_start(loop, &p->io);
}

void sup_logs_attach(sup_instance *i, int out_fd, int err_fd)
{
    struct ev_loop *loop = i->svc->sup->loop;
    sup_logs_detach(i);
    s_attach(&i->out, loop, out_fd);
    s_attach(&i->err, loop, err_fd);
}

void sup_logs_detach(sup_instance *i)
{
    struct ev_loop *loop = i->svc->sup->loop;
    sup_pipe *ps[2] = { &i->out, &i->err };
    for (int k = 0; k < 2; k++) {
        sup_pipe *p = ps[k];
        if (!p->io.data || p->io.fd < 0)
            continue;
        s_read(p);
        s_close_pipe(p, loop);
    }
}

void sup_logs_event(sup_instance *i, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s_emit(i, "sup", buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void sup_logs_release(sup_service *v)
{
    if (v->log_fd >= 0)
        close(v->log_fd);
    v->log_fd = -1;
    for (size_t k = 0; v->tail && k < SUP_TAIL_LINES; k++) {
        free(v->tail[k]);
        v->tail[k] = NULL;
    }
    v->tail_n = v->tail_pos = 0;
}
