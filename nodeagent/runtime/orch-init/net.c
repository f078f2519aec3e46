/* The container's side of its network, in its own net namespace: lo up; in
 * bridge mode, eth0 (the veth the runtime moved in) gets its address and
 * netmask and comes up, and the default route goes through the bridge. */
#include "init.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
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

static void if_ioctl(int sock, unsigned long request, const char *step, const char *ip,
		     const char *key)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, P.ifname, IFNAMSIZ - 1);
	set_inet(&ifr.ifr_addr, ip);
	if (ioctl(sock, request, &ifr) < 0) {
		int err = errno;
		struct buf a = {0};
		buf_str(&a, "{\"ifname\": ");
		buf_json(&a, P.ifname);
		buf_printf(&a, ", \"%s\": ", key);
		buf_json(&a, ip);
		buf_str(&a, "}");
		fail(step, a.p, strerror(err), err);
	}
}

/* Turn IPv6 off on the container's interface before it is up. A kernel
 * without IPv6 has nothing to turn off. */
static void disable_ipv6(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return;
		fail_on("disable_ipv6", "ifname", name, errno);
	}
	if (write(fd, "1", 1) != 1)
		fail_on("disable_ipv6", "ifname", name, errno);
	close(fd);
}

/* lo up; in bridge mode also eth0's address, eth0 up and the default route. */
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
		if_ioctl(sock, SIOCSIFADDR, "eth0_address", P.address, "address");
		if_ioctl(sock, SIOCSIFNETMASK, "eth0_netmask", P.netmask, "netmask");
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
	close(sock);
}
