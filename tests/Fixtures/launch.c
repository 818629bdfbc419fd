/* Launch-snapshot fixture: before its first unreplayable system call (write to fd 1) it opens and
 * reads a file read-only, allocates heap memory (malloc: brk, or mmap once brk is refused) and
 * stores a marker in it. "threads" as argv[1] starts a thread first (an error for launch mode). */
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *pslt_heap_block;
char pslt_file_head[64];

static void *idle(void *a) { (void)a; pause(); return NULL; }

__attribute__((noinline)) void pslt_first_write(void)
{
    write(1, "launched\n", 9);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "threads") == 0) {
        pthread_t t;
        pthread_create(&t, NULL, idle, NULL);
    }
    int fd = open("/proc/self/exe", O_RDONLY);
    if (fd >= 0) {
        read(fd, pslt_file_head, sizeof pslt_file_head);
    }
    pslt_heap_block = malloc(1 << 20);
    strcpy(pslt_heap_block, "pslt-heap-marker");
    pslt_first_write();
    return 0;
}
