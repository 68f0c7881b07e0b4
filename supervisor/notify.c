/*
 * supervisor/notify.c — the systemd notify protocol, both ways.
 *
 * Children: one AF_UNIX datagram socket, <state-dir>/notify.sock, passed as
 * NOTIFY_SOCKET.  SO_PASSCRED makes the kernel attach the sender's pid to
 * every datagram; a message counts only when that pid is the main process of
 * an instance (systemd's NotifyAccess=main): READY=1, WATCHDOG=1, STATUS=,
 * and SVC_ADDRESS= (libsvc's bound address, used by rpc health checks).
 *
 * Systemd: when the supervisor itself runs under systemd its NOTIFY_SOCKET
 * is kept aside (children get ours) and sup_sd_notify sends to it.
 */
#include "sup.h"
#include "svc/error.h"
#include "svc/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define S_MAX_DGRAM 4096

/* Applies one NAME=VALUE line from pid's instance. */
static void s_line(sup_instance *i, const char *l, size_t n)
{
    if (n == 7 && memcmp(l, "READY=1", 7) == 0) {
        sup_instance_ready(i);
    } else if (n == 10 && memcmp(l, "WATCHDOG=1", 10) == 0) {
        sup_instance_watchdog_ping(i);
    } else if (n >= 7 && memcmp(l, "STATUS=", 7) == 0) {
        snprintf(i->status, sizeof i->status, "%.*s", (int)(n - 7), l + 7);
    } else if (n > 12 && memcmp(l, "SVC_ADDRESS=", 12) == 0) {
        char *a = strndup(l + 12, n - 12);
        if (a) {
            free(i->address);
            i->address = a;
        }
    }
}

static void s_on_notify(struct ev_loop *loop, ev_io *w, int revents)
{
    sup *s = w->data;
    for (int batch = 0; batch < 64; batch++) {
        char buf[S_MAX_DGRAM + 1];
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(struct ucred))];
        } ctl;
        struct iovec iov = { buf, S_MAX_DGRAM };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                             .msg_controllen = sizeof ctl };
        ssize_t n = recvmsg(s->notify_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                svc_warn("notify socket\terror=\"%s\"", strerror(errno));
            return;
        }
        struct ucred *cred = NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                c->cmsg_len == CMSG_LEN(sizeof(struct ucred)))
                cred = (struct ucred *)CMSG_DATA(c);
            else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                int *fds = (int *)CMSG_DATA(c);   /* fd passing is not supported: close them */
                for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); k++)
                    close(fds[k]);
            }
        }
        sup_instance *i = cred ? sup_instance_by_pid(s, cred->pid) : NULL;
        if (!i) {
            svc_warn("notify message from a process that is no instance's main process: "
                     "ignored\tpid=%d", cred ? (int)cred->pid : -1);
            continue;
        }
        buf[n] = 0;
        for (char *l = buf, *e; l < buf + n; l = e + 1) {
            e = memchr(l, '\n', (size_t)(buf + n - l));
            if (!e)
                e = buf + n;
            s_line(i, l, (size_t)(e - l));
        }
    }
}

int sup_notify_open(sup *s)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int n = snprintf(s->notify_path, sizeof s->notify_path, "%s/notify.sock", s->state_dir);
    if (n < 0 || (size_t)n >= sizeof a.sun_path) {
        svc_error_log("state directory path too long for a unix socket\tstate_dir=\"%s\"",
                      s->state_dir);
        return SVC_EINVAL;
    }
    memcpy(a.sun_path, s->notify_path, (size_t)n + 1);
    s->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (s->notify_fd < 0)
        return -errno;
    int one = 1, rcv = 1 << 20;
    setsockopt(s->notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
    setsockopt(s->notify_fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    unlink(s->notify_path);
    if (bind(s->notify_fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        svc_error_log("cannot bind notify socket\tpath=\"%s\" error=\"%s\"", s->notify_path,
                      strerror(e));
        close(s->notify_fd);
        s->notify_fd = -1;
        return -e;
    }
    ev_io_init(&s->notify_io, s_on_notify, s->notify_fd, EV_READ);
    s->notify_io.data = s;
    ev_io_start(s->loop, &s->notify_io);
    return 0;
}

void sup_notify_close(sup *s)
{
    if (s->notify_fd < 0)
        return;
    ev_io_stop(s->loop, &s->notify_io);
    close(s->notify_fd);
    s->notify_fd = -1;
    unlink(s->notify_path);
}

void sup_sd_notify(sup *s, const char *text)
{
    const char *p = s->sd_notify_socket;
    if (!p || !*p)
        return;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    size_t len = strlen(p);
    if (len >= sizeof a.sun_path || (p[0] != '/' && p[0] != '@'))
        return;
    memcpy(a.sun_path, p, len);
    if (p[0] == '@')
        a.sun_path[0] = 0;   /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (p[0] == '/'));
    if (sendto(fd, text, strlen(text), MSG_NOSIGNAL, (struct sockaddr *)&a, alen) < 0)
        svc_debug("sd_notify failed\terror=\"%s\"", strerror(errno));
    close(fd);
}
