/* Permissions follow the caller's credentials at every call, also once a
 * process has been served (and, under uipc, granted a set's page): each
 * call below is made first with full rights, then after a change of
 * effective uid, of effective gid, of one thread's uid only (the raw
 * system call: no glibc broadcast), and of the capability set
 * (CAP_IPC_OWNER dropped), then with the rights back. */
#include "semcommon.h"
#include <pthread.h>
#include <linux/capability.h>

static int root_only, others_read, open_set, group_rw, no_mode;

/* semop +1 then -1 (IPC_NOWAIT) and GETVAL on each set, as one line. */
static void probe(const char *who) {
    int sets[] = { root_only, others_read, open_set, group_rw, no_mode };
    const char *names[] = { "0600", "0644", "0666", "g+rw", "0000" };
    printf("%-26s", who);
    for (int i = 0; i < 5; i++) {
        struct sembuf up = { 0, 1, IPC_NOWAIT | SEM_UNDO }, down = { 0, -1, IPC_NOWAIT | SEM_UNDO };
        int e1 = try_semop(sets[i], &up, 1);
        int e2 = e1 == 0 ? try_semop(sets[i], &down, 1) : e1;
        errno = 0;
        int v = semctl(sets[i], 0, GETVAL);
        printf(" %s: op %s get %s", names[i], ename(e2), v < 0 ? ename(errno) : "0");
    }
    printf("\n");
}

static void *thread_drop(void *arg) {
    (void)arg;
    /* This thread only: the kernel's setresuid, not glibc's broadcast. */
    CHECK(syscall(SYS_setresuid, -1, 65534, -1) == 0, "thread setresuid");
    probe("one thread euid 65534");
    CHECK(syscall(SYS_setresuid, -1, 0, -1) == 0, "thread setresuid back");
    probe("that thread back to 0");
    return NULL;
}

static void set_caps(int keep_ipc_owner) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    CHECK(syscall(SYS_capget, &h, d) == 0, "capget");
    if (keep_ipc_owner)
        d[0].effective |= 1u << CAP_IPC_OWNER;
    else
        d[0].effective &= ~(1u << CAP_IPC_OWNER);
    CHECK(syscall(SYS_capset, &h, d) == 0, "capset");
}

static int mkset(int mode, gid_t gid) {
    int id = semget(IPC_PRIVATE, 1, IPC_CREAT | mode);
    CHECK(id >= 0, "semget");
    struct semid_ds ds;
    union semun arg = { .buf = &ds };
    CHECK(semctl(id, 0, IPC_STAT, arg) == 0, "stat");
    ds.sem_perm.gid = gid;
    ds.sem_perm.mode = (unsigned short)mode;
    CHECK(semctl(id, 0, IPC_SET, arg) == 0, "set");
    return id;
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    root_only = mkset(0600, 0);
    others_read = mkset(0644, 0);
    open_set = mkset(0666, 0);
    CHECK(setresgid(-1, 1234, -1) == 0, "setegid");
    group_rw = mkset(0060, 1234);       /* cgid 1234 too */
    CHECK(setresgid(-1, 0, -1) == 0, "setegid back");
    no_mode = mkset(0000, 0);
    probe("root");
    probe("root again");
    CHECK(setresuid(-1, 65534, -1) == 0, "seteuid");
    probe("euid 65534");
    CHECK(setresuid(-1, 0, -1) == 0, "seteuid back");
    probe("root again");
    CHECK(setresgid(-1, 1234, -1) == 0 && setresuid(-1, 65534, -1) == 0, "setegid, seteuid");
    probe("euid 65534 egid 1234");
    CHECK(setresuid(-1, 0, -1) == 0 && setresgid(-1, 0, -1) == 0, "back");
    probe("root again");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, thread_drop, NULL) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "join");
    probe("main thread, still root");
    set_caps(0);
    probe("root without CAP_IPC_OWNER");
    set_caps(1);
    probe("root with it back");
    int sets[] = { root_only, others_read, open_set, group_rw, no_mode };
    for (int i = 0; i < 5; i++)
        CHECK(semctl(sets[i], 0, IPC_RMID) == 0, "rmid");
    printf("ok\n");
    return 0;
}
