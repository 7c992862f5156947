/* A thread asleep in semop while another thread changes the process's
 * uid (glibc's setuid changes every thread, interrupting the sleeper with
 * its internal signal): the sleeper's next call is judged with the new
 * uid, as by the kernel — under the shim, the connection it slept on
 * carries the old credentials and must not be reused. */
#include "semcommon.h"
#include <pthread.h>

static int open_set, root_set, go[2];
static int r1, e1, r2, e2, r3, e3;

static void *sleeper(void *arg) {
    (void)arg;
    struct sembuf down = {0, -1, 0};
    r1 = semop(open_set, &down, 1);
    e1 = r1 ? errno : 0;
    char b;
    CHECK(read(go[0], &b, 1) == 1, "read go");
    struct sembuf take = {0, -1, IPC_NOWAIT};
    r2 = semop(root_set, &take, 1);
    e2 = r2 ? errno : 0;
    struct sembuf up = {0, 1, 0};
    r3 = semop(open_set, &up, 1);
    e3 = r3 ? errno : 0;
    return NULL;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    open_set = semget(IPC_PRIVATE, 1, IPC_CREAT | 0666);
    root_set = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(open_set >= 0 && root_set >= 0, "semget");
    union semun one = { .val = 1 };
    CHECK(semctl(root_set, 0, SETVAL, one) == 0, "SETVAL");
    CHECK(pipe(go) == 0, "pipe");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, sleeper, NULL) == 0, "pthread_create");
    /* Wait (bounded) until the thread sleeps in semop. */
    int n = 0;
    for (int i = 0; i < 20000 && (n = semctl(open_set, 0, GETNCNT)) != 1; i++) usleep(500);
    CHECK(n == 1, "the thread never slept (semncnt %d)", n);
    printf("sleeping: semncnt %d\n", n);
    CHECK(setuid(1000) == 0, "setuid");
    CHECK(write(go[1], "g", 1) == 1, "write go");
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("asleep during setuid: %d %s\n", r1, ename(e1));
    printf("uid 1000, 0600 root set: %d %s\n", r2, ename(e2));
    printf("uid 1000, 0666 set: %d %s\n", r3, ename(e3));
    printf("ok\n");
    return 0;
}
