/* svcctl/cmd_registry.c — services, service NAME, watch [NAME]. */
#include "svcctl.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ctl_services(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("services"), argc, argv, 0, 0, &code))
        return code;
    svc_client *c = svc_client_new(o->registry);
    json_t *req = json_object();
    json_t *ans = ctl_registry(o, c, "Registry.ListServices", req, &code);
    json_decref(req);
    if (ans) {
        json_t *list = json_object_get(ans, "services");
        if (o->json) {
            ctl_print_json(list ? list : json_array());
        } else {
            /* One name per line, each once, though it may run in several versions. */
            const char *prev = "";
            size_t i;
            json_t *s;
            json_array_foreach(list, i, s) {
                const char *name = json_string_value(json_object_get(s, "name"));
                if (name && strcmp(name, prev) != 0)
                    printf("%s\n", name);
                prev = name ? name : prev;
            }
        }
        json_decref(ans);
    }
    svc_client_destroy(&c);
    return code;
}

static const char *s_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* Renders a metadata object as k=v,k=v (caller frees). */
static char *s_meta(json_t *m)
{
    size_t cap = 1, len = 0;
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) cap += strlen(k) + strlen(json_string_value(v) ?: "") + 2;
    char *out = calloc(1, cap);
    if (!out)
        return NULL;
    json_object_foreach(m, k, v) {
        len += (size_t)sprintf(out + len, "%s%s=%s", len ? "," : "", k, json_string_value(v) ?: "");
    }
    return out;
}

/* Prints the fields of a registry Value, indented by depth tabs. */
static void s_fields(json_t *value, int depth)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(value, "values"), i, f) {
        bool rep = json_is_true(json_object_get(f, "repeated"));
        json_t *sub = json_object_get(f, "values");
        printf("%*s%s %s%s", depth * 4, "", s_str(f, "name"), rep ? "[]" : "", s_str(f, "type"));
        if (json_array_size(sub)) {
            printf(" {\n");
            s_fields(f, depth + 1);
            printf("%*s}", depth * 4, "");
        }
        printf("\n");
    }
}

static void s_print_service(json_t *s)
{
    printf("service  %s\nversion  %s\n", s_str(s, "name"), s_str(s, "version"));
    char *sm = s_meta(json_object_get(s, "metadata"));
    if (sm && *sm)
        printf("metadata %s\n", sm);
    free(sm);
    printf("\n");
    const char *headers[] = { "ID", "ADDRESS", "METADATA" };
    ctl_table *t = ctl_table_new(3, headers);
    size_t i;
    json_t *n;
    json_array_foreach(json_object_get(s, "nodes"), i, n) {
        char *m = s_meta(json_object_get(n, "metadata"));
        const char *row[] = { s_str(n, "id"), s_str(n, "address"), m ? m : "" };
        ctl_table_add(t, row);
        free(m);
    }
    ctl_table_print(t);
    ctl_table_free(t);
    json_t *e;
    json_array_foreach(json_object_get(s, "endpoints"), i, e) {
        json_t *md = json_object_get(e, "metadata");
        const char *sub = json_string_value(json_object_get(md, "subscriber"));
        if (sub && strcmp(sub, "true") == 0) {   /* declared with svc_subscribe */
            const char *q = json_string_value(json_object_get(md, "queue"));
            printf("\nSubscriber: %s", s_str(e, "name"));
            if (q && *q)
                printf(" (queue %s)", q);
            printf("\n");
            continue;
        }
        const char *stream = json_string_value(json_object_get(md, "stream"));
        const char *kind = json_string_value(json_object_get(md, "stream_kind"));
        char tag[64] = "";
        if (stream && strcmp(stream, "true") == 0)
            snprintf(tag, sizeof tag, " (stream%s%.32s)", kind ? ": " : "", kind ? kind : "");
        printf("\nEndpoint: %s%s\n", s_str(e, "name"), tag);
        printf("Request: %s {\n", s_str(json_object_get(e, "request"), "type"));
        s_fields(json_object_get(e, "request"), 1);
        printf("}\nResponse: %s {\n", s_str(json_object_get(e, "response"), "type"));
        s_fields(json_object_get(e, "response"), 1);
        printf("}\n");
    }
}

int ctl_service(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("service"), argc, argv, 1, 1, &code))
        return code;
    svc_client *c = svc_client_new(o->registry);
    json_t *req = json_pack("{s:s}", "service", argv[1]);
    json_t *ans = ctl_registry(o, c, "Registry.GetService", req, &code);
    json_decref(req);
    if (ans) {
        json_t *list = json_object_get(ans, "services");
        if (o->json) {
            ctl_print_json(list);
        } else {
            size_t i;
            json_t *s;
            json_array_foreach(list, i, s) {
                if (i)
                    printf("\n");
                s_print_service(s);
            }
        }
        json_decref(ans);
    }
    svc_client_destroy(&c);
    return code;
}

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    s_stop = 1;
}

int ctl_watch(const ctl_opts *o, int argc, char **argv)
{
    int code = 0;
    if (ctl_usage(ctl_verb_find("watch"), argc, argv, 0, 1, &code))
        return code;
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    svc_client *c = svc_client_new(o->registry);
    json_t *req = json_pack("{s:s}", "service", argc > 1 ? argv[1] : "");
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    svc_call_opts co = { .timeout_ms = o->timeout_ms ? o->timeout_ms : 5000,
                         .address = svc_client_registry(c), .content_type = SVC_CT_JSON };
    svc_client_stream *st = NULL;
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_client_stream_open(c, "svc.registry", "Registry.Watch", body, strlen(body), &co,
                                    &st, &err);
    free(body);
    if (rc < 0) {
        ctl_print_error("watch", &err);
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
            ctl_print_error("watch", &err);
            code = 1;
            break;
        }
        json_error_t je;
        json_t *ev = json_loadb(r.body ? r.body : "{}", r.body ? r.len : 2, 0, &je);
        svc_reply_release(&r);
        if (!ev)
            continue;
        if (o->json) {
            char *line = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", line ? line : "{}");
            free(line);
        } else {
            json_t *s = json_object_get(ev, "service");
            json_t *n = json_array_get(json_object_get(s, "nodes"), 0);
            printf("%-6s %s %s %s %s\n", s_str(ev, "action"), s_str(s, "name"),
                   s_str(s, "version"), s_str(n, "id"), s_str(n, "address"));
        }
        json_decref(ev);
    }
out:
    svc_client_stream_close(&st);
    svc_error_release(&err);
    svc_client_destroy(&c);
    return code;
}
