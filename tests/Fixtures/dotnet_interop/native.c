/* The native half of the .NET fixture (Program.cs): managed code calls pslt_native_call, which
 * calls back into a managed function pointer from a second native frame, so a stack holds
 * native -> managed -> native -> managed. pslt_native_crash faults (a null store) when the
 * managed callback calls it, with managed frames above and below native ones. */
#include <stdio.h>

typedef void (*pslt_callback)(int);

__attribute__((noinline)) void pslt_native_crash(void)
{
    volatile int *p = (int *)0;
    *p = 42;
}

__attribute__((noinline)) static void pslt_native_inner(pslt_callback cb, int mode)
{
    cb(mode);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail call */
}

__attribute__((noinline)) void pslt_native_call(pslt_callback cb, int mode)
{
    pslt_native_inner(cb, mode);
    __asm__ volatile("" ::: "memory");
}
