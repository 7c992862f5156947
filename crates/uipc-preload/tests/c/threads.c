/* 8 threads attach and detach one segment 200 times each. */
#include "common.h"
#include <pthread.h>

static int id;

static void *worker(void *arg) {
    long n = (long)arg;
    for (int i = 0; i < 200; i++) {
        volatile long *p = shmat(id, NULL, 0);
        CHECK(p != (void *)-1, "thread %ld shmat %d", n, i);
        p[n] = i;
        CHECK(p[n] == i, "thread %ld read", n);
        CHECK(shmdt((void *)p) == 0, "thread %ld shmdt %d", n, i);
    }
    return NULL;
}

int main(void) {
    deny_kernel_ipc();
    id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id >= 0, "shmget");
    pthread_t t[8];
    for (long i = 0; i < 8; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)i) == 0, "pthread_create");
    for (int i = 0; i < 8; i++)
        CHECK(pthread_join(t[i], NULL) == 0, "pthread_join");
    struct shmid_ds ds;
    CHECK(shmctl(id, IPC_STAT, &ds) == 0, "IPC_STAT");
    printf("nattch %lu\n", (unsigned long)ds.shm_nattch);
    CHECK(ds.shm_nattch == 0, "nattch %lu", (unsigned long)ds.shm_nattch);
    CHECK(shmctl(id, IPC_RMID, NULL) == 0, "IPC_RMID");
    printf("ok\n");
    return 0;
}
