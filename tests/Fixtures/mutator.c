/* Snapshot fixture for write tracking. gens: a 32 MiB array that a worker thread (started when argv[1]
 * is 1) rewrites again and again, each pass with the next pass number, in the order index = j * 7919 mod
 * 2^22 for j = 0, 1, ...: a snapshot of one instant shows pass g+1 at the first J indexes of that order and
 * pass g at the rest. (A writer in address order would not do: any copy in address order that it races
 * with looks like an instant.) Commands on stdin change memory on
 * request: "poke" writes a new value into a page; "zap" drops four pages filled with 0xa5 (MADV_DONTNEED:
 * they read as zeros after); "map" maps a new 1 MiB region filled with 0x5a; "uffd" opens a userfaultfd
 * of its own; "fork" fills gens with gens[i] = i * 0x9e3779b97f4a7c15 and forks a child that shares it
 * (copy-on-write) and sleeps until this process dies. Each answers with one line. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#define GENS ((32u << 20) / 8)
static volatile uint64_t *gens;

static void *worker(void *arg)
{
    (void)arg;
    for (uint64_t g = 1;; g++)
        for (size_t j = 0; j < GENS; j++) gens[(j * 7919) & (GENS - 1)] = g;
    return NULL;
}

int main(int argc, char **argv)
{
    gens = mmap(NULL, GENS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *zap = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    volatile uint64_t *poke = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (gens == MAP_FAILED || zap == MAP_FAILED || poke == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t i = 0; i < GENS; i++) gens[i] = 0;
    memset(zap, 0xa5, 4 * 4096);
    poke[0] = 0x1111;
    pthread_t t;
    if (argc > 1 && atoi(argv[1]) == 1) pthread_create(&t, NULL, worker, NULL);
    printf("pid=%d\ngens=%p\nzap=%p\npoke=%p\nready\n", getpid(), (void *)gens, (void *)zap, (void *)poke);
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "poke", 4)) { poke[0] = 0x900d; printf("poked\n"); }
        else if (!strncmp(line, "zap", 3)) { madvise(zap, 4 * 4096, MADV_DONTNEED); printf("zapped\n"); }
        else if (!strncmp(line, "map", 3)) {
            unsigned char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            memset(m, 0x5a, 1 << 20);
            printf("mapped=%p\n", (void *)m);
        }
        else if (!strncmp(line, "fork", 4)) {
            for (size_t i = 0; i < GENS; i++) gens[i] = i * 0x9e3779b97f4a7c15ull;
            pid_t child = fork();
            if (child == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() == 1) _exit(0);
                for (;;) pause();
            }
            printf("forked=%d\n", (int)child);
        }
        else if (!strncmp(line, "uffd", 4)) printf("uffd=%ld\n", syscall(SYS_userfaultfd, 1 /* UFFD_USER_MODE_ONLY */));
        else printf("ok\n");
        fflush(stdout);
    }
    return 0;
}
