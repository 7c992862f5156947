/* POSIX message queues, run natively (in a fresh IPC namespace) and under
 * the shim: every line printed must be the same. Names, open rules,
 * attributes, priorities, errors in the kernel's order, the descriptor
 * (poll readiness, O_NONBLOCK in F_GETFL, FD_CLOEXEC, read's status line),
 * mq_notify's rules and a signal notification's siginfo, fork sharing the
 * description, sleepers woken by another process, EINTR with and without
 * SA_RESTART, SIGEV_THREAD. */
#include "mqcommon.h"
#include <sched.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>

static void readiness(const char *what, mqd_t q) {
    struct pollfd p = { q, POLLIN | POLLOUT, 0 };
    CHECK(poll(&p, 1, 0) >= 0, "poll");
    printf("%s: poll%s%s\n", what, p.revents & POLLIN ? " IN" : "", p.revents & POLLOUT ? " OUT" : "");
}

static void names(void) {
    char big[300];
    memset(big, 'a', sizeof big);
    big[0] = '/';
    big[256] = 0; /* 255 after the slash */
    SHOW("open no slash", mq_open("abc", O_CREAT | O_RDWR, 0600, NULL));
    SHOW("open /", mq_open("/", O_CREAT | O_RDWR, 0600, NULL));
    SHOW("open /a/b", mq_open("/a/b", O_CREAT | O_RDWR, 0600, NULL));
    SHOW("open //x", mq_open("//x", O_CREAT | O_RDWR, 0600, NULL));
    SHOW("open /.", mq_open("/.", O_CREAT | O_RDWR, 0600, NULL));
    SHOW("open /..", mq_open("/..", O_CREAT | O_RDWR, 0600, NULL));
    mqd_t q = mq_open(big, O_CREAT | O_RDWR, 0600, NULL);
    printf("open 255 -> %s\n", q >= 0 ? "ok" : ename(errno));
    if (q >= 0) { close(q); mq_unlink(big); }
    big[256] = 'a'; big[257] = 0;
    SHOW("open 256", mq_open(big, O_CREAT | O_RDWR, 0600, NULL));
    SHOW("unlink absent", mq_unlink("/absent"));
    SHOW("unlink no slash", mq_unlink("absent"));
    SHOW("open absent", mq_open("/absent", O_RDWR));
}

static void sysctls(void) {
    const char *names[] = { "queues_max", "msg_max", "msgsize_max", "msg_default", "msgsize_default" };
    for (int i = 0; i < 5; i++) {
        char path[64], buf[32] = { 0 };
        snprintf(path, sizeof path, "/proc/sys/fs/mqueue/%s", names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        CHECK(fd >= 0, "open %s", path);
        CHECK(read(fd, buf, sizeof buf - 1) > 0, "read %s", path);
        close(fd);
        printf("fs.mqueue.%s = %s", names[i], buf);
    }
}

static void attrs(void) {
    struct mq_attr a = { 0 };
    a.mq_maxmsg = 0; a.mq_msgsize = 10;
    SHOW("attr maxmsg 0", mq_open("/attr", O_CREAT | O_RDWR, 0600, &a));
    a.mq_maxmsg = 11;
    SHOW("attr maxmsg 11", mq_open("/attr", O_CREAT | O_RDWR, 0600, &a));
    a.mq_maxmsg = 10; a.mq_msgsize = 8193;
    SHOW("attr msgsize 8193", mq_open("/attr", O_CREAT | O_RDWR, 0600, &a));
    mqd_t q = mq_open("/attr", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "default open");
    CHECK(mq_getattr(q, &a) == 0, "getattr");
    printf("defaults: maxmsg %ld msgsize %ld curmsgs %ld flags %ld\n", a.mq_maxmsg, a.mq_msgsize, a.mq_curmsgs, a.mq_flags);
    SHOW("reopen excl", mq_open("/attr", O_CREAT | O_EXCL | O_RDWR, 0600, NULL));
    SHOW("reopen accmode 3", mq_open("/attr", 3));
    int fdflags = fcntl(q, F_GETFD);
    printf("FD_CLOEXEC %d\n", (fdflags & FD_CLOEXEC) != 0);
    close(q);
    /* Creating with O_ACCMODE 3: a descriptor that can neither send nor receive. */
    mq_unlink("/attr");
    q = mq_open("/attr", O_CREAT | 3, 0600, NULL);
    printf("create accmode 3 -> %s\n", q >= 0 ? "ok" : ename(errno));
    char buf[8192];
    SHOW("send on accmode 3", mq_send(q, "x", 1, 0));
    SHOW("receive on accmode 3", mq_receive(q, buf, sizeof buf, NULL));
    close(q);
    mq_unlink("/attr");
    /* mode & ~umask, setuid/setgid/sticky kept. */
    mode_t old = umask(022);
    q = mq_open("/mode", O_CREAT | O_RDWR, 07777, NULL);
    umask(old);
    CHECK(q >= 0, "mode open");
    close(q);
    mq_unlink("/mode");
}

static void messages(void) {
    struct mq_attr a = { 0, 3, 16, 0, {0} };
    mqd_t q = mq_open("/msg", O_CREAT | O_RDWR, 0600, &a);
    CHECK(q >= 0, "open");
    char buf[64];
    unsigned prio;
    readiness("empty", q);
    SHOW("send prio 32768 bad fd", mq_send(-5, "x", 1, 32768));
    SHOW("send bad fd", mq_send(-5, "x", 1, 0));
    SHOW("send too long", mq_send(q, buf, 17, 0));
    struct timespec bad = { 0, 1000000000 };
    SHOW("timedsend bad timeout", mq_timedsend(q, "x", 1, 0, &bad));
    SHOW("send a1", mq_send(q, "a1", 2, 1));
    readiness("one", q);
    SHOW("send b5", mq_send(q, "b5", 2, 5));
    SHOW("send c1", mq_send(q, "c1x", 3, 1));
    readiness("full", q);
    CHECK(mq_getattr(q, &a) == 0, "getattr");
    printf("curmsgs %ld\n", a.mq_curmsgs);
    char st[128] = { 0 };
    ssize_t n = read(q, st, sizeof st - 1);
    printf("status (%zd): %s", n, st);
    printf("second read %zd\n", read(q, st, sizeof st - 1));
    SHOW("write to queue fd", write(q, "x", 1));
    struct timespec past = { 1, 0 };
    SHOW("timedsend full, past deadline", mq_timedsend(q, "d", 1, 0, &past));
    SHOW("receive small buffer", mq_receive(q, buf, 15, &prio));
    for (int i = 0; i < 3; i++) {
        memset(buf, 0, sizeof buf);
        n = mq_receive(q, buf, sizeof buf, &prio);
        printf("received %zd '%s' prio %u\n", n, buf, prio);
    }
    readiness("drained", q);
    SHOW("timedreceive empty, past deadline", mq_timedreceive(q, buf, sizeof buf, &prio, &past));
    SHOW("timedreceive bad timeout", mq_timedreceive(q, buf, sizeof buf, &prio, &bad));
    /* O_NONBLOCK through mq_setattr: in F_GETFL, shared with a dup. */
    struct mq_attr nb = { O_NONBLOCK, 0, 0, 0, {0} }, old;
    SHOW("setattr bad flags", mq_setattr(q, &(struct mq_attr){ 1, 0, 0, 0, {0} }, NULL));
    SHOW("setattr nonblock", mq_setattr(q, &nb, &old));
    printf("old flags %ld, F_GETFL nonblock %d\n", old.mq_flags, (fcntl(q, F_GETFL) & O_NONBLOCK) != 0);
    int d = dup(q);
    SHOW("receive empty nonblock (dup)", mq_receive(d, buf, sizeof buf, NULL));
    CHECK(mq_getattr(d, &a) == 0, "getattr dup");
    printf("dup flags %ld\n", a.mq_flags);
    close(d);
    /* Unlinked while open: still usable; the name is free. */
    SHOW("unlink", mq_unlink("/msg"));
    SHOW("send after unlink", mq_send(q, "z", 1, 0));
    SHOW("receive after unlink", mq_receive(q, buf, sizeof buf, NULL));
    mqd_t q2 = mq_open("/msg", O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    printf("recreate -> %s\n", q2 >= 0 ? "ok" : ename(errno));
    close(q2);
    mq_unlink("/msg");
    close(q);
    SHOW("send on closed", mq_send(q, "x", 1, 0));
}

static volatile sig_atomic_t got_sig, got_code, got_val, got_pid_ok;
static void on_notify(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    got_sig = sig;
    got_code = si->si_code;
    got_val = si->si_value.sival_int;
    got_pid_ok = si->si_pid == getpid() && si->si_uid == getuid();
}

static void notify(void) {
    mqd_t q = mq_open("/not", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "open");
    struct sigevent ev = { 0 };
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = 65;
    SHOW("notify bad signo, bad fd", mq_notify(-1, &ev));
    ev.sigev_notify = 7;
    SHOW("notify bad kind", mq_notify(q, &ev));
    ev.sigev_notify = SIGEV_NONE;
    SHOW("notify bad fd", mq_notify(-1, &ev));
    SHOW("notify none", mq_notify(q, &ev));
    status_line("registered none", q);
    SHOW("notify again", mq_notify(q, &ev));
    SHOW("notify NULL", mq_notify(q, NULL));
    status_line("removed", q);
    /* SIGEV_SIGNAL: fired on the empty -> non-empty send, with SI_MESGQ. */
    struct sigaction sa = { 0 };
    sa.sa_sigaction = on_notify;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGUSR2, &sa, NULL) == 0, "sigaction");
    sigset_t set, oldset;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, &oldset);
    ev.sigev_notify = SIGEV_SIGNAL;
    ev.sigev_signo = SIGUSR2;
    ev.sigev_value.sival_int = 4242;
    SHOW("notify signal", mq_notify(q, &ev));
    status_line("registered signal", q);
    SHOW("send", mq_send(q, "x", 1, 0));
    status_line("after firing", q);
    sigsuspend(&oldset);
    sigprocmask(SIG_SETMASK, &oldset, NULL);
    printf("signal %d code %s value %d sender self %d\n", (int)got_sig, got_code == SI_MESGQ ? "SI_MESGQ" : "?",
           (int)got_val, (int)got_pid_ok);
    /* Not fired while the queue is not empty. */
    got_sig = 0;
    SHOW("notify signal on non-empty", mq_notify(q, &ev));
    SHOW("send to non-empty", mq_send(q, "y", 1, 0));
    printf("fired %d\n", (int)got_sig);
    /* The owner's close of a dup drops the registration. */
    int d = dup(q);
    close(d);
    status_line("after closing a dup", q);
    /* A child's close does not. */
    SHOW("notify none", mq_notify(q, &(struct sigevent){ .sigev_notify = SIGEV_NONE }));
    pid_t p = fork();
    if (p == 0) { close(q); _exit(0); }
    int st;
    waitpid(p, &st, 0);
    status_line("after a child's close", q);
    /* A child's NULL does nothing; its registration attempt is EBUSY. */
    p = fork();
    if (p == 0) {
        int a = mq_notify(q, NULL);
        int b = mq_notify(q, &ev) == -1 && errno == EBUSY;
        _exit(a == 0 && b ? 0 : 1);
    }
    waitpid(p, &st, 0);
    printf("child NULL 0, child EBUSY: %d\n", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    status_line("still", q);
    close(q);
    mq_unlink("/not");
}

static volatile sig_atomic_t handled;
static void on_usr1(int sig) { (void)sig; handled++; }

static void interrupted(int flags) {
    struct sigaction sa = { 0 };
    sa.sa_handler = on_usr1;
    sa.sa_flags = flags;
    CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction");
    handled = 0;
    mqd_t q = mq_open("/intr", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "open");
    pid_t parent = getpid();
    pid_t p = fork();
    if (p == 0) {
        await_sleeping(parent);
        kill(parent, SIGUSR1);
        if (flags & SA_RESTART) {
            /* The restarted receive gets the message sent after the signal. */
            mq_send(q, "late", 4, 3);
        }
        _exit(0);
    }
    char buf[8192];
    unsigned prio = 0;
    errno = 0;
    ssize_t r = mq_receive(q, buf, sizeof buf, &prio);
    int e = errno;
    int st;
    waitpid(p, &st, 0);
    printf("receive%s: -> %zd %s prio %u handler ran %d\n", flags & SA_RESTART ? " SA_RESTART" : "", r,
           r < 0 ? ename(e) : "0", prio, (int)handled);
    close(q);
    mq_unlink("/intr");
}

static void sleepers(void) {
    struct mq_attr a = { 0, 1, 8, 0, {0} };
    mqd_t q = mq_open("/sleep", O_CREAT | O_RDWR, 0600, &a);
    CHECK(q >= 0, "open");
    pid_t parent = getpid();
    /* A receiver woken by another process's send (a hand-off: no notification). */
    pid_t p = fork();
    if (p == 0) {
        await_sleeping(parent);
        _exit(mq_send(q, "hand", 4, 2) == 0 ? 0 : 1);
    }
    char buf[64] = { 0 };
    unsigned prio;
    ssize_t n = mq_receive(q, buf, sizeof buf, &prio);
    int st;
    waitpid(p, &st, 0);
    printf("woken receiver got %zd '%s' prio %u\n", n, buf, prio);
    /* A sender on a full queue woken by another process's receive. */
    CHECK(mq_send(q, "first", 5, 0) == 0, "send");
    p = fork();
    if (p == 0) {
        await_sleeping(parent);
        char b[8] = { 0 };
        _exit(mq_receive(q, b, sizeof b, NULL) == 5 && strcmp(b, "first") == 0 ? 0 : 1);
    }
    SHOW("blocked send", mq_send(q, "second", 6, 0));
    waitpid(p, &st, 0);
    printf("child received first: %d\n", WIFEXITED(st) && WEXITSTATUS(st) == 0);
    memset(buf, 0, sizeof buf);
    n = mq_receive(q, buf, sizeof buf, NULL);
    printf("then %zd '%s'\n", n, buf);
    /* fork shares the description's O_NONBLOCK. */
    p = fork();
    if (p == 0) {
        struct mq_attr nb = { O_NONBLOCK, 0, 0, 0, {0} };
        _exit(mq_setattr(q, &nb, NULL));
    }
    waitpid(p, &st, 0);
    CHECK(mq_getattr(q, &a) == 0, "getattr");
    printf("flags after child's setattr %ld\n", a.mq_flags);
    close(q);
    mq_unlink("/sleep");
}

static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tcv = PTHREAD_COND_INITIALIZER;
static int tval = -1, tsame = -1;
static pthread_t main_thread;
static void on_thread(union sigval v) {
    pthread_mutex_lock(&tmu);
    tval = v.sival_int;
    tsame = pthread_equal(pthread_self(), main_thread);
    pthread_cond_signal(&tcv);
    pthread_mutex_unlock(&tmu);
}

/* MQ-FD-4: after unshare(CLONE_NEWIPC) an open descriptor keeps its
 * queue, while names resolve in the new namespace. */
static void unshared(void) {
    mqd_t q = mq_open("/old", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "open");
    CHECK(mq_send(q, "kept", 4, 1) == 0, "send");
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
    char buf[8192] = { 0 };
    SHOW("receive on the old descriptor", mq_receive(q, buf, sizeof buf, NULL));
    SHOW("send on the old descriptor", mq_send(q, "x", 1, 0));
    SHOW("open the name in the new namespace", mq_open("/old", O_RDWR));
    SHOW("unlink the name in the new namespace", mq_unlink("/old"));
    close(q);
}

static void thread_notify(void) {
    mqd_t q = mq_open("/thr", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(q >= 0, "open");
    main_thread = pthread_self();
    struct sigevent ev = { 0 };
    ev.sigev_notify = SIGEV_THREAD;
    ev.sigev_notify_function = on_thread;
    ev.sigev_value.sival_int = 77;
    SHOW("notify thread", mq_notify(q, &ev));
    status_line("thread registered", q);
    SHOW("send", mq_send(q, "t", 1, 0));
    pthread_mutex_lock(&tmu);
    while (tval < 0) pthread_cond_wait(&tcv, &tmu);
    pthread_mutex_unlock(&tmu);
    printf("thread ran with %d, main thread %d\n", tval, tsame);
    close(q);
    mq_unlink("/thr");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        deny_kernel_ipc();
        deny_mq();
    }
    sysctls();
    names();
    attrs();
    messages();
    notify();
    sleepers();
    interrupted(0);
    interrupted(SA_RESTART);
    thread_notify();
    unshared();
    printf("ok\n");
    return 0;
}
