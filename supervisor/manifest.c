/*
 * supervisor/manifest.c — INI manifests: a line reader, one table of keys,
 * value parsers, and the checks across a set (names, dependencies, cycles).
 *
 * Grammar: lines; "#" or ";" first on a line starts a comment; "[section]";
 * "key = value" with blanks around both trimmed.  Keys marked repeatable
 * (environment, after) add to the list; any other key given twice is an
 * error.  Values may hold any byte but NUL and newline.
 */
#include "manifest.h"
#include "svc/error.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_MAX_FILE (1024 * 1024)   /* larger manifests are rejected */
#define S_MAX_LIST 1024            /* args, environment, after entries */

typedef struct s_parse {
    const char *file;
    int line;
    char *err;
    size_t errlen;
    sup_manifest *m;
    char **fp;                     /* fingerprint lines */
    size_t n_fp;
} s_parse;

typedef int (*s_setter)(s_parse *p, const char *value);

/* A manifest key: section, name, parser, and whether it may repeat. */
typedef struct s_key {
    const char *section;
    const char *name;
    s_setter set;
    bool repeat;
} s_key;

static int s_fail(s_parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fail(s_parse *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->file, p->line);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < p->errlen)
        vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return SVC_EINVAL;
}

/* ---- value parsers ------------------------------------------------------------- */

static int s_str(s_parse *p, char **dst, const char *v)
{
    if (!*v)
        return s_fail(p, "empty value");
    char *c = strdup(v);
    if (!c)
        return -ENOMEM;
    free(*dst);
    *dst = c;
    return 0;
}

static int s_int(s_parse *p, int *dst, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (end == v || *end || errno)
        return s_fail(p, "bad number \"%s\"", v);
    if (n < lo || n > hi)
        return s_fail(p, "number %ld out of range %ld..%ld", n, lo, hi);
    *dst = (int)n;
    return 0;
}

/* Seconds: "1.5", "1.5s", "250ms", "2m".  Range 0..1 day. */
static int s_secs(s_parse *p, double *dst, const char *v)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno || !isfinite(d) || !isdigit((unsigned char)v[0]))
        return s_fail(p, "bad number \"%s\": want seconds, e.g. 1.5, 250ms, 2s, 1m", v);
    if (strcmp(end, "ms") == 0)
        d /= 1000;
    else if (strcmp(end, "m") == 0)
        d *= 60;
    else if (*end && strcmp(end, "s") != 0)
        return s_fail(p, "bad number \"%s\": want seconds, e.g. 1.5, 250ms, 2s, 1m", v);
    if (d > 86400)
        return s_fail(p, "duration \"%s\" longer than a day", v);
    *dst = d;
    return 0;
}

static int s_double(s_parse *p, double *dst, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(d) || isspace((unsigned char)v[0]))
        return s_fail(p, "bad number \"%s\"", v);
    if (d < lo || d > hi)
        return s_fail(p, "number %s out of range %g..%g", v, lo, hi);
    *dst = d;
    return 0;
}

/* Bytes with an optional K, M or G suffix (powers of 1024). */
static int s_bytes(s_parse *p, unsigned long long *dst, const char *v)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)v[0]))
        return s_fail(p, "bad number \"%s\": want bytes, e.g. 4096, 64K, 10M", v);
    unsigned long long n = strtoull(v, &end, 10);
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end || errno || n > (ULLONG_MAX >> 31))
        return s_fail(p, "bad number \"%s\": want bytes, e.g. 4096, 64K, 10M", v);
    *dst = n << shift;
    return 0;
}

/* One value from a fixed set of names. */
typedef struct s_choice {
    const char *name;
    int value;
} s_choice;

static int s_enum(s_parse *p, int *dst, const char *v, const s_choice *c, const char *want)
{
    for (; c->name; c++) {
        if (strcmp(c->name, v) == 0) {
            *dst = c->value;
            return 0;
        }
    }
    return s_fail(p, "bad value \"%s\": want %s", v, want);
}

/*
 * Splits v into words as a shell would for plain words and '...' / "..."
 * quotes (backslash escapes the next character outside single quotes).
 * Appends them to *list.
 */
static int s_words(s_parse *p, char ***list, size_t *n, const char *v)
{
    const char *s = v;
    char *buf = malloc(strlen(v) + 1);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    while (*s) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        size_t len = 0;
        char q = 0;
        for (; *s && (q || (*s != ' ' && *s != '\t')); s++) {
            if (q && *s == q) {
                q = 0;
            } else if (!q && (*s == '\'' || *s == '"')) {
                q = *s;
            } else if (*s == '\\' && q != '\'' && s[1]) {
                buf[len++] = *++s;
            } else {
                buf[len++] = *s;
            }
        }
        if (q) {
            rc = s_fail(p, "unterminated %c quote", q);
            break;
        }
        if (*n >= S_MAX_LIST) {
            rc = s_fail(p, "more than %d entries", S_MAX_LIST);
            break;
        }
        char **nl = realloc(*list, (*n + 2) * sizeof *nl);
        if (!nl) {
            rc = -ENOMEM;
            break;
        }
        *list = nl;
        nl[*n] = strndup(buf, len);
        if (!nl[*n]) {
            rc = -ENOMEM;
            break;
        }
        nl[++*n] = NULL;
    }
    free(buf);
    return rc;
}

static bool s_name_ok(const char *n)
{
    if (!*n || strlen(n) > 64 || n[0] == '.' || n[0] == '-')
        return false;
    for (const char *c = n; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("._-", *c))
            return false;
    return true;
}

/* ---- setters, one per key ---------------------------------------------------------- */

#define M (p->m)

static int k_name(s_parse *p, const char *v)
{
    if (!s_name_ok(v))
        return s_fail(p, "bad service name \"%s\": want letters, digits, '.', '_' or '-'", v);
    return s_str(p, &M->name, v);
}

static int k_command(s_parse *p, const char *v) { return s_str(p, &M->command, v); }
static int k_args(s_parse *p, const char *v) { return s_words(p, &M->args, &M->n_args, v); }

static int k_instances(s_parse *p, const char *v)
{
    return s_int(p, &M->instances, v, 1, SUP_MAX_INSTANCES);
}

static int k_environment(s_parse *p, const char *v)
{
    size_t first = M->n_env;
    int rc = s_words(p, &M->env, &M->n_env, v);
    for (size_t i = first; rc == 0 && i < M->n_env; i++) {
        const char *e = M->env[i], *eq = strchr(e, '=');
        bool ok = eq && eq != e && (isalpha((unsigned char)e[0]) || e[0] == '_');
        for (const char *c = e; ok && c < eq; c++)
            ok = isalnum((unsigned char)*c) || *c == '_';
        if (!ok)
            rc = s_fail(p, "bad environment entry \"%s\": want NAME=VALUE", e);
    }
    return rc;
}

static int k_workdir(s_parse *p, const char *v)
{
    if (v[0] != '/')
        return s_fail(p, "working_directory \"%s\" is not an absolute path", v);
    return s_str(p, &M->workdir, v);
}

static int k_user(s_parse *p, const char *v) { return s_str(p, &M->user, v); }
static int k_group(s_parse *p, const char *v) { return s_str(p, &M->group, v); }

static int k_after(s_parse *p, const char *v)
{
    size_t first = M->n_after;
    int rc = s_words(p, &M->after, &M->n_after, v);
    if (rc < 0)
        return rc;
    int *l = realloc(M->after_lines, (M->n_after + 1) * sizeof *l);
    if (!l)
        return -ENOMEM;
    M->after_lines = l;
    for (size_t i = first; i < M->n_after; i++) {
        char *c = strchr(M->after[i], ',');   /* allow "a, b" and "a,b" */
        if (c && c[1] == 0)
            *c = 0;
        l[i] = p->line;
        if (!s_name_ok(M->after[i]))
            return s_fail(p, "bad service name \"%s\" in after", M->after[i]);
    }
    return 0;
}

static int k_ready(s_parse *p, const char *v)
{
    static const s_choice c[] = { { "none", SUP_READY_NONE }, { "notify", SUP_READY_NOTIFY }, { NULL, 0 } };
    int r = 0;
    int rc = s_enum(p, &r, v, c, "none or notify");
    if (rc == 0)
        M->ready = (sup_ready_kind)r;
    return rc;
}

static int k_ready_timeout(s_parse *p, const char *v) { return s_secs(p, &M->ready_timeout, v); }

static int k_watchdog(s_parse *p, const char *v)
{
    int rc = s_secs(p, &M->watchdog, v);
    if (rc == 0 && M->watchdog > 0 && M->watchdog < 0.01)
        return s_fail(p, "watchdog \"%s\" shorter than 10ms", v);
    return rc;
}

static const s_choice s_signals[] = {
    { "TERM", SIGTERM }, { "INT", SIGINT }, { "HUP", SIGHUP }, { "QUIT", SIGQUIT },
    { "KILL", SIGKILL }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "ABRT", SIGABRT },
    { NULL, 0 },
};

const char *sup_signal_name(int sig)
{
    for (const s_choice *c = s_signals; c->name; c++)
        if (c->value == sig)
            return c->name;
    return "?";
}

static int k_stop_signal(s_parse *p, const char *v)
{
    if (strncmp(v, "SIG", 3) == 0)
        v += 3;
    return s_enum(p, &M->stop_signal, v, s_signals, "TERM, INT, HUP, QUIT, KILL, USR1, USR2 or ABRT");
}

static int k_stop_timeout(s_parse *p, const char *v) { return s_secs(p, &M->stop_timeout, v); }

static int k_policy(s_parse *p, const char *v)
{
    static const s_choice c[] = { { "always", SUP_RESTART_ALWAYS }, { "on-failure", SUP_RESTART_ON_FAILURE },
                                  { "never", SUP_RESTART_NEVER }, { NULL, 0 } };
    int r = 0;
    int rc = s_enum(p, &r, v, c, "always, on-failure or never");
    if (rc == 0)
        M->restart = (sup_restart_policy)r;
    return rc;
}

static int k_b_initial(s_parse *p, const char *v) { return s_secs(p, &M->backoff_initial, v); }
static int k_b_factor(s_parse *p, const char *v) { return s_double(p, &M->backoff_factor, v, 1, 100); }
static int k_b_cap(s_parse *p, const char *v) { return s_secs(p, &M->backoff_cap, v); }
static int k_b_jitter(s_parse *p, const char *v) { return s_double(p, &M->backoff_jitter, v, 0, 1); }
static int k_burst(s_parse *p, const char *v) { return s_int(p, &M->start_limit_burst, v, 0, 100000); }
static int k_limit_iv(s_parse *p, const char *v) { return s_secs(p, &M->start_limit_interval, v); }

static int k_check(s_parse *p, const char *v)
{
    static const s_choice c[] = { { "none", SUP_HEALTH_NONE }, { "rpc", SUP_HEALTH_RPC },
                                  { "exec", SUP_HEALTH_EXEC }, { "tcp", SUP_HEALTH_TCP },
                                  { "http", SUP_HEALTH_HTTP }, { NULL, 0 } };
    int r = 0;
    int rc = s_enum(p, &r, v, c, "none, rpc, exec, tcp or http");
    if (rc == 0)
        M->health = (sup_health_kind)r;
    return rc;
}

static int k_target(s_parse *p, const char *v) { return s_str(p, &M->health_target, v); }
static int k_h_interval(s_parse *p, const char *v) { return s_secs(p, &M->health_interval, v); }
static int k_h_timeout(s_parse *p, const char *v) { return s_secs(p, &M->health_timeout, v); }
static int k_h_failures(s_parse *p, const char *v) { return s_int(p, &M->health_failures, v, 1, 1000); }

static int k_sink(s_parse *p, const char *v)
{
    static const s_choice c[] = { { "auto", SUP_LOG_AUTO }, { "file", SUP_LOG_FILE },
                                  { "journal", SUP_LOG_JOURNAL }, { "none", SUP_LOG_NONE }, { NULL, 0 } };
    int r = 0;
    int rc = s_enum(p, &r, v, c, "auto, file, journal or none");
    if (rc == 0)
        M->log_sink = (sup_log_sink)r;
    return rc;
}

static int k_max_size(s_parse *p, const char *v)
{
    int rc = s_bytes(p, &M->log_max_size, v);
    if (rc == 0 && M->log_max_size < 4096)
        return s_fail(p, "max_size \"%s\" below 4096 bytes", v);
    return rc;
}

static int k_files(s_parse *p, const char *v) { return s_int(p, &M->log_files, v, 1, 100); }

static int s_rlimit(s_parse *p, int resource, const char *v)
{
    unsigned long long n;
    if (strcmp(v, "infinity") == 0) {
        n = RLIM_INFINITY;
    } else {
        int rc = s_bytes(p, &n, v);
        if (rc < 0)
            return rc;
    }
    if (M->n_rlimits >= SUP_MAX_RLIMITS)
        return s_fail(p, "too many limits");
    M->rlimits[M->n_rlimits++] = (sup_rlimit){ resource, n };
    return 0;
}

static int k_nofile(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_NOFILE, v); }
static int k_core(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_CORE, v); }
static int k_nproc(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_NPROC, v); }
static int k_as(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_AS, v); }
static int k_stack(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_STACK, v); }
static int k_cpu(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_CPU, v); }
static int k_fsize(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_FSIZE, v); }
static int k_memlock(s_parse *p, const char *v) { return s_rlimit(p, RLIMIT_MEMLOCK, v); }

#undef M

/* Every key a manifest may hold (docs/manifest.md documents each). */
static const s_key s_keys[] = {
    { "service", "name", k_name, false },
    { "service", "command", k_command, false },
    { "service", "args", k_args, true },
    { "service", "instances", k_instances, false },
    { "service", "environment", k_environment, true },
    { "service", "working_directory", k_workdir, false },
    { "service", "user", k_user, false },
    { "service", "group", k_group, false },
    { "service", "after", k_after, true },
    { "service", "ready", k_ready, false },
    { "service", "ready_timeout", k_ready_timeout, false },
    { "service", "watchdog", k_watchdog, false },
    { "service", "stop_signal", k_stop_signal, false },
    { "service", "stop_timeout", k_stop_timeout, false },
    { "restart", "policy", k_policy, false },
    { "restart", "backoff_initial", k_b_initial, false },
    { "restart", "backoff_factor", k_b_factor, false },
    { "restart", "backoff_cap", k_b_cap, false },
    { "restart", "backoff_jitter", k_b_jitter, false },
    { "restart", "start_limit_burst", k_burst, false },
    { "restart", "start_limit_interval", k_limit_iv, false },
    { "health", "check", k_check, false },
    { "health", "command", k_target, false },
    { "health", "address", k_target, false },
    { "health", "url", k_target, false },
    { "health", "interval", k_h_interval, false },
    { "health", "timeout", k_h_timeout, false },
    { "health", "failures", k_h_failures, false },
    { "log", "sink", k_sink, false },
    { "log", "max_size", k_max_size, false },
    { "log", "files", k_files, false },
    { "limits", "nofile", k_nofile, false },
    { "limits", "core", k_core, false },
    { "limits", "nproc", k_nproc, false },
    { "limits", "as", k_as, false },
    { "limits", "stack", k_stack, false },
    { "limits", "cpu", k_cpu, false },
    { "limits", "fsize", k_fsize, false },
    { "limits", "memlock", k_memlock, false },
    { NULL, NULL, NULL, false },
};

#define S_N_KEYS (sizeof s_keys / sizeof s_keys[0] - 1)

static void s_defaults(sup_manifest *m)
{
    m->instances = 1;
    m->restart = SUP_RESTART_ON_FAILURE;
    m->backoff_initial = 0.1;
    m->backoff_factor = 2;
    m->backoff_cap = 30;
    m->backoff_jitter = 0;
    m->start_limit_burst = 5;
    m->start_limit_interval = 10;
    m->ready = SUP_READY_NONE;
    m->ready_timeout = 30;
    m->health_interval = 5;
    m->health_timeout = 2;
    m->health_failures = 3;
    m->stop_signal = SIGTERM;
    m->stop_timeout = 10;
    m->log_sink = SUP_LOG_AUTO;
    m->log_max_size = 10ULL << 20;
    m->log_files = 3;
}

static bool s_section_known(const char *s)
{
    for (const s_key *k = s_keys; k->name; k++)
        if (strcmp(k->section, s) == 0)
            return true;
    return false;
}

static int s_fp_add(s_parse *p, const char *sec, const char *key, const char *v)
{
    char **n = realloc(p->fp, (p->n_fp + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    p->fp = n;
    if (asprintf(&n[p->n_fp], "%s.%s=%s", sec, key, v) < 0)
        return -ENOMEM;
    p->n_fp++;
    return 0;
}

static int s_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Joins the sorted fingerprint lines into m->fingerprint. */
static int s_fp_finish(s_parse *p)
{
    qsort(p->fp, p->n_fp, sizeof *p->fp, s_cmp);
    size_t len = 1;
    for (size_t i = 0; i < p->n_fp; i++)
        len += strlen(p->fp[i]) + 1;
    char *f = malloc(len), *w = f;
    if (!f)
        return -ENOMEM;
    for (size_t i = 0; i < p->n_fp; i++)
        w += sprintf(w, "%s\n", p->fp[i]);
    *w = 0;
    p->m->fingerprint = f;
    return 0;
}

static char *s_trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

/* One "key = value" line inside section sec. */
static int s_key_line(s_parse *p, const char *sec, char *line, bool *seen)
{
    char *eq = strchr(line, '=');
    if (!eq)
        return s_fail(p, "expected \"key = value\", got \"%.60s\"", line);
    *eq = 0;
    char *key = s_trim(line), *val = s_trim(eq + 1);
    if (!*sec)
        return s_fail(p, "key \"%s\" outside a section (start with [service])", key);
    for (size_t i = 0; i < S_N_KEYS; i++) {
        const s_key *k = &s_keys[i];
        if (strcmp(k->section, sec) != 0 || strcmp(k->name, key) != 0)
            continue;
        if (seen[i] && !k->repeat)
            return s_fail(p, "key \"%s\" given twice in [%s]", key, sec);
        seen[i] = true;
        int rc = k->set(p, val);
        if (rc == -ENOMEM)
            return s_fail(p, "out of memory");
        return rc < 0 ? rc : s_fp_add(p, sec, key, val);
    }
    return s_fail(p, "unknown key \"%s\" in [%s]", key, sec);
}

/* Cross-key checks once the whole file is read. */
static int s_validate(s_parse *p)
{
    sup_manifest *m = p->m;
    p->line = m->line;
    if (!m->command)
        return s_fail(p, "missing key \"command\" in [service]");
    bool needs_target = m->health == SUP_HEALTH_EXEC || m->health == SUP_HEALTH_TCP ||
                        m->health == SUP_HEALTH_HTTP;
    if (needs_target && !m->health_target)
        return s_fail(p, "[health] check needs %s", m->health == SUP_HEALTH_EXEC ? "\"command\""
                                                    : m->health == SUP_HEALTH_TCP ? "\"address\""
                                                                                  : "\"url\"");
    if (m->health == SUP_HEALTH_HTTP && strncmp(m->health_target, "http://", 7) != 0)
        return s_fail(p, "[health] url \"%s\" does not start with http://", m->health_target);
    if (m->health == SUP_HEALTH_TCP && !strrchr(m->health_target, ':'))
        return s_fail(p, "[health] address \"%s\" is not HOST:PORT", m->health_target);
    if (m->health == SUP_HEALTH_RPC && m->ready != SUP_READY_NOTIFY)
        return s_fail(p, "[health] check = rpc needs ready = notify (the address comes with READY=1)");
    if (m->backoff_cap < m->backoff_initial)
        return s_fail(p, "[restart] backoff_cap is below backoff_initial");
    if (m->health_interval <= 0 && m->health != SUP_HEALTH_NONE)
        return s_fail(p, "[health] interval must be above 0");
    if (m->health_timeout <= 0)
        return s_fail(p, "[health] timeout must be above 0");
    if (m->start_limit_burst > 0 && m->start_limit_interval <= 0)
        return s_fail(p, "[restart] start_limit_interval must be above 0");
    for (size_t i = 0; i < m->n_after; i++)
        if (strcmp(m->after[i], m->name) == 0) {
            p->line = m->after_lines[i];
            return s_fail(p, "service \"%s\" cannot come after itself", m->name);
        }
    return 0;
}

/* The service name a file gives by default: its base name less ".ini". */
static char *s_default_name(const char *file)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    size_t n = strlen(b);
    if (n > 4 && strcmp(b + n - 4, ".ini") == 0)
        n -= 4;
    return strndup(b, n);
}

sup_manifest *sup_manifest_parse(const char *file, const char *text, size_t len, char *err,
                                 size_t errlen)
{
    s_parse p = { .file = file, .err = err, .errlen = errlen };
    bool seen[S_N_KEYS] = { false };
    char sec[32] = "";
    int rc = 0;
    p.m = calloc(1, sizeof *p.m);
    char *copy = malloc(len + 1);
    if (!p.m || !copy) {
        rc = s_fail(&p, "out of memory");
        goto out;
    }
    s_defaults(p.m);
    p.m->file = strdup(file);
    memcpy(copy, text, len);
    copy[len] = 0;
    if (strlen(copy) != len) {
        p.line = 1;
        for (size_t i = 0; i < len && text[i]; i++)
            p.line += text[i] == '\n';
        rc = s_fail(&p, "NUL byte in file");
        goto out;
    }
    bool any_section = false;
    for (char *line = copy, *next; line; line = next) {
        p.line++;
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        char *l = s_trim(line);
        if (!*l || *l == '#' || *l == ';')
            continue;
        if (*l == '[') {
            char *close = strchr(l, ']');
            if (!close || close[1])
                rc = s_fail(&p, "bad section header \"%.60s\"", l);
            else if ((*close = 0, !s_section_known(s_trim(l + 1))))
                rc = s_fail(&p, "unknown section [%s]: want service, restart, health, log or limits", s_trim(l + 1));
            if (rc < 0)
                goto out;
            snprintf(sec, sizeof sec, "%s", s_trim(l + 1));
            if (strcmp(sec, "service") == 0 && !any_section)
                p.m->line = p.line;
            any_section = true;
            continue;
        }
        if ((rc = s_key_line(&p, sec, l, seen)) < 0)
            goto out;
    }
    if (!p.m->line)
        p.m->line = 1;
    if (!p.m->name && !(p.m->name = s_default_name(file))) {
        rc = s_fail(&p, "out of memory");
        goto out;
    }
    if (!s_name_ok(p.m->name)) {
        p.line = p.m->line;
        rc = s_fail(&p, "bad service name \"%s\" (from the file name): set name = ...", p.m->name);
        goto out;
    }
    if ((rc = s_validate(&p)) < 0)
        goto out;
    if (!p.m->args && !(p.m->args = calloc(1, sizeof *p.m->args)))
        rc = s_fail(&p, "out of memory");
    else if (s_fp_finish(&p) < 0)
        rc = s_fail(&p, "out of memory");
out:
    for (size_t i = 0; i < p.n_fp; i++)
        free(p.fp[i]);
    free(p.fp);
    free(copy);
    if (rc < 0)
        sup_manifest_free(&p.m);
    return p.m;
}

sup_manifest *sup_manifest_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(S_MAX_FILE + 1);
    size_t len = 0;
    ssize_t n = 0;
    while (buf && len <= S_MAX_FILE &&
           ((n = read(fd, buf + len, S_MAX_FILE + 1 - len)) > 0 || (n < 0 && errno == EINTR)))
        if (n > 0)
            len += (size_t)n;
    int e = errno;
    close(fd);
    sup_manifest *m = NULL;
    if (!buf)
        snprintf(err, errlen, "%s: out of memory", path);
    else if (n < 0)
        snprintf(err, errlen, "%s: %s", path, strerror(e));
    else if (len > S_MAX_FILE)
        snprintf(err, errlen, "%s: larger than %d bytes", path, S_MAX_FILE);
    else
        m = sup_manifest_parse(path, buf, len, err, errlen);
    free(buf);
    return m;
}

static void s_free_list(char **l)
{
    for (char **p = l; p && *p; p++)
        free(*p);
    free(l);
}

void sup_manifest_free(sup_manifest **mp)
{
    sup_manifest *m = *mp;
    if (!m)
        return;
    *mp = NULL;
    free(m->name);
    free(m->file);
    free(m->command);
    s_free_list(m->args);
    s_free_list(m->env);
    free(m->workdir);
    free(m->user);
    free(m->group);
    s_free_list(m->after);
    free(m->after_lines);
    free(m->health_target);
    free(m->fingerprint);
    free(m);
}

/* ---- sets ---------------------------------------------------------------------- */

int sup_manifest_set_add(sup_manifest_set *set, sup_manifest **m)
{
    sup_manifest **n = realloc(set->items, (set->n + 1) * sizeof *n);
    if (!n) {
        sup_manifest_free(m);
        return -ENOMEM;
    }
    set->items = n;
    n[set->n++] = *m;
    *m = NULL;
    return 0;
}

sup_manifest *sup_manifest_set_find(const sup_manifest_set *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->items[i]->name, name) == 0)
            return set->items[i];
    return NULL;
}

void sup_manifest_set_release(sup_manifest_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        sup_manifest_free(&set->items[i]);
    free(set->items);
    set->items = NULL;
    set->n = 0;
}

/* Depth-first search for a cycle through m; colour: 0 new, 1 on the path, 2 done. */
static int s_cycle(const sup_manifest_set *set, size_t i, int *colour, size_t *path, size_t depth,
                   char *err, size_t errlen)
{
    colour[i] = 1;
    path[depth] = i;
    const sup_manifest *m = set->items[i];
    for (size_t d = 0; d < m->n_after; d++) {
        size_t j;
        for (j = 0; j < set->n && strcmp(set->items[j]->name, m->after[d]) != 0; j++)
            ;
        if (j == set->n)
            continue;
        if (colour[j] == 1) {
            size_t start = 0;
            while (path[start] != j)
                start++;
            int n = snprintf(err, errlen, "%s:%d: dependency cycle: ", m->file, m->after_lines[d]);
            for (size_t k = start; k <= depth && n >= 0 && (size_t)n < errlen; k++)
                n += snprintf(err + n, errlen - (size_t)n, "%s -> ", set->items[path[k]]->name);
            if (n >= 0 && (size_t)n < errlen)
                snprintf(err + n, errlen - (size_t)n, "%s", set->items[j]->name);
            return SVC_EINVAL;
        }
        if (colour[j] == 0) {
            int rc = s_cycle(set, j, colour, path, depth + 1, err, errlen);
            if (rc < 0)
                return rc;
        }
    }
    colour[i] = 2;
    return 0;
}

int sup_manifest_set_check(const sup_manifest_set *set, char *err, size_t errlen)
{
    for (size_t i = 0; i < set->n; i++) {
        const sup_manifest *m = set->items[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(set->items[j]->name, m->name) == 0) {
                snprintf(err, errlen, "%s:%d: service \"%s\" is already defined in %s", m->file,
                         m->line, m->name, set->items[j]->file);
                return SVC_EINVAL;
            }
        for (size_t d = 0; d < m->n_after; d++)
            if (!sup_manifest_set_find(set, m->after[d])) {
                snprintf(err, errlen, "%s:%d: unknown dependency \"%s\" in after", m->file,
                         m->after_lines[d], m->after[d]);
                return SVC_EINVAL;
            }
    }
    int *colour = calloc(set->n + 1, sizeof *colour);
    size_t *path = calloc(set->n + 1, sizeof *path);
    int rc = colour && path ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < set->n; i++)
        if (colour[i] == 0)
            rc = s_cycle(set, i, colour, path, 0, err, errlen);
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    free(colour);
    free(path);
    return rc;
}

static int s_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int sup_manifest_load_dir(const char *dir, sup_manifest_set *set, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 5 || strcmp(e->d_name + l - 4, ".ini") != 0)
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *nn);
        if (!nn || !(nn[n] = strdup(e->d_name))) {
            names = nn ? nn : names;
            rc = -ENOMEM;
            snprintf(err, errlen, "out of memory");
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (rc == 0)
        qsort(names, n, sizeof *names, s_name_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        sup_manifest *m = sup_manifest_load(path, err, errlen);
        if (!m)
            rc = SVC_EINVAL;
        else if (sup_manifest_set_add(set, &m) < 0)
            rc = -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc == 0)
        rc = sup_manifest_set_check(set, err, errlen);
    if (rc < 0)
        sup_manifest_set_release(set);
    return rc;
}
