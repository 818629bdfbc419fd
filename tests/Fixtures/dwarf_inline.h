/* Inline helpers for dwarf_inline.c: defined in a header, so an inlined frame's file differs
 * from its caller's and the call file/line points back into the .c file. */
static inline int dw_square(int x)
{
    return x * x;
}

static inline __attribute__((always_inline)) int dw_sum_of_squares(int x)
{
    int a = dw_square(x);
    int b = dw_square(x + 1);
    return a + b;
}
