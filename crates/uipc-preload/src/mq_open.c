/* The variadic C entry points of the message queue half of the shim
 * (src/mq.rs): mq_open, whose mode and attr arguments exist only with
 * O_CREAT, read as glibc's (sysdeps/unix/sysv/linux/mq_open.c) reads them;
 * and fcntl, whose third argument is read as an integer for the commands
 * that take one (a pointer travels in the same register), so that
 * F_DUPFD and F_DUPFD_CLOEXEC of a queue's descriptor are seen and
 * F_GETFL of one shows the queue's flags. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

int uipc_preload_mq_open(const char *name, int oflag, unsigned int mode, const struct mq_attr *attr);
void uipc_preload_mq_dup(int oldfd, int newfd);
int uipc_preload_mq_getfl(int fd, int flags);
int uipc_preload_mq_is(int fd);
void uipc_preload_mq_setfl(int fd, int flags);

__attribute__((visibility("default")))
mqd_t mq_open(const char *name, int oflag, ...)
{
    unsigned int mode = 0;
    struct mq_attr *attr = NULL;

    if (oflag & O_CREAT) {
        va_list ap;
        va_start(ap, oflag);
        mode = va_arg(ap, unsigned int);
        attr = va_arg(ap, struct mq_attr *);
        va_end(ap);
    }
    return uipc_preload_mq_open(name, oflag, mode, attr);
}

/* _FORTIFY_SOURCE's mq_open with two arguments (it aborts on O_CREAT in
 * glibc: a call without the mode). */
__attribute__((visibility("default")))
mqd_t __mq_open_2(const char *name, int oflag)
{
    return uipc_preload_mq_open(name, oflag, 0, NULL);
}

typedef int (*fcntl_fn)(int, int, ...);

static int forward(const char *which, int fd, int cmd, unsigned long arg)
{
    fcntl_fn real = (fcntl_fn)dlsym(RTLD_NEXT, which);
    /* setfl(): O_DIRECT needs FMODE_CAN_ODIRECT, which an mqueue file
     * lacks (a pipe takes it as packet mode). */
    if (cmd == F_SETFL && (arg & O_DIRECT) && uipc_preload_mq_is(fd)) {
        errno = EINVAL;
        return -1;
    }
    int r = real(fd, cmd, arg);
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC))
        uipc_preload_mq_dup(fd, r);
    if (r >= 0 && cmd == F_GETFL)
        r = uipc_preload_mq_getfl(fd, r);
    if (r >= 0 && cmd == F_SETFL)
        uipc_preload_mq_setfl(fd, (int)arg);
    return r;
}

__attribute__((visibility("default")))
int fcntl(int fd, int cmd, ...)
{
    va_list ap;
    unsigned long arg;
    va_start(ap, cmd);
    /* Every fcntl command takes at most one argument, an int or a pointer;
     * reading a register-sized one is what glibc's own fcntl does. */
    arg = va_arg(ap, unsigned long);
    va_end(ap);
    return forward("fcntl", fd, cmd, arg);
}

__attribute__((visibility("default")))
int fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    unsigned long arg;
    va_start(ap, cmd);
    arg = va_arg(ap, unsigned long);
    va_end(ap);
    return forward("fcntl64", fd, cmd, arg);
}
