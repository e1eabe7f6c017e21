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
// size). [NewMemoryCache] and [NewRedisCache] are the two implementations.
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
// path and query, and the values of the Config.CacheVary headers; answers
// marked Cache-Control private, and answers to requests carrying
// Authorization that are not marked public, are keyed by the user hash too
// (and not stored when the request has none). So no tenant, and for private
// answers no user, can read another's answer.
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

// ErrCacheEntry is returned by a Cache whose stored data cannot be decoded.
var ErrCacheEntry = errors.New("fallback: malformed cache entry")

// cacheKeyVersion changes whenever the key layout changes, so old entries
// are never misread.
const cacheKeyVersion = "v1"

// cacheKey returns the key of an answer to req for the tenant and, when
// userHash is not "", that user. Every field is length-prefixed before
// hashing, so no two distinct field lists share a key.
func cacheKey(name, tenantID, userHash string, req *http.Request, vary []string) string {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	field := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(name)
	field(tenantID)
	field(userHash)
	field(req.Method)
	field(req.URL.EscapedPath())
	field(req.URL.RawQuery)
	for _, v := range vary {
		field(v)
		vs := req.Header.Values(v)
		field(strings.Join(vs, "\n"))
	}
	var sum [sha256.Size]byte
	kind := "s" // shared
	if userHash != "" {
		kind = "u" // private to a user
	}
	return "canary:fallback:" + cacheKeyVersion + ":" + kind + ":" + hex.EncodeToString(h.Sum(sum[:0]))
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

// storeKey returns the key under which resp, the answer to req, is stored,
// or "" when it must not be stored.
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
	private := cc.private || req.Header.Get("Authorization") != "" && !cc.public
	if private {
		if l.UserHash == "" {
			return ""
		}
		return cacheKey(t.cfg.Name, l.Tenant, l.UserHash, req, t.cfg.CacheVary)
	}
	if len(resp.Header.Values("Set-Cookie")) > 0 {
		return ""
	}
	return cacheKey(t.cfg.Name, l.Tenant, "", req, t.cfg.CacheVary)
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
// user's own key (when the request names a user), then the tenant's shared
// key.
func (t *transport) lookupKeys(req *http.Request, l tenant.Labels) []string {
	shared := cacheKey(t.cfg.Name, l.Tenant, "", req, t.cfg.CacheVary)
	if l.UserHash == "" {
		return []string{shared}
	}
	return []string{cacheKey(t.cfg.Name, l.Tenant, l.UserHash, req, t.cfg.CacheVary), shared}
}
