/* Inline helpers of inline_crash.c, in a header so an inlined frame's file differs from its
 * caller's and its call site points back into the .c file. */
extern volatile int ic_sink;
void ic_fault(int v);

static inline __attribute__((always_inline)) void ic_check(int v)
{
    if (v >= 0)
        ic_fault(v); /* a real call: its return address is inside two inlined frames */
    ic_sink = v;
}

static inline __attribute__((always_inline)) int ic_validate(int v)
{
    ic_sink += v;
    ic_check(v + 1);
    return v * 2;
}
