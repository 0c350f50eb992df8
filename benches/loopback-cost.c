/* What the kernel alone charges an echo server per message on this machine,
 * against which suite `echo`'s server CPU per message (issue 25) is read:
 * a 100-byte write on a loopback TCP connection and the read that takes it
 * back, and one empty nonblocking read with read(2) and with recv(2).
 *
 *   gcc -O2 benches/loopback-cost.c -o /tmp/loopback-cost && taskset -c 1 /tmp/loopback-cost
 *
 * On the project's 2-core test VM: ~7.0 us per write+read pair (the write
 * delivers into the peer's socket), ~380 ns per empty read(2), ~345 ns per
 * empty recv(2). No runtime can do better than the pair per echoed message.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(0x7f000001);
    socklen_t al = sizeof a;
    if (bind(l, (void *)&a, sizeof a) || listen(l, 1) || getsockname(l, (void *)&a, &al)) {
        perror("listen");
        return 1;
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (void *)&a, sizeof a)) {
        perror("connect");
        return 1;
    }
    int s = accept(l, 0, 0);
    fcntl(s, F_SETFL, O_NONBLOCK);
    static char buf[16384];
    memset(buf, 1, sizeof buf);
    for (int round = 0; round < 3; round++) {
        for (int mode = 0; mode < 2; mode++) {
            int n = 1000000;
            double t0 = now();
            for (int i = 0; i < n; i++) {
                if ((mode ? recv(s, buf, sizeof buf, 0) : read(s, buf, sizeof buf)) >= 0) {
                    return 1;
                }
            }
            printf("empty %s: %.0f ns\n", mode ? "recv" : "read", (now() - t0) / n * 1e9);
        }
        int n = 200000;
        double t0 = now();
        for (int i = 0; i < n; i++) {
            if (write(c, buf, 100) != 100 || recv(s, buf, sizeof buf, 0) != 100) {
                fprintf(stderr, "short transfer\n");
                return 1;
            }
        }
        printf("100 B write + recv: %.0f ns\n", (now() - t0) / n * 1e9);
    }
    return 0;
}
