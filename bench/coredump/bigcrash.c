/* Benchmark fixture: dirties argv[1] MiB of heap (default 64), starts argv[2] - 1 threads (default
 * 16 in all), each parked a few calls deep, then aborts: a core of that many threads. With argv[3]
 * "text" the heap is filled with letters (3 bits of entropy a byte: zstd packs it about 2.5:1, as a
 * real heap) instead of one byte a page (which packs 1000:1). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static pthread_barrier_t b;
__attribute__((noinline)) static void park(void) { for (;;) pause(); }
__attribute__((noinline)) static void wait_here(long depth) { if (depth > 0) wait_here(depth - 1); else park(); __asm__ volatile(""); }
static void *worker(void *a) { pthread_barrier_wait(&b); wait_here((long)a % 4); return NULL; }
int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    int threads = argc > 2 ? atoi(argv[2]) : 16;
    char *p = malloc(mib << 20);
    if (argc > 3 && strcmp(argv[3], "text") == 0) {
        unsigned long long x = 88172645463325252ULL;
        for (size_t i = 0; i < (mib << 20); i++) { x = x * 6364136223846793005ULL + 1442695040888963407ULL; p[i] = (char)('a' + (x >> 61)); }
    } else {
        for (size_t i = 0; i < (mib << 20); i += 4096) p[i] = (char)i;
    }
    pthread_barrier_init(&b, NULL, (unsigned)threads);
    for (long i = 1; i < threads; i++) { pthread_t t; pthread_create(&t, NULL, worker, (void *)i); }
    pthread_barrier_wait(&b);
    usleep(100000);
    abort();
}
