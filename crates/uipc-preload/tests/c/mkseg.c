/* Creates a 4096-byte segment with key 0x75697063 and mode 0600, and
 * leaves it for `ipcs`/`lsipc` to see. Prints its id. No seccomp filter:
 * the same program also runs natively (inside `unshare --ipc`). */
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>

int main(void) {
    int id = shmget(0x75697063, 4096, IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0) { perror("shmget"); return 1; }
    printf("%d\n", id);
    return 0;
}
