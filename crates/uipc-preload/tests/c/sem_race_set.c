/* Semops and queries racing IPC_SET that takes the racers' permission
 * away. The racers run as nobody (setuid in forked children); root's
 * IPC_SET revokes, then root stores a flag in shared memory. The check is
 * exact: a racer reads the flag before each call, and a call made after it
 * saw the flag set started after IPC_SET had returned, so it must fail with
 * EACCES; and once a racer got EACCES, no later call of its succeeds (the
 * permission never comes back). A call that started before IPC_SET
 * returned may go either way (the kernel checks before it locks the set).
 *
 * Phases (a fresh set each):
 * 1. mode 0666 -> 0644: semop racers (IPC_NOWAIT, IPC_NOWAIT|SEM_UNDO,
 *    blocking, blocking SEM_UNDO) lose alter. A nobody process asleep in
 *    semop before the change is not checked again: root's post wakes it
 *    with success; its next semop is EACCES; reading is still allowed.
 * 2. mode 0644 -> 0600: GETVAL, GETALL, IPC_STAT, SEM_STAT and GETNCNT
 *    racers lose read.
 * 3. owner nobody 0600 -> owner root 0600: the semop racers lose the owner
 *    class. */
#include "semcommon.h"

enum { A, B, PARK, NSEMS };
enum { W_NOWAIT, W_NOWAIT_UNDO, W_BLOCK, W_BLOCK_UNDO, R_GETVAL, R_GETALL, R_STAT, R_SEMSTAT, R_GETNCNT, NKINDS };

static const char *const names[NKINDS] = {
    "semop IPC_NOWAIT", "semop IPC_NOWAIT|SEM_UNDO", "semop", "semop SEM_UNDO",
    "GETVAL", "GETALL", "IPC_STAT", "SEM_STAT", "GETNCNT",
};

#define MIN_OPS 64      /* each racer's successes before the change */
#define AFTER 3         /* calls a racer makes after it saw the flag */

struct shared {
    int revoked;                /* set by root after IPC_SET returned */
    long ops[NKINDS];           /* successes */
    long denied[NKINDS];        /* EACCES */
    int park_first, park_second;/* the sleeper's wake-up and next call */
    int park_read;              /* the sleeper's GETVAL after the change */
};

static struct shared *sh;

/* One call of kind k: 0 on success, else the errno. Moves alternate A->B
 * and B->A, which never blocks. */
static int one_call(int id, int k, long i) {
    short flg = k == W_NOWAIT ? IPC_NOWAIT : k == W_NOWAIT_UNDO ? IPC_NOWAIT | SEM_UNDO : k == W_BLOCK_UNDO ? SEM_UNDO : 0;
    short dir = i % 2 == 0 ? 1 : -1;
    struct sembuf move[2] = { { A, (short)-dir, flg }, { B, dir, flg } };
    unsigned short vals[NSEMS];
    struct semid_ds ds;
    union semun arg = { .array = vals };
    long r;
    errno = 0;
    switch (k) {
    case R_GETVAL: r = semctl(id, A, GETVAL); break;
    case R_GETALL: r = semctl(id, 0, GETALL, arg); break;
    case R_STAT: arg.buf = &ds; r = semctl(id, 0, IPC_STAT, arg); break;
    case R_SEMSTAT: arg.buf = &ds; r = semctl(id % 32768, 0, SEM_STAT, arg); break;
    case R_GETNCNT: r = semctl(id, A, GETNCNT); break;
    default: r = semop(id, move, 2); break;
    }
    return r >= 0 ? 0 : errno;
}

static void race(int id, int k) {
    watchdog(30);
    become_nobody();
    int after = 0;
    for (long i = 0; after < AFTER; i++) {
        int seen = __atomic_load_n(&sh->revoked, __ATOMIC_SEQ_CST);
        int e = one_call(id, k, i);
        if (e == 0) {
            CHECK(!seen, "%s succeeded after IPC_SET had returned", names[k]);
            CHECK(sh->denied[k] == 0, "%s succeeded after an EACCES", names[k]);
            __atomic_store_n(&sh->ops[k], sh->ops[k] + 1, __ATOMIC_SEQ_CST);
        } else {
            CHECK(e == EACCES, "%s: %s", names[k], ename(e));
            sh->denied[k]++;
            after += seen;
        }
    }
    _exit(0);
}

/* IPC_SET of uid and mode (gid 0) by root. */
static void set_perm(int id, uid_t uid, unsigned short mode) {
    struct semid_ds ds;
    union semun arg = { .buf = &ds };
    CHECK(semctl(id, 0, IPC_STAT, arg) == 0, "stat");
    ds.sem_perm.uid = uid;
    ds.sem_perm.gid = 0;
    ds.sem_perm.mode = mode;
    CHECK(semctl(id, 0, IPC_SET, arg) == 0, "IPC_SET uid %u mode %o", (unsigned)uid, mode);
}

/* Runs racers of kinds [from, to) as nobody on a fresh set with owner
 * uid0/mode0, revokes with uid1/mode1 once each made MIN_OPS calls. */
static void phase(const char *what, int from, int to, uid_t uid0, unsigned short mode0, uid_t uid1,
                  unsigned short mode1, int with_sleeper) {
    memset(sh, 0, sizeof *sh);
    int id = semget(IPC_PRIVATE, NSEMS, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun a = { .val = 100 };
    CHECK(semctl(id, A, SETVAL, a) == 0, "setval");
    set_perm(id, uid0, mode0);
    pid_t sleeper = -1;
    if (with_sleeper) {
        sleeper = fork();
        CHECK(sleeper >= 0, "fork");
        if (sleeper == 0) {
            watchdog(30);
            become_nobody();
            struct sembuf take = { PARK, -1, 0 }, post = { PARK, 1, IPC_NOWAIT };
            sh->park_first = try_semop(id, &take, 1);
            sh->park_second = try_semop(id, &post, 1);
            sh->park_read = semctl(id, PARK, GETVAL) == 0 ? 0 : errno;
            _exit(0);
        }
        await_ncnt(id, PARK, 1);
    }
    pid_t pids[NKINDS];
    for (int k = from; k < to; k++) {
        pids[k] = fork();
        CHECK(pids[k] >= 0, "fork");
        if (pids[k] == 0)
            race(id, k);
    }
    for (int k = from; k < to; k++)
        await_at_least(&sh->ops[k], MIN_OPS);
    set_perm(id, uid1, mode1);
    __atomic_store_n(&sh->revoked, 1, __ATOMIC_SEQ_CST);
    for (int k = from; k < to; k++)
        reap_ok(pids[k], names[k]);
    printf("%s:\n", what);
    for (int k = from; k < to; k++)
        printf("  %s as nobody: EACCES from IPC_SET on, never a success after one\n", names[k]);
    if (with_sleeper) {
        struct sembuf post = { PARK, 1, 0 };
        CHECK(semop(id, &post, 1) == 0, "post PARK");
        reap_ok(sleeper, "sleeper");
        printf("  asleep before IPC_SET, woken by root: %s; its next semop %s; its GETVAL %s\n",
               ename(sh->park_first), ename(sh->park_second), ename(sh->park_read));
    }
    unsigned short vals[NSEMS];
    union semun arg = { .array = vals };
    CHECK(semctl(id, 0, GETALL, arg) == 0, "getall");
    printf("  A + B = %d\n", vals[A] + vals[B]);
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    sh = shared_alloc(sizeof *sh);
    phase("mode 0666 -> 0644", W_NOWAIT, R_GETVAL, 0, 0666, 0, 0644, 1);
    phase("mode 0644 -> 0600", R_GETVAL, NKINDS, 0, 0644, 0, 0600, 0);
    phase("owner nobody 0600 -> owner root 0600", W_NOWAIT, R_GETVAL, 65534, 0600, 0, 0600, 0);
    printf("ok\n");
    return 0;
}
