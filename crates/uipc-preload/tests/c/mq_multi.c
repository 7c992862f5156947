/* POSIX message queues across processes, natively and under the shim
 * (the outputs must be the same): an epoll loop over three queues and a
 * pipe sees the same readiness after every step; senders blocked on a
 * full queue are served in the order they slept; a notification fires in
 * another process with the kernel's siginfo; and under a storm of signals
 * (handlers without SA_RESTART, so calls fail with EINTR and are retried)
 * every message sent is received exactly once. */
#include "mqcommon.h"
#include <sys/epoll.h>

static int ep, pipefd[2];
static mqd_t qs[3];

static void show_epoll(const char *step) {
    struct epoll_event ev[8];
    int n = epoll_wait(ep, ev, 8, 0);
    CHECK(n >= 0, "epoll_wait");
    char line[128] = "";
    /* Report by tag, in tag order, whatever order epoll gave. */
    for (int tag = 0; tag < 4; tag++)
        for (int i = 0; i < n; i++)
            if ((int)ev[i].data.u32 == tag) {
                char one[32];
                snprintf(one, sizeof one, " %s:%s%s", tag == 3 ? "pipe" : tag == 0 ? "q0" : tag == 1 ? "q1" : "q2",
                         ev[i].events & EPOLLIN ? "R" : "", ev[i].events & EPOLLOUT ? "W" : "");
                strcat(line, one);
            }
    printf("%-28s%s\n", step, line);
}

static void epoll_loop(void) {
    struct mq_attr a = { 0, 2, 16, 0, {0} };
    char buf[16];
    ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1");
    CHECK(pipe(pipefd) == 0, "pipe");
    const char *names[3] = { "/ep0", "/ep1", "/ep2" };
    for (int i = 0; i < 3; i++) {
        qs[i] = mq_open(names[i], O_CREAT | O_RDWR, 0600, &a);
        CHECK(qs[i] >= 0, "mq_open");
        struct epoll_event ev = { EPOLLIN | EPOLLOUT, { .u32 = (uint32_t)i } };
        CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, qs[i], &ev) == 0, "epoll_ctl");
    }
    struct epoll_event pev = { EPOLLIN, { .u32 = 3 } };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &pev) == 0, "epoll_ctl pipe");
    show_epoll("start");
    CHECK(mq_send(qs[0], "a", 1, 0) == 0, "send");
    show_epoll("q0 +1");
    CHECK(write(pipefd[1], "x", 1) == 1, "write pipe");
    show_epoll("pipe +1");
    CHECK(mq_send(qs[1], "b", 1, 0) == 0 && mq_send(qs[1], "c", 1, 0) == 0, "fill");
    show_epoll("q1 full");
    /* Another process receives from q1: readiness follows. */
    pid_t p = fork();
    if (p == 0) _exit(mq_receive(qs[1], buf, sizeof buf, NULL) == 1 ? 0 : 1);
    int st;
    waitpid(p, &st, 0);
    show_epoll("q1 -1 by a child");
    CHECK(mq_receive(qs[0], buf, sizeof buf, NULL) == 1, "receive");
    show_epoll("q0 -1");
    CHECK(read(pipefd[0], buf, 1) == 1, "read pipe");
    show_epoll("pipe -1");
    /* A queue closed is gone from the set; a dup keeps the description. */
    int d = dup(qs[2]);
    CHECK(mq_send(d, "z", 1, 0) == 0, "send on dup");
    show_epoll("q2 +1 through a dup");
    close(d);
    CHECK(mq_receive(qs[1], buf, sizeof buf, NULL) == 1, "receive");
    show_epoll("q1 empty");
    for (int i = 0; i < 3; i++) {
        close(qs[i]);
        mq_unlink(names[i]);
    }
    close(ep);
    close(pipefd[0]);
    close(pipefd[1]);
}

/* A child that has made its first call on the queue (under the shim, the
 * one that fetches its grant, itself a sleep on the daemon's answer) says
 * so on `go[1]` before the call whose sleep orders it. */
static void started(int go[2]) {
    CHECK(write(go[1], "", 1) == 1, "write go");
}

/* The child `pid` has said it started and now sleeps in its call. */
static void await_started(int go[2], pid_t pid) {
    char c;
    CHECK(read(go[0], &c, 1) == 1, "read go");
    await_sleeping(pid);
}

static void ordered_senders(void) {
    struct mq_attr a = { 0, 1, 8, 0, {0} };
    const struct timespec past = { 0, 0 };
    int go[2];
    CHECK(pipe(go) == 0, "pipe");
    mqd_t q = mq_open("/order", O_CREAT | O_RDWR, 0600, &a);
    CHECK(q >= 0, "open");
    CHECK(mq_send(q, "0", 1, 0) == 0, "send");
    pid_t kids[3];
    for (int i = 0; i < 3; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char m[2] = { (char)('1' + i), 0 };
            CHECK(mq_timedsend(q, m, 1, 0, &past) == -1 && errno == ETIMEDOUT, "timedsend on a full queue");
            started(go);
            _exit(mq_send(q, m, 1, 0) == 0 ? 0 : 1);
        }
        await_started(go, kids[i]);
    }
    char order[8] = "";
    for (int i = 0; i < 4; i++) {
        char b[8] = { 0 };
        CHECK(mq_receive(q, b, sizeof b, NULL) == 1, "receive");
        strcat(order, b);
    }
    for (int i = 0; i < 3; i++) {
        int st;
        waitpid(kids[i], &st, 0);
    }
    printf("blocked senders served in order: %s\n", order);
    /* Receivers likewise. */
    for (int i = 0; i < 3; i++) {
        kids[i] = fork();
        if (kids[i] == 0) {
            char b[8] = { 0 };
            CHECK(mq_timedreceive(q, b, sizeof b, NULL, &past) == -1 && errno == ETIMEDOUT,
                  "timedreceive on an empty queue");
            started(go);
            CHECK(mq_receive(q, b, sizeof b, NULL) == 1, "receive");
            _exit(b[0] - '0');
        }
        await_started(go, kids[i]);
    }
    for (int i = 0; i < 3; i++) {
        char m[2] = { (char)('4' + i), 0 };
        CHECK(mq_send(q, m, 1, 0) == 0, "send");
    }
    printf("receivers got:");
    for (int i = 0; i < 3; i++) {
        int st;
        waitpid(kids[i], &st, 0);
        printf(" %d", WEXITSTATUS(st));
    }
    printf("\n");
    close(q);
    close(go[0]);
    close(go[1]);
    mq_unlink("/order");
}

static void notify_other(void) {
    mqd_t q = mq_open("/other", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "open");
    int ready[2];
    CHECK(pipe(ready) == 0, "pipe");
    pid_t parent = getpid();
    pid_t p = fork();
    if (p == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGRTMIN + 1);
        sigprocmask(SIG_BLOCK, &set, NULL);
        struct sigevent ev = { 0 };
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = SIGRTMIN + 1;
        ev.sigev_value.sival_int = 99;
        CHECK(mq_notify(q, &ev) == 0, "notify");
        CHECK(write(ready[1], "r", 1) == 1, "ready");
        siginfo_t si;
        CHECK(sigwaitinfo(&set, &si) == SIGRTMIN + 1, "sigwaitinfo");
        int ok = si.si_code == SI_MESGQ && si.si_pid == parent && si.si_uid == getuid() && si.si_value.sival_int == 99;
        _exit(ok ? 0 : 1);
    }
    char c;
    CHECK(read(ready[0], &c, 1) == 1, "wait ready");
    /* The parent's close of its own descriptor does not drop the child's registration. */
    int d = dup(q);
    close(d);
    CHECK(mq_send(q, "n", 1, 0) == 0, "send");
    int st;
    waitpid(p, &st, 0);
    printf("notification in another process with SI_MESGQ, sender pid/uid, value: %d\n",
           WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(ready[0]);
    close(ready[1]);
    close(q);
    mq_unlink("/other");
}

static volatile sig_atomic_t stop_storm;
static void on_storm(int sig) { (void)sig; }

#define SENDERS 2
#define PER_SENDER 1500

static void storm(void) {
    struct sigaction sa = { 0 };
    sa.sa_handler = on_storm; /* no SA_RESTART: calls fail with EINTR */
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    struct mq_attr a = { 0, 4, 8, 0, {0} };
    mqd_t q = mq_open("/storm", O_CREAT | O_RDWR, 0600, &a);
    CHECK(q >= 0, "open");
    pid_t senders[SENDERS];
    for (int s = 0; s < SENDERS; s++) {
        senders[s] = fork();
        if (senders[s] == 0) {
            for (int i = 0; i < PER_SENDER; i++) {
                int v = s * PER_SENDER + i;
                while (mq_send(q, (char *)&v, sizeof v, 0) != 0)
                    CHECK(errno == EINTR, "send");
            }
            _exit(0);
        }
    }
    pid_t parent = getpid();
    pid_t stormer = fork();
    if (stormer == 0) {
        for (;;) {
            if (kill(parent, SIGUSR1) != 0) _exit(0);
            for (int s = 0; s < SENDERS; s++) kill(senders[s], SIGUSR1);
            sched_yield();
        }
    }
    static unsigned char seen[SENDERS * PER_SENDER];
    int dup_count = 0;
    for (int got = 0; got < SENDERS * PER_SENDER;) {
        int v;
        ssize_t n = mq_receive(q, (char *)&v, 8, NULL);
        if (n < 0) {
            CHECK(errno == EINTR, "receive");
            continue;
        }
        CHECK(n == sizeof v && v >= 0 && v < SENDERS * PER_SENDER, "message");
        if (seen[v]++) dup_count++;
        got++;
    }
    kill(stormer, SIGKILL);
    int st;
    waitpid(stormer, &st, 0);
    for (int s = 0; s < SENDERS; s++) {
        waitpid(senders[s], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sender");
    }
    int missing = 0;
    for (int i = 0; i < SENDERS * PER_SENDER; i++) missing += !seen[i];
    struct mq_attr left;
    CHECK(mq_getattr(q, &left) == 0, "getattr");
    printf("storm: %d messages, duplicates %d, missing %d, left in queue %ld\n", SENDERS * PER_SENDER, dup_count,
           missing, left.mq_curmsgs);
    close(q);
    mq_unlink("/storm");
}

/* A registration does not survive its owner's execve: the descriptor is
 * close-on-exec, and its close drops the registration (MQ-NOT-9/10). The
 * child registers, then execs this program with "after-exec". */
static void after_exec(void) {
    mqd_t q = mq_open("/execq", O_RDWR);
    CHECK(q >= 0, "open after exec");
    status_line("after the owner's exec", q);
    close(q);
    mq_unlink("/execq");
}

static void notify_then_exec(const char *self, const char *mode) {
    mqd_t q = mq_open("/execq", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "open");
    pid_t p = fork();
    if (p == 0) {
        struct sigevent ev = { 0 };
        ev.sigev_notify = SIGEV_SIGNAL;
        ev.sigev_signo = SIGUSR2;
        CHECK(mq_notify(q, &ev) == 0, "notify");
        status_line("registered before exec", q);
        execl(self, self, mode, "after-exec", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    printf("exec'd child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    close(q);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        deny_kernel_ipc();
        deny_mq();
    }
    if (argc > 2 && strcmp(argv[2], "after-exec") == 0) {
        after_exec();
        return 0;
    }
    notify_then_exec(argv[0], argc > 1 ? argv[1] : "native");
    epoll_loop();
    ordered_senders();
    notify_other();
    storm();
    printf("ok\n");
    return 0;
}
