package fallback

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisCache is a Cache in Redis: one string per entry, in a compact binary
// encoding, expiring after ttl.
type redisCache struct {
	client *redis.Client
	ttl    time.Duration
}

var _ Cache = (*redisCache)(nil)

// NewRedisCache returns a Cache stored in Redis through client, whose
// entries expire ttl after they were stored (Redis evicts them; configure
// its maxmemory policy to bound the size). Several processes sharing one
// Redis share the answers; the keys (prefix "canary:fallback:") include the
// dependency name and tenant, see [Cache]. client must not be nil and ttl
// must be at least a millisecond.
//
// It is safe for concurrent use. The client is not closed by the cache.
func NewRedisCache(client *redis.Client, ttl time.Duration) (Cache, error) {
	if client == nil {
		return nil, errors.New("fallback: NewRedisCache: client is nil")
	}
	if ttl < time.Millisecond {
		return nil, fmt.Errorf("fallback: NewRedisCache: ttl %v is shorter than 1ms", ttl)
	}
	return &redisCache{client: client, ttl: ttl}, nil
}

// Get reads and decodes the entry under key.
func (c *redisCache) Get(ctx context.Context, key string) (*Entry, bool, error) {
	b, err := c.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fallback: redis cache get: %w", err)
	}
	e, err := decodeEntry(b)
	if err != nil {
		return nil, false, fmt.Errorf("fallback: redis cache key %s: %w", key, err)
	}
	return e, true, nil
}

// Set encodes e and stores it under key with the cache's TTL.
func (c *redisCache) Set(ctx context.Context, key string, e *Entry) error {
	if err := c.client.Set(ctx, key, encodeEntry(e), c.ttl).Err(); err != nil {
		return fmt.Errorf("fallback: redis cache set: %w", err)
	}
	return nil
}

// entryFormat is the first byte of an encoded entry.
const entryFormat = 1

// encodeEntry encodes e as: format byte, status (uvarint), stored time (unix
// nanoseconds, varint), header count, then per header key and value count,
// key and values as length-prefixed strings, then the body.
func encodeEntry(e *Entry) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(e.Body)
	for k, vs := range e.Header {
		n += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen64
		}
	}
	b := make([]byte, 0, n)
	b = append(b, entryFormat)
	b = binary.AppendUvarint(b, uint64(e.Status))
	b = binary.AppendVarint(b, e.Stored.UnixNano())
	b = binary.AppendUvarint(b, uint64(len(e.Header)))
	for k, vs := range e.Header {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(vs)))
		for _, v := range vs {
			b = appendString(b, v)
		}
	}
	return append(b, e.Body...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decodeEntry decodes what encodeEntry produced; any other input is an
// ErrCacheEntry.
func decodeEntry(b []byte) (*Entry, error) {
	d := decoder{b: b}
	if f := d.byte(); f != entryFormat {
		return nil, fmt.Errorf("%w: format %d", ErrCacheEntry, f)
	}
	status := d.uvarint()
	stored := d.varint()
	count := d.uvarint()
	if d.err != nil || status < 100 || status > 999 || count > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: bad header", ErrCacheEntry)
	}
	h := make(http.Header, count)
	for range count {
		k := d.string()
		nv := d.uvarint()
		if d.err != nil || nv > uint64(len(d.b)) {
			return nil, fmt.Errorf("%w: bad header field", ErrCacheEntry)
		}
		vs := make([]string, 0, nv)
		for range nv {
			vs = append(vs, d.string())
		}
		if d.err != nil {
			return nil, fmt.Errorf("%w: bad header value", ErrCacheEntry)
		}
		h[k] = vs
	}
	return &Entry{
		Status: int(status),
		Header: h,
		Body:   d.b,
		Stored: time.Unix(0, stored),
	}, nil
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("short")

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = errShort
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errShort
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
