/* The errno of each failing call, as Linux gives it. */
#include "common.h"

int main(void) {
    deny_kernel_ipc();
    errno = 0;
    CHECK(shmget(IPC_PRIVATE, 0, 0600) == -1 && errno == EINVAL, "shmget size 0");
    errno = 0;
    CHECK(shmat(-1, NULL, 0) == (void *)-1 && errno == EINVAL, "shmat -1");
    errno = 0;
    CHECK(shmdt((void *)0x1001) == -1 && errno == EINVAL, "shmdt unaligned");
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id >= 0, "shmget");
    errno = 0;
    CHECK(shmctl(id, IPC_STAT, (struct shmid_ds *)8) == -1 && errno == EFAULT, "IPC_STAT bad buf");
    errno = 0;
    CHECK(shmctl(id, IPC_STAT, NULL) == -1 && errno == EFAULT, "IPC_STAT NULL");
    errno = 0;
    CHECK(shmctl(id, 99, NULL) == -1 && errno == EINVAL, "cmd 99");
    errno = 0;
    CHECK(shmctl(id, -1, NULL) == -1 && errno == EINVAL, "cmd -1");
    errno = 0;
    CHECK(shmctl(-1, IPC_SET, (struct shmid_ds *)8) == -1 && errno == EINVAL, "IPC_SET id -1 before EFAULT");
    errno = 0;
    CHECK(shmctl(id, IPC_SET, (struct shmid_ds *)8) == -1 && errno == EFAULT, "IPC_SET bad buf");
    errno = 0;
    CHECK(shmctl(0x7ffffff, IPC_SET, (struct shmid_ds *)8) == -1 && errno == EFAULT, "IPC_SET EFAULT before lookup");
    /* IPC_INFO's return (the highest index) stands even if the copy fails. */
    errno = 0;
    CHECK(shmctl(0, IPC_INFO, (struct shmid_ds *)8) == -1 && errno == EFAULT, "IPC_INFO bad buf");
    struct shminfo si;
    CHECK(shmctl(0, IPC_INFO, (struct shmid_ds *)&si) >= 0, "IPC_INFO");
    CHECK(si.shmmin == 1 && si.shmmni > 0, "shminfo min %lu mni %lu", si.shmmin, si.shmmni);
    struct shm_info in;
    CHECK(shmctl(0, SHM_INFO, (struct shmid_ds *)&in) >= 0, "SHM_INFO");
    CHECK(in.used_ids == 1, "used_ids %d", in.used_ids);
    /* IPC_SET changes the mode. */
    struct shmid_ds ds;
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    ds.shm_perm.mode = 0640;
    CHECK(shmctl(id, IPC_SET, &ds) == 0, "IPC_SET");
    memset(&ds, 0, sizeof ds);
    CHECK(shmctl(id, IPC_STAT, &ds) == 0 && (ds.shm_perm.mode & 0777) == 0640, "mode %o", ds.shm_perm.mode);
    CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
    errno = 0;
    CHECK(shmctl(id, IPC_RMID, NULL) == -1 && errno == EINVAL, "IPC_RMID twice");
    printf("ok\n");
    return 0;
}
