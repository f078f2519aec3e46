/* The container's side of its network, in its own net namespace: lo up; in
 * bridge mode, eth0 (the veth the runtime moved in) gets its address and
 * netmask and comes up, and the default route goes through the bridge; each
 * overlay interface (a "link" entry: "ethK ADDRESS PREFIXLEN") gets its
 * address and prefix (the subnet is on-link: the node answers ARP for it)
 * and comes up. */
#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void link_up(int sock, const char *step, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		fail_on(step, "ifname", name, errno);
	if (!(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
			fail_on(step, "ifname", name, errno);
	}
}

static void set_inet(struct sockaddr *sa, const char *ip)
{
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	memset(in, 0, sizeof(*in));
	in->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &in->sin_addr);
}

/* Set ifname's address or netmask (request) to ip; a failure reports step
 * with {"ifname": ..., key: value}. */
static void if_ioctl(int sock, unsigned long request, const char *step, const char *ifname,
		     const char *ip, const char *key, const char *value)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	set_inet(&ifr.ifr_addr, ip);
	if (ioctl(sock, request, &ifr) < 0) {
		int err = errno;
		struct buf a = {0};
		buf_str(&a, "{\"ifname\": ");
		buf_json(&a, ifname);
		buf_printf(&a, ", \"%s\": ", key);
		buf_json(&a, value);
		buf_str(&a, "}");
		fail(step, a.p, strerror(err), err);
	}
}

/* Write value to /proc/sys/net/<key> (this namespace's: the opener's); a
 * key that does not exist is 0 with missing_ok (-1 without, errno set). */
static int write_sysctl(const char *key, const char *value, int missing_ok)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/net/%s", key);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return missing_ok && errno == ENOENT ? 0 : -1;
	ssize_t n = write(fd, value, strlen(value));
	int err = errno;
	close(fd);
	errno = err;
	return n == (ssize_t)strlen(value) ? 0 : -1;
}

/* The value of /proc/sys/net/<key>, -1 if it cannot be read. */
static int read_sysctl(const char *key)
{
	char path[128], text[16] = {0};
	snprintf(path, sizeof(path), "/proc/sys/net/%s", key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	return n > 0 ? atoi(text) : -1;
}

/* Turn IPv6 off on the container's interface before it is up. A kernel
 * without IPv6 has nothing to turn off. */
static void disable_ipv6(const char *name)
{
	char key[96];
	snprintf(key, sizeof(key), "ipv6/conf/%s/disable_ipv6", name);
	if (write_sysctl(key, "1", 1) < 0)
		fail_on("disable_ipv6", "ifname", name, errno);
}

/* An overlay interface takes packets from sources its routes do not lead
 * back to: the node's ARP (from one of the node's addresses, which the
 * container reaches via eth0) and routing-mesh connections from clients
 * outside the subnet (whose replies leave via eth0). Strict reverse-path
 * filtering, which a new namespace copies from the host's, would drop them:
 * the overlay interfaces get loose filtering (configure_link). The kernel
 * applies the larger of "all" and an interface's value, so a strict "all"
 * goes to 0 first, and eth0 keeps at least strict filtering as its own. */
static void relax_rp_filter_all(void)
{
	static const char *const eth0 = "ipv4/conf/eth0/rp_filter", *const all = "ipv4/conf/all/rp_filter";
	if (read_sysctl(all) != 1)
		return;
	if (!strcmp(P.net, "bridge") && read_sysctl(eth0) == 0 && write_sysctl(eth0, "1", 0) < 0)
		fail_on("configure_network", "sysctl", eth0, errno);
	if (write_sysctl(all, "0", 0) < 0)
		fail_on("configure_network", "sysctl", all, errno);
}

/* One overlay interface, from its "link" entry "ethK ADDRESS PREFIXLEN"
 * (split in place). Failures report step configure_network naming the
 * interface. */
static void configure_link(int sock, char *entry)
{
	char *addr = strchr(entry, ' ');
	char *prefix = addr ? strchr(addr + 1, ' ') : NULL;
	if (!prefix)
		fail_on("configure_network", "link", entry, EINVAL);
	*addr++ = '\0';
	*prefix++ = '\0';
	int len = atoi(prefix);
	if (len < 0 || len > 32)
		fail_on("configure_network", "prefixlen", prefix, EINVAL);
	char cidr[64], mask[INET_ADDRSTRLEN], key[96];
	snprintf(cidr, sizeof(cidr), "%s/%d", addr, len);
	struct in_addr m = {.s_addr = htonl(len ? ~0U << (32 - len) : 0)};
	inet_ntop(AF_INET, &m, mask, sizeof(mask));
	disable_ipv6(entry);
	snprintf(key, sizeof(key), "ipv4/conf/%s/rp_filter", entry);
	if (write_sysctl(key, "2", 0) < 0)
		fail_on("configure_network", "sysctl", key, errno);
	if_ioctl(sock, SIOCSIFADDR, "configure_network", entry, addr, "address", cidr);
	if_ioctl(sock, SIOCSIFNETMASK, "configure_network", entry, mask, "address", cidr);
	link_up(sock, "configure_network", entry);
}

/* lo up; in bridge mode also eth0's address, eth0 up and the default route;
 * then each overlay interface. */
void configure_network(void)
{
	if (!P.net || !strcmp(P.net, "host"))
		return;
	int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		fail_call("configure_network", "socket(AF_INET, SOCK_DGRAM)");
	link_up(sock, "loopback_up", "lo");
	if (!strcmp(P.net, "bridge")) {
		disable_ipv6(P.ifname);
		if_ioctl(sock, SIOCSIFADDR, "eth0_address", P.ifname, P.address, "address", P.address);
		if_ioctl(sock, SIOCSIFNETMASK, "eth0_netmask", P.ifname, P.netmask, "netmask", P.netmask);
		link_up(sock, "eth0_up", P.ifname);
		struct rtentry rt;
		memset(&rt, 0, sizeof(rt));
		set_inet(&rt.rt_dst, "0.0.0.0");
		set_inet(&rt.rt_gateway, P.gateway);
		set_inet(&rt.rt_genmask, "0.0.0.0");
		rt.rt_flags = RTF_UP | RTF_GATEWAY;
		if (ioctl(sock, SIOCADDRT, &rt) < 0)
			fail_on("default_route", "gateway", P.gateway, errno);
	}
	if (P.links.n)
		relax_rp_filter_all();
	for (size_t i = 0; i < P.links.n; i++)
		configure_link(sock, P.links.v[i]);
	close(sock);
}
