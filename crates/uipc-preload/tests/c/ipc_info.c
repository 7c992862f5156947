/* The *_INFO commands of shmctl, semctl and msgctl as objects of each kind
 * are created and removed, as sysctls change, as root and as uid 1000 (no
 * permission is checked for any of them): every field and the return
 * value (the highest index in use) as the kernel's. Under the shim, the
 * second of each pair of calls may be answered from the namespace's status
 * region without a round trip. */
#include "semcommon.h"
#include <fcntl.h>
#include <sys/msg.h>
#include <sys/shm.h>

struct msgbuf_ { long mtype; char text[100]; };

static void shm_info(const char *what) {
    for (int pass = 0; pass < 2; pass++) {
        struct shminfo si;
        memset(&si, 0x55, sizeof si);
        errno = 0;
        int r = shmctl(0, IPC_INFO, (struct shmid_ds *)&si);
        printf("%-28s shm IPC_INFO -> %d %s shmmax %lu shmmin %lu shmmni %lu shmseg %lu shmall %lu\n", what, r,
               r < 0 ? ename(errno) : "0", si.shmmax, si.shmmin, si.shmmni, si.shmseg, si.shmall);
        struct shm_info in;
        memset(&in, 0x55, sizeof in);
        r = shmctl(0, SHM_INFO, (struct shmid_ds *)&in);
        printf("%-28s shm SHM_INFO -> %d used_ids %d shm_tot %lu shm_rss %lu shm_swp %lu swap_attempts %lu swap_successes %lu\n",
               what, r, in.used_ids, in.shm_tot, in.shm_rss, in.shm_swp, in.swap_attempts, in.swap_successes);
    }
    errno = 0;
    struct shminfo si;
    int r = shmctl(-1, IPC_INFO, (struct shmid_ds *)&si);
    printf("%-28s shm IPC_INFO id -1 -> %d %s\n", what, r, r < 0 ? ename(errno) : "0");
}

static void sem_info(const char *what) {
    for (int pass = 0; pass < 2; pass++) {
        for (int cmd = 0; cmd < 2; cmd++) {
            struct seminfo si;
            memset(&si, 0x55, sizeof si);
            union semun u = { .__buf = &si };
            int r = semctl(0, 0, cmd ? SEM_INFO : IPC_INFO, u);
            printf("%-28s sem %s -> %d map %d mni %d mns %d mnu %d msl %d opm %d ume %d usz %d vmx %d aem %d\n",
                   what, cmd ? "SEM_INFO" : "IPC_INFO", r, si.semmap, si.semmni, si.semmns, si.semmnu,
                   si.semmsl, si.semopm, si.semume, si.semusz, si.semvmx, si.semaem);
        }
    }
}

static void msg_info(const char *what) {
    for (int pass = 0; pass < 2; pass++) {
        for (int cmd = 0; cmd < 2; cmd++) {
            struct msginfo mi;
            memset(&mi, 0x55, sizeof mi);
            int r = msgctl(0, cmd ? MSG_INFO : IPC_INFO, (struct msqid_ds *)&mi);
            printf("%-28s msg %s -> %d pool %d map %d max %d mnb %d mni %d ssz %d tql %d seg %u\n", what,
                   cmd ? "MSG_INFO" : "IPC_INFO", r, mi.msgpool, mi.msgmap, mi.msgmax, mi.msgmnb, mi.msgmni,
                   mi.msgssz, mi.msgtql, (unsigned)mi.msgseg);
        }
    }
}

static void all(const char *what) {
    shm_info(what);
    sem_info(what);
    msg_info(what);
}

static void write_sysctl(const char *name, const char *value) {
    char path[64];
    snprintf(path, sizeof path, "/proc/sys/kernel/%s", name);
    int fd = open(path, O_WRONLY);
    CHECK(fd >= 0, "open %s", path);
    CHECK(write(fd, value, strlen(value)) == (ssize_t)strlen(value), "write %s", path);
    close(fd);
}

int main(int argc, char **argv) {
    setup(argc, argv);
    watchdog(60);
    all("empty");

    /* Objects at indexes 0, 1, 2 of each kind, then the middle removed. */
    int shm[3], sem[3], msg[3];
    for (int i = 0; i < 3; i++) {
        shm[i] = shmget(IPC_PRIVATE, 5000 * (i + 1), IPC_CREAT | 0600);
        sem[i] = semget(IPC_PRIVATE, 2 + i, IPC_CREAT | 0600);
        msg[i] = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
        CHECK(shm[i] >= 0 && sem[i] >= 0 && msg[i] >= 0, "create %d", i);
    }
    all("three of each");
    struct msgbuf_ m = { 1, "hello" };
    CHECK(msgsnd(msg[2], &m, 5, 0) == 0 && msgsnd(msg[2], &m, 17, 0) == 0, "msgsnd");
    all("two messages");
    CHECK(shmctl(shm[1], IPC_RMID, NULL) == 0 && semctl(sem[1], 0, IPC_RMID) == 0 &&
              msgctl(msg[1], IPC_RMID, NULL) == 0, "remove the middle");
    all("middle removed");
    CHECK(shmctl(shm[2], IPC_RMID, NULL) == 0 && semctl(sem[2], 0, IPC_RMID) == 0 &&
              msgctl(msg[2], IPC_RMID, NULL) == 0, "remove the last");
    all("last removed");

    /* The namespace's limits change. */
    write_sysctl("shmmax", "1000000");
    write_sysctl("shmall", "4242");
    write_sysctl("shmmni", "100");
    write_sysctl("sem", "100 2000 50 64");
    write_sysctl("msgmax", "4000");
    write_sysctl("msgmnb", "9000");
    write_sysctl("msgmni", "17");
    all("sysctls written");

    /* A process that is not root: no permission is checked. */
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        CHECK(setuid(1000) == 0, "setuid");
        all("uid 1000");
        int s = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
        CHECK(s >= 0, "uid 1000 shmget");
        all("uid 1000, own segment");
        CHECK(shmctl(s, IPC_RMID, NULL) == 0, "uid 1000 rmid");
        _exit(0);
    }
    reap_ok(c, "uid 1000 child");
    all("after the child");

    CHECK(shmctl(shm[0], IPC_RMID, NULL) == 0 && semctl(sem[0], 0, IPC_RMID) == 0 &&
              msgctl(msg[0], IPC_RMID, NULL) == 0, "remove the first");
    all("none left");

    /* A fresh namespace: its own limits and objects. */
    CHECK(unshare(CLONE_NEWIPC) == 0, "unshare");
    all("after unshare");
    printf("ok\n");
    return 0;
}
