/* libsvc/log.c — logfmt lines on stderr.  See svc/log.h. */
#include "svc/log.h"
#include "log_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char s_name[64];
static int s_level = -1;
static __thread const svc__logctx *s_ctx;   /* trace context of this thread's lines */

const svc__logctx *svc__logctx_set(const svc__logctx *c)
{
    const svc__logctx *prev = s_ctx;
    s_ctx = c;
    return prev;
}

const svc__logctx *svc__logctx_get(void)
{
    return s_ctx;
}

const char *svc_trace_current(void)
{
    return s_ctx && s_ctx->trace[0] ? s_ctx->trace : NULL;
}

void svc_log_set_name(const char *name)
{
    snprintf(s_name, sizeof s_name, "%s", name ? name : "");
}

void svc_log_set_level(svc_log_level level)
{
    s_level = (int)level;
}

int svc_log_parse_level(const char *s)
{
    static const char *names[] = { "debug", "info", "warn", "error", NULL };
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static int s_threshold(void)
{
    if (s_level < 0) {
        const char *env = getenv("SVC_LOG_LEVEL");
        int l = env ? svc_log_parse_level(env) : -1;
        s_level = l < 0 ? SVC_LOG_INFO : l;
    }
    return s_level;
}

/* Appends src to buf as a logfmt value, quoting and escaping. */
static size_t s_quote(char *buf, size_t pos, size_t cap, const char *src)
{
    if (pos < cap)
        buf[pos++] = '"';
    for (; *src && pos + 2 < cap; src++) {
        if (*src == '"' || *src == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = *src;
        } else if (*src == '\n') {
            buf[pos++] = '\\';
            buf[pos++] = 'n';
        } else {
            buf[pos++] = *src;
        }
    }
    if (pos < cap)
        buf[pos++] = '"';
    return pos;
}

void svc_log(svc_log_level level, const char *fmt, ...)
{
    static const char *names[] = { "debug", "info", "warn", "error" };
    if ((int)level < s_threshold())
        return;
    int saved = errno;

    char text[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char *fields = strchr(text, '\t');
    if (fields)
        *fields++ = '\0';

    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);

    char line[2048];
    size_t cap = sizeof line - 2;
    int n = snprintf(line, cap, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s svc=%s msg=",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level],
                     s_name[0] ? s_name : program_invocation_short_name);
    size_t pos = n < 0 ? 0 : (size_t)n;
    if (pos > cap)
        pos = cap;
    pos = s_quote(line, pos, cap, text);
    if (fields && pos < cap) {
        int m = snprintf(line + pos, cap - pos, " %s", fields);
        if (m > 0)
            pos += (size_t)m < cap - pos ? (size_t)m : cap - pos;
    }
    /* Ids in a context are validated ([0-9A-Za-z_-]): no quoting needed. */
    if (s_ctx && s_ctx->trace[0] && pos < cap) {
        int m = snprintf(line + pos, cap - pos, " trace=%s%s%s", s_ctx->trace,
                         s_ctx->span[0] ? " span=" : "", s_ctx->span);
        if (m > 0)
            pos += (size_t)m < cap - pos ? (size_t)m : cap - pos;
    }
    line[pos++] = '\n';
    ssize_t w;
    do
        w = write(STDERR_FILENO, line, pos);
    while (w < 0 && errno == EINTR);
    errno = saved;
}
