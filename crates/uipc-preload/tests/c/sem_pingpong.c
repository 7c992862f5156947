/* A parent and a forked child take turns through two semaphores: each
 * sleeps in semop until the other posts. The child also waits for zero
 * and checks GETNCNT/GETZCNT of the parent's sleep. */
#include "semcommon.h"

#define ROUNDS 200

int main(int argc, char **argv) {
    setup(argc, argv);
    int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        long sum = 0;
        for (int i = 0; i < ROUNDS; i++) {
            sop(id, 1, -1, 0);          /* wait for ping */
            sum += i;
            sop(id, 0, 1, 0);           /* pong */
        }
        /* The parent sleeps decrementing sem 2: wait until it does. */
        await_ncnt(id, 2, 1);
        printf("child: parent asleep, GETNCNT 2 = %d, GETZCNT 2 = %d\n", semctl(id, 2, GETNCNT), semctl(id, 2, GETZCNT));
        sop(id, 2, 1, 0);
        printf("child: %d rounds, sum %ld\n", ROUNDS, sum);
        fflush(stdout);
        _exit(0);
    }
    for (int i = 0; i < ROUNDS; i++) {
        sop(id, 1, 1, 0);               /* ping */
        sop(id, 0, -1, 0);              /* wait for pong */
    }
    sop(id, 2, -1, 0);                  /* sleep until the child posts */
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    printf("parent: %d rounds; values %d %d %d; GETPID 2 is the child: %d\n", ROUNDS, semctl(id, 0, GETVAL),
           semctl(id, 1, GETVAL), semctl(id, 2, GETVAL), semctl(id, 2, GETPID) == p);
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
