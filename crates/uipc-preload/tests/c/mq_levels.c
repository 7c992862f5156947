/* Readiness of several descriptions of one queue held by two processes,
 * run natively (in a fresh IPC namespace) and under the shim: every line
 * printed must be the same. After each send or receive, by either
 * process, both print what poll (every event bit), select (read, write
 * and exceptional sets) and a level-triggered epoll report for each of
 * their descriptions, through a queue's empty, neither, full and back,
 * and through empty <-> full on a queue of one message. The parent holds
 * an O_RDWR and an O_WRONLY | O_NONBLOCK description, the child an
 * O_RDONLY one (a description's access mode does not change what it
 * shows) and an O_RDWR one of its own. F_GETFL of each, and after F_SETFL. */
#include "mqcommon.h"
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/wait.h>

static void show(const char *who, const char *step, mqd_t q) {
    struct pollfd p = { q, POLLIN | POLLOUT | POLLPRI | POLLRDNORM | POLLWRNORM | POLLRDBAND | POLLWRBAND, 0 };
    CHECK(poll(&p, 1, 0) >= 0, "poll");
    fd_set r, w, x;
    FD_ZERO(&r); FD_ZERO(&w); FD_ZERO(&x);
    FD_SET(q, &r); FD_SET(q, &w); FD_SET(q, &x);
    struct timeval tv = { 0, 0 };
    CHECK(select(q + 1, &r, &w, &x, &tv) >= 0, "select");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0, "epoll_create1");
    struct epoll_event ev = { EPOLLIN | EPOLLOUT | EPOLLPRI | EPOLLRDNORM | EPOLLWRNORM, { .u32 = 0 } };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, q, &ev) == 0, "epoll_ctl");
    struct epoll_event got = { 0, { 0 } };
    int n = epoll_wait(ep, &got, 1, 0);
    CHECK(n >= 0, "epoll_wait");
    close(ep);
    printf("%s %s: poll %#x select %s%s%s epoll %#x\n", step, who, (unsigned)p.revents, FD_ISSET(q, &r) ? "r" : "-",
           FD_ISSET(q, &w) ? "w" : "-", FD_ISSET(q, &x) ? "x" : "-", n ? got.events : 0u);
}

static void getfl(const char *who, mqd_t q) {
    printf("%s: F_GETFL %#x\n", who, (unsigned)fcntl(q, F_GETFL));
}

/* F_GETFL of the descriptions, and of one after F_SETFL, through a dup. */
static void flags(void) {
    struct mq_attr a = { 0 };
    a.mq_maxmsg = 2;
    a.mq_msgsize = 8;
    mqd_t q[4] = {
        mq_open("/flags", O_CREAT | O_EXCL | O_RDONLY, 0600, &a),
        mq_open("/flags", O_WRONLY | O_NONBLOCK),
        mq_open("/flags", O_RDWR),
        mq_open("/flags", O_RDWR | O_NONBLOCK | O_APPEND),
    };
    const char *who[4] = { "O_CREAT|O_RDONLY", "O_WRONLY|O_NONBLOCK", "O_RDWR", "O_RDWR|O_NONBLOCK|O_APPEND" };
    for (int i = 0; i < 4; i++) {
        CHECK(q[i] >= 0, "mq_open %s: %s", who[i], strerror(errno));
        getfl(who[i], q[i]);
    }
    int d = dup(q[2]);
    CHECK(d >= 0, "dup");
    SHOW("F_SETFL O_NONBLOCK|O_APPEND on a dup", fcntl(d, F_SETFL, O_NONBLOCK | O_APPEND));
    getfl("O_RDWR (its dup set)", q[2]);
    getfl("O_CREAT|O_RDONLY (untouched)", q[0]);
    SHOW("F_SETFL 0", fcntl(q[2], F_SETFL, 0));
    SHOW("F_SETFL O_DIRECT", fcntl(q[2], F_SETFL, O_DIRECT));
    getfl("O_RDWR (cleared)", d);
    close(d);
    for (int i = 0; i < 4; i++) mq_close(q[i]);
    CHECK(mq_unlink("/flags") == 0, "mq_unlink");
}

static int to_child[2], to_parent[2];
static mqd_t pa, pw, ca, cr;

static void act(mqd_t q, char what) {
    char buf[16] = "m";
    if (what == 's') CHECK(mq_send(q, buf, 1, 0) == 0, "mq_send: %s", strerror(errno));
    if (what == 'r') CHECK(mq_receive(q, buf, sizeof buf, NULL) == 1, "mq_receive: %s", strerror(errno));
}

/* The child: opens its own descriptions, then for each command acts
 * (s/r on its O_RDWR description, '-' nothing), shows both, answers. */
static void child(const char *name) {
    cr = mq_open(name, O_RDONLY);
    ca = mq_open(name, O_RDWR);
    CHECK(cr >= 0 && ca >= 0, "child mq_open: %s", strerror(errno));
    char step[64];
    for (;;) {
        char cmd;
        if (read(to_child[0], &cmd, 1) != 1) _exit(0);
        CHECK(read(to_child[0], step, sizeof step) == sizeof step, "read step");
        act(ca, cmd);
        show("child O_RDONLY", step, cr);
        show("child O_RDWR", step, ca);
        CHECK(write(to_parent[1], "k", 1) == 1, "ack");
    }
}

/* One step: `who` ('p' parent, 'c' child) does `what` ('s' send, 'r'
 * receive); then both processes show their descriptions. */
static void step(const char *label, char who, char what) {
    if (who == 'p') act(pa, what);
    char cmd = who == 'c' ? what : '-';
    char s[64] = { 0 };
    snprintf(s, sizeof s, "%s", label);
    CHECK(write(to_child[1], &cmd, 1) == 1 && write(to_child[1], s, sizeof s) == sizeof s, "command");
    char k;
    CHECK(read(to_parent[0], &k, 1) == 1, "wait for the child");
    show("parent O_RDWR", label, pa);
    show("parent O_WRONLY|O_NONBLOCK", label, pw);
}

static void run(const char *name, long maxmsg, const char *const *steps) {
    struct mq_attr a = { 0 };
    a.mq_maxmsg = maxmsg;
    a.mq_msgsize = 16;
    pa = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
    pw = mq_open(name, O_WRONLY | O_NONBLOCK);
    CHECK(pa >= 0 && pw >= 0, "mq_open %s: %s", name, strerror(errno));
    CHECK(pipe2(to_child, O_CLOEXEC) == 0 && pipe2(to_parent, O_CLOEXEC) == 0, "pipe");
    printf("queue of %ld\n", maxmsg);
    fflush(stdout);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        close(to_child[1]);
        close(to_parent[0]);
        child(name);
    }
    close(to_child[0]);
    close(to_parent[1]);
    step("start", 'p', '-');
    for (int i = 0; steps[i]; i++) step(steps[i], steps[i][0], steps[i][1]);
    close(to_child[1]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    close(to_parent[0]);
    mq_close(pa);
    mq_close(pw);
    CHECK(mq_unlink(name) == 0, "mq_unlink");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        deny_kernel_ipc();
        deny_mq();
    }
    watchdog(60);
    flags();
    /* Each step: who (p/c), what (s/r), then a tag. */
    static const char *const three[] = {
        "ps 0->1", "ps 1->2", "cs 2->3 full", "pr 3->2", "cr 2->1", "pr 1->0 empty",
        "cs 0->1", "cs 1->2", "cs 2->3 full", "pr 3->2", "ps 2->3 full", "cr 3->2", "cr 2->1", "cr 1->0 empty", NULL,
    };
    run("/levels3", 3, three);
    static const char *const one[] = {
        "ps empty->full", "cr full->empty", "cs empty->full", "pr full->empty", "ps empty->full", "pr full->empty",
        NULL,
    };
    run("/levels1", 1, one);
    printf("ok\n");
    return 0;
}
