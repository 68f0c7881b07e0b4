/*
 * tests/fuzz/fuzz_json.c — libFuzzer target for svc_json_to_pb().
 *
 * Feeds the input as JSON for testmsg.AllTypes (every field kind).  Bad
 * input must fail cleanly: SVC_ECODEC, *out NULL, a one-line reason.  Input
 * that decodes must survive the round trips svc relies on:
 *   JSON -> message -> JSON (text A) -> message -> JSON (text B), A == B;
 *   message -> protobuf -> message -> JSON (text C), A == C.
 * Any violation abort()s.
 */
#include "svc/codec.h"
#include "svc/error.h"
#include "testmsg.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_die(const char *what, const char *a, const char *b)
{
    fprintf(stderr, "fuzz_json: %s\n  first:  %s\n  second: %s\n", what, a ? a : "(null)",
            b ? b : "(null)");
    abort();
}

/* Decodes JSON text that the codec itself wrote; it must be accepted. */
static ProtobufCMessage *s_reread(const char *json)
{
    const ProtobufCMessageDescriptor *desc = &testmsg__all_types__descriptor;
    ProtobufCMessage *m = NULL;
    char err[256];
    if (svc_json_to_pb(desc, json, strlen(json), &m, err, sizeof err) != 0)
        s_die("codec refused its own output", json, err);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc = &testmsg__all_types__descriptor;
    ProtobufCMessage *m1 = (ProtobufCMessage *)&m1;
    char err[256];
    int rc = svc_json_to_pb(desc, (const char *)data, size, &m1, err, sizeof err);
    if (rc != 0) {
        if (rc != SVC_ECODEC || m1 != NULL || err[0] == '\0' || strchr(err, '\n'))
            s_die("failure breaks the contract", err, NULL);
        return 0;
    }

    char *a = svc_pb_to_json(m1, NULL);
    if (!a)
        s_die("svc_pb_to_json failed", NULL, NULL);
    ProtobufCMessage *m2 = s_reread(a);
    char *b = svc_pb_to_json(m2, NULL);
    if (!b || strcmp(a, b) != 0)
        s_die("JSON round trip changed the text", a, b);

    void *bin = NULL;
    size_t len = 0;
    ProtobufCMessage *m3 = NULL;
    if (svc_codec_encode(SVC_CT_PROTOBUF, m1, &bin, &len) != 0)
        s_die("protobuf encode failed", a, NULL);
    if (svc_codec_decode(SVC_CT_PROTOBUF, desc, bin, len, &m3, err, sizeof err) != 0)
        s_die("protobuf decode of own output failed", a, err);
    char *c = svc_pb_to_json(m3, NULL);
    if (!c || strcmp(a, c) != 0)
        s_die("protobuf round trip changed the JSON", a, c);

    free(a);
    free(b);
    free(c);
    free(bin);
    protobuf_c_message_free_unpacked(m1, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m3, NULL);
    return 0;
}
