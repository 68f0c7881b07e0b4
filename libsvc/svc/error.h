/*
 * svc/error.h — error codes and the go-micro style error record.
 *
 * One convention across svc: functions return 0 on success and a negative
 * code on failure, either -errno or one of the SVC_E* codes below, which sit
 * in one reserved range.  svc_strerror() names every one of them.
 *
 * An error that crosses the wire is an svc_error: {id, code, detail, status}
 * exactly as go-micro's errors package, where code is an HTTP-like status.
 */
#ifndef SVC_ERROR_H
#define SVC_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Reserved range: -1000 .. -1099. */
enum {
    SVC_EPROTO       = -1000, /* malformed or unexpected message from a peer */
    SVC_ECODEC       = -1001, /* body could not be encoded or decoded */
    SVC_ETIMEOUT     = -1002, /* deadline passed before an answer came */
    SVC_ENOTFOUND    = -1003, /* no such service, endpoint or node */
    SVC_EUNREACHABLE = -1004, /* no node of the service could be reached */
    SVC_EREMOTE      = -1005, /* the peer answered with an error (see svc_error) */
    SVC_ETOOBIG      = -1006, /* message larger than the configured maximum */
    SVC_EINVAL       = -1007, /* invalid argument, flag or configuration value */
    SVC_ECLOSED      = -1008, /* object is shutting down or already closed */
    SVC_EEXIST       = -1009, /* already registered / already exists */
};

/*
 * Returns a static, lowercase one-line description of err: an SVC_E* code,
 * a negative errno, or 0 ("ok").  Never NULL.
 */
const char *svc_strerror(int err);

/* A go-micro error.  Strings are heap-allocated and owned by the struct. */
typedef struct svc_error {
    char *id;     /* who produced it: "svc.client", a service name, ... */
    int code;     /* HTTP-like status: 400, 404, 408, 500, 503, ... */
    char *detail; /* one line for humans */
    char *status; /* reason phrase of code: "Request Timeout", ... */
} svc_error;

/* Zero-initialiser for an svc_error. */
#define SVC_ERROR_INIT { NULL, 0, NULL, NULL }

/*
 * Replaces e's contents: id is copied, detail is formatted from fmt, status
 * is svc_status_text(code).  Any previous contents are released.
 */
void svc_error_set(svc_error *e, const char *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void svc_error_setv(svc_error *e, const char *id, int code, const char *fmt, va_list ap);

/* Deep-copies src into dst (releasing dst's old contents). */
void svc_error_copy(svc_error *dst, const svc_error *src);

/* Frees the strings of e and zeroes it.  Safe on a zeroed or released error. */
void svc_error_release(svc_error *e);

/* True when e holds an error (code != 0). */
bool svc_error_isset(const svc_error *e);

/*
 * Renders e as one-line JSON: {"id":...,"code":...,"detail":...,"status":...}.
 * The returned string is the caller's to free().  NULL only on out-of-memory.
 */
char *svc_error_json(const svc_error *e);

/* Reason phrase of an HTTP-like code ("Not Found"); "Unknown" if not known. */
const char *svc_status_text(int code);

#ifdef __cplusplus
}
#endif
#endif
