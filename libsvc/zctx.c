/* libsvc/zctx.c — the process-wide ZeroMQ context.  See zctx.h. */
#include "zctx.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <zmq.h>

static void *s_ctx;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_create(void)
{
    s_ctx = zmq_ctx_new();
    if (!s_ctx) {
        fprintf(stderr, "libsvc: cannot create ZeroMQ context: %s\n", zmq_strerror(errno));
        abort();
    }
    zmq_ctx_set(s_ctx, ZMQ_BLOCKY, 0);
}

void *svc__zctx(void)
{
    pthread_once(&s_once, s_create);
    return s_ctx;
}

void *svc__socket(int type)
{
    void *s = zmq_socket(svc__zctx(), type);
    if (!s)
        return NULL;
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    return s;
}

void svc__socket_close(void **sock)
{
    if (*sock) {
        zmq_close(*sock);
        *sock = NULL;
    }
}

static __thread uint64_t s_state;

uint64_t svc__rand(void)
{
    if (!s_state) {
        while (getrandom(&s_state, sizeof s_state, 0) != sizeof s_state)
            ;
        s_state |= 1;
    }
    uint64_t x = s_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return s_state = x;
}

void svc__rand_hex(char buf[17])
{
    snprintf(buf, 17, "%016llx", (unsigned long long)svc__rand());
}

bool svc__address_valid(const char *a)
{
    if (!a)
        return false;
    static const char *schemes[] = { "tcp://", "ipc://", "inproc://", NULL };
    for (int i = 0; schemes[i]; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(a, schemes[i], n) == 0 && a[n])
            return true;
    }
    return false;
}
