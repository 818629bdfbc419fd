/* The floor for any tool that writes a core file here: one process writes argv[1] MiB of its own
 * (already dirtied) memory into a new file in argv[2]'s directory, 64 MiB per write(), each byte
 * copied once into the page cache, and nothing else (no reading of another process, no headers).
 * Prints the best of argv[3] runs (default 2) as "floor_ms=<ms>"; the file is removed after each. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: floor MIB PATH [RUNS]\n"); return 2; }
    size_t n = strtoul(argv[1], NULL, 10) << 20, step = 64 << 20;
    int runs = argc > 3 ? atoi(argv[3]) : 2;
    unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + 7) | 1;
    double best = 1e18;
    for (int r = 0; r < runs; r++) {
        unlink(argv[2]);
        double t0 = now_ms();
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) { perror("open"); return 1; }
        for (size_t off = 0; off < n; off += step) {
            size_t len = n - off < step ? n - off : step;
            if (pwrite(fd, p + off, len, (off_t)off) != (ssize_t)len) { perror("pwrite"); return 1; }
        }
        close(fd);
        double ms = now_ms() - t0;
        if (ms < best) best = ms;
    }
    unlink(argv[2]);
    printf("floor_ms=%.1f\n", best);
    return 0;
}
