// kprobe: which AF_XDP / XDP features does the running kernel have?
//
//   kprobe [IFACE...]
//
// Prints one line a feature: `feature<TAB>yes|no<TAB>evidence`, where the
// evidence is what the kernel answered (errno name and number, a returned size,
// a feature bitmask). Each feature is tried the way a program would use it,
// on a veth pair in a private network namespace that dies with this process
// (nothing to clean up). Each IFACE (e.g. virtio-net NICs eth0 eth1 of a test
// VM) is probed first, in the caller's namespace: native XDP, netdev
// feature flags, and an AF_XDP bind with XDP_ZEROCOPY.
//
// Built and run by scripts/kernel-matrix.sh in each guest kernel. Needs root.
// Uses raw syscalls and constants of its own so that headers older than the
// kernel under test do not matter.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/bpf.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#define AF_XDP_ 44
#define SOL_XDP_ 283
#define XDP_RX_RING_ 2
#define XDP_TX_RING_ 3
#define XDP_UMEM_REG_ 4
#define XDP_UMEM_FILL_RING_ 5
#define XDP_UMEM_COMPLETION_RING_ 6
#define XDP_STATISTICS_ 7
#define XDP_OPTIONS_ 8
#define XDP_MAX_TX_SKB_BUDGET_ 9
#define XDP_COPY_ (1 << 1)
#define XDP_ZEROCOPY_ (1 << 2)
#define XDP_USE_NEED_WAKEUP_ (1 << 3)
#define XDP_USE_SG_ (1 << 4)
#define XDP_UMEM_TX_SW_CSUM_ (1 << 1)
#define XDP_UMEM_TX_METADATA_LEN_ (1 << 2)
#define SO_PREFER_BUSY_POLL_ 69
#define SO_BUSY_POLL_BUDGET_ 70
#define BPF_XDP_ 37
#define FRAME 4096
#define NFRAMES 64

// struct xdp_umem_reg as of 6.8 (tx_metadata_len); older kernels read a prefix.
struct umem_reg {
    uint64_t addr;
    uint64_t len;
    uint32_t chunk_size;
    uint32_t headroom;
    uint32_t flags;
    uint32_t tx_metadata_len;
};

struct sockaddr_xdp_ {
    uint16_t family;
    uint16_t flags;
    uint32_t ifindex;
    uint32_t queue_id;
    uint32_t shared_umem_fd;
};

static void out(const char *feature, int yes, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void out(const char *feature, int yes, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("%s\t%s\t%s\n", feature, yes ? "yes" : "no", buf);
    fflush(stdout);
}

// "EINVAL (22)"-style text for an errno.
static const char *err(int e) {
    static char buf[8][64];
    static int n;
    char *b = buf[n++ % 8];
    const char *name = strerrorname_np(e);
    snprintf(b, 64, "%s (%d)", name ? name : "?", e);
    return b;
}

static long bpf(int cmd, union bpf_attr *attr) {
    return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

// An XDP program that returns XDP_PASS; flags go into prog_flags.
static int load_pass(uint32_t prog_flags) {
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = 0, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = 2;
    a.license = (uint64_t)(uintptr_t)"GPL";
    a.prog_flags = prog_flags;
    return (int)bpf(BPF_PROG_LOAD, &a);
}

static int link_xdp(int prog, int ifindex, uint32_t flags) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.link_create.prog_fd = prog;
    a.link_create.target_ifindex = ifindex;
    a.link_create.attach_type = BPF_XDP_;
    a.link_create.flags = flags;
    return (int)bpf(BPF_LINK_CREATE, &a);
}

// --- generic netlink: the netdev family (6.3) ------------------------------

struct nlreq {
    struct nlmsghdr n;
    struct genlmsghdr g;
    char buf[256];
};

static void put_attr(struct nlreq *r, uint16_t type, const void *data, uint16_t len) {
    struct nlattr *na = (struct nlattr *)((char *)r + NLMSG_ALIGN(r->n.nlmsg_len));
    na->nla_type = type;
    na->nla_len = NLA_HDRLEN + len;
    memcpy((char *)na + NLA_HDRLEN, data, len);
    r->n.nlmsg_len = NLMSG_ALIGN(r->n.nlmsg_len) + NLA_ALIGN(na->nla_len);
}

// Sends one request; fills attrs[type] with pointers into `resp`. Returns 0 or -errno.
static int genl_call(uint16_t family, uint8_t cmd, uint8_t version, uint16_t atype,
                     const void *adata, uint16_t alen, char *resp, size_t rlen,
                     struct nlattr **attrs, int maxattr) {
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
    if (fd < 0)
        return -errno;
    struct nlreq r;
    memset(&r, 0, sizeof r);
    r.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
    r.n.nlmsg_type = family;
    r.n.nlmsg_flags = NLM_F_REQUEST;
    r.g.cmd = cmd;
    r.g.version = version;
    put_attr(&r, atype, adata, alen);
    if (send(fd, &r, r.n.nlmsg_len, 0) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    ssize_t n = recv(fd, resp, rlen, 0);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    struct nlmsghdr *h = (struct nlmsghdr *)resp;
    if (!NLMSG_OK(h, (size_t)n))
        return -EBADMSG;
    if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *me = NLMSG_DATA(h);
        return me->error ? me->error : -ENODATA;
    }
    memset(attrs, 0, sizeof(*attrs) * (maxattr + 1));
    char *p = (char *)NLMSG_DATA(h) + GENL_HDRLEN;
    int left = (int)h->nlmsg_len - NLMSG_LENGTH(GENL_HDRLEN);
    while (left >= NLA_HDRLEN) {
        struct nlattr *na = (struct nlattr *)p;
        if (na->nla_len < NLA_HDRLEN || na->nla_len > left)
            break;
        int t = na->nla_type & NLA_TYPE_MASK;
        if (t <= maxattr)
            attrs[t] = na;
        left -= NLA_ALIGN(na->nla_len);
        p += NLA_ALIGN(na->nla_len);
    }
    return 0;
}

static int netdev_family(void) {
    char resp[4096];
    struct nlattr *at[CTRL_ATTR_MAX + 1];
    int rc = genl_call(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, CTRL_ATTR_FAMILY_NAME, "netdev", 7,
                       resp, sizeof resp, at, CTRL_ATTR_MAX);
    if (rc < 0)
        return rc;
    if (!at[CTRL_ATTR_FAMILY_ID])
        return -ENOENT;
    return *(uint16_t *)((char *)at[CTRL_ATTR_FAMILY_ID] + NLA_HDRLEN);
}

static uint64_t attr_u64(struct nlattr *a) {
    uint64_t v = 0;
    memcpy(&v, (char *)a + NLA_HDRLEN, a->nla_len - NLA_HDRLEN >= 8 ? 8 : 4);
    return v;
}

static const char *xdp_act_names(uint64_t v) {
    static char b[256];
    static const char *names[] = {"basic", "redirect", "ndo-xmit", "xsk-zerocopy",
                                  "hw-offload", "rx-sg", "ndo-xmit-sg"};
    b[0] = 0;
    for (int i = 0; i < 7; i++)
        if (v & (1ull << i))
            snprintf(b + strlen(b), sizeof b - strlen(b), "%s%s", b[0] ? "," : "", names[i]);
    return b;
}

// netdev DEV_GET for one ifindex: xdp-features, zc max segs, rx metadata, xsk features.
static void probe_netdev(int family, const char *ifname, int ifindex) {
    char feat[64];
    snprintf(feat, sizeof feat, "xdp_features[%s]", ifname);
    if (family < 0) {
        out(feat, 0, "no netdev genetlink family: %s", err(-family));
        return;
    }
    char resp[4096];
    struct nlattr *at[8];
    uint32_t idx = (uint32_t)ifindex;
    int rc = genl_call((uint16_t)family, 1 /* NETDEV_CMD_DEV_GET */, 1, 1 /* IFINDEX */, &idx,
                       4, resp, sizeof resp, at, 7);
    if (rc < 0) {
        out(feat, 0, "NETDEV_CMD_DEV_GET: %s", err(-rc));
        return;
    }
    uint64_t xf = at[3] ? attr_u64(at[3]) : 0;
    char extra[200];
    int k = 0;
    static const char *names[] = {"zc-max-segs", "rx-metadata", "xsk-features"};
    for (int i = 0; i < 3; i++) {
        struct nlattr *x = at[4 + i];
        if (x)
            k += snprintf(extra + k, sizeof extra - k, " %s=0x%llx", names[i],
                          (unsigned long long)attr_u64(x));
        else
            k += snprintf(extra + k, sizeof extra - k, " %s=absent", names[i]);
    }
    out(feat, at[3] != NULL, "0x%llx (%s)%s", (unsigned long long)xf, xdp_act_names(xf), extra);
}

// --- AF_XDP -----------------------------------------------------------------

static void *umem_area;

// A socket with a registered UMEM (flags / tx_metadata_len as given), FILL,
// COMPLETION and RX/TX rings. Returns fd or -errno (stage in *stage).
static int xsk_new(uint32_t umem_flags, uint32_t tx_meta, const char **stage) {
    if (!umem_area) {
        umem_area = mmap(NULL, FRAME * NFRAMES, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (umem_area == MAP_FAILED) {
            umem_area = NULL;
            *stage = "mmap";
            return -errno;
        }
    }
    int fd = socket(AF_XDP_, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *stage = "socket(AF_XDP)";
        return -errno;
    }
    struct umem_reg mr = {.addr = (uint64_t)(uintptr_t)umem_area,
                          .len = FRAME * NFRAMES,
                          .chunk_size = FRAME,
                          .flags = umem_flags,
                          .tx_metadata_len = tx_meta};
    socklen_t mrlen = (umem_flags & ~1u) || tx_meta ? sizeof mr : 28; /* v2 layout */
    if (setsockopt(fd, SOL_XDP_, XDP_UMEM_REG_, &mr, mrlen) < 0) {
        int e = errno;
        close(fd);
        *stage = "XDP_UMEM_REG";
        return -e;
    }
    int n = 64;
    int opts[] = {XDP_UMEM_FILL_RING_, XDP_UMEM_COMPLETION_RING_, XDP_RX_RING_, XDP_TX_RING_};
    for (unsigned i = 0; i < 4; i++) {
        if (setsockopt(fd, SOL_XDP_, opts[i], &n, sizeof n) < 0) {
            int e = errno;
            close(fd);
            *stage = "ring size";
            return -e;
        }
    }
    return fd;
}

// Queue for the next bind: each probe on the veth gets a queue of its own. On
// the VM's NICs (one queue) a closed socket frees queue 0 in the background, so
// EBUSY is retried for a second.
static uint32_t next_queue;

static int xsk_bind(int fd, int ifindex, uint16_t flags) {
    struct sockaddr_xdp_ sa = {.family = AF_XDP_, .flags = flags, .ifindex = (uint32_t)ifindex,
                               .queue_id = next_queue};
    for (int i = 0; i < 100; i++) {
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return 0;
        if (errno != EBUSY)
            return -errno;
        usleep(10000);
    }
    return -EBUSY;
}

// Socket + bind in one go; returns 0 or -errno and says which step failed.
static int try_bind(int ifindex, uint16_t flags, uint32_t umem_flags, uint32_t tx_meta,
                    const char **stage, int *keep) {
    int fd = xsk_new(umem_flags, tx_meta, stage);
    if (fd < 0)
        return fd;
    int rc = xsk_bind(fd, ifindex, flags);
    if (next_queue)
        next_queue++;
    if (rc < 0)
        *stage = "bind";
    if (keep && rc == 0)
        *keep = fd;
    else
        close(fd);
    return rc;
}

// Copy-mode TX: queue 100 frames, kick once, and read what the kernel published:
// the TX consumer index and the COMPLETION producer index. The kernel sends at most
// 32 a kick; whether the TX consumer shows them right after the kick differs.
static void probe_tx_publish(int ifindex) {
    const char *stage = "";
    int fd = xsk_new(0, 0, &stage);
    if (fd < 0) {
        out("tx_consumer_published_per_kick", 0, "%s: %s", stage, err(-fd));
        return;
    }
    // Rings are mapped before bind: 6.1 refuses mmap on a bound socket (EBUSY).
    struct xdp_mmap_offsets off;
    socklen_t ol = sizeof off;
    if (getsockopt(fd, SOL_XDP_, XDP_MMAP_OFFSETS, &off, &ol) < 0) {
        out("tx_consumer_published_per_kick", 0, "XDP_MMAP_OFFSETS: %s", err(errno));
        close(fd);
        return;
    }
    size_t txlen = off.tx.desc + 64 * sizeof(struct xdp_desc);
    size_t cqlen = off.cr.desc + 64 * sizeof(uint64_t);
    char *tx = mmap(NULL, txlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, XDP_PGOFF_TX_RING);
    char *cq = mmap(NULL, cqlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                    XDP_UMEM_PGOFF_COMPLETION_RING);
    if (tx == MAP_FAILED || cq == MAP_FAILED) {
        out("tx_consumer_published_per_kick", 0, "mmap: %s", err(errno));
        close(fd);
        return;
    }
    int rc = xsk_bind(fd, ifindex, XDP_COPY_);
    next_queue++;
    if (rc < 0) {
        out("tx_consumer_published_per_kick", 0, "bind: %s", err(-rc));
        close(fd);
        return;
    }
    struct xdp_desc *d = (struct xdp_desc *)(tx + off.tx.desc);
    for (unsigned i = 0; i < 64; i++) {
        unsigned char *f = (unsigned char *)umem_area + i * FRAME;
        memset(f, 0, 64);
        memset(f, 0xff, 6);
        f[6] = 0x02;
        f[12] = 0x88;
        f[13] = 0xb5;
        d[i].addr = i * FRAME;
        d[i].len = 64;
        d[i].options = 0;
    }
    __atomic_store_n((uint32_t *)(tx + off.tx.producer), 64, __ATOMIC_RELEASE);
    sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
    uint32_t cons = __atomic_load_n((uint32_t *)(tx + off.tx.consumer), __ATOMIC_ACQUIRE);
    uint32_t done = __atomic_load_n((uint32_t *)(cq + off.cr.producer), __ATOMIC_ACQUIRE);
    out("tx_consumer_published_per_kick", cons == done && done > 0,
        "64 queued, one kick: completed=%u, TX consumer shows %u taken%s", done, cons,
        cons == done ? "" : " (consumer published lazily: TX looks fuller than it is)");
    munmap(tx, txlen);
    munmap(cq, cqlen);
    close(fd);
}

static void sh(const char *cmd) {
    if (system(cmd) != 0) {
        fprintf(stderr, "kprobe: `%s` failed\n", cmd);
        exit(2);
    }
}

// Native XDP attach + zero-copy bind on an interface of the VM (e.g. virtio-net),
// which is brought up (and left up).
static void probe_iface(int family, const char *ifname) {
    char feat[96], cmd[128];
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex) {
        snprintf(feat, sizeof feat, "iface[%s]", ifname);
        out(feat, 0, "no such interface: %s", err(errno));
        return;
    }
    snprintf(cmd, sizeof cmd, "ip link set dev %s up", ifname);
    sh(cmd);
    char drv[128] = "?";
    char path[128];
    snprintf(path, sizeof path, "/sys/class/net/%s/device/driver", ifname);
    ssize_t l = readlink(path, drv, sizeof drv - 1);
    if (l > 0) {
        drv[l] = 0;
        char *s = strrchr(drv, '/');
        if (s)
            memmove(drv, s + 1, strlen(s));
    }
    snprintf(feat, sizeof feat, "driver[%s]", ifname);
    out(feat, 1, "%s", drv);
    probe_netdev(family, ifname, ifindex);
    int prog = load_pass(0);
    int lk = link_xdp(prog, ifindex, XDP_FLAGS_DRV_MODE);
    snprintf(feat, sizeof feat, "xdp_native[%s]", ifname);
    out(feat, lk >= 0, "%s", lk >= 0 ? "bpf_link, XDP_FLAGS_DRV_MODE" : err(errno));
    const char *stage = "";
    int zfd = -1;
    int rc = try_bind(ifindex, XDP_ZEROCOPY_ | XDP_USE_NEED_WAKEUP_, 0, 0, &stage, &zfd);
    snprintf(feat, sizeof feat, "xsk_zerocopy[%s]", ifname);
    out(feat, rc == 0, "%s", rc == 0 ? "bind XDP_ZEROCOPY q0 ok" : err(-rc));
    if (zfd >= 0) {
        uint32_t o = 0;
        socklen_t ol = sizeof o;
        int g = getsockopt(zfd, SOL_XDP_, XDP_OPTIONS_, &o, &ol);
        snprintf(feat, sizeof feat, "xsk_zerocopy_options[%s]", ifname);
        out(feat, g == 0 && (o & 1), "XDP_OPTIONS=0x%x", o);
        close(zfd);
        rc = try_bind(ifindex, XDP_ZEROCOPY_ | XDP_USE_SG_, 0, 0, &stage, NULL);
        snprintf(feat, sizeof feat, "xsk_zerocopy_sg[%s]", ifname);
        out(feat, rc == 0, "%s", rc == 0 ? "bind XDP_ZEROCOPY|XDP_USE_SG ok" : err(-rc));
    }
    rc = try_bind(ifindex, XDP_COPY_, 0, 0, &stage, NULL);
    snprintf(feat, sizeof feat, "xsk_copy[%s]", ifname);
    out(feat, rc == 0, "%s", rc == 0 ? "bind XDP_COPY q0 ok" : err(-rc));
    if (lk >= 0)
        close(lk);
    if (prog >= 0)
        close(prog);
}

int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    out("kernel", 1, "%s", u.release);
    int family = netdev_family();
    out("netdev_genl", family >= 0, "%s",
        family >= 0 ? "family \"netdev\" resolves" : err(-family));
    for (int i = 1; i < argc; i++)
        probe_iface(family, argv[i]);

    // Everything else on a veth pair in a namespace of our own.
    if (unshare(CLONE_NEWNET) < 0) {
        out("netns", 0, "unshare(CLONE_NEWNET): %s", err(errno));
        return 1;
    }
    sh("ip link set lo up && ip link add fxpa numtxqueues 16 numrxqueues 16 type veth peer name fxpb "
       "numtxqueues 16 numrxqueues 16 && "
       "ip link set fxpa up && ip link set fxpb up");
    family = netdev_family();
    int ifindex = (int)if_nametoindex("fxpa");

    int prog = load_pass(0);
    out("bpf_prog_load_xdp", prog >= 0, "%s", prog >= 0 ? "ok" : err(errno));
    if (prog < 0)
        return 1;
    int fprog = load_pass(BPF_F_XDP_HAS_FRAGS);
    out("xdp_frags_prog", fprog >= 0, "%s",
        fprog >= 0 ? "BPF_F_XDP_HAS_FRAGS accepted" : err(errno));
    if (fprog >= 0)
        close(fprog);

    int lk = link_xdp(prog, ifindex, XDP_FLAGS_DRV_MODE);
    out("bpf_link_xdp_native_veth", lk >= 0, "%s",
        lk >= 0 ? "BPF_LINK_CREATE attach_type=BPF_XDP drv mode" : err(errno));
    if (lk >= 0)
        close(lk);
    int gl = link_xdp(prog, ifindex, XDP_FLAGS_SKB_MODE);
    out("bpf_link_xdp_generic", gl >= 0, "%s", gl >= 0 ? "skb mode" : err(errno));
    if (gl >= 0)
        close(gl);
    probe_netdev(family, "veth", ifindex);

    const char *stage = "";
    int fd = -1;
    next_queue = 1;
    int rc = try_bind(ifindex, XDP_COPY_ | XDP_USE_NEED_WAKEUP_, 0, 0, &stage, &fd);
    out("xsk_copy_veth", rc == 0, "%s%s%s", rc == 0 ? "ok" : stage, rc == 0 ? "" : ": ",
        rc == 0 ? "" : err(-rc));
    if (fd >= 0) {
        char st[128];
        socklen_t sl = sizeof st;
        int g = getsockopt(fd, SOL_XDP_, XDP_STATISTICS_, st, &sl);
        out("xdp_statistics_v2", g == 0 && sl >= 48, "%s optlen=%u (48 = with rx_ring_full, "
            "rx_fill_ring_empty_descs, tx_ring_empty_descs)", g == 0 ? "ok" : err(errno), sl);
        uint32_t o = 0;
        socklen_t ol = sizeof o;
        g = getsockopt(fd, SOL_XDP_, XDP_OPTIONS_, &o, &ol);
        out("xdp_options", g == 0, "%s XDP_OPTIONS=0x%x (copy mode: zerocopy bit clear)",
            g == 0 ? "ok" : err(errno), o);
        int one = 1, budget = 64;
        g = setsockopt(fd, SOL_SOCKET, SO_PREFER_BUSY_POLL_, &one, sizeof one);
        int g2 = setsockopt(fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET_, &budget, sizeof budget);
        out("busy_poll_opts", g == 0 && g2 == 0, "SO_PREFER_BUSY_POLL %s, SO_BUSY_POLL_BUDGET %s",
            g == 0 ? "ok" : err(errno), g2 == 0 ? "ok" : err(errno));
        int b = 64;
        g = setsockopt(fd, SOL_XDP_, XDP_MAX_TX_SKB_BUDGET_, &b, sizeof b);
        out("xdp_max_tx_skb_budget", g == 0, "%s", g == 0 ? "setsockopt ok" : err(errno));
        close(fd);
    }
    probe_tx_publish(ifindex);
    rc = try_bind(ifindex, XDP_COPY_ | XDP_USE_SG_, 0, 0, &stage, NULL);
    out("xsk_use_sg_copy", rc == 0, "%s%s%s", rc == 0 ? "bind XDP_COPY|XDP_USE_SG ok" : stage,
        rc == 0 ? "" : ": ", rc == 0 ? "" : err(-rc));
    rc = try_bind(ifindex, XDP_ZEROCOPY_, 0, 0, &stage, NULL);
    out("xsk_zerocopy_veth", rc == 0, "%s%s%s", rc == 0 ? "ok" : stage, rc == 0 ? "" : ": ",
        rc == 0 ? "" : err(-rc));
    rc = try_bind(ifindex, XDP_COPY_, XDP_UMEM_TX_SW_CSUM_, 0, &stage, NULL);
    out("umem_tx_sw_csum", rc == 0, "%s%s%s", rc == 0 ? "XDP_UMEM_TX_SW_CSUM accepted" : stage,
        rc == 0 ? "" : ": ", rc == 0 ? "" : err(-rc));
    rc = try_bind(ifindex, XDP_COPY_, XDP_UMEM_TX_METADATA_LEN_, 16, &stage, NULL);
    out("umem_tx_metadata_len_flag", rc == 0, "%s%s%s",
        rc == 0 ? "XDP_UMEM_TX_METADATA_LEN + tx_metadata_len=16 accepted" : stage,
        rc == 0 ? "" : ": ", rc == 0 ? "" : err(-rc));
    // tx_metadata_len without the flag: 6.8-6.10 use it, 6.11+ need the flag, and
    // kernels before 6.8 read only the first 28 bytes and ignore it silently.
    rc = try_bind(ifindex, XDP_COPY_, 0, 16, &stage, NULL);
    out("umem_reg_accepts_long_struct", rc == 0, "%s%s%s",
        rc == 0 ? "32-byte xdp_umem_reg with tx_metadata_len=16, no flag: accepted" : stage,
        rc == 0 ? "" : ": ", rc == 0 ? "" : err(-rc));

    // BPF_PROG_RUN with live frames (5.18): the frame goes through the stack.
    unsigned char pkt[64];
    memset(pkt, 0, sizeof pkt);
    memset(pkt, 0xff, 6);
    pkt[6] = 0x02;
    pkt[12] = 0x88;
    pkt[13] = 0xb5; // local experimental ethertype: nobody answers it
    struct xdp_md ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.data_end = sizeof pkt;
    ctx.ingress_ifindex = (uint32_t)ifindex;
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.test.prog_fd = (uint32_t)prog;
    a.test.data_in = (uint64_t)(uintptr_t)pkt;
    a.test.data_size_in = sizeof pkt;
    a.test.ctx_in = (uint64_t)(uintptr_t)&ctx;
    a.test.ctx_size_in = sizeof ctx;
    a.test.repeat = 1;
    a.test.flags = BPF_F_TEST_XDP_LIVE_FRAMES;
    long t = bpf(BPF_PROG_TEST_RUN, &a);
    out("bpf_prog_run_live_frames", t == 0, "%s", t == 0 ? "BPF_F_TEST_XDP_LIVE_FRAMES ok" : err(errno));

    // XDP metadata kfuncs (6.3 rx hash/timestamp, 6.8 vlan tag): names in vmlinux BTF.
    static const char *kf[] = {"bpf_xdp_metadata_rx_timestamp", "bpf_xdp_metadata_rx_hash",
                               "bpf_xdp_metadata_rx_vlan_tag"};
    FILE *f = fopen("/sys/kernel/btf/vmlinux", "rb");
    char *btf = NULL;
    size_t btflen = 0;
    if (f) {
        btf = malloc(64 << 20);
        btflen = btf ? fread(btf, 1, 64 << 20, f) : 0;
        fclose(f);
    }
    for (unsigned i = 0; i < 3; i++) {
        int found = btf && memmem(btf, btflen, kf[i], strlen(kf[i]) + 1) != NULL;
        out(kf[i], found, "%s", !btf ? "no /sys/kernel/btf/vmlinux"
                                     : found ? "in vmlinux BTF" : "not in vmlinux BTF");
    }
    free(btf);
    return 0;
}
