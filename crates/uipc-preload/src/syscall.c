/* syscall's C entry point: libc's `long syscall(long number, ...)`,
 * interposed.
 *
 * Like glibc's (sysdeps/unix/sysv/linux/x86_64/syscall.S), it takes six
 * argument words whatever the number: the kernel reads six registers, and
 * a caller that passed fewer leaves whatever the registers held, which the
 * called system call ignores. Reading six `long`s through va_arg is the C
 * way to the same words (on x86_64 the first five are registers, the sixth
 * the caller's stack slot, read but never used when not passed).
 * Everything else is done in Rust (src/raw.rs, uipc_preload_syscall). */
#include <stdarg.h>

long uipc_preload_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

__attribute__((visibility("default")))
long syscall(long number, ...)
{
    va_list ap;
    long a1, a2, a3, a4, a5, a6;

    va_start(ap, number);
    a1 = va_arg(ap, long);
    a2 = va_arg(ap, long);
    a3 = va_arg(ap, long);
    a4 = va_arg(ap, long);
    a5 = va_arg(ap, long);
    a6 = va_arg(ap, long);
    va_end(ap);
    return uipc_preload_syscall(number, a1, a2, a3, a4, a5, a6);
}
