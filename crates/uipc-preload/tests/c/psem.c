/* glibc's named semaphores (SPEC 6.5, PSEM-*), run natively over a private
 * tmpfs at /dev/shm and under the shim (see pshm.c); then processes hand
 * semaphores back and forth 100,000 times, and contend on one as a mutex,
 * with no post lost. */
#include "semcommon.h"
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <semaphore.h>
#include <sys/mman.h>
#include <sys/stat.h>

static const char *pe(int e) {
    switch (e) {
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ETIMEDOUT: return "ETIMEDOUT";
    default: return ename(e);
    }
}

/* Prints "what -> ok|-1 errno" for a sem_t * result. */
#define S(what, call) do { errno = 0; sem_t *s_ = (call); \
    printf("%-48s -> %s %s\n", what, s_ == SEM_FAILED ? "-1" : "ok", s_ == SEM_FAILED ? pe(errno) : "0"); \
    if (s_ != SEM_FAILED) sem_close(s_); } while (0)
#define P(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%-48s -> %s %s\n", what, r_ < 0 ? "-1" : "ok", r_ < 0 ? pe(errno) : "0"); } while (0)

static int value(sem_t *s) {
    int v = -1;
    CHECK(sem_getvalue(s, &v) == 0, "sem_getvalue");
    return v;
}

static void drop_to_nobody(void) {
    CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0, "drop");
}

static void wait_child(pid_t pid) {
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %d", status);
}

static void object_of(const char *what, const char *obj) {
    int fd = shm_open(obj, O_RDONLY, 0);
    CHECK(fd >= 0, "shm_open %s", obj);
    struct stat s;
    CHECK(fstat(fd, &s) == 0, "fstat");
    printf("%-20s object %s mode %04o uid %u gid %u size %lld\n", what, obj, (unsigned)(s.st_mode & 07777),
           (unsigned)s.st_uid, (unsigned)s.st_gid, (long long)s.st_size);
    close(fd);
}

static void names(void) {
    char n[300];
    S("PSEM-NAME-1 empty", sem_open("", O_CREAT, 0600, 0));
    S("PSEM-NAME-1 /", sem_open("/", O_CREAT, 0600, 0));
    S("PSEM-NAME-1 /a/b", sem_open("/a/b", O_CREAT, 0600, 0));
    for (int len = 250; len <= 257; len++) {
        memset(n, 's', len); n[len] = 0;
        char what[64];
        snprintf(what, sizeof what, "PSEM-NAME-1 length %d", len);
        S(what, sem_open(n, O_CREAT, 0600, 0));
        snprintf(what, sizeof what, "PSEM-UNL-1 unlink length %d", len);
        P(what, sem_unlink(n));
    }
    P("PSEM-UNL-1 unlink empty", sem_unlink(""));
    P("PSEM-UNL-1 unlink a/b", sem_unlink("a/b"));
}

static void open_rules(void) {
    S("PSEM-OPEN-1 absent", sem_open("/t", 0));
    S("PSEM-OPEN-2 value SEM_VALUE_MAX+1", sem_open("/t", O_CREAT, 0600, (unsigned)SEM_VALUE_MAX + 1));
    umask(022);
    sem_t *a = sem_open("/t", O_CREAT | O_EXCL, 0666, 3);
    CHECK(a != SEM_FAILED, "create t");
    printf("PSEM-OPEN-2 new value %d\n", value(a));
    object_of("PSEM-OPEN-2 new", "/sem.t");
    S("PSEM-OPEN-2 O_CREAT|O_EXCL existing", sem_open("/t", O_CREAT | O_EXCL, 0600, 0));
    sem_t *b = sem_open("/t", O_CREAT, 0600, (unsigned)SEM_VALUE_MAX + 1);
    printf("PSEM-OPEN-2 existing, huge value ignored: %s, value %d\n", b == SEM_FAILED ? "failed" : "ok",
           b == SEM_FAILED ? -1 : value(b));
    sem_t *c = sem_open("/t", 0);
    sem_t *d = sem_open("t", 0);
    sem_t *e = sem_open("//t", O_RDONLY);
    printf("PSEM-OPEN-3 same name same address %d %d, other spelling other address %d %d\n",
           a == b, a == c, a == d, a == e);
    CHECK(sem_post(d) == 0, "post via t");
    printf("PSEM-NAME-1 one semaphore: value via /t %d\n", value(a));
    /* counted: three opens of "/t" need three closes */
    P("PSEM-OPEN-3 close 1 of 3", sem_close(a));
    P("PSEM-OPEN-3 close 2 of 3", sem_close(b));
    printf("PSEM-OPEN-3 still mapped, value %d\n", value(c));
    P("PSEM-OPEN-3 close 3 of 3", sem_close(c));
    P("PSEM-OPEN-3 close again", sem_close(c));
    sem_t local;
    P("PSEM-OPEN-3 close of a non-sem_open address", sem_close(&local));
    /* fork: the child has the mapping */
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK(sem_post(d) == 0, "child post");
        CHECK(sem_close(d) == 0, "child close");
        exit(0);
    }
    wait_child(pid);
    printf("PSEM-OPEN-3 after a forked child's post %d\n", value(d));
    CHECK(sem_trywait(d) == 0 && sem_trywait(d) == 0 && sem_trywait(d) == 0, "trywait");
    CHECK(sem_trywait(d) == 0 && sem_trywait(d) == 0, "trywait");
    P("sem_trywait at 0", sem_trywait(d));
    struct timespec past = {0, 0};
    P("sem_timedwait past deadline", sem_timedwait(d, &past));
    sem_close(d);
    sem_close(e);
    umask(077);
    sem_t *u = sem_open("/u77", O_CREAT, 0666, 0);
    CHECK(u != SEM_FAILED, "u77");
    object_of("PSEM-OPEN-2 umask 077", "/sem.u77");
    sem_close(u);
    sem_unlink("/u77");
    umask(022);
    /* As nobody. */
    sem_t *r = sem_open("/root644", O_CREAT, 0644, 1);
    CHECK(r != SEM_FAILED, "root644");
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        drop_to_nobody();
        S("nobody: PSEM-OPEN-1 root's 0644", sem_open("/root644", 0));
        S("nobody: O_CREAT existing root's 0644", sem_open("/root644", O_CREAT, 0666, 0));
        P("nobody: PSEM-UNL-1 unlink root's", sem_unlink("/root644"));
        sem_t *own = sem_open("/own", O_CREAT | O_EXCL, 0660, 2);
        printf("nobody: own %s value %d\n", own == SEM_FAILED ? "failed" : "ok", own == SEM_FAILED ? -1 : value(own));
        object_of("nobody: own", "/sem.own");
        exit(0);
    }
    wait_child(pid);
    object_of("root: nobody's", "/sem.own");
    P("root: unlink nobody's", sem_unlink("own"));
    /* PSEM-UNL-1: an open semaphore keeps working after unlink. */
    P("PSEM-UNL-1 unlink root644", sem_unlink("/root644"));
    P("PSEM-UNL-1 unlink root644 again", sem_unlink("/root644"));
    CHECK(sem_post(r) == 0, "post after unlink");
    printf("PSEM-UNL-1 after unlink value %d\n", value(r));
    sem_close(r);
    P("PSEM-UNL-1 unlink t", sem_unlink("t"));
}

/* Two processes hand two semaphores back and forth `rounds` times. */
static void handoff(int rounds) {
    sem_t *ping = sem_open("/ping", O_CREAT | O_EXCL, 0600, 0);
    sem_t *pong = sem_open("/pong", O_CREAT | O_EXCL, 0600, 0);
    CHECK(ping != SEM_FAILED && pong != SEM_FAILED, "ping pong");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        /* A fresh open in the child: the same semaphore through its own mapping. */
        sem_t *p = sem_open("/ping", 0), *q = sem_open("/pong", 0);
        CHECK(p == ping && q == pong, "child inherits the mappings (same addresses)");
        for (int i = 0; i < rounds; i++) {
            while (sem_wait(p) != 0) CHECK(errno == EINTR, "sem_wait");
            CHECK(sem_post(q) == 0, "post pong");
        }
        exit(0);
    }
    for (int i = 0; i < rounds; i++) {
        CHECK(sem_post(ping) == 0, "post ping");
        while (sem_wait(pong) != 0) CHECK(errno == EINTR, "sem_wait");
    }
    wait_child(pid);
    printf("hand-off %d rounds: ping %d pong %d\n", rounds, value(ping), value(pong));
    sem_close(ping);
    sem_close(pong);
    sem_unlink("/ping");
    sem_unlink("/pong");
}

/* Four processes count to 4*n under one semaphore used as a mutex. */
static void mutex(int n) {
    sem_t *m = sem_open("/mutex", O_CREAT | O_EXCL, 0600, 1);
    CHECK(m != SEM_FAILED, "mutex");
    int fd = shm_open("/counter", O_CREAT | O_EXCL | O_RDWR, 0600);
    CHECK(fd >= 0 && ftruncate(fd, 4096) == 0, "counter");
    volatile long *count = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(count != MAP_FAILED, "mmap");
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0, "fork");
        if (kids[k] == 0) {
            for (int i = 0; i < n; i++) {
                while (sem_wait(m) != 0) CHECK(errno == EINTR, "sem_wait");
                long v = *count;
                *count = v + 1;
                CHECK(sem_post(m) == 0, "post");
            }
            exit(0);
        }
    }
    for (int k = 0; k < 4; k++) wait_child(kids[k]);
    printf("mutex: 4 processes x %d = %ld, semaphore %d\n", n, *count, value(m));
    sem_close(m);
    sem_unlink("/mutex");
    shm_unlink("/counter");
    close(fd);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        int probe = open("/dev/shm/probe", O_CREAT | O_RDWR, 0600);
        CHECK(probe < 0, "/dev/shm is writable under the shim test");
    }
    names();
    open_rules();
    handoff(100000);
    mutex(20000);
    printf("ok\n");
    return 0;
}
