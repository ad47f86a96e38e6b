/*
 * benchtool: the Linux-side helpers of scripts/bench (built statically on the host with gcc,
 * run in the nested dom0 and in the Linux PV domU). Every number it prints is measured here,
 * with CLOCK_MONOTONIC.
 *
 *   benchtool sink PORT              accept one TCP connection on PORT, read until EOF, print
 *                                    "sink bytes=N secs=S mibps=R" (time from accept to EOF)
 *   benchtool send HOST PORT MIB     connect, send MIB MiB from a buffer in 64 KiB writes, close
 *                                    (shutdown + wait for the peer's EOF), print
 *                                    "send bytes=N secs=S mibps=R" (time from connect to EOF)
 *   benchtool wait PORT              accept one connection on PORT, close it, exit (a trigger)
 *   benchtool poke HOST PORT SECS    connect to HOST:PORT (retrying for up to SECS s), close
 *   benchtool http HOST PORT SECS FILE
 *                                    GET / from HOST:PORT (Connection: close) until a 200
 *                                    comes back or SECS s pass; each try's connect gives up
 *                                    after 100 ms (no SYN retransmit waits), 50 ms between
 *                                    tries; writes the response to FILE; exit 0 on a 200
 *   benchtool blk DEV MIB SECS [QD]  on a block device with O_DIRECT, one request at a time:
 *                                    sequential write of MIB MiB in 1 MiB requests + fsync,
 *                                    sequential read of the same MiB, then 4 KiB random reads
 *                                    within those MiB for SECS s; then the same random reads
 *                                    with QD (default 32) in flight (Linux native AIO from one
 *                                    thread, as fio's libaio engine), for SECS s; prints "blk seq_write_mibps=..
 *                                    seq_read_mibps=.. randread_iops=.. randread_qd_iops=.."
 *                                    and the raw counts and times
 *
 * Offsets of the random reads come from xorshift64 with a fixed seed (the same generator and
 * seed as examples/blkbench).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "benchtool: %s: %s\n", what, strerror(errno));
    exit(1);
}

static long arg_num(const char *s, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v <= 0) {
        fprintf(stderr, "benchtool: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY};
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        die("bind");
    if (listen(fd, 4) < 0)
        die("listen");
    return fd;
}

static int connect_to(const char *host, int port, double patience)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "benchtool: bad address %s\n", host);
        exit(2);
    }
    double give_up = now() + patience;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            die("socket");
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
            return fd;
        close(fd);
        if (now() > give_up)
            die("connect");
        usleep(200000);
    }
}

/* One GET / on a new connection to a (connect bounded by 100 ms, the rest by 5 s); the
 * response goes to out (truncated first). Returns 1 when its status line says 200. */
static int http_try(const struct sockaddr_in *a, const char *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        die("socket");
    int ok = 0;
    if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0 && errno != EINPROGRESS)
        goto done;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, 100) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
        goto done;
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    static const char req[] = "GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1))
        goto done;
    FILE *f = fopen(out, "w");
    if (!f)
        die(out);
    char buf[16384], first[16] = {0};
    size_t got = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        if (got < sizeof first - 1) {
            size_t k = sizeof first - 1 - got;
            memcpy(first + got, buf, (size_t)n < k ? (size_t)n : k);
        }
        got += (size_t)n;
        fwrite(buf, 1, (size_t)n, f);
    }
    fclose(f);
    ok = n == 0 && !strncmp(first, "HTTP/1.", 7) && !strncmp(first + 8, " 200", 4);
done:
    close(fd);
    return ok;
}

static int cmd_http(const char *host, int port, long secs, const char *out)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "benchtool: bad address %s\n", host);
        exit(2);
    }
    double t0 = now(), give_up = t0 + (double)secs;
    long tries = 0;
    for (;;) {
        tries++;
        if (http_try(&a, out)) {
            printf("http ok tries=%ld secs=%.3f\n", tries, now() - t0);
            return 0;
        }
        if (now() > give_up) {
            printf("http fail tries=%ld secs=%.3f\n", tries, now() - t0);
            return 1;
        }
        usleep(50000);
    }
}

static int cmd_sink(int port)
{
    int l = listen_on(port);
    int fd = accept(l, NULL, NULL);
    if (fd < 0)
        die("accept");
    double t0 = now();
    static char buf[1 << 16];
    long long total = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (n == 0)
            break;
        total += n;
    }
    double secs = now() - t0;
    close(fd);
    printf("sink bytes=%lld secs=%.3f mibps=%.2f\n", total, secs, total / 1048576.0 / secs);
    return 0;
}

static int cmd_send(const char *host, int port, long mib)
{
    static char buf[1 << 16];
    memset(buf, 'x', sizeof buf);
    int fd = connect_to(host, port, 30);
    double t0 = now();
    long long total = (long long)mib << 20, sent = 0;
    while (sent < total) {
        size_t want = sizeof buf;
        if ((long long)want > total - sent)
            want = (size_t)(total - sent);
        ssize_t n = write(fd, buf, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        sent += n;
    }
    shutdown(fd, SHUT_WR);
    /* The peer has everything once it closes its side. */
    while (read(fd, buf, sizeof buf) > 0) {
    }
    double secs = now() - t0;
    close(fd);
    printf("send bytes=%lld secs=%.3f mibps=%.2f\n", sent, secs, sent / 1048576.0 / secs);
    return 0;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void full_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    ssize_t n = pwrite(fd, buf, len, off);
    if (n < 0)
        die("pwrite");
    if ((size_t)n != len) {
        fprintf(stderr, "benchtool: short write at %lld\n", (long long)off);
        exit(1);
    }
}

static void full_pread(int fd, void *buf, size_t len, off_t off)
{
    ssize_t n = pread(fd, buf, len, off);
    if (n < 0)
        die("pread");
    if ((size_t)n != len) {
        fprintf(stderr, "benchtool: short read at %lld\n", (long long)off);
        exit(1);
    }
}

/* The seed of in-flight slot i (the same as examples/blkbench's reader_seed). */
static uint64_t reader_seed(uint64_t i)
{
    return 0x9e3779b97f4a7c15ull ^ ((i + 1) * 0xbf58476d1ce4e5b9ull);
}

/* 4 KiB O_DIRECT reads at random blocks (of BLOCKS) for SECS s with QD in flight, through
 * Linux native AIO (io_submit/io_getevents, what fio's libaio engine uses) from this one
 * thread: slot i reads its next block from its own xorshift64 sequence as soon as its last
 * read completed. Returns the reads completed; *secs_out the time until the last one. */
static long qd_reads(const char *dev, uint64_t blocks, long secs, long qd, double *secs_out)
{
    int fd = open(dev, O_RDONLY | O_DIRECT);
    if (fd < 0)
        die(dev);
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, qd, &ctx) < 0)
        die("io_setup");
    struct iocb *cbs = calloc((size_t)qd, sizeof *cbs);
    struct io_event *evs = calloc((size_t)qd, sizeof *evs);
    uint64_t *seeds = calloc((size_t)qd, sizeof *seeds);
    void *bufs;
    if (!cbs || !evs || !seeds || posix_memalign(&bufs, 4096, (size_t)qd * 4096))
        die("calloc");
    double t0 = now(), end = t0 + (double)secs;
    for (long i = 0; i < qd; i++) {
        seeds[i] = reader_seed((uint64_t)i);
        cbs[i].aio_data = (uint64_t)i;
        cbs[i].aio_lio_opcode = IOCB_CMD_PREAD;
        cbs[i].aio_fildes = (uint32_t)fd;
        cbs[i].aio_buf = (uint64_t)(uintptr_t)((char *)bufs + (size_t)i * 4096);
        cbs[i].aio_nbytes = 4096;
        cbs[i].aio_offset = (int64_t)((xorshift64(&seeds[i]) % blocks) * 4096);
        struct iocb *one = &cbs[i];
        if (syscall(SYS_io_submit, ctx, 1L, &one) != 1)
            die("io_submit");
    }
    long ops = 0, inflight = qd;
    while (inflight > 0) {
        long n = syscall(SYS_io_getevents, ctx, 1L, qd, evs, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("io_getevents");
        }
        double t = now();
        for (long k = 0; k < n; k++) {
            long i = (long)evs[k].data;
            if (evs[k].res != 4096) {
                fprintf(stderr, "benchtool: queued read returned %lld\n", (long long)evs[k].res);
                exit(1);
            }
            ops++;
            if (t >= end) {
                inflight--;
                continue;
            }
            cbs[i].aio_offset = (int64_t)((xorshift64(&seeds[i]) % blocks) * 4096);
            struct iocb *one = &cbs[i];
            if (syscall(SYS_io_submit, ctx, 1L, &one) != 1)
                die("io_submit");
        }
    }
    *secs_out = now() - t0;
    syscall(SYS_io_destroy, ctx);
    close(fd);
    free(bufs);
    free(seeds);
    free(evs);
    free(cbs);
    return ops;
}

static int cmd_blk(const char *dev, long mib, long secs, long qd)
{
    int fd = open(dev, O_RDWR | O_DIRECT);
    if (fd < 0)
        die(dev);
    const size_t big = 1 << 20, small = 4096;
    void *buf;
    if (posix_memalign(&buf, 4096, big))
        die("posix_memalign");
    /* A pattern that differs per MiB, checked on the way back. */
    double t0 = now();
    for (long i = 0; i < mib; i++) {
        memset(buf, (int)(i & 0xff) ^ 0x5a, big);
        full_pwrite(fd, buf, big, (off_t)i * big);
    }
    if (fsync(fd) < 0)
        die("fsync");
    double wsecs = now() - t0;

    t0 = now();
    for (long i = 0; i < mib; i++) {
        full_pread(fd, buf, big, (off_t)i * big);
        const unsigned char *p = buf;
        if (p[0] != (unsigned char)((i & 0xff) ^ 0x5a) || p[big - 1] != p[0]) {
            fprintf(stderr, "benchtool: MiB %ld reads back wrong data\n", i);
            exit(1);
        }
    }
    double rsecs = now() - t0;

    uint64_t seed = 0x9e3779b97f4a7c15ull;
    uint64_t blocks = (uint64_t)mib * (big / small);
    long ops = 0;
    t0 = now();
    double end = t0 + (double)secs, t;
    do {
        uint64_t b = xorshift64(&seed) % blocks;
        full_pread(fd, buf, small, (off_t)(b * small));
        ops++;
        t = now();
    } while (t < end);
    double qsecs = t - t0;
    close(fd);

    double qdsecs;
    long qd_ops = qd_reads(dev, blocks, secs, qd, &qdsecs);
    free(buf);
    printf("blk mib=%ld write_secs=%.3f read_secs=%.3f randread_ops=%ld randread_secs=%.3f\n", mib, wsecs,
           rsecs, ops, qsecs);
    printf("blk qd=%ld randread_qd_ops=%ld randread_qd_secs=%.3f\n", qd, qd_ops, qdsecs);
    printf("blk seq_write_mibps=%.2f seq_read_mibps=%.2f randread_iops=%.1f randread_qd_iops=%.1f\n", mib / wsecs,
           mib / rsecs, ops / qsecs, qd_ops / qdsecs);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && !strcmp(argv[1], "sink"))
        return cmd_sink((int)arg_num(argv[2], "port"));
    if (argc == 5 && !strcmp(argv[1], "send"))
        return cmd_send(argv[2], (int)arg_num(argv[3], "port"), arg_num(argv[4], "MiB"));
    if (argc == 3 && !strcmp(argv[1], "wait")) {
        int l = listen_on((int)arg_num(argv[2], "port"));
        int fd = accept(l, NULL, NULL);
        if (fd < 0)
            die("accept");
        close(fd);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "poke")) {
        int fd = connect_to(argv[2], (int)arg_num(argv[3], "port"), (double)arg_num(argv[4], "seconds"));
        close(fd);
        return 0;
    }
    if (argc == 6 && !strcmp(argv[1], "http"))
        return cmd_http(argv[2], (int)arg_num(argv[3], "port"), arg_num(argv[4], "seconds"), argv[5]);
    if ((argc == 5 || argc == 6) && !strcmp(argv[1], "blk"))
        return cmd_blk(argv[2], arg_num(argv[3], "MiB"), arg_num(argv[4], "seconds"),
                       argc == 6 ? arg_num(argv[5], "queue depth") : 32);
    fprintf(stderr, "usage: benchtool sink PORT | send HOST PORT MIB | wait PORT | poke HOST PORT SECS |"
                    " http HOST PORT SECS FILE | blk DEV MIB SECS [QD]\n");
    return 2;
}
