// SPDX-License-Identifier: (MIT OR Apache-2.0)
// xdpdrop: count every frame (per CPU, no lock) and drop it -- the XDP_DROP
// ceiling of a receive path, and a counter for what arrives at an interface
// (examples/xdpdrop.rs).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct drop_counters {
	__u64 frames;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_counters);
} drop_stats SEC(".maps");

SEC("xdp")
int xdpdrop(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct drop_counters *c = bpf_map_lookup_elem(&drop_stats, &zero);

	if (c) {
		c->frames++;
		c->bytes += ctx->data_end - ctx->data;
	}
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
