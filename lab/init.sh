# Second stage of the lab guest's init (bash, started by lab-init, which did
# the mounts and powers off when this script ends): bind the lab devices to
# vfio-pci, run the command of lab/run or a shell, record its status.
# Builtins are preferred throughout: each process started in the guest
# costs about half a second.

LAB_IVSHMEM=$LAB_RUN/ivshmem
LAB_IVSHMEM2=$LAB_RUN/ivshmem2
LAB_NVME_IMG=$LAB_RUN/nvme.img
export LAB_TOP LAB_RUN LAB_MODE LAB_CPU LAB_IVSHMEM LAB_IVSHMEM2 LAB_NVME_IMG
# Variables passed on by lab/run (T, V, LAB_*, TEST_*).
[ -f "$LAB_RUN/env" ] && . "$LAB_RUN/env"
[ -f "$LAB_TOP/build/prefix/env" ] && . "$LAB_TOP/build/prefix/env"

. "$LAB_TOP/lab/pci.sh"
echo "lab: binding ${LAB_VFIO-ivshmem edu edu2} to vfio-pci"
# shellcheck disable=SC2086 # a list of names
lab_vfio_bind ${LAB_VFIO-ivshmem edu edu2} || echo "lab: binding to vfio-pci failed" >&2

cd "$LAB_TOP" || exit
if [ "$LAB_MODE" = shell ]; then
	echo "lab: shell (exit or Ctrl-D powers the guest off); run directory $LAB_RUN"
	setsid -c bash -i </dev/ttyS0 >/dev/ttyS0 2>&1
	exit 0
fi
read -r cmd < "$LAB_RUN/cmd"
read -r uptime _ < /proc/uptime
echo "lab: booted in ${uptime}s; running $cmd"
bash "$LAB_RUN/cmd" 2>&1 | tee "$LAB_RUN/output"
status=${PIPESTATUS[0]}
echo "$status" > "$LAB_RUN/status"
echo "lab: command exited with status $status"
