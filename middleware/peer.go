package middleware

import (
	"net/http"
	"net/netip"
	"strings"
)

// headerXFF is the canonical name of the X-Forwarded-For header.
const headerXFF = "X-Forwarded-For"

// peerOf returns the address of the request's client as far as it can be
// trusted: RemoteAddr, or, when RemoteAddr is one of the trusted proxies, the
// rightmost X-Forwarded-For hop that is not. The zero Addr means unknown.
func peerOf(r *http.Request, proxies []netip.Prefix) netip.Addr {
	addr := parseRemoteAddr(r.RemoteAddr)
	if len(proxies) == 0 || !inPrefixes(addr, proxies) {
		return addr
	}
	lines := r.Header[headerXFF]
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		if strings.TrimSpace(rest) == "" {
			continue
		}
		for {
			var entry string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				entry, rest = rest[j+1:], rest[:j]
			} else {
				entry, rest = rest, ""
			}
			ip, ok := parseHop(entry)
			if !ok {
				return netip.Addr{} // fail closed: nothing left of garbage is believable
			}
			addr = ip
			if !inPrefixes(ip, proxies) {
				return ip
			}
			if rest == "" {
				break
			}
		}
	}
	return addr
}

// parseRemoteAddr parses http.Request.RemoteAddr ("ip:port", "[ipv6]:port",
// or a bare address), dropping any IPv6 zone and unmapping IPv4-mapped IPv6.
func parseRemoteAddr(s string) netip.Addr {
	if a, ok := parseIPv4Port(s); ok {
		return a
	}
	return parseRemoteAddrNetip(s)
}

// parseRemoteAddrNetip is parseRemoteAddr through net/netip, for every form
// the fast path does not take.
func parseRemoteAddrNetip(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a)
	}
	return netip.Addr{}
}

// parseIPv4Port is the fast path of parseRemoteAddr for the usual form of
// RemoteAddr, "a.b.c.d:port". It accepts exactly the strings of that form
// that netip.ParseAddrPort accepts (decimal octets without leading zeros, a
// port of 1 to 5 digits up to 65535) and returns ok=false for all others,
// which then take the general path.
func parseIPv4Port(s string) (netip.Addr, bool) {
	var ip [4]byte
	k, v, digits := 0, 0, 0 // octet index, its value, its digit count
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' {
			if digits > 0 && v == 0 {
				return netip.Addr{}, false // leading zero
			}
			v = v*10 + int(c-'0')
			if digits++; v > 255 {
				return netip.Addr{}, false
			}
			continue
		}
		if digits == 0 || (c != '.' && c != ':') || (c == '.') == (k == 3) {
			return netip.Addr{}, false
		}
		ip[k&3] = byte(v)
		k, v, digits = k+1, 0, 0
		if c == ':' {
			break
		}
	}
	port := s[min(i+1, len(s)):]
	if k != 4 || len(port) == 0 || len(port) > 5 {
		return netip.Addr{}, false
	}
	v = 0
	for j := 0; j < len(port); j++ {
		if port[j] < '0' || port[j] > '9' {
			return netip.Addr{}, false
		}
		v = v*10 + int(port[j]-'0')
	}
	if v > 65535 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(ip), true
}

// parseHop parses one X-Forwarded-For entry: an address, optionally with a
// port (some proxies add one), surrounded by optional spaces.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr()), true
	}
	return netip.Addr{}, false
}

func normalize(a netip.Addr) netip.Addr {
	if a.Zone() != "" {
		a = a.WithZone("")
	}
	return a.Unmap()
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
