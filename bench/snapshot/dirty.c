/* Benchmark fixture: dirties argv[1] MiB of heap with non-zero bytes (so no tool can skip them as
 * holes), prints "ready", then keeps running until stdin closes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    size_t n = (argc > 1 ? strtoul(argv[1], NULL, 10) : 64) << 20;
    unsigned char *p = malloc(n);
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + 7) | 1;
    printf("ready\n");
    fflush(stdout);
    char b[16];
    while (read(0, b, sizeof b) > 0) { }
    return p[n / 2] == 0;
}
