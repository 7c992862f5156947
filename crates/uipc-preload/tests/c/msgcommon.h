/* Shared by the message-queue test programs, which run twice: natively in
 * a fresh IPC namespace, and under the shim with "deny" as argv[1] (a
 * seccomp filter kills the process on any of the kernel's System V IPC
 * calls). The two standard outputs are compared line by line. */
#include "semcommon.h"
#include <sys/msg.h>

struct mbuf { long mtype; char text[64]; };

/* Prints the fields of a msqid_ds that do not depend on pids or times. */
UNUSED static void show_ds(const char *what, const struct msqid_ds *d) {
    printf("%-20s key %d mode %o cbytes %lu qnum %lu qbytes %lu stime %s rtime %s ctime %s\n", what,
           d->msg_perm.__key, d->msg_perm.mode, (unsigned long)d->__msg_cbytes, (unsigned long)d->msg_qnum,
           (unsigned long)d->msg_qbytes, d->msg_stime ? "set" : "0", d->msg_rtime ? "set" : "0",
           d->msg_ctime ? "set" : "0");
}
