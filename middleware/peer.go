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
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return normalize(ap.Addr())
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return normalize(a)
	}
	return netip.Addr{}
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
