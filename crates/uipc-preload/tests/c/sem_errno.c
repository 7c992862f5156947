/* The result and errno of semget, semop, semtimedop and semctl cases, in
 * the order the kernel checks them; compared between the kernel and the shim. */
#include "semcommon.h"

int main(int argc, char **argv) {
    setup(argc, argv);
    const key_t K = 0x75697065;
    struct sembuf b1 = { 0, -1, IPC_NOWAIT };
    struct sembuf many[600];
    memset(many, 0, sizeof many);
    union semun u;

    /* semget */
    T("semget nsems -1", semget(IPC_PRIVATE, -1, IPC_CREAT | 0600));
    T("semget nsems 32001 (> SEMMSL)", semget(IPC_PRIVATE, 32001, IPC_CREAT | 0600));
    T("semget create nsems 0", semget(K, 0, IPC_CREAT | 0600));
    T("semget missing key", semget(K, 1, 0600));
    int id = semget(K, 3, IPC_CREAT | 0600);
    T("semget create 3", id);
    T("semget IPC_EXCL existing", semget(K, 3, IPC_CREAT | IPC_EXCL | 0600));
    T("semget existing, nsems 4 > 3", semget(K, 4, 0600));
    T("semget existing, nsems 0", semget(K, 0, 0));
    T("semget existing, nsems -1", semget(K, -1, 0));
    T("semget IPC_PRIVATE 1", semget(IPC_PRIVATE, 1, 0600));

    /* semop / semtimedop */
    T("semop nsops 0", semop(id, &b1, 0));
    T("semop nsops 501 (> SEMOPM)", semop(id, many, 501));
    T("semop nsops 501, NULL sops", semop(id, NULL, 501));
    T("semop NULL sops", semop(id, NULL, 1));
    T("semop id -1, NULL sops (copy first)", semop(-1, NULL, 1));
    T("semop id -1", semop(-1, &b1, 1));
    T("semop unknown id", semop(id + 1000, &b1, 1));
    struct sembuf big = { 3, 1, 0 };
    T("semop sem_num 3 of 3", semop(id, &big, 1));
    T("semop would block, IPC_NOWAIT", semop(id, &b1, 1));
    struct sembuf up = { 1, 32767, 0 };
    T("semop +32767", semop(id, &up, 1));
    T("semop +32767 again (> SEMVMX)", semop(id, &up, 1));
    struct sembuf zero = { 1, 0, IPC_NOWAIT };
    T("semop wait-for-zero on 32767, IPC_NOWAIT", semop(id, &zero, 1));
    struct sembuf two[2] = { { 0, 1, 0 }, { 2, -1, IPC_NOWAIT } };
    T("semop 2 ops, second blocks (atomic)", semop(id, two, 2));
    T("GETVAL 0 after the atomic failure", semctl(id, 0, GETVAL));
    /* The system call takes an unsigned nsops: the upper half of size_t is dropped. */
    struct sembuf upz = { 0, 0, IPC_NOWAIT };
    T("semop nsops 2^32 + 1", semop(id, &upz, ((size_t)1 << 32) + 1));
    struct timespec t0 = { 0, 0 }, tbad = { 0, 1000000000 }, tneg = { -1, 0 }, t20ms = { 0, 20000000 };
    T("semtimedop bad timeout ptr, nsops 0", semtimedop(id, &b1, 0, (struct timespec *)8));
    T("semtimedop bad timeout ptr, id -1", semtimedop(-1, NULL, 1, (struct timespec *)8));
    T("semtimedop tv_nsec 1e9 (nothing blocks)", semtimedop(id, &upz, 1, &tbad));
    T("semtimedop tv_sec -1", semtimedop(id, &upz, 1, &tneg));
    struct sembuf down = { 0, -1, 0 };
    T("semtimedop timeout 0, would block", semtimedop(id, &down, 1, &t0));
    T("semtimedop 20 ms, would block", semtimedop(id, &down, 1, &t20ms));
    T("semtimedop NULL timeout, no block", semtimedop(id, &upz, 1, NULL));

    /* semctl */
    T("semctl id -1 GETVAL", semctl(-1, 0, GETVAL));
    T("semctl cmd 99", semctl(id, 0, 99));
    T("semctl cmd -1", semctl(id, 0, -1));
    T("semctl IPC_STAT|IPC_64-ish 0x100", semctl(id, 0, IPC_STAT | 0x100, u));
    T("GETVAL semnum 3", semctl(id, 3, GETVAL));
    T("GETVAL semnum -1", semctl(id, -1, GETVAL));
    T("GETVAL unknown id", semctl(id + 1000, 0, GETVAL));
    T("GETPID never operated (sem 2)", semctl(id, 2, GETPID));
    T("GETNCNT", semctl(id, 0, GETNCNT));
    T("GETZCNT", semctl(id, 0, GETZCNT));
    u.val = 32768;
    T("SETVAL 32768", semctl(id, 0, SETVAL, u));
    u.val = -1;
    T("SETVAL -1", semctl(id, 0, SETVAL, u));
    T("SETVAL -1 on unknown id (before lookup)", semctl(id + 1000, 0, SETVAL, u));
    u.val = 5;
    T("SETVAL 5 semnum 3", semctl(id, 3, SETVAL, u));
    T("SETVAL 5", semctl(id, 0, SETVAL, u));
    T("GETVAL", semctl(id, 0, GETVAL));
    u.buf = (struct semid_ds *)8;
    T("IPC_STAT bad buf", semctl(id, 0, IPC_STAT, u));
    T("IPC_SET bad buf", semctl(id, 0, IPC_SET, u));
    T("IPC_SET bad buf, unknown id (copy first)", semctl(id + 1000, 0, IPC_SET, u));
    T("IPC_SET bad buf, id -1", semctl(-1, 0, IPC_SET, u));
    u.buf = NULL;
    T("IPC_STAT NULL", semctl(id, 0, IPC_STAT, u));
    T("SEM_STAT NULL", semctl(0, 0, SEM_STAT, u));
    T("SEM_STAT_ANY NULL", semctl(0, 0, SEM_STAT_ANY, u));
    u.array = NULL;
    T("GETALL NULL", semctl(id, 0, GETALL, u));
    T("SETALL NULL", semctl(id, 0, SETALL, u));
    T("SETALL NULL, unknown id", semctl(id + 1000, 0, SETALL, u));
    unsigned short vals[3] = { 1, 40000, 2 };
    u.array = vals;
    T("SETALL with 40000", semctl(id, 0, SETALL, u));
    T("GETVAL 0 after refused SETALL", semctl(id, 0, GETVAL));
    u.__buf = (struct seminfo *)8;
    T("IPC_INFO bad buf", semctl(0, 0, IPC_INFO, u));
    T("SEM_INFO bad buf", semctl(0, 0, SEM_INFO, u));
    struct semid_ds ds;
    u.buf = &ds;
    T("SEM_STAT index 0 (returns the id)", semctl(0, 0, SEM_STAT, u));
    T("SEM_STAT index 5 (empty)", semctl(5, 0, SEM_STAT, u));
    T("SEM_STAT_ANY index 1", semctl(1, 0, SEM_STAT_ANY, u));

    /* Another user: permission errors (root only: setuid in a child). */
    if (geteuid() == 0) {
        pid_t p = fork();
        CHECK(p >= 0, "fork");
        if (p == 0) {
            CHECK(setgid(65534) == 0 && setuid(65534) == 0, "setuid");
            T("[nobody] semget 0600 set", semget(K, 3, 0));
            T("[nobody] semget 0600 set, mode 0", semget(K, 0, 0));
            struct sembuf z = { 0, 0, IPC_NOWAIT };
            T("[nobody] semop read", semop(id, &z, 1));
            T("[nobody] semop alter", semop(id, &b1, 1));
            T("[nobody] GETVAL", semctl(id, 0, GETVAL));
            T("[nobody] GETVAL semnum 9 (perm first)", semctl(id, 9, GETVAL));
            struct semid_ds d;
            union semun v;
            v.buf = &d;
            T("[nobody] IPC_STAT", semctl(id, 0, IPC_STAT, v));
            T("[nobody] SEM_STAT index 0", semctl(0, 0, SEM_STAT, v));
            T("[nobody] SEM_STAT_ANY index 0", semctl(0, 0, SEM_STAT_ANY, v) >= 0);
            v.val = 1;
            T("[nobody] SETVAL", semctl(id, 0, SETVAL, v));
            v.array = NULL;
            T("[nobody] SETALL NULL (perm before copy)", semctl(id, 0, SETALL, v));
            T("[nobody] IPC_RMID", semctl(id, 0, IPC_RMID));
            v.buf = &d;
            memset(&d, 0, sizeof d);
            T("[nobody] IPC_SET", semctl(id, 0, IPC_SET, v));
            fflush(stdout);
            _exit(0);
        }
        int st;
        CHECK(waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child");
    }

    T("IPC_RMID", semctl(id, 0, IPC_RMID));
    T("IPC_RMID again", semctl(id, 0, IPC_RMID));
    T("semop removed id", semop(id, &b1, 1));
    T("GETVAL removed id", semctl(id, 0, GETVAL));
    printf("ok\n");
    return 0;
}
