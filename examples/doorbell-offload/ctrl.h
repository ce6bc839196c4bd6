/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small user-space NVMe driver over VFIO: the target side of the
 * doorbell-offload example. It owns one controller, polls (no interrupts),
 * keeps its admin queue and every completion queue in host memory, and puts
 * the submission queue of its one I/O queue pair in the controller memory
 * buffer (CMB), where a peer can write entries without the host's memory.
 */
#ifndef DBO_CTRL_H
#define DBO_CTRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "nvme.h"

#define DBO_PAGE	4096u
#define DBO_ADMIN_QSIZE	32u	/* admin SQ/CQ entries */
#define DBO_IO_QID	1u	/* the I/O queue pair */
#define DBO_MAX_QSIZE	64u	/* I/O SQ entries at most: one page of CMB */
#define DBO_DATA_OFF	0x10000u	/* CMB: first data buffer */
#define DBO_DATA_SLOT	DBO_PAGE	/* CMB: one data buffer per SQ slot */

/* One queue pair: entries, the host's view of head and tail, the phase. */
struct dbo_queue {
	volatile struct nvme_sqe *sq;
	volatile struct nvme_cqe *cq;
	uint16_t qid, size;
	uint16_t sq_tail, cq_head;
	uint8_t phase;
};

struct dbo_ctrl {
	char bdf[32];
	/* VFIO: the device fd, and either iommufd + IOAS or a type1 container */
	int device, iommufd, container, group;
	uint32_t ioas;
	/* BAR 0 (registers, doorbells) and the CMB's BAR, mapped for the CPU */
	volatile uint8_t *regs;
	size_t regs_len;
	volatile uint8_t *cmb;
	size_t cmb_map_len;	/* its BAR's mapping */
	uint64_t cmb_len;	/* bytes of CMB (CMBSZ), from cmb_off in its BAR */
	uint32_t cmb_bar;	/* CMBLOC: the BAR ... */
	uint64_t cmb_off;	/* ... and the CMB's offset in it */
	uint64_t cmb_addr;	/* the CMB's controller address (CBA) */
	uint64_t cap;
	uint32_t dstrd;		/* CAP.DSTRD */
	/* host memory the controller reaches by DMA (IOVA mem_iova) */
	uint8_t *mem;
	size_t mem_len;
	uint64_t mem_iova;
	struct dbo_queue admin, io;
	uint64_t io_sq_off;	/* the I/O SQ's offset in the CMB */
	/* namespace 1 */
	uint32_t lba_size;
	uint64_t nsze;
	/* asynchronous events: the AER outstanding, the events seen */
	uint16_t aer_cid, next_cid;
	bool aer_armed;
	unsigned int nr_events;
	uint32_t events[16];	/* completion dword 0 of the first 16 */
	uint32_t last_event;
	bool log_pending;	/* its log page not read yet (no new event) */
	unsigned int aer_failed;	/* AERs the controller refused */
	/* what this process did: admin commands, I/O SQ doorbells it rang */
	unsigned long admin_cmds, io_submissions;
	unsigned int generation;	/* bring-ups (dbo_init) so far */
	const char *step;	/* what dbo_open() was doing when it failed */
	bool memory_off;	/* decoding off (dbo_memory()): hands off the BARs */
	bool io_broken;		/* a dbo_submit() timed out: until dbo_init() */
};

int dbo_open(struct dbo_ctrl *c, const char *bdf);
int dbo_init(struct dbo_ctrl *c, uint16_t io_qsize);
int dbo_reset(struct dbo_ctrl *c);
int dbo_memory(struct dbo_ctrl *c, bool on);
int dbo_export(struct dbo_ctrl *c, uint32_t bar, uint64_t off, uint64_t len);
int dbo_submit(struct dbo_ctrl *c, const struct nvme_sqe *cmd, struct nvme_cqe *out);
int dbo_poll_events(struct dbo_ctrl *c);
uint32_t dbo_csts(struct dbo_ctrl *c);
void dbo_io_idle_state(struct dbo_ctrl *c, uint16_t *cq_head, uint8_t *phase);
void dbo_close(struct dbo_ctrl *c);

/* Bytes of CMB the example uses for @qsize: the SQ page and data slots. */
static inline uint64_t dbo_cmb_used(uint16_t qsize)
{
	return DBO_DATA_OFF + (uint64_t)qsize * DBO_DATA_SLOT;
}

#endif /* DBO_CTRL_H */
