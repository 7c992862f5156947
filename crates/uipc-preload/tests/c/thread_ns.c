/* IPC namespaces per thread, and children in fresh ones: run natively in
 * a fresh IPC namespace (as root) and under the shim ("deny"), with the
 * same output.
 *
 * 1. A thread of a multi-threaded process unshares CLONE_NEWIPC: it alone
 *    moves (fresh ids, none of the process's objects), a thread it creates
 *    and a child it forks are in its namespace, the main thread is not;
 *    the calls the shim serves without a round trip (semop, GETVAL,
 *    msgsnd, msgrcv) name its namespace's objects too.
 * 2. glibc's clone(fn, stack, CLONE_NEWIPC | SIGCHLD, arg): the child is
 *    in a fresh namespace, and the parent's attach is counted for it.
 * 3. syscall(SYS_clone3) with CLONE_NEWIPC: the child is in a fresh one. */
#include "semcommon.h"
#include <pthread.h>
#include <sched.h>
#include <linux/sched.h>
#include <sys/msg.h>

#define K_MAIN 0x7a00
#define K_THREAD 0x7a01

static void setup_deny(int argc, char **argv) { setup(argc, argv); }

/* Prints what `who` sees of the two keys. */
static void look(const char *who) {
    errno = 0;
    int m = shmget(K_MAIN, 0, 0);
    int em = errno;
    errno = 0;
    int t = semget(K_THREAD, 0, 0);
    int et = errno;
    printf("%s: main's segment %s, thread's set %s\n", who, m >= 0 ? "seen" : ename(em), t >= 0 ? "seen" : ename(et));
}

static void *grandthread(void *arg) {
    (void)arg;
    look("thread's thread");
    return NULL;
}

static int go[2], back[2];
/* The main namespace's set of 3 and queue, used (by id) by both threads. */
static int main_set, main_queue;

/* Semaphore 2 and the queue of the ids `main_set` and `main_queue`, from
 * `who`: the calls the shim serves in the caller. */
static void use_main_ids(const char *who) {
    struct sembuf post = { 2, 1, IPC_NOWAIT };
    errno = 0;
    int r = semop(main_set, &post, 1);
    printf("%s: semop of semaphore 2 of id %d -> %d %s\n", who, main_set, r, r ? ename(errno) : "0");
    errno = 0;
    r = semctl(main_set, 2, GETVAL);
    printf("%s: GETVAL of semaphore 2 of id %d -> %d %s\n", who, main_set, r, r < 0 ? ename(errno) : "0");
    struct { long type; char text[4]; } m = { 1, "abc" };
    errno = 0;
    r = msgsnd(main_queue, &m, sizeof m.text, IPC_NOWAIT);
    printf("%s: msgsnd to id %d -> %d %s\n", who, main_queue, r, r ? ename(errno) : "0");
    errno = 0;
    long n = msgrcv(main_queue, &m, sizeof m.text, 0, IPC_NOWAIT);
    printf("%s: msgrcv from id %d -> %ld %s\n", who, main_queue, n, n < 0 ? ename(errno) : "0");
}

static void *unsharer(void *arg) {
    (void)arg;
    look("thread, before unshare");
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
    look("thread, after unshare");
    /* Fresh ids: the first set of a new namespace is id 0. */
    int id = semget(K_THREAD, 1, IPC_CREAT | 0600);
    printf("thread: semget -> %d\n", id);
    look("thread, its set made");
    use_main_ids("thread, in its own");
    char b = 0;
    CHECK(write(back[1], &b, 1) == 1, "write");
    CHECK(read(go[0], &b, 1) == 1, "read");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, grandthread, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        look("thread's child");
        int s = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        printf("thread's child: shmget -> %d\n", s);
        fflush(stdout);
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    look("thread, after its child");
    return NULL;
}

static int in_child(void *arg) {
    int seg = *(int *)arg;
    char b;
    /* Speaks only after the parent has: the output's order is fixed. */
    CHECK(read(go[0], &b, 1) == 1, "read");
    look("clone child");
    struct shmid_ds ds;
    errno = 0;
    int r = shmctl(seg, IPC_STAT, &ds);
    printf("clone child: parent's segment id IPC_STAT -> %d %s\n", r, r ? ename(errno) : "0");
    int s = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    printf("clone child: shmget -> %d\n", s);
    fflush(stdout);
    return 7;
}

static void report_nattch(const char *when, int seg) {
    struct shmid_ds ds;
    CHECK(shmctl(seg, IPC_STAT, &ds) == 0, "IPC_STAT");
    printf("parent: nattch %s: %ld\n", when, (long)ds.shm_nattch);
}

int main(int argc, char **argv) {
    setup_deny(argc, argv);
    CHECK(pipe(go) == 0 && pipe(back) == 0, "pipe");

    /* 1. A thread unshares. */
    int seg = shmget(K_MAIN, 4096, IPC_CREAT | 0600);
    printf("main: shmget -> %d\n", seg);
    main_set = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    main_queue = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(main_set >= 0 && main_queue >= 0, "main's set and queue");
    look("main");
    use_main_ids("main");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, unsharer, NULL) == 0, "pthread_create");
    char b = 0;
    CHECK(read(back[0], &b, 1) == 1, "read");
    look("main, while the thread is in its own");
    use_main_ids("main, while the thread is in its own");
    CHECK(write(go[1], &b, 1) == 1, "write");
    CHECK(pthread_join(t, NULL) == 0, "join");
    look("main, after");

    /* 2. glibc's clone with CLONE_NEWIPC; the parent's attach counts. */
    void *at = shmat(seg, NULL, 0);
    CHECK(at != (void *)-1, "shmat");
    report_nattch("before clone", seg);
    size_t size = 256 * 1024;
    char *stack = malloc(size);
    CHECK(stack != NULL, "malloc");
    pid_t pid = clone(in_child, stack + size, CLONE_NEWIPC | SIGCHLD, &seg);
    CHECK(pid > 0, "clone");
    report_nattch("while the clone child lives", seg);
    CHECK(write(go[1], &b, 1) == 1, "write");
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st), "clone child");
    printf("parent: clone child exited %d\n", WEXITSTATUS(st));
    report_nattch("after", seg);
    free(stack);
    look("main, after the clone child");

    /* 3. clone3 through syscall(). */
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWIPC;
    ca.exit_signal = SIGCHLD;
    long c3 = syscall(SYS_clone3, &ca, sizeof ca);
    CHECK(c3 >= 0, "clone3");
    if (c3 == 0) {
        look("clone3 child");
        int s = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
        printf("clone3 child: semget -> %d\n", s);
        fflush(stdout);
        _exit(0);
    }
    CHECK(waitpid((pid_t)c3, &st, 0) == (pid_t)c3 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "clone3 child");
    look("main, after the clone3 child");
    CHECK(shmdt(at) == 0, "shmdt");
    CHECK(shmctl(seg, IPC_RMID, NULL) == 0, "IPC_RMID");
    printf("ok\n");
    return 0;
}
