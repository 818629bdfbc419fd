// Exec fixture for Watch-Exec's tests: exec calls that Process.Start cannot make.
//   exec_helper execveat DIR NAME ARGS...   execveat(open(DIR), NAME, [NAME, ARGS...], envp, 0)
//   exec_helper badutf8 PROGRAM             execv(PROGRAM, [PROGRAM, "\xff\xfe-ok", "caf\xc3\xa9"])
//   exec_helper storm N PROGRAM MARKER      posix_spawn PROGRAM MARKER I, N times, one after the other
//   exec_helper threadexec PROGRAM ARG      a second thread calls execv(PROGRAM, [PROGRAM, ARG]); prints tid=
//   exec_helper blockedexec PROGRAM ARG     execv(PROGRAM, [PROGRAM, ARG, S]) that never returns: S lies on a page
//                                           registered with userfaultfd that nobody fills, so the kernel waits
//                                           in copy_strings until the process is killed (the exec's exit comes never)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char **thread_args;

static void *exec_from_thread(void *unused)
{
    (void)unused;
    printf("tid=%ld\n", (long)syscall(SYS_gettid));
    fflush(stdout);
    execv(thread_args[0], thread_args);
    perror("execv");
    _exit(3);
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "execveat") == 0) {
        int dirfd = open(argv[2], O_RDONLY | O_DIRECTORY);
        if (dirfd < 0) { perror("open"); return 2; }
        char **args = &argv[3];   // NAME ARGS... NULL
        syscall(SYS_execveat, dirfd, argv[3], args, environ, 0);
        perror("execveat");
        return 3;
    }
    if (argc == 3 && strcmp(argv[1], "badutf8") == 0) {
        char *args[] = { argv[2], "\xff\xfe-ok", "caf\xc3\xa9", NULL };
        execv(argv[2], args);
        perror("execv");
        return 3;
    }
    if (argc == 5 && strcmp(argv[1], "storm") == 0) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            char num[16];
            snprintf(num, sizeof num, "%d", i);
            char *args[] = { argv[3], argv[4], num, NULL };
            pid_t pid;
            if (posix_spawn(&pid, argv[3], NULL, NULL, args, environ) != 0) { perror("posix_spawn"); return 4; }
            int status;
            waitpid(pid, &status, 0);
        }
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "threadexec") == 0) {
        char *args[] = { argv[2], argv[3], NULL };
        thread_args = args;
        pthread_t t;
        pthread_create(&t, NULL, exec_from_thread, NULL);
        pthread_join(t, NULL);   // never returns: the exec replaces the whole process
        return 4;
    }
    if (argc == 4 && strcmp(argv[1], "blockedexec") == 0) {
        int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
        if (uffd < 0) { perror("userfaultfd"); return 5; }
        struct uffdio_api api = { .api = UFFD_API };
        if (ioctl(uffd, UFFDIO_API, &api) < 0) { perror("UFFDIO_API"); return 5; }
        long page = sysconf(_SC_PAGESIZE);
        char *missing = mmap(NULL, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        struct uffdio_register reg = { .range = { (unsigned long)missing, (unsigned long)page }, .mode = UFFDIO_REGISTER_MODE_MISSING };
        if (missing == MAP_FAILED || ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) { perror("UFFDIO_REGISTER"); return 5; }
        char *args[] = { argv[2], argv[3], missing, NULL };
        execv(argv[2], args);
        perror("execv");
        return 6;
    }
    fprintf(stderr, "usage: exec_helper execveat|badutf8|storm|threadexec|blockedexec ...\n");
    return 1;
}
