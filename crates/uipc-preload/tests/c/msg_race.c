/* msgsnd/msgrcv racing IPC_RMID and the IPC_SET that takes the racers'
 * permission away. Each racer sends a message of its own type and
 * receives it back, over and over (with IPC_NOWAIT or without: neither
 * ever has to wait), checking that what it receives is what it sent.
 *
 * IPC_RMID: every call returns 0, EIDRM or EINVAL, the call after a
 * failure EINVAL. IPC_SET (racers run as nobody): root stores a flag after IPC_SET
 * returned; a call begun after the racer saw it must fail with EACCES,
 * and no call succeeds after an EACCES — 0666 -> 0644 takes msgsnd away
 * (msgrcv stays allowed), 0666 -> 0600 both. */
#include "msgcommon.h"

enum { NOWAIT, NOWAIT2, BLOCK, BLOCK2, NRACERS };
static const char *const names[NRACERS] = { "IPC_NOWAIT", "IPC_NOWAIT (2)", "blocking", "blocking (2)" };
#define MIN_OPS 64
#define AFTER 3

struct shared {
    int revoked;
    long ops[NRACERS];
    int first[NRACERS], second[NRACERS];
};
static struct shared *sh;

/* Racer k's send (i even) or receive (i odd) of message i / 2: 0 or the errno. */
static int one_call(int id, int k, long i) {
    int flg = k == NOWAIT || k == NOWAIT2 ? IPC_NOWAIT : 0;
    struct mbuf m = { k + 1, { 0 } };
    if (i % 2 == 0) {
        snprintf(m.text, sizeof m.text, "%d:%ld", k, i / 2);
        return msgsnd(id, &m, strlen(m.text) + 1, flg) == 0 ? 0 : errno;
    }
    ssize_t n = msgrcv(id, &m, sizeof m.text, k + 1, flg);
    if (n < 0)
        return errno;
    char want[64];
    snprintf(want, sizeof want, "%d:%ld", k, i / 2);
    CHECK(m.mtype == k + 1 && strcmp(m.text, want) == 0, "%s received %ld '%s', sent '%s'", names[k], m.mtype, m.text,
          want);
    return 0;
}

static void race_rmid(int id, int k) {
    watchdog(30);
    long i = 0;
    int e;
    while ((e = one_call(id, k, i)) == 0) {
        i++;
        __atomic_store_n(&sh->ops[k], sh->ops[k] + 1, __ATOMIC_SEQ_CST);
    }
    sh->first[k] = e;
    sh->second[k] = one_call(id, k, i);
    CHECK(e == EIDRM || e == EINVAL, "%s: first failure %s", names[k], ename(e));
    CHECK(sh->second[k] == EINVAL, "%s: call after %s: %s", names[k], ename(e), ename(sh->second[k]));
    _exit(0);
}

static void rmid_round(int *eidrm, int *einval) {
    memset(sh, 0, sizeof *sh);
    int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(id >= 0, "msgget");
    pid_t pids[NRACERS];
    for (int k = 0; k < NRACERS; k++) {
        pids[k] = fork();
        CHECK(pids[k] >= 0, "fork");
        if (pids[k] == 0)
            race_rmid(id, k);
    }
    for (int k = 0; k < NRACERS; k++)
        await_at_least(&sh->ops[k], MIN_OPS);
    CHECK(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
    for (int k = 0; k < NRACERS; k++)
        reap_ok(pids[k], names[k]);
    for (int k = 0; k < NRACERS; k++) {
        *eidrm += sh->first[k] == EIDRM;
        *einval += sh->first[k] == EINVAL;
    }
}

/* Racer k as nobody until it saw the flag and was refused AFTER times;
 * `read_kept`: the change leaves msgrcv allowed. A refused call is tried
 * again (a refused msgrcv's message stays queued for it). */
static void race_set(int id, int k, int read_kept) {
    watchdog(30);
    become_nobody();
    int after = 0, denied = 0;
    long i = 0;
    while (after < AFTER) {
        int seen = __atomic_load_n(&sh->revoked, __ATOMIC_SEQ_CST);
        int send = i % 2 == 0;
        int e = one_call(id, k, i);
        if (e == 0) {
            CHECK(!seen || (!send && read_kept), "%s: %s succeeded after IPC_SET had returned", names[k],
                  send ? "msgsnd" : "msgrcv");
            CHECK(!denied, "%s: a success after an EACCES", names[k]);
            __atomic_store_n(&sh->ops[k], sh->ops[k] + 1, __ATOMIC_SEQ_CST);
            i++;
            continue;
        }
        CHECK(e == EACCES, "%s: %s", names[k], ename(e));
        CHECK(send || !read_kept, "%s: msgrcv refused though read permission stayed", names[k]);
        denied = 1;
        after += seen;
    }
    _exit(0);
}

/* Racers as nobody on a 0666 queue; root revokes to `mode`. */
static void set_phase(unsigned short mode, int read_kept) {
    memset(sh, 0, sizeof *sh);
    int id = msgget(IPC_PRIVATE, IPC_CREAT | 0666);
    CHECK(id >= 0, "msgget");
    pid_t pids[NRACERS];
    for (int k = 0; k < NRACERS; k++) {
        pids[k] = fork();
        CHECK(pids[k] >= 0, "fork");
        if (pids[k] == 0)
            race_set(id, k, read_kept);
    }
    for (int k = 0; k < NRACERS; k++)
        await_at_least(&sh->ops[k], MIN_OPS);
    struct msqid_ds ds;
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    ds.msg_perm.mode = mode;
    CHECK(msgctl(id, IPC_SET, &ds) == 0, "set");
    __atomic_store_n(&sh->revoked, 1, __ATOMIC_SEQ_CST);
    for (int k = 0; k < NRACERS; k++)
        reap_ok(pids[k], names[k]);
    printf("0666 -> %04o: racers as nobody get EACCES for every call begun after IPC_SET returned (%s), never a success "
           "after one\n", mode, read_kept ? "msgsnd; msgrcv stays allowed" : "msgsnd and msgrcv");
    CHECK(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    sh = shared_alloc(sizeof *sh);
    int eidrm = 0, einval = 0;
    for (int r = 0; r < 8; r++)
        rmid_round(&eidrm, &einval);
    fprintf(stderr, "racers' first failure: EIDRM %d, EINVAL %d\n", eidrm, einval);
    printf("8 rounds of %d racers against IPC_RMID: only 0, EIDRM or EINVAL, EINVAL after a failure (%d ended)\n", NRACERS,
           eidrm + einval);
    set_phase(0644, 1);
    set_phase(0600, 0);
    printf("ok\n");
    return 0;
}
