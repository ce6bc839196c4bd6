/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The parts of the NVMe base specification (2.0) the doorbell-offload
 * example uses: controller registers, the submission and completion queue
 * entries, and the admin and I/O commands it sends.
 */
#ifndef DBO_NVME_H
#define DBO_NVME_H

#include <stdint.h>

/* Controller registers (BAR 0) */
#define NVME_REG_CAP		0x00	/* 64 bits */
#define NVME_REG_VS		0x08
#define NVME_REG_CC		0x14
#define NVME_REG_CSTS		0x1c
#define NVME_REG_AQA		0x24
#define NVME_REG_ASQ		0x28	/* 64 bits */
#define NVME_REG_ACQ		0x30	/* 64 bits */
#define NVME_REG_CMBLOC		0x38
#define NVME_REG_CMBSZ		0x3c
#define NVME_REG_CMBMSC		0x50	/* 64 bits */
#define NVME_REG_CMBSTS		0x58
#define NVME_REG_DBS		0x1000	/* doorbells */

#define NVME_CAP_MQES(cap)	((uint32_t)((cap) & 0xffff))	/* 0's based */
#define NVME_CAP_TO(cap)	((uint32_t)(((cap) >> 24) & 0xff))	/* 500 ms units */
#define NVME_CAP_DSTRD(cap)	((uint32_t)(((cap) >> 32) & 0xf))
#define NVME_CAP_CMBS(cap)	((uint32_t)(((cap) >> 57) & 0x1))

#define NVME_CC_EN		(1u << 0)
#define NVME_CC_IOSQES(n)	((uint32_t)(n) << 16)
#define NVME_CC_IOCQES(n)	((uint32_t)(n) << 20)

#define NVME_CSTS_RDY		(1u << 0)
#define NVME_CSTS_CFS		(1u << 1)

#define NVME_CMBLOC_BIR(v)	((v) & 0x7)
#define NVME_CMBLOC_OFST(v)	((v) >> 12)
#define NVME_CMBSZ_SQS		(1u << 0)
#define NVME_CMBSZ_RDS		(1u << 3)
#define NVME_CMBSZ_WDS		(1u << 4)
#define NVME_CMBSZ_SZU(v)	(((v) >> 8) & 0xf)
#define NVME_CMBSZ_SZ(v)	((v) >> 12)
#define NVME_CMBMSC_CRE		(1ull << 0)	/* capability registers enabled */
#define NVME_CMBMSC_CMSE	(1ull << 1)	/* controller memory space enabled */
#define NVME_CMBSTS_CBAI	(1u << 0)	/* the CBA was refused */

/* Submission queue entry: 64 bytes */
struct nvme_sqe {
	uint8_t opcode;
	uint8_t flags;
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2, cdw3;
	uint64_t mptr;
	uint64_t prp1, prp2;
	uint32_t cdw10, cdw11, cdw12, cdw13, cdw14, cdw15;
};

/* Completion queue entry: 16 bytes */
struct nvme_cqe {
	uint32_t dw0;
	uint32_t dw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status;	/* bit 0: phase tag; 15:1 status field */
};

#define NVME_SC_INVALID_FIELD	0x02	/* generic status codes */
#define NVME_SC_INTERNAL	0x06

#define NVME_CQE_PHASE(cqe)	((cqe)->status & 1)
#define NVME_CQE_SF(cqe)	((cqe)->status >> 1)	/* SCT << 8 | SC */

_Static_assert(sizeof(struct nvme_sqe) == 64, "an SQ entry is 64 bytes");
_Static_assert(sizeof(struct nvme_cqe) == 16, "a CQ entry is 16 bytes");

/* Admin commands */
#define NVME_ADM_CREATE_SQ	0x01
#define NVME_ADM_GET_LOG_PAGE	0x02
#define NVME_ADM_CREATE_CQ	0x05
#define NVME_ADM_IDENTIFY	0x06
#define NVME_ADM_SET_FEATURES	0x09
#define NVME_ADM_ASYNC_EVENT	0x0c

#define NVME_ID_CNS_NS		0x00
#define NVME_ID_CNS_CTRL	0x01
#define NVME_FEAT_NUM_QUEUES	0x07
#define NVME_LOG_ERROR		0x01

/* Create I/O queue flags (CDW11) */
#define NVME_Q_PC		(1u << 0)	/* physically contiguous */

/* I/O commands */
#define NVME_CMD_WRITE		0x01
#define NVME_CMD_READ		0x02

/* Asynchronous event completion, dword 0 */
#define NVME_AER_TYPE(dw0)	((dw0) & 0x7)
#define NVME_AER_INFO(dw0)	(((dw0) >> 8) & 0xff)
#define NVME_AER_LOG(dw0)	(((dw0) >> 16) & 0xff)
#define NVME_AER_TYPE_ERROR		0
#define NVME_AER_ERR_INVALID_DB		0x00	/* invalid doorbell register */
#define NVME_AER_ERR_INVALID_DB_VALUE	0x01	/* invalid doorbell write value */

/* Identify namespace: the fields used */
#define NVME_ID_NS_NSZE		0	/* 64 bits */
#define NVME_ID_NS_FLBAS	26
#define NVME_ID_NS_LBAF		128	/* 4 bytes each; LBADS in bits 23:16 */

/* Doorbell offsets in BAR 0 for queue @qid, stride @dstrd (CAP.DSTRD) */
static inline uint32_t nvme_sq_db(uint16_t qid, uint32_t dstrd)
{
	return NVME_REG_DBS + (2u * qid) * (4u << dstrd);
}

static inline uint32_t nvme_cq_db(uint16_t qid, uint32_t dstrd)
{
	return NVME_REG_DBS + (2u * qid + 1) * (4u << dstrd);
}

#endif /* DBO_NVME_H */
