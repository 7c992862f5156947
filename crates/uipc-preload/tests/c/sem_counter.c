/* A counter in a System V segment guarded by a semaphore used as a mutex
 * (SEM_UNDO), incremented by 4 processes of 2 threads each: 50000
 * increments in all, 100000 lock/unlock semops, and the count is exact.
 * Every eighth increment also adds 1 to a second semaphore inside the
 * lock. */
#include "semcommon.h"

#define PROCS 4
#define THREADS 2
#define TOTAL 50000
#define PER_THREAD (TOTAL / (PROCS * THREADS))

static int sem_id;
static volatile long *counter;

static void *work(void *arg) {
    (void)arg;
    struct sembuf lock = { 0, -1, SEM_UNDO }, unlock = { 0, 1, SEM_UNDO }, tally = { 1, 1, 0 };
    for (int i = 0; i < PER_THREAD; i++) {
        CHECK(semop(sem_id, &lock, 1) == 0, "lock");
        long c = *counter;
        *counter = c + 1;
        if (c % 8 == 0)
            CHECK(semop(sem_id, &tally, 1) == 0, "tally");
        CHECK(semop(sem_id, &unlock, 1) == 0, "unlock");
    }
    return NULL;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(120);
    sem_id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    CHECK(sem_id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(sem_id, 0, SETVAL, one) == 0, "setval");
    int shm = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(shm >= 0, "shmget");
    counter = shmat(shm, NULL, 0);
    CHECK(counter != (void *)-1, "shmat");
    pid_t pids[PROCS];
    fork_workers(PROCS, THREADS, work, pids);
    for (int p = 0; p < PROCS; p++)
        reap_ok(pids[p], "worker");
    printf("%d processes x %d threads: counter %ld, lock %d, tally %d, GETNCNT %d GETZCNT %d\n", PROCS, THREADS,
           *counter, semctl(sem_id, 0, GETVAL), semctl(sem_id, 1, GETVAL), semctl(sem_id, 0, GETNCNT),
           semctl(sem_id, 0, GETZCNT));
    CHECK(*counter == TOTAL, "lost increments");
    CHECK(shmdt((void *)counter) == 0, "shmdt");
    CHECK(shmctl(shm, IPC_RMID, NULL) == 0, "shm rmid");
    CHECK(semctl(sem_id, 0, IPC_RMID) == 0, "sem rmid");
    printf("ok\n");
    return 0;
}
