/*
 * address_policy.cpp: classifying IP addresses, parsing the allow-list of
 * networks, and the policy a source download applies to each address it
 * connects to (see address_policy.hpp).
 */
#include "address_policy.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>
#include <stdexcept>
#include <utility>

namespace vibescaling {

namespace {

/* A special-purpose network and its kind (bytes beyond the prefix are zero). */
struct KindRow
{
	std::uint8_t bytes[16];
	int			prefix;
	AddressKind kind;
};

/* Special-purpose IPv4 networks (IANA registry); the first match wins. */
const KindRow kIpv4Kinds[] = {
	{{0, 0, 0, 0}, 8, AddressKind::kUnspecified},			/* 0.0.0.0/8 */
	{{10, 0, 0, 0}, 8, AddressKind::kPrivate},				/* 10.0.0.0/8 */
	{{100, 64, 0, 0}, 10, AddressKind::kSharedAddressSpace},	/* 100.64.0.0/10 */
	{{127, 0, 0, 0}, 8, AddressKind::kLoopback},			/* 127.0.0.0/8 */
	{{169, 254, 0, 0}, 16, AddressKind::kLinkLocal},		/* 169.254.0.0/16 */
	{{172, 16, 0, 0}, 12, AddressKind::kPrivate},			/* 172.16.0.0/12 */
	{{192, 0, 0, 0}, 24, AddressKind::kReserved},			/* IETF protocol assignments */
	{{192, 0, 2, 0}, 24, AddressKind::kDocumentation},		/* TEST-NET-1 */
	{{192, 88, 99, 0}, 24, AddressKind::kReserved},			/* old 6to4 relay anycast */
	{{192, 168, 0, 0}, 16, AddressKind::kPrivate},			/* 192.168.0.0/16 */
	{{198, 18, 0, 0}, 15, AddressKind::kReserved},			/* benchmarking */
	{{198, 51, 100, 0}, 24, AddressKind::kDocumentation},	/* TEST-NET-2 */
	{{203, 0, 113, 0}, 24, AddressKind::kDocumentation},	/* TEST-NET-3 */
	{{224, 0, 0, 0}, 4, AddressKind::kMulticast},			/* 224.0.0.0/4 */
	{{255, 255, 255, 255}, 32, AddressKind::kBroadcast},	/* before 240/4, which holds it */
	{{240, 0, 0, 0}, 4, AddressKind::kReserved},			/* 240.0.0.0/4 */
};

/* Special-purpose IPv6 networks that embed no IPv4 address; the first match wins. */
const KindRow kIpv6Kinds[] = {
	{{0}, 128, AddressKind::kUnspecified},					/* ::/128 */
	{{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, AddressKind::kLoopback},	/* ::1 */
	{{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, AddressKind::kReserved},	/* 64:ff9b:1::/48 local NAT64 */
	{{0x01, 0x00}, 64, AddressKind::kReserved},				/* 100::/64 discard-only */
	{{0x20, 0x01, 0x0d, 0xb8}, 32, AddressKind::kDocumentation},	/* 2001:db8::/32 */
	{{0x20, 0x01, 0x00, 0x00}, 23, AddressKind::kReserved},	/* 2001::/23: Teredo, benchmarking, ORCHID */
	{{0x3f, 0xff}, 20, AddressKind::kDocumentation},		/* 3fff::/20 */
	{{0xfc}, 7, AddressKind::kUniqueLocal},					/* fc00::/7 */
	{{0xfe, 0x80}, 10, AddressKind::kLinkLocal},			/* fe80::/10 */
	{{0xfe, 0xc0}, 10, AddressKind::kPrivate},				/* fec0::/10, deprecated site-local */
	{{0xff}, 8, AddressKind::kMulticast},					/* ff00::/8 */
};

/* The kind of addr from a table of its family, or kPublic when no row matches. */
template <std::size_t N>
AddressKind
kind_from_table(const IpAddress &addr, const KindRow (&table)[N]) noexcept
{
	for (const KindRow &row : table)
	{
		IpNetwork	net;

		net.base.v6 = addr.v6;
		std::memcpy(net.base.bytes.data(), row.bytes, sizeof row.bytes);
		net.prefix = row.prefix;
		if (network_contains(net, addr))
			return row.kind;
	}
	return AddressKind::kPublic;
}

/* The IPv4 address in bytes [at, at + 4) of an IPv6 one. */
IpAddress
embedded_ipv4(const IpAddress &v6, std::size_t at) noexcept
{
	IpAddress	v4;

	std::memcpy(v4.bytes.data(), v6.bytes.data() + at, 4);
	return v4;
}

/* True when the first n bytes of addr equal prefix. */
bool
starts_with(const IpAddress &addr, const std::uint8_t *prefix, std::size_t n) noexcept
{
	return std::memcmp(addr.bytes.data(), prefix, n) == 0;
}

/* True for an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
bool
is_v4_mapped(const IpAddress &addr) noexcept
{
	static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return addr.v6 && starts_with(addr, kMapped, sizeof kMapped);
}

/* s without leading and trailing blanks. */
std::string
trim(const std::string &s)
{
	std::size_t b = s.find_first_not_of(" \t\r\n");

	if (b == std::string::npos)
		return std::string();
	return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

/* Reads a decimal prefix length of at most 3 digits; -1 when it is not one. */
int
parse_prefix(const std::string &text) noexcept
{
	if (text.empty() || text.size() > 3)
		return -1;
	int			n = 0;

	for (char c : text)
	{
		if (c < '0' || c > '9')
			return -1;
		n = n * 10 + (c - '0');
	}
	/* "08" would be ambiguous to a reader: one digit or no leading zero. */
	if (text.size() > 1 && text[0] == '0')
		return -1;
	return n;
}

}								/* namespace */

/* Parses a literal IPv4 or IPv6 address; see the header. */
bool
parse_ip_address(const std::string &text, IpAddress *out)
{
	IpAddress	addr;

	/* inet_pton takes a C string: an embedded NUL would cut it short. */
	if (text.empty() || text.find('\0') != std::string::npos)
		return false;
	if (text.find(':') == std::string::npos)
	{
		/* glibc's inet_pton(AF_INET) takes only a.b.c.d in decimal, no leading zeros. */
		if (inet_pton(AF_INET, text.c_str(), addr.bytes.data()) != 1)
			return false;
		addr.v6 = false;
	}
	else
	{
		if (inet_pton(AF_INET6, text.c_str(), addr.bytes.data()) != 1)
			return false;
		addr.v6 = true;
	}
	*out = addr;
	return true;
}

/* Parses ADDRESS[/PREFIX] with zero host bits; see the header. */
bool
parse_network(const std::string &text, IpNetwork *out, std::string *error)
{
	std::size_t slash = text.find('/');
	std::string address = text.substr(0, slash);
	IpNetwork	net;

	if (!parse_ip_address(address, &net.base))
	{
		*error = "\"" + text + "\" is not an IPv4 or IPv6 address or network";
		return false;
	}
	int			max_prefix = net.base.v6 ? 128 : 32;

	net.prefix = max_prefix;
	if (slash != std::string::npos)
	{
		net.prefix = parse_prefix(text.substr(slash + 1));
		if (net.prefix < 0 || net.prefix > max_prefix)
		{
			*error = "\"" + text + "\" has a bad prefix length (0 to " + std::to_string(max_prefix) + ")";
			return false;
		}
	}
	for (int bit = net.prefix; bit < max_prefix; bit++)
		if (net.base.bytes[bit / 8] & (0x80 >> (bit % 8)))
		{
			*error = "\"" + text + "\" has bits set after its prefix (host bits must be zero)";
			return false;
		}
	*out = net;
	return true;
}

/* Parses a comma-separated list of networks; see the header. */
bool
parse_network_list(const char *list, std::vector<IpNetwork> *out, std::string *error)
{
	std::vector<IpNetwork> nets;
	std::string text = list != nullptr ? list : "";

	if (trim(text).empty())
	{
		out->clear();
		return true;
	}
	std::size_t pos = 0;

	for (;;)
	{
		std::size_t comma = text.find(',', pos);
		std::string entry = trim(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
		IpNetwork	net;

		if (entry.empty())
		{
			*error = "empty entry in the list of networks";
			return false;
		}
		if (!parse_network(entry, &net, error))
			return false;
		nets.push_back(net);
		if (comma == std::string::npos)
			break;
		pos = comma + 1;
	}
	*out = std::move(nets);
	return true;
}

/* True when net contains addr; see the header. */
bool
network_contains(const IpNetwork &net, const IpAddress &addr) noexcept
{
	if (net.base.v6 != addr.v6)
		return false;
	int			full = net.prefix / 8;
	int			rest = net.prefix % 8;

	if (std::memcmp(net.base.bytes.data(), addr.bytes.data(), static_cast<std::size_t>(full)) != 0)
		return false;
	if (rest == 0)
		return true;
	std::uint8_t mask = static_cast<std::uint8_t>(0xFF00 >> rest);

	return (net.base.bytes[full] & mask) == (addr.bytes[full] & mask);
}

/* The kind of an address; see the header. */
AddressKind
classify_address(const IpAddress &addr) noexcept
{
	static const std::uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
	static const std::uint8_t k6to4[2] = {0x20, 0x02};

	if (!addr.v6)
		return kind_from_table(addr, kIpv4Kinds);

	/* Addresses that carry an IPv4 one reach it (or a gateway to it): judge that one. */
	if (is_v4_mapped(addr) || starts_with(addr, kNat64, sizeof kNat64))
		return classify_address(embedded_ipv4(addr, 12));
	if (starts_with(addr, k6to4, sizeof k6to4))
		return classify_address(embedded_ipv4(addr, 2));

	AddressKind kind = kind_from_table(addr, kIpv6Kinds);

	if (kind != AddressKind::kPublic)
		return kind;
	/* Only 2000::/3 is global unicast; the rest (IPv4-compatible ::/96 too) is not for us. */
	if ((addr.bytes[0] & 0xE0) != 0x20)
		return AddressKind::kReserved;
	return AddressKind::kPublic;
}

/* A lower-case name of the kind. */
const char *
address_kind_name(AddressKind kind) noexcept
{
	switch (kind)
	{
		case AddressKind::kPublic:
			return "public";
		case AddressKind::kUnspecified:
			return "unspecified";
		case AddressKind::kLoopback:
			return "loopback";
		case AddressKind::kPrivate:
			return "private";
		case AddressKind::kSharedAddressSpace:
			return "shared address space";
		case AddressKind::kLinkLocal:
			return "link-local";
		case AddressKind::kMulticast:
			return "multicast";
		case AddressKind::kBroadcast:
			return "broadcast";
		case AddressKind::kUniqueLocal:
			return "unique local";
		case AddressKind::kDocumentation:
			return "documentation";
		case AddressKind::kReserved:
			return "reserved";
	}
	return "reserved";
}

/* The address of an AF_INET / AF_INET6 sockaddr; see the header. */
bool
address_from_sockaddr(const struct sockaddr *sa, std::size_t len, IpAddress *out) noexcept
{
	if (sa == nullptr)
		return false;
	if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in))
	{
		sockaddr_in in;

		std::memcpy(&in, sa, sizeof in);
		*out = IpAddress();
		std::memcpy(out->bytes.data(), &in.sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6))
	{
		sockaddr_in6 in6;

		std::memcpy(&in6, sa, sizeof in6);
		*out = IpAddress();
		out->v6 = true;
		std::memcpy(out->bytes.data(), &in6.sin6_addr, 16);
		return true;
	}
	return false;
}

/* The address as text. */
std::string
format_address(const IpAddress &addr)
{
	char		buf[INET6_ADDRSTRLEN];

	if (inet_ntop(addr.v6 ? AF_INET6 : AF_INET, addr.bytes.data(), buf, sizeof buf) == nullptr)
		return "?";
	return buf;
}

/* Public addresses and the listed networks; throws std::invalid_argument when malformed. */
AddressPolicy
AddressPolicy::with_allowed(const char *list)
{
	AddressPolicy policy;
	std::string error;

	if (!parse_network_list(list, &policy.allowed_, &error))
		throw std::invalid_argument(error);
	return policy;
}

/* True for a public address or one the allow-list names. */
bool
AddressPolicy::permits(const IpAddress &addr) const noexcept
{
	if (classify_address(addr) == AddressKind::kPublic)
		return true;

	bool		mapped = is_v4_mapped(addr);
	IpAddress	v4 = mapped ? embedded_ipv4(addr, 12) : IpAddress();

	for (const IpNetwork &net : allowed_)
		if (network_contains(net, addr) || (mapped && network_contains(net, v4)))
			return true;
	return false;
}

}								/* namespace vibescaling */
