/* semctl's C entry point: the one variadic function of the shim.
 *
 * Like glibc's (sysdeps/unix/sysv/linux/semctl.c), it reads the fourth
 * argument (a union semun, passed by value: one register-sized integer on
 * the targets uipc builds for) only for the commands that have one, and
 * never for the others, whose callers pass nothing there. Everything else
 * is done in Rust (src/sem.rs, uipc_preload_semctl). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <sys/ipc.h>
#include <sys/sem.h>

int uipc_preload_semctl(int semid, int semnum, int cmd, unsigned long arg);

__attribute__((visibility("default")))
int semctl(int semid, int semnum, int cmd, ...)
{
    unsigned long arg = 0;
    va_list ap;

    switch (cmd) {
    case SETVAL:   /* arg.val */
    case GETALL:   /* arg.array */
    case SETALL:
    case IPC_STAT: /* arg.buf */
    case IPC_SET:
    case SEM_STAT:
    case SEM_STAT_ANY:
    case IPC_INFO: /* arg.__buf */
    case SEM_INFO:
        va_start(ap, cmd);
        arg = va_arg(ap, unsigned long);
        va_end(ap);
        break;
    default:
        break;
    }
    return uipc_preload_semctl(semid, semnum, cmd, arg);
}
