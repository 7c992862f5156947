/* Message queues' fast path (sends and receives in the caller, on the
 * queue's state page) against the daemon's control calls, and the checked
 * copies of the caller's buffers.
 *
 * 1. IPC_SET racing: two racers running as nobody alternate msgsnd and
 *    msgrcv (IPC_NOWAIT) on a 0666 queue; root changes the mode to 0600
 *    and then stores a flag in shared memory. A racer reads the flag
 *    before each call: a call begun after it saw the flag must fail with
 *    EACCES, and after a racer's first EACCES nothing of its succeeds.
 * 2. IPC_RMID racing: root's racers do the same; root removes the queue,
 *    then stores the flag: calls begun after it fail with EINVAL.
 * 3. A buffer that served a msgsnd and was then unmapped gives EFAULT; one
 *    that received and was then made read-only gives EFAULT on the next
 *    receive, and that message is lost, as the kernel loses it. */
#include "msgcommon.h"
#include <sys/mman.h>

#define RACERS 2
#define MIN_OPS 200
#define AFTER 3

struct shared {
    int flag;
    long ops[RACERS];
    int after_err[RACERS];   /* errno of the calls after the flag (all alike) */
    int bad[RACERS];         /* a success after a failure, or mixed errnos */
};

static struct shared *sh;

/* Racer r: alternates a send and a receive until AFTER calls past the flag. */
static void racer(int id, int r) {
    watchdog(60);
    int failed = 0, after = 0;
    for (long i = 0;; i++) {
        int seen = __atomic_load_n(&sh->flag, __ATOMIC_ACQUIRE);
        struct mbuf m = { 1 + r, "" };
        memcpy(m.text, &i, sizeof i);
        int rc = (i % 2 == 0) ? msgsnd(id, &m, 8, IPC_NOWAIT)
                              : (msgrcv(id, &m, sizeof m.text, 1 + r, IPC_NOWAIT) < 0 ? -1 : 0);
        int e = rc == 0 ? 0 : errno;
        if (rc == 0) {
            if (failed)
                sh->bad[r] = 1;
            __atomic_add_fetch(&sh->ops[r], 1, __ATOMIC_RELEASE);
        } else if (e != EAGAIN && e != ENOMSG) {
            failed = 1;
        }
        if (seen) {
            if (rc == 0)
                sh->bad[r] = 1;
            else if (sh->after_err[r] == 0)
                sh->after_err[r] = e;
            else if (sh->after_err[r] != e)
                sh->bad[r] = 1;
            if (++after == AFTER)
                _exit(0);
        }
    }
}

static void race(const char *phase, int as_nobody, int revoke) {
    memset(sh, 0, sizeof *sh);
    int id = msgget(IPC_PRIVATE, 0666);
    CHECK(id >= 0, "msgget");
    pid_t kids[RACERS];
    for (int r = 0; r < RACERS; r++) {
        kids[r] = fork();
        CHECK(kids[r] >= 0, "fork");
        if (kids[r] == 0) {
            if (as_nobody)
                CHECK(setgid(65534) == 0 && setuid(65534) == 0, "setuid");
            racer(id, r);
        }
    }
    for (int r = 0; r < RACERS; r++)
        while (__atomic_load_n(&sh->ops[r], __ATOMIC_ACQUIRE) < MIN_OPS)
            sched_yield();
    if (revoke) {
        struct msqid_ds ds;
        CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
        ds.msg_perm.mode = 0600;
        CHECK(msgctl(id, IPC_SET, &ds) == 0, "set");
    } else {
        CHECK(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
    }
    __atomic_store_n(&sh->flag, 1, __ATOMIC_RELEASE);
    for (int r = 0; r < RACERS; r++) {
        int st;
        CHECK(waitpid(kids[r], &st, 0) == kids[r] && WIFEXITED(st) && WEXITSTATUS(st) == 0, "racer");
        printf("%s: racer %d: after the change %s%s\n", phase, r, strerror(sh->after_err[r]),
               sh->bad[r] ? ", BUT A CALL SUCCEEDED AFTER A FAILURE OR ERRNOS DIFFERED" : "");
    }
    if (revoke)
        CHECK(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(120);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED, "mmap");
    setvbuf(stdout, NULL, _IONBF, 0);
    if (geteuid() == 0)
        race("IPC_SET", 1, 1);
    else
        printf("IPC_SET: skipped (not root)\n");
    race("IPC_RMID", 0, 0);

    int id = msgget(IPC_PRIVATE, 0600);
    CHECK(id >= 0, "msgget");
    long page = sysconf(_SC_PAGESIZE);
    struct mbuf *b = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(b != MAP_FAILED, "mmap");
    b->mtype = 3;
    strcpy(b->text, "abc");
    for (int i = 0; i < 3; i++)
        printf("send from a mapped buffer: %d\n", msgsnd(id, b, 4, IPC_NOWAIT));
    CHECK(munmap(b, (size_t)page) == 0, "munmap");
    int rc = msgsnd(id, b, 4, IPC_NOWAIT);
    printf("send from it unmapped: %d %s\n", rc, rc ? strerror(errno) : "");
    struct mbuf *c = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(c != MAP_FAILED, "mmap");
    ssize_t got = msgrcv(id, c, sizeof c->text, 0, IPC_NOWAIT);
    printf("receive into a mapped buffer: %zd %ld %s\n", got, c->mtype, c->text);
    CHECK(mprotect(c, (size_t)page, PROT_READ) == 0, "mprotect");
    got = msgrcv(id, c, sizeof c->text, 0, IPC_NOWAIT);
    printf("receive into it read-only: %zd %s\n", got, got < 0 ? strerror(errno) : "");
    struct msqid_ds ds;
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    show_ds("after the faults", &ds);
    CHECK(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
    printf("ok\n");
    return 0;
}
