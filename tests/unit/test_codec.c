/*
 * tests/unit/test_codec.c — svc/codec.h: content types, JSON <-> protobuf.
 *
 * Most tests go through s_roundtrip(): JSON -> message -> JSON, and the
 * same message -> protobuf -> message -> JSON, and the JSON read back again;
 * all three texts must agree, and the test compares that text with what a
 * user would expect to see.
 */
#include "testlib.h"

#include "svc/codec.h"
#include "svc/error.h"
#include "testmsg.pb-c.h"
#include "testmsg2.pb-c.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT (&testmsg__all_types__descriptor)
#define REQ (&testmsg2__req__descriptor)

/* The JSON of an AllTypes with nothing set (singular scalars, f_enum as e). */
#define DEFAULTS_HEAD_ENUM(e) \
    "\"f_int32\":0,\"f_int64\":\"0\",\"f_uint32\":0,\"f_uint64\":\"0\",\"f_sint32\":0," \
    "\"f_sint64\":\"0\",\"f_fixed32\":0,\"f_fixed64\":\"0\",\"f_sfixed32\":0,"        \
    "\"f_sfixed64\":\"0\",\"f_float\":0,\"f_double\":0,\"f_bool\":false,\"f_string\":\"\"," \
    "\"f_bytes\":\"\",\"f_enum\":\"" e "\""
#define DEFAULTS_HEAD DEFAULTS_HEAD_ENUM("COLOR_UNSPECIFIED")
#define DEFAULTS_REPEATED \
    "\"r_int32\":[],\"r_int64\":[],\"r_uint64\":[],\"r_float\":[],\"r_double\":[],"  \
    "\"r_bool\":[],\"r_string\":[],\"r_bytes\":[],\"r_enum\":[],\"r_inner\":[]"
#define DEFAULTS_MAPS "\"labels\":{},\"tags\":{},\"by_id\":{},\"colors\":{},\"flags\":{}"
#define DEFAULTS "{" DEFAULTS_HEAD "," DEFAULTS_REPEATED "," DEFAULTS_MAPS "}"

/* Decodes json as a message of type d; NULL on failure. */
static ProtobufCMessage *s_decode(const ProtobufCMessageDescriptor *d, const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[256];
    if (svc_json_to_pb(d, json, strlen(json), &m, err, sizeof err) != 0) {
        fprintf(stderr, "  decode failed: %s\n", err);
        return NULL;
    }
    return m;
}

/*
 * JSON -> message -> JSON, then through protobuf and back, then the output
 * read again.  Returns the output text (the caller's) when all three agree,
 * otherwise a malloc'd description of what went wrong.
 */
static char *s_roundtrip(const ProtobufCMessageDescriptor *d, const char *json)
{
    char err[256] = "", *out = NULL, *via_pb = NULL, *again = NULL;
    ProtobufCMessage *m = NULL, *m2 = NULL, *m3 = NULL;
    void *bin = NULL;
    size_t binlen;
    if (svc_json_to_pb(d, json, strlen(json), &m, err, sizeof err) != 0)
        return strdup(err);
    out = svc_pb_to_json(m, NULL);
    if (svc_codec_encode(SVC_CT_PROTOBUF, m, &bin, &binlen) != 0 ||
        svc_codec_decode(SVC_CT_PROTOBUF, d, bin, binlen, &m2, err, sizeof err) != 0) {
        free(out);
        out = strdup("protobuf round trip failed");
        goto done;
    }
    via_pb = svc_pb_to_json(m2, NULL);
    if (svc_json_to_pb(d, out, strlen(out), &m3, err, sizeof err) != 0) {
        free(out);
        out = strdup("output does not decode");
        goto done;
    }
    again = svc_pb_to_json(m3, NULL);
    if (strcmp(out, via_pb) != 0 || strcmp(out, again) != 0) {
        fprintf(stderr, "  json:     %s\n  via pb:   %s\n  re-read:  %s\n", out, via_pb, again);
        free(out);
        out = strdup("round trips disagree");
    }
done:
    free(via_pb);
    free(again);
    free(bin);
    protobuf_c_message_free_unpacked(m, NULL);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m3, NULL);
    return out;
}

/*
 * The reason svc_json_to_pb gives for json, in a static buffer; "ok" when it
 * succeeds, or a note when it breaks its contract (wrong code, *out set,
 * more than one line, not UTF-8).
 */
static const char *s_err(const ProtobufCMessageDescriptor *d, const char *json)
{
    static char err[512];
    ProtobufCMessage *m = (ProtobufCMessage *)&m;
    int rc = svc_json_to_pb(d, json, strlen(json), &m, err, sizeof err);
    if (rc == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return "ok";
    }
    if (rc != SVC_ECODEC)
        snprintf(err, sizeof err, "unexpected code %d", rc);
    else if (m != NULL)
        snprintf(err, sizeof err, "*out not NULL on failure");
    else if (strchr(err, '\n'))
        snprintf(err, sizeof err, "message has a newline");
    json_t *utf8 = json_string(err); /* NULL unless well-formed UTF-8 */
    if (!utf8)
        snprintf(err, sizeof err, "message is not UTF-8");
    json_decref(utf8);
    return err;
}

/* Whether the text starts with prefix. */
static bool s_starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Checks a round trip gives want, freeing the result. */
#define CHECK_RT(desc, json, want) do { char *got_ = s_roundtrip((desc), (json)); \
    CHECK_STR(got_, (want)); free(got_); } while (0)

TEST(all_scalars_roundtrip)
{
    const char *in =
        "{\"f_int32\":-123,\"f_int64\":\"-9000000000\",\"f_uint32\":4000000000,"
        "\"f_uint64\":\"18000000000000000000\",\"f_sint32\":-7,\"f_sint64\":\"-8\","
        "\"f_fixed32\":9,\"f_fixed64\":\"10\",\"f_sfixed32\":-11,\"f_sfixed64\":\"-12\","
        "\"f_float\":1.5,\"f_double\":-2.25,\"f_bool\":true,\"f_string\":\"hi\","
        "\"f_bytes\":\"AAEC/w==\",\"f_enum\":\"COLOR_GREEN\"}";
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT, in);
    CHECK(m != NULL);
    if (m) {
        CHECK_INT(m->f_int32, -123);
        CHECK(m->f_int64 == -9000000000LL);
        CHECK(m->f_uint32 == 4000000000u);
        CHECK(m->f_uint64 == 18000000000000000000ULL);
        CHECK_INT(m->f_sint32, -7);
        CHECK_INT(m->f_sint64, -8);
        CHECK_INT(m->f_fixed32, 9);
        CHECK_INT(m->f_fixed64, 10);
        CHECK_INT(m->f_sfixed32, -11);
        CHECK_INT(m->f_sfixed64, -12);
        CHECK(m->f_float == 1.5f);
        CHECK(m->f_double == -2.25);
        CHECK(m->f_bool);
        CHECK_STR(m->f_string, "hi");
        CHECK_INT(m->f_bytes.len, 4);
        CHECK(m->f_bytes.len == 4 && memcmp(m->f_bytes.data, "\x00\x01\x02\xff", 4) == 0);
        CHECK_INT(m->f_enum, TESTMSG__COLOR__COLOR_GREEN);
        CHECK(m->f_inner == NULL);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    CHECK_RT(AT, in,
             "{\"f_int32\":-123,\"f_int64\":\"-9000000000\",\"f_uint32\":4000000000,"
             "\"f_uint64\":\"18000000000000000000\",\"f_sint32\":-7,\"f_sint64\":\"-8\","
             "\"f_fixed32\":9,\"f_fixed64\":\"10\",\"f_sfixed32\":-11,\"f_sfixed64\":\"-12\","
             "\"f_float\":1.5,\"f_double\":-2.25,\"f_bool\":true,\"f_string\":\"hi\","
             "\"f_bytes\":\"AAEC/w==\",\"f_enum\":\"COLOR_GREEN\"," DEFAULTS_REPEATED ","
             DEFAULTS_MAPS "}");
}

TEST(defaults_written_absent_message_omitted)
{
    CHECK_RT(AT, "{}", DEFAULTS);
    CHECK_RT(AT, "{\"f_inner\":null}", DEFAULTS);
    /* present but empty is not absent */
    CHECK_RT(AT, "{\"f_inner\":{}}",
             "{" DEFAULTS_HEAD ",\"f_inner\":{\"count\":0,\"label\":\"\"}," DEFAULTS_REPEATED
             "," DEFAULTS_MAPS "}");
}

TEST(null_means_default)
{
    CHECK_RT(AT,
             "{\"f_int32\":null,\"f_string\":null,\"f_bytes\":null,\"f_enum\":null,"
             "\"r_int32\":null,\"tags\":null,\"choice_name\":null}",
             DEFAULTS);
}

TEST(int64_strings_out_numbers_or_strings_in)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"f_int64\":9007199254740993,\"f_uint64\":\"18446744073709551615\","
        "\"f_sint64\":\"-9223372036854775808\",\"f_sfixed64\":9223372036854775807,"
        "\"f_fixed64\":1e3,\"r_int64\":[1,\"-2\",3.0]}");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK(m->f_int64 == 9007199254740993LL); /* not rounded through a double */
    CHECK(m->f_uint64 == UINT64_MAX);
    CHECK(m->f_sint64 == INT64_MIN);
    CHECK(m->f_sfixed64 == INT64_MAX);
    CHECK(m->f_fixed64 == 1000);
    CHECK(m->n_r_int64 == 3 && m->r_int64[0] == 1 && m->r_int64[1] == -2 && m->r_int64[2] == 3);
    char *json = svc_pb_to_json(&m->base, NULL);
    CHECK(strstr(json, "\"f_int64\":\"9007199254740993\"") != NULL);
    CHECK(strstr(json, "\"f_uint64\":\"18446744073709551615\"") != NULL);
    CHECK(strstr(json, "\"f_sint64\":\"-9223372036854775808\"") != NULL);
    CHECK(strstr(json, "\"r_int64\":[\"1\",\"-2\",\"3\"]") != NULL);
    free(json);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

TEST(camel_case_names_accepted)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"fInt32\":5,\"fString\":\"x\",\"rInner\":[{\"count\":1}],\"choiceName\":\"c\","
        "\"byId\":{\"3\":{\"label\":\"three\"}}}");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_INT(m->f_int32, 5);
    CHECK_STR(m->f_string, "x");
    CHECK(m->n_r_inner == 1 && m->r_inner[0]->count == 1);
    CHECK_INT(m->choice_case, TESTMSG__ALL_TYPES__CHOICE_CHOICE_NAME);
    CHECK_STR(m->choice_name, "c");
    CHECK(m->n_by_id == 1 && m->by_id[0]->key == 3 && strcmp(m->by_id[0]->value->label, "three") == 0);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* both spellings of one field is a duplicate */
    CHECK_STR(s_err(AT, "{\"f_int32\":1,\"fInt32\":2}"),
              "field \"fInt32\": duplicate of field \"f_int32\"");
    /* camelCase is the only alternative spelling */
    CHECK_STR(s_err(AT, "{\"FInt32\":1}"),
              "field \"FInt32\": unknown field of message \"testmsg.AllTypes\"");
}

TEST(enums_by_name_and_number)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"f_enum\":\"COLOR_BLUE\",\"r_enum\":[1,\"COLOR_GREEN\",-3,0,42]}");
    CHECK(m != NULL);
    if (m) {
        CHECK_INT(m->f_enum, TESTMSG__COLOR__COLOR_BLUE);
        CHECK_INT(m->n_r_enum, 5);
        CHECK(m->n_r_enum == 5 && m->r_enum[0] == 1 && m->r_enum[1] == 2 && m->r_enum[2] == -3 &&
              m->r_enum[4] == 42);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    CHECK_RT(AT, "{\"f_enum\":2,\"r_enum\":[1,\"COLOR_GREEN\",-3,0,42]}",
             "{" DEFAULTS_HEAD_ENUM("COLOR_GREEN") "," 
             "\"r_int32\":[],\"r_int64\":[],\"r_uint64\":[],\"r_float\":[],\"r_double\":[],"
             "\"r_bool\":[],\"r_string\":[],\"r_bytes\":[],"
             "\"r_enum\":[\"COLOR_RED\",\"COLOR_GREEN\",\"COLOR_BLUE\",\"COLOR_UNSPECIFIED\",42],"
             "\"r_inner\":[]," DEFAULTS_MAPS "}");
    CHECK_STR(s_err(AT, "{\"f_enum\":\"COLOR_PINK\"}"),
              "field \"f_enum\": unknown value \"COLOR_PINK\" of enum \"testmsg.Color\"");
    CHECK_STR(s_err(AT, "{\"f_enum\":\"color_red\"}"),
              "field \"f_enum\": unknown value \"color_red\" of enum \"testmsg.Color\"");
    CHECK_STR(s_err(AT, "{\"f_enum\":true}"),
              "field \"f_enum\": expected enum name or number, got boolean");
    CHECK_STR(s_err(AT, "{\"f_enum\":2147483648}"),
              "field \"f_enum\": value 2147483648 out of range for enum");
}

TEST(nested_messages)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"f_inner\":{\"count\":1,\"label\":\"a\",\"child\":{\"count\":2,\"child\":{\"count\":3}}}}");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK(m->f_inner && m->f_inner->count == 1 && strcmp(m->f_inner->label, "a") == 0);
    CHECK(m->f_inner && m->f_inner->child && m->f_inner->child->count == 2);
    CHECK(m->f_inner && m->f_inner->child && m->f_inner->child->child &&
          m->f_inner->child->child->count == 3 && m->f_inner->child->child->child == NULL);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    CHECK_RT(AT, "{\"f_inner\":{\"count\":1,\"child\":{\"label\":\"b\"}}}",
             "{" DEFAULTS_HEAD ",\"f_inner\":{\"count\":1,\"label\":\"\",\"child\":{\"count\":0,"
             "\"label\":\"b\"}}," DEFAULTS_REPEATED "," DEFAULTS_MAPS "}");
}

TEST(repeated_fields)
{
    CHECK_RT(AT,
             "{\"r_int32\":[1,-2,2147483647],\"r_uint64\":[\"1\",2],\"r_float\":[0.5,-1],"
             "\"r_double\":[1e300,0.1],\"r_bool\":[true,false],\"r_string\":[\"a\",\"\",\"c\"],"
             "\"r_bytes\":[\"\",\"QQ==\"],\"r_inner\":[{},{\"count\":7}]}",
             "{" DEFAULTS_HEAD ",\"r_int32\":[1,-2,2147483647],\"r_int64\":[],"
             "\"r_uint64\":[\"1\",\"2\"],\"r_float\":[0.5,-1],\"r_double\":[1e+300,0.1],"
             "\"r_bool\":[true,false],\"r_string\":[\"a\",\"\",\"c\"],\"r_bytes\":[\"\",\"QQ==\"],"
             "\"r_enum\":[],\"r_inner\":[{\"count\":0,\"label\":\"\"},{\"count\":7,\"label\":\"\"}],"
             DEFAULTS_MAPS "}");
    CHECK_STR(s_err(AT, "{\"r_int32\":[1,null]}"), "field \"r_int32[1]\": expected integer, got null");
    CHECK_STR(s_err(AT, "{\"r_inner\":[{},{\"count\":\"x\"}]}"),
              "field \"r_inner[1].count\": expected integer, got string");
    CHECK_STR(s_err(AT, "{\"r_string\":\"a\"}"), "field \"r_string\": expected array, got string");
}

TEST(maps_are_objects)
{
    const char *in =
        "{\"labels\":{\"env\":\"prod\",\"tier\":\"\"},\"tags\":{\"a\":\"1\"},"
        "\"by_id\":{\"-5\":{\"count\":5},\"7\":{}},\"colors\":{\"18446744073709551615\":\"COLOR_RED\"},"
        "\"flags\":{\"true\":\"QQ==\",\"false\":\"\"}}";
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT, in);
    CHECK(m != NULL);
    if (m) {
        CHECK_INT(m->n_labels, 2);
        CHECK(m->n_labels == 2 && strcmp(m->labels[0]->key, "env") == 0 &&
              strcmp(m->labels[0]->value, "prod") == 0 && strcmp(m->labels[1]->key, "tier") == 0);
        CHECK(m->n_by_id == 2 && m->by_id[0]->key == -5 && m->by_id[0]->value->count == 5);
        CHECK(m->n_colors == 1 && m->colors[0]->key == UINT64_MAX &&
              m->colors[0]->value == TESTMSG__COLOR__COLOR_RED);
        CHECK(m->n_flags == 2 && m->flags[0]->key == 1 && m->flags[0]->value.len == 1);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    CHECK_RT(AT, in,
             "{" DEFAULTS_HEAD "," DEFAULTS_REPEATED ",\"labels\":{\"env\":\"prod\",\"tier\":\"\"},"
             "\"tags\":{\"a\":\"1\"},\"by_id\":{\"-5\":{\"count\":5,\"label\":\"\"},"
             "\"7\":{\"count\":0,\"label\":\"\"}},\"colors\":{\"18446744073709551615\":\"COLOR_RED\"},"
             "\"flags\":{\"true\":\"QQ==\",\"false\":\"\"}}");
    CHECK_STR(s_err(AT, "{\"by_id\":{\"x\":{}}}"),
              "field \"by_id[x]\": map key is not a decimal int32");
    CHECK_STR(s_err(AT, "{\"by_id\":{\"2147483648\":{}}}"),
              "field \"by_id[2147483648]\": value 2147483648 out of range for int32");
    CHECK_STR(s_err(AT, "{\"colors\":{\"-1\":1}}"),
              "field \"colors[-1]\": value -1 out of range for uint64");
    CHECK_STR(s_err(AT, "{\"flags\":{\"yes\":\"\"}}"),
              "field \"flags[yes]\": map key must be \"true\" or \"false\"");
    CHECK_STR(s_err(AT, "{\"tags\":{\"a\":null}}"), "field \"tags[a]\": expected string, got null");
    CHECK_STR(s_err(AT, "{\"labels\":[{\"key\":\"a\",\"value\":\"b\"}]}"),
              "field \"labels\": expected object, got array");
    CHECK_STR(s_err(AT, "{\"by_id\":{\"1\":{\"bad\":1}}}"),
              "field \"by_id[1].bad\": unknown field of message \"testmsg.Inner\"");
}

TEST(map_repeated_key_from_wire_last_wins)
{
    /* The wire form can repeat a key; JSON must hold it once, last value. */
    Testmsg__AllTypes m = TESTMSG__ALL_TYPES__INIT;
    Testmsg__AllTypes__TagsEntry e[3] = { TESTMSG__ALL_TYPES__TAGS_ENTRY__INIT,
                                          TESTMSG__ALL_TYPES__TAGS_ENTRY__INIT,
                                          TESTMSG__ALL_TYPES__TAGS_ENTRY__INIT };
    Testmsg__AllTypes__TagsEntry *ep[3] = { &e[0], &e[1], &e[2] };
    e[0].key = "k"; e[0].value = "first";
    e[1].key = "other"; e[1].value = "x";
    e[2].key = "k"; e[2].value = "last";
    m.n_tags = 3;
    m.tags = ep;
    char *json = svc_pb_to_json(&m.base, NULL);
    CHECK(json && strstr(json, "\"tags\":{\"other\":\"x\",\"k\":\"last\"}") != NULL);
    ProtobufCMessage *back = NULL;
    CHECK_INT(svc_json_to_pb(AT, json, strlen(json), &back, NULL, 0), 0);
    protobuf_c_message_free_unpacked(back, NULL);
    free(json);
    /* keys that differ only in ill-formed bytes are one key once written */
    e[0].key = "\xff";
    e[1].key = "\xfe";
    m.n_tags = 2;
    json = svc_pb_to_json(&m.base, NULL);
    CHECK(json && strstr(json, "\"tags\":{\"\xef\xbf\xbd\":\"x\"}") != NULL);
    CHECK_INT(svc_json_to_pb(AT, json, strlen(json), &back, NULL, 0), 0);
    protobuf_c_message_free_unpacked(back, NULL);
    free(json);
}

TEST(oneof_members)
{
    CHECK_RT(AT, "{\"choice_id\":\"77\"}",
             "{" DEFAULTS_HEAD "," DEFAULTS_REPEATED ",\"choice_id\":\"77\"," DEFAULTS_MAPS "}");
    /* a chosen member with the default value is still chosen */
    CHECK_RT(AT, "{\"choice_name\":\"\"}",
             "{" DEFAULTS_HEAD "," DEFAULTS_REPEATED ",\"choice_name\":\"\"," DEFAULTS_MAPS "}");
    CHECK_RT(AT, "{\"choice_blob\":\"\"}",
             "{" DEFAULTS_HEAD "," DEFAULTS_REPEATED ",\"choice_blob\":\"\"," DEFAULTS_MAPS "}");
    CHECK_RT(AT, "{\"choice_inner\":{\"count\":1}}",
             "{" DEFAULTS_HEAD "," DEFAULTS_REPEATED ",\"choice_inner\":{\"count\":1,\"label\":\"\"},"
             DEFAULTS_MAPS "}");
    CHECK_STR(s_err(AT, "{\"choice_name\":\"a\",\"choice_inner\":{}}"),
              "field \"choice_inner\": oneof already set by field \"choice_name\"");
    /* null does not choose */
    CHECK_STR(s_err(AT, "{\"choice_name\":null,\"choice_id\":1}"), "ok");
}

TEST(float_special_values_and_shortest_text)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"f_float\":\"NaN\",\"f_double\":\"-Infinity\",\"r_double\":[\"Infinity\",\"NaN\",-0.0],"
        "\"r_float\":[0.1,3.4028234663852886e38,1e-45,16777216]}");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK(isnan(m->f_float));
    CHECK(isinf(m->f_double) && m->f_double < 0);
    CHECK(m->n_r_double == 3 && isinf(m->r_double[0]) && m->r_double[0] > 0 &&
          isnan(m->r_double[1]) && m->r_double[2] == 0 && signbit(m->r_double[2]));
    CHECK(m->n_r_float == 4 && m->r_float[0] == 0.1f);
    char *json = svc_pb_to_json(&m->base, NULL);
    CHECK(strstr(json, "\"f_float\":\"NaN\"") != NULL);
    CHECK(strstr(json, "\"f_double\":\"-Infinity\"") != NULL);
    CHECK(strstr(json, "\"r_double\":[\"Infinity\",\"NaN\",-0.0]") != NULL);
    CHECK(strstr(json, "\"r_float\":[0.1,3.4028235e+38,1.4013e-45,16777216]") != NULL);
    free(json);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    CHECK_RT(AT, "{\"f_double\":0.1,\"f_float\":-2.5e-3}",
             "{\"f_int32\":0,\"f_int64\":\"0\",\"f_uint32\":0,\"f_uint64\":\"0\",\"f_sint32\":0,"
             "\"f_sint64\":\"0\",\"f_fixed32\":0,\"f_fixed64\":\"0\",\"f_sfixed32\":0,"
             "\"f_sfixed64\":\"0\",\"f_float\":-0.0025,\"f_double\":0.1,\"f_bool\":false,"
             "\"f_string\":\"\",\"f_bytes\":\"\",\"f_enum\":\"COLOR_UNSPECIFIED\","
             DEFAULTS_REPEATED "," DEFAULTS_MAPS "}");
    /* -0 survives where the wire keeps it (repeated), not in a proto3 singular field */
    CHECK_RT(AT, "{\"f_double\":-0.0,\"r_float\":[-0.0]}",
             "{" DEFAULTS_HEAD ",\"r_int32\":[],\"r_int64\":[],\"r_uint64\":[],\"r_float\":[-0.0],"
             "\"r_double\":[],\"r_bool\":[],\"r_string\":[],\"r_bytes\":[],\"r_enum\":[],"
             "\"r_inner\":[]," DEFAULTS_MAPS "}");
    CHECK_STR(s_err(AT, "{\"f_double\":\"nan\"}"),
              "field \"f_double\": expected number, got string \"nan\"");
    CHECK_STR(s_err(AT, "{\"f_double\":\"1.5\"}"),
              "field \"f_double\": expected number, got string \"1.5\"");
    CHECK_STR(s_err(AT, "{\"f_float\":1e39}"), "field \"f_float\": value 1e+39 out of range for float");
    CHECK_STR(s_err(AT, "{\"f_double\":1e308}"), "ok");
}

TEST(bytes_base64)
{
    static const struct {
        const char *in;    /* the JSON string */
        const char *bytes; /* decoded, or NULL when invalid */
        size_t len;        /* decoded length */
    } cases[] = {
        { "", "", 0 },
        { "QQ==", "A", 1 },
        { "QQ", "A", 1 },
        { "QUI=", "AB", 2 },
        { "QUI", "AB", 2 },
        { "QUJD", "ABC", 3 },
        { "+/+/", "\xfb\xff\xbf", 3 },
        { "-_-_", "\xfb\xff\xbf", 3 },     /* URL-safe alphabet */
        { "AAEC/w==", "\x00\x01\x02\xff", 4 },
        { "Q", NULL, 0 },
        { "QQ=", NULL, 0 },
        { "QQ=Q", NULL, 0 },
        { "=QQQ", NULL, 0 },
        { "QQ===", NULL, 0 },
        { "QU I", NULL, 0 },
        { "QUI\\n", NULL, 0 },
        { "QU$=", NULL, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"f_bytes\":\"%s\"}", cases[i].in);
        ProtobufCMessage *pm = NULL;
        char err[128] = "";
        int rc = svc_json_to_pb(AT, json, strlen(json), &pm, err, sizeof err);
        Testmsg__AllTypes *m = (Testmsg__AllTypes *)pm;
        if (!cases[i].bytes) {
            if (rc != SVC_ECODEC || strcmp(err, "field \"f_bytes\": invalid base64") != 0)
                test_fail(__FILE__, __LINE__, "\"%s\" accepted (rc %d, %s)", cases[i].in, rc, err);
        } else if (rc != 0 || m->f_bytes.len != cases[i].len ||
                   (cases[i].len && memcmp(m->f_bytes.data, cases[i].bytes, cases[i].len) != 0)) {
            test_fail(__FILE__, __LINE__, "\"%s\" decoded wrongly (rc %d, %s)", cases[i].in, rc, err);
        }
        protobuf_c_message_free_unpacked(pm, NULL);
    }
    CHECK_STR(s_err(AT, "{\"f_bytes\":5}"), "field \"f_bytes\": expected base64 string, got number");
    /* output is standard, padded */
    CHECK_RT(AT, "{\"r_bytes\":[\"-_-_\",\"QQ\",\"QUI\"]}",
             "{" DEFAULTS_HEAD ",\"r_int32\":[],\"r_int64\":[],\"r_uint64\":[],\"r_float\":[],"
             "\"r_double\":[],\"r_bool\":[],\"r_string\":[],\"r_bytes\":[\"+/+/\",\"QQ==\",\"QUI=\"],"
             "\"r_enum\":[],\"r_inner\":[]," DEFAULTS_MAPS "}");
}

TEST(unicode_and_escapes)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"f_string\":\"h\\u00e9 \\u2603 \\ud83d\\ude00 \xe2\x82\xac\","
        "\"r_string\":[\"q\\\"b\\\\s/\\n\\t\\u0001\"]}");
    CHECK(m != NULL);
    if (!m)
        return;
    CHECK_STR(m->f_string, "h\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80 \xe2\x82\xac");
    CHECK(m->n_r_string == 1 && strcmp(m->r_string[0], "q\"b\\s/\n\t\x01") == 0);
    char *json = svc_pb_to_json(&m->base, NULL);
    CHECK(strstr(json, "\"f_string\":\"h\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x98\x80 \xe2\x82\xac\"") != NULL);
    CHECK(strstr(json, "\"r_string\":[\"q\\\"b\\\\s/\\n\\t\\u0001\"]") != NULL);
    free(json);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* NUL cannot live in a C string */
    CHECK(s_starts(s_err(AT, "{\"f_string\":\"a\\u0000b\"}"), "invalid json at line 1, column"));
    /* ill-formed UTF-8 in the input is refused by the parser */
    CHECK(s_starts(s_err(AT, "{\"f_string\":\"\xff\"}"), "invalid json at line 1"));
}

TEST(invalid_utf8_from_wire_is_replaced)
{
    Testmsg__AllTypes m = TESTMSG__ALL_TYPES__INIT;
    /* stray continuation, overlong "/", surrogate, truncated sequence */
    m.f_string = "a\x80" "b\xc0\xaf" "c\xed\xa0\x80" "d\xe2\x82";
    char *json = svc_pb_to_json(&m.base, NULL);
    CHECK(json && strstr(json, "\"f_string\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
                               "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd\"") != NULL);
    ProtobufCMessage *back = NULL;
    CHECK_INT(svc_json_to_pb(AT, json, strlen(json), &back, NULL, 0), 0);
    protobuf_c_message_free_unpacked(back, NULL);
    free(json);
}

TEST(unknown_fields_rejected)
{
    CHECK_STR(s_err(AT, "{\"f_int32\":1,\"bogus\":2}"),
              "field \"bogus\": unknown field of message \"testmsg.AllTypes\"");
    CHECK_STR(s_err(AT, "{\"f_inner\":{\"child\":{\"nope\":null}}}"),
              "field \"f_inner.child.nope\": unknown field of message \"testmsg.Inner\"");
    CHECK_STR(s_err(AT, "{\"r_inner\":[{},{},{\"x\":1}]}"),
              "field \"r_inner[2].x\": unknown field of message \"testmsg.Inner\"");
    /* one line even when the key holds a newline */
    CHECK_STR(s_err(AT, "{\"a\\nb\":1}"),
              "field \"a?b\": unknown field of message \"testmsg.AllTypes\"");
    CHECK_STR(s_err(AT, "{\"gr\u00f6\u00dfe\":1}"),
              "field \"gr\xc3\xb6\xc3\x9f" "e\": unknown field of message \"testmsg.AllTypes\"");
    /* a long key is cut, and a character cut in half does not leave bad UTF-8 */
    char json[256] = "{\"a", want[256] = "field \"a";
    for (int i = 0; i < 40; i++)
        strcat(json, "\xc3\xa9");
    for (int i = 0; i < 31; i++)
        strcat(want, "\xc3\xa9");
    strcat(json, "\":1}");
    strcat(want, "?\": unknown field of message \"testmsg.AllTypes\"");
    CHECK_STR(s_err(AT, json), want);
}

TEST(wrong_types_rejected)
{
    static const struct {
        const char *json; /* input */
        const char *err;  /* expected reason */
    } cases[] = {
        { "{\"f_int32\":\"5\"}", "field \"f_int32\": expected integer, got string" },
        { "{\"f_uint32\":true}", "field \"f_uint32\": expected integer, got boolean" },
        { "{\"f_int32\":1.5}", "field \"f_int32\": expected integer, got fractional number 1.5" },
        { "{\"f_int64\":\"12x\"}", "field \"f_int64\": expected integer, got string \"12x\"" },
        { "{\"f_int64\":\" 1\"}", "field \"f_int64\": expected integer, got string \" 1\"" },
        { "{\"f_int64\":\"+1\"}", "field \"f_int64\": expected integer, got string \"+1\"" },
        { "{\"f_int64\":\"\"}", "field \"f_int64\": expected integer, got string \"\"" },
        { "{\"f_int64\":{}}", "field \"f_int64\": expected integer or decimal string, got object" },
        { "{\"f_bool\":1}", "field \"f_bool\": expected boolean, got number" },
        { "{\"f_bool\":\"true\"}", "field \"f_bool\": expected boolean, got string" },
        { "{\"f_string\":5}", "field \"f_string\": expected string, got number" },
        { "{\"f_double\":[]}", "field \"f_double\": expected number, got array" },
        { "{\"f_inner\":[]}", "field \"f_inner\": expected object, got array" },
        { "{\"f_inner\":{\"count\":\"3\"}}", "field \"f_inner.count\": expected integer, got string" },
        { "{\"r_int32\":{}}", "field \"r_int32\": expected array, got object" },
        { "{\"tags\":[]}", "field \"tags\": expected object, got array" },
        { "[]", "message \"testmsg.AllTypes\": expected object, got array" },
        { "null", "message \"testmsg.AllTypes\": expected object, got null" },
        { "\"x\"", "message \"testmsg.AllTypes\": expected object, got string" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = s_err(AT, cases[i].json);
        if (strcmp(got, cases[i].err) != 0)
            test_fail(__FILE__, __LINE__, "%s: got '%s', want '%s'", cases[i].json, got, cases[i].err);
    }
}

TEST(integer_ranges)
{
    static const struct {
        const char *json; /* input */
        const char *err;  /* expected reason, "ok" when accepted */
    } cases[] = {
        { "{\"f_int32\":2147483647}", "ok" },
        { "{\"f_int32\":-2147483648}", "ok" },
        { "{\"f_int32\":2147483648}", "field \"f_int32\": value 2147483648 out of range for int32" },
        { "{\"f_sint32\":-2147483649}",
          "field \"f_sint32\": value -2147483649 out of range for sint32" },
        { "{\"f_uint32\":4294967295}", "ok" },
        { "{\"f_uint32\":4294967296}", "field \"f_uint32\": value 4294967296 out of range for uint32" },
        { "{\"f_fixed32\":-1}", "field \"f_fixed32\": value -1 out of range for fixed32" },
        { "{\"f_uint32\":-0}", "ok" },
        { "{\"f_int32\":3e9}", "field \"f_int32\": value 3000000000 out of range for int32" },
        { "{\"f_int64\":\"9223372036854775807\"}", "ok" },
        { "{\"f_int64\":\"9223372036854775808\"}",
          "field \"f_int64\": value 9223372036854775808 out of range for int64" },
        { "{\"f_sfixed64\":\"-9223372036854775809\"}",
          "field \"f_sfixed64\": value -9223372036854775809 out of range for sfixed64" },
        { "{\"f_uint64\":\"18446744073709551616\"}",
          "field \"f_uint64\": value 18446744073709551616 out of range for uint64" },
        { "{\"f_uint64\":-1}", "field \"f_uint64\": value -1 out of range for uint64" },
        { "{\"f_fixed64\":\"-1\"}", "field \"f_fixed64\": value -1 out of range for fixed64" },
        { "{\"f_uint64\":1e20}",
          "field \"f_uint64\": value 1e+20 out of range for uint64" },
        { "{\"r_int32\":[0,1,99999999999]}",
          "field \"r_int32[2]\": value 99999999999 out of range for int32" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = s_err(AT, cases[i].json);
        if (strcmp(got, cases[i].err) != 0)
            test_fail(__FILE__, __LINE__, "%s: got '%s', want '%s'", cases[i].json, got, cases[i].err);
    }
}

TEST(invalid_json_rejected)
{
    CHECK_STR(s_err(AT, "{"),
              "invalid json at line 1, column 1: string or '}' expected near end of file");
    CHECK(s_starts(s_err(AT, "{\"f_int32\":1,}"), "invalid json at line 1, column 14: "));
    CHECK(s_starts(s_err(AT, "{\"f_int32\":1} x"), "invalid json at line 1, column "));
    CHECK(s_starts(s_err(AT, ""), "invalid json at line 1, column 0: "));
    CHECK(s_starts(s_err(AT, "{\n\"f_int32\": 01}"), "invalid json at line 2, column "));
    CHECK(s_starts(s_err(AT, "{\"f_int32\":1,\"f_int32\":2}"), "invalid json at line 1, column "));
    CHECK(strstr(s_err(AT, "{\"f_int32\":1,\"f_int32\":2}"), "duplicate") != NULL);
    /* a uint64 above int64 must be a string: the parser refuses the number */
    CHECK(s_starts(s_err(AT, "{\"f_uint64\":18446744073709551615}"), "invalid json"));
}

TEST(json_need_not_be_nul_terminated)
{
    const char buf[] = "{\"f_int32\":5}trailing garbage";
    ProtobufCMessage *m = NULL;
    CHECK_INT(svc_json_to_pb(AT, buf, 13, &m, NULL, 0), 0);
    CHECK(m && ((Testmsg__AllTypes *)m)->f_int32 == 5);
    protobuf_c_message_free_unpacked(m, NULL);
    /* and the error buffer may be tiny: truncated, still terminated */
    char err[8];
    memset(err, 'x', sizeof err);
    CHECK_INT(svc_json_to_pb(AT, buf, sizeof buf - 1, &m, err, sizeof err), SVC_ECODEC);
    CHECK(m == NULL);
    CHECK_STR(err, "invalid");
}

/* {"f_inner":{"child":{"child":...{}}}} with n Inner levels: depth n + 1. */
static char *s_deep_json(int n)
{
    size_t cap = (size_t)n * 12 + 32, len = 0;
    char *s = malloc(cap);
    len += (size_t)sprintf(s + len, "{\"f_inner\":");
    for (int i = 1; i < n; i++)
        len += (size_t)sprintf(s + len, "{\"child\":");
    len += (size_t)sprintf(s + len, "{}");
    for (int i = 0; i < n; i++)
        s[len++] = '}';
    s[len] = '\0';
    return s;
}

TEST(json_nesting_limit)
{
    char *ok = s_deep_json(SVC_CODEC_MAX_DEPTH - 1);
    char *deep = s_deep_json(SVC_CODEC_MAX_DEPTH);
    char *very = s_deep_json(100000); /* past jansson's own limit too */
    CHECK_STR(s_err(AT, ok), "ok");
    const char *e = s_err(AT, deep);
    CHECK(s_starts(e, "field \"f_inner.child.child."));
    CHECK(strstr(e, "\": nesting deeper than 64") != NULL);
    CHECK(s_starts(s_err(AT, very), "invalid json"));
    /* a map entry is a level, as on the wire */
    CHECK(strstr(s_err(AT, "{\"by_id\":{\"1\":{}}}"), "nesting") == NULL);
    free(ok);
    free(deep);
    free(very);
}

/*
 * Wire form of an AllTypes whose f_inner nests n Inner levels through
 * field 3 (child): depth n + 1.  Written back to front.
 */
static uint8_t *s_deep_pb(int n, size_t *len)
{
    size_t cap = (size_t)n * 8 + 16, at = cap;
    uint8_t *b = malloc(cap);
    for (int i = 0; i < n; i++) {
        size_t inner = cap - at;
        uint8_t v[10];
        int k = 0;
        do {
            v[k++] = (uint8_t)((inner & 0x7f) | (inner > 0x7f ? 0x80 : 0));
            inner >>= 7;
        } while (inner);
        at -= (size_t)k;
        memcpy(b + at, v, (size_t)k);
        if (i == n - 1) {
            b[--at] = 0x01; /* field 17, wire type 2: 0x8a 0x01 */
            b[--at] = 0x8a;
        } else {
            b[--at] = 0x1a; /* field 3, wire type 2 */
        }
    }
    *len = cap - at;
    memmove(b, b + at, *len);
    return b;
}

TEST(protobuf_nesting_limit)
{
    size_t n1, n2, n3;
    uint8_t *ok = s_deep_pb(SVC_CODEC_MAX_DEPTH - 1, &n1);
    uint8_t *deep = s_deep_pb(SVC_CODEC_MAX_DEPTH, &n2);
    uint8_t *very = s_deep_pb(1000000, &n3); /* would exhaust the stack in protobuf-c */
    ProtobufCMessage *m = NULL;
    char err[256];
    CHECK_INT(svc_codec_decode(SVC_CT_PROTOBUF, AT, ok, n1, &m, err, sizeof err), 0);
    Testmsg__AllTypes *t = (Testmsg__AllTypes *)m;
    int levels = 0;
    for (Testmsg__Inner *i = t ? t->f_inner : NULL; i; i = i->child)
        levels++;
    CHECK_INT(levels, SVC_CODEC_MAX_DEPTH - 1);
    protobuf_c_message_free_unpacked(m, NULL);
    CHECK_INT(svc_codec_decode(SVC_CT_PROTOBUF, AT, deep, n2, &m, err, sizeof err), SVC_ECODEC);
    CHECK(m == NULL);
    CHECK_STR(err, "invalid protobuf for message \"testmsg.AllTypes\": nesting deeper than 64");
    CHECK_INT(svc_codec_decode(SVC_CT_PROTOBUF, AT, very, n3, &m, err, sizeof err), SVC_ECODEC);
    CHECK(m == NULL);
    free(ok);
    free(deep);
    free(very);
}

TEST(proto2_required_and_optional)
{
    CHECK_STR(s_err(REQ, "{\"name\":\"n\"}"), "field \"id\": required field missing");
    CHECK_STR(s_err(REQ, "{\"id\":1}"), "field \"name\": required field missing");
    CHECK_STR(s_err(REQ, "{\"name\":null,\"id\":1}"), "field \"name\": required field missing");
    CHECK_STR(s_err(REQ, "{\"name\":\"n\",\"id\":1,\"sub\":{}}"),
              "field \"sub.x\": required field missing");
    CHECK_STR(s_err(REQ, "{\"name\":\"n\",\"id\":1,\"subs\":[{\"x\":1},{\"flag\":true}]}"),
              "field \"subs[1].x\": required field missing");
    /* absent optional fields are omitted, defaults or not */
    CHECK_RT(REQ, "{\"name\":\"n\",\"id\":1}", "{\"name\":\"n\",\"id\":1,\"subs\":[]}");
    Testmsg2__Req *r = (Testmsg2__Req *)s_decode(REQ, "{\"name\":\"n\",\"id\":1}");
    CHECK(r && !r->has_level && r->level == 7 && strcmp(r->note, "none") == 0 && !r->has_blob);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* present optional fields are written, even when equal to the default */
    CHECK_RT(REQ,
             "{\"name\":\"n\",\"id\":1,\"level\":7,\"note\":\"none\",\"blob\":\"\","
             "\"sub\":{\"x\":2}}",
             "{\"name\":\"n\",\"id\":1,\"level\":7,\"note\":\"none\",\"sub\":{\"x\":2},\"subs\":[],"
             "\"blob\":\"\"}");
    r = (Testmsg2__Req *)s_decode(REQ, "{\"name\":\"\",\"id\":0,\"level\":0}");
    CHECK(r && r->has_level && r->level == 0);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    /* missing required fields on the wire are refused too */
    ProtobufCMessage *m = NULL;
    char err[256];
    CHECK_INT(svc_codec_decode(NULL, REQ, "\x10\x01", 2, &m, err, sizeof err), SVC_ECODEC);
    CHECK(m == NULL);
    CHECK(s_starts(err, "invalid protobuf for message \"testmsg2.Req\""));
}

TEST(content_types)
{
    static const struct {
        const char *ct;       /* content type */
        svc_codec_kind kind;  /* expected codec */
    } cases[] = {
        { NULL, SVC_CODEC_PROTOBUF },
        { "", SVC_CODEC_PROTOBUF },
        { "application/protobuf", SVC_CODEC_PROTOBUF },
        { "application/x-protobuf", SVC_CODEC_PROTOBUF },
        { "application/octet-stream", SVC_CODEC_PROTOBUF },
        { "Application/X-Protobuf", SVC_CODEC_PROTOBUF },
        { "application/json", SVC_CODEC_JSON },
        { "APPLICATION/JSON", SVC_CODEC_JSON },
        { "application/json; charset=utf-8", SVC_CODEC_JSON },
        { "application/json;charset=UTF-8", SVC_CODEC_JSON },
        { "  application/json ; q=1", SVC_CODEC_JSON },
        { "application/protobuf; proto=greeter.HelloRequest", SVC_CODEC_PROTOBUF },
        { "text/plain", SVC_CODEC_UNKNOWN },
        { "application/jsonx", SVC_CODEC_UNKNOWN },
        { "application/json-rpc", SVC_CODEC_UNKNOWN },
        { "application/js", SVC_CODEC_UNKNOWN },
        { "json", SVC_CODEC_UNKNOWN },
        { "application/grpc+proto", SVC_CODEC_UNKNOWN },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (svc_codec_for(cases[i].ct) != cases[i].kind)
            test_fail(__FILE__, __LINE__, "svc_codec_for(\"%s\") = %d, want %d",
                      cases[i].ct ? cases[i].ct : "(null)", svc_codec_for(cases[i].ct), cases[i].kind);
}

TEST(codec_encode_decode_both_types)
{
    Testmsg__AllTypes m = TESTMSG__ALL_TYPES__INIT;
    Testmsg__Inner inner = TESTMSG__INNER__INIT;
    inner.count = 3;
    m.f_string = "hello";
    m.f_int64 = -5;
    m.f_inner = &inner;
    const char *types[] = { SVC_CT_JSON, "application/json; charset=utf-8", SVC_CT_PROTOBUF,
                            "application/x-protobuf", "", NULL };
    char *want = svc_pb_to_json(&m.base, NULL);
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        void *buf = NULL;
        size_t len = 0;
        ProtobufCMessage *back = NULL;
        char err[128];
        CHECK_INT(svc_codec_encode(types[i], &m.base, &buf, &len), 0);
        if (svc_codec_for(types[i]) == SVC_CODEC_JSON) {
            CHECK_STR(buf, want);
            CHECK_INT(len, strlen(want));
        }
        CHECK_INT(svc_codec_decode(types[i], AT, buf, len, &back, err, sizeof err), 0);
        char *got = back ? svc_pb_to_json(back, NULL) : NULL;
        CHECK_STR(got, want);
        free(got);
        free(buf);
        protobuf_c_message_free_unpacked(back, NULL);
    }
    free(want);
    /* empty protobuf is the empty message; empty JSON is an error */
    ProtobufCMessage *e = NULL;
    char err[128];
    CHECK_INT(svc_codec_decode(SVC_CT_PROTOBUF, AT, NULL, 0, &e, err, sizeof err), 0);
    CHECK(e != NULL);
    protobuf_c_message_free_unpacked(e, NULL);
    CHECK_INT(svc_codec_decode(SVC_CT_JSON, AT, "", 0, &e, err, sizeof err), SVC_ECODEC);
    /* unknown content types */
    void *buf = (void *)1;
    size_t len = 1;
    CHECK_INT(svc_codec_encode("text/xml", &m.base, &buf, &len), SVC_EINVAL);
    CHECK(buf == NULL && len == 0);
    e = (ProtobufCMessage *)&e;
    CHECK_INT(svc_codec_decode("text/xml; a=b", AT, "x", 1, &e, err, sizeof err), SVC_EINVAL);
    CHECK(e == NULL);
    CHECK_STR(err, "unsupported content type \"text/xml; a=b\"");
}

TEST(garbage_protobuf_rejected)
{
    static const struct {
        const char *bytes; /* input */
        size_t len;        /* its length */
    } cases[] = {
        { "\xff", 1 },                       /* truncated tag varint */
        { "\x08", 1 },                       /* f_int32 tag, value missing */
        { "\x08\xff\xff", 3 },               /* truncated varint */
        { "\x72\x05hel", 5 },                /* f_string claims 5 bytes, 3 follow */
        { "\x3d\x01\x02", 3 },               /* fixed32 cut short */
        { "\x41\x01", 2 },                   /* fixed64 cut short */
        { "\x0f", 1 },                       /* wire type 7 */
        { "\x0b\x0c", 2 },                   /* group wire types */
        { "\x8a\x01\x02\x08", 4 },           /* f_inner cut short inside */
        { "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12 }, /* 11-byte varint */
        { "\x85\x00\x00\x00\xf1\x30", 6 },   /* field number 0 in an over-long tag */
        { "\x8a\x01\x06\x85\x00\x01\x02\x03\x04", 9 }, /* the same inside f_inner */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ProtobufCMessage *m = (ProtobufCMessage *)&m;
        char err[128] = "";
        int rc = svc_codec_decode(SVC_CT_PROTOBUF, AT, cases[i].bytes, cases[i].len, &m, err,
                                  sizeof err);
        if (rc != SVC_ECODEC || m != NULL ||
            !s_starts(err, "invalid protobuf for message \"testmsg.AllTypes\""))
            test_fail(__FILE__, __LINE__, "case %zu: rc %d, err '%s'", i, rc, err);
    }
}

TEST(truncated_protobuf_never_crashes)
{
    Testmsg__AllTypes *m = (Testmsg__AllTypes *)s_decode(AT,
        "{\"f_string\":\"hello\",\"f_inner\":{\"label\":\"x\",\"child\":{\"count\":3}},"
        "\"r_inner\":[{\"count\":1}],\"tags\":{\"k\":\"v\"},\"choice_blob\":\"AAAA\","
        "\"f_double\":1.5}");
    CHECK(m != NULL);
    if (!m)
        return;
    void *buf;
    size_t len;
    CHECK_INT(svc_codec_encode(NULL, &m->base, &buf, &len), 0);
    int failures = 0;
    for (size_t cut = 0; cut < len; cut++) {
        ProtobufCMessage *back = NULL;
        char err[128];
        int rc = svc_codec_decode(NULL, AT, buf, cut, &back, err, sizeof err);
        CHECK(rc == 0 || (rc == SVC_ECODEC && back == NULL));
        failures += rc != 0;
        protobuf_c_message_free_unpacked(back, NULL);
    }
    /* most cuts land inside a field */
    CHECK(failures > (int)len / 2);
    free(buf);
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

TEST(pb_to_json_edge_cases)
{
    size_t len = 99;
    char *s = svc_pb_to_json(NULL, &len);
    CHECK_STR(s, "{}");
    CHECK_INT(len, 2);
    free(s);
    /* unknown enum numbers from the wire stay numbers; map keys are quoted */
    Testmsg__AllTypes m = TESTMSG__ALL_TYPES__INIT;
    Testmsg__AllTypes__ColorsEntry e = TESTMSG__ALL_TYPES__COLORS_ENTRY__INIT, *ep = &e;
    e.key = 5;
    e.value = (Testmsg__Color)99;
    m.n_colors = 1;
    m.colors = &ep;
    m.f_enum = (Testmsg__Color)-7;
    s = svc_pb_to_json(&m.base, &len);
    CHECK(strstr(s, "\"f_enum\":-7") != NULL);
    CHECK(strstr(s, "\"colors\":{\"5\":99}") != NULL);
    CHECK_INT(len, strlen(s));
    free(s);
    /* a map entry without a value (as the wire allows) shows the empty message */
    Testmsg__AllTypes__ByIdEntry b = TESTMSG__ALL_TYPES__BY_ID_ENTRY__INIT, *bp = &b;
    b.key = 4;
    Testmsg__AllTypes w = TESTMSG__ALL_TYPES__INIT;
    w.n_by_id = 1;
    w.by_id = &bp;
    s = svc_pb_to_json(&w.base, NULL);
    CHECK(strstr(s, "\"by_id\":{\"4\":{\"count\":0,\"label\":\"\"}}") != NULL);
    free(s);
    /* a oneof string left at the default pointer is not on the wire, nor in JSON */
    Testmsg__AllTypes o = TESTMSG__ALL_TYPES__INIT;
    o.choice_case = TESTMSG__ALL_TYPES__CHOICE_CHOICE_NAME;
    o.choice_name = (char *)protobuf_c_empty_string;
    CHECK_INT(protobuf_c_message_get_packed_size(&o.base), 0);
    s = svc_pb_to_json(&o.base, NULL);
    CHECK_STR(s, DEFAULTS);
    free(s);
}

static const test_case tests[] = {
    T(all_scalars_roundtrip),
    T(defaults_written_absent_message_omitted),
    T(null_means_default),
    T(int64_strings_out_numbers_or_strings_in),
    T(camel_case_names_accepted),
    T(enums_by_name_and_number),
    T(nested_messages),
    T(repeated_fields),
    T(maps_are_objects),
    T(map_repeated_key_from_wire_last_wins),
    T(oneof_members),
    T(float_special_values_and_shortest_text),
    T(bytes_base64),
    T(unicode_and_escapes),
    T(invalid_utf8_from_wire_is_replaced),
    T(unknown_fields_rejected),
    T(wrong_types_rejected),
    T(integer_ranges),
    T(invalid_json_rejected),
    T(json_need_not_be_nul_terminated),
    T(json_nesting_limit),
    T(protobuf_nesting_limit),
    T(proto2_required_and_optional),
    T(content_types),
    T(codec_encode_decode_both_types),
    T(garbage_protobuf_rejected),
    T(truncated_protobuf_never_crashes),
    T(pb_to_json_edge_cases),
    { NULL, NULL },
};

int main(int argc, char **argv)
{
    return test_main("codec", tests, argc, argv);
}
