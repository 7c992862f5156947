/* create, attach, write, fork: the child sees the bytes and nattch 2 at
 * once; after it exits nattch is 1; detach, IPC_RMID, then IPC_STAT fails. */
#include "common.h"

int main(void) {
    deny_kernel_ipc();
    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    CHECK(id >= 0, "shmget");
    char *p = shmat(id, NULL, 0);
    CHECK(p != (void *)-1, "shmat");
    strcpy(p, "hello from the parent");
    strcpy(p + 9000, "far");
    struct shmid_ds ds;
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    CHECK(ds.shm_nattch == 1, "nattch %lu", (unsigned long)ds.shm_nattch);
    CHECK(ds.shm_segsz == 10000, "segsz %lu", (unsigned long)ds.shm_segsz);
    CHECK(ds.shm_cpid == getpid(), "cpid %d", ds.shm_cpid);
    CHECK((ds.shm_perm.mode & 0777) == 0600, "mode %o", ds.shm_perm.mode);
    pid_t parent = getpid();
    fflush(stdout);
    pid_t child = fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        CHECK(strcmp(p, "hello from the parent") == 0, "child read %s", p);
        CHECK(strcmp(p + 9000, "far") == 0, "child read far %s", p + 9000);
        struct shmid_ds c;
        CHECK(shmctl(id, IPC_STAT, &c) == 0, "child IPC_STAT");
        printf("child: nattch %lu lpid %d (parent %d)\n", (unsigned long)c.shm_nattch, c.shm_lpid, parent);
        CHECK(c.shm_nattch == 2, "child nattch %lu", (unsigned long)c.shm_nattch);
        CHECK(c.shm_lpid == parent, "child lpid %d", c.shm_lpid);
        strcpy(p, "hello from the child");
        fflush(stdout);
        _exit(0);
    }
    int st;
    CHECK(waitpid(child, &st, 0) == child, "waitpid");
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    CHECK(strcmp(p, "hello from the child") == 0, "parent read %s", p);
    /* The daemon settles the child's exit through its pidfd: wait for it. */
    for (int i = 0; i < 500; i++) {
        CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
        if (ds.shm_nattch == 1) break;
        usleep(10000);
    }
    printf("parent: nattch %lu after the child exited\n", (unsigned long)ds.shm_nattch);
    CHECK(ds.shm_nattch == 1, "nattch %lu", (unsigned long)ds.shm_nattch);
    CHECK(shmdt(p) == 0, "shmdt");
    CHECK(shmctl(id, IPC_STAT, &ds) == 0 && ds.shm_nattch == 0, "nattch after shmdt");
    CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
    errno = 0;
    CHECK(shmctl(id, IPC_STAT, &ds) == -1 && errno == EINVAL, "IPC_STAT after IPC_RMID");
    printf("ok\n");
    return 0;
}
