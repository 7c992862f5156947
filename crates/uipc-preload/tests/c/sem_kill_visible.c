/* The undo of a process that exited or was SIGKILLed is there for
 * whoever learns of its end: exit_sem() runs before the process becomes a
 * zombie, so the parent's reads and semops right after waitpid() see it. */
#include "semcommon.h"

/* ROUNDS times a child takes the semaphore with SEM_UNDO and exits (or is
 * killed); right after waitpid() the parent reads the value and takes it
 * with IPC_NOWAIT; even rounds read first, odd ones take first. */
#define ROUNDS 200
static void visible_after_wait(int killed) {
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(id, 0, SETVAL, one) == 0, "setval");
    for (int k = 0; k < ROUNDS; k++) {
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            sop(id, 0, -1, SEM_UNDO);
            if (killed) {
                sop(id, 1, 1, 0);
                for (;;)
                    pause();
            }
            _exit(0);
        }
        int st;
        if (killed) {
            sop(id, 1, -1, 0);
            CHECK(kill(p, SIGKILL) == 0, "kill");
        }
        CHECK(waitpid(p, &st, 0) == p, "waitpid");
        int v = k % 2 == 0 ? semctl(id, 0, GETVAL) : 1;
        CHECK(v == 1, "round %d: GETVAL %d right after the %s child was reaped", k, v, killed ? "killed" : "exited");
        struct sembuf take = { 0, -1, IPC_NOWAIT }, give = { 0, 1, 0 };
        int e = try_semop(id, &take, 1);
        CHECK(e == 0, "round %d: IPC_NOWAIT take right after the reap: %s", k, ename(e));
        CHECK(semop(id, &give, 1) == 0, "give");
    }
    printf("%d times a child %s holding with SEM_UNDO: right after waitpid GETVAL 1 and an IPC_NOWAIT take succeeds\n",
           ROUNDS, killed ? "SIGKILLed" : "exited");
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    visible_after_wait(0);
    visible_after_wait(1);
    printf("ok\n");
    return 0;
}
