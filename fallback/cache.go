package fallback

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/reqcanary/canary/tenant"
)

// Cache stores the last good answers the transport may serve when every
// endpoint failed (stale-if-error). The transport builds the keys; a Cache
// only stores opaque keys and entries, evicting them as it sees fit (TTL,
// size). [NewMemoryCache] keeps them in process memory; package
// [github.com/reqcanary/canary/fallback/rediscache] keeps them in Redis,
// shared by several processes. Another store can implement Cache with
// [EncodeEntry] and [DecodeEntry] (entries as bytes) and [KeyPartition] (the
// tenant a key belongs to, to bound each tenant's share).
//
// What the transport stores: answers to GET and HEAD requests with a 2xx
// status other than 206, from Stable or Shadow (never Canary, so a stale
// answer never shows canary behaviour to the stable cohort), whose body is at
// most Config.MaxCacheBodyBytes and was read to the end by the caller. Never
// stored: answers with Cache-Control no-store (in the request or the answer),
// requests with a Range header, answers with "Vary: *" or varying on a header
// not listed in Config.CacheVary, and shared answers that set a cookie.
//
// Keys always include the dependency name, the tenant, the method, the URL
// path and query, and the values of the Config.CacheVary headers. Private
// answers — marked Cache-Control private, or answering a request that carried
// Authorization, Cookie or a Config.SessionHeaders header without being marked
// public — are keyed by the user hash and the values of those credential
// headers too (and not stored when the request has neither), so no tenant,
// and for private answers no other user nor an anonymous request, can read
// another's answer. Answers that set a cookie are never stored.
//
// Keys read "canary:fallback:v2:<partition>:<s|u>:<hex>", where the partition
// names the dependency's tenant: [NewMemoryCache] and the Redis cache bound
// the space each partition takes, so that clients choosing random tenant ids
// cannot fill the cache.
//
// Implementations must be safe for concurrent use. They must not modify an
// Entry passed to Set or returned by Get; the transport does not either.
type Cache interface {
	// Get returns the entry stored under key, ok=false when there is none
	// (or it expired).
	Get(ctx context.Context, key string) (e *Entry, ok bool, err error)
	// Set stores e under key, replacing any previous entry.
	Set(ctx context.Context, key string, e *Entry) error
}

// Entry is a stored answer.
type Entry struct {
	// Status is the HTTP status code.
	Status int
	// Header holds the answer's headers.
	Header http.Header
	// Body is the whole body.
	Body []byte
	// Stored is when the answer was received.
	Stored time.Time
}

// size estimates the memory an entry holds, in bytes.
func (e *Entry) size() int64 {
	n := int64(len(e.Body)) + 64
	for k, vs := range e.Header {
		n += int64(len(k)) + 16
		for _, v := range vs {
			n += int64(len(v)) + 16
		}
	}
	return n
}

// ErrCacheEntry is returned (wrapped) by [DecodeEntry], and by a Cache whose
// stored data cannot be decoded.
var ErrCacheEntry = errors.New("fallback: malformed cache entry")

// cacheKeyVersion changes whenever the key layout changes, so old entries
// are never misread. The store script of package rediscache matches the
// layout (to find a key's partition in Lua): change both together.
const cacheKeyVersion = "v2"

// cacheKeyPrefix starts every key the transport builds.
const cacheKeyPrefix = "canary:fallback:" + cacheKeyVersion + ":"

// cacheKey returns the key of an answer to req for the tenant. A private key
// (private=true) also holds the user hash and the values of the request's
// credential headers (creds: Authorization, Cookie and Config.SessionHeaders),
// so that only a request of the same user presenting the same credentials
// finds it. Every field is length-prefixed before hashing, so no two distinct
// field lists share a key.
//
// The key reads "canary:fallback:v2:<partition>:<s|u>:<sha256>", where the
// partition (16 hex digits) hashes the dependency name and the tenant: the
// caches bound the space each partition takes (see [Cache]).
func cacheKey(name, tenantID, userHash string, private bool, req *http.Request, vary, creds []string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(name)
	field(tenantID)
	kind := "s" // shared within the tenant
	if private {
		kind = "u" // private to a user
		field(userHash)
		for _, c := range creds {
			field(c)
			field(strings.Join(req.Header.Values(c), "\n"))
		}
	}
	field(kind)
	field(req.Method)
	field(req.URL.EscapedPath())
	field(req.URL.RawQuery)
	for _, v := range vary {
		field(v)
		vs := req.Header.Values(v)
		field(strings.Join(vs, "\n"))
	}
	var sum [sha256.Size]byte
	return cacheKeyPrefix + partition(name, tenantID) + ":" + kind + ":" + hex.EncodeToString(h.Sum(sum[:0]))
}

// partition returns the 16 hex digits naming the space of a dependency's
// tenant in the cache.
func partition(name, tenantID string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(name)))])
	h.Write([]byte(name))
	h.Write([]byte(tenantID))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:8])
}

// KeyPartition returns the partition of a key the transport built: 16 hex
// digits naming one tenant of one dependency (see [Cache]), or "-" for any
// other key. A [Cache] bounds the space each partition takes, so that
// clients choosing random tenant ids cannot fill it; keys that are not the
// transport's (a Cache used directly) share the one partition "-".
func KeyPartition(key string) string {
	rest, ok := strings.CutPrefix(key, cacheKeyPrefix)
	if !ok {
		return "-"
	}
	p, _, ok := strings.Cut(rest, ":")
	if !ok || p == "" {
		return "-"
	}
	return p
}

// cacheControl holds the directives of Cache-Control headers that matter
// here.
type cacheControl struct {
	noStore, private, public bool
}

func parseCacheControl(h http.Header) cacheControl {
	var cc cacheControl
	for _, line := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(line, ",") {
			d = strings.TrimSpace(d)
			if i := strings.IndexByte(d, '='); i >= 0 {
				d = d[:i]
			}
			switch strings.ToLower(d) {
			case "no-store":
				cc.noStore = true
			case "private":
				cc.private = true
			case "public":
				cc.public = true
			}
		}
	}
	return cc
}

// cacheableRequest reports whether an answer to req may come from or go to
// the cache at all.
func cacheableRequest(req *http.Request) bool {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return false
	}
	if req.Header.Get("Range") != "" {
		return false
	}
	return !parseCacheControl(req.Header).noStore
}

// credentialed reports whether req carries one of the credential headers
// (Authorization, Cookie, Config.SessionHeaders): its answer is private.
func (t *transport) credentialed(req *http.Request) bool {
	for _, c := range t.cfg.creds {
		if len(req.Header[c]) > 0 {
			return true
		}
	}
	return false
}

// storeKey returns the key under which resp, the answer to req, is stored,
// or "" when it must not be stored.
//
// Private answers — marked Cache-Control private, or answering a request that
// carried credentials (Authorization, Cookie, a Config.SessionHeaders header)
// and not marked public — are stored under the user's own key (user hash and
// credentials), never under the tenant's shared key; not at all when the
// request names no user and carries no credentials. Answers that set a cookie
// are never stored, private or not: replaying a Set-Cookie later could restore
// a session the user has left.
func (t *transport) storeKey(req *http.Request, l tenant.Labels, resp *http.Response) string {
	if resp.StatusCode < 200 || resp.StatusCode > 299 || resp.StatusCode == http.StatusPartialContent {
		return ""
	}
	if resp.ContentLength > t.cfg.MaxCacheBodyBytes {
		return ""
	}
	cc := parseCacheControl(resp.Header)
	if cc.noStore {
		return ""
	}
	if len(resp.Header.Values("Set-Cookie")) > 0 {
		return ""
	}
	for _, line := range resp.Header.Values("Vary") {
		for h := range strings.SplitSeq(line, ",") {
			h = strings.TrimSpace(h)
			if h == "" {
				continue
			}
			if h == "*" || !t.varies(http.CanonicalHeaderKey(h)) {
				return ""
			}
		}
	}
	cred := t.credentialed(req)
	if cc.private || cred && !cc.public {
		if l.UserHash == "" && !cred {
			return ""
		}
		return cacheKey(t.cfg.Name, l.Tenant, l.UserHash, true, req, t.cfg.CacheVary, t.cfg.creds)
	}
	return cacheKey(t.cfg.Name, l.Tenant, "", false, req, t.cfg.CacheVary, nil)
}

func (t *transport) varies(canonical string) bool {
	for _, v := range t.cfg.CacheVary {
		if v == canonical {
			return true
		}
	}
	return false
}

// lookupKeys returns the keys to try for req, most specific first: the
// user's own key (when the request names a user or carries credentials),
// then the tenant's shared key (answers stored from requests without
// credentials, or marked public).
func (t *transport) lookupKeys(req *http.Request, l tenant.Labels) []string {
	shared := cacheKey(t.cfg.Name, l.Tenant, "", false, req, t.cfg.CacheVary, nil)
	if l.UserHash == "" && !t.credentialed(req) {
		return []string{shared}
	}
	return []string{cacheKey(t.cfg.Name, l.Tenant, l.UserHash, true, req, t.cfg.CacheVary, t.cfg.creds), shared}
}
