/* Benchmark fixture: dirties argv[1] MiB of heap with non-zero bytes (so no tool can skip them as
 * holes), prints "ready", then keeps running until stdin closes. A probe thread sleeps 1 ms at a time
 * and keeps the longest it ever took to wake (what a snapshot really cost the process, whatever the
 * tool says); each line on stdin is answered with "stall_us=<longest>" and resets it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile long longest_ns;

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *probe(void *arg)
{
    (void)arg;
    struct timespec ms = { 0, 1000000 };
    for (;;) {
        long t0 = now_ns();
        nanosleep(&ms, NULL);
        long late = now_ns() - t0 - 1000000;
        if (late > longest_ns) longest_ns = late;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    size_t n = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) << 20;
    unsigned char *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + 7) | 1;
    pthread_t t;
    pthread_create(&t, NULL, probe, NULL);
    usleep(100000);
    longest_ns = 0;
    printf("ready\n");
    fflush(stdout);
    char b[64];
    while (fgets(b, sizeof b, stdin)) {
        printf("stall_us=%ld\n", longest_ns / 1000);
        fflush(stdout);
        longest_ns = 0;
    }
    return p[n / 2] == 0;
}
