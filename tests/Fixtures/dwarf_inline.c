/* Fixture for the DWARF source-location reader, built with -O2 (and -gdwarf-4, -gz, clang...):
 * inlined calls three deep across a header, always_inline, tail calls, a cold split part
 * (main.cold), a loop, a switch, and noinline functions the inlined code calls. Running it
 * prints a number; the tests only read its debug info. */
#include <stdio.h>
#include <stdlib.h>
#include "dwarf_inline.h"

volatile int dw_sink;

__attribute__((noinline)) int dw_leaf(int v)
{
    dw_sink = v;
    return v * 3;
}

static inline __attribute__((always_inline)) int dw_middle(int v)
{
    int r = dw_sum_of_squares(v);
    if (r > 100)
        r = dw_leaf(r);
    return r + 1;
}

/* A tail call: at -O2 the call to dw_leaf becomes a jump. */
__attribute__((noinline)) int dw_tail(int v)
{
    return dw_leaf(v + dw_middle(v));
}

__attribute__((cold, noinline)) void dw_cold_path(int v)
{
    fprintf(stderr, "cold %d\n", v);
    abort();
}

static int dw_classify(int v)
{
    switch (v % 5) {
    case 0: return dw_middle(v);
    case 1: return dw_tail(v) + 7;
    case 2: return dw_square(v) - 3;
    default: return v;
    }
}

int main(int argc, char **argv)
{
    int s = 0;
    for (int i = 0; i < argc * 10; i++)
        s += dw_middle(i) + dw_classify(i + (argv[0][0] == 'x'));
    if (__builtin_expect(s == 12345, 0))
        dw_cold_path(s);
    printf("%d\n", dw_tail(s) & 0xff);
    return 0;
}
