/* A root process creates 0600 objects, drops to nobody, and tries them
 * again: Linux judges every call by the caller's current ids, so the
 * second semget and shmget fail with EACCES, and IPC_STAT of the segment
 * too. */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

int main(void) {
    int sem = semget(0x7e57, 1, IPC_CREAT | IPC_EXCL | 0600);
    int shm = shmget(0x7e57, 4096, IPC_CREAT | IPC_EXCL | 0600);
    printf("as root: semget %s, shmget %s\n", sem >= 0 ? "ok" : strerror(errno), shm >= 0 ? "ok" : strerror(errno));
    if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
        perror("dropping root");
        return 1;
    }
    errno = 0;
    int again = semget(0x7e57, 1, 0600);
    printf("as nobody: semget %d (%s)\n", again, strerror(errno));
    errno = 0;
    again = shmget(0x7e57, 4096, 0600);
    printf("as nobody: shmget %d (%s)\n", again, strerror(errno));
    struct shmid_ds ds;
    errno = 0;
    int r = shmctl(shm, IPC_STAT, &ds);
    printf("as nobody: IPC_STAT %d (%s)\n", r, strerror(errno));
    return 0;
}
