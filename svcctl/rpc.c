/* svcctl/rpc.c — JSON calls to the registry and to single nodes. */
#include "svcctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_print_error(const char *what, const svc_error *e)
{
    char *j = svc_error_json(e);
    ctl_err("%s: %s", what, j ? j : (e->detail ? e->detail : "error"));
    free(j);
}

void ctl_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
}

static json_t *s_parse_answer(const svc_reply *r, svc_error *err)
{
    json_error_t je;
    json_t *j = json_loadb(r->body ? r->body : "{}", r->body ? r->len : 2, 0, &je);
    if (!j)
        svc_error_set(err, "svcctl", 500, "answer is not JSON: %s", je.text);
    return j;
}

json_t *ctl_registry(const ctl_opts *o, svc_client *c, const char *endpoint, json_t *req,
                     int *code)
{
    char *body = json_dumps(req, JSON_COMPACT);
    svc_call_opts co = { .timeout_ms = o->timeout_ms ? o->timeout_ms : 5000, .retries = -1,
                         .address = svc_client_registry(c), .content_type = SVC_CT_JSON };
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    int rc = svc_client_call_raw(c, "svc.registry", endpoint, body, strlen(body), &co, &r, &err);
    free(body);
    json_t *j = NULL;
    if (rc == 0)
        j = s_parse_answer(&r, &err);
    if (!j) {
        *code = 1;
        if (err.code == 404)
            ctl_err("%s", err.detail);
        else if (rc == SVC_EUNREACHABLE)
            ctl_err("registry at \"%s\" is unreachable: is registryd running? (set --registry "
                    "or SVC_REGISTRY_ADDRESS)", svc_client_registry(c));
        else
            ctl_print_error("registry", &err);
    }
    svc_reply_release(&r);
    svc_error_release(&err);
    return j;
}

json_t *ctl_call_node(const ctl_opts *o, svc_client *c, const char *service, const char *address,
                      const char *endpoint, svc_error *err)
{
    svc_call_opts co = { .timeout_ms = o->timeout_ms ? o->timeout_ms : 5000, .retries = -1,
                         .address = address, .content_type = SVC_CT_JSON };
    svc_reply r = SVC_REPLY_INIT;
    int rc = svc_client_call_raw(c, service, endpoint, "{}", 2, &co, &r, err);
    json_t *j = rc == 0 ? s_parse_answer(&r, err) : NULL;
    svc_reply_release(&r);
    return j;
}
