/* svcctl/cmd_debug.c — health NAME, stats NAME: ask every node directly. */
#include "svcctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct s_node {
    const char *id;       /* borrowed from the registry answer */
    const char *address;
    const char *version;
} s_node;

/* Every node of every version of name; *n of them, array malloc'd. */
static s_node *s_nodes(json_t *ans, size_t *n)
{
    size_t total = 0, i, j;
    json_t *s, *nd;
    json_array_foreach(json_object_get(ans, "services"), i, s)
        total += json_array_size(json_object_get(s, "nodes"));
    s_node *v = calloc(total ? total : 1, sizeof *v);
    *n = 0;
    if (!v)
        return NULL;
    json_array_foreach(json_object_get(ans, "services"), i, s) {
        json_array_foreach(json_object_get(s, "nodes"), j, nd) {
            v[*n].id = json_string_value(json_object_get(nd, "id"));
            v[*n].address = json_string_value(json_object_get(nd, "address"));
            v[*n].version = json_string_value(json_object_get(s, "version"));
            if (v[*n].id && v[*n].address)
                (*n)++;
        }
    }
    return v;
}

/* Prints the table (unless NULL: already printed) or, with -o json, the array; frees both. */
static void s_emit(const ctl_opts *o, ctl_table *t, json_t *all)
{
    if (o->json)
        ctl_print_json(all);
    else if (t)
        ctl_table_print(t);
    json_decref(all);
    ctl_table_free(t);
}

static json_t *s_lookup(const ctl_opts *o, svc_client *c, const char *name, int *code)
{
    json_t *req = json_pack("{s:s}", "service", name);
    json_t *ans = ctl_registry(o, c, "Registry.GetService", req, code);
    json_decref(req);
    return ans;
}

int ctl_health(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("health"), argc, argv, 1, 1, &code))
        return code;
    svc_client *c = svc_client_new(o->registry);
    json_t *ans = s_lookup(o, c, argv[1], &code);
    if (!ans)
        goto out;
    size_t n;
    s_node *nodes = s_nodes(ans, &n);
    const char *headers[] = { "NODE", "ADDRESS", "STATUS" };
    ctl_table *t = ctl_table_new(3, headers);
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++) {
        svc_error err = SVC_ERROR_INIT;
        json_t *h = ctl_call_node(o, c, argv[1], nodes[i].address, "Debug.Health", &err);
        const char *status = h ? json_string_value(json_object_get(h, "status")) : NULL;
        char failed[512];
        if (!status) {
            snprintf(failed, sizeof failed, "error: %s", err.detail ? err.detail : "no status");
            status = failed;
        }
        if (strcmp(status, "ok") != 0)
            code = 1;
        const char *row[] = { nodes[i].id, nodes[i].address, status };
        ctl_table_add(t, row);
        json_array_append_new(all, json_pack("{s:s, s:s, s:s}", "node", nodes[i].id, "address",
                                             nodes[i].address, "status", status));
        json_decref(h);
        svc_error_release(&err);
    }
    s_emit(o, t, all);
    free(nodes);
    json_decref(ans);
out:
    svc_client_destroy(&c);
    return code;
}

/* 64-bit integers arrive as JSON strings (proto3 JSON); accept numbers too. */
static unsigned long long s_u64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_integer(v))
        return (unsigned long long)json_integer_value(v);
    const char *s = json_string_value(v);
    return s ? strtoull(s, NULL, 10) : 0;
}

static void s_duration(char *buf, size_t len, unsigned long long s)
{
    if (s >= 86400)
        snprintf(buf, len, "%llud%lluh%llum", s / 86400, s % 86400 / 3600, s % 3600 / 60);
    else if (s >= 3600)
        snprintf(buf, len, "%lluh%llum%llus", s / 3600, s % 3600 / 60, s % 60);
    else if (s >= 60)
        snprintf(buf, len, "%llum%llus", s / 60, s % 60);
    else
        snprintf(buf, len, "%llus", s);
}

/* A latency in microseconds for a table cell: 850us, 51.2ms, 12.0s; "-" when none. */
static void s_latency(char *buf, size_t len, unsigned long long us)
{
    if (!us)
        snprintf(buf, len, "-");
    else if (us < 1000)
        snprintf(buf, len, "%lluus", us);
    else if (us < 10000000)
        snprintf(buf, len, "%.1fms", (double)us / 1e3);
    else
        snprintf(buf, len, "%.1fs", (double)us / 1e6);
}

/*
 * Under the node table: for each node that answered, a blank line, the
 * node id, and its endpoints (Debug.Stats "endpoints").
 */
static void s_print_endpoints(json_t *all)
{
    size_t i, j;
    json_t *st, *ep;
    json_array_foreach(all, i, st) {
        json_t *eps = json_object_get(st, "endpoints");
        if (!json_is_array(eps))
            continue;
        const char *headers[] = { "ENDPOINT", "REQUESTS", "ERRORS", "INFLIGHT", "P50", "P99" };
        ctl_table *t = ctl_table_new(6, headers);
        json_array_foreach(eps, j, ep) {
            char reqs[24], errs[24], infl[16], p50[24], p99[24];
            const char *name = json_string_value(json_object_get(ep, "name"));
            snprintf(reqs, sizeof reqs, "%llu", s_u64(ep, "requests"));
            snprintf(errs, sizeof errs, "%llu", s_u64(ep, "errors"));
            snprintf(infl, sizeof infl, "%llu", s_u64(ep, "inflight"));
            s_latency(p50, sizeof p50, s_u64(ep, "p50_us"));
            s_latency(p99, sizeof p99, s_u64(ep, "p99_us"));
            const char *row[] = { name ? name : "?", reqs, errs, infl, p50, p99 };
            ctl_table_add(t, row);
        }
        printf("\n%s\n", json_string_value(json_object_get(st, "node")));
        ctl_table_print(t);
        ctl_table_free(t);
    }
}

int ctl_stats(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("stats"), argc, argv, 1, 1, &code))
        return code;
    svc_client *c = svc_client_new(o->registry);
    json_t *ans = s_lookup(o, c, argv[1], &code);
    if (!ans)
        goto out;
    size_t n;
    s_node *nodes = s_nodes(ans, &n);
    const char *headers[] = { "NODE", "ADDRESS", "STARTED", "UPTIME", "MEMORY", "THREADS",
                              "REQUESTS", "ERRORS" };
    ctl_table *t = ctl_table_new(8, headers);
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++) {
        svc_error err = SVC_ERROR_INIT;
        json_t *st = ctl_call_node(o, c, argv[1], nodes[i].address, "Debug.Stats", &err);
        if (!st) {
            char failed[512];
            snprintf(failed, sizeof failed, "error: %s", err.detail ? err.detail : "no answer");
            const char *row[] = { nodes[i].id, nodes[i].address, failed, "", "", "", "", "" };
            ctl_table_add(t, row);
            json_array_append_new(all, json_pack("{s:s, s:s, s:s}", "node", nodes[i].id,
                                                 "address", nodes[i].address, "error", failed));
            code = 1;
            svc_error_release(&err);
            continue;
        }
        char started[32], uptime[32], mem[32], threads[16], reqs[24], errs[24];
        time_t when = (time_t)s_u64(st, "started");
        struct tm tm;
        localtime_r(&when, &tm);
        strftime(started, sizeof started, "%Y-%m-%d %H:%M:%S", &tm);
        s_duration(uptime, sizeof uptime, s_u64(st, "uptime"));
        snprintf(mem, sizeof mem, "%.1fMiB", (double)s_u64(st, "memory") / (1024.0 * 1024.0));
        snprintf(threads, sizeof threads, "%llu", s_u64(st, "threads"));
        snprintf(reqs, sizeof reqs, "%llu", s_u64(st, "requests"));
        snprintf(errs, sizeof errs, "%llu", s_u64(st, "errors"));
        const char *row[] = { nodes[i].id, nodes[i].address, started, uptime, mem, threads, reqs, errs };
        ctl_table_add(t, row);
        json_object_set_new(st, "node", json_string(nodes[i].id));
        json_object_set_new(st, "address", json_string(nodes[i].address));
        json_array_append_new(all, st);
        svc_error_release(&err);
    }
    if (!o->json) {
        ctl_table_print(t);
        ctl_table_free(t);
        t = NULL;
        s_print_endpoints(all);
    }
    s_emit(o, t, all);
    free(nodes);
    json_decref(ans);
out:
    svc_client_destroy(&c);
    return code;
}
