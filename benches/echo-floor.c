/* The floor of suite `echo`'s server in user space: one thread, one
 * edge-triggered epoll, and per readable socket a recv and a send of what
 * it read, with no runtime at all. It speaks `weft-benches echo-serve`'s
 * protocol (prints its address, serves until standard input closes), so
 * `benches/echo-probe.sh` counts it beside Weft's and Tokio's servers.
 *
 *   gcc -O2 benches/echo-floor.c -o /tmp/echo-floor && taskset -c 1 /tmp/echo-floor
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t al = sizeof a;
    if (bind(l, (void *)&a, sizeof a) || listen(l, 1024) || getsockname(l, (void *)&a, &al)) {
        perror("listen");
        return 1;
    }
    printf("127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    ev.data.fd = 0; /* standard input: readable (or closed) means stop */
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);
    static char buf[16 * 1024]; /* the size the Rust servers read into */
    struct epoll_event evs[1024];
    for (;;) {
        int n = epoll_wait(ep, evs, 1024, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == 0) {
                return 0;
            }
            if (fd == l) {
                int c;
                while ((c = accept4(l, 0, 0, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            for (;;) {
                ssize_t r = recv(fd, buf, sizeof buf, 0);
                if (r < 0 && errno == EAGAIN) {
                    break;
                }
                if (r <= 0) {
                    close(fd);
                    break;
                }
                for (ssize_t w = 0; w < r;) {
                    ssize_t k = send(fd, buf + w, r - w, MSG_NOSIGNAL);
                    if (k < 0 && errno != EAGAIN && errno != EINTR) {
                        break; /* the next recv sees the error and closes */
                    }
                    w += k > 0 ? k : 0;
                }
                /* A short read drained the socket: edge-triggered epoll
                 * reports new data, so no recv that would hit EAGAIN. */
                if (r < (ssize_t)sizeof buf) {
                    break;
                }
            }
        }
    }
}
