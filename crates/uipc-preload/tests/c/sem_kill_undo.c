/* A process SIGKILLed right after SEM_UNDO semops: its adjustments are
 * applied exactly as the kernel's exit_sem() applies them — summed per
 * semaphore (several operations, several in one call), clamped at 0 and
 * at SEMVMX against what others did meanwhile, none for a semaphore whose
 * adjustment SETVAL cleared or for a set removed since; GETPID becomes the
 * dead process for each semaphore it adjusts; a sleeper that the undo
 * satisfies is woken. Then the same ops ended by the child's own
 * raise(SIGKILL) right after its last semop. */
#include "semcommon.h"

enum { HELD, CLAMP0, MULTI, CLAMPMAX, CLEARED, NSEMS };

struct shared { int waiter; };

static void ops(int id, int other) {
    sop(id, HELD, -1, SEM_UNDO);                          /* 3 -> 2, adj +1 */
    sop(id, CLAMP0, 3, SEM_UNDO);                         /* 0 -> 3, adj -3 */
    sop(id, CLAMP0, -1, SEM_UNDO);                        /* 3 -> 2, adj -2 */
    struct sembuf multi[3] = { { MULTI, -4, SEM_UNDO }, { MULTI, 1, SEM_UNDO }, { MULTI, 5, 0 } };
    CHECK(semop(id, multi, 3) == 0, "multi");            /* 10 -> 12, adj +3 */
    sop(id, CLAMPMAX, -5, SEM_UNDO);                      /* 10 -> 5, adj +5 */
    sop(id, CLEARED, 2, SEM_UNDO);                        /* 0 -> 2, adj -2 (cleared by SETVAL) */
    sop(other, 0, 1, SEM_UNDO);                           /* on a set removed before the exit */
}

static const char *who(pid_t p, pid_t child, pid_t waiter) {
    return p == child ? "the killed child" : p == waiter ? "the waiter" : p == getpid() ? "the parent" : "another";
}

static void run(int self_kill) {
    struct shared *sh = shared_alloc(sizeof *sh);
    int id = semget(IPC_PRIVATE, NSEMS, IPC_CREAT | 0600);
    int other = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    int ctl = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(id >= 0 && other >= 0 && ctl >= 0, "semget");
    unsigned short init[NSEMS] = { 3, 0, 10, 10, 0 };
    union semun arg = { .array = init };
    CHECK(semctl(id, 0, SETALL, arg) == 0, "setall");
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        watchdog(30);
        ops(id, other);
        if (self_kill)
            raise(SIGKILL);
        sop(ctl, 0, 1, 0);                                /* ready */
        for (;;)
            pause();
    }
    int st;
    if (self_kill) {
        CHECK(waitpid(child, &st, 0) == child && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child");
        printf("self-killed right after its semops:");
    } else {
        sop(ctl, 0, -1, 0);
        /* Meanwhile: others lower CLAMP0 below its adjustment, raise
         * CLAMPMAX near SEMVMX, SETVAL clears CLEARED's adjustment, and the
         * second set goes. */
        sop(id, CLAMP0, -1, 0);                           /* 2 -> 1: the undo (-2) clamps at 0 */
        sop(id, CLAMPMAX, 32760, 0);                      /* 5 -> 32765: the undo (+5) clamps at 32767 */
        union semun v = { .val = 7 };
        CHECK(semctl(id, CLEARED, SETVAL, v) == 0, "setval");
        CHECK(semctl(other, 0, IPC_RMID) == 0, "rmid other");
        printf("before the kill: HELD %d CLAMP0 %d MULTI %d CLAMPMAX %d CLEARED %d\n", semctl(id, HELD, GETVAL),
               semctl(id, CLAMP0, GETVAL), semctl(id, MULTI, GETVAL), semctl(id, CLAMPMAX, GETVAL),
               semctl(id, CLEARED, GETVAL));
        CHECK(kill(child, SIGKILL) == 0, "kill");
        CHECK(waitpid(child, &st, 0) == child && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child");
        printf("after SIGKILL:");
    }
    for (int s = 0; s < NSEMS; s++)
        printf(" %d (GETPID %s)", semctl(id, s, GETVAL), who(semctl(id, s, GETPID), child, -1));
    printf("; GETNCNT/GETZCNT of HELD %d/%d\n", semctl(id, HELD, GETNCNT), semctl(id, HELD, GETZCNT));
    /* A waiter for 3 of HELD: the restored value satisfies it at once. */
    pid_t waiter = fork();
    CHECK(waiter >= 0, "fork");
    if (waiter == 0) {
        watchdog(30);
        struct sembuf b = { HELD, -3, 0 };
        sh->waiter = try_semop(id, &b, 1);
        _exit(0);
    }
    reap_ok(waiter, "waiter");
    printf("  a waiter for 3 of HELD: %s; HELD %d (GETPID %s)\n", ename(sh->waiter), semctl(id, HELD, GETVAL),
           who(semctl(id, HELD, GETPID), child, waiter));
    if (self_kill)
        CHECK(semctl(other, 0, IPC_RMID) == 0, "rmid other");
    CHECK(semctl(id, 0, IPC_RMID) == 0 && semctl(ctl, 0, IPC_RMID) == 0, "rmid");
    CHECK(munmap(sh, sizeof *sh) == 0, "munmap");
}

/* The waiter sleeps first; the undo of the killed holder wakes it. */
static void wake_by_undo(void) {
    struct shared *sh = shared_alloc(sizeof *sh);
    int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(id, 0, SETVAL, one) == 0, "setval");
    pid_t holder = fork();
    CHECK(holder >= 0, "fork");
    if (holder == 0) {
        watchdog(30);
        sop(id, 0, -1, SEM_UNDO);
        sop(id, 1, 1, 0);                                 /* holding */
        for (;;)
            pause();
    }
    sop(id, 1, -1, 0);
    pid_t waiter = fork();
    CHECK(waiter >= 0, "fork");
    if (waiter == 0) {
        watchdog(30);
        struct sembuf b = { 0, -1, 0 };
        sh->waiter = try_semop(id, &b, 1);
        _exit(0);
    }
    await_ncnt(id, 0, 1);
    CHECK(kill(holder, SIGKILL) == 0, "kill");
    int st;
    CHECK(waitpid(holder, &st, 0) == holder && WIFSIGNALED(st), "holder");
    reap_ok(waiter, "waiter");
    printf("a sleeper on a semaphore whose holder was killed: %s; value %d, GETNCNT %d, GETPID %s\n", ename(sh->waiter),
           semctl(id, 0, GETVAL), semctl(id, 0, GETNCNT), who(semctl(id, 0, GETPID), holder, waiter));
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    CHECK(munmap(sh, sizeof *sh) == 0, "munmap");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    run(0);
    run(1);
    wake_by_undo();
    printf("ok\n");
    return 0;
}
