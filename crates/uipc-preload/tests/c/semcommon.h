/* Shared by the semaphore test programs, which run twice: natively in a
 * fresh IPC namespace, and under the shim with "deny" as argv[1], which
 * installs a seccomp filter that kills the process on any of the kernel's
 * System V IPC system calls (so a passing run proves the shim served every
 * call). The two runs' standard outputs are compared line by line: print
 * nothing that differs between them (pids, times) unless masked. */
#include "common.h"
#include <signal.h>
#include <grp.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/sem.h>
#include <time.h>

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
    case ENOMSG: return "ENOMSG";
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

/* Zeroed anonymous memory shared with the children forked after this: the
 * race tests' own bookkeeping (counters, flags), not an IPC object. */
UNUSED static void *shared_alloc(size_t n) {
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap shared");
    return p;
}

/* semop(id, sops, n): 0 on success, else the errno. */
UNUSED static int try_semop(int id, struct sembuf *sops, size_t n) {
    errno = 0;
    return semop(id, sops, n) == 0 ? 0 : errno;
}

/* Waits for child p and checks that it exited with status 0. */
UNUSED static void reap_ok(pid_t p, const char *what) {
    int st;
    CHECK(waitpid(p, &st, 0) == p, "waitpid %s", what);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: wait status %#x", what, st);
}

/* Drops every identity to nobody (65534): groups, gid, uid. */
UNUSED static void become_nobody(void) {
    CHECK(setgroups(0, NULL) == 0 && setgid(65534) == 0 && setuid(65534) == 0, "drop to nobody");
}

/* Spins (yielding) until *counter >= want. */
UNUSED static void await_at_least(long *counter, long want) {
    while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < want)
        sched_yield();
}

#include <pthread.h>
#include <stdint.h>

/* Forks `procs` processes of `threads` threads each running fn, thread k
 * of process p with the argument p * threads + k + 1; each process exits
 * 0 when its threads are done (a watchdog of 120 s on each). The pids go
 * to pids[0..procs). */
UNUSED static void fork_workers(int procs, int threads, void *(*fn)(void *), pid_t *pids) {
    for (int p = 0; p < procs; p++) {
        pids[p] = fork();
        CHECK(pids[p] >= 0, "fork");
        if (pids[p] != 0)
            continue;
        watchdog(120);
        pthread_t t[threads];
        for (int k = 0; k < threads; k++)
            CHECK(pthread_create(&t[k], NULL, fn, (void *)(uintptr_t)(p * threads + k + 1)) == 0, "pthread_create");
        for (int k = 0; k < threads; k++)
            CHECK(pthread_join(t[k], NULL) == 0, "pthread_join");
        _exit(0);
    }
}
