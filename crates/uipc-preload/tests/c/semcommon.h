/* Shared by the semaphore test programs, which run twice: natively in a
 * fresh IPC namespace, and under the shim with "deny" as argv[1], which
 * installs a seccomp filter that kills the process on any of the kernel's
 * System V IPC system calls (so a passing run proves the shim served every
 * call). The two runs' standard outputs are compared line by line: print
 * nothing that differs between them (pids, times) unless masked. */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sched.h>
#include <sys/sem.h>
#include <time.h>

#define UNUSED __attribute__((unused))

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno)); \
    exit(1); } } while (0)

UNUSED static void deny_kernel_ipc(void) {
#if defined(__x86_64__)
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_shmget, 12, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_shmat, 11, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_shmdt, 10, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_shmctl, 9, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_semget, 8, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_semop, 7, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_semtimedop, 6, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_semctl, 5, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_msgget, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_msgsnd, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_msgrcv, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_msgctl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    };
    struct sock_fprog prog = { .len = sizeof f / sizeof f[0], .filter = f };
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
    CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "seccomp");
#endif
}

/* argv[1] == "deny": under the shim. */
UNUSED static void setup(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "deny") == 0)
        deny_kernel_ipc();
}

union semun { int val; struct semid_ds *buf; unsigned short *array; struct seminfo *__buf; };

UNUSED static const char *ename(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL"; case ENOENT: return "ENOENT"; case EEXIST: return "EEXIST";
    case EACCES: return "EACCES"; case EPERM: return "EPERM"; case ENOSPC: return "ENOSPC";
    case E2BIG: return "E2BIG"; case EFAULT: return "EFAULT"; case EFBIG: return "EFBIG";
    case ERANGE: return "ERANGE"; case EAGAIN: return "EAGAIN"; case EIDRM: return "EIDRM";
    case EINTR: return "EINTR"; case ENOMEM: return "ENOMEM"; case ENOSYS: return "ENOSYS";
    default: { static char b[32]; snprintf(b, sizeof b, "errno%d", e); return b; }
    }
}

/* Prints "what -> ret errno". */
#define T(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%-44s -> %ld %s\n", what, r_, r_ == -1 ? ename(errno) : "0"); } while (0)

UNUSED static int getncnt(int id, int n) { return semctl(id, n, GETNCNT); }

/* Spins (yielding) until semaphore n of id has `want` sleepers decrementing. */
UNUSED static void await_ncnt(int id, int n, int want) {
    while (getncnt(id, n) != want)
        sched_yield();
}

UNUSED static void sop(int id, unsigned short num, short op, short flg) {
    struct sembuf b = { num, op, flg };
    CHECK(semop(id, &b, 1) == 0, "semop num %u op %d flg %d", num, op, flg);
}
