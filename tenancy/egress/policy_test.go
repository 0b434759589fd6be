package egress

import (
	"net/netip"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	allowLoopback := NewPolicy(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	allowGit := NewPolicy(netip.MustParsePrefix("10.20.0.0/16"))
	cases := []struct {
		addr   string
		policy *Policy
		rule   string // "" when allowed
	}{
		{"127.0.0.1", nil, "loopback"},
		{"127.255.1.2", nil, "loopback"},
		{"::1", nil, "loopback"},
		{"169.254.169.254", nil, "link-local"},
		{"fe80::1", nil, "link-local"},
		{"fe80::1%eth0", nil, "link-local"},
		{"10.0.0.1", nil, "private"},
		{"172.16.0.1", nil, "private"},
		{"172.31.255.255", nil, "private"},
		{"192.168.1.1", nil, "private"},
		{"fd00::1", nil, "private"},
		{"fc00::1", nil, "private"},
		{"100.64.0.1", nil, "shared address space"},
		{"100.127.255.254", nil, "shared address space"},
		{"0.0.0.0", nil, "unspecified"},
		{"::", nil, "unspecified"},
		{"224.0.0.1", nil, "multicast"},
		{"ff02::1", nil, "multicast"},
		{"255.255.255.255", nil, "reserved"},
		// IPv4-mapped IPv6 and NAT64 forms are judged by their IPv4 address.
		{"::ffff:127.0.0.1", nil, "loopback"},
		{"::ffff:169.254.169.254", nil, "link-local"},
		{"::ffff:10.1.2.3", nil, "private"},
		{"::ffff:192.168.0.1", nil, "private"},
		{"64:ff9b::a9fe:a9fe", nil, "link-local"},
		{"::ffff:8.8.8.8", nil, ""},
		// Public addresses, and those just outside the ranges.
		{"8.8.8.8", nil, ""},
		{"1.1.1.1", nil, ""},
		{"172.32.0.1", nil, ""},
		{"100.128.0.1", nil, ""},
		{"169.255.0.1", nil, ""},
		{"2606:4700:4700::1111", nil, ""},
		// The zero Policy is the default one.
		{"127.0.0.1", &Policy{}, "loopback"},
		// Allowed networks win over the rules, in either form of the address.
		{"127.0.0.1", allowLoopback, ""},
		{"::1", allowLoopback, ""},
		{"::ffff:127.0.0.1", allowLoopback, ""},
		{"10.0.0.1", allowLoopback, "private"},
		{"10.20.3.4", allowGit, ""},
		{"::ffff:10.20.3.4", allowGit, ""},
		{"10.21.0.1", allowGit, "private"},
		{"169.254.169.254", allowGit, "link-local"},
	}
	for _, c := range cases {
		ref := c.policy.Check(netip.MustParseAddr(c.addr))
		switch {
		case c.rule == "" && ref != nil:
			t.Errorf("%s: refused (%v), want allowed", c.addr, ref)
		case c.rule != "" && ref == nil:
			t.Errorf("%s: allowed, want refused as %s", c.addr, c.rule)
		case c.rule != "" && ref.Rule != c.rule:
			t.Errorf("%s: refused as %q, want %q", c.addr, ref.Rule, c.rule)
		}
	}
}

func TestParseAllow(t *testing.T) {
	got, err := ParseAllow(" 10.1.2.3/8, ,127.0.0.1,::1/128,fd00::/8 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("entry %d: %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0/8"} {
		if _, err := ParseAllow(bad); err == nil {
			t.Errorf("ParseAllow(%q) accepted it", bad)
		}
	}
	if got, err := ParseAllow(""); err != nil || len(got) != 0 {
		t.Errorf("ParseAllow(\"\") = %v, %v; want nothing", got, err)
	}
}

func TestRefusalMessage(t *testing.T) {
	ref := (*Policy)(nil).Check(netip.MustParseAddr("169.254.169.254"))
	ref.Host = "metadata.example:80"
	want := "egress to metadata.example:80 (169.254.169.254) is not allowed for a tenant: 169.254.169.254 is in the link-local range 169.254.0.0/16; " +
		"a tenant's objects reach public addresses and the networks of the hub's --tenant-egress-allow only"
	if ref.Error() != want {
		t.Errorf("message:\n got %s\nwant %s", ref.Error(), want)
	}
}
