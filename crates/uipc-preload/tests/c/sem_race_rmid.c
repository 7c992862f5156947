/* Semops racing IPC_RMID. Racers (forked processes) run semops with and
 * without SEM_UNDO, with and without IPC_NOWAIT, until the set is removed
 * under them; every call returns 0, EIDRM or EINVAL, and once one has
 * failed the next call fails with EINVAL (the id is gone).
 *
 * - Two "gated" racers (blocking; one with SEM_UNDO on the counter) add 1
 *   to COUNT through GATE: {GATE -1, GATE +1, COUNT +1}. The remover closes
 *   the gate (GATE -1), so from then on no gated op completes and both
 *   sleep on GATE (or, having done their quota, on PARK); COUNT read then
 *   equals the sum of the gated racers' successes exactly, and both are
 *   asleep when the set goes: they wake with EIDRM.
 * - Three "free" racers (IPC_NOWAIT; IPC_NOWAIT|SEM_UNDO; blocking with
 *   SEM_UNDO) move one unit A->B and back, which never blocks (B holds the
 *   unit a racer moved until it moves it back); they race the removal
 *   itself: their last call is EIDRM or EINVAL, A + B is conserved.
 * - One sleeper waits on PARK from the start (semtimedop, 60 s timeout):
 *   EIDRM.
 * The whole run is repeated ROUNDS times. Only facts that are the same in
 * every run are printed. */
#include "semcommon.h"

enum { GATE, COUNT, A, B, PARK, NSEMS };
enum { GATED, GATED_UNDO, NOWAIT, NOWAIT_UNDO, BLOCK_UNDO, SLEEPER, NRACERS };

#define ROUNDS 8
#define MIN_OPS 64      /* each racer's successes before the remover acts */
#define QUOTA 4000      /* a gated racer's most successes (COUNT <= 8000) */
#define A0 1000         /* A's initial value: A + B stays A0 */

static const char *const names[NRACERS] = {
    "gated", "gated SEM_UNDO", "IPC_NOWAIT", "IPC_NOWAIT|SEM_UNDO", "blocking SEM_UNDO", "sleeper",
};

struct racer {
    long ops;           /* successful calls */
    int first;          /* errno of the first failed call */
    int second;         /* errno of the call after it (0: it succeeded) */
};

/* One call of racer `kind`; `i` counts its calls (free racers alternate
 * A->B and B->A). 0 or the errno. */
static int one_op(int id, int kind, long i) {
    struct sembuf gated[3] = { { GATE, -1, 0 }, { GATE, 1, 0 }, { COUNT, 1, kind == GATED_UNDO ? SEM_UNDO : 0 } };
    short flg = kind == NOWAIT ? IPC_NOWAIT : kind == NOWAIT_UNDO ? IPC_NOWAIT | SEM_UNDO : SEM_UNDO;
    short dir = i % 2 == 0 ? 1 : -1;
    struct sembuf move[2] = { { A, (short)-dir, flg }, { B, dir, flg } };
    switch (kind) {
    case GATED:
    case GATED_UNDO:
        return try_semop(id, gated, 3);
    case SLEEPER: {
        struct sembuf park = { PARK, -1, 0 };
        struct timespec t = { 60, 0 };
        errno = 0;
        return semtimedop(id, &park, 1, &t) == 0 ? 0 : errno;
    }
    default:
        return try_semop(id, move, 2);
    }
}

static void race(int id, int kind, struct racer *r) {
    watchdog(30);
    long i = 0;
    int e;
    for (;;) {
        if ((kind == GATED || kind == GATED_UNDO) && r->ops == QUOTA) {
            struct sembuf park = { PARK, -1, 0 };   /* sleeps until the removal */
            e = try_semop(id, &park, 1);
            CHECK(e != 0, "%s: PARK taken", names[kind]);
            break;
        }
        e = one_op(id, kind, i++);
        if (e != 0)
            break;
        __atomic_store_n(&r->ops, r->ops + 1, __ATOMIC_SEQ_CST);
    }
    r->first = e;
    r->second = one_op(id, kind, i);
    CHECK(e == EIDRM || e == EINVAL, "%s: first failure %s after %ld successes", names[kind], ename(e), r->ops);
    CHECK(r->second == EINVAL, "%s: call after %s gave %s", names[kind], ename(e), ename(r->second));
    _exit(0);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    struct racer *rs = shared_alloc(sizeof(struct racer) * NRACERS);
    int eidrm_free = 0, einval_free = 0;
    for (int round = 0; round < ROUNDS; round++) {
        memset(rs, 0, sizeof(struct racer) * NRACERS);
        int id = semget(IPC_PRIVATE, NSEMS, IPC_CREAT | 0600);
        CHECK(id >= 0, "semget");
        unsigned short init[NSEMS] = { [GATE] = 1, [A] = A0 };
        union semun arg = { .array = init };
        CHECK(semctl(id, 0, SETALL, arg) == 0, "setall");
        pid_t pids[NRACERS];
        for (int k = 0; k < NRACERS; k++) {
            pids[k] = fork();
            CHECK(pids[k] >= 0, "fork");
            if (pids[k] == 0)
                race(id, k, &rs[k]);
        }
        /* The remover: let every racer get going (the sleeper asleep). */
        for (int k = 0; k < NRACERS; k++)
            if (k != SLEEPER)
                await_at_least(&rs[k].ops, MIN_OPS);
        while (semctl(id, PARK, GETNCNT) < 1)   /* the sleeper, perhaps a gated racer too */
            sched_yield();
        /* Close the gate, then count what passed it. */
        struct sembuf close_gate = { GATE, -1, IPC_NOWAIT };
        CHECK(semop(id, &close_gate, 1) == 0, "close the gate");
        int count = semctl(id, COUNT, GETVAL);
        unsigned short vals[NSEMS];
        arg.array = vals;
        CHECK(semctl(id, 0, GETALL, arg) == 0, "getall");
        CHECK(vals[A] + vals[B] == A0, "A %d + B %d != %d", vals[A], vals[B], A0);
        /* Both gated racers and the sleeper asleep (neither can leave GATE
         * or PARK once there: the sum only grows). */
        while (semctl(id, GATE, GETNCNT) + semctl(id, PARK, GETNCNT) != 3)
            sched_yield();
        CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
        errno = 0;
        CHECK(semctl(id, 0, IPC_RMID) == -1 && errno == EINVAL, "second rmid");
        for (int k = 0; k < NRACERS; k++)
            reap_ok(pids[k], names[k]);
        CHECK(count == rs[GATED].ops + rs[GATED_UNDO].ops, "COUNT %d at the closed gate, gated racers counted %ld + %ld",
              count, rs[GATED].ops, rs[GATED_UNDO].ops);
        for (int k = GATED; k <= GATED_UNDO; k++)
            CHECK(rs[k].first == EIDRM, "%s asleep at the removal woke with %s", names[k], ename(rs[k].first));
        CHECK(rs[SLEEPER].first == EIDRM, "sleeper woke with %s", ename(rs[SLEEPER].first));
        for (int k = NOWAIT; k <= BLOCK_UNDO; k++) {
            eidrm_free += rs[k].first == EIDRM;
            einval_free += rs[k].first == EINVAL;
        }
    }
    /* How the race went differs from run to run: standard error only. */
    fprintf(stderr, "free racers' first failure: EIDRM %d, EINVAL %d\n", eidrm_free, einval_free);
    printf("%d rounds of %d racers against IPC_RMID\n", ROUNDS, NRACERS);
    printf("every call returned 0, EIDRM or EINVAL; the call after a failure EINVAL\n");
    printf("gated racers' successes equal COUNT at the closed gate; A + B conserved\n");
    printf("asleep at the removal (gated, gated SEM_UNDO, sleeper): EIDRM\n");
    printf("free racers ended with EIDRM or EINVAL: %d\n", eidrm_free + einval_free);
    printf("ok\n");
    return 0;
}
