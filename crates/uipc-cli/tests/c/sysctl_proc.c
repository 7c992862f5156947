/* The IPC sysctls through /proc: save, set and restore as root, with the
 * kernel's validation; then, as nobody, the kernel's refusals. Run in a
 * fresh kernel IPC namespace and under `uipc run --deny-kernel-ipc`; the
 * outputs must match. Values written are checked by reading them back
 * and by their effect (shmget's limits, the next id). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/sem.h>

static const char *ename(int e) {
    switch (e) {
    case 0: return "0";
    case EINVAL: return "EINVAL"; case EACCES: return "EACCES"; case EPERM: return "EPERM";
    case ENOENT: return "ENOENT"; case ENOSPC: return "ENOSPC"; case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR"; case EBADF: return "EBADF"; case ENOSYS: return "ENOSYS";
    default: { static char b[32]; snprintf(b, sizeof b, "errno%d", e); return b; }
    }
}

/* The file's text, newline stripped, or the errno of open. */
static const char *get(const char *name) {
    static char buf[256];
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/%s", name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return ename(errno);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) return ename(errno);
    buf[n] = 0;
    if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = 0;
    return buf;
}

/* open(O_WRONLY) + write + close: prints each step's result. */
static void put(const char *name, const char *value) {
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/%s", name);
    errno = 0;
    int fd = open(path, O_WRONLY);
    if (fd < 0) {
        printf("write %s=%s: open %s\n", name, value, ename(errno));
        return;
    }
    errno = 0;
    ssize_t n = write(fd, value, strlen(value));
    int e = errno;
    printf("write %s=%s: write %zd %s", name, value, n, n < 0 ? ename(e) : "");
    /* A second write, past the start: changes nothing. */
    errno = 0;
    n = write(fd, "1\n", 2);
    printf(", again %zd %s", n, n < 0 ? ename(errno) : "");
    printf(", close %d\n", close(fd));
    printf("  now %s\n", get(name));
}

/* fopen("w") + fprintf + fclose. */
static void fput(const char *name, const char *value) {
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/%s", name);
    errno = 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        printf("fput %s=%s: fopen %s\n", name, value, ename(errno));
        return;
    }
    fprintf(f, "%s", value);
    errno = 0;
    int r = fclose(f);
    printf("fput %s=%s: fclose %d %s\n", name, value, r, r ? ename(errno) : "");
    printf("  now %s\n", get(name));
}

static void acc(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/%s", name);
    errno = 0;
    int w = access(path, W_OK);
    int we = errno;
    errno = 0;
    int r = access(path, R_OK);
    int re = errno;
    printf("access %s: W_OK %d %s, R_OK %d %s\n", name, w, w ? ename(we) : "", r, r ? ename(re) : "");
}

static const char *names[] = {
    "kernel/shmmax", "kernel/shmmni", "kernel/shmall", "kernel/sem", "kernel/msgmnb", "kernel/shm_next_id",
};
#define N (sizeof names / sizeof names[0])

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    (void)argc; (void)argv;
    char saved[N][256];
    for (size_t i = 0; i < N; i++) {
        snprintf(saved[i], sizeof saved[i], "%s", get(names[i]));
        printf("saved %s = %s\n", names[i], saved[i]);
        acc(names[i]);
    }

    /* Set, with their effect. */
    put("kernel/shmmax", "8192\n");
    int r = shmget(IPC_PRIVATE, 8193, IPC_CREAT | 0600);
    printf("shmget of shmmax + 1 -> %s\n", r < 0 ? ename(errno) : "ok");
    put("kernel/shmmni", "1\n");
    int a = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    int b = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    printf("with shmmni 1: %s, %s\n", a < 0 ? ename(errno) : "ok", b < 0 ? ename(errno) : "ok");
    if (a >= 0) shmctl(a, IPC_RMID, NULL);
    fput("kernel/shmall", "4\n");
    put("kernel/sem", "250 32000 32 128\n");
    put("kernel/sem", "10 100 8 4");
    int s = semget(IPC_PRIVATE, 11, IPC_CREAT | 0600);
    printf("semget of SEMMSL + 1 -> %s\n", s < 0 ? ename(errno) : "ok");
    put("kernel/msgmnb", "4096\n");
    put("kernel/shm_next_id", "100\n");
    put("kernel/shmmni", "4096\n");
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    printf("shmget after shm_next_id 100 -> %d\n", id);
    printf("  shm_next_id now %s\n", get("kernel/shm_next_id"));
    if (id >= 0) shmctl(id, IPC_RMID, NULL);

    /* The kernel's validation. */
    put("kernel/shmmni", "abc\n");
    put("kernel/shmmni", "100000\n");
    put("kernel/shmmni", "-1\n");
    put("kernel/sem", "1 2 3 4 5\n");
    fput("kernel/msgmnb", "x\n");
    put("kernel/shmmax", "\n");

    /* Restore. */
    for (size_t i = 0; i < N; i++) {
        char v[sizeof saved[i] + 2];
        size_t l = strlen(saved[i]);
        memcpy(v, saved[i], l);
        v[l] = '\n';
        v[l + 1] = 0;
        put(names[i], v);
    }
    for (size_t i = 0; i < N; i++)
        printf("restored %s: %s\n", names[i], strcmp(get(names[i]), saved[i]) == 0 ? "yes" : get(names[i]));

    /* As nobody: read yes, write no. */
    if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
        perror("drop");
        return 1;
    }
    for (size_t i = 0; i < N; i++) acc(names[i]);
    put("kernel/shmmni", "7\n");
    fput("kernel/shmmax", "7\n");
    put("kernel/shm_next_id", "7\n");
    printf("ok\n");
    return 0;
}
