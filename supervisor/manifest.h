/*
 * supervisor/manifest.h — service manifests: one INI file per service.
 *
 *     [service]
 *     command = greeter
 *     args = --register-interval 5
 *     instances = 3
 *     after = svc.registry
 *     ready = notify
 *
 *     [restart]
 *     policy = always
 *     backoff_initial = 100ms
 *
 * Every key, its default and its meaning is in docs/manifest.md; the key
 * table in manifest.c is the one place they are defined.  Parsing never
 * aborts: an error is one line "FILE:LINE: reason" in the caller's buffer.
 */
#ifndef SUP_MANIFEST_H
#define SUP_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>

typedef enum sup_restart_policy {
    SUP_RESTART_ON_FAILURE = 0,   /* exit code != 0 or killed by a signal (default) */
    SUP_RESTART_ALWAYS,           /* any exit not asked for */
    SUP_RESTART_NEVER,
} sup_restart_policy;

typedef enum sup_ready_kind {
    SUP_READY_NONE = 0,           /* ready as soon as it runs (default) */
    SUP_READY_NOTIFY,             /* ready when it sends READY=1 on NOTIFY_SOCKET */
} sup_ready_kind;

typedef enum sup_health_kind {
    SUP_HEALTH_NONE = 0,
    SUP_HEALTH_RPC,               /* Debug.Health at the address the instance notified */
    SUP_HEALTH_EXEC,              /* run a command: exit 0 = healthy */
    SUP_HEALTH_TCP,               /* connect to HOST:PORT */
    SUP_HEALTH_HTTP,              /* GET http://HOST:PORT/PATH, status 2xx = healthy */
} sup_health_kind;

typedef enum sup_log_sink {
    SUP_LOG_AUTO = 0,             /* journal when under systemd, else file */
    SUP_LOG_FILE,                 /* size-rotated files in the state directory */
    SUP_LOG_JOURNAL,              /* systemd journal */
    SUP_LOG_NONE,                 /* only the in-memory tail for svcctl logs */
} sup_log_sink;

/* One resource limit (setrlimit) to apply to the instances. */
typedef struct sup_rlimit {
    int resource;                 /* RLIMIT_* */
    unsigned long long value;     /* soft and hard limit; RLIM_INFINITY for "infinity" */
} sup_rlimit;

#define SUP_MAX_RLIMITS 8
#define SUP_MAX_INSTANCES 256

typedef struct sup_manifest {
    char *name;                   /* service name ("name" key, else the file name less .ini) */
    char *file;                   /* path it was read from */
    int line;                     /* line of the [service] section header (for errors) */
    char *command;                /* program: a path, or a name looked up next to the supervisor, then in PATH */
    char **args;                  /* NULL-terminated arguments after the program name */
    size_t n_args;
    int instances;                /* 1..SUP_MAX_INSTANCES, default 1 */
    char **env;                   /* "K=V" strings added to the supervisor's environment */
    size_t n_env;
    char *workdir;                /* working directory, or NULL (the supervisor's) */
    char *user;                   /* user name or uid to run as, or NULL */
    char *group;                  /* group name or gid, or NULL (the user's group) */
    char **after;                 /* names of services that must be ready first */
    int *after_lines;             /* line of each after entry */
    size_t n_after;
    sup_restart_policy restart;   /* [restart] policy */
    double backoff_initial;       /* seconds before the first restart (default 0.1) */
    double backoff_factor;        /* delay multiplier per consecutive restart (default 2) */
    double backoff_cap;           /* largest delay, seconds (default 30) */
    double backoff_jitter;        /* random +- fraction of the delay, 0..1 (default 0) */
    int start_limit_burst;        /* starts allowed within the interval; 0 = no limit (default 5) */
    double start_limit_interval;  /* seconds (default 10) */
    sup_ready_kind ready;         /* [service] ready */
    double ready_timeout;         /* seconds to become ready before counted failed (default 30) */
    sup_health_kind health;       /* [health] check */
    char *health_target;          /* exec: command line; tcp: HOST:PORT; http: URL; rpc: NULL */
    double health_interval;       /* seconds between checks (default 5) */
    double health_timeout;        /* seconds per check (default 2) */
    int health_failures;          /* consecutive failures before a restart (default 3) */
    double watchdog;              /* seconds; 0 = none.  Sets WATCHDOG_USEC for the instance */
    int stop_signal;              /* default SIGTERM */
    double stop_timeout;          /* seconds before SIGKILL (default 10) */
    sup_log_sink log_sink;        /* [log] sink */
    unsigned long long log_max_size; /* bytes per file before rotation (default 10 MiB) */
    int log_files;                /* rotated files kept (default 3) */
    sup_rlimit rlimits[SUP_MAX_RLIMITS]; /* [limits] */
    size_t n_rlimits;
    char *fingerprint;            /* canonical text of every setting: differs iff the manifest changed */
} sup_manifest;

/* A set of manifests (a manifest directory), in file-name order. */
typedef struct sup_manifest_set {
    sup_manifest **items;         /* owned */
    size_t n;
} sup_manifest_set;

/*
 * Parses text (len bytes, need not be NUL-terminated) read from file.
 * Returns a new manifest (free with sup_manifest_free) or NULL with a
 * one-line "FILE:LINE: reason" in err.  Does not check dependencies
 * against other manifests (sup_manifest_set_check does).
 */
sup_manifest *sup_manifest_parse(const char *file, const char *text, size_t len,
                                 char *err, size_t errlen);

/* Reads and parses one file; as sup_manifest_parse, or "FILE: reason" on I/O errors. */
sup_manifest *sup_manifest_load(const char *path, char *err, size_t errlen);

/* Frees m and everything it owns; *m becomes NULL.  Safe on NULL. */
void sup_manifest_free(sup_manifest **m);

/*
 * Loads every *.ini file of dir (sorted by name; hidden files skipped) into
 * set and checks the set: duplicate names, unknown dependencies, cycles.
 * Returns 0, or a negative code with the first error in err (then set is
 * empty).  The whole set is rejected if any file is bad.
 */
int sup_manifest_load_dir(const char *dir, sup_manifest_set *set, char *err, size_t errlen);

/*
 * Checks a parsed set: duplicate names, `after` naming no manifest,
 * dependency cycles.  0, or SVC_EINVAL with "FILE:LINE: reason" in err.
 */
int sup_manifest_set_check(const sup_manifest_set *set, char *err, size_t errlen);

/* Adds m to set (takes ownership); 0 or -ENOMEM (m is freed). */
int sup_manifest_set_add(sup_manifest_set *set, sup_manifest **m);

/* The manifest named name, or NULL; borrowed. */
sup_manifest *sup_manifest_set_find(const sup_manifest_set *set, const char *name);

/* Frees every manifest of set and empties it. */
void sup_manifest_set_release(sup_manifest_set *set);

/* Name of a signal number ("TERM"), or "?"; static. */
const char *sup_signal_name(int sig);

#endif
