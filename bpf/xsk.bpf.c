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
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct flux_counters);
} flux_stats SEC(".maps");

/* Steering rules. A zero field means "any". */
#define FLUX_MAX_PORTS 8
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

static __always_inline int flux_redirect(struct xdp_md *ctx)
{
	__u32 q = ctx->rx_queue_index;
	__u32 zero = 0;
	struct flux_counters *c = bpf_map_lookup_elem(&flux_stats, &q);
	struct flux_config *cfg = bpf_map_lookup_elem(&flux_cfg, &zero);

	__u32 key = q;
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
