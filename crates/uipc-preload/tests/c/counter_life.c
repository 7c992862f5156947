/* A shared counter across fork, then attach/fork/exec/exit/kill sequences
 * with nattch printed after each step, for the kernel and uipc to agree on.
 * 1. Four forked processes add 1 to two counters in one segment 5000 times
 *    each: a plain one under a SEM_UNDO semaphore, an atomic one; both end
 *    at exactly 20000.
 * 2. A child attaches again (nattch 3), execs (its attachments go: 1), the
 *    new program attaches (2) and exits (1).
 * 3. A child attaches twice more and is killed with SIGKILL (4, then 1). */
#include "semcommon.h"
#include <sys/shm.h>

static unsigned long nattch(int id) {
    struct shmid_ds ds;
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    return (unsigned long)ds.shm_nattch;
}

/* The program exec'd in step 2: what it sees, then one attach of its own. */
static int after_exec(int id) {
    printf("after exec, before attaching: nattch %lu\n", nattch(id));
    void *p = shmat(id, NULL, SHM_RDONLY);
    CHECK(p != (void *)-1, "shmat after exec");
    printf("after exec, attached: nattch %lu, counter %ld\n", nattch(id), ((volatile long *)p)[0]);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[2], "exec") == 0) {
        setup(argc, argv);
        return after_exec(atoi(argv[3]));
    }
    setup(argc, argv);
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    int sem = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(id >= 0 && sem >= 0, "get");
    union semun one = { .val = 1 };
    CHECK(semctl(sem, 0, SETVAL, one) == 0, "setval");
    volatile long *p = shmat(id, NULL, 0);
    CHECK(p != (void *)-1, "shmat");

    /* 1. The counter. */
    pid_t kids[4];
    for (int k = 0; k < 4; k++) {
        kids[k] = fork();
        CHECK(kids[k] >= 0, "fork");
        if (kids[k] == 0) {
            for (int i = 0; i < 5000; i++) {
                sop(sem, 0, -1, SEM_UNDO);
                p[0] = p[0] + 1;
                sop(sem, 0, 1, SEM_UNDO);
                __atomic_fetch_add(&p[1], 1, __ATOMIC_SEQ_CST);
            }
            _exit(0);
        }
    }
    int st;
    for (int k = 0; k < 4; k++)
        CHECK(waitpid(kids[k], &st, 0) == kids[k] && WIFEXITED(st) && WEXITSTATUS(st) == 0, "counter child");
    printf("counters: %ld under the semaphore, %ld atomic; semaphore %d; nattch %lu\n", p[0], p[1],
           semctl(sem, 0, GETVAL), nattch(id));

    /* 2. Attach, fork, exec, exit. */
    int ready[2], go_on[2];
    CHECK(pipe(ready) == 0 && pipe(go_on) == 0, "pipe");
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        CHECK(shmat(id, NULL, 0) != (void *)-1, "child shmat");
        char go;
        CHECK(write(ready[1], "r", 1) == 1, "ready");
        CHECK(read(go_on[0], &go, 1) == 1, "go");
        char ids[16];
        snprintf(ids, sizeof ids, "%d", id);
        execl(argv[0], argv[0], argc > 1 ? argv[1] : "native", "exec", ids, (char *)NULL);
        _exit(127);
    }
    char r;
    CHECK(read(ready[0], &r, 1) == 1, "child ready");
    printf("child attached again: nattch %lu\n", nattch(id));
    CHECK(write(go_on[1], "g", 1) == 1, "go");
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "exec child");
    printf("exec'd child exited: nattch %lu\n", nattch(id));

    /* 3. Attach twice, SIGKILL. */
    c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        CHECK(shmat(id, NULL, 0) != (void *)-1 && shmat(id, NULL, SHM_RDONLY) != (void *)-1, "child shmat x2");
        CHECK(write(ready[1], "r", 1) == 1, "ready");
        for (;;)
            pause();
    }
    CHECK(read(ready[0], &r, 1) == 1, "child ready");
    printf("child holds three: nattch %lu\n", nattch(id));
    CHECK(kill(c, SIGKILL) == 0, "kill");
    CHECK(waitpid(c, &st, 0) == c && WIFSIGNALED(st), "killed child");
    printf("child killed: nattch %lu\n", nattch(id));

    CHECK(shmdt((void *)p) == 0, "shmdt");
    printf("detached: nattch %lu\n", nattch(id));
    CHECK(shmctl(id, IPC_RMID, NULL) == 0 && semctl(sem, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
