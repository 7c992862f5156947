/* Without a daemon the served paths are the kernel's files. */
#include "common.h"
#include <fcntl.h>

int main(void) {
    deny_kernel_ipc();
    FILE *f = fopen("/proc/sysvipc/shm", "r");
    CHECK(f != NULL, "fopen");
    char link[256] = {0}, fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fileno(f));
    CHECK(readlink(fdpath, link, sizeof link - 1) > 0, "readlink");
    CHECK(strcmp(link, "/proc/sysvipc/shm") == 0, "fd is %s", link);
    fclose(f);
    int fd = open("/proc/sys/kernel/shmmni", O_RDONLY);
    CHECK(fd >= 0, "open");
    memset(link, 0, sizeof link);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
    CHECK(readlink(fdpath, link, sizeof link - 1) > 0, "readlink");
    CHECK(strcmp(link, "/proc/sys/kernel/shmmni") == 0, "fd is %s", link);
    close(fd);
    CHECK(access("/proc/sys/kernel/shmmax", F_OK) == 0, "access");
    printf("ok\n");
    return 0;
}
