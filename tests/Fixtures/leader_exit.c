/* Snapshot fixture: the main thread starts a worker and calls pthread_exit, so the process lives on
 * with a zombie leader. The worker answers each line on stdin with "alive". */
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static void *worker(void *arg)
{
    (void)arg;
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        printf("alive\n");
        fflush(stdout);
    }
    _exit(0);
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    printf("pid=%d\nready\n", getpid());
    fflush(stdout);
    pthread_exit(NULL);
}
