/*
 * libsvc/clock.h — the monotonic clock in milliseconds (internal).
 */
#ifndef SVC__CLOCK_H
#define SVC__CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds on CLOCK_MONOTONIC: for deadlines and intervals. */
static inline int64_t svc__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
