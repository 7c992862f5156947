/* Threads of one process contend for a semaphore used as a mutex; one
 * thread sleeps in semop while another forks (the sleeping thread holds
 * no lock the fork needs) and the child wakes it. */
#include "semcommon.h"
#include <pthread.h>

#define THREADS 4
#define ITERS 300

static int id;
static long counter;

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < ITERS; i++) {
        sop(id, 0, -1, 0);
        long c = counter;
        sched_yield();
        counter = c + 1;
        sop(id, 0, 1, 0);
    }
    return NULL;
}

static void *sleeper(void *arg) {
    (void)arg;
    sop(id, 1, -1, 0);
    return (void *)1;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    CHECK(id >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(id, 0, SETVAL, one) == 0, "setval");
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&t[i], NULL, worker, NULL) == 0, "create");
    for (int i = 0; i < THREADS; i++) CHECK(pthread_join(t[i], NULL) == 0, "join");
    printf("counter %ld (want %d), sem0 %d\n", counter, THREADS * ITERS, semctl(id, 0, GETVAL));

    pthread_t s;
    CHECK(pthread_create(&s, NULL, sleeper, NULL) == 0, "create sleeper");
    await_ncnt(id, 1, 1);
    pid_t p = fork();
    CHECK(p >= 0, "fork");
    if (p == 0) {
        sop(id, 1, 1, 0);
        _exit(0);
    }
    void *r;
    CHECK(pthread_join(s, &r) == 0 && r == (void *)1, "join sleeper");
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    printf("sleeper woken by the forked child; sem1 %d, GETNCNT %d\n", semctl(id, 1, GETVAL), semctl(id, 1, GETNCNT));
    CHECK(semctl(id, 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
