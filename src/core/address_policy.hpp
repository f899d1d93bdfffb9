/*
 * address_policy.hpp: which IP addresses a video source download may
 * connect to. A post's video_url is chosen by a tenant, so the extension's
 * own download of it must not reach the database host's loopback services,
 * the private network or cloud metadata endpoints (SSRF). Every address
 * that is not ordinary public unicast is refused, unless an allow-list of
 * networks (vibescaling.source_allowed_networks) names it.
 *
 * Pure: no libcurl, no Postgres; the transport asks permits() for each
 * address it is about to connect to, after DNS resolution.
 */
#ifndef VS_ADDRESS_POLICY_HPP
#define VS_ADDRESS_POLICY_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

struct sockaddr;

namespace vibescaling {

/* An IPv4 (bytes[0..3]) or IPv6 (bytes[0..15]) address. */
struct IpAddress
{
	bool		v6 = false;
	std::array<std::uint8_t, 16> bytes{};
};

/* A network: the address with host bits zero, and its prefix length. */
struct IpNetwork
{
	IpAddress	base;
	int			prefix = 0;
};

/* What kind of address it is; only kPublic may be connected to without the allow-list. */
enum class AddressKind
{
	kPublic,					/* ordinary unicast on the internet */
	kUnspecified,				/* 0.0.0.0/8, :: */
	kLoopback,					/* 127.0.0.0/8, ::1 */
	kPrivate,					/* 10/8, 172.16/12, 192.168/16, fec0::/10 */
	kSharedAddressSpace,		/* 100.64.0.0/10 (carrier-grade NAT) */
	kLinkLocal,					/* 169.254/16 (cloud metadata), fe80::/10 */
	kMulticast,					/* 224/4, ff00::/8 */
	kBroadcast,					/* 255.255.255.255 */
	kUniqueLocal,				/* fc00::/7 */
	kDocumentation,				/* 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20 */
	kReserved,					/* everything else that is special-purpose or unassigned */
};

/*
 * Parses a literal address: dotted-quad IPv4 (exactly four decimal parts,
 * no leading zeros) or IPv6 (RFC 4291 text, no zone id). False otherwise.
 */
bool		parse_ip_address(const std::string &text, IpAddress *out);

/*
 * Parses "ADDRESS" or "ADDRESS/PREFIX" (0..32 for IPv4, 0..128 for IPv6;
 * a bare address is a /32 or /128). The host bits must be zero
 * ("10.0.0.1/8" is refused: most likely a typo). False with *error set
 * otherwise. Throws only std::bad_alloc.
 */
bool		parse_network(const std::string &text, IpNetwork *out, std::string *error);

/*
 * Parses a comma-separated list of networks; blanks around entries are
 * ignored, NULL or an all-blank string is the empty list, an empty entry
 * ("a,,b", a trailing comma) is an error. False with *error naming the bad
 * entry otherwise. Throws only std::bad_alloc.
 */
bool		parse_network_list(const char *list, std::vector<IpNetwork> *out, std::string *error);

/* True when net contains addr (same family; an IPv4-mapped IPv6 address is not IPv4 here). */
bool		network_contains(const IpNetwork &net, const IpAddress &addr) noexcept;

/*
 * The kind of addr. IPv6 addresses that embed an IPv4 one are classified
 * by it: IPv4-mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96 and 6to4
 * 2002:AABB:CCDD::/48 (an embedded private address is private; an embedded
 * public one public). IPv6 outside 2000::/3, and Teredo / the IETF
 * protocol range 2001::/23, are reserved.
 */
AddressKind classify_address(const IpAddress &addr) noexcept;

/* A lower-case name of the kind ("public", "loopback", ...), static. */
const char *address_kind_name(AddressKind kind) noexcept;

/* The address of an AF_INET / AF_INET6 sockaddr of len bytes; false for anything else. */
bool		address_from_sockaddr(const struct sockaddr *sa, std::size_t len, IpAddress *out) noexcept;

/* The address as text (inet_ntop). Throws only std::bad_alloc. */
std::string format_address(const IpAddress &addr);

/* Which addresses a source download may connect to. */
class AddressPolicy
{
public:
	/* Public addresses only. */
	AddressPolicy() = default;

	/* Public addresses and the listed networks (see parse_network_list); throws std::invalid_argument when malformed. */
	static AddressPolicy with_allowed(const char *list);

	/*
	 * True for a public address, or one inside an allowed network (an
	 * IPv4-mapped IPv6 address also matches the IPv4 networks).
	 */
	bool		permits(const IpAddress &addr) const noexcept;

	const std::vector<IpNetwork> &allowed() const noexcept { return allowed_; }

private:
	std::vector<IpNetwork> allowed_;
};

}								/* namespace vibescaling */

#endif
