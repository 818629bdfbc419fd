/* Fixture for Get-ProcSymbol and the ELF reader: globals in .data, .rodata and .bss, a function,
 * a TLS variable. Prints their addresses as key=value lines, then "ready", then waits until its
 * stdin closes (so it never outlives the test host). Build as PIE, -no-pie and -static. */
#include <stdio.h>
#include <stdint.h>
#include <unistd.h>

uint64_t pslt_data_marker = 0x1122334455667788ULL;              /* .data   (rw-p) */
const uint64_t pslt_rodata_marker = 0x8877665544332211ULL;      /* .rodata (r--p) */
uint64_t pslt_bss_counter;                                      /* .bss    (rw-p, anonymous past the file) */
__thread int pslt_tls_var = 7;                                  /* .tdata  */
static volatile int pslt_static_local = 99;                     /* local binding in .symtab only */

__attribute__((noinline)) int pslt_function(int x) { return x * 3 + pslt_static_local; }

int main(void)
{
    pslt_bss_counter = 0xabcdef0123456789ULL;
    printf("pslt_data_marker=%p\n", (void *)&pslt_data_marker);
    printf("pslt_rodata_marker=%p\n", (void *)&pslt_rodata_marker);
    printf("pslt_bss_counter=%p\n", (void *)&pslt_bss_counter);
    printf("pslt_function=%p\n", (void *)&pslt_function);
    printf("pslt_static_local=%p\n", (void *)&pslt_static_local);
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) { }
    return pslt_function(1) == 0;
}
