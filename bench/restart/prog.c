/*
 * bench/restart/prog.c — the supervised program of bench/supervisor.sh.
 *
 * At start it reports readiness the way its supervisor understands
 * (READY=1 on $NOTIFY_SOCKET for svc; a newline on fd $BENCH_S6_FD for s6;
 * runit and supervisord have no readiness protocol: running is ready), then
 * sends "<pid> <CLOCK_MONOTONIC ns>" to the bench's datagram socket
 * $BENCH_SOCK and sleeps until killed.  Built by bench/supervisor.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

int main(void)
{
    if (getenv("NOTIFY_SOCKET"))
        sd_notify(0, "READY=1");
    const char *fd = getenv("BENCH_S6_FD");
    if (fd) {
        int n = atoi(fd);
        if (write(n, "\n", 1) != 1)
            return 1;
        close(n);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const char *path = getenv("BENCH_SOCK");
    if (path) {
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        char msg[64];
        int len = snprintf(msg, sizeof msg, "%d %lld", (int)getpid(),
                           (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        sendto(s, msg, (size_t)len, 0, (struct sockaddr *)&a, sizeof a);
        close(s);
    }
    for (;;)
        pause();
}
