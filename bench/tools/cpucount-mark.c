// SPDX-License-Identifier: GPL-2.0
/*
 * cpucount-mark: ask the counting TCG plugin (bench/plugin/cpucount.c) for a
 * reading, by executing its marker instruction once. On a machine without
 * the plugin the marker is a no-op ("xchg %bx,%bx") and so is this.
 */
int main(void)
{
	__asm__ volatile(".byte 0x66, 0x87, 0xdb" ::: "memory");
	return 0;
}
