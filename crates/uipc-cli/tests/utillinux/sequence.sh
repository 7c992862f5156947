# The util-linux sequence of crates/uipc-cli/tests/utillinux.rs, run
# natively (unshare --ipc) and under `uipc run --deny-kernel-ipc`:
#   sh sequence.sh HOLDER        (in a writable scratch directory)
# ipcmk makes a segment, HOLDER (holder.c) keeps it attached while ipcs and
# lsipc list it every way, then detaches; ipcrm removes it. The output has
# pids named by role, the (random) key named KEY and times masked.
set -eu
holder=$1
# ipcmk's pid is the segment's cpid: run it by exec from a shell that tells its pid.
made=$(sh -c 'echo $$; exec ipcmk -M 4096 -p 0640')
creator=$(echo "$made" | head -n 1)
echo "$made" | tail -n 1
id=$(echo "$made" | sed -n 's/^Shared memory id: //p')
rm -f hold ready
mkfifo hold ready
"$holder" "$id" <hold >ready &
hpid=$!
exec 4>hold
# The holder prints the key (IPC_STAT) once attached.
read -r key <ready
mask() {
	sed -E -e "s/\b$creator\b/CREATOR/g; s/\b$hpid\b/HOLDER/g; s/$key/KEY/g" \
		-e 's/[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}/TIME/g' \
		-e 's/[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}/TIME/g' \
		-e 's/"ctime": "[^"]*"/"ctime": "TIME"/'
}
run() {
	echo "\$ $*"
	"$@" >out 2>&1 || echo "(exit status $?)" >>out
	mask <out
}
run ipcs -m
run ipcs -m -i "$id"
run ipcs -m -p
run ipcs -m -c
run ipcs -m -b
run ipcs -m -t
run ipcs -m -u
run ipcs -m -l
run lsipc -m --json --bytes
run lsipc -m -i "$id"
exec 4>&-
wait "$hpid"
echo "# holder detached"
run ipcs -m
run ipcs -m -t
run ipcrm -m "$id"
run ipcs -m
run ipcs -m -u
rm -f hold ready out
