/* Exec storm for the fault campaign (tests/Pester/Faults.Tests.ps1, bench/faults/run.sh):
 *   exec_storm RATE SECONDS WORKERS MARKER   WORKERS processes posix_spawn this program as
 *                                            "exec_storm noop MARKER I", together about RATE a
 *                                            second for SECONDS, each spawn reaped before the next;
 *                                            prints "execs=N" (the spawns that succeeded) at the end
 *   exec_storm noop ...                      exits 0 at once (built -static, so an exec costs little)
 * posix_spawn returns an error when the exec fails (glibc waits for it, CLONE_VFORK), so every
 * spawn counted is one successful execve that a watcher must see (or count as lost). */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One worker: spawns at its share of the rate until the deadline; returns how many succeeded. */
static long storm(const char *self, const char *marker, double rate, double seconds)
{
    double start = now(), interval = 1.0 / rate;
    long done = 0;
    while (now() - start < seconds) {
        char num[24];
        snprintf(num, sizeof num, "%ld", done);
        char *args[] = { (char *)self, "noop", (char *)marker, num, NULL };
        pid_t pid;
        int status;
        if (posix_spawn(&pid, self, NULL, NULL, args, environ) == 0 && waitpid(pid, &status, 0) == pid) done++;
        double due = start + done * interval, wait = due - now();
        if (wait > 0) usleep((useconds_t)(wait * 1e6));
    }
    return done;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "noop")) return 0;
    if (argc != 5) { fprintf(stderr, "usage: exec_storm RATE SECONDS WORKERS MARKER | noop\n"); return 1; }
    double rate = atof(argv[1]), seconds = atof(argv[2]);
    int workers = atoi(argv[3]);
    long *counts = mmap(NULL, sizeof(long) * workers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int w = 0; w < workers; w++)
        if (fork() == 0) { counts[w] = storm(argv[0], argv[4], rate / workers, seconds); _exit(0); }
    while (wait(NULL) > 0) { }
    long total = 0;
    for (int w = 0; w < workers; w++) total += counts[w];
    printf("execs=%ld\n", total);
    return 0;
}
