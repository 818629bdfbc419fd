/* Maps files whose names are awkward for /proc/PID/maps parsers (spaces, " (deleted)"), and an
 * anonymous region, then prints their addresses. argv[1] is a scratch directory. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void *map_file(const char *path, int unlink_after)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return NULL;
    if (ftruncate(fd, 4096) != 0) return NULL;
    void *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (unlink_after) unlink(path);
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/name with spaces (1).bin", argv[1]);
    snprintf(b, sizeof b, "%s/gone soon.bin", argv[1]);
    printf("spaced=%p\n", map_file(a, 0));
    printf("deleted=%p\n", map_file(b, 1));
    printf("anon=%p\n", mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(0, buf, sizeof buf) > 0) { }
    return 0;
}
