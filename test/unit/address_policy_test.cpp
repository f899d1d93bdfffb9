/*
 * address_policy_test.cpp: classification of every special-purpose IPv4
 * and IPv6 range, the allow-list parser (vs_check_network_list), the
 * policy's decisions, and URL masking for messages (vs_mask_url).
 */
#include "address_policy.hpp"
#include "test_support.hpp"
#include "transfer_util.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

using namespace vibescaling;

namespace {

/* The kind of a literal address (the test fails when it does not parse). */
std::string
kind_of(const std::string &text)
{
	IpAddress	addr;

	if (!parse_ip_address(text, &addr))
		return "<unparsable>";
	return address_kind_name(classify_address(addr));
}

/* The policy's answer for a literal address under an allow-list. */
bool
permitted(const char *allow, const std::string &text)
{
	IpAddress	addr;

	EXPECT_TRUE(parse_ip_address(text, &addr)) << text;
	return AddressPolicy::with_allowed(allow).permits(addr);
}

/* vs_check_network_list's verdict, and its message in *why. */
bool
list_ok(const char *list, std::string *why = nullptr)
{
	char		error[256];
	int			ok = vs_check_network_list(list, error, sizeof error);

	if (why != nullptr)
		*why = error;
	return ok == 1;
}

}								/* namespace */

// Every special-purpose IPv4 range, at its first and last address, and its public neighbours.
TEST(AddressPolicy, ClassifiesIpv4)
{
	struct Row
	{
		const char *address;
		const char *kind;
	};
	const Row rows[] = {
		{"0.0.0.0", "unspecified"}, {"0.255.255.255", "unspecified"}, {"1.0.0.0", "public"},
		{"9.255.255.255", "public"}, {"10.0.0.0", "private"}, {"10.255.255.255", "private"},
		{"11.0.0.0", "public"},
		{"100.63.255.255", "public"}, {"100.64.0.0", "shared address space"},
		{"100.127.255.255", "shared address space"}, {"100.128.0.0", "public"},
		{"126.255.255.255", "public"}, {"127.0.0.1", "loopback"}, {"127.0.0.2", "loopback"},
		{"127.255.255.255", "loopback"}, {"128.0.0.0", "public"},
		{"169.253.255.255", "public"}, {"169.254.0.0", "link-local"},
		{"169.254.169.254", "link-local"}, {"169.254.255.255", "link-local"}, {"169.255.0.0", "public"},
		{"172.15.255.255", "public"}, {"172.16.0.0", "private"}, {"172.31.255.255", "private"},
		{"172.32.0.0", "public"},
		{"192.0.0.0", "reserved"}, {"192.0.0.255", "reserved"}, {"192.0.1.0", "public"},
		{"192.0.2.0", "documentation"}, {"192.0.2.255", "documentation"}, {"192.0.3.0", "public"},
		{"192.88.99.1", "reserved"}, {"192.167.255.255", "public"}, {"192.168.0.0", "private"},
		{"192.168.255.255", "private"}, {"192.169.0.0", "public"},
		{"198.17.255.255", "public"}, {"198.18.0.0", "reserved"}, {"198.19.255.255", "reserved"},
		{"198.20.0.0", "public"}, {"198.51.100.7", "documentation"}, {"203.0.113.9", "documentation"},
		{"223.255.255.255", "public"}, {"224.0.0.0", "multicast"}, {"239.255.255.255", "multicast"},
		{"240.0.0.0", "reserved"}, {"255.255.255.254", "reserved"}, {"255.255.255.255", "broadcast"},
		{"8.8.8.8", "public"}, {"93.184.216.34", "public"},
	};

	for (const Row &row : rows)
		EXPECT_EQ(kind_of(row.address), row.kind) << row.address;
}

// IPv6: special ranges, global unicast, and the forms that embed an IPv4 address.
TEST(AddressPolicy, ClassifiesIpv6)
{
	struct Row
	{
		const char *address;
		const char *kind;
	};
	const Row rows[] = {
		{"::", "unspecified"}, {"::1", "loopback"}, {"::2", "reserved"},
		/* IPv4-mapped: judged by the IPv4 address inside. */
		{"::ffff:127.0.0.1", "loopback"}, {"::ffff:10.1.2.3", "private"},
		{"::ffff:169.254.169.254", "link-local"}, {"::ffff:0.0.0.0", "unspecified"},
		{"::ffff:8.8.8.8", "public"},
		/* IPv4-compatible (deprecated): reserved, whatever it embeds. */
		{"::127.0.0.1", "reserved"}, {"::8.8.8.8", "reserved"},
		/* NAT64 well-known prefix and local-use NAT64. */
		{"64:ff9b::127.0.0.1", "loopback"}, {"64:ff9b::192.168.1.1", "private"},
		{"64:ff9b::8.8.8.8", "public"}, {"64:ff9b:1::1", "reserved"},
		/* 6to4 embeds its IPv4 address in bits 16..47. */
		{"2002:7f00:1::1", "loopback"}, {"2002:0a00:0001::", "private"}, {"2002:0808:0808::1", "public"},
		{"100::1", "reserved"}, {"2001::1", "reserved"}, {"2001:2::1", "reserved"},
		{"2001:1ff:ffff::1", "reserved"}, {"2001:200::1", "public"},
		{"2001:db8::1", "documentation"}, {"3fff::1", "documentation"}, {"3fff:fff::1", "documentation"},
		{"3fff:1000::1", "public"},
		{"fc00::1", "unique local"}, {"fd12:3456::1", "unique local"}, {"fdff:ffff::1", "unique local"},
		{"fe80::1", "link-local"}, {"febf:ffff::1", "link-local"}, {"fec0::1", "private"},
		{"ff02::1", "multicast"}, {"ff0e::1", "multicast"},
		{"2606:4700::1111", "public"}, {"2a00:1450:4001::1", "public"}, {"3ffe::1", "public"},
		{"4000::1", "reserved"}, {"1::1", "reserved"}, {"e000::1", "reserved"},
	};

	for (const Row &row : rows)
		EXPECT_EQ(kind_of(row.address), row.kind) << row.address;
}

// Literal addresses: strict forms only.
TEST(AddressPolicy, ParsesAddresses)
{
	IpAddress	a;

	for (const char *good : {"1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1", "fe80::1",
							 "::ffff:1.2.3.4", "2001:DB8::A"})
		EXPECT_TRUE(parse_ip_address(good, &a)) << good;
	for (const char *bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.04", "0x7f.0.0.1",
							"127.1", "2130706433", " 1.2.3.4", "1.2.3.4 ", "fe80::1%eth0", "[::1]",
							"::ffff:1.2.3", "1:2:3:4:5:6:7:8:9", "localhost", "1.2.3.4/32"})
		EXPECT_FALSE(parse_ip_address(bad, &a)) << bad;
	EXPECT_FALSE(parse_ip_address(std::string("1.2.3.4\0", 8), &a));
	ASSERT_TRUE(parse_ip_address("10.1.2.3", &a));
	EXPECT_EQ(format_address(a), "10.1.2.3");
	ASSERT_TRUE(parse_ip_address("2001:DB8:0:0::A", &a));
	EXPECT_EQ(format_address(a), "2001:db8::a");
}

// Networks: prefix bounds, host bits, containment at the edges.
TEST(AddressPolicy, Networks)
{
	IpNetwork	net;
	std::string error;
	IpAddress	a;

	ASSERT_TRUE(parse_network("10.0.0.0/8", &net, &error)) << error;
	EXPECT_EQ(net.prefix, 8);
	ASSERT_TRUE(parse_ip_address("10.255.255.255", &a));
	EXPECT_TRUE(network_contains(net, a));
	ASSERT_TRUE(parse_ip_address("11.0.0.0", &a));
	EXPECT_FALSE(network_contains(net, a));
	ASSERT_TRUE(parse_ip_address("::ffff:10.0.0.1", &a));
	EXPECT_FALSE(network_contains(net, a)) << "families never mix in network_contains";

	ASSERT_TRUE(parse_network("127.0.0.1", &net, &error));
	EXPECT_EQ(net.prefix, 32);
	ASSERT_TRUE(parse_network("fd00::/8", &net, &error));
	ASSERT_TRUE(parse_ip_address("fdff::1", &a));
	EXPECT_TRUE(network_contains(net, a));
	ASSERT_TRUE(parse_network("0.0.0.0/0", &net, &error));
	ASSERT_TRUE(parse_ip_address("8.8.8.8", &a));
	EXPECT_TRUE(network_contains(net, a));
	ASSERT_TRUE(parse_network("172.16.0.0/12", &net, &error));
	ASSERT_TRUE(parse_ip_address("172.31.0.1", &a));
	EXPECT_TRUE(network_contains(net, a));
	ASSERT_TRUE(parse_ip_address("172.32.0.1", &a));
	EXPECT_FALSE(network_contains(net, a));
	ASSERT_TRUE(parse_network("::1/128", &net, &error));

	for (const char *bad : {"10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/08",
							"10.0.0.0/8/8", "::1/129", "fe80::1/10", "10.0.0.0/ 8", "/8", "10/8"})
		EXPECT_FALSE(parse_network(bad, &net, &error)) << bad;
}

// vs_check_network_list: what the GUC check hook uses.
TEST(AddressPolicy, CheckNetworkList)
{
	std::string why;

	EXPECT_TRUE(list_ok(nullptr));
	EXPECT_TRUE(list_ok(""));
	EXPECT_TRUE(list_ok("  "));
	EXPECT_TRUE(list_ok("127.0.0.1/32"));
	EXPECT_TRUE(list_ok(" 127.0.0.1/32 , 10.0.0.0/8,fd00::/8 ,::1 "));
	EXPECT_TRUE(list_ok("127.0.0.1/32", &why));
	EXPECT_EQ(why, "");

	EXPECT_FALSE(list_ok("127.0.0.1/32,", &why));
	EXPECT_NE(why.find("empty entry"), std::string::npos) << why;
	EXPECT_FALSE(list_ok(",127.0.0.1"));
	EXPECT_FALSE(list_ok("127.0.0.1,,10.0.0.0/8"));
	EXPECT_FALSE(list_ok("localhost", &why));
	EXPECT_NE(why.find("\"localhost\""), std::string::npos) << why;
	EXPECT_FALSE(list_ok("127.0.0.1/32 10.0.0.0/8"));
	EXPECT_FALSE(list_ok("127.0.0.1;10.0.0.0/8"));
	EXPECT_FALSE(list_ok("10.0.0.1/8", &why));
	EXPECT_NE(why.find("host bits"), std::string::npos) << why;
	EXPECT_FALSE(list_ok("*"));

	/* A short buffer gets a cut, terminated message; a NULL one is fine. */
	char		small[8];

	EXPECT_EQ(vs_check_network_list("bogus", small, sizeof small), 0);
	EXPECT_EQ(std::string(small).size(), 7u);
	EXPECT_EQ(vs_check_network_list("bogus", nullptr, 0), 0);
	EXPECT_EQ(vs_check_network_list("1.2.3.0/24", nullptr, 0), 1);
}

// The policy: public always, special only when listed; a mapped address matches IPv4 networks.
TEST(AddressPolicy, Permits)
{
	EXPECT_TRUE(permitted("", "8.8.8.8"));
	EXPECT_TRUE(permitted("", "2606:4700::1111"));
	for (const char *special : {"127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1",
								"169.254.169.254", "0.0.0.0", "224.0.0.1", "255.255.255.255", "::1",
								"::", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254",
								"64:ff9b::7f00:1", "2002:7f00:1::1", "192.0.2.1", "2001:db8::1"})
		EXPECT_FALSE(permitted("", special)) << special;

	EXPECT_TRUE(permitted("127.0.0.1/32", "127.0.0.1"));
	EXPECT_FALSE(permitted("127.0.0.1/32", "127.0.0.2"));
	EXPECT_TRUE(permitted("127.0.0.1/32", "::ffff:127.0.0.1"));
	EXPECT_FALSE(permitted("127.0.0.1/32", "::1"));
	EXPECT_TRUE(permitted("127.0.0.0/8, ::1", "::1"));
	EXPECT_TRUE(permitted("10.0.0.0/8", "10.20.30.40"));
	EXPECT_FALSE(permitted("10.0.0.0/8", "192.168.0.1"));
	EXPECT_TRUE(permitted("fd00::/8", "fd00::5"));
	EXPECT_FALSE(permitted("fd00::/8", "fc00::5"));
	EXPECT_THROW(AddressPolicy::with_allowed("nonsense"), std::invalid_argument);
}

// Addresses from sockaddr structures, as libcurl hands them to the open-socket callback.
TEST(AddressPolicy, FromSockaddr)
{
	sockaddr_in in{};
	sockaddr_in6 in6{};
	IpAddress	a;

	in.sin_family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
	ASSERT_TRUE(address_from_sockaddr(reinterpret_cast<sockaddr *>(&in), sizeof in, &a));
	EXPECT_FALSE(a.v6);
	EXPECT_EQ(format_address(a), "127.0.0.1");
	EXPECT_FALSE(address_from_sockaddr(reinterpret_cast<sockaddr *>(&in), sizeof in - 1, &a));

	in6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &in6.sin6_addr);
	ASSERT_TRUE(address_from_sockaddr(reinterpret_cast<sockaddr *>(&in6), sizeof in6, &a));
	EXPECT_TRUE(a.v6);
	EXPECT_EQ(std::string(address_kind_name(classify_address(a))), "private");

	sockaddr	unix_like{};

	unix_like.sa_family = AF_UNIX;
	EXPECT_FALSE(address_from_sockaddr(&unix_like, sizeof unix_like, &a));
	EXPECT_FALSE(address_from_sockaddr(nullptr, 0, &a));
}

// vs_mask_url: no userinfo, no query string, no fragment.
TEST(AddressPolicy, MaskUrl)
{
	struct Row
	{
		const char *url;
		const char *masked;
	};
	const Row rows[] = {
		{"https://bucket.s3.example/v.mp4?X-Amz-Signature=abc&X-Amz-Credential=k",
			"https://bucket.s3.example/v.mp4?\xE2\x80\xA6"},
		{"https://user:pa55word@host.example:8443/a/b.mp4?sig=1#frag", "https://host.example:8443/a/b.mp4?\xE2\x80\xA6"},
		{"http://token@host.example/v.mp4", "http://host.example/v.mp4"},
		{"http://host.example?sig=1", "http://host.example?\xE2\x80\xA6"},
		{"http://host.example#a?b", "http://host.example"},
		{"http://host.example/p#frag", "http://host.example/p"},
		{"http://h.example/a@b/v.mp4", "http://h.example/a@b/v.mp4"},
		{"http://u:p@h.example", "http://h.example"},
		{"", ""},
	};

	for (const Row &row : rows)
		EXPECT_EQ(take_text(vs_mask_url(row.url)), row.masked) << row.url;
	EXPECT_EQ(take_text(vs_mask_url(nullptr)), "");
	std::string long_url = "https://h.example/" + std::string(1000, 'a') + "?s=secret";
	std::string masked = take_text(vs_mask_url(long_url.c_str()));

	EXPECT_LT(masked.size(), 320u);
	EXPECT_EQ(masked.find("secret"), std::string::npos);
	EXPECT_EQ(take_text(vs_mask_url("http://h.example/\xff.mp4")), "http://h.example/\xEF\xBF\xBD.mp4");
}
