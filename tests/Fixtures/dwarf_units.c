/* Fixture for the DWARF reader: the first of two compilation units (the second is
 * dwarf_units_b.c), so lookups must pick the right unit by address. */
#include <stdio.h>

int dwb_scale(int v);
int dwb_offset(int v);

static inline int dwa_twice(int v)
{
    return v * 2;
}

int main(int argc, char **argv)
{
    (void)argv;
    int v = dwa_twice(argc) + dwb_scale(argc);
    printf("%d\n", dwb_offset(v));
    return 0;
}
