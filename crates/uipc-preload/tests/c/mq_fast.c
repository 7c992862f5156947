/* POSIX message queues' sends and receives that do not sleep (under the
 * shim they run in the caller, on the queue's state page), run natively
 * (in a fresh IPC namespace) and under the shim: every line printed must
 * be the same. Forked senders and receivers and threads, with counts and
 * checksums; readiness and mq_curmsgs seen by another process right after
 * each call; mq_notify fired by a send to the empty queue; the access
 * mode and O_NONBLOCK of each description (one changed by another
 * process); uid 1000 with and without write permission; processes
 * SIGKILLed while sending and receiving. */
#include "mqcommon.h"
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SENDS 3000

struct msg { int sender, seq; unsigned check; char pad[20]; };

static unsigned mix(int sender, int seq) { return (unsigned)sender * 2654435761u ^ (unsigned)seq * 40503u; }

static void send_all(mqd_t q, int sender) {
    for (int i = 0; i < SENDS; i++) {
        struct msg m = { sender, i, mix(sender, i), { 0 } };
        CHECK(mq_send(q, (char *)&m, sizeof m, (unsigned)(i % 4) + 1) == 0, "mq_send: %s", strerror(errno));
    }
}

static void *thread_sender(void *arg) {
    int sender = (int)(long)arg;
    mqd_t q = mq_open("/fast", O_WRONLY);
    CHECK(q >= 0, "thread mq_open: %s", strerror(errno));
    send_all(q, sender);
    mq_close(q);
    return NULL;
}

/* Three senders (two processes, two threads of a third) and two receiving
 * processes; the receivers stop at a priority-0 message, sent after every
 * other: the totals and checksums must be the senders'. */
static void counts(void) {
    struct mq_attr a = { 0, 10, sizeof(struct msg), 0, {0} };
    mqd_t q = mq_open("/fast", O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    CHECK(q >= 0, "mq_open: %s", strerror(errno));
    int res[2];
    CHECK(pipe(res) == 0, "pipe");
    pid_t recv[2], send[3];
    for (int r = 0; r < 2; r++) {
        recv[r] = fork();
        if (recv[r] == 0) {
            mqd_t rq = mq_open("/fast", r == 0 ? O_RDONLY : O_RDWR);
            CHECK(rq >= 0, "receiver mq_open");
            unsigned long long n = 0, sum = 0, bad = 0;
            for (;;) {
                struct msg m;
                unsigned prio;
                ssize_t len = mq_receive(rq, (char *)&m, sizeof m, &prio);
                CHECK(len == sizeof m, "mq_receive: %s", strerror(errno));
                if (prio == 0) break;
                if (m.check != mix(m.sender, m.seq) || prio != (unsigned)(m.seq % 4) + 1) bad++;
                n++;
                sum += m.check;
            }
            unsigned long long out[3] = { n, sum, bad };
            CHECK(write(res[1], out, sizeof out) == sizeof out, "write");
            _exit(0);
        }
    }
    for (int s = 0; s < 3; s++) {
        send[s] = fork();
        if (send[s] == 0) {
            if (s < 2) {
                send_all(q, s);
            } else {
                pthread_t t[2];
                for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, thread_sender, (void *)(long)(10 + i)) == 0, "pthread_create");
                for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
            }
            _exit(0);
        }
    }
    int st, ok = 1;
    for (int s = 0; s < 3; s++) { waitpid(send[s], &st, 0); ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0; }
    struct msg stop = { -1, 0, 0, { 0 } };
    for (int r = 0; r < 2; r++) CHECK(mq_send(q, (char *)&stop, sizeof stop, 0) == 0, "stop");
    unsigned long long n = 0, sum = 0, bad = 0;
    for (int r = 0; r < 2; r++) {
        unsigned long long in[3];
        CHECK(read(res[0], in, sizeof in) == sizeof in, "read result");
        n += in[0]; sum += in[1]; bad += in[2];
        waitpid(recv[r], &st, 0);
        ok &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    unsigned long long want = 0;
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < SENDS; i++) want += mix(s < 2 ? s : 8 + s, i);
    printf("counts: senders ok %d, received %llu, checksum %s, bad %llu\n", ok, n, sum == want ? "right" : "WRONG", bad);
    struct mq_attr now;
    CHECK(mq_getattr(q, &now) == 0, "getattr");
    struct pollfd p = { q, POLLIN | POLLOUT, 0 };
    poll(&p, 1, 0);
    printf("counts: curmsgs %ld, poll %#x\n", now.mq_curmsgs, p.revents);
    close(res[0]); close(res[1]);
    mq_close(q);
    mq_unlink("/fast");
}

/* What another process's description shows after each of this one's calls. */
static int to_child[2], to_parent[2];

static void show_other(const char *what) {
    CHECK(write(to_child[1], what, 32) == 32, "command");
    char line[96];
    CHECK(read(to_parent[0], line, sizeof line) == sizeof line, "answer");
    printf("%s: %s\n", what, line);
}

static void observer(void) {
    close(to_child[1]);
    mqd_t q = mq_open("/seen", O_RDONLY | O_NONBLOCK);
    CHECK(q >= 0, "observer mq_open");
    for (;;) {
        char what[32];
        if (read(to_child[0], what, sizeof what) != sizeof what) _exit(0);
        struct pollfd p = { q, POLLIN | POLLOUT, 0 };
        CHECK(poll(&p, 1, 0) >= 0, "poll");
        struct mq_attr a;
        CHECK(mq_getattr(q, &a) == 0, "getattr");
        char line[96] = { 0 };
        snprintf(line, sizeof line, "other's poll%s%s, curmsgs %ld", p.revents & POLLIN ? " IN" : "",
                 p.revents & POLLOUT ? " OUT" : "", a.mq_curmsgs);
        CHECK(write(to_parent[1], line, sizeof line) == sizeof line, "answer");
    }
}

static void readiness(void) {
    struct mq_attr a = { 0, 3, 16, 0, {0} };
    mqd_t q = mq_open("/seen", O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    CHECK(q >= 0 && pipe(to_child) == 0 && pipe(to_parent) == 0, "setup");
    pid_t p = fork();
    if (p == 0) observer();
    show_other("start");
    char buf[16] = "x";
    for (int i = 0; i < 4; i++) {
        char what[32];
        snprintf(what, sizeof what, "send %d", i + 1);
        errno = 0;
        struct timespec soon = { 0, 0 };
        int r = mq_timedsend(q, buf, 1, 0, &soon);
        printf("%s -> %d %s\n", what, r, r ? ename(errno) : "0");
        show_other(what);
    }
    for (int i = 0; i < 4; i++) {
        char what[32];
        snprintf(what, sizeof what, "receive %d", i + 1);
        struct timespec soon = { 0, 0 };
        ssize_t r = mq_timedreceive(q, buf, sizeof buf, NULL, &soon);
        printf("%s -> %zd %s\n", what, r, r < 0 ? ename(errno) : "0");
        show_other(what);
    }
    close(to_child[1]);
    int st;
    waitpid(p, &st, 0);
    close(to_child[0]); close(to_parent[0]); close(to_parent[1]);
    mq_close(q);
    mq_unlink("/seen");
}

/* A registration makes the send to the empty queue fire it, whoever sends
 * (a process that sent and received before, or the registered one). */
static void notify(void) {
    struct mq_attr a = { 0, 4, 16, 0, {0} };
    mqd_t q = mq_open("/notify", O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    CHECK(q >= 0, "mq_open");
    char buf[16];
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL);
    for (int round = 0; round < 2; round++) {
        /* Warm: this process's calls run on the page before registering. */
        CHECK(mq_send(q, "w", 1, 0) == 0 && mq_receive(q, buf, sizeof buf, NULL) == 1, "warm");
        struct sigevent ev = { 0 };
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = SIGUSR1;
        ev.sigev_value.sival_int = 40 + round;
        SHOW("register", mq_notify(q, &ev));
        pid_t sender = getpid();
        if (round == 0) {
            sender = fork();
            if (sender == 0) {
                /* This child too has sent before the registration. */
                _exit(mq_send(q, "n", 1, 3) == 0 && mq_send(q, "m", 1, 3) == 0 ? 0 : 1);
            }
            int st;
            waitpid(sender, &st, 0);
            printf("child sent: %d\n", WIFEXITED(st) && WEXITSTATUS(st) == 0);
        } else {
            SHOW("send to the empty queue", mq_send(q, "n", 1, 3));
            SHOW("send again", mq_send(q, "m", 1, 3));
        }
        siginfo_t si;
        struct timespec limit = { 30, 0 };
        int sig = sigtimedwait(&usr1, &si, &limit);
        printf("notified: sig %s, code SI_MESGQ %d, pid %s, value %d\n", sig == SIGUSR1 ? "SIGUSR1" : "none",
               si.si_code == SI_MESGQ, si.si_pid == sender ? "sender" : "other", si.si_value.sival_int);
        struct timespec none = { 0, 0 };
        printf("a second signal: %s\n", sigtimedwait(&usr1, &si, &none) == SIGUSR1 ? "yes" : "no");
        SHOW("register again (consumed)", mq_notify(q, &ev));
        SHOW("unregister", mq_notify(q, NULL));
        for (int i = 0; i < 2; i++) SHOW("receive", mq_receive(q, buf, sizeof buf, NULL));
    }
    mq_close(q);
    mq_unlink("/notify");
}

/* Each description's access mode and O_NONBLOCK, as mq_open and
 * mq_setattr (here by another process sharing it) left them. */
static void access_modes(void) {
    struct mq_attr a = { 0, 2, 16, 0, {0} };
    mqd_t rw = mq_open("/acc", O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    mqd_t r = mq_open("/acc", O_RDONLY);
    mqd_t w = mq_open("/acc", O_WRONLY | O_NONBLOCK);
    CHECK(rw >= 0 && r >= 0 && w >= 0, "mq_open");
    char buf[16];
    SHOW("send on O_RDONLY", mq_send(r, "a", 1, 0));
    SHOW("send on O_RDWR", mq_send(rw, "a", 1, 0));
    SHOW("receive on O_WRONLY", mq_receive(w, buf, sizeof buf, NULL));
    SHOW("receive short buffer", mq_receive(r, buf, 15, NULL));
    SHOW("send prio 32768", mq_send(w, "a", 1, 32768));
    SHOW("send 17 bytes", mq_send(w, "0123456789abcdefg", 17, 0));
    SHOW("send on O_WRONLY|O_NONBLOCK", mq_send(w, "b", 1, 0));
    SHOW("send full, O_NONBLOCK", mq_send(w, "c", 1, 0));
    struct timespec past = { 1, 0 };
    SHOW("timedsend full, past deadline", mq_timedsend(rw, "c", 1, 0, &past));
    struct timespec bad = { 0, 1000000000 };
    SHOW("timedsend full, bad deadline", mq_timedsend(rw, "c", 1, 0, &bad));
    SHOW("receive on O_RDONLY", mq_receive(r, buf, sizeof buf, NULL));
    SHOW("receive on O_RDWR", mq_receive(rw, buf, sizeof buf, NULL));
    /* Another process sets O_NONBLOCK on the shared O_RDONLY description. */
    pid_t p = fork();
    if (p == 0) {
        struct mq_attr nb = { O_NONBLOCK, 0, 0, 0, {0} };
        _exit(mq_setattr(r, &nb, NULL) == 0 ? 0 : 1);
    }
    int st;
    waitpid(p, &st, 0);
    SHOW("receive empty, O_NONBLOCK set by a child", mq_receive(r, buf, sizeof buf, NULL));
    SHOW("timedreceive empty, past deadline", mq_timedreceive(rw, buf, sizeof buf, NULL, &past));
    mq_close(rw); mq_close(r); mq_close(w);
    mq_unlink("/acc");
}

/* uid 1000: EACCES at mq_open without write permission; its O_RDONLY
 * description receives; with permission it sends and receives too. */
static void uid1000(void) {
    struct mq_attr a = { 0, 4, 16, 0, {0} };
    mode_t old = umask(0);
    mqd_t q = mq_open("/ro", O_CREAT | O_EXCL | O_RDWR, 0644, &a);
    mqd_t o = mq_open("/open", O_CREAT | O_EXCL | O_RDWR, 0666, &a);
    umask(old);
    CHECK(q >= 0 && o >= 0, "mq_open");
    CHECK(mq_send(q, "one", 3, 1) == 0 && mq_send(q, "two", 3, 2) == 0, "send");
    pid_t p = fork();
    if (p == 0) {
        CHECK(setgid(1000) == 0 && setuid(1000) == 0, "setuid");
        SHOW("uid 1000 open O_WRONLY", mq_open("/ro", O_WRONLY));
        SHOW("uid 1000 open O_RDWR", mq_open("/ro", O_RDWR));
        mqd_t r = mq_open("/ro", O_RDONLY);
        printf("uid 1000 open O_RDONLY -> %s\n", r >= 0 ? "ok" : ename(errno));
        char buf[16] = { 0 };
        unsigned prio = 0;
        SHOW("uid 1000 send on O_RDONLY", mq_send(r, "x", 1, 0));
        ssize_t n = mq_receive(r, buf, sizeof buf, &prio);
        printf("uid 1000 receive -> %zd '%s' prio %u\n", n, buf, prio);
        mqd_t rw = mq_open("/open", O_RDWR);
        for (int i = 0; i < 3; i++) SHOW("uid 1000 send", mq_send(rw, "abc", 3, (unsigned)i));
        memset(buf, 0, sizeof buf);
        n = mq_receive(rw, buf, sizeof buf, &prio);
        printf("uid 1000 receive -> %zd '%s' prio %u\n", n, buf, prio);
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    struct mq_attr now;
    CHECK(mq_getattr(q, &now) == 0, "getattr");
    printf("after uid 1000: /ro curmsgs %ld\n", now.mq_curmsgs);
    CHECK(mq_getattr(o, &now) == 0, "getattr");
    printf("after uid 1000: /open curmsgs %ld\n", now.mq_curmsgs);
    mq_close(q); mq_close(o);
    mq_unlink("/ro"); mq_unlink("/open");
}

/* Processes killed at arbitrary points of their sends and receives (some
 * holding the queue's lock): the queue stays consistent — what the
 * survivor drains is what mq_getattr says it holds, each message whole. */
static void killed(void) {
    struct mq_attr a = { 0, 8, sizeof(struct msg), 0, {0} };
    mqd_t q = mq_open("/kill", O_CREAT | O_EXCL | O_RDWR | O_NONBLOCK, 0600, &a);
    CHECK(q >= 0, "mq_open");
    int whole = 1, agree = 1;
    for (int round = 0; round < 20; round++) {
        pid_t p = fork();
        if (p == 0) {
            for (int i = 0;; i++) {
                struct msg m = { round, i, mix(round, i), { 0 } };
                if (mq_send(q, (char *)&m, sizeof m, (unsigned)(i % 3)) != 0 && errno != EAGAIN) _exit(1);
                if (i % 3 == 2) {
                    struct msg x;
                    if (mq_receive(q, (char *)&x, sizeof x, NULL) < 0 && errno != EAGAIN) _exit(1);
                }
            }
        }
        /* Let it run a moment (any moment will do), then kill it. */
        for (int i = 0; i < 100 * (round + 1); i++) sched_yield();
        kill(p, SIGKILL);
        int st;
        waitpid(p, &st, 0);
        whole &= WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
        struct mq_attr now;
        CHECK(mq_getattr(q, &now) == 0, "getattr");
        long drained = 0;
        struct msg m;
        while (mq_receive(q, (char *)&m, sizeof m, NULL) == sizeof m) {
            drained++;
            whole &= m.check == mix(m.sender, m.seq);
        }
        agree &= errno == EAGAIN && drained == now.mq_curmsgs;
        struct pollfd pf = { q, POLLIN | POLLOUT, 0 };
        poll(&pf, 1, 0);
        agree &= pf.revents == POLLOUT;
    }
    printf("killed: messages whole %d, curmsgs agrees and the queue is writable only %d\n", whole, agree);
    mq_close(q);
    mq_unlink("/kill");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    watchdog(120);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        deny_kernel_ipc();
        deny_mq();
    }
    counts();
    readiness();
    notify();
    access_modes();
    uid1000();
    killed();
    printf("ok\n");
    return 0;
}
