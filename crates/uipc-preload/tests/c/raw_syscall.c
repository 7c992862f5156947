/* Every System V IPC call made through libc's syscall(), as root and then
 * as nobody (dropped with raw syscall(SYS_setresuid) after the first call):
 * values, errno (EFAULT for bad pointers included) and the raw calls'
 * own conventions (int arguments are the register's low 32 bits; semctl's
 * union by value; shmat returns the address). Then capabilities dropped
 * with raw syscall(SYS_capset). One line per call, compared with the
 * kernel's in a fresh IPC namespace, System V message queues included.
 * With argument "deny" the kernel's IPC calls kill the process. Needs
 * root. */
#include "common.h"
#include <sys/sem.h>
#include <sys/msg.h>
#include <fcntl.h>
#include <linux/capability.h>

static void step(const char *what, long r) {
    printf("%s -> %ld%s%s\n", what, r, r == -1 ? " " : "", r == -1 ? strerror(errno) : "");
    errno = 0;
}

#define HI (1L << 32) /* bits the kernel drops from an int argument */
#define BAD 8L        /* an unmapped address */

/* Every call on a segment and a set this identity creates, then on the
 * ones root created (ids given), as the kernel judges this identity. */
static void exercise(const char *who, int root_shm, int root_sem) {
    char what[128];
#define S(label, call) do { snprintf(what, sizeof what, "%s: %s", who, label); step(what, (call)); } while (0)
    /* shmget */
    int shm = (int)syscall(SYS_shmget, IPC_PRIVATE, 8192, IPC_CREAT | 0600);
    S("shmget private", shm >= 0 ? 0 : -1);
    S("shmget key hi bits", syscall(SYS_shmget, HI | 0x5eed, 4096, HI | IPC_CREAT | IPC_EXCL | 0600) >= 0 ? 0 : -1);
    S("shmget key again excl", syscall(SYS_shmget, 0x5eed, 4096, IPC_CREAT | IPC_EXCL | 0600));
    S("shmget size 0", syscall(SYS_shmget, IPC_PRIVATE, 0, 0600));
    S("shmget missing", syscall(SYS_shmget, 0x7e57, 4096, 0));
    /* shmat returns the address */
    long addr = syscall(SYS_shmat, shm, 0, 0);
    S("shmat", addr == -1 ? -1 : (addr & 4095));
    if (addr != -1) {
        memset((void *)addr, 7, 8192);
        S("shmat again (fixed, remap)", syscall(SYS_shmat, shm, addr, SHM_REMAP) == addr ? 0 : -1);
        S("shmdt", syscall(SYS_shmdt, addr));
    }
    S("shmat bad id", syscall(SYS_shmat, -1, 0, 0));
    S("shmat id hi bits", syscall(SYS_shmat, HI | -1L, 0, 0));
    S("shmdt unaligned", syscall(SYS_shmdt, 0x1001));
    S("shmdt nothing there", syscall(SYS_shmdt, 0x10000));
    /* shmctl */
    struct shmid_ds ds;
    memset(&ds, 0, sizeof ds);
    S("shmctl IPC_STAT", syscall(SYS_shmctl, shm, IPC_STAT, &ds));
    printf("  size %zu mode %o nattch %lu cpid-is-me %d\n", ds.shm_segsz, ds.shm_perm.mode & 0777,
           (unsigned long)ds.shm_nattch, ds.shm_cpid == getpid());
    S("shmctl IPC_STAT bad buf", syscall(SYS_shmctl, shm, IPC_STAT, BAD));
    S("shmctl IPC_SET bad buf", syscall(SYS_shmctl, shm, IPC_SET, BAD));
    S("shmctl IPC_STAT|IPC_64", syscall(SYS_shmctl, shm, IPC_STAT | 0x100, &ds));
    S("shmctl cmd hi bits", syscall(SYS_shmctl, shm, HI | IPC_STAT, &ds));
    S("shmctl cmd 99", syscall(SYS_shmctl, shm, 99, &ds));
    ds.shm_perm.mode = 0640;
    S("shmctl IPC_SET", syscall(SYS_shmctl, shm, IPC_SET, &ds));
    struct shminfo si;
    S("shmctl IPC_INFO >= 0", syscall(SYS_shmctl, 0, IPC_INFO, &si) >= 0 ? 0 : -1);
    S("shmctl IPC_INFO bad buf", syscall(SYS_shmctl, 0, IPC_INFO, BAD));
    struct shm_info in;
    S("shmctl SHM_INFO", syscall(SYS_shmctl, 0, SHM_INFO, &in) >= 0 ? in.used_ids : -1);
    /* root's segment (mode 0600) */
    S("root's shm: IPC_STAT", syscall(SYS_shmctl, root_shm, IPC_STAT, &ds));
    S("root's shm: shmat", syscall(SYS_shmat, root_shm, 0, SHM_RDONLY) == -1 ? -1 : 0);
    memset(&ds, 0, sizeof ds);
    S("root's shm: IPC_SET", syscall(SYS_shmctl, root_shm, IPC_SET, &ds));
    S("root's shm: IPC_RMID", syscall(SYS_shmctl, root_shm, IPC_RMID, 0));

    /* semget */
    int sem = (int)syscall(SYS_semget, IPC_PRIVATE, HI | 3, IPC_CREAT | 0600);
    S("semget private (nsems hi bits)", sem >= 0 ? 0 : -1);
    S("semget nsems -1", syscall(SYS_semget, IPC_PRIVATE, -1, IPC_CREAT | 0600));
    S("semget missing", syscall(SYS_semget, 0x7e58, 1, 0));
    /* semctl: the fourth argument is the union, by value */
    S("semctl SETVAL 5 (hi bits)", syscall(SYS_semctl, sem, 0, SETVAL, HI | 5));
    S("semctl GETVAL", syscall(SYS_semctl, sem, 0, GETVAL, BAD));
    S("semctl SETVAL -1", syscall(SYS_semctl, sem, 1, SETVAL, -1L));
    S("semctl SETVAL 32768", syscall(SYS_semctl, sem, 1, SETVAL, 32768L));
    unsigned short vals[3] = { 1, 2, 3 }, got[3] = { 0, 0, 0 };
    S("semctl SETALL", syscall(SYS_semctl, sem, 0, SETALL, vals));
    S("semctl SETALL bad array", syscall(SYS_semctl, sem, 0, SETALL, BAD));
    S("semctl GETALL", syscall(SYS_semctl, sem, 0, GETALL, got));
    printf("  values %u %u %u\n", got[0], got[1], got[2]);
    S("semctl GETALL bad array", syscall(SYS_semctl, sem, 0, GETALL, BAD));
    struct semid_ds sds;
    memset(&sds, 0, sizeof sds);
    S("semctl IPC_STAT", syscall(SYS_semctl, sem, 0, IPC_STAT, &sds));
    printf("  nsems %lu mode %o\n", (unsigned long)sds.sem_nsems, sds.sem_perm.mode & 0777);
    S("semctl IPC_STAT bad buf", syscall(SYS_semctl, sem, 0, IPC_STAT, BAD));
    S("semctl IPC_SET bad buf", syscall(SYS_semctl, sem, 0, IPC_SET, BAD));
    S("semctl IPC_STAT|IPC_64", syscall(SYS_semctl, sem, 0, IPC_STAT | 0x100, &sds));
    S("semctl cmd hi bits", syscall(SYS_semctl, sem, 0, HI | GETVAL, 0));
    S("semctl GETNCNT", syscall(SYS_semctl, sem, 0, GETNCNT, BAD));
    S("semctl GETPID is me", syscall(SYS_semctl, sem, 0, GETPID, BAD) == getpid() ? 1 : 0);
    S("semctl semnum 3", syscall(SYS_semctl, sem, 3, GETVAL, 0));
    struct seminfo smi;
    S("semctl IPC_INFO >= 0", syscall(SYS_semctl, 0, 0, IPC_INFO, &smi) >= 0 ? 0 : -1);
    S("semctl SEM_INFO bad buf", syscall(SYS_semctl, 0, 0, SEM_INFO, BAD));
    /* semop, semtimedop */
    struct sembuf op[2] = { { 0, -1, IPC_NOWAIT }, { 1, 1, 0 } };
    S("semop", syscall(SYS_semop, sem, op, 2));
    S("semop nsops hi bits (1)", syscall(SYS_semop, sem, op, HI | 1));
    S("semop would block", syscall(SYS_semop, sem, op, 1));
    S("semop nsops 0", syscall(SYS_semop, sem, op, 0));
    S("semop bad sops", syscall(SYS_semop, sem, BAD, 1));
    S("semop too many", syscall(SYS_semop, sem, op, 100000));
    struct timespec ts = { 0, 1000 };
    struct sembuf wait0 = { 0, -100, 0 };
    S("semtimedop times out", syscall(SYS_semtimedop, sem, &wait0, 1, &ts));
    S("semtimedop bad timeout", syscall(SYS_semtimedop, sem, &wait0, 1, BAD));
    struct timespec bad_ns = { 0, 1000000000 };
    S("semtimedop tv_nsec 1e9", syscall(SYS_semtimedop, sem, &wait0, 1, &bad_ns));
    S("semtimedop NULL timeout, nowait", syscall(SYS_semtimedop, sem, op, 1, NULL));
    S("semctl GETVAL 0", syscall(SYS_semctl, sem, 0, GETVAL, 0));
    S("semctl GETVAL 1", syscall(SYS_semctl, sem, 1, GETVAL, 0));
    /* root's set (mode 0600) */
    struct sembuf one = { 0, 1, IPC_NOWAIT };
    S("root's sem: semop", syscall(SYS_semop, root_sem, &one, 1));
    S("root's sem: GETVAL", syscall(SYS_semctl, root_sem, 0, GETVAL, 0));
    S("root's sem: SETVAL", syscall(SYS_semctl, root_sem, 0, SETVAL, 1L));
    S("root's sem: IPC_RMID", syscall(SYS_semctl, root_sem, 0, IPC_RMID, 0));
    /* removal */
    S("shmctl IPC_RMID", syscall(SYS_shmctl, shm, IPC_RMID, BAD));
    S("semctl IPC_RMID", syscall(SYS_semctl, sem, 0, IPC_RMID, BAD));
    S("semctl after RMID", syscall(SYS_semctl, sem, 0, GETVAL, 0));
    int keyed = (int)syscall(SYS_shmget, 0x5eed, 0, 0);
    S("shmctl IPC_RMID keyed", syscall(SYS_shmctl, keyed, IPC_RMID, 0));
#undef S
}

/* Clears (or sets back) CAP_SYS_ADMIN and CAP_IPC_OWNER in the effective
 * set, with raw syscall(SYS_capget/SYS_capset). */
static long effective_ipc_caps(int on) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0) return -1;
    unsigned mask = (1u << CAP_SYS_ADMIN) | (1u << CAP_IPC_OWNER);
    if (on) d[0].effective |= mask & d[0].permitted;
    else d[0].effective &= ~mask;
    return syscall(SYS_capset, &h, d);
}

static void capabilities(void) {
    /* An object of uid 1000's (creator and owner), mode 0600. */
    CHECK(seteuid(1000) == 0, "seteuid");
    int shm = (int)syscall(SYS_shmget, IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    int sem = (int)syscall(SYS_semget, IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(seteuid(0) == 0, "seteuid 0");
    CHECK(shm >= 0 && sem >= 0, "objects of 1000");
    struct shmid_ds ds;
    step("caps: IPC_STAT 1000's shm", syscall(SYS_shmctl, shm, IPC_STAT, &ds));
    step("raw capset: drop CAP_SYS_ADMIN, CAP_IPC_OWNER", effective_ipc_caps(0));
    step("no caps: IPC_STAT 1000's shm", syscall(SYS_shmctl, shm, IPC_STAT, &ds));
    step("no caps: shmat 1000's shm", syscall(SYS_shmat, shm, 0, 0) == -1 ? -1 : 0);
    step("no caps: IPC_RMID 1000's shm", syscall(SYS_shmctl, shm, IPC_RMID, 0));
    step("no caps: GETVAL 1000's sem", syscall(SYS_semctl, sem, 0, GETVAL, 0));
    step("no caps: IPC_RMID 1000's sem", syscall(SYS_semctl, sem, 0, IPC_RMID, 0));
    step("raw capset: raise them again", effective_ipc_caps(1));
    step("caps: IPC_RMID 1000's shm", syscall(SYS_shmctl, shm, IPC_RMID, 0));
    step("caps: IPC_RMID 1000's sem", syscall(SYS_semctl, sem, 0, IPC_RMID, 0));
}

int main(int argc, char **argv) {
    int deny = argc > 1 && strcmp(argv[1], "deny") == 0;
    if (deny) deny_kernel_ipc();
    setvbuf(stdout, NULL, _IONBF, 0);
    /* Root's objects: one pair judged (and removed) by root, one by nobody. */
    int root_shm = (int)syscall(SYS_shmget, IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    int root_sem = (int)syscall(SYS_semget, IPC_PRIVATE, 1, IPC_CREAT | 0600);
    int mine_shm = (int)syscall(SYS_shmget, IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    int mine_sem = (int)syscall(SYS_semget, IPC_PRIVATE, 1, IPC_CREAT | 0600);
    CHECK(root_shm >= 0 && root_sem >= 0 && mine_shm >= 0 && mine_sem >= 0, "root's objects");
    exercise("root", mine_shm, mine_sem);
    capabilities();
    /* System V message queues through raw calls. */
    long q = syscall(SYS_msgget, IPC_PRIVATE, IPC_CREAT | 0600);
    step("raw msgget", q);
    struct { long t; char x[8]; } mb = { 5, "raw" };
    step("raw msgsnd", syscall(SYS_msgsnd, q | HI, &mb, 3, 0));
    step("raw msgsnd bad msgp", syscall(SYS_msgsnd, q, 8, 3, 0));
    mb.t = 0;
    step("raw msgrcv type -10", syscall(SYS_msgrcv, q, &mb, 8, -10, IPC_NOWAIT));
    printf("  type %ld text %.3s\n", mb.t, mb.x);
    step("raw msgrcv empty", syscall(SYS_msgrcv, q, &mb, 8, 0, IPC_NOWAIT));
    step("raw msgctl IPC_STAT bad buf", syscall(SYS_msgctl, q, IPC_STAT, 8));
    step("raw msgctl IPC_RMID", syscall(SYS_msgctl, q, IPC_RMID, NULL));
    /* POSIX message queues, the kernel's calls: names without glibc's '/'. */
    step("raw mq_unlink absent", syscall(SYS_mq_unlink, "rawq"));
    step("raw mq_unlink /x", syscall(SYS_mq_unlink, "/x"));
    step("raw mq_open bad attr without O_CREAT", syscall(SYS_mq_open, "rawq", O_RDWR, 0, BAD));
    long mq = syscall(SYS_mq_open, "rawq", O_CREAT | O_RDWR, 0600, NULL);
    step("raw mq_open create", mq >= 0);
    step("raw mq_timedsend", syscall(SYS_mq_timedsend, mq, "hi", 2, 7, NULL));
    unsigned prio = 0;
    char mbuf[8192];
    step("raw mq_timedreceive", syscall(SYS_mq_timedreceive, mq, mbuf, sizeof mbuf, &prio, NULL));
    step("  prio", prio);
    step("raw mq_getsetattr bad new", syscall(SYS_mq_getsetattr, mq, BAD, NULL));
    step("raw mq_notify NULL", syscall(SYS_mq_notify, mq, NULL));
    step("raw mq_unlink", syscall(SYS_mq_unlink, "rawq"));
    close((int)mq);
    /* Everything else goes to the kernel unchanged. */
    step("getpid", syscall(SYS_getpid) == getpid() ? 1 : 0);
    step("close(-1)", syscall(SYS_close, -1));
    /* Dropped with raw calls: only this (the only) thread changes. */
    step("raw setgroups([])", syscall(SYS_setgroups, 0, NULL));
    step("raw setresgid(nobody)", syscall(SYS_setresgid, 65534, 65534, 65534));
    step("raw setresuid(nobody)", syscall(SYS_setresuid, 65534, 65534, 65534));
    exercise("nobody", root_shm, root_sem);
    printf("ok\n");
    return 0;
}
