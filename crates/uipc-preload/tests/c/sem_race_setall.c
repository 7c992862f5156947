/* SEM_UNDO racers against SETALL and SETVAL: conservation. Each racer
 * repeats take/give pairs with SEM_UNDO (-w then +w) while root resets the
 * values over and over. SETALL clears every undo adjustment of the set and
 * SETVAL those of its semaphore, so a racer holding at a reset gives back
 * w more than the reset counted, and its exit undo (-w) takes exactly that
 * back: once every racer has exited, each semaphore holds the value of the
 * last reset, whatever the interleaving (no undo is ever clamped: the
 * values stay above the weight the other racers can hold). Sleepers on
 * other semaphores keep their GETNCNT/GETZCNT across the resets, and one
 * is woken by a SETALL. */
#include "semcommon.h"

enum { S0, S1, S2, Z, W, NSEMS };
enum { NRACERS = 5 };
#define V 8             /* the racers' semaphores' value at every reset */
#define ROUNDS 40       /* resets */
#define WAKE_ROUND 20   /* the SETALL that posts W */

#define BURST 32      /* pairs a racer makes per round */

struct shared {
    int stop;
    long round;             /* resets made */
    long ops[NRACERS];      /* completed pairs */
    long eagain;            /* IPC_NOWAIT takes that found the value too low */
    int z_zero, z_minus2, w_minus1;  /* the sleepers' results */
    int held;               /* the holder holds */
};

static struct shared *sh;

/* Racer r's take (dir -1) or give (dir +1). */
static int pair_op(int id, int r, int dir) {
    struct sembuf b[2];
    size_t n = 1;
    switch (r) {
    case 0: b[0] = (struct sembuf){ S0, (short)dir, SEM_UNDO }; break;
    case 1: b[0] = (struct sembuf){ S0, (short)dir, SEM_UNDO }; b[1] = (struct sembuf){ S1, (short)dir, SEM_UNDO }; n = 2; break;
    case 2: b[0] = (struct sembuf){ S1, (short)dir, SEM_UNDO | IPC_NOWAIT }; break;
    case 3: b[0] = (struct sembuf){ S2, (short)(2 * dir), SEM_UNDO }; break;
    default: b[0] = (struct sembuf){ S2, (short)dir, SEM_UNDO }; b[1] = (struct sembuf){ S0, (short)dir, SEM_UNDO }; n = 2; break;
    }
    return try_semop(id, b, n);
}

static void racer(int id, int r) {
    watchdog(30);
    while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
        /* A burst of BURST pairs per round, so the racers leave the
         * resetting process its share of two busy cores. */
        if (sh->ops[r] >= (__atomic_load_n(&sh->round, __ATOMIC_SEQ_CST) + 1) * BURST) {
            sched_yield();
            continue;
        }
        int e = pair_op(id, r, -1);
        if (e == EAGAIN && r == 2) {
            __atomic_fetch_add(&sh->eagain, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        CHECK(e == 0, "racer %d take: %s", r, ename(e));
        e = pair_op(id, r, 1);
        CHECK(e == 0, "racer %d give: %s", r, ename(e));
        __atomic_fetch_add(&sh->ops[r], 1, __ATOMIC_SEQ_CST);
    }
    _exit(0);
}

/* A child that sleeps in semop(sem, op) and stores the result. */
static pid_t sleeper(int id, unsigned short sem, short op, int *result) {
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        watchdog(30);
        struct sembuf b = { sem, op, 0 };
        *result = try_semop(id, &b, 1);
        _exit(0);
    }
    return p;
}

/* A child that surely holds across resets: takes 1 of S0, S1 and S2 with
 * SEM_UNDO before the first one, gives them back after round 3 (SETALL,
 * SETALL, SETVAL S1) and exits; its undo is what the resets left. */
static pid_t holder(int id) {
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        watchdog(30);
        struct sembuf take[3] = { { S0, -1, SEM_UNDO }, { S1, -1, SEM_UNDO }, { S2, -1, SEM_UNDO } };
        struct sembuf give[3] = { { S0, 1, SEM_UNDO }, { S1, 1, SEM_UNDO }, { S2, 1, SEM_UNDO } };
        CHECK(semop(id, take, 3) == 0, "holder take");
        __atomic_store_n(&sh->held, 1, __ATOMIC_SEQ_CST);
        await_at_least(&sh->round, 3);
        CHECK(semop(id, give, 3) == 0, "holder give");
        _exit(0);
    }
    return p;
}

static void print_counts(int id, const char *when) {
    printf("%s:", when);
    for (int s = 0; s < NSEMS; s++)
        printf(" [%d] val %d ncnt %d zcnt %d", s, semctl(id, s, GETVAL), semctl(id, s, GETNCNT), semctl(id, s, GETZCNT));
    printf("\n");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    sh = shared_alloc(sizeof *sh);
    int id = semget(IPC_PRIVATE, NSEMS, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    unsigned short vals[NSEMS] = { V, V, V, 1, 0 };
    union semun arg = { .array = vals };
    CHECK(semctl(id, 0, SETALL, arg) == 0, "setall");
    pid_t zs[3] = {
        sleeper(id, Z, 0, &sh->z_zero), sleeper(id, Z, -2, &sh->z_minus2), sleeper(id, W, -1, &sh->w_minus1),
    };
    await_ncnt(id, Z, 1);
    await_ncnt(id, W, 1);
    while (semctl(id, Z, GETZCNT) != 1)
        sched_yield();
    print_counts(id, "sleepers asleep");
    pid_t h = holder(id);
    while (!__atomic_load_n(&sh->held, __ATOMIC_SEQ_CST))
        sched_yield();
    pid_t rs[NRACERS];
    for (int r = 0; r < NRACERS; r++) {
        rs[r] = fork();
        CHECK(rs[r] >= 0, "fork");
        if (rs[r] == 0)
            racer(id, r);
    }
    for (int round = 1; round <= ROUNDS; round++) {
        /* Every racer halfway through its burst: the reset lands among
         * its pairs. */
        for (int r = 0; r < NRACERS; r++)
            await_at_least(&sh->ops[r], (round - 1) * BURST + BURST / 2);
        if (round % 3 == 0 && round != ROUNDS) {
            union semun v = { .val = V };
            CHECK(semctl(id, (round / 3) % 3, SETVAL, v) == 0, "setval");
        } else {
            unsigned short set[NSEMS] = { V, V, V, 1, round == WAKE_ROUND };
            arg.array = set;
            CHECK(semctl(id, 0, SETALL, arg) == 0, "setall round %d", round);
        }
        __atomic_store_n(&sh->round, round, __ATOMIC_SEQ_CST);
        CHECK(semctl(id, Z, GETNCNT) == 1 && semctl(id, Z, GETZCNT) == 1, "Z's sleepers across round %d", round);
        if (round == WAKE_ROUND) {
            reap_ok(zs[2], "W sleeper");
            CHECK(semctl(id, W, GETNCNT) == 0 && semctl(id, W, GETVAL) == 0, "W after its SETALL");
        }
    }
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    for (int r = 0; r < NRACERS; r++)
        reap_ok(rs[r], "racer");
    reap_ok(h, "holder");
    printf("%d resets (SETALL, SETVAL) under %d SEM_UNDO racers and a holder; W's sleeper woken by SETALL: %s\n", ROUNDS, NRACERS,
           ename(sh->w_minus1));
    print_counts(id, "racers gone");
    union semun two = { .val = 2 };
    CHECK(semctl(id, Z, SETVAL, two) == 0, "setval Z");
    reap_ok(zs[0], "Z zero sleeper");
    reap_ok(zs[1], "Z -2 sleeper");
    printf("SETVAL Z 2: the -2 sleeper %s, then the zero sleeper %s\n", ename(sh->z_minus2), ename(sh->z_zero));
    print_counts(id, "all gone");
    fprintf(stderr, "\npairs %ld %ld %ld %ld %ld, EAGAIN %ld\n", sh->ops[0], sh->ops[1], sh->ops[2], sh->ops[3],
            sh->ops[4], sh->eagain);
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
