/* Core-dump fixture: starts N worker threads (argv[2]) that block in pslt_worker_wait, then the
 * main thread crashes in pslt_crash_here: "segv" writes to address 0x10 (fault address known),
 * "abort" calls abort(), "wait" prints "ready" and waits on stdin (for gcore), "smash" overwrites
 * its own saved rbp and return address with garbage and then faults (an unwinder must stop there),
 * "signal" faults inside a SIGUSR1 handler (the unwinder must cross the signal frame), "heap" fills
 * 24 MiB of heap with (i * 7 + 1) & 0xff, prints where, then faults as "segv" does (a big anonymous segment).
 * Usage: crash segv|abort|wait|smash|signal|heap [threads] */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_barrier_t started;
volatile int pslt_sink;

__attribute__((noinline)) void pslt_worker_wait(long id)
{
    pslt_sink = (int)id;
    for (;;) pause();
}

static void *worker(void *arg)
{
    pthread_barrier_wait(&started);
    pslt_worker_wait((long)arg);
    return NULL;
}

__attribute__((noinline)) void pslt_handler(int sig)
{
    (void)sig;
    *(volatile int *)0x20 = 42;
}

__attribute__((noinline)) void pslt_crash_here(const char *mode)
{
    if (strcmp(mode, "abort") == 0) abort();
    if (strcmp(mode, "signal") == 0) {
        signal(SIGUSR1, pslt_handler);
        raise(SIGUSR1);
    }
    *(volatile int *)0x10 = 42;
}

__attribute__((noinline)) void pslt_smash_here(void)
{
    void **frame = __builtin_frame_address(0); /* [0] = caller's rbp, [1] = return address */
    frame[0] = (void *)0x4141414141414141UL;
    frame[1] = (void *)0x4242424242424242UL;
    *(volatile int *)0x18 = 42;
}

__attribute__((noinline)) void pslt_wait_here(void)
{
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) { }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "segv";
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    pthread_barrier_init(&started, NULL, (unsigned)threads + 1);
    for (long i = 0; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, (void *)i);
    }
    pthread_barrier_wait(&started);
    usleep(100 * 1000); /* let the workers reach pause() */
    printf("pid=%d\n", getpid());
    printf("pslt_crash_here=%p\n", (void *)&pslt_crash_here);
    if (strcmp(mode, "heap") == 0) {
        size_t n = 24 << 20;
        unsigned char *heap = malloc(n);
        for (size_t i = 0; i < n; i++) heap[i] = (unsigned char)(i * 7 + 1);
        printf("pslt_heap=%p\n", (void *)heap);
        mode = "segv";
    }
    if (strcmp(mode, "wait") == 0) {
        printf("ready\n");
        fflush(stdout);
        pslt_wait_here();
        return 0;
    }
    fflush(stdout);
    if (strcmp(mode, "smash") == 0) pslt_smash_here();
    pslt_crash_here(mode);
    return 0;
}
