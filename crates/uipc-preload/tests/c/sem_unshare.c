/* unshare(2) as ksys_unshare() treats System V IPC: CLONE_SYSVSEM applies
 * the caller's undo records at once (twice is a no-op); CLONE_NEWIPC applies
 * them too and moves the caller to an empty namespace (old keys unknown,
 * ids from 0), while its mapping of an old segment stays valid and keeps
 * counting in that segment's nattch — also in a child forked afterwards —
 * as an observer left in the old namespace sees. */
#include "semcommon.h"
#include <sys/shm.h>

static int to_observer[2], from_observer[2];

/* Asks the observer (in the old namespace) to print what it sees now. */
static void observe(const char *when) {
    size_t n = strlen(when) + 1;
    CHECK(write(to_observer[1], when, n) == (ssize_t)n, "write");
    char ack;
    CHECK(read(from_observer[0], &ack, 1) == 1, "ack");
}

static void observer(int sem, int shm) {
    char when[64];
    close(to_observer[1]);
    close(from_observer[0]);
    for (;;) {
        ssize_t n = read(to_observer[0], when, sizeof when);
        if (n <= 0)
            _exit(0);
        struct shmid_ds ds;
        CHECK(shmctl(shm, IPC_STAT, &ds) == 0, "IPC_STAT");
        char *p = shmat(shm, NULL, SHM_RDONLY);
        CHECK(p != (void *)-1, "shmat");
        printf("old namespace, %s: sem0 %d sem1 %d nattch %lu (before my attach) text \"%s\"\n", when,
               semctl(sem, 0, GETVAL), semctl(sem, 1, GETVAL), (unsigned long)ds.shm_nattch, p);
        CHECK(shmdt(p) == 0, "shmdt");
        CHECK(write(from_observer[1], "k", 1) == 1, "ack");
    }
}

int main(int argc, char **argv) {
    setup(argc, argv);
    const key_t key = 0x5eed;
    int sem = semget(key, 2, IPC_CREAT | 0600);
    CHECK(sem >= 0, "semget");
    union semun five = { .val = 5 };
    CHECK(semctl(sem, 0, SETVAL, five) == 0 && semctl(sem, 1, SETVAL, five) == 0, "setval");
    int shm = shmget(key, 4096, IPC_CREAT | 0600);
    CHECK(shm >= 0, "shmget");

    /* 1. CLONE_SYSVSEM: the undo records apply at once. */
    sop(sem, 0, -2, SEM_UNDO);
    printf("with an undo of +2: sem0 %d\n", semctl(sem, 0, GETVAL));
    CHECK(unshare(CLONE_SYSVSEM) == 0, "unshare(CLONE_SYSVSEM)");
    printf("after unshare(CLONE_SYSVSEM): sem0 %d\n", semctl(sem, 0, GETVAL));
    CHECK(unshare(CLONE_SYSVSEM) == 0, "unshare(CLONE_SYSVSEM) again");
    printf("after a second one: sem0 %d\n", semctl(sem, 0, GETVAL));

    /* 2. CLONE_NEWIPC, watched from the old namespace. */
    CHECK(pipe(to_observer) == 0 && pipe(from_observer) == 0, "pipe");
    pid_t obs = fork();
    CHECK(obs >= 0, "fork");
    if (obs == 0)
        observer(sem, shm);
    char *p = shmat(shm, NULL, 0);
    CHECK(p != (void *)-1, "shmat");
    strcpy(p, "written before");
    sop(sem, 1, -1, SEM_UNDO);
    observe("attached, holding sem1 with undo");
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare(CLONE_NEWIPC)");
    int old_sem = semget(key, 0, 0), sem_errno = errno;
    int old_shm = shmget(key, 0, 0), shm_errno = errno;
    printf("new namespace: semget(key) %d errno %d, shmget(key) %d errno %d\n", old_sem, sem_errno, old_shm,
           shm_errno);
    int fresh = semget(key, 1, IPC_CREAT | 0600);
    printf("new namespace: a new set with the same key gets id %d, sem0 %d\n", fresh, semctl(fresh, 0, GETVAL));
    printf("new namespace: the old mapping reads \"%s\"\n", p);
    strcpy(p, "written after");
    observe("after unshare(CLONE_NEWIPC)");

    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        close(to_observer[1]);
        pause();
        _exit(0);
    }
    observe("a child forked in the new namespace holds the mapping too");
    CHECK(kill(child, SIGKILL) == 0, "kill");
    int st;
    CHECK(waitpid(child, &st, 0) == child, "waitpid");
    observe("the child is gone");
    CHECK(shmdt(p) == 0, "shmdt of the old mapping");
    observe("detached");
    close(to_observer[1]);
    CHECK(waitpid(obs, &st, 0) == obs && WIFEXITED(st) && WEXITSTATUS(st) == 0, "observer");
    CHECK(semctl(fresh, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
