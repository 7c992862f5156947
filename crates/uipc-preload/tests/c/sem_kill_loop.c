/* A process SIGKILLed at a random point of a loop of SEM_UNDO semops,
 * KILLS times: after each death the set is back at its initial values
 * (every change the loop makes carries SEM_UNDO and exit_sem() reverts
 * it), no sleeper is left counted, and the next process proceeds. The
 * kill lands after a pseudo-random number of the child's steps (and, one
 * time in eight, at once, while the child may still be starting); where
 * inside a step it lands is up to the scheduler. */
#include "semcommon.h"

#define KILLS 1000
#define NSEMS 3
static const unsigned short init[NSEMS] = { 1, 5, 5 };

static void loop(int id, long *steps) {
    struct sembuf take = { 0, -1, SEM_UNDO }, give = { 0, 1, SEM_UNDO };
    struct sembuf there[2] = { { 1, 2, SEM_UNDO }, { 2, -1, SEM_UNDO } };
    struct sembuf back[2] = { { 1, -2, SEM_UNDO }, { 2, 1, SEM_UNDO } };
    for (;;) {
        CHECK(semop(id, &take, 1) == 0, "take");
        __atomic_fetch_add(steps, 1, __ATOMIC_SEQ_CST);
        CHECK(semop(id, there, 2) == 0, "there");
        __atomic_fetch_add(steps, 1, __ATOMIC_SEQ_CST);
        CHECK(semop(id, back, 2) == 0, "back");
        __atomic_fetch_add(steps, 1, __ATOMIC_SEQ_CST);
        CHECK(semop(id, &give, 1) == 0, "give");
        __atomic_fetch_add(steps, 1, __ATOMIC_SEQ_CST);
    }
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(120);
    long *steps = shared_alloc(sizeof *steps);
    int id = semget(IPC_PRIVATE, NSEMS, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun arg = { .array = (unsigned short *)init };
    CHECK(semctl(id, 0, SETALL, arg) == 0, "setall");
    unsigned rng = 12345;
    long total = 0;
    for (int k = 0; k < KILLS; k++) {
        rng = rng * 1103515245u + 12345u;
        long at = (rng >> 16) % 8 == 0 ? -1 : (long)((rng >> 8) % 24);
        __atomic_store_n(steps, 0, __ATOMIC_SEQ_CST);
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            watchdog(30);
            loop(id, steps);
        }
        if (at >= 0)
            await_at_least(steps, at);
        CHECK(kill(p, SIGKILL) == 0, "kill");
        int st;
        CHECK(waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "kill %d: status %#x", k, st);
        total += __atomic_load_n(steps, __ATOMIC_SEQ_CST);
        unsigned short now[NSEMS];
        arg.array = now;
        CHECK(semctl(id, 0, GETALL, arg) == 0, "getall");
        CHECK(now[0] == init[0] && now[1] == init[1] && now[2] == init[2], "kill %d after %ld steps: %d %d %d", k,
              *steps, now[0], now[1], now[2]);
        CHECK(semctl(id, 0, GETNCNT) == 0 && semctl(id, 1, GETZCNT) == 0, "kill %d: sleepers counted", k);
    }
    fprintf(stderr, "%ld steps in all\n", total);
    printf("%d kills at random points of a SEM_UNDO loop: values %d %d %d after each, no sleeper counted\n", KILLS,
           init[0], init[1], init[2]);
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
