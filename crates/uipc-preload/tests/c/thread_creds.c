/* Credentials are per thread: a thread that drops CAP_IPC_OWNER with
 * capset (which changes the calling thread only) is refused another
 * user's 0600 objects, while the main thread, which keeps it, is still
 * let in — and each keeps its own verdict as they take turns on the
 * process's connection. Under the shim, the daemon re-reads the calling
 * thread's credentials (/proc/PID/task/TID/status) whenever the thread
 * using a connection changes, once some thread changed its own alone.
 * Then a second thread changes its own euid with a raw
 * syscall(SYS_setresuid) (no glibc broadcast): the same, by uid. */
#include "semcommon.h"
#include <pthread.h>
#include <linux/capability.h>

extern int capget(cap_user_header_t, cap_user_data_t);
extern int capset(cap_user_header_t, const cap_user_data_t);

static int shm, sem, to_thread[2], to_main[2];

static void say(int fd) { CHECK(write(fd, "x", 1) == 1, "write"); }
static void hear(int fd) { char b; CHECK(read(fd, &b, 1) == 1, "read"); }

static void check(const char *who) {
    struct shmid_ds ds;
    char what[64];
    snprintf(what, sizeof what, "%s: shmctl IPC_STAT", who);
    T(what, shmctl(shm, IPC_STAT, &ds));
    snprintf(what, sizeof what, "%s: semctl GETVAL", who);
    T(what, semctl(sem, 0, GETVAL));
    snprintf(what, sizeof what, "%s: shmget 0600", who);
    T(what, shmget(0x7c01, 0, 0600) >= 0 ? 0 : -1);
}

static void *dropper(void *arg) {
    (void)arg;
    hear(to_thread[0]);
    check("thread, before");
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    CHECK(capget(&h, d) == 0, "capget");
    d[CAP_IPC_OWNER / 32].effective &= ~(1u << (CAP_IPC_OWNER % 32));
    CHECK(capset(&h, d) == 0, "capset");
    check("thread, after capset");
    say(to_main[1]);
    hear(to_thread[0]);
    check("thread, again");
    say(to_main[1]);
    return NULL;
}

static void *raw_setresuid(void *arg) {
    (void)arg;
    check("raw thread, before");
    CHECK(syscall(SYS_setresuid, -1, 2000, -1) == 0, "setresuid");
    printf("raw thread: euid %d\n", (int)geteuid());
    check("raw thread, after setresuid");
    say(to_main[1]);
    hear(to_thread[0]);
    check("raw thread, again");
    return NULL;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    /* Objects of uid 1000, mode 0600: root reaches them by CAP_IPC_OWNER. */
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        CHECK(setgid(1000) == 0 && setuid(1000) == 0, "setuid 1000");
        CHECK(shmget(0x7c01, 4096, IPC_CREAT | 0600) >= 0, "shmget");
        CHECK(semget(0x7c02, 1, IPC_CREAT | 0600) >= 0, "semget");
        _exit(0);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    shm = shmget(0x7c01, 0, 0);
    sem = semget(0x7c02, 0, 0);
    CHECK(shm >= 0 && sem >= 0, "lookup");
    CHECK(pipe(to_thread) == 0 && pipe(to_main) == 0, "pipe");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, dropper, NULL) == 0, "pthread_create");
    check("main, before");
    say(to_thread[1]);
    hear(to_main[0]);
    check("main, after the thread's capset");
    say(to_thread[1]);
    hear(to_main[0]);
    check("main, again");
    CHECK(pthread_join(t, NULL) == 0, "join");
    CHECK(pthread_create(&t, NULL, raw_setresuid, NULL) == 0, "pthread_create");
    hear(to_main[0]);
    check("main, after the raw setresuid");
    say(to_thread[1]);
    CHECK(pthread_join(t, NULL) == 0, "join");
    printf("main: euid %d\n", (int)geteuid());
    check("main, last");
    CHECK(shmctl(shm, IPC_RMID, NULL) == 0 && semctl(sem, 0, IPC_RMID) == 0, "cleanup");
    printf("ok\n");
    return 0;
}
