/* shmctl(IPC_STAT / SHM_STAT / SHM_STAT_ANY) as other processes change
 * the segment: under the shim, a caller that asked once reads later
 * answers from the namespace's status region (no round trip) while its
 * grant holds, and must still see exactly what the kernel shows — after an
 * IPC_SET by another process (EACCES at once), an IPC_RMID, its own
 * credential drop, from a forked child, after another process attached,
 * detached or died attached, and after unshare(CLONE_NEWIPC).
 * Pids print as names, times as "never"/"set". */
#include "semcommon.h"

static pid_t parent_pid, a_pid;

static const char *pname(pid_t p) {
    if (p == 0) return "0";
    if (p == parent_pid) return "parent";
    if (p == a_pid) return "A";
    if (p == getpid()) return "self";
    return "other";
}

static const char *when(time_t t) { return t == 0 ? "never" : "set"; }

/* One IPC_STAT, printed whole (pids and times masked). */
static void show(const char *what, int id) {
    struct shmid_ds ds;
    memset(&ds, 0x55, sizeof ds);
    errno = 0;
    int r = shmctl(id, IPC_STAT, &ds);
    if (r < 0) {
        printf("%-34s -> -1 %s\n", what, ename(errno));
        return;
    }
    printf("%-34s -> %d key %d uid %u gid %u cuid %u cgid %u mode %o segsz %zu nattch %lu cpid %s lpid %s "
           "atime %s dtime %s ctime %s\n",
           what, r, ds.shm_perm.__key, ds.shm_perm.uid, ds.shm_perm.gid, ds.shm_perm.cuid, ds.shm_perm.cgid,
           ds.shm_perm.mode, ds.shm_segsz, (unsigned long)ds.shm_nattch, pname(ds.shm_cpid), pname(ds.shm_lpid),
           when(ds.shm_atime), when(ds.shm_dtime), when(ds.shm_ctime));
}

/* Twice: the second answer may come from the status region. */
static void show2(const char *what, int id) {
    show(what, id);
    show(what, id);
}

static void set_perm(int id, uid_t uid, unsigned mode) {
    struct shmid_ds ds;
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT before IPC_SET");
    ds.shm_perm.uid = uid;
    ds.shm_perm.mode = mode;
    CHECK(shmctl(id, IPC_SET, &ds) == 0, "IPC_SET");
}

/* A pipe pair for turn-taking between the parent and one child. */
static int to_child[2], to_parent[2];
static void say(int fd) { CHECK(write(fd, "x", 1) == 1, "write"); }
static void hear(int fd) { char b; CHECK(read(fd, &b, 1) == 1, "read"); }

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    parent_pid = getpid();
    int id = shmget(IPC_PRIVATE, 5000, IPC_CREAT | 0644);
    CHECK(id >= 0, "shmget");
    show2("creator", id);

    /* A reader that is not root (no CAP_IPC_OWNER), while the parent
     * changes the segment's permissions and owner. */
    CHECK(pipe(to_child) == 0 && pipe(to_parent) == 0, "pipe");
    pid_t r = fork();
    CHECK(r >= 0, "fork");
    if (r == 0) {
        watchdog(60);
        CHECK(setuid(1000) == 0, "setuid 1000");
        show2("uid 1000, 0644", id);
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, after IPC_SET 0600", id);
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, after IPC_SET 0644", id);
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, now owner 0600", id);
        /* A forked child of the reader: grants are per process. */
        pid_t g = fork();
        CHECK(g >= 0, "fork grandchild");
        if (g == 0) {
            show2("reader's child", id);
            _exit(0);
        }
        int st;
        CHECK(waitpid(g, &st, 0) == g && WIFEXITED(st) && WEXITSTATUS(st) == 0, "grandchild");
        /* Re-attaches (under the shim, of a descriptor the process kept)
         * judged by the permissions of the moment. */
        void *p1 = shmat(id, NULL, 0);
        CHECK(p1 != (void *)-1, "shmat R");
        CHECK(shmdt(p1) == 0, "shmdt R");
        show("uid 1000, attached and detached", id);
        set_perm(id, 1000, 0400);
        T("uid 1000, 0400: shmat read-write", shmat(id, NULL, 0));
        show("uid 1000, refused attach", id);
        p1 = shmat(id, NULL, SHM_RDONLY);
        CHECK(p1 != (void *)-1, "shmat R read-only");
        void *p2 = shmat(id, NULL, SHM_RDONLY);
        CHECK(p2 != (void *)-1, "shmat R read-only again");
        show("uid 1000, two read-only attaches", id);
        CHECK(shmdt(p1) == 0 && shmdt(p2) == 0, "shmdt R read-only");
        set_perm(id, 1000, 0600);
        /* Its own new segment, mode 0400: no read-write attach for its
         * creator either (under the shim it holds the memory already). */
        int own = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0400);
        CHECK(own >= 0, "shmget R");
        T("uid 1000, own 0400: shmat read-write", shmat(own, NULL, 0));
        p1 = shmat(own, NULL, SHM_RDONLY);
        CHECK(p1 != (void *)-1, "shmat own read-only");
        show("uid 1000, own 0400 attached", own);
        CHECK(shmdt(p1) == 0 && shmctl(own, IPC_RMID, NULL) == 0, "own cleanup");
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, after attach by A", id);
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, after detach by A", id);
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, A died attached", id);
        say(to_parent[1]);
        hear(to_child[0]);
        show2("uid 1000, after IPC_RMID", id);
        _exit(0);
    }
    hear(to_parent[0]);
    set_perm(id, 0, 0600);
    show("parent after IPC_SET 0600", id);
    say(to_child[1]);
    hear(to_parent[0]);
    set_perm(id, 0, 0644);
    say(to_child[1]);
    hear(to_parent[0]);
    set_perm(id, 1000, 0600);
    say(to_child[1]);
    hear(to_parent[0]);

    /* A attaches, then detaches, then attaches and dies attached. */
    int a_go[2], a_done[2];
    CHECK(pipe(a_go) == 0 && pipe(a_done) == 0, "pipe A");
    a_pid = fork();
    CHECK(a_pid >= 0, "fork A");
    if (a_pid == 0) {
        watchdog(60);
        void *p = shmat(id, NULL, 0);
        CHECK(p != (void *)-1, "shmat A");
        CHECK(shmdt(p) == 0, "shmdt A first");
        p = shmat(id, NULL, 0); /* again: the kept descriptor, under the shim */
        CHECK(p != (void *)-1, "shmat A again");
        say(a_done[1]);
        hear(a_go[0]);
        CHECK(shmdt(p) == 0, "shmdt A");
        say(a_done[1]);
        hear(a_go[0]);
        CHECK(shmat(id, NULL, SHM_RDONLY) != (void *)-1, "shmat A again");
        _exit(0); /* attached: exit detaches */
    }
    hear(a_done[0]);
    show2("parent, A attached", id);
    say(to_child[1]);
    hear(to_parent[0]);
    say(a_go[1]);
    hear(a_done[0]);
    show2("parent, A detached", id);
    say(to_child[1]);
    hear(to_parent[0]);
    say(a_go[1]);
    int st;
    CHECK(waitpid(a_pid, &st, 0) == a_pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "A");
    show2("parent, A died attached", id);
    say(to_child[1]);
    hear(to_parent[0]);

    /* SHM_STAT by index and SHM_STAT_ANY. */
    struct shm_info info;
    int maxidx = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
    CHECK(maxidx >= 0, "SHM_INFO");
    for (int i = 0; i <= maxidx; i++) {
        struct shmid_ds ds;
        int full = shmctl(i, SHM_STAT, &ds);
        printf("SHM_STAT %d -> %s nattch %lu\n", i, full == id ? "the id" : full < 0 ? ename(errno) : "another",
               (unsigned long)ds.shm_nattch);
        full = shmctl(i, SHM_STAT_ANY, &ds);
        printf("SHM_STAT_ANY %d -> %s\n", i, full == id ? "the id" : full < 0 ? ename(errno) : "another");
    }
    T("SHM_STAT empty slot", shmctl(maxidx + 1, SHM_STAT, &(struct shmid_ds){0}));

    /* Removal. */
    CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
    show2("parent after IPC_RMID", id);
    say(to_child[1]);
    CHECK(waitpid(r, &st, 0) == r && WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader");

    /* A segment removed while attached, then the last detach. */
    int id2 = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id2 >= 0, "shmget 2");
    void *p = shmat(id2, NULL, 0);
    CHECK(p != (void *)-1, "shmat 2");
    show2("attached", id2);
    CHECK(shmctl(id2, IPC_RMID, NULL) == 0, "IPC_RMID 2");
    show2("removed, attached", id2);
    CHECK(shmdt(p) == 0, "shmdt 2");
    show2("removed, detached", id2);

    /* A credential drop of the caller itself. */
    int id3 = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id3 >= 0, "shmget 3");
    show2("root, 0600", id3);
    pid_t d = fork();
    CHECK(d >= 0, "fork dropper");
    if (d == 0) {
        show2("root child, 0600", id3);
        CHECK(setuid(65534) == 0, "setuid nobody");
        show2("nobody, 0600", id3);
        _exit(0);
    }
    CHECK(waitpid(d, &st, 0) == d && WIFEXITED(st) && WEXITSTATUS(st) == 0, "dropper");

    /* A new IPC namespace: the old id names nothing there. */
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
    /* Its first query a SHM_STAT_ANY, which checks no permission and
     * grants none: a process that may not read the segment. */
    int id5 = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id5 >= 0, "shmget 5");
    d = fork();
    CHECK(d >= 0, "fork any");
    if (d == 0) {
        CHECK(setuid(65534) == 0, "setuid nobody");
        struct shmid_ds any;
        for (int i = 0; i < 2; i++) {
            int full = shmctl(id5 % 32768, SHM_STAT_ANY, &any);
            printf("nobody SHM_STAT_ANY -> %s\n", full == id5 ? "the id" : full < 0 ? ename(errno) : "another");
        }
        show2("nobody after SHM_STAT_ANY", id5);
        T("nobody SHM_STAT after SHM_STAT_ANY", shmctl(id5 % 32768, SHM_STAT, &any));
        T("nobody SHM_STAT after SHM_STAT_ANY", shmctl(id5 % 32768, SHM_STAT, &any));
        _exit(0);
    }
    CHECK(waitpid(d, &st, 0) == d && WIFEXITED(st) && WEXITSTATUS(st) == 0, "any");
    CHECK(shmctl(id5, IPC_RMID, NULL) == 0, "IPC_RMID 5");
    show2("new namespace, old id", id3);
    int id4 = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
    CHECK(id4 >= 0, "shmget 4");
    show2("new namespace, new segment", id4);
    printf("ok\n");
    return 0;
}
