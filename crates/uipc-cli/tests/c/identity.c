/* Identities under uipc: the same program runs in a fresh kernel IPC
 * namespace and under `uipc run --deny-kernel-ipc`, and prints the same.
 *
 * Root creates 0600 objects (and 0666 ones) in a helper child, then the
 * process that probes them is nobody:
 *   exec-nobody  from the start: the helper's sibling is exec'd through
 *                `setpriv --reuid=65534 --regid=65534 --clear-groups`
 *   setuid       drops with setgroups/setgid/setuid before its first call
 *   setresuid    drops su-style (setgroups, setresgid, setresuid) before
 *                its first call
 *   half         calls as root first (creates, attaches, semops), then
 *                drops with setuid and probes
 * The probe uses shm and sem as nobody — every ctl command, against the
 * root objects (EACCES/EPERM) and its own ones — and sleeps in semop in a
 * second thread (the shim sleeps on a pooled connection opened after the
 * drop), woken by the main thread. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/wait.h>

#define K_SHM 0x1d00
#define K_SEM 0x1d01
#define K_OPEN_SEM 0x1d02

union semun { int val; struct semid_ds *buf; unsigned short *array; struct seminfo *__buf; };

static const char *ename(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL"; case ENOENT: return "ENOENT"; case EEXIST: return "EEXIST";
    case EACCES: return "EACCES"; case EPERM: return "EPERM"; case ENOSPC: return "ENOSPC";
    case ENOMEM: return "ENOMEM"; case ENOSYS: return "ENOSYS"; case EAGAIN: return "EAGAIN";
    case EIDRM: return "EIDRM"; case ERANGE: return "ERANGE"; case EFAULT: return "EFAULT";
    default: { static char b[32]; snprintf(b, sizeof b, "errno%d", e); return b; }
    }
}

/* Prints "what -> ok|-1 ERRNO" (ids and addresses vary: only success). */
#define T(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%-36s -> %s\n", what, r_ == -1 ? ename(errno) : "ok"); } while (0)
/* Prints the value itself. */
#define V(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%-36s -> %ld %s\n", what, r_, r_ == -1 ? ename(errno) : ""); } while (0)

static void die(const char *what) {
    printf("FAIL %s: %s\n", what, strerror(errno));
    exit(1);
}

/* As root: the objects nobody is then judged against. */
static void make_root_objects(void) {
    int shm = shmget(K_SHM, 4096, IPC_CREAT | IPC_EXCL | 0600);
    int sem = semget(K_SEM, 2, IPC_CREAT | IPC_EXCL | 0600);
    int open_sem = semget(K_OPEN_SEM, 1, IPC_CREAT | IPC_EXCL | 0666);
    if (shm < 0 || sem < 0 || open_sem < 0) die("root objects");
    printf("root: objects made\n");
}

static int sleeper_id;
static int sleeper_result = -2, sleeper_errno;

static void *sleeper(void *arg) {
    (void)arg;
    struct sembuf down = {0, -1, 0};
    sleeper_result = semop(sleeper_id, &down, 1);
    sleeper_errno = sleeper_result ? errno : 0;
    return NULL;
}

/* A second thread sleeps in semop on `id` until the main thread posts. */
static void sleep_and_wake(const char *what, int id) {
    sleeper_id = id;
    sleeper_result = -2;
    pthread_t t;
    if (pthread_create(&t, NULL, sleeper, NULL) != 0) die("pthread_create");
    int n = -1;
    for (long i = 0; i < 200000 && (n = semctl(id, 0, GETNCNT)) != 1; i++) sched_yield();
    printf("%s: sleeper waiting: semncnt %d\n", what, n);
    struct sembuf up = {0, 1, 0};
    T("  post", semop(id, &up, 1));
    pthread_join(t, NULL);
    printf("%s: sleeper woke: %d %s\n", what, sleeper_result, ename(sleeper_errno));
}

static void probe(void) {
    printf("probe: euid %d egid %d\n", (int)geteuid(), (int)getegid());
    struct shmid_ds sds;
    struct semid_ds mds;
    struct shminfo si;
    struct seminfo mi;
    unsigned short vals[2] = {1, 2};

    /* Root's 0600 segment. */
    int shm = shmget(K_SHM, 0, 0);
    printf("shmget(key, 0) -> %s\n", shm >= 0 ? "ok" : ename(errno));
    T("shmget(key, 0600)", shmget(K_SHM, 0, 0600));
    T("shmat", shmat(shm, NULL, 0));
    T("shmat RDONLY", shmat(shm, NULL, SHM_RDONLY));
    T("shmctl IPC_STAT", shmctl(shm, IPC_STAT, &sds));
    memset(&sds, 0, sizeof sds);
    sds.shm_perm.uid = 65534; sds.shm_perm.gid = 65534; sds.shm_perm.mode = 0666;
    T("shmctl IPC_SET", shmctl(shm, IPC_SET, &sds));
    T("shmctl SHM_LOCK", shmctl(shm, SHM_LOCK, NULL));
    T("shmctl SHM_UNLOCK", shmctl(shm, SHM_UNLOCK, NULL));
    T("shmctl SHM_STAT", shmctl(0, SHM_STAT, &sds));
    T("shmctl SHM_STAT_ANY", shmctl(0, SHM_STAT_ANY, &sds));
    printf("  SHM_STAT_ANY uid %d mode %o\n", (int)sds.shm_perm.uid, (unsigned)sds.shm_perm.mode & 0777);
    V("shmctl IPC_INFO", shmctl(0, IPC_INFO, (struct shmid_ds *)&si));
    V("shmctl SHM_INFO", shmctl(0, SHM_INFO, (struct shmid_ds *)&si));
    T("shmctl IPC_RMID", shmctl(shm, IPC_RMID, NULL));

    /* Root's 0600 set. */
    int sem = semget(K_SEM, 0, 0);
    printf("semget(key, 0) -> %s\n", sem >= 0 ? "ok" : ename(errno));
    T("semget(key, 0600)", semget(K_SEM, 0, 0600));
    union semun a;
    T("semctl GETVAL", semctl(sem, 0, GETVAL));
    a.val = 3;
    T("semctl SETVAL", semctl(sem, 0, SETVAL, a));
    a.array = vals;
    T("semctl GETALL", semctl(sem, 0, GETALL, a));
    T("semctl SETALL", semctl(sem, 0, SETALL, a));
    T("semctl GETPID", semctl(sem, 0, GETPID));
    T("semctl GETNCNT", semctl(sem, 0, GETNCNT));
    T("semctl GETZCNT", semctl(sem, 0, GETZCNT));
    a.buf = &mds;
    T("semctl IPC_STAT", semctl(sem, 0, IPC_STAT, a));
    memset(&mds, 0, sizeof mds);
    mds.sem_perm.uid = 65534; mds.sem_perm.gid = 65534; mds.sem_perm.mode = 0666;
    T("semctl IPC_SET", semctl(sem, 0, IPC_SET, a));
    T("semctl SEM_STAT", semctl(0, 0, SEM_STAT, a));
    T("semctl SEM_STAT_ANY", semctl(0, 0, SEM_STAT_ANY, a));
    a.__buf = &mi;
    V("semctl IPC_INFO", semctl(0, 0, IPC_INFO, a));
    V("semctl SEM_INFO", semctl(0, 0, SEM_INFO, a));
    struct sembuf op = {0, 1, IPC_NOWAIT};
    T("semop", semop(sem, &op, 1));
    T("semctl IPC_RMID", semctl(sem, 0, IPC_RMID));

    /* Root's 0666 set: nobody sleeps on it. */
    int open_sem = semget(K_OPEN_SEM, 1, 0666);
    printf("semget(open key) -> %s\n", open_sem >= 0 ? "ok" : ename(errno));
    sleep_and_wake("root's 0666 set", open_sem);

    /* Nobody's own objects. */
    int mine = shmget(IPC_PRIVATE, 8192, IPC_CREAT | 0600);
    printf("own shmget -> %s\n", mine >= 0 ? "ok" : ename(errno));
    char *p = shmat(mine, NULL, 0);
    printf("own shmat -> %s\n", p != (void *)-1 ? "ok" : ename(errno));
    if (p != (void *)-1) {
        strcpy(p, "nobody's");
        T("own shmdt", shmdt(p));
    }
    T("own shmctl IPC_STAT", shmctl(mine, IPC_STAT, &sds));
    printf("  uid %d gid %d cuid %d mode %o nattch %ld\n", (int)sds.shm_perm.uid, (int)sds.shm_perm.gid,
           (int)sds.shm_perm.cuid, (unsigned)sds.shm_perm.mode & 0777, (long)sds.shm_nattch);
    sds.shm_perm.mode = 0640;
    T("own shmctl IPC_SET", shmctl(mine, IPC_SET, &sds));
    sds.shm_perm.uid = 0;
    T("own shmctl IPC_SET uid 0", shmctl(mine, IPC_SET, &sds));
    T("own shmctl SHM_LOCK", shmctl(mine, SHM_LOCK, NULL));
    T("own shmctl SHM_UNLOCK", shmctl(mine, SHM_UNLOCK, NULL));
    T("own shmctl IPC_RMID", shmctl(mine, IPC_RMID, NULL));

    int mset = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
    printf("own semget -> %s\n", mset >= 0 ? "ok" : ename(errno));
    a.array = vals;
    T("own semctl SETALL", semctl(mset, 0, SETALL, a));
    V("own semctl GETVAL 1", semctl(mset, 1, GETVAL));
    a.val = 0;
    T("own semctl SETVAL 0", semctl(mset, 0, SETVAL, a));
    sleep_and_wake("own set", mset);
    a.buf = &mds;
    T("own semctl IPC_STAT", semctl(mset, 0, IPC_STAT, a));
    printf("  uid %d cuid %d mode %o nsems %ld\n", (int)mds.sem_perm.uid, (int)mds.sem_perm.cuid,
           (unsigned)mds.sem_perm.mode & 0777, (long)mds.sem_nsems);
    T("own semctl IPC_RMID", semctl(mset, 0, IPC_RMID));
}

static void drop_setuid(void) {
    if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) die("setuid drop");
}

static void drop_setresuid(void) {
    gid_t g = 65534;
    if (setgroups(1, &g) || setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534)) die("setresuid drop");
}

/* The root objects, made by a helper child: this process has made no
 * IPC call yet. */
static void root_helper(void) {
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        make_root_objects();
        fflush(stdout);
        _exit(0);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) die("root helper");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "probe") == 0) {
        probe();
        return 0;
    }
    if (strcmp(mode, "exec-nobody") == 0) {
        root_helper();
        pid_t pid = fork();
        if (pid == 0) {
            execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", argv[0],
                  "probe", (char *)NULL);
            die("exec setpriv");
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) die("nobody child");
    } else if (strcmp(mode, "setuid") == 0) {
        root_helper();
        drop_setuid();
        probe();
    } else if (strcmp(mode, "setresuid") == 0) {
        root_helper();
        drop_setresuid();
        probe();
    } else if (strcmp(mode, "half") == 0) {
        make_root_objects();
        int shm = shmget(K_SHM, 0, 0600);
        void *p = shmat(shm, NULL, 0);
        printf("root: attached %s\n", p != (void *)-1 ? "ok" : ename(errno));
        int open_sem = semget(K_OPEN_SEM, 1, 0);
        sleep_and_wake("root, before the drop", open_sem);
        drop_setuid();
        probe();
        /* The attach made as root is still counted. */
        T("shmdt of root's attach", shmdt(p));
    } else {
        fprintf(stderr, "usage: identity exec-nobody|setuid|setresuid|half\n");
        return 2;
    }
    printf("ok\n");
    return 0;
}
