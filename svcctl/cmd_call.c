/* svcctl/cmd_call.c — call NAME ENDPOINT [JSON|-]. */
#include "svcctl.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STDIN (16 * 1024 * 1024)

/* Reads all of stdin (up to MAX_STDIN); NULL on error or when too large. */
static char *s_read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n == cap) {
            if (cap >= MAX_STDIN) {
                free(buf);
                return NULL;
            }
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
    }
    if (buf && ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

int ctl_call(const ctl_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        CTL_TARGET_OPTIONS,
        { "timeout", required_argument, NULL, 't' },
        { "trace", no_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const ctl_verb *v = ctl_verb_find("call");
    int code = 0;
    ctl_target tg = CTL_TARGET_INIT;
    int timeout = o->timeout_ms;
    bool trace = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        char *end;
        long t;
        switch (opt) {
        case 'm':
        case 'a':
        case 'v':
        case 'n':
            code = ctl_target_flag(&tg, "call", opt, optarg);
            break;
        case 'T':
            trace = true;
            break;
        case 't':
            t = strtol(optarg, &end, 10);
            if (end == optarg || *end || t <= 0 || t > 3600000) {
                ctl_err("call: invalid timeout \"%s\": want milliseconds from 1 to 3600000", optarg);
                code = EXIT_USAGE;
            }
            timeout = (int)t;
            break;
        case 'h':
            ctl_usage(v, 2, (char *[]){ argv[0], "--help" }, 0, 0, &code);
            svc_meta_release(&tg.meta);
            return code;
        default:
            ctl_err("call: %s \"%s\"", opt == ':' ? "option needs a value" : "unknown option",
                    argv[optind - 1]);
            code = EXIT_USAGE;
        }
        if (code) {
            svc_meta_release(&tg.meta);
            return code;
        }
    }
    /* getopt moved the positionals to the end: NAME ENDPOINT [JSON|-]. */
    char **pos = argv + optind - 1;
    int npos = argc - optind;
    if (ctl_usage(v, npos + 1, pos, 2, 3, &code)) {
        svc_meta_release(&tg.meta);
        return code;
    }
    pos++;

    size_t len;
    char *body;
    if (npos == 2 || strcmp(pos[2], "-") == 0) {
        body = s_read_stdin(&len);
        if (!body) {
            ctl_err("call: cannot read the request from stdin (or it exceeds 16 MiB)");
            svc_meta_release(&tg.meta);
            return 1;
        }
    } else {
        body = strdup(pos[2]);
        len = strlen(body);
    }
    json_error_t je;
    json_t *check = json_loadb(body, len, JSON_DECODE_ANY, &je);
    if (!check || !json_is_object(check)) {
        if (check)
            ctl_err("call: invalid JSON request: want an object, got %s",
                    json_is_array(check) ? "an array" : "a scalar");
        else
            ctl_err("call: invalid JSON request: %s (line %d, column %d)", je.text, je.line,
                    je.column);
        json_decref(check);
        free(body);
        svc_meta_release(&tg.meta);
        return EXIT_DATA;
    }
    json_decref(check);

    /* --trace: the edge's trace id is made here (or taken from --metadata), so it can be
     * printed before the call: stderr, so that stdout stays the answer. */
    if (trace) {
        const char *given = svc_meta_get(&tg.meta, SVC_META_TRACE_ID);
        char id[SVC_TRACE_ID_LEN + 1];
        if (!svc_trace_id_valid(given)) {
            svc_trace_new_id(id);
            svc_meta_set(&tg.meta, SVC_META_TRACE_ID, id);
            given = svc_meta_get(&tg.meta, SVC_META_TRACE_ID);
        }
        fprintf(stderr, "trace=%s\n", given);
        fflush(stderr);
    }
    svc_client *c = svc_client_new(o->registry);
    svc_call_opts co = { .timeout_ms = timeout, .address = tg.address, .content_type = SVC_CT_JSON,
                         .meta = &tg.meta, .version = tg.version, .node_meta = tg.node_meta };
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_client_call_raw(c, pos[0], pos[1], body, len, &co, &r, &err);
    if (rc < 0) {
        char *j = svc_error_json(&err);
        fprintf(stderr, "%s\n", j ? j : err.detail);
        free(j);
        code = 1;
    } else {
        fwrite(r.body ? r.body : "{}", 1, r.body ? r.len : 2, stdout);
        fputc('\n', stdout);
    }
    svc_reply_release(&r);
    svc_error_release(&err);
    svc_client_destroy(&c);
    free(body);
    svc_meta_release(&tg.meta);
    return code;
}
