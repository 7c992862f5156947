/* Children made by raw syscall(SYS_clone) and syscall(SYS_clone3), as a
 * fork (no new stack): the inherited attachment counts and detaches as
 * after fork; with CLONE_NEWIPC the child starts in a fresh, empty
 * IPC namespace (its parent's keys unknown, its own objects unseen by the
 * parent) while an attachment it inherited still counts in its parent's
 * segment until it detaches it; without, it shares its parent's. One line
 * per step, compared with the kernel's in a fresh IPC namespace. With
 * argument "deny" the kernel's IPC calls kill the process. Needs root
 * (CLONE_NEWIPC). */
#include "common.h"
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <linux/sched.h>

static const key_t KEY = 0x5eed, CHILD_KEY = 0xc41d;

static unsigned long nattch(int shm) {
    struct shmid_ds ds;
    CHECK(shmctl(shm, IPC_STAT, &ds) == 0, "IPC_STAT");
    return (unsigned long)ds.shm_nattch;
}

/* What a child sees; its exit status says it ran to the end. */
static void child(const char *how, char *p) {
    errno = 0;
    int id = shmget(KEY, 0, 0);
    printf("%s child: parent's key -> %d %s\n", how, id, id == -1 ? strerror(errno) : "");
    printf("%s child: inherited mapping reads \"%s\"\n", how, p);
    int own = shmget(CHILD_KEY, 4096, IPC_CREAT | 0600);
    printf("%s child: own segment -> %s\n", how, own >= 0 ? "made" : strerror(errno));
    printf("%s child: shmdt inherited -> %d\n", how, shmdt(p));
    _exit(0);
}

static void parent(const char *how, pid_t pid, int shm) {
    CHECK(pid > 0, "%s", how);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s child status %d", how, status);
    errno = 0;
    int id = shmget(CHILD_KEY, 0, 0);
    printf("%s parent: child's key -> %s\n", how, id >= 0 ? "found" : strerror(errno));
    if (id >= 0) CHECK(shmctl(id, IPC_RMID, NULL) == 0, "rm child's");
    printf("%s parent: nattch %lu\n", how, nattch(shm));
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "deny") == 0) deny_kernel_ipc();
    setvbuf(stdout, NULL, _IONBF, 0);
    int shm = shmget(KEY, 4096, IPC_CREAT | 0600);
    CHECK(shm >= 0, "shmget");
    char *p = shmat(shm, NULL, 0);
    CHECK(p != (void *)-1, "shmat");
    strcpy(p, "the parent's");
    printf("parent: nattch %lu\n", nattch(shm));

    long pid = syscall(SYS_clone, SIGCHLD | CLONE_NEWIPC, 0, 0, 0, 0);
    if (pid == 0) child("clone(CLONE_NEWIPC)", p);
    parent("clone(CLONE_NEWIPC)", (pid_t)pid, shm);

    pid = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) child("clone", p);
    parent("clone", (pid_t)pid, shm);

    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWIPC;
    ca.exit_signal = SIGCHLD;
    pid = syscall(SYS_clone3, &ca, sizeof ca);
    if (pid == 0) child("clone3(CLONE_NEWIPC)", p);
    parent("clone3(CLONE_NEWIPC)", (pid_t)pid, shm);

    errno = 0;
    long r = syscall(SYS_clone3, (void *)8, sizeof ca);
    printf("clone3 bad args -> %ld %s\n", r, strerror(errno));
    errno = 0;
    r = syscall(SYS_clone, SIGCHLD | CLONE_NEWIPC | CLONE_SYSVSEM, 0, 0, 0, 0);
    printf("clone NEWIPC|SYSVSEM -> %ld %s\n", r, strerror(errno));
    /* A vfork-like clone: the parent waits until the child exits. */
    pid = syscall(SYS_clone, SIGCHLD | CLONE_VFORK, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    CHECK(pid > 0 && waitpid((pid_t)pid, NULL, 0) == pid, "vfork-like clone");
    printf("clone(CLONE_VFORK) -> done\n");
    CHECK(shmdt(p) == 0, "shmdt");
    printf("parent: nattch %lu\n", nattch(shm));
    printf("ok\n");
    return 0;
}
