/* libsvc/error.c — error codes and go-micro style errors.  See svc/error.h. */
#include "svc/error.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    int code;
    const char *text;
} s_errors[] = {
    { SVC_EPROTO, "malformed message from peer" },
    { SVC_ECODEC, "body could not be encoded or decoded" },
    { SVC_ETIMEOUT, "deadline exceeded" },
    { SVC_ENOTFOUND, "not found" },
    { SVC_EUNREACHABLE, "no node could be reached" },
    { SVC_EREMOTE, "remote error" },
    { SVC_ETOOBIG, "message too large" },
    { SVC_EINVAL, "invalid argument" },
    { SVC_ECLOSED, "closed" },
    { SVC_EEXIST, "already exists" },
    { 0, NULL },
};

const char *svc_strerror(int err)
{
    if (err == 0)
        return "ok";
    for (int i = 0; s_errors[i].text; i++)
        if (s_errors[i].code == err)
            return s_errors[i].text;
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

static const struct {
    int code;
    const char *text;
} s_status[] = {
    { 200, "OK" },
    { 400, "Bad Request" },
    { 401, "Unauthorized" },
    { 403, "Forbidden" },
    { 404, "Not Found" },
    { 405, "Method Not Allowed" },
    { 408, "Request Timeout" },
    { 409, "Conflict" },
    { 413, "Payload Too Large" },
    { 415, "Unsupported Media Type" },
    { 429, "Too Many Requests" },
    { 499, "Client Closed Request" },
    { 500, "Internal Server Error" },
    { 501, "Not Implemented" },
    { 502, "Bad Gateway" },
    { 503, "Service Unavailable" },
    { 504, "Gateway Timeout" },
    { 507, "Insufficient Storage" },
    { 0, NULL },
};

const char *svc_status_text(int code)
{
    for (int i = 0; s_status[i].text; i++)
        if (s_status[i].code == code)
            return s_status[i].text;
    return "Unknown";
}

void svc_error_release(svc_error *e)
{
    if (!e)
        return;
    free(e->id);
    free(e->detail);
    free(e->status);
    memset(e, 0, sizeof *e);
}

void svc_error_setv(svc_error *e, const char *id, int code, const char *fmt, va_list ap)
{
    char *detail = NULL;
    if (vasprintf(&detail, fmt, ap) < 0)
        detail = NULL;
    svc_error_release(e);
    e->id = strdup(id ? id : "");
    e->code = code;
    e->detail = detail;
    e->status = strdup(svc_status_text(code));
}

void svc_error_set(svc_error *e, const char *id, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    svc_error_setv(e, id, code, fmt, ap);
    va_end(ap);
}

void svc_error_copy(svc_error *dst, const svc_error *src)
{
    if (dst == src)
        return;
    svc_error_release(dst);
    dst->id = src->id ? strdup(src->id) : NULL;
    dst->code = src->code;
    dst->detail = src->detail ? strdup(src->detail) : NULL;
    dst->status = src->status ? strdup(src->status) : NULL;
}

bool svc_error_isset(const svc_error *e)
{
    return e && e->code != 0;
}

char *svc_error_json(const svc_error *e)
{
    json_t *o = json_pack("{s:s, s:i, s:s, s:s}",
                          "id", e->id ? e->id : "",
                          "code", e->code,
                          "detail", e->detail ? e->detail : "",
                          "status", e->status ? e->status : svc_status_text(e->code));
    if (!o)
        return NULL;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
