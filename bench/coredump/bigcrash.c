/* Benchmark fixture: dirties argv[1] MiB of heap, starts argv[2] - 1 threads (default 15), then
 * aborts: a core of that many threads, every one of them in libc (pause, abort → raise). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static pthread_barrier_t b;
static void *worker(void *a) { (void)a; pthread_barrier_wait(&b); for (;;) pause(); return NULL; }
int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    int threads = argc > 2 ? atoi(argv[2]) : 16;
    if (threads < 1) threads = 1;
    char *p = malloc(mib << 20);
    for (size_t i = 0; i < (mib << 20); i += 4096) p[i] = (char)i;
    pthread_barrier_init(&b, NULL, (unsigned)threads);
    for (int i = 0; i < threads - 1; i++) { pthread_t t; pthread_create(&t, NULL, worker, NULL); }
    pthread_barrier_wait(&b);
    usleep(100000);
    abort();
}
