// SPDX-License-Identifier: (MIT OR Apache-2.0)
// A device-bound XDP program for the probe test (tests/probe.rs): it calls the three
// XDP RX metadata kfuncs and records what each returned. Loaded bound to one device
// (BPF_F_XDP_DEV_BOUND_ONLY), the verifier replaces each kfunc with the driver's
// implementation where the driver has one and with a stub returning -EOPNOTSUPP
// where it has none, so the return codes say, independently of the netdev netlink
// family, which metadata the driver offers. Not part of the library.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

// Not in the UAPI headers: only its size matters to the kfunc's prototype.
enum xdp_rss_hash_type { XDP_RSS_TYPE_NONE = 0 };

extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;
extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
				    enum xdp_rss_hash_type *rss_type) __ksym;
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __be16 *vlan_proto,
					__u16 *vlan_tci) __ksym;

// [0]: packets seen; [1], [2], [3]: the last return of the timestamp, hash and
// vlan-tag kfuncs.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __s64);
} rx_meta_results SEC(".maps");

static void put(__u32 key, __s64 v)
{
	__s64 *slot = bpf_map_lookup_elem(&rx_meta_results, &key);

	if (slot)
		*slot = v;
}

SEC("xdp")
int rx_meta_prog(struct xdp_md *ctx)
{
	__u64 ts = 0;
	__u32 hash = 0;
	enum xdp_rss_hash_type type = XDP_RSS_TYPE_NONE;
	__be16 proto = 0;
	__u16 tci = 0;
	__u32 zero = 0;
	__s64 *seen = bpf_map_lookup_elem(&rx_meta_results, &zero);

	if (seen)
		__sync_fetch_and_add(seen, 1);
	put(1, bpf_xdp_metadata_rx_timestamp(ctx, &ts));
	put(2, bpf_xdp_metadata_rx_hash(ctx, &hash, &type));
	put(3, bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
