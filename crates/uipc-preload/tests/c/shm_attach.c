/* shmat/shmdt and what every asker sees right after: under the shim, a
 * re-attach of a segment whose memory the process holds and the detach of
 * such an attach are made in the process itself (the segment's attach
 * page), and nattch, lpid, atime and dtime must still be exactly the
 * kernel's after each call — read by the caller and by another process.
 * Attach/detach/re-attach, fork (the child inherits and detaches), a
 * SIGKILLed holder, IPC_RMID then the last detach, munmap/mprotect of part
 * of an attach, a fixed-address attach beside them, threads attaching at
 * once, uid 1000, and a process dropping its privileges halfway.
 * Pids print as names; a time as "never", "in" (within the window of the
 * call that should have set it: time(NULL) before and after), "before"
 * or "after" that window. Each time has its window: shmat's sets atime's,
 * shmdt's dtime's, any other step's both (a step between a shmdt and the
 * next shmat may not move the shmdt's window past a second boundary). */
#include "semcommon.h"
#include <pthread.h>

struct shared {
    pid_t parent, reader, child, killed, user;
    time_t aw0, aw1, dw0, dw1; /* the windows of the last calls that set atime, dtime */
    int id;
    char what[64];
};
static struct shared *sh;

static const char *pname(pid_t p) {
    if (p == 0) return "0";
    if (p == sh->parent) return "parent";
    if (p == sh->reader) return "reader";
    if (p == sh->child) return "child";
    if (p == sh->killed) return "killed";
    if (p == sh->user) return "user";
    return "other";
}

static const char *when(time_t t, time_t w0, time_t w1) {
    if (t == 0) return "never";
    if (t < w0) return "before";
    if (t > w1) return "after";
    return "in";
}

static void show_as(const char *who, const char *what, int id) {
    struct shmid_ds ds;
    memset(&ds, 0x55, sizeof ds);
    errno = 0;
    int r = shmctl(id, IPC_STAT, &ds);
    if (r < 0) {
        printf("%-7s %-40s -> -1 %s\n", who, what, ename(errno));
        return;
    }
    printf("%-7s %-40s -> nattch %lu lpid %s atime %s dtime %s mode %o key %d\n", who, what,
           (unsigned long)ds.shm_nattch, pname(ds.shm_lpid), when(ds.shm_atime, sh->aw0, sh->aw1),
           when(ds.shm_dtime, sh->dw0, sh->dw1),
           ds.shm_perm.mode, ds.shm_perm.__key);
}

/* The reader: a process that never attached, asked over pipes. */
static int to_reader[2], from_reader[2];

static void reader_loop(void) {
    char b;
    while (read(to_reader[0], &b, 1) == 1) {
        show_as("reader", sh->what, sh->id);
        CHECK(write(from_reader[1], "x", 1) == 1, "reader reply");
    }
    _exit(0);
}

/* Shown by the caller, then by the reader (both twice: a second ask may
 * come from the status region). */
static void show(const char *what, int id) {
    show_as("self", what, id);
    show_as("self", what, id);
    snprintf(sh->what, sizeof sh->what, "%s", what);
    sh->id = id;
    for (int i = 0; i < 2; i++) {
        char b;
        CHECK(write(to_reader[1], "x", 1) == 1 && read(from_reader[0], &b, 1) == 1, "ask reader");
    }
}

static void win0(void) { sh->aw0 = sh->dw0 = time(NULL); }
static void win1(void) { sh->aw1 = sh->dw1 = time(NULL); }

static void *at(int id, int flags) {
    sh->aw0 = time(NULL);
    void *p = shmat(id, NULL, flags);
    sh->aw1 = time(NULL);
    CHECK(p != (void *)-1, "shmat %d %#x: %s", id, flags, ename(errno));
    return p;
}

static void dt(void *p) {
    sh->dw0 = time(NULL);
    int r = shmdt(p);
    sh->dw1 = time(NULL);
    CHECK(r == 0, "shmdt: %s", ename(errno));
}

static int seg_for_threads;
static void *thread_body(void *arg) {
    (void)arg;
    for (int i = 0; i < 300; i++) {
        void *p = shmat(seg_for_threads, NULL, 0);
        CHECK(p != (void *)-1, "thread shmat");
        ((volatile char *)p)[0]++;
        CHECK(shmdt(p) == 0, "thread shmdt");
    }
    return shmat(seg_for_threads, NULL, 0); /* kept */
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(120);
    sh = shared_alloc(sizeof *sh);
    sh->parent = getpid();
    CHECK(pipe(to_reader) == 0 && pipe(from_reader) == 0, "pipes");
    pid_t rd = fork();
    CHECK(rd >= 0, "fork reader");
    if (rd == 0) {
        sh->reader = getpid();
        close(to_reader[1]);
        reader_loop();
    }
    sh->reader = rd;
    close(to_reader[0]);
    close(from_reader[1]);

    /* Attach, re-attach, detach, re-attach. */
    win0();
    int id = shmget(IPC_PRIVATE, 3 * 4096, IPC_CREAT | 0600);
    win1();
    CHECK(id >= 0, "shmget");
    show("created", id);
    void *p1 = at(id, 0);
    show("attached", id);
    void *p2 = at(id, 0);
    show("attached twice", id);
    dt(p1);
    show("detached one", id);
    void *p3 = at(id, SHM_RDONLY);
    show("re-attached read-only", id);
    dt(p3);
    dt(p2);
    show("detached all", id);
    T("shmdt again", shmdt(p2));
    show("after a refused detach", id);
    p1 = at(id, 0);
    show("attached after all detached", id);

    /* fork: the child inherits the attachment (lpid: the parent, atime:
     * the fork), detaches it, attaches and exits attached. */
    win0();
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        sh->child = getpid();
        _exit(0);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c, "wait trivial");
    int go[2], done[2];
    CHECK(pipe(go) == 0 && pipe(done) == 0, "pipes child");
    win0();
    c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        char b;
        CHECK(read(go[0], &b, 1) == 1, "child go");
        dt(p1);
        CHECK(write(done[1], "x", 1) == 1, "child done");
        CHECK(read(go[0], &b, 1) == 1, "child go 2");
        at(id, 0);
        at(id, 0);
        CHECK(write(done[1], "x", 1) == 1, "child done 2");
        CHECK(read(go[0], &b, 1) == 1, "child go 3");
        win0();
        _exit(0);
    }
    win1();
    sh->child = c;
    show("forked with one attached", id);
    char b;
    CHECK(write(go[1], "x", 1) == 1 && read(done[0], &b, 1) == 1, "child step 1");
    show("child detached its copy", id);
    CHECK(write(go[1], "x", 1) == 1 && read(done[0], &b, 1) == 1, "child step 2");
    show("child attached twice", id);
    CHECK(write(go[1], "x", 1) == 1, "child step 3");
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    win1();
    show("child exited attached", id);

    /* SIGKILL with attachments made in the process itself. */
    CHECK(pipe(done) == 0, "pipe killed");
    pid_t k = fork();
    CHECK(k >= 0, "fork killed");
    if (k == 0) {
        /* Its inherited attach gone, it holds only attaches of its own:
         * the first through the daemon, the next in itself (under the
         * shim), the first detached. */
        CHECK(shmdt(p1) == 0, "killed: shmdt inherited");
        void *q = shmat(id, NULL, 0);
        CHECK(q != (void *)-1 && shmat(id, NULL, 0) != (void *)-1, "killed: shmat");
        CHECK(shmdt(q) == 0, "killed: shmdt");
        CHECK(shmat(id, NULL, 0) != (void *)-1, "killed: shmat again");
        CHECK(write(done[1], "x", 1) == 1, "killed ready");
        for (;;)
            pause();
    }
    sh->killed = k;
    CHECK(read(done[0], &b, 1) == 1, "killed ready");
    sh->aw0 = sh->aw1 = sh->dw0 = sh->dw1 = 0;
    show("killed holds two", id);
    win0();
    kill(k, SIGKILL);
    CHECK(waitpid(k, &st, 0) == k && WIFSIGNALED(st), "killed");
    win1();
    show("killed reaped", id);

    /* munmap and mprotect of part of an attach: the kernel splits it. */
    char *m = at(id, 0);
    show("attached three pages", id);
    win0();
    CHECK(munmap(m + 4096, 4096) == 0, "munmap middle");
    win1();
    show("middle page unmapped", id);
    char *m2 = at(id, 0);
    win0();
    CHECK(mprotect(m2, 4096, PROT_READ) == 0, "mprotect first");
    win1();
    show("first page of another read-only", id);
    /* A fixed-address attach beside attachments made in the process. */
    char *m3 = at(id, 0);
    dt(m3);
    win0();
    T("fixed attach over an attachment", (long)shmat(id, m2, 0));
    win1();
    void *f = shmat(id, m3, 0);
    CHECK(f == m3, "fixed attach at a free address");
    win1();
    show("fixed attach", id);
    dt(f);
    dt(m);
    show("detached a split attach", id);
    dt(m2);
    show("detached the other", id);
    dt(p1);
    show("parent detached", id);

    /* Threads attaching and detaching at once. */
    seg_for_threads = id;
    pthread_t th[4];
    void *kept[4];
    win0();
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, thread_body, NULL) == 0, "pthread_create");
    for (int i = 0; i < 4; i++)
        CHECK(pthread_join(th[i], &kept[i]) == 0 && kept[i] != (void *)-1, "pthread_join");
    win1();
    show("four threads each kept one", id);
    win0();
    for (int i = 0; i < 4; i++)
        CHECK(shmdt(kept[i]) == 0, "shmdt kept");
    win1();
    show("threads' attaches detached", id);

    /* IPC_RMID while attached, attaches after it, the last detach. */
    p1 = at(id, 0);
    p2 = at(id, 0);
    CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
    show("removed, two attached", id);
    p3 = at(id, 0);
    show("removed, attached again", id);
    dt(p1);
    dt(p3);
    show("removed, one left", id);
    dt(p2);
    show("removed, last detached", id);
    T("shmat after the last detach", (long)shmat(id, NULL, 0));

    /* uid 1000, its own segment. */
    CHECK(pipe(done) == 0, "pipe user");
    pid_t u = fork();
    CHECK(u >= 0, "fork user");
    if (u == 0) {
        CHECK(setgroups(0, NULL) == 0 && setgid(1000) == 0 && setuid(1000) == 0, "become 1000");
        sh->user = getpid();
        win0();
        int uid_seg = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        win1();
        CHECK(uid_seg >= 0, "shmget 1000");
        show_as("user", "created", uid_seg);
        void *a = at(uid_seg, 0);
        void *a2 = at(uid_seg, 0);
        show_as("user", "attached twice", uid_seg);
        dt(a);
        show_as("user", "detached one", uid_seg);
        struct shmid_ds ds;
        CHECK(shmctl(uid_seg, IPC_STAT, &ds) == 0, "stat");
        ds.shm_perm.mode = 0400;
        CHECK(shmctl(uid_seg, IPC_SET, &ds) == 0, "IPC_SET 0400");
        T("user 0400: shmat read-write", (long)shmat(uid_seg, NULL, 0));
        show_as("user", "refused read-write", uid_seg);
        a = at(uid_seg, SHM_RDONLY);
        show_as("user", "read-only attach", uid_seg);
        dt(a);
        dt(a2);
        show_as("user", "detached all", uid_seg);
        CHECK(shmctl(uid_seg, IPC_RMID, NULL) == 0, "rmid user");
        _exit(0);
    }
    CHECK(waitpid(u, &st, 0) == u && WIFEXITED(st) && WEXITSTATUS(st) == 0, "user");

    /* Root attaches, then drops to uid 1000 halfway. */
    int id2 = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id2 >= 0, "shmget 2");
    pid_t dr = fork();
    CHECK(dr >= 0, "fork dropper");
    if (dr == 0) {
        sh->user = getpid();
        void *a = at(id2, 0);
        void *a2 = at(id2, 0);
        dt(a2);
        show_as("dropper", "root attached", id2);
        CHECK(setgroups(0, NULL) == 0 && setgid(1000) == 0 && setuid(1000) == 0, "drop to 1000");
        T("uid 1000: shmat of root's 0600", (long)shmat(id2, NULL, 0));
        T("uid 1000: shmat read-only", (long)shmat(id2, NULL, SHM_RDONLY));
        T("uid 1000: IPC_STAT", shmctl(id2, IPC_STAT, &(struct shmid_ds){0}));
        dt(a);
        T("uid 1000: shmdt again", shmdt(a));
        _exit(0);
    }
    CHECK(waitpid(dr, &st, 0) == dr && WIFEXITED(st) && WEXITSTATUS(st) == 0, "dropper");
    show("after the dropper", id2);
    CHECK(shmctl(id2, IPC_RMID, NULL) == 0, "rmid 2");
    close(to_reader[1]);
    CHECK(waitpid(rd, &st, 0) == rd && WIFEXITED(st) && WEXITSTATUS(st) == 0, "reader");
    printf("ok\n");
    return 0;
}
