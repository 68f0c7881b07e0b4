/* libsvc/pbfield.c — generic protobuf-c field access.  See pbfield.h. */
#include "pbfield.h"

#include <string.h>

static const char *const s_type_names[] = {
    [PROTOBUF_C_TYPE_INT32] = "int32",     [PROTOBUF_C_TYPE_SINT32] = "sint32",
    [PROTOBUF_C_TYPE_SFIXED32] = "sfixed32", [PROTOBUF_C_TYPE_INT64] = "int64",
    [PROTOBUF_C_TYPE_SINT64] = "sint64",   [PROTOBUF_C_TYPE_SFIXED64] = "sfixed64",
    [PROTOBUF_C_TYPE_UINT32] = "uint32",   [PROTOBUF_C_TYPE_FIXED32] = "fixed32",
    [PROTOBUF_C_TYPE_UINT64] = "uint64",   [PROTOBUF_C_TYPE_FIXED64] = "fixed64",
    [PROTOBUF_C_TYPE_FLOAT] = "float",     [PROTOBUF_C_TYPE_DOUBLE] = "double",
    [PROTOBUF_C_TYPE_BOOL] = "bool",       [PROTOBUF_C_TYPE_ENUM] = "enum",
    [PROTOBUF_C_TYPE_STRING] = "string",   [PROTOBUF_C_TYPE_BYTES] = "bytes",
    [PROTOBUF_C_TYPE_MESSAGE] = "message",
};

const char *svc__pb_type_name(ProtobufCType t)
{
    if ((size_t)t < sizeof s_type_names / sizeof s_type_names[0] && s_type_names[t])
        return s_type_names[t];
    return "unknown";
}

size_t svc__pb_type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default: /* 32-bit integers and enums */
        return sizeof(uint32_t);
    }
}

bool svc__pb_is_64bit(ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_SINT64 ||
           t == PROTOBUF_C_TYPE_SFIXED64 || t == PROTOBUF_C_TYPE_UINT64 ||
           t == PROTOBUF_C_TYPE_FIXED64;
}

bool svc__pb_is_signed(ProtobufCType t)
{
    return t == PROTOBUF_C_TYPE_INT32 || t == PROTOBUF_C_TYPE_SINT32 ||
           t == PROTOBUF_C_TYPE_SFIXED32 || t == PROTOBUF_C_TYPE_ENUM ||
           t == PROTOBUF_C_TYPE_INT64 || t == PROTOBUF_C_TYPE_SINT64 ||
           t == PROTOBUF_C_TYPE_SFIXED64;
}

/* Integer, bool and string types: the types a map key may have. */
static bool s_is_key_type(ProtobufCType t)
{
    return t != PROTOBUF_C_TYPE_FLOAT && t != PROTOBUF_C_TYPE_DOUBLE &&
           t != PROTOBUF_C_TYPE_ENUM && t != PROTOBUF_C_TYPE_BYTES &&
           t != PROTOBUF_C_TYPE_MESSAGE;
}

/* True when md is a map entry; see svc__pb_is_map_field(). */
static bool s_is_map_entry(const ProtobufCMessageDescriptor *md)
{
    size_t n = md->short_name ? strlen(md->short_name) : 0;
    if (md->n_fields != 2 || n < 5 || strcmp(md->short_name + n - 5, "Entry") != 0)
        return false;
    const ProtobufCFieldDescriptor *k = protobuf_c_message_descriptor_get_field(md, 1);
    const ProtobufCFieldDescriptor *v = protobuf_c_message_descriptor_get_field(md, 2);
    return k && v && strcmp(k->name, "key") == 0 && strcmp(v->name, "value") == 0 &&
           k->label != PROTOBUF_C_LABEL_REPEATED && v->label != PROTOBUF_C_LABEL_REPEATED &&
           !(k->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && !(v->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           s_is_key_type(k->type);
}

bool svc__pb_is_map_field(const ProtobufCFieldDescriptor *f)
{
    return f->label == PROTOBUF_C_LABEL_REPEATED && f->type == PROTOBUF_C_TYPE_MESSAGE &&
           s_is_map_entry(f->descriptor);
}

void svc__pb_store(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const svc__pbvalue *v)
{
    memcpy(svc__pb_member(m, f->offset), v, svc__pb_type_size(f->type));
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        *(uint32_t *)svc__pb_member(m, f->quantifier_offset) = f->id;
    else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
        *(protobuf_c_boolean *)svc__pb_member(m, f->quantifier_offset) = 1;
}

bool svc__pb_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
    bool is_ptr = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
    const void *ptr = is_ptr ? *(const void *const *)svc__pb_cmember(m, f->offset) : NULL;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)svc__pb_cmember(m, f->quantifier_offset) != f->id)
            return false;
        return !is_ptr || (ptr && ptr != f->default_value);
    }
    switch (f->label) {
    case PROTOBUF_C_LABEL_REPEATED:
        return true;
    case PROTOBUF_C_LABEL_OPTIONAL:
        if (is_ptr)
            return ptr && ptr != f->default_value;
        return !f->quantifier_offset ||
               *(const protobuf_c_boolean *)svc__pb_cmember(m, f->quantifier_offset);
    default:
        return f->type != PROTOBUF_C_TYPE_MESSAGE || ptr;
    }
}
