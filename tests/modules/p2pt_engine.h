/* SPDX-License-Identifier: GPL-2.0 */
/* edu's DMA engine, lent by p2p_dmabuf_test to p2p_test_rdma. */
#ifndef P2PT_ENGINE_H
#define P2PT_ENGINE_H

#include <linux/types.h>

struct device;
struct p2pt_engine;	/* an edu bound to p2p_test_importer */

struct p2pt_engine *p2pt_engine_get(struct device *dev);
void p2pt_engine_put(struct p2pt_engine *engine);
int p2pt_engine_copy(struct p2pt_engine *engine, dma_addr_t dma_addr,
		     void *data, size_t len, bool to_peer);

#endif /* P2PT_ENGINE_H */
