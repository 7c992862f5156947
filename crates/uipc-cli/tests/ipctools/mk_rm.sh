# The ipcmk/ipcrm sequence of tests/ipcmk_ipcrm_golden.rs: run once with
# util-linux in a fresh kernel IPC namespace, once with uipc's multi-call
# links in a fresh uipc namespace. Every command's output and exit status
# are printed; the caller masks keys (ipcmk picks them at random).
run() { "$@"; echo "[$*] -> $?"; }
key_of() { ipcs "$1" | awk -v id="$2" '$2 == id { print $1 }'; }
run ipcmk -M 4096 -p 640
run ipcmk -M 1K
run ipcmk --shmem 2M --mode 0600
run ipcmk -S 3 -p 600
run ipcmk --semaphore 1
run ipcmk -M 4096 -S 2
run ipcmk -M 0
run ipcmk -M -5
run ipcmk -M 12Q
run ipcmk -S 0
run ipcmk -S abc
run ipcmk -p 9 -M 10
run ipcmk -p 1777 -M 10
run ipcmk
run ipcmk -Z
run ipcmk -Q
run ipcmk -Q -p 600
run ipcmk --queue --mode 0640 -M 4096
run ipcmk -Q
run ipcs -q
run ipcs -m
run ipcs -s
run ipcrm -m 0
run ipcrm -m 0
run ipcrm -m 999
run ipcrm -m abc
run ipcrm -m -1
run ipcrm -s 1
run ipcrm -s 7
run ipcrm -M "$(key_of -m 1)"
run ipcrm -M 0x7777
run ipcrm -M 0
run ipcrm -S "$(key_of -s 0)"
run ipcrm -S nokey
run ipcrm -q 0
run ipcrm -q 0
run ipcrm -q 99
run ipcrm -Q "$(key_of -q 1)"
run ipcrm -Q 0x7777
run ipcrm msg 2
run ipcs -q
run ipcrm shm 2
run ipcrm sem 2
run ipcrm -x
run ipcrm
run ipcs -m
run ipcs -s
run ipcrm -v -a shm
run ipcs -m
run ipcrm -a
run ipcs -a
