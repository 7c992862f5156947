/* POSIX shared memory (SPEC section 6, PSHM-*), run twice: natively, with
 * glibc over a private tmpfs at /dev/shm in a fresh mount namespace, and
 * under the shim ("deny": the kernel's System V calls are killed, and
 * /dev/shm is an empty read-only tmpfs, so glibc's own way would fail).
 * The two standard outputs must be the same line for line: return values,
 * errno, and fstat fields (not st_dev/st_ino, and st_nlink only after
 * unlink: docs/deviations.md). Identities: root, then a child that drops
 * to nobody (65534) halfway, then a child that is nobody from the start. */
#include "semcommon.h"
#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>

static const char *pe(int e) {
    switch (e) {
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EISDIR: return "EISDIR";
    case ENOTDIR: return "ENOTDIR";
    case EBADF: return "EBADF";
    default: return ename(e);
    }
}

#define P(what, call) do { errno = 0; long r_ = (long)(call); \
    printf("%-48s -> %s %s\n", what, r_ < 0 ? "-1" : "ok", r_ < 0 ? pe(errno) : "0"); } while (0)

static void st(const char *what, int fd, int show_nlink) {
    struct stat s;
    CHECK(fstat(fd, &s) == 0, "fstat %s", what);
    printf("%-20s type %s mode %04o uid %u gid %u size %lld blocks %lld blksize %ld",
           what, S_ISREG(s.st_mode) ? "reg" : "other", (unsigned)(s.st_mode & 07777),
           (unsigned)s.st_uid, (unsigned)s.st_gid, (long long)s.st_size, (long long)s.st_blocks,
           (long)s.st_blksize);
    if (show_nlink)
        printf(" nlink %lu", (unsigned long)s.st_nlink);
    printf("\n");
}

static void drop_to_nobody(void) {
    CHECK(setgroups(0, NULL) == 0, "setgroups");
    CHECK(setgid(65534) == 0, "setgid");
    CHECK(setuid(65534) == 0, "setuid");
}

static void wait_child(pid_t pid) {
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child failed: status %d", status);
}

static void names(void) {
    char n[400];
    int fd = shm_open("nm", O_CREAT | O_EXCL | O_RDWR, 0600);
    CHECK(fd >= 0, "create nm");
    close(fd);
    P("PSHM-NAME-1 //nm O_CREAT|O_EXCL", shm_open("//nm", O_CREAT | O_EXCL | O_RDWR, 0600));
    fd = shm_open("/nm", O_RDWR, 0);
    P("PSHM-NAME-1 /nm", fd);
    close(fd);
    P("PSHM-NAME-2 empty", shm_open("", O_CREAT | O_RDWR, 0600));
    P("PSHM-NAME-2 /", shm_open("/", O_CREAT | O_RDWR, 0600));
    P("PSHM-NAME-2 //", shm_open("//", O_RDONLY, 0));
    P("PSHM-NAME-2 /a/b", shm_open("/a/b", O_CREAT | O_RDWR, 0600));
    P("PSHM-NAME-2 a/", shm_open("a/", O_CREAT | O_RDWR, 0600));
    for (int len = 254; len <= 261; len++) {
        memset(n, 'n', len); n[len] = 0;
        char what[64]; snprintf(what, sizeof what, "PSHM-NAME-2 length %d", len);
        errno = 0;
        fd = shm_open(n, O_CREAT | O_RDWR, 0600);
        printf("%-48s -> %s %s\n", what, fd < 0 ? "-1" : "ok", fd < 0 ? pe(errno) : "0");
        if (fd >= 0) close(fd);
        snprintf(what, sizeof what, "PSHM-UNL-1 unlink length %d", len);
        P(what, shm_unlink(n));
    }
    memset(n, 'n', 300); n[300] = 0;
    P("PSHM-NAME-2 length 300", shm_open(n, O_CREAT | O_RDWR, 0600));
    n[10] = '/';
    P("PSHM-NAME-2 length 300 with a slash", shm_open(n, O_CREAT | O_RDWR, 0600));
    P("PSHM-UNL-1 unlink empty", shm_unlink(""));
    P("PSHM-UNL-1 unlink /a/b", shm_unlink("/a/b"));
    P("PSHM-UNL-1 unlink /.", shm_unlink("/."));
    P("PSHM-UNL-1 unlink //nm", shm_unlink("//nm"));
    P("PSHM-UNL-1 unlink nm again", shm_unlink("nm"));
}

static void open_rules(void) {
    P("PSHM-OPEN-2 absent", shm_open("/o", O_RDWR, 0));
    umask(022);
    int fd = shm_open("/o", O_CREAT | O_RDWR, 0666);
    P("PSHM-OPEN-3 create 0666 umask 022", fd);
    st("PSHM-OPEN-3 new", fd, 0);
    printf("PSHM-OPEN-1 F_GETFD %d accmode %d\n", fcntl(fd, F_GETFD), fcntl(fd, F_GETFL) & O_ACCMODE);
    P("PSHM-OPEN-2 O_CREAT|O_EXCL existing", shm_open("/o", O_CREAT | O_EXCL | O_RDWR, 0600));
    int again = shm_open("/o", O_CREAT | O_RDWR, 0600);
    P("PSHM-OPEN-2 O_CREAT existing", again);
    st("PSHM-OPEN-2 kept mode", again, 0);
    close(again);
    umask(077);
    int f2 = shm_open("/o77", O_CREAT | O_RDWR, 0666);
    st("PSHM-OPEN-3 umask 077", f2, 0);
    close(f2);
    shm_unlink("/o77");
    umask(022);
    P("PSHM-OPEN-3 O_DIRECTORY", shm_open("/o", O_RDWR | O_DIRECTORY, 0));
    int acc3 = shm_open("/acc3", O_CREAT | O_ACCMODE, 0600);
    P("PSHM-OPEN-5 access mode 3", acc3);
    printf("PSHM-OPEN-5 access mode 3 accmode %d\n", fcntl(acc3, F_GETFL) & O_ACCMODE);
    P("PSHM-OPEN-5 access mode 3 ftruncate", ftruncate(acc3, 10));
    close(acc3);
    shm_unlink("/acc3");
    /* PSHM-OPEN-4: O_TRUNC with O_RDONLY empties. */
    CHECK(ftruncate(fd, 10000) == 0, "ftruncate");
    st("PSHM-SIZE-1 grown", fd, 0);
    int t = shm_open("/o", O_RDONLY | O_TRUNC, 0);
    P("PSHM-OPEN-4 O_RDONLY|O_TRUNC", t);
    st("PSHM-OPEN-4 truncated", fd, 0);
    printf("PSHM-OPEN-5 O_RDONLY accmode %d\n", fcntl(t, F_GETFL) & O_ACCMODE);
    /* PSHM-SIZE-1 on a read-only descriptor, and a negative length. */
    P("PSHM-SIZE-1 ftruncate O_RDONLY fd", ftruncate(t, 4096));
    P("PSHM-SIZE-1 ftruncate -1", ftruncate(fd, -1));
    P("PSHM-SIZE-1 ftruncate -1 bad fd", ftruncate(-1, -1));
    /* PSHM-MAP-1 */
    errno = 0;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, t, 0);
    printf("%-48s -> %s %s\n", "PSHM-MAP-1 MAP_SHARED|PROT_WRITE of O_RDONLY", m == MAP_FAILED ? "-1" : "ok",
           m == MAP_FAILED ? pe(errno) : "0");
    close(t);
    int w = shm_open("/o", O_WRONLY, 0);
    P("PSHM-OPEN-5 O_WRONLY", w);
    printf("PSHM-OPEN-5 O_WRONLY accmode %d\n", fcntl(w, F_GETFL) & O_ACCMODE);
    m = mmap(NULL, 4096, PROT_READ, MAP_SHARED, w, 0);
    printf("%-48s -> %s %s\n", "PSHM-OPEN-5 mmap of O_WRONLY", m == MAP_FAILED ? "-1" : "ok",
           m == MAP_FAILED ? pe(errno) : "0");
    close(w);
    close(fd);
}

static void size_rules(void) {
    int fd = shm_open("/z", O_CREAT | O_RDWR, 0600);
    CHECK(fd >= 0, "create z");
    CHECK(ftruncate(fd, 10000) == 0, "grow");
    unsigned char *m = mmap(NULL, 12288, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    CHECK(m != MAP_FAILED, "mmap");
    int zero = 1;
    for (int i = 0; i < 10000; i++) zero &= m[i] == 0;
    printf("PSHM-SIZE-2 new bytes zero %d\n", zero);
    memset(m, 0xab, 10000);
    st("PSHM-STAT-1 written", fd, 0);
    CHECK(ftruncate(fd, 5000) == 0, "shrink");
    CHECK(ftruncate(fd, 10000) == 0, "regrow");
    zero = 1;
    for (int i = 5000; i < 10000; i++) zero &= m[i] == 0;
    printf("PSHM-SIZE-2 byte 4999 %#x, 5000..10000 zero %d\n", m[4999], zero);
    CHECK(ftruncate(fd, 4096) == 0, "shrink to a page");
    st("PSHM-STAT-1 shrunk", fd, 0);
    munmap(m, 12288);
    /* PSHM-MAP-1: closing the descriptor keeps a mapping. */
    m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    m[1] = 7;
    fd = shm_open("/z", O_RDONLY, 0);
    unsigned char b = 0;
    CHECK(pread(fd, &b, 1, 1) == 1, "pread");
    printf("PSHM-MAP-1 after close, written byte read back %u\n", b);
    munmap(m, 4096);
    close(fd);
    shm_unlink("/z");
}

static void unlink_while_open(void) {
    int fd = shm_open("/u", O_CREAT | O_RDWR, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 100) == 0 && pwrite(fd, "old", 3, 0) == 3, "prepare u");
    P("PSHM-UNL-2 unlink", shm_unlink("/u"));
    P("PSHM-UNL-2 open after unlink", shm_open("/u", O_RDWR, 0));
    int fresh = shm_open("/u", O_CREAT | O_RDWR, 0600);
    P("PSHM-UNL-2 O_CREAT after unlink", fresh);
    st("PSHM-UNL-2 fresh", fresh, 0);
    st("PSHM-UNL-2 old", fd, 1);
    P("PSHM-UNL-2 old still truncates", ftruncate(fd, 8192));
    char buf[4] = {0};
    CHECK(pread(fd, buf, 3, 0) == 3, "pread old");
    printf("PSHM-UNL-2 old content %s\n", buf);
    close(fd);
    close(fresh);
    shm_unlink("/u");
}

/* Root's objects as nobody; fchmod/fchown through a descriptor. */
static void as_nobody(int dropped_halfway) {
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        if (dropped_halfway) {
            /* root first: its object, then drop. */
            int mine = shm_open("/halfway", O_CREAT | O_RDWR, 0600);
            CHECK(mine >= 0, "root creates halfway");
            close(mine);
        }
        drop_to_nobody();
        P("nobody: PSHM-OPEN-2 O_RDWR root 0644", shm_open("/r644", O_RDWR, 0));
        int ro = shm_open("/r644", O_RDONLY, 0);
        P("nobody: O_RDONLY root 0644", ro);
        P("nobody: PSHM-OPEN-4 O_RDONLY|O_TRUNC root 0644", shm_open("/r644", O_RDONLY | O_TRUNC, 0));
        P("nobody: O_CREAT existing root 0644 O_RDWR", shm_open("/r644", O_CREAT | O_RDWR, 0666));
        P("nobody: PSHM-STAT-2 fchmod root's", fchmod(ro, 0666));
        P("nobody: PSHM-STAT-2 fchown root's", fchown(ro, 65534, 65534));
        P("nobody: ftruncate O_RDONLY", ftruncate(ro, 0));
        close(ro);
        P("nobody: O_RDONLY root 0600", shm_open("/r600", O_RDONLY, 0));
        P("nobody: PSHM-UNL-1 unlink root's", shm_unlink("/r644"));
        if (dropped_halfway)
            P("nobody: open what root made before dropping", shm_open("/halfway", O_RDONLY, 0));
        int own = shm_open("/own", O_CREAT | O_EXCL | O_RDWR, 0640);
        P("nobody: create own", own);
        st("nobody: own", own, 0);
        P("nobody: fchmod own 0604", fchmod(own, 0604));
        P("nobody: fchown own to root", fchown(own, 0, 0));
        P("nobody: fchown own gid 65534", fchown(own, -1, 65534));
        st("nobody: own after", own, 0);
        close(own);
        exit(0);
    }
    wait_child(pid);
    int own = shm_open("/own", O_RDWR, 0);
    P("root: open nobody's 0604 O_RDWR", own);
    st("root: nobody's", own, 0);
    P("root: fchmod nobody's 0600", fchmod(own, 0600));
    P("root: fchown nobody's to 1000", fchown(own, 1000, 1000));
    close(own);
    pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        drop_to_nobody();
        /* What fchmod/fchown on root's descriptor did is what this open checks. */
        P("nobody: open own after root's fchown", shm_open("/own", O_RDONLY, 0));
        P("nobody: unlink it (sticky)", shm_unlink("/own"));
        P("nobody: open root 0666 after fchmod", shm_open("/r600", O_RDWR, 0));
        exit(0);
    }
    int r600 = shm_open("/r600", O_RDWR, 0);
    (void)r600;
    wait_child(pid);
    if (dropped_halfway)
        shm_unlink("/halfway");
    P("root: unlink nobody's (owner of /dev/shm)", shm_unlink("/own"));
}

int main(int argc, char **argv) {
    setup(argc, argv);
    if (argc > 1 && strcmp(argv[1], "deny") == 0) {
        /* Proof that glibc's own way is closed: /dev/shm is read-only and empty. */
        int probe = open("/dev/shm/probe", O_CREAT | O_RDWR, 0600);
        CHECK(probe < 0, "/dev/shm is writable under the shim test");
    }
    names();
    open_rules();
    size_rules();
    unlink_while_open();
    int a = shm_open("/r644", O_CREAT | O_RDWR, 0644);
    int b = shm_open("/r600", O_CREAT | O_RDWR, 0600);
    CHECK(a >= 0 && b >= 0, "root objects");
    as_nobody(0);
    /* root's fchmod through its descriptor opens /r600 to others. */
    CHECK(fchmod(b, 0666) == 0, "fchmod r600");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        drop_to_nobody();
        P("nobody: open r600 after root's fchmod 0666", shm_open("/r600", O_RDWR, 0));
        exit(0);
    }
    wait_child(pid);
    CHECK(fchmod(b, 0600) == 0, "fchmod back");
    as_nobody(1);
    close(a);
    close(b);
    P("unlink r644", shm_unlink("/r644"));
    P("unlink r600", shm_unlink("/r600"));
    printf("ok\n");
    return 0;
}
