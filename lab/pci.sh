# Bash functions for lab devices (sourced; builtins only, since every
# process the guest starts costs about half a second under TCG).
# Device names are defined in lab/devices.

LAB_DEVICES=${LAB_DEVICES:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/devices}

# lab_pci_find NAME: set REPLY to the device's PCI address; 1 if absent.
lab_pci_find() {
	local name=$1 n id nth v p i=0 d
	REPLY=
	while read -r n id nth; do
		[ "$n" = "$name" ] && break
	done < "$LAB_DEVICES"
	if [ "$n" != "$name" ]; then
		echo "lab: unknown device $name" >&2
		return 2
	fi
	for d in /sys/bus/pci/devices/*; do
		read -r v < "$d/vendor"
		read -r p < "$d/device"
		if [ "${v#0x}:${p#0x}" = "$id" ]; then
			i=$((i + 1))
			if [ "$i" = "$nth" ]; then
				REPLY=${d##*/}
				return 0
			fi
		fi
	done
	return 1
}

# lab_vfio_bind NAME...: bind lab devices to vfio-pci.
lab_vfio_bind() {
	local name bdf dev
	for name in "$@"; do
		lab_pci_find "$name" || { echo "lab: $name not present" >&2; return 1; }
		bdf=$REPLY dev=/sys/bus/pci/devices/$REPLY
		[ -e "/sys/bus/pci/drivers/vfio-pci/$bdf" ] && continue
		[ -e "$dev/driver" ] && echo "$bdf" > "$dev/driver/unbind"
		echo vfio-pci > "$dev/driver_override"
		echo "$bdf" > /sys/bus/pci/drivers_probe
		[ -e "/sys/bus/pci/drivers/vfio-pci/$bdf" ] ||
			{ echo "lab: $name ($bdf) did not bind to vfio-pci" >&2; return 1; }
	done
}

# lab_vfio_unbind NAME...: release lab devices from their driver.
lab_vfio_unbind() {
	local name dev
	for name in "$@"; do
		lab_pci_find "$name" || return 1
		dev=/sys/bus/pci/devices/$REPLY
		echo > "$dev/driver_override"
		[ -e "$dev/driver" ] && echo "$REPLY" > "$dev/driver/unbind"
	done
	return 0
}
