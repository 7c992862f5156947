/* Shared by the shim's test programs: a seccomp filter that kills the
 * process if it ever makes one of the kernel's System V IPC system calls,
 * so a passing program proves that the shim served every call. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define CHECK(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (errno %d %s)\n", errno, strerror(errno)); \
    exit(1); } } while (0)

#define UNUSED __attribute__((unused))

/* Kills the process (after checking the architecture) at any of the
 * system calls numbered in nrs[0..n). */
UNUSED static void kill_at_syscalls(const int *nrs, int n) {
#if defined(__x86_64__)
    struct sock_filter f[64];
    int k = 0;
    CHECK(n + 6 <= 64, "too many system calls");
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    for (int i = 0; i < n; i++)
        f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nrs[i], (unsigned char)(n - i), 0);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    struct sock_fprog prog = { .len = (unsigned short)k, .filter = f };
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
    CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "seccomp");
#else
    (void)nrs; (void)n;
#endif
}

/* Kills the process at any of the kernel's System V IPC system calls. */
UNUSED static void deny_kernel_ipc(void) {
    static const int nrs[] = { SYS_shmget, SYS_shmat, SYS_shmdt, SYS_shmctl, SYS_semget, SYS_semop,
                               SYS_semtimedop, SYS_semctl, SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl };
    kill_at_syscalls(nrs, (int)(sizeof nrs / sizeof nrs[0]));
}

UNUSED static void watchdog_fired(int sig) {
    static const char msg[] = "WATCHDOG: a test process did not finish in time\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    (void)sig;
    _exit(99);
}

/* Ends this process with status 99 and a message on standard error if it
 * still runs `secs` seconds from now, so a hang fails the test instead of
 * stalling it. fork() does not inherit the alarm: each child that could
 * hang calls it again. */
UNUSED static void watchdog(unsigned secs) {
    CHECK(signal(SIGALRM, watchdog_fired) != SIG_ERR, "signal(SIGALRM)");
    alarm(secs);
}
