// SPDX-License-Identifier: (MIT OR Apache-2.0)
// Test helper: a TC egress program for the peer end of a test veth, for UDP
// datagrams to port 7400:
// - source port 43000: tagged with VLAN 42, priority 3, the way a VLAN device with
//   TX VLAN offload does: the tag goes into the skb (bpf_skb_vlan_push), not into
//   the frame bytes;
// - source port 44000: the skb's flow hash (bpf_get_hash_recalc: the one the stack
//   computes, and carries across the veth) is written into payload bytes 4..8, in
//   host byte order, for the receiver to compare with the RSS hash the XDP metadata
//   reports. (The UDP checksum of a datagram sent on a veth is left to offload, so
//   it is computed after this change.)
// Everything else passes as it is.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

SEC("tc")
int peer_egress(struct __sk_buff *skb)
{
	struct iphdr ip;
	struct udphdr udp;

	if (skb->protocol != bpf_htons(ETH_P_IP) || skb->vlan_present)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) || ip.protocol != IPPROTO_UDP ||
	    ip.ihl != 5)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + sizeof(ip), &udp, sizeof(udp)))
		return TC_ACT_OK;
	if (udp.dest != bpf_htons(7400))
		return TC_ACT_OK;
	if (udp.source == bpf_htons(43000)) {
		bpf_skb_vlan_push(skb, bpf_htons(ETH_P_8021Q), (3 << 13) | 42);
	} else if (udp.source == bpf_htons(44000)) {
		__u32 hash = bpf_get_hash_recalc(skb);
		bpf_skb_store_bytes(skb, ETH_HLEN + sizeof(ip) + sizeof(udp) + 4, &hash,
				    sizeof(hash), 0);
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
