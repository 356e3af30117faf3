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
// Neighbour discovery: for the addresses configured in `flux_cfg` (nd_*), the
// program itself answers ARP requests (IPv4) and Neighbor Solicitations (IPv6)
// with XDP_TX, before any steering, on every queue, so a stock client reaches
// the service in every mode with no user-space involvement. Only untagged frames
// are answered; anything else (replies, gratuitous ARP, DAD probes, tagged or
// odd-sized requests, requests for other addresses) is steered like any packet.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/tcp.h>
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
	__u64 nd_replies;         /* ARP replies and Neighbor Advertisements sent */
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

/* An untagged Ethernet/IPv4 ARP request for a served address becomes its reply, in
 * place (same length). Gratuitous requests (sender == target) are not answered. */
static __always_inline int arp_reply(struct xdp_md *ctx, const struct flux_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct flux_arp *arp = (void *)(eth + 1);
	__u32 spa, tpa;

	if ((void *)(arp + 1) > end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_ARP) || arp->htype != bpf_htons(1) ||
	    arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != 6 || arp->plen != 4 ||
	    arp->oper != bpf_htons(1))
		return 0;
	__builtin_memcpy(&spa, arp->spa, 4);
	__builtin_memcpy(&tpa, arp->tpa, 4);
	if (spa == tpa || !nd_ip4_served(cfg, tpa))
		return 0;
	__builtin_memcpy(eth->h_dest, eth->h_source, 6);
	__builtin_memcpy(eth->h_source, cfg->nd_mac, 6);
	arp->oper = bpf_htons(2);
	__builtin_memcpy(arp->tha, arp->sha, 6);
	__builtin_memcpy(arp->tpa, &spa, 4);
	__builtin_memcpy(arp->sha, cfg->nd_mac, 6);
	__builtin_memcpy(arp->spa, &tpa, 4);
	return 1;
}

/* ICMPv6 Neighbor Solicitation / Advertisement (RFC 4861 sections 4.3, 4.4). */
struct flux_ns {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 reserved;
	__u8 target[16];
	__u8 opt[8]; /* the source link-layer address option, when present */
};

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
} __attribute__((packed, aligned(2)));

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

/* Sum of the ICMPv6 pseudo header (RFC 8200 section 8.1). */
static __always_inline __u32 pseudo6(const __u8 *src, const __u8 *dst, __u16 len)
{
	__u16 a[16];
	__builtin_memcpy(a, src, 16);
	__builtin_memcpy(&a[8], dst, 16);
	return sum16(a, 16) + bpf_htons(len) + bpf_htons(IPPROTO_ICMPV6);
}

#define NA_LEN 32 /* NA with the target link-layer address option */

/* An untagged Neighbor Solicitation for a served address (hop limit 255, code 0, a
 * right checksum, not a DAD probe, with no option or one 8-byte option and nothing
 * after the IPv6 packet) becomes the solicited Neighbor Advertisement, sent to the
 * soliciting address with our link-layer address as the target option. */
static __always_inline int ns_reply(struct xdp_md *ctx, const struct flux_config *cfg)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct flux_ns *ns = (void *)(ip6 + 1);
	struct flux_na_frame r;
	__u16 ns_copy[16];
	__u16 plen;
	__u32 s;

	/* The shortest NS (no option) is 24 bytes of ICMPv6. */
	if ((void *)ns + 24 > end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->nexthdr != IPPROTO_ICMPV6 ||
	    ip6->hop_limit != 255 || ns->type != 135 || ns->code != 0)
		return 0;
	plen = bpf_ntohs(ip6->payload_len);
	/* Exactly the solicitation, nothing after it (no padding, no fragments). */
	if (plen == 24) {
		if ((void *)ns + 25 <= end)
			return 0;
	} else if (plen == 32) {
		if ((void *)ns + 32 > end || (void *)ns + 33 <= end)
			return 0;
	} else {
		return 0;
	}
	if (ip6_is_zero(ip6->saddr.in6_u.u6_addr8)) /* DAD probe: not a resolution */
		return 0;
	if (!nd_ip6_served(cfg, ns->target))
		return 0;
	/* Verify the solicitation's checksum. */
	__builtin_memset(ns_copy, 0, sizeof(ns_copy));
	if (plen == 32) {
		if ((void *)ns + 32 > end)
			return 0;
		__builtin_memcpy(ns_copy, ns, 32);
	} else {
		__builtin_memcpy(ns_copy, ns, 24);
	}
	s = pseudo6(ip6->saddr.in6_u.u6_addr8, ip6->daddr.in6_u.u6_addr8, plen) +
	    sum16(ns_copy, 16);
	if (fold(s) != 0xffff)
		return 0;

	/* The advertisement, built on the stack. */
	__builtin_memcpy(r.eth.h_dest, eth->h_source, 6);
	__builtin_memcpy(r.eth.h_source, cfg->nd_mac, 6);
	r.eth.h_proto = bpf_htons(ETH_P_IPV6);
	__builtin_memset(&r.ip6, 0, sizeof(r.ip6));
	r.ip6.version = 6;
	r.ip6.payload_len = bpf_htons(NA_LEN);
	r.ip6.nexthdr = IPPROTO_ICMPV6;
	r.ip6.hop_limit = 255;
	__builtin_memcpy(r.ip6.saddr.in6_u.u6_addr8, ns->target, 16);
	__builtin_memcpy(r.ip6.daddr.in6_u.u6_addr8, ip6->saddr.in6_u.u6_addr8, 16);
	r.type = 136;
	r.code = 0;
	r.csum = 0;
	r.flags[0] = 0x60; /* Solicited, Override */
	r.flags[1] = 0;
	r.flags[2] = 0;
	r.flags[3] = 0;
	__builtin_memcpy(r.target, ns->target, 16);
	r.opt_type = 2; /* target link-layer address */
	r.opt_len = 1;
	__builtin_memcpy(r.opt_mac, cfg->nd_mac, 6);
	s = pseudo6(r.ip6.saddr.in6_u.u6_addr8, r.ip6.daddr.in6_u.u6_addr8, NA_LEN) +
	    sum16(&r.type, NA_LEN / 2);
	r.csum = ~fold(s);

	/* Resize the frame to the advertisement (the solicitation is 78 or 86 bytes). */
	if (plen != NA_LEN && bpf_xdp_adjust_tail(ctx, (int)NA_LEN - (int)plen))
		return 0;
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (data + sizeof(r) > end)
		return 0;
	__builtin_memcpy(data, &r, sizeof(r));
	return 1;
}

/* 1 when the frame was turned into a neighbour answer to send back out. */
static __always_inline int nd_answer(struct xdp_md *ctx, const struct flux_config *cfg)
{
	if (cfg->nd_n4 && arp_reply(ctx, cfg))
		return 1;
	if (cfg->nd_n6 && ns_reply(ctx, cfg))
		return 1;
	return 0;
}

static __always_inline int flux_redirect(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	__u32 zero = 0;
	struct flux_counters *c = bpf_map_lookup_elem(&flux_stats, &q);
	struct flux_config *cfg = bpf_map_lookup_elem(&flux_cfg, &zero);

	__u32 key = q;
	if (cfg && (cfg->nd_n4 || cfg->nd_n6) && nd_answer(ctx, cfg)) {
		if (c)
			c->nd_replies++;
		return XDP_TX;
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

char LICENSE[] SEC("license") = "Dual MIT/GPL";
