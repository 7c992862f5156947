/* A signal whose handler runs while semop sleeps makes it fail with EINTR,
 * with or without SA_RESTART (semop is never restarted, signal(7)); the
 * operation did not happen. A semtimedop with a timeout likewise. */
#include "semcommon.h"

static volatile sig_atomic_t handled;
static void on_usr1(int sig) { (void)sig; handled++; }

static void interrupted(int id, int flags, int timed) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    handled = 0;
    pid_t parent = getpid();
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        await_ncnt(id, 0, 1);
        CHECK(kill(parent, SIGUSR1) == 0, "kill");
        _exit(0);
    }
    struct sembuf down = { 0, -1, 0 };
    struct timespec t = { 3600, 0 };
    errno = 0;
    int r = timed ? semtimedop(id, &down, 1, &t) : semop(id, &down, 1);
    int e = errno;
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    printf("%s%s: -> %d %s, handler ran %d, sem0 %d, GETNCNT %d\n", timed ? "semtimedop" : "semop",
           flags & SA_RESTART ? " SA_RESTART" : "", r, r == -1 ? ename(e) : "0", (int)handled, semctl(id, 0, GETVAL),
           semctl(id, 0, GETNCNT));
}

int main(int argc, char **argv) {
    setup(argc, argv);
    int id = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    interrupted(id, 0, 0);
    interrupted(id, SA_RESTART, 0);
    interrupted(id, 0, 1);
    interrupted(id, SA_RESTART, 1);
    /* After the interruptions, a plain semop still works. */
    sop(id, 0, 1, 0);
    sop(id, 0, -1, 0);
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
