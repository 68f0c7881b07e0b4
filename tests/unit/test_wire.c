/* Unit tests: SVC01 frame decoding, header validation, sockets end to end. */
#include "testlib.h"

#include <stdlib.h>
#include <zmq.h>

#include "svc/error.h"
#include "svc/meta.h"
#include "wire.h"
#include "zctx.h"

static size_t s_pack(const Svc__Header *h, uint8_t *buf)
{
    return svc__header__pack(h, buf);
}

TEST(decode_valid_request)
{
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;
    h.id = 42;
    h.service = "greeter";
    h.endpoint = "Say.Hello";
    h.content_type = "application/json";
    h.timeout_ms = 250;
    uint8_t buf[256];
    size_t n = s_pack(&h, buf);
    Svc__Header *out = NULL;
    char err[128] = "";
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, n, &out, NULL, err, sizeof err), 0);
    CHECK(out != NULL);
    if (out) {
        CHECK_INT(out->id, 42);
        CHECK_STR(out->service, "greeter");
        CHECK_STR(out->endpoint, "Say.Hello");
        CHECK_INT(out->timeout_ms, 250);
    }
    svc__header_free(out);
}

TEST(decode_rejects_bad_signature)
{
    uint8_t buf[] = { 0x08, 0x01 };
    Svc__Header *out = NULL;
    char err[128] = "";
    CHECK_INT(svc__wire_decode("SVC02", 5, buf, sizeof buf, &out, NULL, err, sizeof err), SVC_EPROTO);
    CHECK(out == NULL);
    CHECK(strstr(err, "signature") != NULL);
    CHECK_INT(svc__wire_decode("SVC0", 4, buf, sizeof buf, &out, NULL, err, sizeof err), SVC_EPROTO);
}

TEST(decode_rejects_truncated_and_garbage_headers)
{
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;
    h.service = "greeter";
    h.endpoint = "Say.Hello";
    uint8_t buf[256];
    size_t n = s_pack(&h, buf);
    Svc__Header *out = NULL;
    char err[128] = "";
    /* Cut inside the endpoint string: the length prefix overruns. */
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, n - 3, &out, NULL, err, sizeof err), SVC_EPROTO);
    CHECK(out == NULL);
    uint8_t garbage[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    CHECK_INT(svc__wire_decode("SVC01", 5, garbage, sizeof garbage, &out, NULL, err, sizeof err), SVC_EPROTO);
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, 0, &out, NULL, err, sizeof err), SVC_EPROTO);
    CHECK(strstr(err, "empty header") != NULL);
}

TEST(decode_rejects_field_number_zero)
{
    /* A valid REQUEST plus an unknown field whose over-long tag 85 00 says
     * field 0: protobuf-c unpacks it, but it cannot be packed back. */
    static const uint8_t hdr[] = { 0x08, 0x01, 0x1a, 0x01, 's', 0x22, 0x03, 'A', '.', 'B',
                                   0x85, 0x00, 0x00, 0x00, 0xf1, 0x30 };
    Svc__Header *out = NULL;
    char err[128] = "";
    CHECK_INT(svc__wire_decode("SVC01", 5, hdr, sizeof hdr, &out, NULL, err, sizeof err), SVC_EPROTO);
    CHECK(out == NULL);
    CHECK_STR(err, "header has a field numbered 0");

    /* The same inside a metadata entry: 3a 0a = metadata, 10 bytes (found by fuzz_wire). */
    static const uint8_t nested[] = { 0x08, 0x05, 0x3a, 0x0a, 0x81, 0x00, 0, 0, 0, 0, 0, 0, 0, 0 };
    out = NULL;
    CHECK_INT(svc__wire_decode("SVC01", 5, nested, sizeof nested, &out, NULL, err, sizeof err),
              SVC_EPROTO);
    CHECK(out == NULL);
    CHECK_STR(err, "header has a field numbered 0");
}

TEST(decode_enforces_kind_rules)
{
    uint8_t buf[256];
    Svc__Header *out = NULL;
    char err[128] = "";
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__REQUEST;          /* no service/endpoint */
    h.id = 77;
    uint64_t id = 0;
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, s_pack(&h, buf), &out, &id, err, sizeof err), SVC_EPROTO);
    CHECK(strstr(err, "service or endpoint") != NULL);
    CHECK_INT(id, 77);   /* so the error answer can name the call */
    h.kind = SVC__KIND__ERROR;            /* no error */
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, s_pack(&h, buf), &out, NULL, err, sizeof err), SVC_EPROTO);
    h.kind = (Svc__Kind)99;               /* unknown kind */
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, s_pack(&h, buf), &out, NULL, err, sizeof err), SVC_EPROTO);
    CHECK(strstr(err, "unknown message kind") != NULL);
    h.kind = SVC__KIND__PING;
    CHECK_INT(svc__wire_decode("SVC01", 5, buf, s_pack(&h, buf), &out, NULL, err, sizeof err), 0);
    svc__header_free(out);
}

TEST(send_and_receive_over_inproc)
{
    void *a = svc__socket(ZMQ_DEALER), *b = svc__socket(ZMQ_ROUTER);
    CHECK(zmq_bind(b, "inproc://test-wire") == 0);
    CHECK(zmq_connect(a, "inproc://test-wire") == 0);
    Svc__Header h = SVC__HEADER__INIT;
    Svc__MetadataEntry e = SVC__METADATA_ENTRY__INIT, *ep = &e;
    e.key = "Micro-Trace-Id";
    e.value = "t1";
    h.kind = SVC__KIND__REQUEST;
    h.id = 7;
    h.service = "s";
    h.endpoint = "A.B";
    h.metadata = &ep;
    h.n_metadata = 1;
    CHECK_INT(svc__wire_send(a, NULL, &h, "body", 4, 0), 0);
    svc__msg m;
    char err[128];
    CHECK_INT(svc__msg_recv(b, &m, 0, true, err, sizeof err), 0);
    size_t len;
    const char *body = svc__msg_body(&m, &len);
    CHECK_INT(len, 4);
    CHECK(body && memcmp(body, "body", 4) == 0);
    CHECK_STR(svc__header_meta(m.hdr, "Micro-Trace-Id"), "t1");
    CHECK_INT(m.hdr->n_metadata, 1);
    CHECK(svc__header_meta(m.hdr, "missing") == NULL);
    CHECK(svc__msg_route(&m) != NULL);
    /* Answer through the route; the dealer receives it without one. */
    h.kind = SVC__KIND__RESPONSE;
    CHECK_INT(svc__wire_send(b, svc__msg_route(&m), &h, NULL, 0, 0), 0);
    svc__msg_close(&m);
    svc__msg r;
    CHECK_INT(svc__msg_recv(a, &r, 0, false, err, sizeof err), 0);
    CHECK_INT(r.hdr->kind, SVC__KIND__RESPONSE);
    CHECK(svc__msg_body(&r, &len) == NULL && len == 0);
    svc__msg_close(&r);
    svc__socket_close(&a);
    svc__socket_close(&b);
}

TEST(receive_rejects_malformed_multipart)
{
    void *a = svc__socket(ZMQ_DEALER), *b = svc__socket(ZMQ_ROUTER);
    CHECK(zmq_bind(b, "inproc://test-wire-bad") == 0);
    CHECK(zmq_connect(a, "inproc://test-wire-bad") == 0);
    svc__msg m;
    char err[128];
    /* Only a signature. */
    zmq_send(a, "SVC01", 5, 0);
    CHECK_INT(svc__msg_recv(b, &m, 0, true, err, sizeof err), SVC_EPROTO);
    CHECK(strstr(err, "no header") != NULL);
    svc__msg_close(&m);
    /* Too many frames (4 after the routing id): all are consumed, the next message is intact. */
    for (int i = 0; i < 4; i++)
        zmq_send(a, "x", 1, i < 3 ? ZMQ_SNDMORE : 0);
    CHECK_INT(svc__msg_recv(b, &m, 0, true, err, sizeof err), SVC_EPROTO);
    CHECK(strstr(err, "too many frames") != NULL);
    svc__msg_close(&m);
    Svc__Header h = SVC__HEADER__INIT;
    h.kind = SVC__KIND__PING;
    CHECK_INT(svc__wire_send(a, NULL, &h, NULL, 0, 0), 0);
    CHECK_INT(svc__msg_recv(b, &m, 0, true, err, sizeof err), 0);
    CHECK_INT(m.hdr->kind, SVC__KIND__PING);
    svc__msg_close(&m);
    CHECK_INT(svc__msg_recv(b, &m, ZMQ_DONTWAIT, true, err, sizeof err), -EAGAIN);
    svc__socket_close(&a);
    svc__socket_close(&b);
}

TEST(meta_set_get_replace_delete)
{
    svc_meta m = SVC_META_INIT;
    CHECK_INT(svc_meta_set(&m, "a", "1"), 0);
    CHECK_INT(svc_meta_set(&m, "b", "2"), 0);
    CHECK_INT(svc_meta_set(&m, "a", "3"), 0);
    CHECK_INT(m.n, 2);
    CHECK_STR(svc_meta_get(&m, "a"), "3");
    svc_meta_del(&m, "a");
    CHECK(svc_meta_get(&m, "a") == NULL);
    CHECK_STR(svc_meta_get(&m, "b"), "2");
    CHECK_INT(svc_meta_parse(&m, "zone=eu=1"), 0);
    CHECK_STR(svc_meta_get(&m, "zone"), "eu=1");
    CHECK_INT(svc_meta_parse(&m, "novalue"), SVC_EINVAL);
    CHECK_INT(svc_meta_parse(&m, "=x"), SVC_EINVAL);
    svc_meta_release(&m);
    CHECK_INT(m.n, 0);
}

TEST(errors_render_as_go_micro_json)
{
    svc_error e = SVC_ERROR_INIT;
    svc_error_set(&e, "greeter", 408, "call %s timed out", "Say.Hello");
    char *j = svc_error_json(&e);
    CHECK_STR(j, "{\"id\":\"greeter\",\"code\":408,\"detail\":\"call Say.Hello timed out\","
                 "\"status\":\"Request Timeout\"}");
    free(j);
    svc_error c = SVC_ERROR_INIT;
    svc_error_copy(&c, &e);
    CHECK_STR(c.detail, e.detail);
    svc_error_release(&e);
    svc_error_release(&e);   /* twice is safe */
    CHECK(!svc_error_isset(&e));
    svc_error_release(&c);
    CHECK_STR(svc_strerror(SVC_ETIMEOUT), "deadline exceeded");
    CHECK_STR(svc_strerror(-ENOENT), "No such file or directory");
    CHECK_STR(svc_status_text(503), "Service Unavailable");
}

static const test_case tests[] = {
    T(decode_valid_request),
    T(decode_rejects_bad_signature),
    T(decode_rejects_truncated_and_garbage_headers),
    T(decode_rejects_field_number_zero),
    T(decode_enforces_kind_rules),
    T(send_and_receive_over_inproc),
    T(receive_rejects_malformed_multipart),
    T(meta_set_get_replace_delete),
    T(errors_render_as_go_micro_json),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    return test_main("wire", tests, argc, argv);
}
