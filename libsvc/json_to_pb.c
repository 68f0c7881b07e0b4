/*
 * libsvc/json_to_pb.c — JSON text -> any protobuf-c message (svc_json_to_pb).
 * The mapping is described in svc/codec.h.
 *
 * jansson parses the text; the tree is walked against the descriptors.  The
 * message is built so that protobuf_c_message_free_unpacked() frees it at
 * every moment (every string, bytes, array and submessage malloc'd, repeated
 * counts raised only once an element is in place), which is how a partial
 * message is undone when a later field fails.
 */
#include "pbfield.h"
#include "svc/codec.h"
#include "svc/error.h"
#include "utf8.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when key is the lowerCamelCase json name of the .proto name. */
static bool s_is_json_name(const char *name, const char *key)
{
    bool upper = false;
    for (; *name; name++) {
        if (*name == '_') {
            upper = true;
            continue;
        }
        char c = *name;
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        upper = false;
        if (*key++ != c)
            return false;
    }
    return *key == '\0';
}

/* The field an input object key names: its .proto name or its json name. */
static const ProtobufCFieldDescriptor *s_field_by_key(const ProtobufCMessageDescriptor *md,
                                                      const char *key)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(md, key);
    if (f)
        return f;
    for (unsigned i = 0; i < md->n_fields; i++)
        if (strchr(md->fields[i].name, '_') && s_is_json_name(md->fields[i].name, key))
            return &md->fields[i];
    return NULL;
}

/* One step of the path from the root message to the value being decoded. */
typedef struct s_path {
    const struct s_path *up; /* enclosing step, NULL at the root message */
    const char *name;        /* field name, or map key when is_key; NULL for an index */
    bool is_key;             /* name is a map key, shown as [name] */
    size_t index;            /* array index when name is NULL */
} s_path;

/* State of one JSON decode. */
typedef struct s_dec {
    char *err;                                /* caller's buffer for the reason, or NULL */
    size_t errlen;                            /* its size in bytes */
    const ProtobufCMessageDescriptor *root;   /* type of the top-level message */
} s_dec;

/* Appends printf output to buf (cap bytes, *len used), truncating silently. */
__attribute__((format(printf, 4, 5)))
static void s_cat(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = (size_t)n < cap - *len ? *len + (size_t)n : cap - 1;
}

static void s_path_render(const s_path *p, char *buf, size_t cap, size_t *len)
{
    if (!p)
        return;
    s_path_render(p->up, buf, cap, len);
    if (p->is_key)
        s_cat(buf, cap, len, "[%.64s]", p->name);
    else if (p->name)
        s_cat(buf, cap, len, "%s%.64s", *len ? "." : "", p->name);
    else
        s_cat(buf, cap, len, "[%zu]", p->index);
}

/*
 * Writes `field "<path>": <what>` (or `message "<type>": <what>` at the
 * root) into the caller's buffer and returns code.
 */
__attribute__((format(printf, 4, 5)))
static int s_fail(const s_dec *d, int code, const s_path *p, const char *fmt, ...)
{
    if (!d->err || !d->errlen)
        return code;
    char where[320] = "", what[256];
    size_t n = 0;
    s_path_render(p, where, sizeof where, &n);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (n)
        snprintf(d->err, d->errlen, "field \"%s\": %s", where, what);
    else
        snprintf(d->err, d->errlen, "message \"%s\": %s", d->root->name, what);
    svc__one_line(d->err);
    return code;
}

static int s_oom(const s_dec *d, const s_path *p)
{
    return s_fail(d, -ENOMEM, p, "out of memory");
}

static const char *s_json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/*
 * Parses "-?[0-9]+" into sign and magnitude.  Returns 0, -1 when s is not
 * such a string, -2 when the magnitude does not fit 64 bits.
 */
static int s_parse_decimal(const char *s, bool *neg, uint64_t *mag)
{
    bool overflow = false;
    uint64_t v = 0;
    *neg = *s == '-';
    if (*neg)
        s++;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned digit = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - digit) / 10)
            overflow = true;
        else
            v = v * 10 + digit;
    }
    *mag = v;
    return overflow ? -2 : 0;
}

/* Range-checks sign and magnitude for integer type t and stores it in *out. */
static int s_int_store(const s_dec *d, const s_path *p, ProtobufCType t, bool neg, uint64_t mag,
                       const char *text, svc__pbvalue *out)
{
    uint64_t pos_max, neg_max;
    if (svc__pb_is_64bit(t)) {
        pos_max = svc__pb_is_signed(t) ? (uint64_t)INT64_MAX : UINT64_MAX;
        neg_max = svc__pb_is_signed(t) ? (uint64_t)INT64_MAX + 1 : 0;
    } else {
        pos_max = svc__pb_is_signed(t) ? (uint64_t)INT32_MAX : UINT32_MAX;
        neg_max = svc__pb_is_signed(t) ? (uint64_t)INT32_MAX + 1 : 0;
    }
    if (neg ? mag > neg_max : mag > pos_max)
        return s_fail(d, SVC_ECODEC, p, "value %.40s out of range for %s", text,
                      svc__pb_type_name(t));
    int64_t sv = !neg ? (int64_t)mag : mag == 0 ? 0 : -(int64_t)(mag - 1) - 1;
    if (svc__pb_is_64bit(t) && svc__pb_is_signed(t))
        out->i64 = sv;
    else if (svc__pb_is_64bit(t))
        out->u64 = mag;
    else if (svc__pb_is_signed(t))
        out->i32 = (int32_t)sv;
    else
        out->u32 = (uint32_t)mag;
    return 0;
}

/*
 * Integers: JSON integers, integral reals (1e3) and, for 64-bit types,
 * decimal strings.
 */
static int s_parse_int(const s_dec *d, const s_path *p, json_t *v, ProtobufCType t,
                       svc__pbvalue *out)
{
    char text[48];
    bool neg;
    uint64_t mag;
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        neg = x < 0;
        mag = neg ? (uint64_t)(-(x + 1)) + 1 : (uint64_t)x;
        snprintf(text, sizeof text, "%" JSON_INTEGER_FORMAT, x);
    } else if (json_is_real(v)) {
        double x = json_real_value(v);
        snprintf(text, sizeof text, "%.17g", x);
        if (!(x == trunc(x)))
            return s_fail(d, SVC_ECODEC, p, "expected integer, got fractional number %s", text);
        if (fabs(x) >= 18446744073709551616.0)
            return s_fail(d, SVC_ECODEC, p, "value %s out of range for %s", text,
                          svc__pb_type_name(t));
        neg = x < 0;
        mag = (uint64_t)fabs(x);
    } else if (json_is_string(v) && svc__pb_is_64bit(t)) {
        const char *s = json_string_value(v);
        int rc = s_parse_decimal(s, &neg, &mag);
        if (rc == -1)
            return s_fail(d, SVC_ECODEC, p, "expected integer, got string \"%.40s\"", s);
        if (rc == -2)
            return s_fail(d, SVC_ECODEC, p, "value %.40s out of range for %s", s,
                          svc__pb_type_name(t));
        snprintf(text, sizeof text, "%s", s);
    } else {
        return s_fail(d, SVC_ECODEC, p, "expected integer%s, got %s",
                      svc__pb_is_64bit(t) ? " or decimal string" : "", s_json_kind(v));
    }
    return s_int_store(d, p, t, neg, mag, text, out);
}

/* float/double: numbers, or "NaN", "Infinity", "-Infinity". */
static int s_parse_float(const s_dec *d, const s_path *p, json_t *v, ProtobufCType t,
                         svc__pbvalue *out)
{
    double x;
    if (json_is_integer(v)) {
        x = (double)json_integer_value(v);
    } else if (json_is_real(v)) {
        x = json_real_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            x = NAN;
        else if (strcmp(s, "Infinity") == 0)
            x = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            x = -INFINITY;
        else
            return s_fail(d, SVC_ECODEC, p, "expected number, got string \"%.40s\"", s);
    } else {
        return s_fail(d, SVC_ECODEC, p, "expected number, got %s", s_json_kind(v));
    }
    if (t == PROTOBUF_C_TYPE_DOUBLE) {
        out->d = x;
        return 0;
    }
    float f = (float)x;
    if (isinf(f) && !isinf(x))
        return s_fail(d, SVC_ECODEC, p, "value %g out of range for float", x);
    out->f = f;
    return 0;
}

static int s_parse_enum(const s_dec *d, const s_path *p, json_t *v,
                        const ProtobufCEnumDescriptor *ed, svc__pbvalue *out)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value_by_name(ed, s);
        if (!ev)
            return s_fail(d, SVC_ECODEC, p, "unknown value \"%.40s\" of enum \"%s\"", s, ed->name);
        out->i32 = ev->value;
        return 0;
    }
    if (!json_is_number(v))
        return s_fail(d, SVC_ECODEC, p, "expected enum name or number, got %s", s_json_kind(v));
    return s_parse_int(d, p, v, PROTOBUF_C_TYPE_ENUM, out);
}

static int s_parse_string(const s_dec *d, const s_path *p, json_t *v, svc__pbvalue *out)
{
    if (!json_is_string(v))
        return s_fail(d, SVC_ECODEC, p, "expected string, got %s", s_json_kind(v));
    size_t n = json_string_length(v);
    out->s = malloc(n + 1);
    if (!out->s)
        return s_oom(d, p);
    memcpy(out->s, json_string_value(v), n);
    out->s[n] = '\0';
    return 0;
}

/* The 6-bit value of a base64 character (standard or URL-safe), or -1. */
static int s_b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/*
 * Decodes standard or URL-safe base64, padded or not, into out.  Returns 0,
 * -EINVAL for bad base64, -ENOMEM.  EVP_DecodeBlock() neither checks where
 * '=' appears nor subtracts padding, so input is validated and normalised
 * to padded standard base64 first.
 */
static int s_base64_decode(const char *s, size_t n, ProtobufCBinaryData *out)
{
    const size_t chunk = (size_t)1 << 24; /* a multiple of 4 that fits an int */
    size_t pad = 0;
    while (n > 0 && s[n - 1] == '=' && pad < 2) {
        n--;
        pad++;
    }
    if ((pad && (n + pad) % 4 != 0) || n % 4 == 1)
        return -EINVAL;
    size_t total = n + (4 - n % 4) % 4;
    size_t outlen = total / 4 * 3 - (total - n);
    out->len = 0;
    out->data = NULL;
    if (n == 0)
        return 0;
    char *norm = malloc(total);
    uint8_t *data = malloc(total / 4 * 3);
    if (!norm || !data) {
        free(norm);
        free(data);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int v = s_b64_value(s[i]);
        if (v < 0)
            goto out_invalid;
        norm[i] = v == 62 ? '+' : v == 63 ? '/' : s[i];
    }
    memset(norm + n, '=', total - n);
    for (size_t i = 0; i < total; i += chunk) {
        int len = (int)(total - i < chunk ? total - i : chunk);
        if (EVP_DecodeBlock(data + i / 4 * 3, (const unsigned char *)norm + i, len) != len / 4 * 3)
            goto out_invalid;
    }
    free(norm);
    out->len = outlen;
    out->data = data;
    return 0;
out_invalid:
    free(norm);
    free(data);
    return -EINVAL;
}

static int s_parse_bytes(const s_dec *d, const s_path *p, json_t *v, svc__pbvalue *out)
{
    if (!json_is_string(v))
        return s_fail(d, SVC_ECODEC, p, "expected base64 string, got %s", s_json_kind(v));
    int rc = s_base64_decode(json_string_value(v), json_string_length(v), &out->bytes);
    if (rc == -ENOMEM)
        return s_oom(d, p);
    if (rc < 0)
        return s_fail(d, SVC_ECODEC, p, "invalid base64");
    return 0;
}

static int s_message_from_json(const s_dec *d, const ProtobufCMessageDescriptor *md, json_t *obj,
                               const s_path *p, int depth, ProtobufCMessage **out);

/*
 * Parses one singular value of f's type (a field, an array element or a map
 * value) into *out.  depth is that of the message holding f.  On failure
 * nothing is left allocated.
 */
static int s_value_from_json(const s_dec *d, const ProtobufCFieldDescriptor *f, json_t *v,
                             const s_path *p, int depth, svc__pbvalue *out)
{
    memset(out, 0, sizeof *out);
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        return s_parse_float(d, p, v, f->type, out);
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return s_fail(d, SVC_ECODEC, p, "expected boolean, got %s", s_json_kind(v));
        out->b = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM:
        return s_parse_enum(d, p, v, f->descriptor, out);
    case PROTOBUF_C_TYPE_STRING:
        return s_parse_string(d, p, v, out);
    case PROTOBUF_C_TYPE_BYTES:
        return s_parse_bytes(d, p, v, out);
    case PROTOBUF_C_TYPE_MESSAGE:
        return s_message_from_json(d, f->descriptor, v, p, depth + 1, &out->m);
    default:
        return s_parse_int(d, p, v, f->type, out);
    }
}

/* Parses a map key (always a JSON string) for key field kf. */
static int s_key_from_string(const s_dec *d, const s_path *p, const ProtobufCFieldDescriptor *kf,
                             const char *key, svc__pbvalue *out)
{
    memset(out, 0, sizeof *out);
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
        out->s = strdup(key);
        return out->s ? 0 : s_oom(d, p);
    }
    if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
            return s_fail(d, SVC_ECODEC, p, "map key must be \"true\" or \"false\"");
        out->b = key[0] == 't';
        return 0;
    }
    bool neg;
    uint64_t mag;
    int rc = s_parse_decimal(key, &neg, &mag);
    if (rc == -1)
        return s_fail(d, SVC_ECODEC, p, "map key is not a decimal %s", svc__pb_type_name(kf->type));
    if (rc == -2)
        return s_fail(d, SVC_ECODEC, p, "map key out of range for %s", svc__pb_type_name(kf->type));
    return s_int_store(d, p, kf->type, neg, mag, key, out);
}

/* Points f's repeated array at a new array of n elements, counted 0 so far. */
static void *s_repeated_alloc(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, size_t n)
{
    void *arr = calloc(n, svc__pb_type_size(f->type));
    if (arr) {
        *(void **)svc__pb_member(m, f->offset) = arr;
        *(size_t *)svc__pb_member(m, f->quantifier_offset) = 0;
    }
    return arr;
}

static int s_repeated_from_json(const s_dec *d, ProtobufCMessage *m,
                                const ProtobufCFieldDescriptor *f, json_t *v, const s_path *p,
                                int depth)
{
    if (!json_is_array(v))
        return s_fail(d, SVC_ECODEC, p, "expected array, got %s", s_json_kind(v));
    size_t n = json_array_size(v);
    if (n == 0)
        return 0;
    char *arr = s_repeated_alloc(m, f, n);
    if (!arr)
        return s_oom(d, p);
    size_t *count = svc__pb_member(m, f->quantifier_offset);
    size_t size = svc__pb_type_size(f->type);
    for (size_t i = 0; i < n; i++) {
        s_path ip = { p, NULL, false, i };
        svc__pbvalue val;
        int rc = s_value_from_json(d, f, json_array_get(v, i), &ip, depth, &val);
        if (rc)
            return rc;
        memcpy(arr + i * size, &val, size);
        (*count)++;
    }
    return 0;
}

/* Builds one map entry message {key, value} at depth. */
static int s_entry_from_json(const s_dec *d, const ProtobufCMessageDescriptor *emd, const char *key,
                             json_t *v, const s_path *p, int depth, ProtobufCMessage **out)
{
    const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field(emd, 1);
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field(emd, 2);
    svc__pbvalue val;
    int rc;
    if (depth > SVC_CODEC_MAX_DEPTH)
        return s_fail(d, SVC_ECODEC, p, "nesting deeper than %d", SVC_CODEC_MAX_DEPTH);
    ProtobufCMessage *e = malloc(emd->sizeof_message);
    if (!e)
        return s_oom(d, p);
    protobuf_c_message_init(emd, e);
    if ((rc = s_key_from_string(d, p, kf, key, &val)))
        goto out_free_entry;
    svc__pb_store(e, kf, &val);
    if ((rc = s_value_from_json(d, vf, v, p, depth, &val)))
        goto out_free_entry;
    svc__pb_store(e, vf, &val);
    *out = e;
    return 0;
out_free_entry:
    protobuf_c_message_free_unpacked(e, NULL);
    return rc;
}

static int s_map_from_json(const s_dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                           json_t *v, const s_path *p, int depth)
{
    if (!json_is_object(v))
        return s_fail(d, SVC_ECODEC, p, "expected object, got %s", s_json_kind(v));
    size_t n = json_object_size(v);
    if (n == 0)
        return 0;
    ProtobufCMessage **arr = s_repeated_alloc(m, f, n);
    if (!arr)
        return s_oom(d, p);
    size_t *count = svc__pb_member(m, f->quantifier_offset);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val) {
        s_path kp = { p, key, true, 0 };
        int rc = s_entry_from_json(d, f->descriptor, key, val, &kp, depth + 1, &arr[*count]);
        if (rc)
            return rc;
        (*count)++;
    }
    return 0;
}

/* Sets field f of m (depth deep) from the non-null JSON value v. */
static int s_field_from_json(const s_dec *d, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                             json_t *v, const s_path *p, int depth)
{
    if (svc__pb_is_map_field(f))
        return s_map_from_json(d, m, f, v, p, depth);
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return s_repeated_from_json(d, m, f, v, p, depth);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t set = *(const uint32_t *)svc__pb_member(m, f->quantifier_offset);
        if (set) {
            const ProtobufCFieldDescriptor *other =
                protobuf_c_message_descriptor_get_field(m->descriptor, set);
            return s_fail(d, SVC_ECODEC, p, "oneof already set by field \"%s\"",
                          other ? other->name : "?");
        }
    }
    svc__pbvalue val;
    int rc = s_value_from_json(d, f, v, p, depth, &val);
    if (rc == 0)
        svc__pb_store(m, f, &val);
    return rc;
}

/*
 * Builds a message of type md from the JSON object obj, depth levels deep
 * (the root is 1).  On failure *out is NULL and nothing is left allocated.
 */
static int s_message_from_json(const s_dec *d, const ProtobufCMessageDescriptor *md, json_t *obj,
                               const s_path *p, int depth, ProtobufCMessage **out)
{
    int rc = 0;
    *out = NULL;
    if (depth > SVC_CODEC_MAX_DEPTH)
        return s_fail(d, SVC_ECODEC, p, "nesting deeper than %d", SVC_CODEC_MAX_DEPTH);
    if (!json_is_object(obj))
        return s_fail(d, SVC_ECODEC, p, "expected object, got %s", s_json_kind(obj));
    /* seen[i]: 0 absent, 1 given as null, 2 given a value */
    unsigned char *seen = calloc(md->n_fields + 1, 1);
    if (!seen)
        return s_oom(d, p);
    ProtobufCMessage *m = malloc(md->sizeof_message);
    if (!m) {
        rc = s_oom(d, p);
        goto out_free_seen;
    }
    protobuf_c_message_init(md, m);

    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        s_path fp = { p, key, false, 0 };
        const ProtobufCFieldDescriptor *f = s_field_by_key(md, key);
        if (!f) {
            rc = s_fail(d, SVC_ECODEC, &fp, "unknown field of message \"%s\"", md->name);
            goto out_free_message;
        }
        size_t i = (size_t)(f - md->fields);
        if (seen[i]) {
            rc = s_fail(d, SVC_ECODEC, &fp, "duplicate of field \"%s\"", f->name);
            goto out_free_message;
        }
        seen[i] = json_is_null(v) ? 1 : 2;
        if (json_is_null(v))
            continue;
        if ((rc = s_field_from_json(d, m, f, v, &fp, depth)))
            goto out_free_message;
    }
    for (unsigned i = 0; i < md->n_fields; i++) {
        if (md->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && seen[i] != 2) {
            s_path fp = { p, md->fields[i].name, false, 0 };
            rc = s_fail(d, SVC_ECODEC, &fp, "required field missing");
            goto out_free_message;
        }
    }
    free(seen);
    *out = m;
    return 0;

out_free_message:
    protobuf_c_message_free_unpacked(m, NULL);
out_free_seen:
    free(seen);
    return rc;
}

int svc_json_to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                   ProtobufCMessage **out, char *err, size_t errlen)
{
    s_dec d = { err, errlen, desc };
    if (err && errlen)
        err[0] = '\0';
    if (!out || !desc || (!json && len)) {
        if (err && errlen)
            snprintf(err, errlen, "invalid argument");
        return SVC_EINVAL;
    }
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!root) {
        if (err && errlen) {
            snprintf(err, errlen, "invalid json at line %d, column %d: %s", je.line, je.column,
                     je.text);
            svc__one_line(err);
        }
        return SVC_ECODEC;
    }
    int rc = s_message_from_json(&d, desc, root, NULL, 1, out);
    json_decref(root);
    return rc;
}
