/*
 * svcctl/cmd_store.c — store read|write|delete|list|databases|tables, and
 * lock, unlock, locks, leader: the store and sync API of svc.store (stored).
 *
 * Output as micro's store commands: `store read` prints the values, with
 * -v a KEY VALUE EXPIRY table; -o json prints records with each value as
 * JSON when its content type is JSON, as text when it is UTF-8, else as
 * base64 (with "encoding":"base64").
 */
#include "svcctl.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_STORE "svc.store"

/* Flags every store subcommand may take. */
typedef struct s_args {
    const char *database, *table, *prefix, *suffix, *content_type;
    long limit, offset;
    long long ttl_ms, wait_ms;
    bool verbose;
    json_t *metadata;            /* object, owned */
    int npos;                    /* positional arguments */
    char **pos;                  /* borrowed from argv */
} s_args;

/* ---- helpers ------------------------------------------------------------------ */

/* "10s", "500ms", "2m", "1h", or plain milliseconds; -1 when invalid. */
static long long s_duration(const char *v)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (errno || end == v || n < 0)
        return -1;
    double mult = !*end || !strcmp(end, "ms") ? 1 : !strcmp(end, "s") ? 1000 : !strcmp(end, "m") ? 60000
                : !strcmp(end, "h") ? 3600000 : -1;
    if (mult < 0 || n * mult > 1e13)
        return -1;
    return (long long)(n * mult);
}

static char *s_b64(const void *data, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out)
        EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

/* Decodes base64 text into a malloc'd buffer (NUL-terminated); NULL if invalid. */
static unsigned char *s_unb64(const char *s, size_t *len)
{
    size_t n = strlen(s);
    unsigned char *out = malloc(n / 4 * 3 + 4);
    if (!out)
        return NULL;
    int got = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
    if (got < 0 || n % 4) {
        free(out);
        return NULL;
    }
    size_t pad = (n && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    *len = (size_t)got - pad;
    out[*len] = 0;
    return out;
}

static bool s_utf8(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (k == 9 || (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || i + k >= n + (k ? 0 : 1))
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

static bool s_is_json_ct(const char *ct)
{
    return ct && svc_codec_for(ct) == SVC_CODEC_JSON;
}

/*
 * Calls svc.store's endpoint with a JSON request (stolen) and returns the
 * parsed answer, or NULL after printing the error (*code = 1).
 */
static json_t *s_call(const ctl_opts *o, const char *endpoint, json_t *req, int wait_ms, int *code)
{
    svc_client *c = svc_client_new(o->registry);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    int timeout = o->timeout_ms ? o->timeout_ms : 5000;
    if (wait_ms > 0 && timeout < wait_ms + 2000)
        timeout = wait_ms + 2000;
    svc_call_opts co = { .timeout_ms = timeout, .content_type = SVC_CT_JSON };
    svc_reply r = SVC_REPLY_INIT;
    svc_error err = SVC_ERROR_INIT;
    json_t *ans = NULL;
    int rc = c && body ? svc_client_call_raw(c, S_STORE, endpoint, body, strlen(body), &co, &r, &err)
                       : -ENOMEM;
    if (rc == 0) {
        json_error_t je;
        ans = json_loadb(r.body ? r.body : "{}", r.body ? r.len : 2, 0, &je);
        if (!ans)
            ctl_err("answer of %s is not JSON: %s", endpoint, je.text);
    } else if (rc == SVC_ENOTFOUND && err.code == 404 && strstr(err.detail ?: "", S_STORE)) {
        ctl_err("service \"%s\" not found: is stored running?", S_STORE);
    } else if (rc == SVC_EREMOTE && err.detail) {
        ctl_err("%s", err.detail);
    } else {
        ctl_print_error(endpoint, &err);
    }
    if (!ans)
        *code = 1;
    svc_reply_release(&r);
    svc_error_release(&err);
    free(body);
    svc_client_destroy(&c);
    return ans;
}

static json_t *s_scope(const s_args *a)
{
    json_t *req = json_object();
    if (a->database)
        json_object_set_new(req, "database", json_string(a->database));
    if (a->table)
        json_object_set_new(req, "table", json_string(a->table));
    return req;
}

static void s_filters(json_t *req, const s_args *a)
{
    if (a->prefix)
        json_object_set_new(req, "prefix", json_string(a->prefix));
    if (a->suffix)
        json_object_set_new(req, "suffix", json_string(a->suffix));
    if (a->limit)
        json_object_set_new(req, "limit", json_integer(a->limit));
    if (a->offset)
        json_object_set_new(req, "offset", json_integer(a->offset));
}

/* "none", "expired" or the time left ("59s", "3m12s", "2h5m"). */
static void s_expiry(json_t *rec, char *buf, size_t len)
{
    const char *e = json_string_value(json_object_get(rec, "expiry"));
    long long exp = e ? atoll(e) : 0;
    if (!exp) {
        snprintf(buf, len, "none");
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long left = (exp - ((long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000) + 999) / 1000;
    if (left <= 0)
        snprintf(buf, len, "expired");
    else if (left < 60)
        snprintf(buf, len, "%llds", left);
    else if (left < 3600)
        snprintf(buf, len, "%lldm%llds", left / 60, left % 60);
    else
        snprintf(buf, len, "%lldh%lldm", left / 3600, left % 3600 / 60);
}

/* Replaces rec's base64 value with its JSON / text form (see the file comment). */
static void s_render_value(json_t *rec)
{
    size_t n = 0;
    unsigned char *v = s_unb64(json_string_value(json_object_get(rec, "value")) ?: "", &n);
    if (!v)
        return;
    json_t *j = NULL;
    if (s_is_json_ct(json_string_value(json_object_get(rec, "content_type"))))
        j = json_loadb((const char *)v, n, JSON_DECODE_ANY, NULL);
    if (!j && s_utf8(v, n) && !memchr(v, 0, n))
        j = json_string((const char *)v);
    if (j)
        json_object_set_new(rec, "value", j);
    else
        json_object_set_new(rec, "encoding", json_string("base64"));
    free(v);
}

/* The value as one line of text for tables and plain output (caller frees). */
static char *s_value_text(json_t *rec)
{
    json_t *v = json_object_get(rec, "value");
    if (json_is_string(v) && !json_object_get(rec, "encoding"))
        return strdup(json_string_value(v));
    if (json_is_string(v))
        return strdup(json_string_value(v));   /* base64 */
    return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* ---- subcommands ------------------------------------------------------------------ */

static int s_read(const ctl_opts *o, s_args *a)
{
    if (a->npos > 1 || (a->npos == 0 && !a->prefix && !a->suffix)) {
        ctl_err("store read: expected KEY, or --prefix / --suffix");
        return EXIT_USAGE;
    }
    json_t *req = s_scope(a);
    if (a->npos)
        json_object_set_new(req, "key", json_string(a->pos[0]));
    s_filters(req, a);
    int code = 0;
    json_t *ans = s_call(o, "Store.Read", req, 0, &code);
    if (!ans)
        return code;
    json_t *recs = json_object_get(ans, "records"), *rec;
    size_t i;
    json_array_foreach(recs, i, rec) s_render_value(rec);
    if (o->json) {
        ctl_print_json(recs);
    } else if (a->verbose) {
        static const char *const head[] = { "KEY", "VALUE", "EXPIRY" };
        ctl_table *t = ctl_table_new(3, head);
        json_array_foreach(recs, i, rec) {
            char exp[32], *val = s_value_text(rec);
            s_expiry(rec, exp, sizeof exp);
            const char *row[] = { json_string_value(json_object_get(rec, "key")), val ? val : "", exp };
            ctl_table_add(t, row);
            free(val);
        }
        ctl_table_print(t);
        ctl_table_free(t);
    } else {
        json_array_foreach(recs, i, rec) {
            char *val = s_value_text(rec);
            printf("%s\n", val ? val : "");
            free(val);
        }
    }
    json_decref(ans);
    return 0;
}

/* Reads all of stdin (at most 1 MiB + 1); NULL with *len 0 on failure. */
static char *s_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            if (cap > (1u << 20))
                break;
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) {
            buf[n] = 0;
            *len = n;
            return buf;
        }
    }
    free(buf);
    *len = 0;
    return NULL;
}

static int s_write(const ctl_opts *o, s_args *a)
{
    if (a->npos < 1 || a->npos > 2) {
        ctl_err("store write: expected KEY [VALUE|-]");
        return EXIT_USAGE;
    }
    size_t len = 0;
    bool arg = a->npos == 2 && strcmp(a->pos[1], "-");
    char *val = arg ? strdup(a->pos[1]) : s_stdin(&len);
    if (!val) {
        ctl_err("store write: cannot read the value from stdin (at most 1 MiB)");
        return 1;
    }
    if (arg)
        len = strlen(val);
    const char *ct = a->content_type;
    if (!ct) {
        json_t *probe = json_loadb(val, len, JSON_DECODE_ANY, NULL);
        ct = probe ? SVC_CT_JSON : s_utf8((unsigned char *)val, len) ? "text/plain"
                                                                    : "application/octet-stream";
        json_decref(probe);
    }
    json_t *rec = json_object();
    json_object_set_new(rec, "key", json_string(a->pos[0]));
    char *b64 = s_b64(val, len);
    json_object_set_new(rec, "value", json_string(b64 ? b64 : ""));
    json_object_set_new(rec, "content_type", json_string(ct));
    if (a->metadata)
        json_object_set(rec, "metadata", a->metadata);
    free(b64);
    free(val);
    json_t *req = s_scope(a);
    json_object_set_new(req, "record", rec);
    if (a->ttl_ms)
        json_object_set_new(req, "ttl_ms", json_integer(a->ttl_ms));
    int code = 0;
    json_t *ans = s_call(o, "Store.Write", req, 0, &code);
    if (ans && o->json)
        ctl_print_json(ans);
    json_decref(ans);
    return code;
}

static int s_delete(const ctl_opts *o, s_args *a)
{
    if (a->npos != 1) {
        ctl_err("store delete: expected KEY");
        return EXIT_USAGE;
    }
    json_t *req = s_scope(a);
    json_object_set_new(req, "key", json_string(a->pos[0]));
    int code = 0;
    json_t *ans = s_call(o, "Store.Delete", req, 0, &code);
    if (ans && o->json)
        ctl_print_json(ans);
    json_decref(ans);
    return code;
}

/* Prints the strings of array field `field` of ans one per line, or as JSON. */
static void s_print_names(const ctl_opts *o, json_t *ans, const char *field)
{
    json_t *list = json_object_get(ans, field), *s;
    size_t i;
    if (o->json) {
        ctl_print_json(list ? list : json_array());
        return;
    }
    json_array_foreach(list, i, s) printf("%s\n", json_string_value(s));
}

static int s_list(const ctl_opts *o, s_args *a)
{
    if (a->npos) {
        ctl_err("store list: unexpected argument \"%s\" (use --prefix)", a->pos[0]);
        return EXIT_USAGE;
    }
    json_t *req = s_scope(a);
    s_filters(req, a);
    int code = 0;
    json_t *ans = s_call(o, "Store.List", req, 0, &code);
    if (ans)
        s_print_names(o, ans, "keys");
    json_decref(ans);
    return code;
}

static int s_databases(const ctl_opts *o, s_args *a)
{
    int code = 0;
    json_t *ans = s_call(o, "Store.Databases", json_object(), 0, &code);
    if (ans)
        s_print_names(o, ans, "databases");
    json_decref(ans);
    return code;
}

static int s_tables(const ctl_opts *o, s_args *a)
{
    json_t *req = json_object();
    if (a->database)
        json_object_set_new(req, "database", json_string(a->database));
    int code = 0;
    json_t *ans = s_call(o, "Store.Tables", req, 0, &code);
    if (ans)
        s_print_names(o, ans, "tables");
    json_decref(ans);
    return code;
}

static const struct {
    const char *name;
    int (*run)(const ctl_opts *o, s_args *a);
} s_subs[] = {
    { "read", s_read }, { "write", s_write }, { "delete", s_delete }, { "list", s_list },
    { "databases", s_databases }, { "tables", s_tables }, { NULL, NULL },
};

/* Parses the flags of store/lock verbs; 0, or an exit code (usage printed). */
static int s_parse(const ctl_verb *v, int argc, char **argv, s_args *a)
{
    static const struct option longs[] = {
        { "database", required_argument, NULL, 'd' }, { "table", required_argument, NULL, 't' },
        { "prefix", required_argument, NULL, 'p' }, { "suffix", required_argument, NULL, 's' },
        { "limit", required_argument, NULL, 'l' }, { "offset", required_argument, NULL, 'f' },
        { "ttl", required_argument, NULL, 'T' }, { "wait", required_argument, NULL, 'w' },
        { "content-type", required_argument, NULL, 'c' }, { "metadata", required_argument, NULL, 'm' },
        { "verbose", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int code = 0, opt;
    optind = 0;   /* full getopt reinit: main parsed in "+" (stop at the verb) mode */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":vh", longs, NULL)) != -1 && !code) {
        char *end;
        long n;
        switch (opt) {
        case 'd': a->database = optarg; break;
        case 't': a->table = optarg; break;
        case 'p': a->prefix = optarg; break;
        case 's': a->suffix = optarg; break;
        case 'c': a->content_type = optarg; break;
        case 'v': a->verbose = true; break;
        case 'l':
        case 'f':
            n = strtol(optarg, &end, 10);
            if (end == optarg || *end || n < 0 || n > 4294967295L) {
                ctl_err("%s: invalid --%s \"%s\": want a whole number", v->name,
                        opt == 'l' ? "limit" : "offset", optarg);
                code = EXIT_USAGE;
            }
            *(opt == 'l' ? &a->limit : &a->offset) = n;
            break;
        case 'T':
        case 'w':
            if ((*(opt == 'T' ? &a->ttl_ms : &a->wait_ms) = s_duration(optarg)) < 0) {
                ctl_err("%s: invalid duration \"%s\": want e.g. 500ms, 10s, 5m, 1h", v->name, optarg);
                code = EXIT_USAGE;
            }
            break;
        case 'm': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                ctl_err("%s: invalid metadata \"%s\": want KEY=VALUE", v->name, optarg);
                code = EXIT_USAGE;
                break;
            }
            if (!a->metadata)
                a->metadata = json_object();
            char *k = strndup(optarg, (size_t)(eq - optarg));
            json_object_set_new(a->metadata, k, json_string(eq + 1));
            free(k);
            break;
        }
        case 'h':
            ctl_usage(v, 2, (char *[]){ argv[0], "--help", NULL }, 0, 0, &code);
            return -1;
        case ':':
            ctl_err("%s: option \"%s\" needs a value", v->name, argv[optind - 1]);
            code = EXIT_USAGE;
            break;
        default:
            ctl_err("%s: unknown option \"%s\" (see svcctl %s --help)", v->name, argv[optind - 1], v->name);
            code = EXIT_USAGE;
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return code;
}

int ctl_store(const ctl_opts *o, int argc, char **argv)
{
    const ctl_verb *v = ctl_verb_find("store");
    s_args a = { 0 };
    int code = s_parse(v, argc, argv, &a);
    if (code == 0 && a.npos < 1) {
        ctl_err("store: expected read, write, delete, list, databases or tables");
        code = EXIT_USAGE;
    }
    if (code) {
        json_decref(a.metadata);
        return code < 0 ? 0 : code;
    }
    for (int i = 0; s_subs[i].name; i++) {
        if (strcmp(a.pos[0], s_subs[i].name) == 0) {
            a.pos++;
            a.npos--;
            code = s_subs[i].run(o, &a);
            json_decref(a.metadata);
            return code;
        }
    }
    ctl_err("store: unknown subcommand \"%s\" (see svcctl store --help)", a.pos[0]);
    json_decref(a.metadata);
    return EXIT_USAGE;
}

/* ---- locks and leaders ------------------------------------------------------------ */

static int s_lock_args(const char *verb, int argc, char **argv, s_args *a, int min, int max)
{
    int code = s_parse(ctl_verb_find(verb), argc, argv, a);
    json_decref(a->metadata);
    a->metadata = NULL;
    if (code)
        return code < 0 ? -1 : code;
    if (a->npos < min || a->npos > max) {
        ctl_err("%s: expected %s", verb, ctl_verb_find(verb)->args);
        return EXIT_USAGE;
    }
    return 0;
}

static bool s_token(const char *verb, const char *v, long long *out)
{
    char *end;
    *out = strtoll(v, &end, 10);
    if (end == v || *end || *out <= 0) {
        ctl_err("%s: invalid token \"%s\": want the positive number lock printed", verb, v);
        return false;
    }
    return true;
}

int ctl_lock(const ctl_opts *o, int argc, char **argv)
{
    s_args a = { 0 };
    int code = s_lock_args("lock", argc, argv, &a, 1, 1);
    if (code)
        return code < 0 ? 0 : code;
    json_t *req = json_object();
    char owner[64];
    snprintf(owner, sizeof owner, "svcctl:%d", (int)getpid());
    json_object_set_new(req, "id", json_string(a.pos[0]));
    json_object_set_new(req, "ttl_ms", json_integer(a.ttl_ms));
    json_object_set_new(req, "wait_ms", json_integer(a.wait_ms));
    json_object_set_new(req, "owner", json_string(owner));
    json_t *ans = s_call(o, "Sync.Lock", req, (int)a.wait_ms, &code);
    if (ans) {
        if (o->json)
            ctl_print_json(ans);
        else
            printf("%s\n", json_string_value(json_object_get(ans, "token")));
    }
    json_decref(ans);
    return code;
}

int ctl_unlock(const ctl_opts *o, int argc, char **argv)
{
    s_args a = { 0 };
    long long token;
    int code = s_lock_args("unlock", argc, argv, &a, 2, 2);
    if (code)
        return code < 0 ? 0 : code;
    if (!s_token("unlock", a.pos[1], &token))
        return EXIT_USAGE;
    json_t *req = json_object();
    json_object_set_new(req, "id", json_string(a.pos[0]));
    json_object_set_new(req, "token", json_integer(token));
    json_t *ans = s_call(o, "Sync.Unlock", req, 0, &code);
    json_decref(ans);
    return code;
}

int ctl_locks(const ctl_opts *o, int argc, char **argv)
{
    s_args a = { 0 };
    int code = s_lock_args("locks", argc, argv, &a, 0, 0);
    if (code)
        return code < 0 ? 0 : code;
    json_t *ans = s_call(o, "Sync.Locks", json_object(), 0, &code);
    if (!ans)
        return code;
    json_t *locks = json_object_get(ans, "locks"), *l;
    size_t i;
    if (o->json) {
        ctl_print_json(locks);
    } else {
        static const char *const head[] = { "ID", "OWNER", "TOKEN", "EXPIRY" };
        ctl_table *t = ctl_table_new(4, head);
        json_array_foreach(locks, i, l) {
            char exp[32];
            s_expiry(l, exp, sizeof exp);
            const char *row[] = { json_string_value(json_object_get(l, "id")),
                                  json_string_value(json_object_get(l, "owner")),
                                  json_string_value(json_object_get(l, "token")), exp };
            ctl_table_add(t, row);
        }
        ctl_table_print(t);
        ctl_table_free(t);
    }
    json_decref(ans);
    return 0;
}

int ctl_leader(const ctl_opts *o, int argc, char **argv)
{
    s_args a = { 0 };
    int code = s_lock_args("leader", argc, argv, &a, 1, 3);
    if (code)
        return code < 0 ? 0 : code;
    json_t *req = json_object();
    const char *endpoint = "Sync.Leader";
    if (a.npos == 3 && strcmp(a.pos[0], "resign") == 0) {
        long long term;
        if (!s_token("leader resign", a.pos[2], &term)) {
            json_decref(req);
            return EXIT_USAGE;
        }
        endpoint = "Sync.Resign";
        json_object_set_new(req, "name", json_string(a.pos[1]));
        json_object_set_new(req, "term", json_integer(term));
    } else if (a.npos == 3 && strcmp(a.pos[0], "campaign") == 0) {
        endpoint = "Sync.Campaign";
        json_object_set_new(req, "name", json_string(a.pos[1]));
        json_object_set_new(req, "candidate", json_string(a.pos[2]));
        json_object_set_new(req, "ttl_ms", json_integer(a.ttl_ms));
        json_object_set_new(req, "wait_ms", json_integer(a.wait_ms));
    } else if (a.npos == 1) {
        json_object_set_new(req, "name", json_string(a.pos[0]));
    } else {
        ctl_err("leader: expected NAME, campaign NAME CANDIDATE, or resign NAME TERM");
        json_decref(req);
        return EXIT_USAGE;
    }
    json_t *ans = s_call(o, endpoint, req, (int)a.wait_ms, &code);
    if (!ans)
        return code;
    if (o->json) {
        ctl_print_json(ans);
    } else if (strcmp(endpoint, "Sync.Leader") == 0) {
        static const char *const head[] = { "NAME", "LEADER", "TERM", "EXPIRY" };
        ctl_table *t = ctl_table_new(4, head);
        char exp[32];
        s_expiry(ans, exp, sizeof exp);
        const char *row[] = { a.pos[0], json_string_value(json_object_get(ans, "leader")),
                              json_string_value(json_object_get(ans, "term")), exp };
        ctl_table_add(t, row);
        ctl_table_print(t);
        ctl_table_free(t);
    } else if (strcmp(endpoint, "Sync.Campaign") == 0) {
        printf("%s\n", json_string_value(json_object_get(ans, "term")));
    }
    json_decref(ans);
    return 0;
}
