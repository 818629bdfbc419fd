/* Snapshot fixture: enters seccomp strict mode, where any system call but read, write, _exit and
 * sigreturn kills the process, then answers each line on stdin with "alive". A snapshot must not
 * inject a system call into it. */
#include <linux/seccomp.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static char marker[] = "seccomp-strict-marker";

int main(void)
{
    printf("pid=%d\nmarker=%p\n", getpid(), (void *)marker);
    fflush(stdout);
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) != 0) {
        perror("prctl(PR_SET_SECCOMP)");
        return 1;
    }
    syscall(SYS_write, 1, "ready\n", 6);
    char line[64];
    while (syscall(SYS_read, 0, line, sizeof line) > 0)
        syscall(SYS_write, 1, "alive\n", 6);
    syscall(SYS_exit, 0);
}
