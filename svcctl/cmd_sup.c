/*
 * svcctl/cmd_sup.c — ps, start, stop, restart, reload, logs: the supervisor's verbs.
 *
 * They call svc.supervisor (proto/supervisor.proto).  Where it is: the
 * --supervisor flag or $SVC_SUPERVISOR_ADDRESS; else the socket of the
 * state directory ($SVC_STATE_DIR, default /var/lib/svc)/supervisor.sock when
 * it exists; else by name through the registry.  The first two work while
 * registryd is down.
 */
#include "svcctl.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_DEFAULT_STATE "/var/lib/svc"

/* The control address to call, or NULL for "by name"; *buf may hold it. */
static const char *s_address(const ctl_opts *o, char *buf, size_t len)
{
    const char *a = o->supervisor ? o->supervisor : getenv("SVC_SUPERVISOR_ADDRESS");
    if (a && *a)
        return a;
    const char *dir = getenv("SVC_STATE_DIR");
    snprintf(buf, len, "%s/supervisor.sock", dir && *dir ? dir : S_DEFAULT_STATE);
    struct stat st;
    if (stat(buf, &st) == 0 && S_ISSOCK(st.st_mode)) {
        char path[4096];
        snprintf(path, sizeof path, "%s", buf);
        snprintf(buf, len, "ipc://%s", path);
        return buf;
    }
    return NULL;
}

/* Calls Supervisor.<method> with a JSON request; the parsed answer or NULL (printed). */
static json_t *s_call(const ctl_opts *o, const char *method, json_t *req, int *code)
{
    char where[4200];
    const char *addr = s_address(o, where, sizeof where);
    svc_client *c = svc_client_new(o->registry);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    svc_call_opts co = { .timeout_ms = o->timeout_ms ? o->timeout_ms : 10000, .retries = -1,
                         .address = addr, .content_type = SVC_CT_JSON };
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    char ep[64];
    snprintf(ep, sizeof ep, "Supervisor.%s", method);
    int rc = body ? svc_client_call_raw(c, "svc.supervisor", ep, body, strlen(body), &co, &r, &err)
                  : -ENOMEM;
    free(body);
    json_t *j = NULL;
    if (rc == 0) {
        json_error_t je;
        j = json_loadb(r.body ? r.body : "{}", r.body ? r.len : 2, 0, &je);
        if (!j)
            ctl_err("supervisor answered something that is not JSON: %s", je.text);
    } else if (rc == SVC_EUNREACHABLE || (rc == SVC_ENOTFOUND && !addr)) {
        ctl_err("supervisor is unreachable at %s%s%s: is it running? (set --supervisor or "
                "SVC_SUPERVISOR_ADDRESS)", addr ? "\"" : "", addr ? addr : "its registered address",
                addr ? "\"" : "");
    } else if (err.code >= 400 && err.code < 500 && err.detail) {
        ctl_err("%s", err.detail);
    } else {
        ctl_print_error("supervisor", &err);
    }
    *code = j ? 0 : 1;
    svc_reply_release(&r);
    svc_error_release(&err);
    svc_client_destroy(&c);
    return j;
}

static const char *s_str(json_t *o, const char *k)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : "";
}

/* An integer field, whether encoded as a JSON number or (64-bit) a string. */
static long long s_int(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v))
        return json_integer_value(v);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    return 0;
}

static void s_uptime(long long ms, char *buf, size_t len)
{
    long long s = ms / 1000;
    if (ms <= 0)
        snprintf(buf, len, "-");
    else if (s < 60)
        snprintf(buf, len, "%llds", s);
    else if (s < 3600)
        snprintf(buf, len, "%lldm%llds", s / 60, s % 60);
    else if (s < 86400)
        snprintf(buf, len, "%lldh%lldm", s / 3600, s % 3600 / 60);
    else
        snprintf(buf, len, "%lldd%lldh", s / 86400, s % 86400 / 3600);
}

int ctl_ps(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("ps"), argc, argv, 0, 1, &code))
        return code;
    json_t *ans = s_call(o, "Ps", json_pack("{s:s}", "service", argc > 1 ? argv[1] : ""), &code);
    if (!ans)
        return code;
    if (o->json) {
        ctl_print_json(ans);
        json_decref(ans);
        return 0;
    }
    const char *h[] = { "SERVICE", "INSTANCE", "PID", "STATE", "UPTIME", "RESTARTS", "HEALTH" };
    ctl_table *t = ctl_table_new(7, h);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(ans, "instances"), i, x) {
        char inst[16], pid[16], up[32], rs[16];
        snprintf(inst, sizeof inst, "%lld", s_int(x, "instance"));
        long long p = s_int(x, "pid");
        snprintf(pid, sizeof pid, p > 0 ? "%lld" : "-", p);
        s_uptime(s_int(x, "uptime_ms"), up, sizeof up);
        snprintf(rs, sizeof rs, "%lld", s_int(x, "restarts"));
        const char *health = s_str(x, "health");
        const char *row[] = { s_str(x, "service"), inst, pid, s_str(x, "state"), up, rs,
                              *health ? health : "-" };
        ctl_table_add(t, row);
    }
    ctl_table_print(t);
    ctl_table_free(t);
    json_decref(ans);
    return 0;
}

/* start / stop / restart NAME */
static int s_control(const ctl_opts *o, const char *verb, const char *method, int argc, char **argv,
                     const char *done)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find(verb), argc, argv, 1, 1, &code))
        return code;
    json_t *ans = s_call(o, method, json_pack("{s:s}", "service", argv[1]), &code);
    if (!ans)
        return code;
    if (o->json)
        ctl_print_json(ans);
    else
        printf("%s %s (%lld instances)\n", done, argv[1], s_int(ans, "instances"));
    json_decref(ans);
    return 0;
}

int ctl_start(const ctl_opts *o, int argc, char **argv)
{
    return s_control(o, "start", "Start", argc, argv, "starting");
}

int ctl_stop(const ctl_opts *o, int argc, char **argv)
{
    return s_control(o, "stop", "Stop", argc, argv, "stopping");
}

int ctl_restart(const ctl_opts *o, int argc, char **argv)
{
    return s_control(o, "restart", "Restart", argc, argv, "restarting");
}

int ctl_reload(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("reload"), argc, argv, 0, 0, &code))
        return code;
    json_t *ans = s_call(o, "Reload", json_object(), &code);
    if (!ans)
        return code;
    if (o->json) {
        ctl_print_json(ans);
    } else {
        const char *kinds[] = { "added", "removed", "changed" };
        int n = 0;
        for (int k = 0; k < 3; k++) {
            size_t i;
            json_t *v;
            json_array_foreach(json_object_get(ans, kinds[k]), i, v) {
                printf("%-8s %s\n", kinds[k], json_string_value(v));
                n++;
            }
        }
        if (n == 0)
            printf("no changes\n");
    }
    json_decref(ans);
    return 0;
}

static volatile sig_atomic_t s_stop;
static void s_on_signal(int sig) { s_stop = 1; }

static int s_follow(const ctl_opts *o, const char *name, long lines)
{
    char where[4200];
    const char *addr = s_address(o, where, sizeof where);
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    svc_client *c = svc_client_new(o->registry);
    json_t *req = json_pack("{s:s,s:I}", "service", name, "lines", (json_int_t)lines);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    svc_call_opts co = { .timeout_ms = o->timeout_ms ? o->timeout_ms : 10000, .address = addr,
                         .content_type = SVC_CT_JSON };
    svc_client_stream *st = NULL;
    svc_error err = SVC_ERROR_INIT;
    int code = 0;
    int rc = svc_client_stream_open(c, "svc.supervisor", "Supervisor.Follow", body, strlen(body),
                                    &co, &st, &err);
    free(body);
    if (rc < 0) {
        if (err.code >= 400 && err.code < 500 && err.detail)
            ctl_err("%s", err.detail);
        else
            ctl_print_error("logs", &err);
        code = 1;
        goto out;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (!s_stop) {
        svc_reply r = SVC_REPLY_INIT;
        rc = svc_client_stream_recv(st, 200, &r, &err);
        if (rc == SVC_ETIMEOUT)
            continue;
        if (rc == 1)
            break;
        if (rc < 0) {
            if (err.code >= 400 && err.code < 500 && err.detail)
                ctl_err("%s", err.detail);
            else
                ctl_print_error("logs", &err);
            code = 1;
            break;
        }
        json_error_t je;
        json_t *l = json_loadb(r.body ? r.body : "{}", r.body ? r.len : 2, 0, &je);
        svc_reply_release(&r);
        if (l)
            printf("%s\n", s_str(l, "line"));
        json_decref(l);
    }
out:
    svc_client_stream_close(&st);
    svc_error_release(&err);
    svc_client_destroy(&c);
    return code;
}

int ctl_logs(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    const ctl_verb *v = ctl_verb_find("logs");
    bool follow = false;
    long lines = 10;
    char *name = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            ctl_usage(v, 2, (char *[]){ argv[0], "--help", NULL }, 0, 0, &code);
            return 0;
        } else if (strcmp(argv[i], "-f") == 0 || strcmp(argv[i], "--follow") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "-n") == 0 || strcmp(argv[i], "--lines") == 0) {
            char *end = NULL;
            if (i + 1 < argc)
                lines = strtol(argv[++i], &end, 10);
            if (!end || *end || lines < 1 || lines > 1000) {
                ctl_err("logs: -n wants a number of lines from 1 to 1000");
                return EXIT_USAGE;
            }
        } else if (argv[i][0] == '-' || name) {
            ctl_err("logs: unexpected argument \"%s\"", argv[i]);
            ctl_usage(v, 1, argv, 1, 1, &code);
            return EXIT_USAGE;
        } else {
            name = argv[i];
        }
    }
    if (!name) {
        ctl_usage(v, 1, argv, 1, 1, &code);
        return code;
    }
    if (follow)
        return s_follow(o, name, lines);
    json_t *ans = s_call(o, "Logs", json_pack("{s:s,s:I}", "service", name, "lines", (json_int_t)lines),
                         &code);
    if (!ans)
        return code;
    if (o->json) {
        ctl_print_json(ans);
    } else {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(ans, "lines"), i, l)
            printf("%s\n", json_string_value(l));
    }
    json_decref(ans);
    return 0;
}
