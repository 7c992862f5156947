# The message-queue part of crates/uipc-cli/tests/utillinux.rs, run natively
# (unshare --ipc) and under `uipc run --deny-kernel-ipc`:
#   sh msg.sh MSGSEND        (in a writable scratch directory)
# ipcmk makes a queue, MSGSEND (msgsend.c) sends, receives and sends a
# message of 11 bytes, ipcs and lsipc list it every way, ipcrm removes it.
set -eu
msgsend=$1
made=$(ipcmk -Q -p 0640)
echo "$made"
id=$(echo "$made" | sed -n 's/^Message queue id: //p')
"$msgsend" "$id" 7 "hello world" &
sender=$!
wait "$sender"
key=$(awk -v id="$id" '$2 == id { k = $1; if (k < 0) k += 4294967296; printf "0x%08x\n", k }' /proc/sysvipc/msg)
mask() {
	sed -E -e "s/$key/KEY/g" -e "s/\b$sender\b/SENDER/g" \
		-e 's/[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}/TIME/g' \
		-e 's/[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}/TIME/g' \
		-e 's/"(ctime|send|recv)": "[^"]*"/"\1": "TIME"/g' \
		-e 's/[[:blank:]]+/ /g; s/ $//'
}
run() {
	echo "\$ $*"
	"$@" >out 2>&1 || echo "(exit status $?)" >>out
	mask <out
}
run ipcs -q
run ipcs -q -i "$id"
run ipcs -q -c
run ipcs -q -t
run ipcs -q -p
run ipcs -q -u
run ipcs -q -l
run lsipc -q --json
run lsipc -q -i "$id"
run lsipc -g
run ipcrm -q "$id"
run ipcs -q
run ipcs -q -u
rm -f out
