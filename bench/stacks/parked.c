/* Get-ProcessStack benchmark target: N threads parked 8 calls deep in pause(), and a probe thread that
 * sleeps 1 ms at a time and keeps the longest wake-up delay it saw: how long the process was really
 * stopped by a tool (a stopped process's probe cannot run). On stdin: any line prints stall_us=<max>
 * and starts a new maximum. Usage: parked THREADS */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile long max_stall_us;
static pthread_barrier_t ready;

static long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static void *probe(void *arg)
{
    (void)arg;
    for (;;) {
        long t0 = now_us();
        usleep(1000);
        long late = now_us() - t0 - 1000;
        if (late > max_stall_us) max_stall_us = late;
    }
    return NULL;
}

__attribute__((noinline)) void park(int depth)
{
    if (depth > 0) { park(depth - 1); __asm__ volatile("" ::: "memory"); return; }
    for (;;) pause();
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&ready);
    park(8);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    pthread_barrier_init(&ready, NULL, (unsigned)threads + 1);
    pthread_t t;
    for (int i = 0; i < threads; i++) pthread_create(&t, NULL, worker, NULL);
    pthread_barrier_wait(&ready);
    pthread_create(&t, NULL, probe, NULL);
    usleep(100 * 1000);
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        printf("stall_us=%ld\n", max_stall_us);
        fflush(stdout);
        max_stall_us = 0;
    }
    return 0;
}
