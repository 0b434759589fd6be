package egress

import (
	"fmt"
	"net/netip"
	"strings"
)

// Rule is one range of addresses tenants may not reach, and why.
type Rule struct {
	// Name says what the range is: loopback, link-local, private, …
	Name   string
	Prefix netip.Prefix
}

// DeniedRules are the ranges no tenant's object may make the hub dial unless an
// allowed network covers the address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d)
// and NAT64 ones (64:ff9b::a.b.c.d) are judged by the IPv4 address they carry.
var DeniedRules = []Rule{
	{"unspecified", netip.MustParsePrefix("0.0.0.0/8")},
	{"unspecified", netip.MustParsePrefix("::/128")},
	{"loopback", netip.MustParsePrefix("127.0.0.0/8")},
	{"loopback", netip.MustParsePrefix("::1/128")},
	{"link-local", netip.MustParsePrefix("169.254.0.0/16")},
	{"link-local", netip.MustParsePrefix("fe80::/10")},
	{"private", netip.MustParsePrefix("10.0.0.0/8")},
	{"private", netip.MustParsePrefix("172.16.0.0/12")},
	{"private", netip.MustParsePrefix("192.168.0.0/16")},
	{"private", netip.MustParsePrefix("fc00::/7")},
	{"shared address space", netip.MustParsePrefix("100.64.0.0/10")},
	{"multicast", netip.MustParsePrefix("224.0.0.0/4")},
	{"multicast", netip.MustParsePrefix("ff00::/8")},
	{"reserved", netip.MustParsePrefix("240.0.0.0/4")}, // and 255.255.255.255, broadcast
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its last 32 bits are an IPv4 address.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// Policy decides which addresses a tenant's object may make the hub dial. The zero
// value, and a nil *Policy, refuse the DeniedRules and allow every other address.
type Policy struct {
	allow []netip.Prefix
}

// NewPolicy returns the policy that also allows the given networks: an address in
// one of them is allowed whatever rule it would break (an internal Git server).
func NewPolicy(allow ...netip.Prefix) *Policy {
	p := &Policy{}
	for _, a := range allow {
		p.allow = append(p.allow, a.Masked())
	}
	return p
}

// Allowed returns the networks the policy allows besides public addresses.
func (p *Policy) Allowed() []netip.Prefix {
	if p == nil {
		return nil
	}
	return append([]netip.Prefix(nil), p.allow...)
}

// ParseAllow reads a comma-separated list of CIDRs (a lone address means just that
// address), as --tenant-egress-allow takes them. Empty entries are skipped.
func ParseAllow(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %v", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Check returns nil when the policy allows dialing ip, else the Refusal that names
// the rule it breaks (its Host is left for the dialer to fill in).
func (p *Policy) Check(ip netip.Addr) *Refusal {
	if !ip.IsValid() {
		return &Refusal{Addr: ip, Rule: "invalid address"}
	}
	ip = ip.WithZone("")
	judged := ip.Unmap()
	if judged.Is6() && nat64.Contains(judged) {
		b := judged.As16()
		judged = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	if p != nil {
		for _, a := range p.allow {
			if a.Contains(ip) || a.Contains(judged) {
				return nil
			}
		}
	}
	for _, r := range DeniedRules {
		if r.Prefix.Contains(judged) {
			return &Refusal{Addr: ip, Rule: r.Name, Range: r.Prefix}
		}
	}
	return nil
}

// LocalFilesRule is the rule a tenant's file:// URL breaks: it reaches the hub's own
// disk, which no allowed network covers.
const LocalFilesRule = "local files"

// Refusal is a dial the policy did not allow.
type Refusal struct {
	// Host is the name or address the object named (host:port), when known.
	Host string
	// Addr is the address it resolved to and the hub would have dialed.
	Addr netip.Addr
	// Rule names the range Addr is in ("loopback", …) and Range is that range.
	Rule  string
	Range netip.Prefix
}

func (r *Refusal) Error() string {
	if !r.Addr.IsValid() && r.Rule == LocalFilesRule {
		return fmt.Sprintf("egress to %s is not allowed for a tenant: a file:// URL reads the hub's own disk", r.Host)
	}
	where := r.Addr.String()
	if r.Host != "" {
		where = fmt.Sprintf("%s (%s)", r.Host, r.Addr)
	}
	rng := ""
	if r.Range.IsValid() {
		rng = " " + r.Range.String()
	}
	return fmt.Sprintf("egress to %s is not allowed for a tenant: %s is in the %s range%s; "+
		"a tenant's objects reach public addresses and the networks of the hub's --tenant-egress-allow only",
		where, r.Addr, r.Rule, rng)
}
