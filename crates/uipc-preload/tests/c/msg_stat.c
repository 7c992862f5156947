/* msgctl(IPC_STAT / MSG_STAT / MSG_STAT_ANY) as queues change: under the
 * shim, a caller that asked once reads later answers of a queue no
 * process uses through its page from the namespace's status region, and
 * every other answer from the daemon — exactly what the kernel shows, as
 * root and as uid 1000 (EACCES for MSG_STAT of a queue it may not read,
 * none for MSG_STAT_ANY), after sends and receives, IPC_SET, IPC_RMID, in
 * a forked child, and while another process sends and receives in a loop
 * (every answer one consistent snapshot: with 16-byte messages, cbytes is
 * 16 times qnum). Pids print as names, times as "set"/"0". */
#include "msgcommon.h"

static pid_t parent_pid;

static const char *pname(pid_t p) { return p == 0 ? "0" : p == parent_pid ? "parent" : "other"; }

static void show(const char *what, int id, int cmd) {
    struct msqid_ds ds;
    memset(&ds, 0x55, sizeof ds);
    errno = 0;
    int r = msgctl(id, cmd, &ds);
    const char *c = cmd == IPC_STAT ? "IPC_STAT" : cmd == MSG_STAT ? "MSG_STAT" : "MSG_STAT_ANY";
    if (r < 0) {
        printf("%-28s %-12s -> -1 %s\n", what, c, ename(errno));
        return;
    }
    printf("%-28s %-12s -> %d uid %u gid %u cuid %u cgid %u lspid %s lrpid %s ", what, c, r, ds.msg_perm.uid,
           ds.msg_perm.gid, ds.msg_perm.cuid, ds.msg_perm.cgid, pname(ds.msg_lspid), pname(ds.msg_lrpid));
    show_ds("", &ds);
}

static void all(const char *what, int id) {
    for (int pass = 0; pass < 2; pass++) {
        show(what, id, IPC_STAT);
        show(what, id % 32768, MSG_STAT);
        show(what, id % 32768, MSG_STAT_ANY);
    }
}

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
    parent_pid = getpid();
    int a = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    int b = msgget(0x3e5, IPC_CREAT | 0644);
    CHECK(a >= 0 && b >= 0, "msgget");
    all("new", a);
    all("new keyed", b);
    as_user("uid 1000, 0600", a);
    as_user("uid 1000, 0644", b);

    struct mbuf m = { 1, "0123456789abcdef" };
    CHECK(msgsnd(a, &m, 16, 0) == 0 && msgsnd(a, &m, 16, 0) == 0, "msgsnd");
    all("two sent", a);
    CHECK(msgrcv(a, &m, sizeof m.text, 0, 0) == 16, "msgrcv");
    all("one received", a);
    struct msqid_ds ds;
    CHECK(msgctl(a, IPC_STAT, &ds) == 0, "IPC_STAT");
    ds.msg_perm.mode = 0604;
    ds.msg_qbytes = 4000;
    CHECK(msgctl(a, IPC_SET, &ds) == 0, "IPC_SET");
    all("after IPC_SET", a);
    as_user("uid 1000, 0604", a);

    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        all("child", a);
        CHECK(msgsnd(a, &m, 16, 0) == 0, "child msgsnd");
        all("child, after its send", a);
        _exit(0);
    }
    reap_ok(c, "child");
    all("after the child's send", a);

    /* Another process sends and receives in a loop while this one reads. */
    volatile int *stop = shared_alloc(sizeof(int));
    volatile int *rounds = shared_alloc(sizeof(int));
    c = fork();
    CHECK(c >= 0, "fork looper");
    if (c == 0) {
        struct mbuf x = { 2, "fedcba9876543210" };
        while (!*stop) {
            CHECK(msgsnd(a, &x, 16, 0) == 0, "loop msgsnd");
            CHECK(msgsnd(a, &x, 16, 0) == 0, "loop msgsnd");
            CHECK(msgrcv(a, &x, sizeof x.text, 2, 0) == 16, "loop msgrcv");
            CHECK(msgrcv(a, &x, sizeof x.text, 2, 0) == 16, "loop msgrcv");
            __atomic_fetch_add(rounds, 1, __ATOMIC_SEQ_CST);
        }
        _exit(0);
    }
    /* The looper has sent and received at least once (lspid and lrpid
     * are its own after the loop, whatever the scheduler did). */
    while (__atomic_load_n(rounds, __ATOMIC_SEQ_CST) == 0)
        sched_yield();
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        int cmd = i % 3 == 0 ? IPC_STAT : i % 3 == 1 ? MSG_STAT : MSG_STAT_ANY;
        int r = msgctl(cmd == IPC_STAT ? a : a % 32768, cmd, &ds);
        if (r != (cmd == IPC_STAT ? 0 : a) || ds.__msg_cbytes != 16 * ds.msg_qnum || ds.msg_qnum < 2 ||
            ds.msg_qnum > 4 || ds.msg_qbytes != 4000)
            bad++;
    }
    *stop = 1;
    reap_ok(c, "looper");
    printf("concurrent reads: %d inconsistent\n", bad);
    all("after the loop", a);

    CHECK(msgctl(b, IPC_RMID, NULL) == 0, "rmid b");
    all("b removed", b);
    int b2 = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(b2 >= 0, "msgget again");
    all("new queue", b2);
    show("the old id", b, IPC_STAT);
    CHECK(msgctl(a, IPC_RMID, NULL) == 0 && msgctl(b2, IPC_RMID, NULL) == 0, "cleanup");
    all("all removed", a);

    a = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(a >= 0, "msgget before unshare");
    all("before unshare", a);
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
    all("after unshare", a);
    printf("ok\n");
    return 0;
}
