# The util-linux sequence of crates/uipc-cli/tests/utillinux.rs, run
# natively (unshare --ipc) and under `uipc run --deny-kernel-ipc`:
#   sh sequence.sh HOLDER        (in a writable scratch directory)
# ipcmk makes a segment, HOLDER (holder.c) keeps it attached while ipcs and
# lsipc list it every way, then detaches; ipcrm removes it.
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
# Pids named by role where the tools print pids, the random key named KEY,
# times masked, runs of blanks squeezed (a pid's width moves the padding).
mask() {
	sed -E -e "s/$key/KEY/g" \
		-e "s/(pid=|\"[cl]pid\": \"|PID: *)$creator\b/\1CREATOR/g" \
		-e "s/(pid=|\"[cl]pid\": \"|PID: *)$hpid\b/\1HOLDER/g" \
		-e 's/[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}/TIME/g' \
		-e 's/[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}/TIME/g' \
		-e 's/"ctime": "[^"]*"/"ctime": "TIME"/' \
		-e 's/[[:blank:]]+/ /g; s/ $//' |
		# ipcs -m -p rows: shmid owner cpid lpid.
		awk -v c="$creator" -v h="$hpid" '
		NF == 4 && $1 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $4 ~ /^[0-9]+$/ {
			for (i = 3; i <= 4; i++) { if ($i == c) $i = "CREATOR"; else if ($i == h) $i = "HOLDER" }
		}
		{ print }'
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
