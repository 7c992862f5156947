/* What GETALL/SETALL/IPC_STAT/IPC_SET/SEM_STAT/IPC_INFO/SEM_INFO and the
 * GET commands leave and return; compared between the kernel and the shim.
 * Times are printed as "never", "now" (within a minute of time()) or
 * "other". */
#include "semcommon.h"

static const char *when(time_t t) {
    time_t now = time(NULL);
    if (t == 0) return "never";
    return (t <= now && now - t < 60) ? "now" : "other";
}

static void stat_of(int id, const char *what) {
    struct semid_ds ds;
    union semun u = { .buf = &ds };
    memset(&ds, 0xa5, sizeof ds);
    CHECK(semctl(id, 0, IPC_STAT, u) == 0, "IPC_STAT");
    printf("%s: key %#x uid %u gid %u cuid %u cgid %u mode %o seq-set %d nsems %lu otime %s ctime %s\n", what,
           (unsigned)ds.sem_perm.__key, ds.sem_perm.uid, ds.sem_perm.gid, ds.sem_perm.cuid, ds.sem_perm.cgid,
           ds.sem_perm.mode, ds.sem_perm.__seq != 0xa5a5, (unsigned long)ds.sem_nsems, when(ds.sem_otime),
           when(ds.sem_ctime));
}

static void all_of(int id, int n, const char *what) {
    unsigned short v[8];
    union semun u = { .array = v };
    memset(v, 0xff, sizeof v);
    int r = semctl(id, 0, GETALL, u);
    printf("%s: GETALL -> %d:", what, r);
    for (int i = 0; i < 8; i++) printf(" %d", v[i] == 0xffff ? -1 : v[i]);
    printf("\n");
    (void)n;
}

static void info(int cmd, const char *what) {
    struct seminfo si;
    union semun u = { .__buf = &si };
    memset(&si, 0xa5, sizeof si);
    int r = semctl(0, 0, cmd, u);
    printf("%s -> %d: semmap %d semmni %d semmns %d semmnu %d semmsl %d semopm %d semume %d semusz %d semvmx %d semaem %d\n",
           what, r, si.semmap, si.semmni, si.semmns, si.semmnu, si.semmsl, si.semopm, si.semume, si.semusz, si.semvmx,
           si.semaem);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    info(IPC_INFO, "IPC_INFO (empty)");
    info(SEM_INFO, "SEM_INFO (empty)");
    int a = semget(0x75697066, 5, IPC_CREAT | 0640);
    int b = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    int c = semget(IPC_PRIVATE, 7, IPC_CREAT | 0444);
    printf("ids %d %d %d\n", a, b, c);
    stat_of(a, "a new");
    all_of(a, 5, "a new");
    unsigned short set[5] = { 1, 2, 3, 32767, 0 };
    union semun u = { .array = set };
    printf("SETALL -> %d\n", semctl(a, 0, SETALL, u));
    all_of(a, 5, "a after SETALL");
    printf("GETVAL 3 -> %d, GETPID 3 is me: %d\n", semctl(a, 3, GETVAL), semctl(a, 3, GETPID) == getpid());
    struct sembuf ops[3] = { { 0, -1, SEM_UNDO }, { 1, 5, 0 }, { 4, 0, 0 } };
    printf("semop 3 ops -> %d\n", semop(a, ops, 3));
    all_of(a, 5, "a after semop");
    stat_of(a, "a after semop");
    union semun v = { .val = 9 };
    printf("SETVAL 2 9 -> %d\n", semctl(a, 2, SETVAL, v));
    all_of(a, 5, "a after SETVAL");
    struct semid_ds ds;
    u.buf = &ds;
    CHECK(semctl(a, 0, IPC_STAT, u) == 0, "IPC_STAT");
    ds.sem_perm.mode = 0604;
    ds.sem_perm.uid = 12;
    ds.sem_perm.gid = 34;
    printf("IPC_SET -> %d\n", semctl(a, 0, IPC_SET, u));
    stat_of(a, "a after IPC_SET");
    stat_of(c, "c");
    printf("SEM_STAT index 1 -> id == b: %d\n", semctl(1, 0, SEM_STAT, u) == b);
    printf("SEM_STAT_ANY index 2 -> id == c: %d\n", semctl(2, 0, SEM_STAT_ANY, u) == c);
    info(IPC_INFO, "IPC_INFO (3 sets)");
    info(SEM_INFO, "SEM_INFO (3 sets, 14 sems)");
    printf("IPC_RMID b -> %d\n", semctl(b, 0, IPC_RMID));
    info(SEM_INFO, "SEM_INFO (2 sets)");
    int d = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    printf("reused slot: %d (seq moved on: %d)\n", d % 32768, d != b);
    CHECK(semctl(a, 0, IPC_RMID) == 0 && semctl(c, 0, IPC_RMID) == 0 && semctl(d, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
