// SPDX-License-Identifier: (MIT OR Apache-2.0)
// xdpgen: the XDP half of fluxcapacitor's kernel-speed traffic generator
// (examples/xdpgen.rs).
//
// User space runs this program with BPF_PROG_RUN in live-frames mode
// (BPF_F_TEST_XDP_LIVE_FRAMES, Linux >= 5.18): the kernel builds a frame from the
// prepared packet for every repetition and honours the verdict. XDP_TX becomes a
// redirect out of the interface named as ingress in the context, so each
// repetition transmits one frame from inside the kernel -- no socket, no skb, no
// copy to or from user space. The program is never attached to an interface.
// Per-CPU counters record frames handed on (the rate printer reads them while a
// run is in progress; one run lasts until user space interrupts it).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct gen_counters {
	__u64 frames;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_counters);
} gen_stats SEC(".maps");

/* Optional redirect target: when non-zero, frames are redirected to this
 * ifindex instead of XDP_TX out of the ingress interface. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} gen_cfg SEC(".maps");

SEC("xdp")
int xdpgen_tx(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct gen_counters *c = bpf_map_lookup_elem(&gen_stats, &zero);
	__u32 *target = bpf_map_lookup_elem(&gen_cfg, &zero);

	if (c) {
		c->frames++;
		c->bytes += ctx->data_end - ctx->data;
	}
	if (target && *target)
		return bpf_redirect(*target, 0);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
