/*
 * tests/fuzz/fuzz_pb.c — libFuzzer target for protobuf bodies.
 *
 * Feeds the input to svc_codec_decode() as application/protobuf for
 * testmsg.AllTypes.  Bad input must fail cleanly (SVC_ECODEC, *out NULL, a
 * one-line reason); deep nesting must be refused before protobuf-c recurses.
 * A message that decodes is written as JSON, and svc/codec.h promises that
 * text decodes again; written once more it must be the same text.  Any
 * violation abort()s.
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
    fprintf(stderr, "fuzz_pb: %s\n  first:  %s\n  second: %s\n", what, a ? a : "(null)",
            b ? b : "(null)");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const ProtobufCMessageDescriptor *desc = &testmsg__all_types__descriptor;
    ProtobufCMessage *m1 = (ProtobufCMessage *)&m1, *m2 = NULL;
    char err[256];
    int rc = svc_codec_decode(SVC_CT_PROTOBUF, desc, data, size, &m1, err, sizeof err);
    if (rc != 0) {
        if (rc != SVC_ECODEC || m1 != NULL || err[0] == '\0' || strchr(err, '\n'))
            s_die("failure breaks the contract", err, NULL);
        return 0;
    }
    char *a = svc_pb_to_json(m1, NULL);
    if (!a)
        s_die("svc_pb_to_json failed", NULL, NULL);
    if (svc_json_to_pb(desc, a, strlen(a), &m2, err, sizeof err) != 0)
        s_die("JSON of a decoded message does not decode", a, err);
    char *b = svc_pb_to_json(m2, NULL);
    if (!b || strcmp(a, b) != 0)
        s_die("JSON round trip changed the text", a, b);
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(m1, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    return 0;
}
