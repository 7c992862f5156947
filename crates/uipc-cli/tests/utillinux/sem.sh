# The semaphore half of crates/uipc-cli/tests/utillinux.rs, run natively
# (unshare --ipc) and under `uipc run --deny-kernel-ipc`:
#   sh sem.sh SEMADD        (in a writable scratch directory)
# ipcmk makes a set of 3, SEMADD (semadd.c) adds 2 to semaphore 1, ipcs and
# lsipc list it every way, ipcrm removes it.
set -eu
semadd=$1
made=$(ipcmk -S 3 -p 0640)
echo "$made"
id=$(echo "$made" | sed -n 's/^Semaphore id: //p')
"$semadd" "$id" 1 2 &
adder=$!
wait "$adder"
# The key ipcmk chose at random, as /proc/sysvipc/sem shows it (checked
# against lsipc's and ipcs's own columns by the comparison itself).
key=$(awk -v id="$id" '$2 == id { k = $1; if (k < 0) k += 4294967296; printf "0x%08x\n", k }' /proc/sysvipc/sem)
# The adder's pid named by role where the tools print pids, the key named
# KEY, times masked, runs of blanks squeezed.
mask() {
	sed -E -e "s/$key/KEY/g" \
		-e 's/[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}/TIME/g' \
		-e 's/[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}/TIME/g' \
		-e 's/"(ctime|otime)": "[^"]*"/"\1": "TIME"/g' \
		-e 's/[[:blank:]]+/ /g; s/ $//' |
		# ipcs -s -i rows: semnum value ncount zcount pid.
		awk -v a="$adder" 'NF == 5 && $1 ~ /^[0-9]+$/ && $5 == a { $5 = "ADDER" } { print }'
}
run() {
	echo "\$ $*"
	"$@" >out 2>&1 || echo "(exit status $?)" >>out
	mask <out
}
run ipcs -s
run ipcs -s -i "$id"
run ipcs -s -c
run ipcs -s -t
run ipcs -s -u
run ipcs -s -l
run lsipc -s --json
run lsipc -s -i "$id"
run ipcrm -s "$id"
run ipcs -s
run ipcs -s -u
rm -f out
