/*
 * libsvc/codec.c — content types, and bodies in and out of either codec.
 * See svc/codec.h.  The JSON side lives in json_to_pb.c and pb_to_json.c.
 */
#include "svc/codec.h"
#include "svc/error.h"
#include "utf8.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *type;     /* media type, lowercase, without parameters */
    svc_codec_kind kind;  /* codec it selects */
} s_types[] = {
    { "", SVC_CODEC_PROTOBUF },
    { SVC_CT_PROTOBUF, SVC_CODEC_PROTOBUF },
    { "application/x-protobuf", SVC_CODEC_PROTOBUF },
    { "application/octet-stream", SVC_CODEC_PROTOBUF },
    { SVC_CT_JSON, SVC_CODEC_JSON },
    { NULL, SVC_CODEC_UNKNOWN },
};

svc_codec_kind svc_codec_for(const char *content_type)
{
    if (!content_type)
        return SVC_CODEC_PROTOBUF;
    const char *s = content_type;
    const char *e = strchr(s, ';');
    if (!e)
        e = s + strlen(s);
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    size_t n = (size_t)(e - s);
    for (int i = 0; s_types[i].type; i++)
        if (strlen(s_types[i].type) == n && strncasecmp(s_types[i].type, s, n) == 0)
            return s_types[i].kind;
    return SVC_CODEC_UNKNOWN;
}

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

/* Reads a varint at p[*i], at most 10 bytes.  Returns false if cut short. */
static bool s_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 70 && *i < len; shift += 7) {
        uint8_t b = p[(*i)++];
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/*
 * Walks the wire form of a message of type md, depth levels deep, and fails
 * when submessages nest deeper than SVC_CODEC_MAX_DEPTH, so that
 * protobuf-c's recursive unpacker cannot run out of stack.  Also fails on
 * damage protobuf-c would reject anyway.  Returns NULL or the reason.
 */
static const char *s_pb_scan(const ProtobufCMessageDescriptor *md, const uint8_t *p, size_t len,
                             int depth)
{
    if (depth > SVC_CODEC_MAX_DEPTH)
        return "nesting deeper than " S_STR(SVC_CODEC_MAX_DEPTH);
    size_t i = 0;
    while (i < len) {
        uint64_t tag, n;
        if (!s_varint(p, len, &i, &tag))
            return "truncated tag";
        /* protobuf-c takes field number 0 in an over-long tag; the spec does not. */
        if (tag >> 3 == 0 || tag >> 3 > 536870911)
            return "invalid field number";
        switch (tag & 7) {
        case 0:
            if (!s_varint(p, len, &i, &n))
                return "truncated varint";
            break;
        case 1:
        case 5:
            n = (tag & 7) == 1 ? 8 : 4;
            if (len - i < n)
                return "truncated fixed-size field";
            i += n;
            break;
        case 2: {
            if (!s_varint(p, len, &i, &n) || n > len - i)
                return "truncated length-delimited field";
            const ProtobufCFieldDescriptor *f = tag >> 3 <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(md, (unsigned)(tag >> 3)) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                const char *why = s_pb_scan(f->descriptor, p + i, (size_t)n, depth + 1);
                if (why)
                    return why;
            }
            i += (size_t)n;
            break;
        }
        default:
            return "unsupported wire type";
        }
    }
    return NULL;
}

static int s_pb_decode(const ProtobufCMessageDescriptor *desc, const void *buf, size_t len,
                       ProtobufCMessage **out, char *err, size_t errlen)
{
    static const uint8_t empty[1];
    const uint8_t *p = buf ? buf : empty;
    const char *why = s_pb_scan(desc, p, len, 1);
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "invalid protobuf for message \"%s\": %s", desc->name, why);
        return SVC_ECODEC;
    }
    *out = protobuf_c_message_unpack(desc, NULL, len, p);
    if (!*out) {
        if (err && errlen)
            snprintf(err, errlen,
                     "invalid protobuf for message \"%s\": malformed, or a required field is missing",
                     desc->name);
        return SVC_ECODEC;
    }
    return 0;
}

int svc_codec_decode(const char *content_type, const ProtobufCMessageDescriptor *desc,
                     const void *buf, size_t len, ProtobufCMessage **out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (out)
        *out = NULL;
    if (!out || !desc || (!buf && len)) {
        if (err && errlen)
            snprintf(err, errlen, "invalid argument");
        return SVC_EINVAL;
    }
    switch (svc_codec_for(content_type)) {
    case SVC_CODEC_JSON:
        return svc_json_to_pb(desc, buf, len, out, err, errlen);
    case SVC_CODEC_PROTOBUF:
        return s_pb_decode(desc, buf, len, out, err, errlen);
    default:
        if (err && errlen) {
            snprintf(err, errlen, "unsupported content type \"%.64s\"", content_type);
            svc__one_line(err);
        }
        return SVC_EINVAL;
    }
}

int svc_codec_encode(const char *content_type, const ProtobufCMessage *msg, void **buf,
                     size_t *len)
{
    *buf = NULL;
    *len = 0;
    if (!msg)
        return SVC_EINVAL;
    switch (svc_codec_for(content_type)) {
    case SVC_CODEC_JSON: {
        char *s = svc_pb_to_json(msg, len);
        if (!s)
            return -ENOMEM;
        *buf = s;
        return 0;
    }
    case SVC_CODEC_PROTOBUF: {
        size_t n = protobuf_c_message_get_packed_size(msg);
        uint8_t *p = malloc(n ? n : 1);
        if (!p)
            return -ENOMEM;
        *len = protobuf_c_message_pack(msg, p);
        *buf = p;
        return 0;
    }
    default:
        return SVC_EINVAL;
    }
}
