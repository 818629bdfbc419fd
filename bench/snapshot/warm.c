/* Benchmark helper: touches argv[1] MiB of new memory, one byte a page, and exits, freeing it.
 * These VMs report free memory to the host (virtio-balloon free page reporting), which takes it back
 * about two seconds after it is freed; the next use of such a page waits for the host to fault it in
 * again, which made the same 2 GiB copy take 0.3 s in one run and 5 s in the next. Run right before a
 * timed tool, this hands every tool the same just-freed, still-backed memory for its page cache. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: warm MIB\n"); return 2; }
    size_t n = strtoul(argv[1], NULL, 10) << 20;
    volatile unsigned char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); return 1; }
    for (size_t i = 0; i < n; i += 4096) p[i] = 1;
    return 0;
}
