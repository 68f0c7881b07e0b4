/*
 * libsvc/schema.c — describes a message type as go-micro's registry.Value
 * tree, so `svcctl service NAME` can show each endpoint's fields.
 */
#include "service_int.h"
#include "pbfield.h"
#include "svc/codec.h"

#include <stdlib.h>
#include <string.h>

static Svc__Registry__Value *s_value(const char *name, const char *type)
{
    Svc__Registry__Value *v = malloc(sizeof *v);
    if (!v)
        return NULL;
    svc__registry__value__init(v);
    v->name = strdup(name);
    v->type = strdup(type);
    if (!v->name || !v->type) {
        svc__registry__value__free_unpacked(v, NULL);
        return NULL;
    }
    return v;
}

/* Fills v->values with the fields of d; stack holds the types being expanded. */
static int s_fields(Svc__Registry__Value *v, const ProtobufCMessageDescriptor *d,
                    const ProtobufCMessageDescriptor **stack, int depth)
{
    for (int i = 0; i < depth; i++)
        if (stack[i] == d)
            return 0;   /* recursive type: name it, do not expand again */
    if (depth >= SVC_CODEC_MAX_DEPTH)
        return 0;
    stack[depth] = d;
    v->values = calloc(d->n_fields ? d->n_fields : 1, sizeof *v->values);
    if (!v->values)
        return -1;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *type = f->type == PROTOBUF_C_TYPE_MESSAGE
                               ? ((const ProtobufCMessageDescriptor *)f->descriptor)->name
                           : f->type == PROTOBUF_C_TYPE_ENUM
                               ? ((const ProtobufCEnumDescriptor *)f->descriptor)->name
                               : svc__pb_type_name(f->type);
        Svc__Registry__Value *fv = s_value(f->name, type);
        if (!fv)
            return -1;
        v->values[v->n_values++] = fv;
        fv->repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
        if (f->type == PROTOBUF_C_TYPE_MESSAGE &&
            s_fields(fv, f->descriptor, stack, depth + 1) < 0)
            return -1;
    }
    return 0;
}

Svc__Registry__Value *svc__schema(const ProtobufCMessageDescriptor *d)
{
    const ProtobufCMessageDescriptor *stack[SVC_CODEC_MAX_DEPTH];
    Svc__Registry__Value *v = s_value("", d->name);
    if (v && s_fields(v, d, stack, 0) < 0) {
        svc__registry__value__free_unpacked(v, NULL);
        return NULL;
    }
    return v;
}
