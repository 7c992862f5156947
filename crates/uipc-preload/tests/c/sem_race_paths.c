/* Single operations (which the shim decides with one compare-and-swap,
 * without the set's lock) racing operations that take the lock — arrays
 * of two, SEM_UNDO ones, SETVAL of another semaphore, IPC_SET — and
 * GETALL readers, on one set of 3 semaphores. 3 processes of 2 threads:
 *   - tokens: semaphore 0 starts at TOKENS; a worker takes one with a
 *     single -1 (blocking, or IPC_NOWAIT) and gives it back with +1, or
 *     moves one to semaphore 1 and back in one array of two ({0,-1},{1,+1}
 *     then {1,-1},{0,+1}), or takes it with SEM_UNDO;
 *   - a reader checks with GETALL that semaphores 0 and 1 never hold more
 *     than TOKENS together, nor a semaphore more than TOKENS;
 *   - the parent resets semaphore 2 with SETVAL and changes the mode with
 *     IPC_SET meanwhile (neither touches 0 or 1).
 * When all are done, semaphore 0 holds every token again and 1 none: a
 * swap lost under a lock holder's write (or a write lost under a swap)
 * shows as a token more or less. One process makes its single operations
 * through syscall(SYS_semop), another drops from root to nobody while
 * its threads work (the set's mode always lets others read and alter). */
#include "semcommon.h"
#include <sys/wait.h>

#define PROCS 3
#define THREADS 2
#define TOKENS 4
#define ROUNDS 20000

static int sem_id;

/* semop of n operations, again while EINTR: glibc's setresuid signals
 * every thread of process 2 (SIGSETXID), and a semop asleep then fails
 * with EINTR, having done nothing (semop(2): never restarted). Process 1
 * makes its single operations through syscall(SYS_semop); process 2
 * drops from root to nobody as its threads start (one of them may
 * already be working). */
static int ops(int proc, struct sembuf *op, int n) {
    int r;
    do
        r = proc == 1 && n == 1 ? (int)syscall(SYS_semop, sem_id, op, 1) : semop(sem_id, op, n);
    while (r == -1 && errno == EINTR);
    return r;
}

static int single(int proc, struct sembuf *op) {
    return ops(proc, op, 1);
}

static void *work(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    int proc = (int)(((uintptr_t)arg - 1) / THREADS);
    if (proc == 2 && ((uintptr_t)arg - 1) % THREADS == 0)
        CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0, "drop to nobody");
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        switch ((seed >> 16) % 4) {
        case 0: {
            struct sembuf take = { 0, -1, 0 }, give = { 0, 1, 0 };
            CHECK(single(proc, &take) == 0, "take");
            CHECK(single(proc, &give) == 0, "give");
            break;
        }
        case 1: {
            struct sembuf take = { 0, -1, IPC_NOWAIT }, give = { 0, 1, 0 };
            if (single(proc, &take) == 0)
                CHECK(single(proc, &give) == 0, "give");
            else
                CHECK(errno == EAGAIN, "take nowait");
            break;
        }
        case 2: {
            struct sembuf there[2] = { { 0, -1, 0 }, { 1, 1, 0 } }, back[2] = { { 1, -1, 0 }, { 0, 1, 0 } };
            CHECK(ops(proc, there, 2) == 0, "move there");
            CHECK(ops(proc, back, 2) == 0, "move back");
            break;
        }
        default: {
            struct sembuf take = { 0, -1, SEM_UNDO }, give = { 0, 1, SEM_UNDO };
            CHECK(single(proc, &take) == 0, "take undo");
            CHECK(single(proc, &give) == 0, "give undo");
            break;
        }
        }
    }
    return NULL;
}

static void *read_all(void *arg) {
    volatile int *stop = arg;
    unsigned short v[3];
    union semun u = { .array = v };
    while (!*stop) {
        CHECK(semctl(sem_id, 0, GETALL, u) == 0, "GETALL");
        CHECK(v[0] <= TOKENS && v[1] <= TOKENS && v[0] + v[1] <= TOKENS, "GETALL saw more tokens than exist");
    }
    return NULL;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(120);
    sem_id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0666);
    CHECK(sem_id >= 0, "semget");
    union semun tokens = { .val = TOKENS };
    CHECK(semctl(sem_id, 0, SETVAL, tokens) == 0, "setval");
    pid_t pids[PROCS];
    fork_workers(PROCS, THREADS, work, pids);
    volatile int stop = 0;
    pthread_t reader;
    CHECK(pthread_create(&reader, NULL, read_all, (void *)&stop) == 0, "reader");
    int done = 0;
    for (int i = 0; done < PROCS; i++) {
        union semun v = { .val = i % 100 };
        CHECK(semctl(sem_id, 2, SETVAL, v) == 0, "setval 2");
        struct semid_ds ds;
        union semun b = { .buf = &ds };
        CHECK(semctl(sem_id, 0, IPC_STAT, b) == 0, "stat");
        ds.sem_perm.mode = (i % 2) ? 0666 : 0646; /* others keep read and alter */
        CHECK(semctl(sem_id, 0, IPC_SET, b) == 0, "set");
        int status;
        pid_t w = waitpid(-1, &status, WNOHANG);
        if (w > 0) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker failed");
            done++;
        }
    }
    stop = 1;
    CHECK(pthread_join(reader, NULL) == 0, "join reader");
    printf("%d processes x %d threads x %d rounds: tokens %d, moved %d, GETNCNT %d GETZCNT %d\n", PROCS, THREADS,
           ROUNDS, semctl(sem_id, 0, GETVAL), semctl(sem_id, 1, GETVAL), semctl(sem_id, 0, GETNCNT),
           semctl(sem_id, 0, GETZCNT));
    CHECK(semctl(sem_id, 0, GETVAL) == TOKENS && semctl(sem_id, 1, GETVAL) == 0, "tokens lost or made");
    CHECK(semctl(sem_id, 0, IPC_RMID) == 0, "sem rmid");
    printf("ok\n");
    return 0;
}
