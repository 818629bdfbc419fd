// The small program whose builds (and cores) seed the elf, core, cfi and dwarf corpora.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct pair { int key; long value; };

static inline __attribute__((always_inline)) long fuzz_mix(long a, long b) { return a * 31 + (b ^ (a >> 3)); }

__attribute__((noinline)) long fuzz_leaf(struct pair *p, int n)
{
    long sum = 0;
    for (int i = 0; i < n; i++) sum = fuzz_mix(sum, p[i].value + p[i].key);
    return sum;
}

__attribute__((noinline)) long fuzz_middle(int n)
{
    struct pair *p = calloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++) p[i] = (struct pair){ i, (long)i * i };
    long r = fuzz_leaf(p, n);
    free(p);
    return r;
}

static void *fuzz_thread(void *arg)
{
    (void)arg;
    for (;;) pause();
    return NULL;
}

int main(int argc, char **argv)
{
    // "park": stay alive (with a second thread) for gcore; "crash": die of SIGSEGV for a kernel core.
    if (argc > 1 && strcmp(argv[1], "park") == 0)
    {
        pthread_t t;
        pthread_create(&t, NULL, fuzz_thread, NULL);
        printf("%ld\n", fuzz_middle(8));
        fflush(stdout);
        for (;;) pause();
    }
    if (argc > 1 && strcmp(argv[1], "crash") == 0) { volatile int *p = (int *)(long)argc - 2; return *p; }
    return (int)fuzz_middle(argc + 4) & 1;
}
