/*
 * pbfield.h — library-internal: any protobuf-c message's fields, read and
 * written through its descriptor (protobuf-c 1.4 layout: label, type,
 * offset, quantifier_offset, default_value, ONEOF flag).  Used by the JSON
 * codec (json_to_pb.c, pb_to_json.c).
 */
#ifndef SVC_PBFIELD_H
#define SVC_PBFIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

/*
 * One value of a field as protobuf-c stores it, in the message or as one
 * element of a repeated array.  Only the first svc__pb_type_size(type) bytes
 * are meaningful.
 */
typedef union svc__pbvalue {
    int32_t i32;               /* int32, sint32, sfixed32, enum */
    uint32_t u32;              /* uint32, fixed32 */
    int64_t i64;               /* int64, sint64, sfixed64 */
    uint64_t u64;              /* uint64, fixed64 */
    float f;                   /* float */
    double d;                  /* double */
    protobuf_c_boolean b;      /* bool */
    char *s;                   /* string, malloc'd when built by the codec */
    ProtobufCBinaryData bytes; /* bytes, data malloc'd when built by the codec */
    ProtobufCMessage *m;       /* message, malloc'd when built by the codec */
} svc__pbvalue;

/* The member of m at offset (a field's offset or quantifier_offset). */
static inline void *svc__pb_member(ProtobufCMessage *m, unsigned offset)
{
    return (char *)m + offset;
}

static inline const void *svc__pb_cmember(const ProtobufCMessage *m, unsigned offset)
{
    return (const char *)m + offset;
}

/* The .proto name of a type ("int32", "sfixed64", ...); "unknown" if invalid. */
const char *svc__pb_type_name(ProtobufCType t);

/* Bytes one value of type t occupies in a message or a repeated array. */
size_t svc__pb_type_size(ProtobufCType t);

/* True for the 64-bit integer types. */
bool svc__pb_is_64bit(ProtobufCType t);

/* True for the signed integer types, enums included (they are int32). */
bool svc__pb_is_signed(ProtobufCType t);

/*
 * True when f is a map: a repeated message whose type is named "...Entry"
 * and has exactly the fields key = 1 (an integer, bool or string) and
 * value = 2, neither repeated nor in a oneof.
 */
bool svc__pb_is_map_field(const ProtobufCFieldDescriptor *f);

/*
 * Copies v into m's singular field f and marks it present: sets the oneof
 * case, or the has_ flag of an optional scalar.  Ownership of a string,
 * bytes or message in v passes to m.  The field must not hold an allocated
 * value already (it would leak).
 */
void svc__pb_store(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const svc__pbvalue *v);

/*
 * Whether field f of m has a value to write: false for a oneof member that
 * is not the chosen one, an absent optional field, or an absent message.
 * Strings and messages equal to the default value count as absent, as
 * protobuf-c's packer treats them.  Repeated fields are always present.
 */
bool svc__pb_present(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

#endif
