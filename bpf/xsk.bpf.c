// SPDX-License-Identifier: (MIT OR Apache-2.0)
// fluxcapacitor's default XDP program.
//
// Every packet that arrives on a queue with a socket registered in `xsks_map`
// (keyed by rx_queue_index) is redirected to that socket; everything else is
// passed to the kernel stack untouched. Optional steering rules (set from user
// space in `flux_cfg` before the program is attached) narrow what is redirected,
// so attaching to a host's interface does not cut it off.
//
// Per-queue counters live in a per-CPU array so the fast path takes no lock.
//
// Neighbour discovery: for the addresses configured in `flux_cfg` (nd_*), ARP
// requests (IPv4) and Neighbor Solicitations (IPv6) are answered by this object
// itself, before any steering, on every queue, so a stock client reaches the service
// in every mode with no user-space involvement: the XDP program passes them to the
// `flux_nd` TC ingress program, which replies (see below). Only untagged frames are
// answered; anything else (replies, gratuitous ARP, DAD probes, tagged or odd-sized
// requests, requests for other addresses) is steered like any packet.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Resized by user space to the interface's queue count before load. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct flux_counters {
	__u64 redirected;
	__u64 passed;
	__u64 filtered;
	__u64 dropped;
	__u64 nd_requests;        /* neighbour requests for served addresses passed to flux_nd */
	__u64 meta_missing;       /* metadata variant: redirected without room for metadata */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct flux_counters);
} flux_stats SEC(".maps");

/* Steering rules. A zero field means "any". */
#define FLUX_MAX_PORTS 8
#define FLUX_MAX_ND 4
struct flux_config {
	__u32 enabled;            /* 0: redirect everything on a registered queue */
	__u16 ether_type;         /* network byte order, 0 = any */
	__u8 ip_proto;            /* 0 = any */
	__u8 nports;              /* number of valid entries in ports[] */
	__u16 ports[FLUX_MAX_PORTS]; /* destination UDP/TCP ports, network byte order */
	__u32 dst_ip4;            /* network byte order, 0 = any */
	__u8 dst_ip6[16];         /* all zero = any */
	__u32 drop_every_other;   /* test hook: drop odd-numbered packets */
	__u32 split_ports;        /* 1: packets for ports[i] go to XSKMAP key queue + i * nqueues */
	__u32 nqueues;            /* queue count, for split_ports */
	/* Neighbour responder (answered before steering, whatever `enabled` says). */
	__u8 nd_mac[6];           /* the link-layer address answers carry */
	__u8 nd_n4;               /* valid entries in nd_ip4 */
	__u8 nd_n6;               /* valid entries in nd_ip6 */
	__u32 nd_ip4[FLUX_MAX_ND];        /* network byte order */
	__u8 nd_ip6[FLUX_MAX_ND][16];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flux_config);
} flux_cfg SEC(".maps");

/* Global packet sequence for the drop_every_other test hook. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flux_seq SEC(".maps");

/* 0 when the port is not in the list, else its index + 1. */
static __always_inline int port_matches(const struct flux_config *cfg, __u16 port)
{
	if (cfg->nports == 0)
		return 1;
#pragma unroll
	for (int i = 0; i < FLUX_MAX_PORTS; i++) {
		if (i < cfg->nports && cfg->ports[i] == port)
			return i + 1;
	}
	return 0;
}

static __always_inline int ip6_is_zero(const __u8 *a)
{
	__u32 acc = 0;
#pragma unroll
	for (int i = 0; i < 16; i++)
		acc |= a[i];
	return acc == 0;
}

static __always_inline int ip6_equal(const __u8 *a, const __u8 *b)
{
	__u32 acc = 0;
#pragma unroll
	for (int i = 0; i < 16; i++)
		acc |= a[i] ^ b[i];
	return acc == 0;
}

/* Returns 0 when the packet does not match the steering rules; otherwise 1, or with a
 * port list the matching port's index + 1. */
static __always_inline int steer(struct xdp_md *ctx, const struct flux_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;
	__u8 l4 = 0;
	void *l4hdr = 0;

	if ((void *)(eth + 1) > end)
		return 0;
	proto = eth->h_proto;
	data = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan { __u16 tci; __u16 proto; } *v = data;
		if ((void *)(v + 1) > end)
			return 0;
		proto = v->proto;
		data = v + 1;
	}
	if (cfg->ether_type && cfg->ether_type != proto)
		return 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end)
			return 0;
		if (cfg->dst_ip4 && ip->daddr != cfg->dst_ip4)
			return 0;
		/* Only an IPv6 address rule: IPv4 is not for us. */
		if (!cfg->dst_ip4 && !ip6_is_zero(cfg->dst_ip6))
			return 0;
		if (ip->ihl < 5)
			return 0;
		l4 = ip->protocol;
		l4hdr = (void *)ip + ip->ihl * 4;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end)
			return 0;
		if (!ip6_is_zero(cfg->dst_ip6) && !ip6_equal(cfg->dst_ip6, ip6->daddr.in6_u.u6_addr8))
			return 0;
		/* Only an IPv4 address rule: IPv6 is not for us. */
		if (ip6_is_zero(cfg->dst_ip6) && cfg->dst_ip4)
			return 0;
		l4 = ip6->nexthdr; /* extension headers are not followed */
		l4hdr = ip6 + 1;
	} else if (proto == bpf_htons(ETH_P_ARP) && cfg->dst_ip4) {
		/* ARP for the address we own belongs to us too: Ethernet/IPv4 ARP keeps
		 * the target protocol address at offset 24. */
		__u8 *arp = data;
		__u32 tpa;
		if ((void *)(arp + 28) > end)
			return 0;
		__builtin_memcpy(&tpa, arp + 24, 4);
		return tpa == cfg->dst_ip4 && cfg->ip_proto == 0 && cfg->nports == 0;
	} else {
		/* Not IP: only an EtherType rule (already checked) can select it. */
		return cfg->ip_proto == 0 && cfg->nports == 0 && cfg->dst_ip4 == 0 &&
		       ip6_is_zero(cfg->dst_ip6);
	}
	if (cfg->ip_proto && cfg->ip_proto != l4)
		return 0;
	if (cfg->nports) {
		__u16 dport;
		if (l4 == IPPROTO_UDP) {
			struct udphdr *udp = l4hdr;
			if ((void *)(udp + 1) > end)
				return 0;
			dport = udp->dest;
		} else if (l4 == IPPROTO_TCP) {
			struct tcphdr *tcp = l4hdr;
			if ((void *)(tcp + 1) > end)
				return 0;
			dport = tcp->dest;
		} else {
			return 0;
		}
		return port_matches(cfg, dport);
	}
	return 1;
}

/* ---- Neighbour responder ---------------------------------------------------- */
/*
 * Two halves. The XDP program hands ARP requests and Neighbor Solicitations for a
 * served address to the kernel path (XDP_PASS), before any steering, so they never
 * reach the socket; the `flux_nd` TC ingress program of the same object turns them
 * into the reply and sends it back out of the interface (bpf_redirect to its own
 * egress). The reply is not sent with XDP_TX from the XDP program because a veth in
 * native mode drops XDP_TX frames unless its peer runs NAPI (an XDP program or GRO
 * on the peer), which a stock client's end does not; the egress path has no such
 * condition, in any mode and on any driver.
 */

struct flux_arp {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 oper;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

struct flux_arp_frame {
	struct ethhdr eth;
	struct flux_arp arp;
} __attribute__((packed));

static __always_inline int nd_ip4_served(const struct flux_config *cfg, __u32 a)
{
#pragma unroll
	for (int i = 0; i < FLUX_MAX_ND; i++) {
		if (i < cfg->nd_n4 && cfg->nd_ip4[i] == a)
			return 1;
	}
	return 0;
}

static __always_inline int nd_ip6_served(const struct flux_config *cfg, const __u8 *a)
{
#pragma unroll
	for (int i = 0; i < FLUX_MAX_ND; i++) {
		if (i < cfg->nd_n6 && ip6_equal(cfg->nd_ip6[i], a))
			return 1;
	}
	return 0;
}

/* XDP half: 1 for an untagged ARP request or ICMPv6 Neighbor Solicitation whose
 * target is served (the TC half checks the rest). */
static __always_inline int nd_request(struct xdp_md *ctx, const struct flux_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_ARP) && cfg->nd_n4) {
		struct flux_arp *arp = (void *)(eth + 1);
		__u32 tpa;
		if ((void *)(arp + 1) > end || arp->oper != bpf_htons(1))
			return 0;
		__builtin_memcpy(&tpa, arp->tpa, 4);
		return nd_ip4_served(cfg, tpa);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6) && cfg->nd_n6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u8 *icmp = (void *)(ip6 + 1);
		if ((void *)icmp + 24 > end || ip6->nexthdr != IPPROTO_ICMPV6 || icmp[0] != 135)
			return 0;
		return nd_ip6_served(cfg, icmp + 8);
	}
	return 0;
}

/* ICMPv6 Neighbor Solicitation / Advertisement (RFC 4861 sections 4.3, 4.4). */
struct flux_ns_frame {
	struct ethhdr eth;
	struct ipv6hdr ip6;
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 reserved;
	__u8 target[16];
	__u8 opt[8]; /* the source link-layer address option, when present */
} __attribute__((packed, aligned(4)));

struct flux_na_frame {
	struct ethhdr eth;
	struct ipv6hdr ip6;
	__u8 type;
	__u8 code;
	__u16 csum;
	__u8 flags[4];
	__u8 target[16];
	__u8 opt_type;
	__u8 opt_len;
	__u8 opt_mac[6];
} __attribute__((packed, aligned(4)));

/* One's-complement sum of 2-byte words (native order: the sum is byte-order
 * independent, RFC 1071 section 2(B)); `words` is a constant. */
static __always_inline __u32 sum16(const void *p, int words)
{
	const __u16 *w = p;
	__u32 s = 0;
#pragma unroll
	for (int i = 0; i < words; i++)
		s += w[i];
	return s;
}

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* Sum of the ICMPv6 pseudo header (RFC 8200 section 8.1) for `ip6`. */
static __always_inline __u32 pseudo6(const struct ipv6hdr *ip6, __u16 len)
{
	return sum16(&ip6->saddr, 16) + bpf_htons(len) + bpf_htons(IPPROTO_ICMPV6);
}

#define ARP_LEN 42 /* Ethernet + Ethernet/IPv4 ARP */
#define NS_MIN 78  /* Ethernet + IPv6 + NS without option */
#define NS_OPT 86  /* ... with one 8-byte option */
#define NA_LEN 86  /* Ethernet + IPv6 + NA with the target link-layer address option */
#define ICMP6_OFF 54
_Static_assert(sizeof(struct flux_arp_frame) == ARP_LEN, "ARP frame layout");
_Static_assert(sizeof(struct flux_ns_frame) >= NS_OPT, "NS frame layout");
_Static_assert(sizeof(struct flux_na_frame) >= NA_LEN, "NA frame layout");

/* An Ethernet/IPv4 ARP request for a served address becomes its reply. Gratuitous
 * requests (sender == target) are not answered. 1 when answered. */
static __always_inline int tc_arp(struct __sk_buff *skb, const struct flux_config *cfg)
{
	struct flux_arp_frame f;
	__u8 spa[4];

	if (bpf_skb_load_bytes(skb, 0, &f, sizeof(f)))
		return 0;
	if (f.eth.h_proto != bpf_htons(ETH_P_ARP) || f.arp.htype != bpf_htons(1) ||
	    f.arp.ptype != bpf_htons(ETH_P_IP) || f.arp.hlen != 6 || f.arp.plen != 4 ||
	    f.arp.oper != bpf_htons(1))
		return 0;
	__u32 s, t;
	__builtin_memcpy(&s, f.arp.spa, 4);
	__builtin_memcpy(&t, f.arp.tpa, 4);
	if (s == t || !nd_ip4_served(cfg, t))
		return 0;
	__builtin_memcpy(spa, f.arp.spa, 4);
	__builtin_memcpy(f.eth.h_dest, f.eth.h_source, 6);
	__builtin_memcpy(f.eth.h_source, cfg->nd_mac, 6);
	f.arp.oper = bpf_htons(2);
	__builtin_memcpy(f.arp.tha, f.arp.sha, 6);
	__builtin_memcpy(f.arp.spa, f.arp.tpa, 4);
	__builtin_memcpy(f.arp.tpa, spa, 4);
	__builtin_memcpy(f.arp.sha, cfg->nd_mac, 6);
	return bpf_skb_store_bytes(skb, 0, &f, sizeof(f), 0) == 0;
}

/* A Neighbor Solicitation for a served address (hop limit 255, code 0, a right
 * checksum, not a DAD probe, no option or one 8-byte option, nothing after the IPv6
 * packet) becomes the solicited Neighbor Advertisement, sent to the soliciting
 * address with our link-layer address as the target option. 1 when answered. */
static __always_inline int tc_ns(struct __sk_buff *skb, const struct flux_config *cfg)
{
	struct flux_ns_frame ns;
	struct flux_na_frame r;
	__u32 len = skb->len;
	__u16 plen;
	__u32 s;

	__builtin_memset(&ns, 0, sizeof(ns));
	if (len == NS_OPT) {
		if (bpf_skb_load_bytes(skb, 0, &ns, NS_OPT))
			return 0;
	} else if (len == NS_MIN) {
		if (bpf_skb_load_bytes(skb, 0, &ns, NS_MIN))
			return 0;
	} else {
		return 0;
	}
	plen = bpf_ntohs(ns.ip6.payload_len);
	if (ns.eth.h_proto != bpf_htons(ETH_P_IPV6) || ns.ip6.nexthdr != IPPROTO_ICMPV6 ||
	    ns.ip6.hop_limit != 255 || ns.type != 135 || ns.code != 0 ||
	    (__u32)plen + ICMP6_OFF != len)
		return 0;
	if (ip6_is_zero(ns.ip6.saddr.in6_u.u6_addr8)) /* DAD probe: not a resolution */
		return 0;
	if (!nd_ip6_served(cfg, ns.target))
		return 0;
	/* The solicitation's checksum (the unused option bytes are zero). */
	s = pseudo6(&ns.ip6, plen) + sum16(&ns.type, 16);
	if (fold(s) != 0xffff)
		return 0;

	__builtin_memcpy(r.eth.h_dest, ns.eth.h_source, 6);
	__builtin_memcpy(r.eth.h_source, cfg->nd_mac, 6);
	r.eth.h_proto = bpf_htons(ETH_P_IPV6);
	__builtin_memset(&r.ip6, 0, sizeof(r.ip6));
	r.ip6.version = 6;
	r.ip6.payload_len = bpf_htons(NA_LEN - ICMP6_OFF);
	r.ip6.nexthdr = IPPROTO_ICMPV6;
	r.ip6.hop_limit = 255;
	__builtin_memcpy(&r.ip6.saddr, ns.target, 16);
	__builtin_memcpy(&r.ip6.daddr, &ns.ip6.saddr, 16);
	r.type = 136;
	r.code = 0;
	r.csum = 0;
	r.flags[0] = 0x60; /* Solicited, Override */
	r.flags[1] = 0;
	r.flags[2] = 0;
	r.flags[3] = 0;
	__builtin_memcpy(r.target, ns.target, 16);
	r.opt_type = 2; /* target link-layer address */
	r.opt_len = 1;
	__builtin_memcpy(r.opt_mac, cfg->nd_mac, 6);
	s = pseudo6(&r.ip6, NA_LEN - ICMP6_OFF) + sum16(&r.type, (NA_LEN - ICMP6_OFF) / 2);
	r.csum = ~fold(s);

	if (len != NA_LEN && bpf_skb_change_tail(skb, NA_LEN, 0))
		return 0;
	return bpf_skb_store_bytes(skb, 0, &r, NA_LEN, 0) == 0;
}

/* Neighbour answers sent, summed over CPUs by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flux_nd_stats SEC(".maps");

/* TC ingress half of the responder: what the XDP half passed comes back out. */
SEC("tc")
int flux_nd(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct flux_config *cfg = bpf_map_lookup_elem(&flux_cfg, &zero);
	int answered = 0;

	if (!cfg || skb->vlan_present)
		return TC_ACT_OK;
	if (skb->protocol == bpf_htons(ETH_P_ARP) && cfg->nd_n4)
		answered = tc_arp(skb, cfg);
	else if (skb->protocol == bpf_htons(ETH_P_IPV6) && cfg->nd_n6)
		answered = tc_ns(skb, cfg);
	if (!answered)
		return TC_ACT_OK;
	__u64 *n = bpf_map_lookup_elem(&flux_nd_stats, &zero);
	if (n)
		*n += 1;
	return bpf_redirect(skb->ifindex, 0);
}

/* ---- RX metadata ------------------------------------------------------------ */
/*
 * The metadata variants (flux_xsk_meta, flux_xsk_meta_frags) are loaded only when
 * user space asks for RX metadata, device-bound (BPF_F_XDP_DEV_BOUND_ONLY + the
 * interface's index), which the XDP metadata kfuncs require; the plain programs
 * above are untouched. In front of every packet they redirect they write a
 * `struct flux_rx_meta` (bpf_xdp_adjust_meta), which the kernel carries into the
 * UMEM frame in front of the packet (copy mode copies the metadata area along with
 * the packet; zero-copy leaves it in place). User space finds it at
 * `packet - sizeof(struct flux_rx_meta)` and checks `magic` and `version` first.
 *
 * The kfuncs are weak: on a kernel without one, bpf_ksym_exists() is false, the
 * call is left out by the verifier, and its validity bit is never set.
 */
#define FLUX_META_MAGIC 0xF17C
#define FLUX_META_VERSION 1
#define FLUX_META_TIMESTAMP (1 << 0)
#define FLUX_META_HASH (1 << 1)
#define FLUX_META_VLAN (1 << 2)

struct flux_rx_meta {
	__u64 rx_timestamp;       /* ns, the device's clock; valid with FLUX_META_TIMESTAMP */
	__u32 rx_hash;            /* valid with FLUX_META_HASH */
	__u32 rx_hash_type;       /* enum xdp_rss_hash_type */
	__u16 vlan_proto;         /* network byte order; valid with FLUX_META_VLAN */
	__u16 vlan_tci;           /* host byte order */
	__u8 valid;               /* FLUX_META_* bits */
	__u8 version;             /* FLUX_META_VERSION */
	__u16 magic;              /* FLUX_META_MAGIC, the last bytes before the packet */
};
_Static_assert(sizeof(struct flux_rx_meta) == 24, "RX metadata layout");

/* The kernel's enum (include/net/xdp.h), named as the kfunc's BTF expects. */
enum xdp_rss_hash_type {
	XDP_RSS_TYPE_NONE = 0,
};

extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym __weak;
extern int bpf_xdp_metadata_rx_hash(const struct xdp_md *ctx, __u32 *hash,
				    enum xdp_rss_hash_type *rss_type) __ksym __weak;
extern int bpf_xdp_metadata_rx_vlan_tag(const struct xdp_md *ctx, __be16 *vlan_proto,
					__u16 *vlan_tci) __ksym __weak;

/* Writes the metadata in front of the packet; 0 when there is no room for it (the
 * packet is redirected without, and counted). */
static __always_inline int flux_write_meta(struct xdp_md *ctx)
{
	struct flux_rx_meta *m;
	void *data;
	__u64 ts = 0;
	__u32 hash = 0;
	enum xdp_rss_hash_type type = XDP_RSS_TYPE_NONE;
	__be16 proto = 0;
	__u16 tci = 0;
	__u8 valid = 0;

	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct flux_rx_meta)))
		return 0;
	data = (void *)(long)ctx->data;
	m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > data)
		return 0;
	/* A zero timestamp is "none" (veth reports the skb's hardware timestamp, 0
	 * when no device stamped it). */
	if (bpf_ksym_exists(bpf_xdp_metadata_rx_timestamp) &&
	    bpf_xdp_metadata_rx_timestamp(ctx, &ts) == 0 && ts != 0)
		valid |= FLUX_META_TIMESTAMP;
	if (bpf_ksym_exists(bpf_xdp_metadata_rx_hash) &&
	    bpf_xdp_metadata_rx_hash(ctx, &hash, &type) == 0)
		valid |= FLUX_META_HASH;
	if (bpf_ksym_exists(bpf_xdp_metadata_rx_vlan_tag) &&
	    bpf_xdp_metadata_rx_vlan_tag(ctx, &proto, &tci) == 0)
		valid |= FLUX_META_VLAN;
	m->rx_timestamp = ts;
	m->rx_hash = hash;
	m->rx_hash_type = (__u32)type;
	m->vlan_proto = proto;
	m->vlan_tci = tci;
	m->valid = valid;
	m->version = FLUX_META_VERSION;
	m->magic = FLUX_META_MAGIC;
	return 1;
}

static __always_inline int flux_redirect_meta(struct xdp_md *ctx, int meta)
{
	__u32 q = ctx->rx_queue_index;
	__u32 zero = 0;
	struct flux_counters *c = bpf_map_lookup_elem(&flux_stats, &q);
	struct flux_config *cfg = bpf_map_lookup_elem(&flux_cfg, &zero);

	__u32 key = q;
	if (cfg && (cfg->nd_n4 || cfg->nd_n6) && nd_request(ctx, cfg)) {
		if (c)
			c->nd_requests++;
		return XDP_PASS;
	}
	if (cfg && cfg->enabled) {
		int m = steer(ctx, cfg);
		if (!m) {
			if (c)
				c->filtered++;
			return XDP_PASS;
		}
		if (cfg->split_ports && cfg->nports)
			key = q + (__u32)(m - 1) * cfg->nqueues;
	}
	if (cfg && cfg->drop_every_other) {
		__u64 *seq = bpf_map_lookup_elem(&flux_seq, &zero);
		if (seq && (__sync_fetch_and_add(seq, 1) & 1)) {
			if (c)
				c->dropped++;
			return XDP_DROP;
		}
	}
	if (meta && !flux_write_meta(ctx) && c)
		c->meta_missing++;
	/* XDP_PASS as the fallback action: no socket on this queue -> kernel stack. */
	int act = bpf_redirect_map(&xsks_map, key, XDP_PASS);
	if (c) {
		if (act == XDP_REDIRECT)
			c->redirected++;
		else
			c->passed++;
	}
	return act;
}

static __always_inline int flux_redirect(struct xdp_md *ctx)
{
	return flux_redirect_meta(ctx, 0);
}

SEC("xdp")
int flux_xsk(struct xdp_md *ctx)
{
	return flux_redirect(ctx);
}

/* The same program for multi-buffer (XDP_USE_SG) sockets and jumbo frames. */
SEC("xdp.frags")
int flux_xsk_frags(struct xdp_md *ctx)
{
	return flux_redirect(ctx);
}

/* The RX-metadata variants (loaded device-bound, only when asked for). */
SEC("xdp")
int flux_xsk_meta(struct xdp_md *ctx)
{
	return flux_redirect_meta(ctx, 1);
}

SEC("xdp.frags")
int flux_xsk_meta_frags(struct xdp_md *ctx)
{
	return flux_redirect_meta(ctx, 1);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
