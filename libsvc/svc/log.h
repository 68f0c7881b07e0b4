/*
 * svc/log.h — structured logging to stderr.
 *
 * One line per event in logfmt:
 *   ts=2026-11-22T10:00:00.123Z level=info svc=greeter msg="registered" node=greeter-3f2a
 * The level threshold comes from SVC_LOG_LEVEL (debug, info, warn, error;
 * default info) or svc_log_set_level().  Thread-safe: each line is written
 * with one write(2).
 *
 * A line logged while the thread handles a request, or makes a call, ends
 * with that request's (or call's) trace ids (svc/trace.h):
 *   ... msg="charged card" amount=12 trace=4bf92f3577b34da6a3ce929d0e0e4736 span=00f067aa0ba902b7
 */
#ifndef SVC_LOG_H
#define SVC_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum svc_log_level {
    SVC_LOG_DEBUG = 0,
    SVC_LOG_INFO,
    SVC_LOG_WARN,
    SVC_LOG_ERROR,
} svc_log_level;

/* Sets the name logged as svc=... (copied; default is the program name). */
void svc_log_set_name(const char *name);

/* Sets the threshold; lines below it are dropped. */
void svc_log_set_level(svc_log_level level);

/* Parses "debug"/"info"/"warn"/"error"; returns -1 if unknown. */
int svc_log_parse_level(const char *s);

/*
 * Logs msg (a printf format) at level.  Extra logfmt fields may follow the
 * message inside fmt after a tab: svc_log(SVC_LOG_INFO, "registered\tnode=%s", id)
 * renders msg="registered" node=....
 */
void svc_log(svc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define svc_debug(...) svc_log(SVC_LOG_DEBUG, __VA_ARGS__)
#define svc_info(...)  svc_log(SVC_LOG_INFO, __VA_ARGS__)
#define svc_warn(...)  svc_log(SVC_LOG_WARN, __VA_ARGS__)
#define svc_error_log(...) svc_log(SVC_LOG_ERROR, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
