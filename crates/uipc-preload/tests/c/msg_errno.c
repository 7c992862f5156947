/* The results and errnos of msgget, msgsnd, msgrcv and msgctl cases, in the
 * order the kernel checks them, and what each leaves in the queue;
 * compared between the kernel and the shim. */
#include "msgcommon.h"
#include <limits.h>
#include <sys/mman.h>

int main(int argc, char **argv) {
    setup(argc, argv);
    const key_t K = 0x6d736771;
    struct mbuf m = { 1, "hello world" };
    struct msqid_ds ds;
    struct msginfo info;

    /* msgget */
    T("msgget missing key", msgget(K, 0600));
    int id = msgget(K, IPC_CREAT | 0600);
    T("msgget create", id);
    T("msgget IPC_EXCL existing", msgget(K, IPC_CREAT | IPC_EXCL | 0600));
    T("msgget existing, mode 0", msgget(K, 0));
    T("msgget IPC_PRIVATE", msgget(IPC_PRIVATE, 0600));
    int priv2 = msgget(IPC_PRIVATE, 0666);
    T("msgget IPC_PRIVATE again", priv2);

    /* msgsnd: EFAULT of mtype first, then EINVAL, then the text's EFAULT, then the lookup. */
    T("msgsnd NULL msgp, id -1", msgsnd(-1, NULL, 1, 0));
    T("msgsnd msgsz 8193 (> msgmax)", msgsnd(id, &m, 8193, 0));
    T("msgsnd msgsz -1", msgsnd(id, &m, (size_t)-1, 0));
    T("msgsnd id -1", msgsnd(-1, &m, 1, 0));
    m.mtype = 0;
    T("msgsnd mtype 0", msgsnd(id, &m, 1, 0));
    T("msgsnd mtype 0 on unknown id", msgsnd(id + 1000, &m, 1, 0));
    m.mtype = -5;
    T("msgsnd mtype -5", msgsnd(id, &m, 1, 0));
    m.mtype = 1;
    /* A text that runs into an unmapped page: EFAULT before the lookup. */
    long pg = sysconf(_SC_PAGESIZE);
    char *two = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(two != MAP_FAILED, "mmap");
    CHECK(munmap(two + pg, pg) == 0, "munmap");
    long *edge = (long *)(two + pg - 16);
    edge[0] = 3;
    T("msgsnd text unreadable, unknown id", msgsnd(id + 1000, edge, 100, 0));
    T("msgsnd text unreadable", msgsnd(id, edge, 100, IPC_NOWAIT));
    T("msgsnd 8 readable bytes", msgsnd(id, edge, 8, IPC_NOWAIT));
    T("msgsnd unknown id", msgsnd(id + 1000, &m, 5, 0));
    T("msgsnd 11 bytes", msgsnd(id, &m, 11, 0));
    T("msgsnd 0 bytes, type 7", (m.mtype = 7, msgsnd(id, &m, 0, 0)));
    m.mtype = 2;
    strcpy(m.text, "two");
    T("msgsnd type 2", msgsnd(id, &m, 3, 0));
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    show_ds("after sends", &ds);

    /* msgrcv */
    struct mbuf r;
    T("msgrcv id -1", msgrcv(-1, &r, 64, 0, 0));
    T("msgrcv msgsz -1", msgrcv(id, &r, (size_t)-1, 0, 0));
    T("msgrcv MSG_COPY without IPC_NOWAIT", msgrcv(id, &r, 64, 0, MSG_COPY));
    T("msgrcv MSG_COPY|MSG_EXCEPT", msgrcv(id, &r, 64, 0, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT));
    T("msgrcv MSG_COPY bad buffer", msgrcv(id, (void *)8, 64, 0, MSG_COPY | IPC_NOWAIT));
    T("msgrcv unknown id", msgrcv(id + 1000, &r, 64, 0, IPC_NOWAIT));
    T("msgrcv type 9, IPC_NOWAIT", msgrcv(id, &r, 64, 9, IPC_NOWAIT));
    T("msgrcv 4 bytes of an 8 (E2BIG)", msgrcv(id, &r, 4, 0, IPC_NOWAIT));
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    show_ds("after E2BIG", &ds);
    memset(&r, 0, sizeof r);
    T("msgrcv MSG_COPY pos 1", msgrcv(id, &r, 64, 1, MSG_COPY | IPC_NOWAIT));
    printf("  copied type %ld text '%.11s'\n", r.mtype, r.text);
    T("msgrcv MSG_COPY pos 4", msgrcv(id, &r, 64, 4, MSG_COPY | IPC_NOWAIT));
    T("msgrcv MSG_COPY pos -1", msgrcv(id, &r, 64, -1, MSG_COPY | IPC_NOWAIT));
    T("msgrcv MSG_COPY|NOERROR 4 of 11", msgrcv(id, &r, 4, 1, MSG_COPY | MSG_NOERROR | IPC_NOWAIT));
    T("msgrcv type -1 (lowest <= 1)", msgrcv(id, &r, 64, -1, IPC_NOWAIT));
    printf("  got type %ld\n", r.mtype);
    memset(&r, 0, sizeof r);
    T("msgrcv NOERROR 4 of 11", msgrcv(id, &r, 4, 1, MSG_NOERROR | IPC_NOWAIT));
    printf("  got type %ld text '%s'\n", r.mtype, r.text);
    T("msgrcv EXCEPT 7", msgrcv(id, &r, 64, 7, MSG_EXCEPT | IPC_NOWAIT));
    printf("  got type %ld\n", r.mtype);
    T("msgrcv LONG_MIN", msgrcv(id, &r, 64, LONG_MIN, IPC_NOWAIT));
    printf("  got type %ld\n", r.mtype);
    T("msgrcv empty, IPC_NOWAIT", msgrcv(id, &r, 64, 0, IPC_NOWAIT));
    /* Copy-out to a bad buffer after the dequeue: EFAULT, and the message is gone. */
    m.mtype = 3;
    CHECK(msgsnd(id, &m, 3, 0) == 0, "send");
    T("msgrcv into an unwritable buffer", msgrcv(id, (void *)8, 64, 0, IPC_NOWAIT));
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    show_ds("after lost message", &ds);

    /* Capacity: qbytes 3 admits three zero-length messages, not a fourth. */
    ds.msg_qbytes = 3;
    T("IPC_SET qbytes 3", msgctl(id, IPC_SET, &ds));
    for (int i = 0; i < 4; i++)
        T("msgsnd 0 bytes, IPC_NOWAIT", msgsnd(id, &m, 0, IPC_NOWAIT));
    T("msgsnd 16385 bytes (> msgmax), IPC_NOWAIT", msgsnd(priv2, &m, 16385, IPC_NOWAIT));
    ds.msg_qbytes = 0;
    T("IPC_SET qbytes 0 (under usage)", msgctl(id, IPC_SET, &ds));
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    show_ds("qbytes 0", &ds);

    /* msgctl */
    T("msgctl id -1 IPC_STAT", msgctl(-1, IPC_STAT, &ds));
    T("msgctl cmd -1", msgctl(id, -1, &ds));
    T("msgctl cmd 99", msgctl(id, 99, &ds));
    T("msgctl IPC_STAT|0x100", msgctl(id, IPC_STAT | 0x100, &ds));
    T("msgctl IPC_STAT bad buf", msgctl(id, IPC_STAT, (struct msqid_ds *)8));
    T("msgctl IPC_SET bad buf, unknown id", msgctl(id + 1000, IPC_SET, (struct msqid_ds *)8));
    T("msgctl IPC_STAT unknown id", msgctl(id + 1000, IPC_STAT, &ds));
    T("msgctl MSG_STAT slot 0", msgctl(0, MSG_STAT, &ds));
    T("msgctl MSG_STAT_ANY slot 2", msgctl(2, MSG_STAT_ANY, &ds));
    T("msgctl MSG_STAT empty slot 9", msgctl(9, MSG_STAT, &ds));
    memset(&info, 0xff, sizeof info);
    T("msgctl IPC_INFO", msgctl(0, IPC_INFO, (struct msqid_ds *)&info));
    printf("  pool %d map %d max %d mnb %d mni %d ssz %d tql %d seg %u\n", info.msgpool, info.msgmap, info.msgmax,
           info.msgmnb, info.msgmni, info.msgssz, info.msgtql, info.msgseg);
    T("msgctl MSG_INFO", msgctl(0, MSG_INFO, (struct msqid_ds *)&info));
    printf("  pool %d map %d tql %d\n", info.msgpool, info.msgmap, info.msgtql);
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    ds.msg_qbytes = 16385;
    ds.msg_perm.uid = (uid_t)-1;
    T("IPC_SET qbytes 16385, uid -1", msgctl(id, IPC_SET, &ds));
    ds.msg_perm.uid = 0;
    ds.msg_qbytes = 100;
    ds.msg_perm.mode = 0xffff;
    T("IPC_SET mode 0xffff", msgctl(id, IPC_SET, &ds));
    CHECK(msgctl(id, IPC_STAT, &ds) == 0, "stat");
    show_ds("after IPC_SET", &ds);
    T("IPC_RMID", msgctl(id, IPC_RMID, NULL));
    T("IPC_RMID again", msgctl(id, IPC_RMID, NULL));
    T("msgget key after IPC_RMID", msgget(K, 0600));
    T("msgsnd to the removed id", msgsnd(id, &m, 1, IPC_NOWAIT));
    printf("ok\n");
    return 0;
}
