/* Loads the library named by argv[1] with dlopen and prints where its symbols are. */
#include <dlfcn.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    printf("pslt_lib_global=%p\n", dlsym(h, "pslt_lib_global"));
    printf("pslt_lib_function=%p\n", dlsym(h, "pslt_lib_function"));
    printf("pslt_lib_text=%p\n", dlsym(h, "pslt_lib_text"));
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) { }
    return 0;
}
