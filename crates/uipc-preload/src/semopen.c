/* sem_open's C entry point: variadic, like glibc's
 * (sysdeps/pthread/sem_open.c), it reads mode and value only when O_CREAT
 * is given. Everything else is done in Rust (src/pshm.rs,
 * uipc_preload_sem_open). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <semaphore.h>
#include <stdarg.h>
#include <sys/types.h>

sem_t *uipc_preload_sem_open(const char *name, int oflag, unsigned int mode, unsigned int value);

__attribute__((visibility("default")))
sem_t *sem_open(const char *name, int oflag, ...)
{
    unsigned int mode = 0;
    unsigned int value = 0;
    va_list ap;

    if (oflag & O_CREAT) {
        va_start(ap, oflag);
        mode = va_arg(ap, mode_t);
        value = va_arg(ap, unsigned int);
        va_end(ap);
    }
    return uipc_preload_sem_open(name, oflag, mode, value);
}
