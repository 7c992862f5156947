/* setns(pidfd, CLONE_NEWIPC): a process joins the IPC namespace of the
 * process a pidfd refers to; in a multi-threaded process only the calling
 * thread moves; without CAP_SYS_ADMIN it is EPERM. Natively in a fresh
 * namespace (as root) and under the shim ("deny"): same output. */
#include "semcommon.h"
#include <pthread.h>
#include <sched.h>

#define K_HOME 0x5e00
#define K_AWAY 0x5e01

static void look(const char *who) {
    errno = 0;
    int h = shmget(K_HOME, 0, 0);
    int eh = errno;
    errno = 0;
    int a = semget(K_AWAY, 0, 0);
    int ea = errno;
    printf("%s: home segment %s, away set %s\n", who, h >= 0 ? "seen" : ename(eh), a >= 0 ? "seen" : ename(ea));
}

static int pidfd;

static void *joiner(void *arg) {
    (void)arg;
    look("thread, before setns");
    T("thread: setns", setns(pidfd, CLONE_NEWIPC));
    look("thread, after setns");
    return NULL;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    CHECK(shmget(K_HOME, 4096, IPC_CREAT | 0600) >= 0, "shmget");
    int ready[2], go[2];
    CHECK(pipe(ready) == 0 && pipe(go) == 0, "pipe");
    pid_t away = fork();
    CHECK(away >= 0, "fork");
    if (away == 0) {
        CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
        CHECK(semget(K_AWAY, 1, IPC_CREAT | 0600) >= 0, "semget");
        char b = 0;
        CHECK(write(ready[1], &b, 1) == 1, "write");
        CHECK(read(go[0], &b, 1) == 1, "read");
        _exit(0);
    }
    char b;
    CHECK(read(ready[0], &b, 1) == 1, "read");
    pidfd = (int)syscall(SYS_pidfd_open, away, 0);
    CHECK(pidfd >= 0, "pidfd_open");

    /* A child joins it. */
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        look("child, before setns");
        T("child: setns", setns(pidfd, CLONE_NEWIPC));
        look("child, after setns");
        fflush(stdout);
        _exit(0);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");

    /* Without CAP_SYS_ADMIN: EPERM. */
    c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        CHECK(setgid(65534) == 0 && setuid(65534) == 0, "setuid");
        T("nobody: setns", setns(pidfd, CLONE_NEWIPC));
        look("nobody, after");
        fflush(stdout);
        _exit(0);
    }
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "nobody child");

    /* A thread of this process joins it alone. */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, joiner, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    look("main, after the thread's setns");

    CHECK(write(go[1], &b, 1) == 1, "write");
    CHECK(waitpid(away, &st, 0) == away && WIFEXITED(st) && WEXITSTATUS(st) == 0, "away");
    printf("ok\n");
    return 0;
}
