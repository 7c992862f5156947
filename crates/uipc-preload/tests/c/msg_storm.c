/* A signal storm on blocking msgsnd/msgrcv: two senders send 3000 numbered
 * messages each through a queue of 64 bytes while two receivers take them,
 * and the parent sends SIGUSR1 (a handler without SA_RESTART) to all four
 * the whole time. A call interrupted with EINTR is retried. Afterwards
 * every message sent was received exactly once (MSG-SND-6, MSG-RCV-4: an
 * interrupted call never loses nor duplicates a message). */
#include "msgcommon.h"
#include <sys/wait.h>

#define PER_SENDER 3000
#define SENDERS 2
#define RECEIVERS 2

static void on_usr1(int s) { (void)s; }

int main(int argc, char **argv) {
    setup(argc, argv);
    struct sigaction sa = { 0 };
    sa.sa_handler = on_usr1;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    int id = msgget(IPC_PRIVATE, 0600);
    CHECK(id >= 0, "msgget");
    struct msqid_ds ds;
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    ds.msg_qbytes = 64;
    CHECK(msgctl(id, IPC_SET, &ds) == 0, "set");
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe");
    pid_t kids[SENDERS + RECEIVERS];
    for (int s = 0; s < SENDERS; s++) {
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            for (int i = 0; i < PER_SENDER; i++) {
                struct mbuf m = { 1 + s, "" };
                int n = s * PER_SENDER + i;
                memcpy(m.text, &n, sizeof n);
                while (msgsnd(id, &m, 8, 0) != 0)
                    CHECK(errno == EINTR, "msgsnd: %s", strerror(errno));
            }
            _exit(0);
        }
        kids[s] = p;
    }
    for (int r = 0; r < RECEIVERS; r++) {
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            close(fds[0]);
            for (;;) {
                struct mbuf m;
                ssize_t got = msgrcv(id, &m, sizeof m.text, 0, 0);
                if (got < 0 && errno == EINTR)
                    continue;
                if (got < 0 && (errno == EIDRM || errno == EINVAL))
                    _exit(0);
                CHECK(got == 8, "msgrcv: %zd %s", got, strerror(errno));
                int n;
                memcpy(&n, m.text, sizeof n);
                CHECK(write(fds[1], &n, sizeof n) == sizeof n, "write");
            }
        }
        kids[SENDERS + r] = p;
    }
    close(fds[1]);
    static unsigned char seen[SENDERS * PER_SENDER];
    int total = 0, dup = 0, sent_done = 0;
    /* Storm while the messages flow: a burst of signals per message read. */
    for (;;) {
        for (int k = 0; k < SENDERS + RECEIVERS; k++)
            kill(kids[k], SIGUSR1);
        if (!sent_done && total >= SENDERS * PER_SENDER - 200) {
            for (int s = 0; s < SENDERS; s++)
                CHECK(waitpid(kids[s], NULL, 0) == kids[s], "wait sender");
            sent_done = 1;
        }
        if (total == SENDERS * PER_SENDER)
            break;
        int n;
        ssize_t r = read(fds[0], &n, sizeof n);
        if (r < 0 && errno == EINTR)
            continue;
        CHECK(r == sizeof n && n >= 0 && n < SENDERS * PER_SENDER, "read %zd", r);
        if (seen[n]++)
            dup++;
        total++;
    }
    if (!sent_done)
        for (int s = 0; s < SENDERS; s++)
            waitpid(kids[s], NULL, 0);
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    printf("received %d of %d, duplicates %d, left in queue %lu\n", total, SENDERS * PER_SENDER, dup,
           (unsigned long)ds.msg_qnum);
    CHECK(msgctl(id, IPC_RMID, NULL) == 0, "rmid");
    for (int r = 0; r < RECEIVERS; r++)
        CHECK(waitpid(kids[SENDERS + r], NULL, 0) == kids[SENDERS + r], "wait receiver");
    int n;
    printf("extra messages after the count: %s\n", read(fds[0], &n, sizeof n) == 0 ? "none" : "some");
    printf("ok\n");
    return 0;
}
