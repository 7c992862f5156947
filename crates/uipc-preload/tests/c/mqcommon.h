/* Shared by the POSIX message queue test programs: errno names, a
 * one-line result printer, a wait for another process to sleep in a queue
 * call, and a seccomp filter that kills the process at any of the kernel's
 * mq_* system calls. */
#include "common.h"
#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

UNUSED static const char *ename(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL"; case ENOENT: return "ENOENT"; case EACCES: return "EACCES";
    case EEXIST: return "EEXIST"; case ENAMETOOLONG: return "ENAMETOOLONG"; case EBADF: return "EBADF";
    case EMSGSIZE: return "EMSGSIZE"; case EAGAIN: return "EAGAIN"; case ETIMEDOUT: return "ETIMEDOUT";
    case EINTR: return "EINTR"; case EBUSY: return "EBUSY"; case EMFILE: return "EMFILE";
    case ENOSPC: return "ENOSPC"; case EFAULT: return "EFAULT"; case EPERM: return "EPERM";
    default: return "E?";
    }
}

#define SHOW(what, expr) do { errno = 0; long r_ = (long)(expr); int e_ = errno; \
    printf("%s -> %ld %s\n", what, r_ < 0 ? -1L : r_ >= 0 && r_ < 1000 ? r_ : 1000L, r_ < 0 ? ename(e_) : "0"); } while (0)

UNUSED /* Waits until process `pid` sleeps in a system call that waits for a
 * queue (the kernel's mq_timedsend/receive, or the shim's wait for the
 * daemon's answer). */
static void await_sleeping(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    for (;;) {
        FILE *f = fopen(path, "r");
        long nr = -1;
        if (f) { if (fscanf(f, "%ld", &nr) != 1) nr = -1; fclose(f); }
        if (nr == SYS_mq_timedsend || nr == SYS_mq_timedreceive || nr == SYS_recvmsg) {
            snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
            f = fopen(path, "r");
            char state = 0;
            if (f) { if (fscanf(f, "%*d %*s %c", &state) != 1) state = 0; fclose(f); }
            if (state == 'S') return;
            snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
        }
        sched_yield();
    }
}

UNUSED static void deny_mq(void) {
    static const int nrs[] = { SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive,
                               SYS_mq_notify, SYS_mq_getsetattr };
    kill_at_syscalls(nrs, (int)(sizeof nrs / sizeof nrs[0]));
}


/* Prints a queue's status line, NOTIFY_PID shown as 0, "self" or "other". */
UNUSED static void status_line(const char *what, mqd_t q) {
    char st[128] = { 0 };
    CHECK(lseek(q, 0, SEEK_SET) == 0, "lseek");
    CHECK(read(q, st, sizeof st - 1) > 0, "read status");
    char *p = strstr(st, "NOTIFY_PID:");
    int pid = p ? atoi(p + 11) : -1;
    if (p) *p = 0;
    printf("%s: %sNOTIFY_PID:%s\n", what, st, pid == 0 ? "0" : pid == getpid() ? "self" : "other");
}
