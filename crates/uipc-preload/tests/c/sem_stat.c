/* semctl(IPC_STAT / SEM_STAT / SEM_STAT_ANY) as the sets change: under the
 * shim, a caller that asked once reads later answers from the namespace's
 * semaphore status region (or the set's page, while other processes change
 * it in theirs) without a round trip, and must still see exactly what the
 * kernel shows — as root and as uid 1000 (EACCES for SEM_STAT of a set it
 * may not read, none for SEM_STAT_ANY), after IPC_SET, semop, IPC_RMID and
 * a slot's reuse, from a forked child, and while another process runs
 * semop in a loop (every answer one consistent snapshot). Times print as
 * "never"/"set". */
#include "semcommon.h"

static const char *when(time_t t) { return t == 0 ? "never" : "set"; }

/* One semctl, printed whole (times masked). */
static void show(const char *what, int id, int cmd) {
    struct semid_ds ds;
    memset(&ds, 0x55, sizeof ds);
    union semun u = { .buf = &ds };
    errno = 0;
    int r = semctl(id, 0, cmd, u);
    const char *c = cmd == IPC_STAT ? "IPC_STAT" : cmd == SEM_STAT ? "SEM_STAT" : "SEM_STAT_ANY";
    if (r < 0) {
        printf("%-30s %-12s -> -1 %s\n", what, c, ename(errno));
        return;
    }
    printf("%-30s %-12s -> %d key %d uid %u gid %u cuid %u cgid %u mode %o nsems %lu otime %s ctime %s\n", what, c,
           r, ds.sem_perm.__key, ds.sem_perm.uid, ds.sem_perm.gid, ds.sem_perm.cuid, ds.sem_perm.cgid,
           ds.sem_perm.mode, (unsigned long)ds.sem_nsems, when(ds.sem_otime), when(ds.sem_ctime));
}

/* Every command, twice: the second answer may come from the region. */
static void all(const char *what, int id) {
    for (int pass = 0; pass < 2; pass++) {
        show(what, id, IPC_STAT);
        show(what, id % 32768, SEM_STAT);
        show(what, id % 32768, SEM_STAT_ANY);
    }
}

static void set_mode(int id, unsigned mode) {
    struct semid_ds ds;
    union semun u = { .buf = &ds };
    CHECK(semctl(id, 0, IPC_STAT, u) == 0, "IPC_STAT before IPC_SET");
    ds.sem_perm.mode = mode;
    CHECK(semctl(id, 0, IPC_SET, u) == 0, "IPC_SET");
}

/* A child as uid 1000 shows every command on `id`. */
static void as_user(const char *what, int id) {
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        CHECK(setuid(1000) == 0, "setuid 1000");
        all(what, id);
        _exit(0);
    }
    reap_ok(c, what);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(120);
    int a = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    int b = semget(0x5e5, 2, IPC_CREAT | 0640);
    CHECK(a >= 0 && b >= 0, "semget");
    all("root, new", a);
    all("root, new keyed", b);
    as_user("uid 1000, 0600", a);
    as_user("uid 1000, 0640", b);

    sop(a, 0, 1, 0);
    all("root, after semop", a);
    set_mode(a, 0604);
    all("root, after IPC_SET 0604", a);
    as_user("uid 1000, 0604", a);

    /* A forked child: grants are per process. */
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        all("child", a);
        sop(a, 1, 1, 0);
        all("child, after its semop", a);
        _exit(0);
    }
    reap_ok(c, "child");
    all("root, after the child's semop", a);

    /* Another process runs semop in a loop while this one reads: every
     * answer is one consistent snapshot (sem_otime never goes back, the
     * rest unchanged). */
    volatile int *stop = shared_alloc(sizeof(int));
    c = fork();
    CHECK(c >= 0, "fork looper");
    if (c == 0) {
        while (!*stop) {
            sop(a, 2, 1, 0);
            sop(a, 2, -1, 0);
        }
        _exit(0);
    }
    time_t last = 0;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        struct semid_ds ds;
        union semun u = { .buf = &ds };
        int cmd = i % 3 == 0 ? IPC_STAT : i % 3 == 1 ? SEM_STAT : SEM_STAT_ANY;
        int r = semctl(cmd == IPC_STAT ? a : a % 32768, 0, cmd, u);
        if (r != (cmd == IPC_STAT ? 0 : a) || ds.sem_nsems != 3 || (ds.sem_perm.mode & 0777) != 0604 ||
            ds.sem_otime < last || ds.sem_ctime == 0)
            bad++;
        last = ds.sem_otime;
    }
    *stop = 1;
    reap_ok(c, "looper");
    printf("concurrent reads: %d inconsistent\n", bad);

    /* A child's failed SEM_UNDO semop leaves it an undo record (no
     * sem_otime); its exit sets sem_otime (exit_sem()), before wait()
     * returns here. */
    int d = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(d >= 0, "semget d");
    all("root, undo set", d);
    int to_child[2], to_parent[2];
    CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");
    c = fork();
    CHECK(c >= 0, "fork undo");
    if (c == 0) {
        struct sembuf take = { 0, -1, SEM_UNDO | IPC_NOWAIT };
        T("child: failed SEM_UNDO semop", semop(d, &take, 1));
        CHECK(write(to_parent[1], "x", 1) == 1, "write");
        char x;
        CHECK(read(to_child[0], &x, 1) == 1, "read");
        _exit(0);
    }
    char x;
    CHECK(read(to_parent[0], &x, 1) == 1, "read");
    all("root, child holds an undo record", d);
    CHECK(write(to_child[1], "x", 1) == 1, "write");
    reap_ok(c, "undo child");
    all("root, after its exit", d);
    CHECK(semctl(d, 0, IPC_RMID) == 0, "rmid d");

    CHECK(semctl(b, 0, IPC_RMID) == 0, "rmid b");
    all("root, removed", b);
    as_user("uid 1000, removed", b);
    int b2 = semget(IPC_PRIVATE, 5, IPC_CREAT | 0600);
    CHECK(b2 >= 0, "semget again");
    all("root, slot reused", b2);
    show("root, the old id", b, IPC_STAT);
    CHECK(semctl(a, 0, IPC_RMID) == 0 && semctl(b2, 0, IPC_RMID) == 0, "cleanup");
    all("root, all removed", a);

    /* A fresh namespace: nothing of the old one. */
    a = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(a >= 0, "semget before unshare");
    all("before unshare", a);
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
    all("after unshare", a);
    printf("ok\n");
    return 0;
}
