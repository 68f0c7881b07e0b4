/*
 * svc/codec.h — body codecs and generic JSON <-> protobuf transcoding.
 *
 * A body is bytes in a content type.  svc speaks two:
 *   application/protobuf  (also accepted: application/x-protobuf, application/octet-stream, "")
 *   application/json
 * Because protobuf-c keeps full descriptors, any protobuf-c message converts
 * to and from JSON without generated JSON code.
 *
 * JSON mapping (proto3 JSON, https://protobuf.dev/programming-guides/proto3/#json):
 *   - object keys: the .proto field name; lowerCamelCase json names are
 *     accepted on input too.  Unknown keys are an error, and so is a field
 *     given twice (duplicate key, or under both of its names).
 *   - int32/uint32/sint32/fixed32/sfixed32: numbers.  64-bit integers are
 *     written as strings ("123"); numbers or strings are accepted.
 *     (Numbers with an integral value such as 1.0 or 1e3 are accepted for
 *     any integer type; strings are "-?[0-9]+" only.  A uint64 above
 *     2^63-1 must be a string: the JSON parser holds numbers as int64.)
 *   - float/double: numbers; "NaN", "Infinity", "-Infinity" as strings.
 *     (Output is the shortest decimal that reads back to the same value; a
 *     float outside float's range is an error.  -0 is written as -0.0,
 *     except in a proto3 singular field, where protobuf-c's packer drops
 *     it as the default: there it is written as 0, as the wire has it.)
 *   - bool: true/false.  string: JSON string (UTF-8).  bytes: base64 string.
 *     (Input: standard or URL-safe alphabet, padding optional.  Output:
 *     standard, padded.  Ill-formed UTF-8 in a string from the wire is
 *     written as U+FFFD; "\u0000" is refused, C strings cannot hold it.)
 *   - enum: the value's name on output; name or number on input.
 *     (Any int32 number is accepted — proto3 enums are open — and a number
 *     with no name is written as a number.)
 *   - message: object; null on input means absent.  repeated: array.
 *     (null for any field means absent / default; null inside an array or
 *     as a map value is an error.)
 *   - a repeated message named "...Entry" whose fields are exactly
 *     key = 1 and value = 2 (the map<K,V> wire form) is a JSON object.
 *     (So protoc's map<K,V> fields and hand-written MetadataEntry-style
 *     messages both qualify; K must be an integer, bool or string type and
 *     keys are its decimal text or "true"/"false".  When the wire form
 *     repeats a key the last entry wins and the output holds it once.)
 *   - output writes every singular scalar (defaults included) and omits
 *     absent messages and absent proto3 `optional` / oneof members.
 *     (Likewise absent proto2 `optional` fields: every LABEL_OPTIONAL field
 *     is written only when present.  Repeated fields and maps are always
 *     written, as [] / {} when empty.  Fields appear in descriptor order
 *     under their .proto names.  protoc-c 1.4.1 itself refuses proto3
 *     `optional`; later versions' LABEL_OPTIONAL output is handled.)
 *   - proto2 required fields missing on input are an error.
 *   - well-known types (Timestamp, Duration, Struct, Any, wrappers) get no
 *     special form: they are written and read as ordinary messages.
 *
 * Errors are reported as a negative code plus a one-line message naming the
 * offending field path, e.g.  field "user.age": expected number, got string
 * (Paths look like "items[2].name" and "labels[key]"; problems with the
 * top-level value read  message "pkg.Type": ...  and unparseable text reads
 * invalid json at line L, column C: <jansson's reason>.)
 */
#ifndef SVC_CODEC_H
#define SVC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SVC_CT_JSON     "application/json"
#define SVC_CT_PROTOBUF "application/protobuf"

/*
 * Maximum nesting depth accepted when decoding JSON or building schemas.
 * The top-level message is depth 1, each submessage (and each map entry,
 * as on the wire) one more.  Protobuf bodies are held to it as well, before
 * protobuf-c's recursive unpacker sees them.
 */
#define SVC_CODEC_MAX_DEPTH 64

/* Which codec a content type selects. */
typedef enum svc_codec_kind {
    SVC_CODEC_UNKNOWN = 0,
    SVC_CODEC_PROTOBUF,
    SVC_CODEC_JSON,
} svc_codec_kind;

/*
 * Maps a content type (parameters such as "; charset=utf-8" ignored, case
 * insensitive) to a codec.  NULL or "" is protobuf.
 * (Surrounding spaces and tabs are ignored, so "; charset=x" is "" too.)
 */
svc_codec_kind svc_codec_for(const char *content_type);

/*
 * Decodes buf (len bytes, in content_type) into a new message of type desc.
 * On success *out is the caller's, freed with protobuf_c_message_free_unpacked(*out, NULL).
 * On failure returns SVC_ECODEC (or SVC_EINVAL for an unknown content type),
 * leaves *out NULL, and writes a one-line reason into err (errlen bytes,
 * may be NULL/0).  Never aborts on bad input.
 * (Also SVC_EINVAL when out or desc is NULL or buf is NULL with len > 0,
 * and -ENOMEM when memory runs out.  buf need not be NUL-terminated.)
 */
int svc_codec_decode(const char *content_type, const ProtobufCMessageDescriptor *desc,
                     const void *buf, size_t len, ProtobufCMessage **out,
                     char *err, size_t errlen);

/*
 * Encodes msg in content_type.  On success *buf is a malloc'd buffer of *len
 * bytes owned by the caller (JSON is not NUL-terminated in the count but is
 * NUL-terminated in memory).  Returns 0, SVC_EINVAL for an unknown content
 * type, or -ENOMEM.  (On failure *buf is NULL and *len 0.)
 */
int svc_codec_encode(const char *content_type, const ProtobufCMessage *msg,
                     void **buf, size_t *len);

/*
 * JSON text -> message.  Same contract as svc_codec_decode with JSON input.
 * json need not be NUL-terminated.
 */
int svc_json_to_pb(const ProtobufCMessageDescriptor *desc, const char *json, size_t len,
                   ProtobufCMessage **out, char *err, size_t errlen);

/*
 * Message -> compact JSON text, NUL-terminated, malloc'd, the caller's.
 * Returns NULL only on out-of-memory.  If len is not NULL it receives strlen.
 * (A NULL msg is written as {}.  The text of any message svc_codec_decode()
 * returned is accepted by svc_json_to_pb() for the same type.)
 */
char *svc_pb_to_json(const ProtobufCMessage *msg, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
