// SPDX-License-Identifier: (MIT OR Apache-2.0)
// A user's own XDP program with its own XSKMAP, for the embedding test
// (FluxBuilder::load_xdp(false) + register_into). Not part of the library.
//
// Like most users' programs it takes IP traffic only and leaves ARP to the kernel,
// which answers for its own address on the interface: a client then resolves that
// address with no help from user space.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} user_xsks SEC(".maps");

__u64 user_seen = 0;

SEC("xdp")
int user_prog(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end || eth->h_proto == bpf_htons(ETH_P_ARP))
		return XDP_PASS;
	__sync_fetch_and_add(&user_seen, 1);
	return bpf_redirect_map(&user_xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
