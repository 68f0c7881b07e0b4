/*
 * libsvc/stream.c — server side of streams (server-streaming for now).
 *
 * A stream is referenced by the server's list (until it ends or the client
 * cancels or vanishes), by the handler (until svc_stream_close), and by every
 * queued message of it.  The list is touched only by the loop thread.
 */
#include "service_int.h"
#include "svc/codec.h"
#include "svc/log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

svc_stream *svc__stream_new(svc_service *s, zmq_msg_t *route, uint64_t id,
                            const char *content_type, const ProtobufCMessageDescriptor *desc)
{
    svc_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->content_type = strdup(content_type && *content_type ? content_type : SVC_CT_PROTOBUF);
    if (!st->content_type) {
        free(st);
        return NULL;
    }
    st->svc = s;
    zmq_msg_init(&st->route);
    zmq_msg_copy(&st->route, route);
    st->id = id;
    st->desc = desc;
    atomic_init(&st->refs, 2);   /* the list's and the handler's */
    atomic_init(&st->closed, false);
    st->listed = true;
    st->next = s->streams;
    s->streams = st;
    s->n_streams++;
    return st;
}

void svc__stream_ref(svc_stream *st)
{
    atomic_fetch_add(&st->refs, 1);
}

void svc__stream_unref(svc_stream *st)
{
    if (atomic_fetch_sub(&st->refs, 1) == 1) {
        zmq_msg_close(&st->route);
        free(st->content_type);
        free(st);
    }
}

void svc__stream_unlist(svc_service *s, svc_stream *st)
{
    if (!st->listed)
        return;
    for (svc_stream **p = &s->streams; *p; p = &(*p)->next) {
        if (*p == st) {
            *p = st->next;
            st->listed = false;
            s->n_streams--;
            svc__stream_unref(st);
            return;
        }
    }
}

static bool s_same_route(zmq_msg_t *a, zmq_msg_t *b)
{
    return zmq_msg_size(a) == zmq_msg_size(b) &&
           memcmp(zmq_msg_data(a), zmq_msg_data(b), zmq_msg_size(a)) == 0;
}

void svc__streams_cancel(svc_service *s, zmq_msg_t *route, uint64_t id)
{
    for (svc_stream *st = s->streams; st; st = st->next) {
        if (st->id == id && s_same_route(&st->route, route)) {
            atomic_store(&st->closed, true);
            svc__stream_unlist(s, st);
            return;
        }
    }
}

/* Builds a STREAM_DATA or STREAM_CLOSE message of st. */
static svc__out *s_out(svc_stream *st, Svc__Kind kind, const void *body, size_t blen,
                       const svc_error *err)
{
    Svc__Header h = SVC__HEADER__INIT;
    Svc__Error e = SVC__ERROR__INIT;
    h.kind = kind;
    h.id = st->id;
    h.content_type = st->content_type;
    if (err && svc_error_isset(err)) {
        e.id = err->id ? err->id : st->svc->name;
        e.code = err->code;
        e.detail = err->detail ? err->detail : "";
        e.status = err->status ? err->status : (char *)svc_status_text(err->code);
        h.error = &e;
    }
    svc__out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    if (svc__pack_out(o, &st->route, &h, body, blen) < 0) {
        svc__out_free(o);
        return NULL;
    }
    svc__stream_ref(st);
    o->stream = st;
    o->ends_stream = kind == SVC__KIND__STREAM_CLOSE;
    return o;
}

svc__out *svc__stream_end_out(svc_stream *st, const svc_error *err)
{
    return s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, err);
}

int svc_stream_send(svc_stream *st, const ProtobufCMessage *msg)
{
    if (atomic_load(&st->closed))
        return SVC_ECLOSED;
    svc_service *s = st->svc;
    pthread_mutex_lock(&s->mu);
    size_t queued = s->n_out;
    pthread_mutex_unlock(&s->mu);
    if (queued >= SVC_MAX_QUEUED_OUT)
        return -EAGAIN;
    void *buf;
    size_t len;
    int rc = svc_codec_encode(st->content_type, msg, &buf, &len);
    if (rc < 0)
        return rc;
    if (len > SVC_WIRE_MAX_BODY) {
        free(buf);
        return SVC_ETOOBIG;
    }
    svc__out *o = s_out(st, SVC__KIND__STREAM_DATA, buf, len, NULL);
    free(buf);
    if (!o)
        return -ENOMEM;
    svc__server_push(s, o);
    return 0;
}

bool svc_stream_closed(const svc_stream *st)
{
    return atomic_load(&((svc_stream *)st)->closed);
}

void svc_stream_close(svc_stream **stp, const svc_error *err)
{
    svc_stream *st = *stp;
    if (!st)
        return;
    *stp = NULL;
    if (!atomic_load(&st->closed)) {
        svc__out *o = s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, err);
        if (o)
            svc__server_push(st->svc, o);
    }
    svc__stream_unref(st);
}

void svc__streams_end_all(svc_service *s)
{
    svc_error e = SVC_ERROR_INIT;
    svc_error_set(&e, s->name, 503, "service \"%s\" stopped", s->name);
    while (s->streams) {
        svc_stream *st = s->streams;
        svc__out *o = atomic_load(&st->closed) ? NULL : s_out(st, SVC__KIND__STREAM_CLOSE, NULL, 0, &e);
        if (o)
            svc__server_send(s, o);   /* unlists st, which may free it */
        if (s->streams == st)
            svc__stream_unlist(s, st);
    }
    svc_error_release(&e);
}
