// Known syscall sequences for Start-SyscallTrace tests. Modes:
//   basic            openat/read/close, a failing openat (ENOENT), write, getppid x3, exit 3
//   threads N        N threads, each does getppid 5 times and a write, joined; exit 0
//   forkexec         fork; child execs /bin/true; parent wait4s; exit 0
//   signal           SIGUSR1 to itself (handled), then exits 0
//   spin N           N getppid calls (benchmark)
//   wait             prints pid= and ready, then loops: nanosleep 10 ms + getppid, until stdin says quit;
//                    answers "count=<SIGUSR2 received>" to "count"
//   kill             raise(SIGKILL) in the middle of the trace
//   block            prints pid= and ready, then answers each line read with a blocking read(0) by "got"
//   zombie           forks a child that exits at once and is not reaped until stdin says quit (pid= is the child)
//   threadexec       a second thread execs /bin/true while the main thread sleeps (execve from a non-leader)
//   untouched        write(-1, buf, 16) with buf in a file mapping never touched (EBADF: nothing reads buf), exit 0
//   threadwait N     prints pid= and ready; N threads loop nanosleep 10 ms + getppid while the main one reads stdin until quit
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t usr;
static void on_usr(int sig) { (void)sig; usr++; }

static void *execer(void *arg)
{
    (void)arg;
    execl("/bin/true", "true", (char *)NULL);
    return NULL;
}

static void *waiter(void *arg)
{
    (void)arg;
    for (;;)
    {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        syscall(SYS_getppid);
    }
    return NULL;
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) syscall(SYS_getppid);
    syscall(SYS_write, 1, "t\n", 2);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "basic";
    if (!strcmp(mode, "basic"))
    {
        char buf[64];
        int fd = syscall(SYS_openat, AT_FDCWD, "/etc/passwd", O_RDONLY);
        syscall(SYS_read, fd, buf, 16);
        syscall(SYS_close, fd);
        syscall(SYS_openat, AT_FDCWD, "/nonexistent/pslinuxtrace", O_RDONLY | O_CLOEXEC);
        syscall(SYS_write, 1, "hello\n", 6);
        for (int i = 0; i < 3; i++) syscall(SYS_getppid);
        return 3;
    }
    if (!strcmp(mode, "threads"))
    {
        int n = argc > 2 ? atoi(argv[2]) : 8;
        pthread_t t[64];
        for (int i = 0; i < n && i < 64; i++) pthread_create(&t[i], NULL, worker, NULL);
        for (int i = 0; i < n && i < 64; i++) pthread_join(t[i], NULL);
        return 0;
    }
    if (!strcmp(mode, "forkexec"))
    {
        pid_t child = fork();
        if (child == 0) { execl("/bin/true", "true", (char *)NULL); _exit(127); }
        int status;
        waitpid(child, &status, 0);
        return WEXITSTATUS(status);
    }
    if (!strcmp(mode, "signal"))
    {
        signal(SIGUSR1, on_usr);
        kill(getpid(), SIGUSR1);
        return usr == 1 ? 0 : 1;
    }
    if (!strcmp(mode, "spin"))
    {
        long n = argc > 2 ? atol(argv[2]) : 500000;
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        return 0;
    }
    if (!strcmp(mode, "block"))
    {
        printf("pid=%d\nready\n", getpid());
        fflush(stdout);
        char line[64];
        while (read(0, line, sizeof line) > 0) { printf("got\n"); fflush(stdout); }
        return 0;
    }
    if (!strcmp(mode, "zombie"))
    {
        pid_t child = fork();
        if (child == 0) _exit(0);
        printf("pid=%d\nready\n", child);
        fflush(stdout);
        char line[64];
        while (read(0, line, sizeof line) > 0 && strncmp(line, "quit", 4) != 0) { }
        waitpid(child, NULL, 0);
        return 0;
    }
    if (!strcmp(mode, "threadexec"))
    {
        pthread_t t;
        pthread_create(&t, NULL, execer, NULL);
        for (;;) pause();
    }
    if (!strcmp(mode, "untouched"))
    {
        int fd = open("/etc/passwd", O_RDONLY);
        char *map = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) return 1;
        return syscall(SYS_write, -1, map, 16) == -1 ? 0 : 1;
    }
    if (!strcmp(mode, "threadwait"))
    {
        int n = argc > 2 ? atoi(argv[2]) : 4;
        pthread_t t;
        for (int i = 0; i < n; i++) pthread_create(&t, NULL, waiter, NULL);
        printf("pid=%d\nready\n", getpid());
        fflush(stdout);
        char line[64];
        while (read(0, line, sizeof line) > 0 && strncmp(line, "quit", 4) != 0) { }
        return 0;
    }
    if (!strcmp(mode, "kill"))
    {
        syscall(SYS_getppid);
        raise(SIGKILL);
        return 0;
    }
    if (!strcmp(mode, "wait"))
    {
        signal(SIGUSR2, on_usr);
        printf("pid=%d\nready\n", getpid());
        fflush(stdout);
        fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
        char line[64];
        for (;;)
        {
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            syscall(SYS_getppid);
            ssize_t n = read(0, line, sizeof line - 1);
            if (n == 0) return 0;
            if (n > 0)
            {
                line[n] = 0;
                if (!strncmp(line, "quit", 4)) return 0;
                if (!strncmp(line, "count", 5)) { printf("count=%d\n", (int)usr); fflush(stdout); }
            }
        }
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
