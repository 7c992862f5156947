/* Creates a segment through the shim, then reads /proc/sysvipc/shm with
 * fopen/fgets and open/read and finds the segment's line; checks the
 * sysctl files and access(). Under the seccomp filter of common.h, so the
 * kernel's shm calls are never made. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>

static int find_line(FILE *f, int want_id, long want_size) {
    char line[512];
    CHECK(fgets(line, sizeof line, f) != NULL, "header");
    CHECK(strncmp(line, "       key      shmid perms", 26) == 0, "header is %s", line);
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        int key, id; unsigned perms; unsigned long size;
        CHECK(sscanf(line, "%d %d %o %lu", &key, &id, &perms, &size) == 4, "row %s", line);
        if (id == want_id) {
            CHECK(key == 0x75697063 && perms == 0600 && size == (unsigned long)want_size, "row %s", line);
            found = 1;
        }
    }
    return found;
}

int main(void) {
    deny_kernel_ipc();
    int id = shmget(0x75697063, 4096, IPC_CREAT | 0600);
    CHECK(id >= 0, "shmget");

    FILE *f = fopen("/proc/sysvipc/shm", "r");
    CHECK(f != NULL, "fopen");
    CHECK(find_line(f, id, 4096), "no line for id %d", id);
    /* A served file, not the kernel's. */
    char link[256] = {0};
    char fdpath[64];
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fileno(f));
    CHECK(readlink(fdpath, link, sizeof link - 1) > 0, "readlink");
    CHECK(strstr(link, "memfd:") != NULL, "fd is %s", link);
    fclose(f);

    /* open/read, and the fd is read-only. */
    int fd = open("/proc/sysvipc/shm", O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open");
    CHECK(fcntl(fd, F_GETFD) == FD_CLOEXEC, "cloexec");
    CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY, "rdonly");
    CHECK(write(fd, "x", 1) == -1 && errno == EBADF, "write");
    FILE *g = fdopen(fd, "r");
    CHECK(g && find_line(g, id, 4096), "open: no line for id %d", id);
    fclose(g);

    /* Writing opens of the 0444 files are refused (the sysctls' writes:
     * uipc-cli/tests/identity.rs, sysctls_written_through_proc). */
    errno = 0;
    CHECK(open("/proc/sysvipc/shm", O_WRONLY) == -1 && errno == EACCES, "O_WRONLY");
    errno = 0;
    CHECK(fopen("/proc/sysvipc/sem", "w") == NULL && errno == EACCES, "fopen w");
    errno = 0;
    CHECK(openat(AT_FDCWD, "/proc/sysvipc/sem", O_RDONLY | O_DIRECTORY) == -1 && errno == ENOTDIR, "O_DIRECTORY");

    /* access */
    CHECK(access("/proc/sys/kernel/shmmax", F_OK) == 0, "access F_OK");
    CHECK(access("/proc/sysvipc/shm", R_OK) == 0, "access R_OK");
    errno = 0;
    CHECK(access("/proc/sysvipc/shm", W_OK) == -1 && errno == EACCES, "access W_OK");

    /* The namespace's sysctls (the test set shmmni to 1234). */
    char buf[128] = {0};
    int s = openat(AT_FDCWD, "/proc/sys/kernel/shmmni", O_RDONLY);
    CHECK(s >= 0, "open shmmni");
    CHECK(read(s, buf, sizeof buf - 1) > 0, "read shmmni");
    CHECK(strcmp(buf, "1234\n") == 0, "shmmni is '%s'", buf);
    close(s);

    /* msg: header only. */
    FILE *m = fopen("/proc/sysvipc/msg", "re");
    CHECK(m != NULL, "fopen msg");
    char line[512];
    CHECK(fgets(line, sizeof line, m) && strncmp(line, "       key      msqid", 20) == 0, "msg header %s", line);
    CHECK(fgets(line, sizeof line, m) == NULL, "msg row %s", line);
    fclose(m);

    /* Other files are the real ones. */
    FILE *o = fopen("/proc/self/status", "r");
    CHECK(o != NULL, "fopen other");
    fclose(o);

    CHECK(shmctl(id, IPC_RMID, NULL) == 0, "rmid");
    printf("ok\n");
    return 0;
}
