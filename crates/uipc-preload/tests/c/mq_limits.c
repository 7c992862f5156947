/* The mqueue limits of a namespace (SPEC 7, MQ-OPEN-4, MQ-ATTR-1/3/5),
 * natively and under the shim. Natively the program writes
 * the files of /proc/sys/fs/mqueue in its fresh namespace (root may); under the shim
 * ("deny") the test harness has set the same values in the daemon's
 * namespace. queues_max 3, msg_max 20, msgsize_max 1024, msg_default 4,
 * msgsize_default 256. Root here lacks CAP_SYS_RESOURCE, so the limits
 * apply to it (checked: the program says so if it has it). */
#include "mqcommon.h"
#include <sys/resource.h>

static void set(const char *name, const char *value) {
    char path[64];
    snprintf(path, sizeof path, "/proc/sys/fs/mqueue/%s", name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "open %s", path);
    CHECK(fputs(value, f) >= 0 && fclose(f) == 0, "write %s", path);
}

static int has_sys_resource(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long eff = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1) break;
    if (f) fclose(f);
    return (eff >> 24) & 1;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int deny = argc > 1 && strcmp(argv[1], "deny") == 0;
    if (deny) {
        deny_kernel_ipc();
        deny_mq();
    } else {
        set("queues_max", "3\n");
        set("msg_max", "20\n");
        set("msgsize_max", "1024\n");
        set("msg_default", "4\n");
        set("msgsize_default", "256\n");
    }
    printf("CAP_SYS_RESOURCE %d\n", has_sys_resource());
    struct mq_attr a;
    mqd_t d = mq_open("/dflt", O_CREAT | O_RDWR, 0600, NULL);
    CHECK(d >= 0, "default open");
    CHECK(mq_getattr(d, &a) == 0, "getattr");
    printf("defaults: maxmsg %ld msgsize %ld\n", a.mq_maxmsg, a.mq_msgsize);
    struct mq_attr big = { 0, 21, 16, 0, {0} };
    SHOW("maxmsg 21 > msg_max", mq_open("/big", O_CREAT | O_RDWR, 0600, &big));
    big.mq_maxmsg = 20; big.mq_msgsize = 1025;
    SHOW("msgsize 1025 > msgsize_max", mq_open("/big", O_CREAT | O_RDWR, 0600, &big));
    big.mq_msgsize = 1024;
    mqd_t b = mq_open("/big", O_CREAT | O_RDWR, 0600, &big);
    printf("maxmsg 20 msgsize 1024 -> %s\n", b >= 0 ? "ok" : ename(errno));
    /* queues_max counts queues unlinked but still open. */
    SHOW("unlink /big (still open)", mq_unlink("/big"));
    mqd_t c = mq_open("/third", O_CREAT | O_RDWR, 0600, NULL);
    printf("third queue -> %s\n", c >= 0 ? "ok" : ename(errno));
    SHOW("fourth queue at queues_max", mq_open("/fourth", O_CREAT | O_RDWR, 0600, NULL));
    mqd_t again = mq_open("/third", O_RDWR);
    printf("opening an existing one still works -> %s\n", again >= 0 ? "ok" : ename(errno));
    close(again);
    close(b);
    mqd_t e = mq_open("/fourth", O_CREAT | O_RDWR, 0600, NULL);
    printf("after the unlinked one closed -> %s\n", e >= 0 ? "ok" : ename(errno));
    close(c); close(d); close(e);
    mq_unlink("/third"); mq_unlink("/fourth"); mq_unlink("/dflt");
    /* RLIMIT_MSGQUEUE: charged maxmsg*msgsize + maxmsg*48 + min(maxmsg,32768)*48
     * per queue to the real user; over it, EMFILE. One queue of 20 x 1024
     * costs 22400 bytes: a limit of 50000 admits two. The kernel counts a
     * user's charge across every namespace, so this runs as a user no
     * other test uses (uid 61234), in a child. */
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        struct rlimit rl = { 50000, 50000 };
        CHECK(setrlimit(RLIMIT_MSGQUEUE, &rl) == 0, "setrlimit");
        CHECK(setgid(61234) == 0 && setuid(61234) == 0, "setuid");
        mqd_t r1 = mq_open("/r1", O_CREAT | O_RDWR, 0600, &big);
        mqd_t r2 = mq_open("/r2", O_CREAT | O_RDWR, 0600, &big);
        printf("two queues under RLIMIT_MSGQUEUE 50000 -> %s %s\n", r1 >= 0 ? "ok" : ename(errno),
               r2 >= 0 ? "ok" : ename(errno));
        SHOW("a third over it", mq_open("/r3", O_CREAT | O_RDWR, 0600, &big));
        struct mq_attr small = { 0, 1, 16, 0, {0} };
        mqd_t r3 = mq_open("/r3", O_CREAT | O_RDWR, 0600, &small);
        printf("a small one still fits -> %s\n", r3 >= 0 ? "ok" : ename(errno));
        close(r1); close(r2); close(r3);
        mq_unlink("/r1"); mq_unlink("/r2"); mq_unlink("/r3");
        _exit(0);
    }
    int st;
    CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    printf("ok\n");
    return 0;
}
