/*
 * svcctl/cmd_stream.c — stream NAME ENDPOINT: JSON lines in, JSON lines out.
 *
 * Each line of stdin is one request message (a JSON object); each message
 * the server sends is printed as one line of JSON on stdout; end of stdin is
 * the half-close.  One thread multiplexes stdin and the stream with poll(2):
 * sending waits for the server's credit, so a server that does not read
 * stops svcctl reading stdin instead of filling memory.
 */
#include "svcctl.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LINE (16 * 1024 * 1024)
#define S_EOUTPUT (-1)   /* s_drain: stdout cannot be written (closed pipe) */

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/* stdin, split into lines. */
typedef struct s_input {
    char *buf;        /* bytes read, not yet taken */
    size_t len, cap;  /* used / allocated */
    bool eof;         /* read returned 0 */
    long line;        /* lines taken so far */
} s_input;

/* Reads what stdin has now.  0, or -1 on error / a line over MAX_LINE. */
static int s_fill(s_input *in)
{
    if (in->cap - in->len < 65536) {
        size_t cap = in->cap ? in->cap * 2 : 131072;
        if (cap > MAX_LINE + 65536)
            return -1;
        char *n = realloc(in->buf, cap);
        if (!n)
            return -1;
        in->buf = n;
        in->cap = cap;
    }
    ssize_t r;
    do
        r = read(STDIN_FILENO, in->buf + in->len, in->cap - in->len);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -1;
    if (r == 0)
        in->eof = true;
    in->len += (size_t)r;
    return 0;
}

/* Takes the next line (without newline) into *line (malloc'd); false if none complete yet. */
static bool s_take_line(s_input *in, char **line, size_t *len)
{
    char *nl = in->len ? memchr(in->buf, '\n', in->len) : NULL;
    size_t n = nl ? (size_t)(nl - in->buf) : in->len;
    if (!nl && !(in->eof && in->len))
        return false;
    *line = malloc(n + 1);
    if (!*line)
        return false;
    memcpy(*line, in->buf, n);
    (*line)[n] = '\0';
    *len = n;
    size_t used = nl ? n + 1 : n;
    memmove(in->buf, in->buf + used, in->len - used);
    in->len -= used;
    in->line++;
    return true;
}

/* True when s holds only blanks (blank lines are skipped). */
static bool s_blank(const char *s)
{
    return s[strspn(s, " \t\r")] == '\0';
}

/* Checks that a line is one JSON object; prints why not. */
static bool s_valid(const char *line, size_t len, long n)
{
    json_error_t je;
    json_t *j = json_loadb(line, len, JSON_DECODE_ANY, &je);
    bool ok = j && json_is_object(j);
    if (!j)
        ctl_err("stream: invalid JSON on stdin line %ld: %s (column %d)", n, je.text, je.column);
    else if (!ok)
        ctl_err("stream: invalid JSON on stdin line %ld: want an object", n);
    json_decref(j);
    return ok;
}

/* The endpoint's stream kind from the registry; -1 after printing why not. */
static int s_lookup_kind(const ctl_opts *o, svc_client *c, const char *name, const char *endpoint)
{
    int code = 0;
    json_t *req = json_pack("{s:s}", "service", name);
    json_t *ans = ctl_registry(o, c, "Registry.GetService", req, &code);
    json_decref(req);
    if (!ans) {
        ctl_err("stream: cannot tell the kind of \"%s\": give --kind server|client|bidi",
                endpoint);
        return -1;
    }
    int kind = -2;
    size_t i, k;
    json_t *svc, *ep;
    json_array_foreach(json_object_get(ans, "services"), i, svc) {
        json_array_foreach(json_object_get(svc, "endpoints"), k, ep) {
            const char *n = json_string_value(json_object_get(ep, "name"));
            if (!n || strcmp(n, endpoint) != 0)
                continue;
            json_t *md = json_object_get(ep, "metadata");
            const char *is = json_string_value(json_object_get(md, "stream"));
            const char *sk = json_string_value(json_object_get(md, "stream_kind"));
            if (!is || strcmp(is, "true") != 0)
                kind = -3;
            else if (sk && strcmp(sk, "client") == 0)
                kind = SVC_STREAM_CLIENT;
            else if (sk && strcmp(sk, "bidi") == 0)
                kind = SVC_STREAM_BIDI;
            else
                kind = SVC_STREAM_SERVER;
        }
    }
    json_decref(ans);
    if (kind == -2)
        ctl_err("stream: endpoint \"%s\" not found on service \"%s\"", endpoint, name);
    else if (kind == -3)
        ctl_err("stream: endpoint \"%s\" of \"%s\" is not a stream: use svcctl call", endpoint,
                name);
    return kind < 0 ? -1 : kind;
}

/*
 * Prints every message that has arrived.  0 while open, 1 at a clean end,
 * S_EOUTPUT when stdout is gone, another negative code when the stream failed.
 */
static int s_drain(svc_client_stream *st, svc_error *err, bool *printed)
{
    for (;;) {
        svc_reply r = SVC_REPLY_INIT;
        int rc = svc_client_stream_recv(st, 0, &r, err);
        if (rc == SVC_ETIMEOUT)
            return 0;
        if (rc != 0)
            return rc;
        fwrite(r.body ? r.body : "{}", 1, r.body ? r.len : 2, stdout);
        fputc('\n', stdout);
        *printed = true;
        svc_reply_release(&r);
        if (ferror(stdout))
            return S_EOUTPUT;
    }
}

/* The pump: stdin lines to the stream, stream messages to stdout. */
static int s_run(svc_client_stream *st, svc_stream_kind kind, s_input *in, char *pending,
                 size_t plen)
{
    svc_error err = SVC_ERROR_INIT;
    bool half_closed = kind == SVC_STREAM_SERVER;
    int code = 0;
    for (;;) {
        bool progress = false;
        if (s_stop) {
            ctl_err("stream: interrupted");
            code = 1;
            break;
        }
        if (pending) {
            int rc = svc_client_stream_send(st, pending, plen, 0, &err);
            if (rc != SVC_ETIMEOUT) {
                free(pending);
                pending = NULL;
                progress = true;
                if (rc < 0)
                    half_closed = true;   /* it has ended: recv tells how */
            }
            svc_error_release(&err);
        }
        while (!pending && !half_closed && s_take_line(in, &pending, &plen)) {
            if (s_blank(pending)) {
                free(pending);
                pending = NULL;
                continue;
            }
            if (!s_valid(pending, plen, in->line)) {
                free(pending);
                svc_client_stream_cancel(st);
                return EXIT_DATA;
            }
            progress = true;
        }
        if (!pending && !half_closed && in->eof && in->len == 0) {
            svc_client_stream_close_send(st);
            half_closed = true;
            progress = true;
        }
        int rc = s_drain(st, &err, &progress);
        if (rc == 1)
            break;
        if (rc == S_EOUTPUT) {
            ctl_err("stream: cannot write stdout: %s", strerror(errno));
            svc_client_stream_cancel(st);
            code = 1;
            break;
        }
        if (rc < 0) {
            if (rc != SVC_ECLOSED) {
                char *j = svc_error_json(&err);
                fprintf(stderr, "%s\n", j ? j : "stream failed");
                free(j);
            }
            code = 1;
            break;
        }
        if (progress)
            continue;
        fflush(stdout);
        struct pollfd fds[2] = { { svc_client_stream_fd(st), POLLIN, 0 },
                                 { STDIN_FILENO, POLLIN, 0 } };
        bool want_stdin = !pending && !half_closed && !in->eof;
        /* Wait for the stream (bounded, so a lost node is noticed) or for stdin. */
        int n = poll(fds, want_stdin ? 2 : 1, pending ? 20 : 200);
        if (n > 0 && want_stdin && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            s_fill(in) < 0) {
            ctl_err("stream: cannot read stdin (or a line exceeds 16 MiB)");
            svc_client_stream_cancel(st);
            code = 1;
            break;
        }
    }
    free(pending);
    fflush(stdout);
    svc_error_release(&err);
    return code;
}

int ctl_stream(const ctl_opts *o, int argc, char **argv)
{
    static const struct option longs[] = {
        CTL_TARGET_OPTIONS,
        { "kind", required_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const ctl_verb *v = ctl_verb_find("stream");
    int code = 0, kind = -1;
    ctl_target tg = CTL_TARGET_INIT;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", longs, NULL)) != -1) {
        switch (opt) {
        case 'm':
        case 'a':
        case 'v':
        case 'n':
            code = ctl_target_flag(&tg, "stream", opt, optarg);
            break;
        case 'k':
            kind = strcmp(optarg, "server") == 0 ? SVC_STREAM_SERVER
                 : strcmp(optarg, "client") == 0 ? SVC_STREAM_CLIENT
                 : strcmp(optarg, "bidi") == 0 ? SVC_STREAM_BIDI : -1;
            if (kind < 0) {
                ctl_err("stream: invalid kind \"%s\": want server, client or bidi", optarg);
                code = EXIT_USAGE;
            }
            break;
        case 'h':
            ctl_usage(v, 2, (char *[]){ argv[0], "--help" }, 0, 0, &code);
            svc_meta_release(&tg.meta);
            return code;
        default:
            ctl_err("stream: %s \"%s\"", opt == ':' ? "option needs a value" : "unknown option",
                    argv[optind - 1]);
            code = EXIT_USAGE;
        }
        if (code) {
            svc_meta_release(&tg.meta);
            return code;
        }
    }
    char **pos = argv + optind - 1;
    int npos = argc - optind;
    if (ctl_usage(v, npos + 1, pos, 2, 2, &code)) {
        svc_meta_release(&tg.meta);
        return code;
    }
    pos++;
    struct sigaction sa = { .sa_handler = s_on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    svc_client *c = svc_client_new(o->registry);
    s_input in = { 0 };
    char *first = NULL;
    size_t flen = 0;
    svc_client_stream *st = NULL;
    svc_error err = SVC_ERROR_INIT;
    if (kind < 0 && (kind = s_lookup_kind(o, c, pos[0], pos[1])) < 0) {
        code = 1;
        goto out;
    }
    if (kind == SVC_STREAM_SERVER) {
        /* The one request is the first line (an empty stdin means {}). */
        while (!first && !(in.eof && in.len == 0)) {
            if (s_take_line(&in, &first, &flen)) {
                if (s_blank(first)) {
                    free(first);
                    first = NULL;
                }
            } else if (s_fill(&in) < 0) {
                ctl_err("stream: cannot read stdin (or a line exceeds 16 MiB)");
                code = 1;
                goto out;
            }
        }
        if (!first) {
            first = strdup("{}");
            flen = 2;
        }
        if (!s_valid(first, flen, in.line ? in.line : 1)) {
            code = EXIT_DATA;
            goto out;
        }
    }
    svc_call_opts co = { .timeout_ms = o->timeout_ms ? o->timeout_ms : 5000, .address = tg.address,
                         .content_type = SVC_CT_JSON, .meta = &tg.meta, .version = tg.version,
                         .node_meta = tg.node_meta };
    int rc = svc_client_stream_open_kind(c, pos[0], pos[1], (svc_stream_kind)kind, first,
                                         first ? flen : 0, &co, &st, &err);
    if (rc < 0) {
        char *j = svc_error_json(&err);
        fprintf(stderr, "%s\n", j ? j : "cannot open stream");
        free(j);
        code = 1;
        goto out;
    }
    code = s_run(st, (svc_stream_kind)kind, &in, NULL, 0);
out:
    svc_client_stream_close(&st);
    svc_error_release(&err);
    free(first);
    free(in.buf);
    svc_client_destroy(&c);
    svc_meta_release(&tg.meta);
    return code;
}
