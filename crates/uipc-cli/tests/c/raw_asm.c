/* System V IPC calls made with the `syscall` instruction itself (inline
 * assembly, no libc on the way), as a Go program or another libc makes
 * them: each result is the kernel's raw one (-errno on failure). Also: errno
 * is left alone, calls from a second thread and with every signal blocked
 * work, and a SIGSYS handler of the program's own still gets the SIGSYS
 * that are not IPC calls. As root, also credentials changed by glibc's
 * set*id (with a second thread) and by raw setresuid and capset
 * instructions judge the next calls. One line per step, compared between the kernel
 * (in a fresh IPC namespace) and `uipc run --trap`, System V message
 * queues included. x86-64 only. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>

#define CHECK(cond, what) do { if (!(cond)) { fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, what); exit(1); } } while (0)

static long raw(long n, long a1, long a2, long a3, long a4) {
    long ret;
    register long r10 __asm__("r10") = a4;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

static void step(const char *what, long r) {
    printf("%s -> %ld\n", what, r);
}

#define BAD 8L

static void *in_thread(void *arg) {
    int sem = *(int *)arg;
    struct sembuf up = { 0, 2, 0 };
    step("thread: semop +2", raw(SYS_semop, sem, (long)&up, 1, 0));
    return NULL;
}

static volatile sig_atomic_t program_handler_code = 99;

static void program_sigsys(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    program_handler_code = si->si_code;
}

/* A thread that only waits: glibc's set*id then changes its ids too,
 * through its SIGSETXID broadcast (each thread makes the call itself). */
static int hold[2];

static void *waiter(void *arg) {
    (void)arg;
    char c;
    CHECK(read(hold[0], &c, 1) == 1, "read");
    return NULL;
}

/* Clears (or sets back) CAP_SYS_ADMIN and CAP_IPC_OWNER in the effective
 * set, with raw instructions (capget, capset). */
static long effective_ipc_caps(int on) {
    struct { unsigned version; int pid; } h = { 0x20080522, 0 }; /* _LINUX_CAPABILITY_VERSION_3 */
    struct { unsigned effective, permitted, inheritable; } d[2];
    long r = raw(SYS_capget, (long)&h, (long)d, 0, 0);
    if (r != 0) return r;
    unsigned mask = (1u << 21) | (1u << 15); /* CAP_SYS_ADMIN, CAP_IPC_OWNER */
    if (on) d[0].effective |= mask & d[0].permitted;
    else d[0].effective &= ~mask;
    return raw(SYS_capset, (long)&h, (long)d, 0, 0);
}

/* Root only: credentials changed by glibc (with another thread alive) and
 * by raw instructions are the ones each later call is judged with. */
static void credentials(void) {
    CHECK(pipe(hold) == 0, "pipe");
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waiter, NULL) == 0, "pthread_create");
    step("libc seteuid(1000), two threads", seteuid(1000));
    long shm = raw(SYS_shmget, IPC_PRIVATE, 4096, IPC_CREAT | 0600, 0);
    long sem = raw(SYS_semget, IPC_PRIVATE, 1, IPC_CREAT | 0600, 0);
    step("libc seteuid(0)", seteuid(0));
    CHECK(write(hold[1], "x", 1) == 1, "write");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    step("objects of 1000", shm >= 0 && sem >= 0);
    struct shmid_ds ds;
    step("root: IPC_STAT 1000's shm", raw(SYS_shmctl, shm, IPC_STAT, (long)&ds, 0));
    step("raw setresuid(-1, 2000, -1)", raw(SYS_setresuid, -1, 2000, -1, 0));
    step("euid 2000: IPC_STAT 1000's shm", raw(SYS_shmctl, shm, IPC_STAT, (long)&ds, 0));
    step("raw setresuid(-1, 0, -1)", raw(SYS_setresuid, -1, 0, -1, 0));
    step("raw capset: drop CAP_SYS_ADMIN, CAP_IPC_OWNER", effective_ipc_caps(0));
    step("no caps: IPC_STAT 1000's shm", raw(SYS_shmctl, shm, IPC_STAT, (long)&ds, 0));
    step("no caps: IPC_RMID 1000's shm", raw(SYS_shmctl, shm, IPC_RMID, 0, 0));
    step("no caps: IPC_RMID 1000's sem", raw(SYS_semctl, sem, 0, IPC_RMID, 0));
    step("raw capset: raise them again", effective_ipc_caps(1));
    step("caps: IPC_RMID 1000's shm", raw(SYS_shmctl, shm, IPC_RMID, 0, 0));
    step("caps: IPC_RMID 1000's sem", raw(SYS_semctl, sem, 0, IPC_RMID, 0));
    step("raw setfsuid(0) returns the old fsuid", raw(SYS_setfsuid, 0, 0, 0, 0));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* shm */
    long shm = raw(SYS_shmget, IPC_PRIVATE, 8192, IPC_CREAT | 0600, 0);
    step("shmget >= 0", shm >= 0);
    long a = raw(SYS_shmat, shm, 0, 0, 0);
    step("shmat page-aligned", a > 0 && (a & 4095) == 0);
    long b = raw(SYS_shmat, shm, 0, SHM_RDONLY, 0);
    step("shmat again", b > 0 && b != a);
    if (a > 0 && b > 0) {
        strcpy((char *)a, "through the trap");
        step("same memory", strcmp((char *)b, "through the trap") == 0);
    }
    struct shmid_ds ds;
    step("shmctl IPC_STAT", raw(SYS_shmctl, shm, IPC_STAT, (long)&ds, 0));
    printf("  size %zu nattch %lu mode %o\n", ds.shm_segsz, (unsigned long)ds.shm_nattch, ds.shm_perm.mode & 0777);
    step("shmctl IPC_STAT bad buf", raw(SYS_shmctl, shm, IPC_STAT, BAD, 0));
    step("shmctl cmd 99", raw(SYS_shmctl, shm, 99, 0, 0));
    step("shmget missing", raw(SYS_shmget, 0x7e57, 4096, 0, 0));
    step("shmdt", raw(SYS_shmdt, a, 0, 0, 0));
    step("shmdt unaligned", raw(SYS_shmdt, 0x1001, 0, 0, 0));
    /* errno is the program's: a raw call never sets it */
    errno = 1234;
    raw(SYS_shmctl, -1, IPC_STAT, 0, 0);
    step("errno untouched", errno == 1234);
    /* sem */
    long sem = raw(SYS_semget, IPC_PRIVATE, 2, IPC_CREAT | 0600, 0);
    step("semget >= 0", sem >= 0);
    step("semctl SETVAL 3", raw(SYS_semctl, sem, 0, SETVAL, 3));
    struct sembuf down = { 0, -1, IPC_NOWAIT };
    step("semop -1", raw(SYS_semop, sem, (long)&down, 1, 0));
    step("semctl GETVAL", raw(SYS_semctl, sem, 0, GETVAL, 0));
    step("semop bad sops", raw(SYS_semop, sem, BAD, 1, 0));
    struct sembuf wait = { 1, -1, 0 };
    struct timespec ts = { 0, 1000 };
    step("semtimedop times out", raw(SYS_semtimedop, sem, (long)&wait, 1, (long)&ts));
    step("semtimedop bad timeout", raw(SYS_semtimedop, sem, (long)&wait, 1, BAD));
    /* another thread */
    int isem = (int)sem;
    pthread_t t;
    CHECK(pthread_create(&t, NULL, in_thread, &isem) == 0, "pthread_create");
    CHECK(pthread_join(t, NULL) == 0, "pthread_join");
    step("semctl GETVAL after thread", raw(SYS_semctl, sem, 0, GETVAL, 0));
    /* with every signal blocked */
    sigset_t all, old;
    sigfillset(&all);
    CHECK(sigprocmask(SIG_BLOCK, &all, &old) == 0, "sigprocmask");
    step("all blocked: semctl GETVAL", raw(SYS_semctl, sem, 0, GETVAL, 0));
    CHECK(sigprocmask(SIG_SETMASK, &old, NULL) == 0, "sigprocmask restore");
    /* the program's own SIGSYS handler */
    struct sigaction sa, got;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = program_sigsys;
    sa.sa_flags = SA_SIGINFO;
    CHECK(sigaction(SIGSYS, &sa, NULL) == 0, "sigaction");
    CHECK(sigaction(SIGSYS, NULL, &got) == 0, "sigaction query");
    step("own handler reported back", got.sa_sigaction == program_sigsys);
    step("own handler: semctl GETVAL", raw(SYS_semctl, sem, 0, GETVAL, 0));
    step("own handler not run for IPC", program_handler_code == 99);
    raise(SIGSYS);
    step("own handler gets raise(SIGSYS), si_code", program_handler_code);
    if (geteuid() == 0) credentials();
    /* removal */
    step("shmdt b", raw(SYS_shmdt, b, 0, 0, 0));
    step("shmctl IPC_RMID", raw(SYS_shmctl, shm, IPC_RMID, 0, 0));
    step("semctl IPC_RMID", raw(SYS_semctl, sem, 0, IPC_RMID, 0));
    step("semctl after RMID", raw(SYS_semctl, sem, 0, GETVAL, 0));
    /* message queues (msgrcv's fifth argument, msgflg, stays 0: blocking
     * is not needed, a message is there) */
    long q = raw(SYS_msgget, IPC_PRIVATE, IPC_CREAT | 0600, 0, 0);
    step("msgget", q);
    struct { long t; char x[8]; } mb = { 4, "asm" };
    step("msgsnd", raw(SYS_msgsnd, q, (long)&mb, 3, 0));
    step("msgsnd bad msgp", raw(SYS_msgsnd, q, 8, 3, 0));
    mb.t = 0;
    step("msgrcv", raw(SYS_msgrcv, q, (long)&mb, 8, 4));
    step("msgrcv type", mb.t);
    step("msgctl IPC_RMID", raw(SYS_msgctl, q, IPC_RMID, 0, 0));
    step("mq_unlink absent", raw(SYS_mq_unlink, (long)"rawq", 0, 0, 0));
    long mq = raw(SYS_mq_open, (long)"rawq", O_CREAT | O_RDWR, 0600, 0);
    step("mq_open", mq >= 0);
    step("mq_timedsend", raw(SYS_mq_timedsend, mq, (long)"hi", 2, 3));
    step("mq_unlink", raw(SYS_mq_unlink, (long)"rawq", 0, 0, 0));
    printf("ok\n");
    return 0;
}
