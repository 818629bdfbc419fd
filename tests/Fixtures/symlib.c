/* Shared-library fixture: built twice with different PSLT_LIB_VALUE and PSLT_LIB_PAD, so that two
 * builds have different layouts (tests tell them apart by the value at the symbol's address). */
#include <stdint.h>
#ifndef PSLT_LIB_VALUE
#define PSLT_LIB_VALUE 0x1111111111111111ULL
#endif
#ifndef PSLT_LIB_PAD
#define PSLT_LIB_PAD 1
#endif
uint64_t pslt_lib_pad[PSLT_LIB_PAD] = { 1 };
uint64_t pslt_lib_global = PSLT_LIB_VALUE;
const char pslt_lib_text[] = "pslt-lib-rodata";
int pslt_lib_function(int x) { return x + (int)pslt_lib_pad[0]; }
