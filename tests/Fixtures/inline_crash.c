/* Fixture for source lines and inlined frames in stacks, built -g -O2: the main thread crashes
 * (segv: a write to 0x10; abort: abort()) inside two inlined frames of ic_fault's caller chain,
 * reached through a tail call (ic_dispatch jumps to ic_crash); N workers (argv[2]) wait in
 * ic_park, called from code inlined into ic_worker. "wait" prints ready and blocks (for gcore);
 * "ambiguous" reaches the segv through one of two tail-call paths (ic_pick to ic_left or ic_right).
 * Usage: inline_crash segv|abort|wait|ambiguous [threads] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "inline_crash.h"

volatile int ic_sink;
static const char *ic_mode = "segv";
static pthread_barrier_t ic_started;

__attribute__((noinline)) void ic_park(long id)
{
    ic_sink = (int)id;
    for (;;)
        pause();
}

static inline __attribute__((always_inline)) void ic_worker_loop(long id)
{
    ic_sink += 1;
    ic_park(id);
}

static void *ic_worker(void *arg)
{
    pthread_barrier_wait(&ic_started);
    ic_worker_loop((long)arg);
    return NULL;
}

static inline __attribute__((always_inline)) void ic_fault_here(int v)
{
    if (strcmp(ic_mode, "abort") == 0)
        abort();
    *(volatile int *)0x10 = v;
}

__attribute__((noinline)) void ic_fault(int v)
{
    ic_fault_here(v);
    ic_sink = v;
}

__attribute__((noinline)) int ic_crash(int v)
{
    int r = ic_validate(v);
    return r + ic_sink;
}

/* At -O2 the call becomes a jump: ic_dispatch's frame is gone from the stack. */
__attribute__((noinline)) int ic_dispatch(int v)
{
    return ic_crash(v * 3 + 1);
}

/* Two tail-call paths from ic_pick to ic_crash: which one ran, DWARF cannot tell ("ambiguous" mode). */
__attribute__((noinline, noclone)) int ic_left(int v)
{
    ic_sink += 2;
    return ic_crash(v + 1);
}

__attribute__((noinline, noclone)) int ic_right(int v)
{
    ic_sink += 3;
    return ic_crash(v * 5);
}

__attribute__((noinline, noclone)) int ic_pick(int v)
{
    if (v & 1)
        return ic_left(v);
    return ic_right(v);
}

__attribute__((noinline)) void ic_wait_here(void)
{
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) { }
}

int main(int argc, char **argv)
{
    ic_mode = argc > 1 ? argv[1] : "segv";
    int threads = argc > 2 ? atoi(argv[2]) : 0;
    pthread_barrier_init(&ic_started, NULL, (unsigned)threads + 1);
    for (long i = 0; i < threads; i++) {
        pthread_t t;
        pthread_create(&t, NULL, ic_worker, (void *)i);
    }
    pthread_barrier_wait(&ic_started);
    usleep(100 * 1000); /* let the workers reach pause() */
    printf("pid=%d\n", getpid());
    if (strcmp(ic_mode, "wait") == 0) {
        printf("ready\n");
        fflush(stdout);
        ic_wait_here();
        return 0;
    }
    fflush(stdout);
    if (strcmp(ic_mode, "ambiguous") == 0)
        printf("%d\n", ic_pick(argc));
    else
        printf("%d\n", ic_dispatch(argc));
    return 0;
}
