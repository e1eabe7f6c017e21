package middleware

import (
	"net/netip"
	"testing"
)

func TestPeer(t *testing.T) {
	t.Parallel()
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		proxies []netip.Prefix
		want    string // "" for the zero Addr
	}{
		{"remote only", "192.0.2.1:5000", nil, nil, "192.0.2.1"},
		{"ipv6 remote", "[2001:db8::1]:443", nil, nil, "2001:db8::1"},
		{"ipv6 zone dropped", "[fe80::1%eth0]:443", nil, nil, "fe80::1"},
		{"ipv4-mapped unmapped", "[::ffff:127.0.0.1]:80", nil, nil, "127.0.0.1"},
		{"bare address", "192.0.2.3", nil, nil, "192.0.2.3"},
		{"unix socket", "@", nil, nil, ""},
		{"empty", "", nil, nil, ""},
		{"xff ignored without trusted proxies", "192.0.2.1:1", []string{"127.0.0.1"}, nil, "192.0.2.1"},
		{"xff ignored from an untrusted peer", "192.0.2.1:1", []string{"127.0.0.1"}, proxies, "192.0.2.1"},
		{"one trusted hop", "10.0.0.5:1", []string{"198.51.100.7"}, proxies, "198.51.100.7"},
		{"client cannot spoof left of the proxies", "10.0.0.5:1", []string{"127.0.0.1, 198.51.100.7, 10.2.3.4"}, proxies, "198.51.100.7"},
		{"several header lines", "10.0.0.5:1", []string{"127.0.0.1", "198.51.100.7", "10.2.3.4"}, proxies, "198.51.100.7"},
		{"hop with a port", "10.0.0.5:1", []string{"198.51.100.7:5555"}, proxies, "198.51.100.7"},
		{"ipv6 hops", "[fd00::1]:1", []string{"2001:db8::9, fd00::2"}, proxies, "2001:db8::9"},
		{"garbage fails closed", "10.0.0.5:1", []string{"127.0.0.1, not-an-ip, 10.2.3.4"}, proxies, ""},
		{"garbage left of the client is not read", "10.0.0.5:1", []string{"not-an-ip, 198.51.100.7"}, proxies, "198.51.100.7"},
		{"empty entry fails closed", "10.0.0.5:1", []string{"198.51.100.7,,10.1.1.1"}, proxies, ""},
		{"all hops trusted: leftmost", "10.0.0.5:1", []string{"10.9.9.9, 10.2.3.4"}, proxies, "10.9.9.9"},
		{"no xff from a proxy: the proxy", "10.0.0.5:1", nil, proxies, "10.0.0.5"},
		{"blank xff line skipped", "10.0.0.5:1", []string{"198.51.100.7", " "}, proxies, "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReq(tt.remote)
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got := peerOf(r, tt.proxies)
			want := netip.Addr{}
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Fatalf("peer = %v, want %v", got, want)
			}
		})
	}
}

// TestTrustedProxiesReachTheDecider checks the option end to end.
func TestTrustedProxiesReachTheDecider(t *testing.T) {
	t.Parallel()
	d := &recordingDecider{}
	req := newReq("10.0.0.5:1", "X-Forwarded-For", "198.51.100.7")
	serve(t, d, req)
	if got := d.request().Peer; got != netip.MustParseAddr("10.0.0.5") {
		t.Fatalf("without WithTrustedProxies the peer is %v, want RemoteAddr", got)
	}
	serve(t, d, req, WithTrustedProxies(netip.MustParsePrefix("10.0.0.0/8")))
	if got := d.request().Peer; got != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("with WithTrustedProxies the peer is %v, want the forwarded client", got)
	}
}

// remoteAddrCases are RemoteAddr forms around the edges of the IPv4 fast path.
var remoteAddrCases = []string{
	"192.0.2.10:40000", "0.0.0.0:0", "255.255.255.255:65535", "1.2.3.4:00080", "1.2.3.4:65536",
	"1.2.3.4:", "1.2.3.4", "01.2.3.4:80", "1.2.3.04:80", "256.1.1.1:80", "1.2.3:80", "1.2.3.4.5:80",
	"1.2.3.4:8a", "1.2.3.4:123456", "1..3.4:80", ".1.2.3:80", "1.2.3.4 :80", " 1.2.3.4:80",
	"1.2.3.4:+80", "1.2.3.4:-1", "1000.2.3.4:80", "[1.2.3.4]:80", "[::ffff:1.2.3.4]:80",
	"::ffff:1.2.3.4", "[2001:db8::1]:443", "[fe80::1%eth0]:1", "@", "", ":80", "1.2.3.4::80",
}

// TestParseRemoteAddrFastPathAgrees checks that the IPv4 fast path gives what
// net/netip gives, and takes only strings net/netip accepts.
func TestParseRemoteAddrFastPathAgrees(t *testing.T) {
	t.Parallel()
	for _, s := range remoteAddrCases {
		checkRemoteAddr(t, s)
	}
}

func FuzzParseRemoteAddr(f *testing.F) {
	for _, s := range remoteAddrCases {
		f.Add(s)
	}
	f.Fuzz(checkRemoteAddr)
}

func checkRemoteAddr(t *testing.T, s string) {
	want := parseRemoteAddrNetip(s)
	if got := parseRemoteAddr(s); got != want {
		t.Fatalf("parseRemoteAddr(%q) = %v, net/netip gives %v", s, got, want)
	}
	if a, ok := parseIPv4Port(s); ok {
		ap, err := netip.ParseAddrPort(s)
		if err != nil || ap.Addr() != a {
			t.Fatalf("fast path took %q as %v; netip.ParseAddrPort: %v, %v", s, a, ap, err)
		}
	}
}
