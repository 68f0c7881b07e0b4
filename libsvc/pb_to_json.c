/*
 * libsvc/pb_to_json.c — any protobuf-c message -> JSON text (svc_pb_to_json).
 * The mapping is described in svc/codec.h.
 *
 * The text is written directly rather than through a jansson tree: numbers
 * need the shortest form that reads back exactly, which jansson's fixed
 * %.17g does not give, and strings from the wire need ill-formed UTF-8
 * replaced rather than refused.
 */
#include "pbfield.h"
#include "svc/codec.h"
#include "utf8.h"

#include <inttypes.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growing output text; after a failed allocation every write is a no-op. */
typedef struct s_out {
    char *p;    /* the text, NUL-terminated while !oom */
    size_t len; /* bytes written, without the NUL */
    size_t cap; /* bytes allocated */
    bool oom;   /* an allocation failed; the text is incomplete */
} s_out;

static bool s_reserve(s_out *o, size_t n)
{
    if (o->oom)
        return false;
    if (o->cap - o->len > n)
        return true;
    size_t cap = o->cap ? o->cap : 256;
    while (cap - o->len <= n) {
        if (cap > SIZE_MAX / 2) {
            o->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(o->p, cap);
    if (!p) {
        o->oom = true;
        return false;
    }
    o->p = p;
    o->cap = cap;
    return true;
}

static void s_put(s_out *o, const char *s, size_t n)
{
    if (!s_reserve(o, n))
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void s_puts(s_out *o, const char *s)
{
    s_put(o, s, strlen(s));
}

static void s_putc(s_out *o, char c)
{
    s_put(o, &c, 1);
}

/* Writes s as a JSON string; ill-formed UTF-8 becomes U+FFFD. */
static void s_put_string(s_out *o, const char *str)
{
    const unsigned char *s = (const unsigned char *)(str ? str : "");
    size_t n = strlen((const char *)s);
    s_putc(o, '"');
    while (n > 0) {
        size_t run = 0;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        s_put(o, (const char *)s, run);
        s += run;
        n -= run;
        if (n == 0)
            break;
        unsigned char c = *s;
        size_t adv = 1;
        char esc[8];
        if (c == '"') {
            s_puts(o, "\\\"");
        } else if (c == '\\') {
            s_puts(o, "\\\\");
        } else if (c == '\n') {
            s_puts(o, "\\n");
        } else if (c == '\t') {
            s_puts(o, "\\t");
        } else if (c == '\r') {
            s_puts(o, "\\r");
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            s_puts(o, esc);
        } else if ((adv = svc__utf8_len(s, n)) == 0) {
            s_puts(o, "\xef\xbf\xbd");
            adv = 1;
        } else {
            s_put(o, (const char *)s, adv);
        }
        s += adv;
        n -= adv;
    }
    s_putc(o, '"');
}

/*
 * Writes x: NaN and infinities as strings, finite numbers in the first of
 * %.6g..%.9g (float) or %.15g..%.17g (double) that reads back as x, with '.'
 * whatever the locale.  %g drops trailing zeros, so that is the shortest
 * form for all but subnormal floats.  -0 is "-0.0", so that it does not
 * read back as the integer 0, unless signed_zero is false.
 */
static void s_put_real(s_out *o, double x, bool is_float, bool signed_zero)
{
    char buf[40];
    if (isnan(x)) {
        s_puts(o, "\"NaN\"");
        return;
    }
    if (isinf(x)) {
        s_puts(o, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
        return;
    }
    if (x == 0) {
        s_puts(o, signbit(x) && signed_zero ? "-0.0" : "0");
        return;
    }
    bool exact = false;
    for (int prec = is_float ? 6 : 15; prec <= (is_float ? 9 : 17) && !exact; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        double y = strtod(buf, NULL);
        exact = is_float ? (float)y == (float)x : y == x;
    }
    if (!exact) /* float text that reads back differently as double then float */
        snprintf(buf, sizeof buf, "%.17g", x);
    for (char *c = buf; *c; c++)
        if (*c == ',')
            *c = '.';
    s_puts(o, buf);
}

static void s_put_base64(s_out *o, const ProtobufCBinaryData *b)
{
    const size_t chunk = 3 * 4096;
    s_putc(o, '"');
    for (size_t i = 0; i < b->len; i += chunk) {
        size_t n = b->len - i < chunk ? b->len - i : chunk;
        if (!s_reserve(o, (n + 2) / 3 * 4 + 1))
            return;
        int w = EVP_EncodeBlock((unsigned char *)o->p + o->len, b->data + i, (int)n);
        o->len += (size_t)w;
    }
    s_putc(o, '"');
}

static void s_put_message(s_out *o, const ProtobufCMessage *m);

/*
 * Writes a message of type md with nothing set: what a map entry without a
 * value (or a NULL array element) reads back as.
 */
static void s_put_empty(s_out *o, const ProtobufCMessageDescriptor *md)
{
    ProtobufCMessage *m = malloc(md->sizeof_message);
    if (!m) {
        o->oom = true;
        return;
    }
    protobuf_c_message_init(md, m);
    s_put_message(o, m);
    free(m);
}

/* Writes an integer of type t, quoted when quote is set. */
static void s_put_int(s_out *o, ProtobufCType t, const svc__pbvalue *v, bool quote)
{
    char buf[32];
    const char *q = quote ? "\"" : "";
    if (svc__pb_is_64bit(t) && svc__pb_is_signed(t))
        snprintf(buf, sizeof buf, "%s%" PRId64 "%s", q, v->i64, q);
    else if (svc__pb_is_64bit(t))
        snprintf(buf, sizeof buf, "%s%" PRIu64 "%s", q, v->u64, q);
    else if (svc__pb_is_signed(t))
        snprintf(buf, sizeof buf, "%s%" PRId32 "%s", q, v->i32, q);
    else
        snprintf(buf, sizeof buf, "%s%" PRIu32 "%s", q, v->u32, q);
    s_puts(o, buf);
}

/*
 * Writes one value of f's type stored at p.  A proto3 singular float or
 * double holding -0 is written as 0: protobuf-c's packer takes -0 for the
 * default and leaves it off the wire, and the JSON should say what the
 * protobuf form says.
 */
static void s_put_value(s_out *o, const ProtobufCFieldDescriptor *f, const void *p)
{
    bool signed_zero =
        f->label != PROTOBUF_C_LABEL_NONE || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
    svc__pbvalue v;
    memcpy(&v, p, svc__pb_type_size(f->type));
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        s_put_int(o, f->type, &v, svc__pb_is_64bit(f->type));
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        s_put_real(o, v.f, true, signed_zero);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        s_put_real(o, v.d, false, signed_zero);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        s_puts(o, v.b ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v.i32);
        if (ev)
            s_put_string(o, ev->name);
        else
            s_put_int(o, PROTOBUF_C_TYPE_INT32, &v, false);
        break;
    }
    case PROTOBUF_C_TYPE_STRING:
        s_put_string(o, v.s);
        break;
    case PROTOBUF_C_TYPE_BYTES:
        s_put_base64(o, &v.bytes);
        break;
    case PROTOBUF_C_TYPE_MESSAGE:
        if (v.m)
            s_put_message(o, v.m);
        else
            s_put_empty(o, f->descriptor);
        break;
    }
}

/* Whether the NUL-terminated s is well-formed UTF-8. */
static bool s_utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t len = svc__utf8_len(p, n);
        if (len == 0)
            return false;
        p += len;
        n -= len;
    }
    return true;
}

/* A malloc'd copy of s as s_put_string writes it: ill-formed bytes as U+FFFD. */
static char *s_utf8_fixed(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(n * 3 + 1), *w = out;
    if (!out)
        return NULL;
    while (n > 0) {
        size_t len = svc__utf8_len(p, n);
        if (len) {
            memcpy(w, p, len);
            w += len;
        } else {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            len = 1;
        }
        p += len;
        n -= len;
    }
    *w = '\0';
    return out;
}

/* Sort context for finding repeated map keys. */
typedef struct s_mapsort {
    const ProtobufCFieldDescriptor *kf; /* the entries' key field */
    ProtobufCMessage *const *entries;   /* the map's entries */
    const char **keys;                  /* string keys as written (U+FFFD fixed), else NULL */
} s_mapsort;

/* Orders entries i and j by their keys as JSON shows them. */
static int s_key_cmp(const s_mapsort *ms, size_t i, size_t j)
{
    if (ms->keys)
        return strcmp(ms->keys[i], ms->keys[j]);
    const ProtobufCFieldDescriptor *kf = ms->kf;
    svc__pbvalue x = { 0 }, y = { 0 };
    memcpy(&x, svc__pb_cmember(ms->entries[i], kf->offset), svc__pb_type_size(kf->type));
    memcpy(&y, svc__pb_cmember(ms->entries[j], kf->offset), svc__pb_type_size(kf->type));
    if (kf->type == PROTOBUF_C_TYPE_BOOL)
        return (int)!!x.b - (int)!!y.b;
    if (svc__pb_is_64bit(kf->type) && svc__pb_is_signed(kf->type))
        return (x.i64 > y.i64) - (x.i64 < y.i64);
    if (svc__pb_is_64bit(kf->type))
        return (x.u64 > y.u64) - (x.u64 < y.u64);
    if (svc__pb_is_signed(kf->type))
        return (x.i32 > y.i32) - (x.i32 < y.i32);
    return (x.u32 > y.u32) - (x.u32 < y.u32);
}

static int s_index_cmp(const void *a, const void *b, void *ctx)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = s_key_cmp(ctx, i, j);
    return c ? c : (i > j) - (i < j);
}

/*
 * Marks in skip[] every entry whose key, as JSON shows it, appears again
 * later: the wire form may repeat keys, and the last one wins, as when
 * protobuf parses a map.  Returns false when out of memory.
 */
static bool s_map_dups(const ProtobufCFieldDescriptor *kf, ProtobufCMessage *const *entries,
                       size_t n, bool *skip)
{
    bool ok = false;
    const char **keys = NULL;
    char **owned = NULL;
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx)
        return false;
    if (kf->type == PROTOBUF_C_TYPE_STRING) {
        keys = calloc(n, sizeof *keys);
        owned = calloc(n, sizeof *owned);
        if (!keys || !owned)
            goto out_free;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!entries[i])
            continue;
        idx[k++] = i;
        if (!keys)
            continue;
        const char *key = *(char *const *)svc__pb_cmember(entries[i], kf->offset);
        keys[i] = key ? key : "";
        if (!s_utf8_ok(keys[i]) && !(keys[i] = owned[i] = s_utf8_fixed(keys[i])))
            goto out_free;
    }
    s_mapsort ms = { kf, entries, keys };
    qsort_r(idx, k, sizeof *idx, s_index_cmp, &ms);
    for (size_t i = 0; i + 1 < k; i++)
        if (s_key_cmp(&ms, idx[i], idx[i + 1]) == 0)
            skip[idx[i]] = true;
    ok = true;
out_free:
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(keys);
    free(idx);
    return ok;
}

static void s_put_map(s_out *o, const ProtobufCFieldDescriptor *f, ProtobufCMessage *const *entries,
                      size_t n)
{
    const ProtobufCFieldDescriptor *kf = protobuf_c_message_descriptor_get_field(f->descriptor, 1);
    const ProtobufCFieldDescriptor *vf = protobuf_c_message_descriptor_get_field(f->descriptor, 2);
    bool *skip = calloc(n + 1, sizeof *skip);
    if (!skip || (n > 1 && !s_map_dups(kf, entries, n, skip))) {
        free(skip);
        o->oom = true;
        return;
    }
    bool first = true;
    s_putc(o, '{');
    for (size_t i = 0; i < n; i++) {
        if (!entries[i] || skip[i])
            continue;
        if (!first)
            s_putc(o, ',');
        first = false;
        svc__pbvalue key;
        memcpy(&key, svc__pb_cmember(entries[i], kf->offset), svc__pb_type_size(kf->type));
        if (kf->type == PROTOBUF_C_TYPE_STRING)
            s_put_string(o, key.s);
        else if (kf->type == PROTOBUF_C_TYPE_BOOL)
            s_puts(o, key.b ? "\"true\"" : "\"false\"");
        else
            s_put_int(o, kf->type, &key, true);
        s_putc(o, ':');
        s_put_value(o, vf, svc__pb_cmember(entries[i], vf->offset));
    }
    s_putc(o, '}');
    free(skip);
}

static void s_put_repeated(s_out *o, const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    size_t n = *(const size_t *)svc__pb_cmember(m, f->quantifier_offset);
    const char *arr = *(char *const *)svc__pb_cmember(m, f->offset);
    if (!arr)
        n = 0;
    if (svc__pb_is_map_field(f)) {
        s_put_map(o, f, (ProtobufCMessage *const *)arr, n);
        return;
    }
    size_t size = svc__pb_type_size(f->type);
    s_putc(o, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            s_putc(o, ',');
        s_put_value(o, f, arr + i * size);
    }
    s_putc(o, ']');
}

static void s_put_message(s_out *o, const ProtobufCMessage *m)
{
    if (!m) {
        s_puts(o, "{}");
        return;
    }
    const ProtobufCMessageDescriptor *md = m->descriptor;
    bool first = true;
    s_putc(o, '{');
    for (unsigned i = 0; i < md->n_fields && !o->oom; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        if (!svc__pb_present(m, f))
            continue;
        if (!first)
            s_putc(o, ',');
        first = false;
        s_put_string(o, f->name);
        s_putc(o, ':');
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            s_put_repeated(o, m, f);
        else
            s_put_value(o, f, svc__pb_cmember(m, f->offset));
    }
    s_putc(o, '}');
}

char *svc_pb_to_json(const ProtobufCMessage *msg, size_t *len)
{
    s_out o = { NULL, 0, 0, false };
    s_put_message(&o, msg);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    if (len)
        *len = o.len;
    return o.p;
}
