/*
 * svcctl/svcctl.h — what the verbs of svcctl share.
 *
 * Exit codes: 0 ok; 1 the operation failed (error on stderr); 64 usage
 * error (bad verb, flag or argument); 65 invalid input data (bad JSON).
 */
#ifndef SVCCTL_H
#define SVCCTL_H

#include <jansson.h>
#include <stdbool.h>

#include "svc/svc.h"

#define EXIT_USAGE 64
#define EXIT_DATA  65

/* Global options, parsed before the verb. */
typedef struct ctl_opts {
    const char *registry;  /* --registry / $SVC_REGISTRY_ADDRESS / default */
    bool json;             /* -o json */
    int timeout_ms;        /* --timeout, default 5000 (call: 30000) */
    const char *supervisor; /* --supervisor / $SVC_SUPERVISOR_ADDRESS (cmd_sup.c), or NULL */
} ctl_opts;

/* A verb: name, handler, one-line summary, usage text for --help. */
typedef struct ctl_verb {
    const char *name;
    int (*run)(const ctl_opts *o, int argc, char **argv);  /* argv[0] is the verb */
    const char *args;      /* "NAME ENDPOINT [JSON]" */
    const char *summary;
    const char *help;      /* extra lines for `svcctl VERB --help`, or NULL */
} ctl_verb;

/* Prints "svcctl: <message>\n" to stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Prints verb usage to stdout when argv has --help/-h and returns true.
 * Otherwise, if argc - 1 is outside [min, max], prints usage to stderr, sets
 * *code to EXIT_USAGE and returns true.  Returns false when the verb should run.
 */
bool ctl_usage(const ctl_verb *v, int argc, char **argv, int min, int max, int *code);

/* The verb table entry of name (for help text). */
const ctl_verb *ctl_verb_find(const char *name);

/*
 * Calls the registry with a JSON request, returning the parsed JSON answer
 * (caller decref's) or NULL after printing the error; *code gets the exit code.
 */
json_t *ctl_registry(const ctl_opts *o, svc_client *c, const char *endpoint, json_t *req,
                     int *code);

/*
 * Calls endpoint at a fixed node address with a JSON body; returns parsed
 * JSON or NULL with *err set.
 */
json_t *ctl_call_node(const ctl_opts *o, svc_client *c, const char *service, const char *address,
                      const char *endpoint, svc_error *err);

/* Prints e as one line of go-micro error JSON after "svcctl: " on stderr. */
void ctl_print_error(const char *what, const svc_error *e);

/* Prints j to stdout as indented JSON plus newline. */
void ctl_print_json(json_t *j);

/* ---- the nodes a call or stream goes to --------------------------------------- */

/* --metadata, --address, --version and --node-meta, as getopt options. */
#define CTL_TARGET_OPTIONS                                                            \
    { "metadata", required_argument, NULL, 'm' },                                     \
    { "address", required_argument, NULL, 'a' },                                      \
    { "version", required_argument, NULL, 'v' },                                      \
    { "node-meta", required_argument, NULL, 'n' }

/* What those flags said. */
typedef struct ctl_target {
    svc_meta meta;          /* --metadata K=V, repeatable; owned: svc_meta_release */
    const char *address;    /* --address: this node, bypassing the registry; borrowed from argv */
    const char *version;    /* --version GLOB, or NULL; borrowed */
    const char *node_meta;  /* --node-meta K=GLOB[,...], or NULL; borrowed */
} ctl_target;

#define CTL_TARGET_INIT { SVC_META_INIT, NULL, NULL, NULL }

/*
 * Takes getopt's opt ('m', 'a', 'v' or 'n') and its arg into t.  Returns 0,
 * or EXIT_USAGE after printing "svcctl: VERB: invalid metadata ..." when
 * the metadata is not KEY=VALUE.
 */
int ctl_target_flag(ctl_target *t, const char *verb, int opt, const char *arg);

/* ---- tables ------------------------------------------------------------------ */

typedef struct ctl_table ctl_table;

ctl_table *ctl_table_new(int ncols, const char *const *headers);
void ctl_table_add(ctl_table *t, const char *const *cells);  /* copies */
void ctl_table_print(ctl_table *t);                          /* stdout, aligned */
void ctl_table_free(ctl_table *t);

/* verbs */
int ctl_services(const ctl_opts *o, int argc, char **argv);
int ctl_service(const ctl_opts *o, int argc, char **argv);
int ctl_watch(const ctl_opts *o, int argc, char **argv);
int ctl_call(const ctl_opts *o, int argc, char **argv);
int ctl_health(const ctl_opts *o, int argc, char **argv);
int ctl_stats(const ctl_opts *o, int argc, char **argv);
int ctl_publish(const ctl_opts *o, int argc, char **argv);      /* cmd_broker.c */
int ctl_subscribe(const ctl_opts *o, int argc, char **argv);
int ctl_streams(const ctl_opts *o, int argc, char **argv);
int ctl_stream_info(const ctl_opts *o, int argc, char **argv);
int ctl_consume(const ctl_opts *o, int argc, char **argv);
int ctl_stream(const ctl_opts *o, int argc, char **argv);
/* cmd_sup.c: the supervisor */
int ctl_ps(const ctl_opts *o, int argc, char **argv);
int ctl_start(const ctl_opts *o, int argc, char **argv);
int ctl_stop(const ctl_opts *o, int argc, char **argv);
int ctl_restart(const ctl_opts *o, int argc, char **argv);
int ctl_reload(const ctl_opts *o, int argc, char **argv);
int ctl_logs(const ctl_opts *o, int argc, char **argv);
int ctl_store(const ctl_opts *o, int argc, char **argv);   /* cmd_store.c */
int ctl_lock(const ctl_opts *o, int argc, char **argv);
int ctl_unlock(const ctl_opts *o, int argc, char **argv);
int ctl_locks(const ctl_opts *o, int argc, char **argv);
int ctl_leader(const ctl_opts *o, int argc, char **argv);

#endif
