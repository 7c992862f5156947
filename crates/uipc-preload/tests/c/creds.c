/* Credential changes take effect at the next call, as in Linux, which
 * checks the caller's current ids and capabilities at every IPC call.
 * Run as root: prints one line per step (return value and errno), so the
 * output under the shim can be compared with the kernel's in a fresh IPC
 * namespace. With argument "shim" the kernel's shm calls are denied. */
#include "common.h"
#include <grp.h>
#include <linux/capability.h>

/* glibc exports these (no header declares them without libcap). */
int capget(cap_user_header_t hdrp, cap_user_data_t datap);
int capset(cap_user_header_t hdrp, const cap_user_data_t datap);

static void step(const char *what, long r) {
    printf("%s -> %ld%s%s\n", what, r, r == -1 ? " " : "", r == -1 ? strerror(errno) : "");
    errno = 0;
}

static long at(int id) {
    void *p = shmat(id, NULL, SHM_RDONLY);
    if (p == (void *)-1) return -1;
    return shmdt(p) == 0 ? 0 : -2;
}

/* Removes CAP_IPC_OWNER from the effective set. */
static int drop_ipc_owner(int permitted_too) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (capget(&h, d) != 0) return -1;
    d[0].effective &= ~(1u << CAP_IPC_OWNER);
    if (permitted_too) d[0].permitted &= ~(1u << CAP_IPC_OWNER);
    return capset(&h, d);
}

static int raise_ipc_owner(void) {
    struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct d[2];
    if (capget(&h, d) != 0) return -1;
    d[0].effective |= 1u << CAP_IPC_OWNER;
    return capset(&h, d);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "shim") == 0) deny_kernel_ipc();
    setvbuf(stdout, NULL, _IONBF, 0);
    int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(id >= 0, "shmget");
    step("root: shmat", at(id));

    /* seteuid: a temporary identity, and back (the saved uid is 0). */
    step("seteuid(1000)", seteuid(1000));
    step("euid 1000: shmat", at(id));
    struct shmid_ds ds;
    step("euid 1000: IPC_STAT", shmctl(id, IPC_STAT, &ds));
    step("seteuid(0)", seteuid(0));
    step("root again: shmat", at(id));

    /* setegid + setgroups: group access. */
    memset(&ds, 0, sizeof ds);
    ds.shm_perm.uid = 0;
    ds.shm_perm.gid = 2000;
    ds.shm_perm.mode = 0040;
    step("IPC_SET gid 2000 mode 040", shmctl(id, IPC_SET, &ds));
    gid_t g = 2000;
    step("setegid(3000)", setegid(3000));
    step("seteuid(1000)", seteuid(1000));
    step("egid 3000: shmat", at(id));
    step("seteuid(0)", seteuid(0));
    step("setgroups([2000])", setgroups(1, &g));
    step("seteuid(1000)", seteuid(1000));
    step("group 2000: shmat", at(id));
    step("seteuid(0)", seteuid(0));
    step("setresgid(0,0,0)", setresgid(0, 0, 0));
    step("setgroups([])", setgroups(0, NULL));

    /* capset: root passes mode 000 only through CAP_IPC_OWNER. */
    memset(&ds, 0, sizeof ds);
    ds.shm_perm.mode = 0;
    step("IPC_SET mode 0", shmctl(id, IPC_SET, &ds));
    step("root, CAP_IPC_OWNER: shmat", at(id));
    step("capset(-CAP_IPC_OWNER)", drop_ipc_owner(0));
    step("root, no CAP_IPC_OWNER: shmat", at(id));
    step("capset(+CAP_IPC_OWNER)", raise_ipc_owner());
    step("root, CAP_IPC_OWNER again: shmat", at(id));

    /* setresuid/setuid for good: a new creator. */
    step("setresgid(1000,1000,1000)", setresgid(1000, 1000, 1000));
    step("setuid(1000)", setuid(1000));
    step("uid 1000: shmat", at(id));
    step("uid 1000: IPC_RMID", shmctl(id, IPC_RMID, NULL));
    int mine = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
    CHECK(mine >= 0, "shmget as 1000");
    memset(&ds, 0, sizeof ds);
    step("uid 1000: IPC_STAT own", shmctl(mine, IPC_STAT, &ds));
    printf("own: uid %u gid %u cuid %u cgid %u\n", ds.shm_perm.uid, ds.shm_perm.gid, ds.shm_perm.cuid, ds.shm_perm.cgid);
    step("uid 1000: IPC_RMID own", shmctl(mine, IPC_RMID, NULL));
    step("setuid(0)", setuid(0));
    printf("ok\n");
    return 0;
}
