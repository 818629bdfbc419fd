/* Snapshot fixture: N threads (argv[1]) keep checksumming a 16 MiB buffer whose expected sum is
 * known, and sleep briefly between rounds (so they are often inside a system call when a snapshot
 * stops them). Prints pid and, once every worker runs, "ready"; each line on stdin is answered with "rounds=R errors=E".
 * A wrong checksum or a failed system call counts as an error: a snapshot must cause none.
 * argv[2] "churn": one more thread keeps starting short-lived threads and forking children that exit
 * at once (each joined or reaped), so that a snapshot meets a thread group and children in flux. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (16u << 20)
static uint8_t *buffer;
static uint64_t expected;
static volatile long rounds, errors;
static volatile int started;
volatile uint64_t pslt_marker = 0x5ca1ab1e0ddba11ULL;

static uint64_t sum(void)
{
    uint64_t s = 0;
    for (size_t i = 0; i < SIZE; i += 64) s += buffer[i] * (i + 1);
    return s;
}

__attribute__((noinline)) void *pslt_checksum_loop(void *arg)
{
    (void)arg;
    __sync_fetch_and_add(&started, 1);
    for (;;) {
        if (sum() != expected) __sync_fetch_and_add(&errors, 1);
        struct timespec ts = { 0, 200000 };
        while (nanosleep(&ts, &ts) != 0) {
            if (errno != EINTR) { __sync_fetch_and_add(&errors, 1); break; }
        }
        if (getpid() <= 0) __sync_fetch_and_add(&errors, 1);
        __sync_fetch_and_add(&rounds, 1);
    }
    return NULL;
}

static void *short_lived(void *arg) { return arg; }

/* Forks a child that exits at once and starts a thread that returns at once, forever; a failed
 * fork, wait or thread start counts as an error (the kernel gave EAGAIN or a wrong status). */
static void *churn_loop(void *arg)
{
    (void)arg;
    for (;;) {
        pid_t child = fork();
        if (child == 0) _exit(7);
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 7)
            __sync_fetch_and_add(&errors, 1);
        pthread_t t;
        if (pthread_create(&t, NULL, short_lived, NULL) != 0 || pthread_join(t, NULL) != 0)
            __sync_fetch_and_add(&errors, 1);
        usleep(500);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    buffer = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++) buffer[i] = (uint8_t)(i * 7 + 3);
    expected = sum();
    for (int i = 0; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, pslt_checksum_loop, NULL);
    }
    if (argc > 2 && !strcmp(argv[2], "churn")) {
        pthread_t t;
        pthread_create(&t, NULL, churn_loop, NULL);
    }
    /* "ready" only once every worker is inside its loop, so a snapshot finds each one there. */
    while (started < threads) usleep(1000);
    printf("pid=%d\n", getpid());
    printf("pslt_marker=%p\n", (void *)&pslt_marker);
    printf("ready\n");
    fflush(stdout);
    /* "service": run like a daemon started with Start-Process, which may have no stdin to read. */
    if (argc > 2 && !strcmp(argv[2], "service"))
        for (;;) pause();
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        printf("rounds=%ld errors=%ld\n", rounds, errors);
        fflush(stdout);
    }
    return 0;
}
