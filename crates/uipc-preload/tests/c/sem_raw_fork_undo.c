/* A child made by the raw fork system call (no glibc fork: no atfork
 * handlers run in it) does a SEM_UNDO semop and exits: its own undo, not
 * its parent's, is applied at its exit. The parent was served first (under
 * uipc: granted the page and an undo slot), so a child that took its
 * parent's grant for its own would change the parent's record. The parent
 * waits for the undo with a blocking semop (it sleeps until the exit is
 * handled), then checks that its own record is intact: a child blocks
 * until the parent's own exit undo releases it. */
#include "semcommon.h"

static pid_t raw_fork(void) {
    return (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(20);
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(id, 0, SETVAL, one) == 0 && semctl(id, 1, SETVAL, one) == 0, "setval");
    /* The parent is served: a SEM_UNDO pair on sem 1, and it holds sem 1. */
    sop(id, 1, -1, SEM_UNDO);
    sop(id, 1, 1, SEM_UNDO);
    sop(id, 1, -1, SEM_UNDO);
    for (int k = 0; k < 20; k++) {
        pid_t p = raw_fork();
        CHECK(p >= 0, "raw fork");
        if (p == 0) {
            struct sembuf take = { 0, -1, SEM_UNDO };
            if (semop(id, &take, 1) != 0)
                _exit(2);
            _exit(0);
        }
        int st;
        CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "raw child %d: status %#x", k, st);
        sop(id, 0, -1, 0);      /* sleeps until the child's undo gave sem 0 back */
        sop(id, 0, 1, 0);
    }
    printf("20 raw-forked children took sem 0 with SEM_UNDO and exited: each undo given back\n");
    /* The parent's own record (sem 1 held, adjustment +1) is intact: a
     * forked child waits for sem 1, which only the parent's exit undo
     * gives back. */
    printf("sem 1 while the parent holds it: %d\n", semctl(id, 1, GETVAL));
    pid_t waiter = fork();
    CHECK(waiter >= 0, "fork");
    if (waiter == 0) {
        /* Waits until the parent's exit undo gives sem 1 back. */
        watchdog(30);
        struct sembuf take = { 1, -1, 0 };
        CHECK(semop(id, &take, 1) == 0, "take sem 1");
        printf("the parent's undo gave sem 1 back to a waiter\n");
        CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
        printf("ok\n");
        _exit(0);
    }
    await_ncnt(id, 1, 1);
    fflush(stdout);
    _exit(0);   /* the parent exits holding sem 1 (adjustment +1) */
}
