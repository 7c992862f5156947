/* No daemon: the calls fail with ENOSYS, as on a kernel without SysV IPC. */
#include "common.h"

int main(void) {
    deny_kernel_ipc();
    errno = 0;
    CHECK(shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600) == -1 && errno == ENOSYS, "shmget");
    errno = 0;
    CHECK(shmat(0, NULL, 0) == (void *)-1 && errno == ENOSYS, "shmat");
    errno = 0;
    CHECK(shmctl(0, IPC_RMID, NULL) == -1 && errno == ENOSYS, "shmctl");
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) _exit(0);
    int st;
    CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st), "wait");
    printf("ok\n");
    return 0;
}
