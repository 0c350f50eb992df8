/* What waking a sleeping process costs on this machine, against which suite
 * `mpi`'s workload `gapped` (issue 16) is read: process A sleeps GAP
 * microseconds, sends 8 bytes over a Unix datagram socket to process B,
 * which waits in epoll_wait, and spins until B's 8-byte answer comes back.
 * Prints the p50 and p99 of A's send alone (it wakes B's idle CPU) and of
 * the round trip. Every `gapped` exchange after a gap pays one such wake
 * (the doorbell's ring), plus MPI's own transfer.
 *
 *   gcc -O2 benches/wake-cost.c -o /tmp/wake-cost && /tmp/wake-cost 5000 300
 *
 * On the project's 2-core test VM the send cost 19 us (p50) at 5 ms gaps in
 * one hour and 46-55 us an hour later: the host decides, not the guest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int gap = argc > 1 ? atoi(argv[1]) : 5000;
    int n = argc > 2 ? atoi(argv[2]) : 300;
    int pair[2];
    if (n < 1 || socketpair(AF_UNIX, SOCK_DGRAM, 0, pair) != 0) {
        fprintf(stderr, "usage: wake-cost [GAP_US] [EXCHANGES]\n");
        return 1;
    }
    if (fork() == 0) {
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN};
        epoll_ctl(ep, EPOLL_CTL_ADD, pair[1], &ev);
        char buf[8];
        for (int i = 0; i < n; i++) {
            struct epoll_event got;
            epoll_wait(ep, &got, 1, -1);
            recv(pair[1], buf, sizeof buf, 0);
            send(pair[1], buf, sizeof buf, 0);
        }
        _exit(0);
    }
    char buf[8] = {0};
    double *send_us = malloc(n * sizeof(double)), *rtt_us = malloc(n * sizeof(double));
    for (int i = 0; i < n; i++) {
        usleep(gap);
        double start = now_us();
        send(pair[0], buf, sizeof buf, 0);
        send_us[i] = now_us() - start;
        while (recv(pair[0], buf, sizeof buf, MSG_DONTWAIT) < 0) {
        }
        rtt_us[i] = now_us() - start;
    }
    wait(NULL);
    qsort(send_us, n, sizeof(double), by_value);
    qsort(rtt_us, n, sizeof(double), by_value);
    printf("gap %d us: send p50 %.1f p99 %.1f us; round trip p50 %.1f p99 %.1f us\n", gap, send_us[n / 2],
           send_us[n * 99 / 100], rtt_us[n / 2], rtt_us[n * 99 / 100]);
    return 0;
}
