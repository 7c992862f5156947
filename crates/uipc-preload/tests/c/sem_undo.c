/* SEM_UNDO: a child's adjustments are undone when it exits, and when it is
 * killed while holding the semaphore; a forked child does not inherit its
 * parent's undo records; SETVAL clears adjustments. */
#include "semcommon.h"

int main(int argc, char **argv) {
    setup(argc, argv);
    int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(id, 0, SETVAL, one) == 0, "setval");

    /* 1. A child takes sem 0 with SEM_UNDO, adds 3 to sem 1 with SEM_UNDO and exits. */
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        sop(id, 0, -1, SEM_UNDO);
        sop(id, 1, 3, SEM_UNDO);
        sop(id, 1, -1, 0);              /* no undo: stays */
        _exit(0);
    }
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st), "child 1");
    printf("after exit: sem0 %d sem1 %d\n", semctl(id, 0, GETVAL), semctl(id, 1, GETVAL));

    /* 2. A child holds sem 0 (SEM_UNDO) and is killed with SIGKILL. */
    p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        sop(id, 0, -1, SEM_UNDO);
        sop(id, 2, 1, 0);               /* "I hold it" */
        for (;;) pause();
    }
    sop(id, 2, -1, 0);                  /* until the child holds sem 0 */
    printf("held by the child: sem0 %d\n", semctl(id, 0, GETVAL));
    CHECK(kill(p, SIGKILL) == 0, "kill");
    CHECK(waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child 2");
    printf("after SIGKILL: sem0 %d\n", semctl(id, 0, GETVAL));
    sop(id, 0, -1, 0);                  /* would sleep forever if the undo were lost */
    printf("took it after the kill\n");

    /* 3. Undo records are not inherited: the parent holds an adjustment, the child exits. */
    sop(id, 1, 2, SEM_UNDO);
    p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0)
        _exit(0);
    CHECK(waitpid(p, &st, 0) == p, "child 3");
    printf("parent's undo after the child's exit: sem1 %d\n", semctl(id, 1, GETVAL));

    /* 4. An undo that would go below zero is clamped at exit. */
    p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        sop(id, 2, 5, SEM_UNDO);        /* adjustment -5 */
        union semun z = { .val = 1 };
        CHECK(semctl(id, 2, SETVAL, z) == 0, "setval"); /* clears every adjustment of sem 2 */
        sop(id, 2, 4, SEM_UNDO);        /* adjustment -4, value 5 */
        sop(id, 2, -3, 0);              /* value 2 */
        _exit(0);
    }
    CHECK(waitpid(p, &st, 0) == p, "child 4");
    printf("clamped at exit: sem2 %d\n", semctl(id, 2, GETVAL));
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
