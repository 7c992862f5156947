/* The undo of a process that exited or was SIGKILLed is there for
 * whoever learns of its end: exit_sem() runs before the process becomes a
 * zombie, so the parent's reads and semops right after waitpid() see it. */
#include "semcommon.h"

/* ROUNDS times a child takes the semaphore with SEM_UNDO and exits (or is
 * killed); right after waitpid() the parent reads the value and takes it
 * with IPC_NOWAIT; even rounds read first, odd ones take first. */
#define ROUNDS 200
/* With `holders` other processes alive and holding an undo record on the
 * set (semaphore 2) all along: 40 outnumber any fixed table of records a
 * user-space implementation may keep beside the values. */
static void visible_after_wait(int killed, int holders) {
    int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(id, 0, SETVAL, one) == 0, "setval");
    int gate[2];
    CHECK(pipe(gate) == 0, "pipe");
    for (int h = 0; h < holders; h++) {
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            close(gate[1]);
            sop(id, 2, 1, SEM_UNDO);
            char c;
            (void)!read(gate[0], &c, 1);
            _exit(0);
        }
    }
    close(gate[0]);
    struct sembuf all_holding = { 2, -holders, 0 }, back = { 2, holders, 0 };
    if (holders > 0) {
        CHECK(semop(id, &all_holding, 1) == 0, "all holding");
        CHECK(semop(id, &back, 1) == 0, "back");
    }
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
    printf("%d times a child %s holding with SEM_UNDO (%d other holders): right after waitpid GETVAL 1 and an "
           "IPC_NOWAIT take succeeds\n",
           ROUNDS, killed ? "SIGKILLed" : "exited", holders);
    close(gate[1]);
    for (int h = 0; h < holders; h++)
        CHECK(wait(NULL) > 0, "wait for a holder");
    CHECK(semctl(id, 2, GETVAL) == 0, "the holders' undo");
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    visible_after_wait(0, 0);
    visible_after_wait(1, 0);
    visible_after_wait(0, 40);
    visible_after_wait(1, 40);
    printf("ok\n");
    return 0;
}
