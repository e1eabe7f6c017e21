package fallback

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// memoryCache is a Cache in process memory: least recently used entries are
// evicted beyond maxBytes, and beyond maxTenantBytes within one partition
// (a dependency's tenant, see cacheKey); entries expire ttl after they were
// stored.
type memoryCache struct {
	maxBytes, maxTenantBytes int64
	ttl                      time.Duration
	now                      func() time.Time

	mu    sync.Mutex
	bytes int64
	lru   *list.List // of *memoryItem, most recently used first
	items map[string]*list.Element
	parts map[string]*memoryPart
}

// memoryPart is the LRU list and size of one partition.
type memoryPart struct {
	bytes int64
	lru   *list.List // of *memoryItem, most recently used first
}

type memoryItem struct {
	key     string
	part    string
	entry   *Entry
	size    int64
	expires time.Time
	inPart  *list.Element
}

// memoryItemOverhead approximates what an entry costs besides its key and
// content: the item, two list elements and the map slots.
const memoryItemOverhead = 256

var _ Cache = (*memoryCache)(nil)

// MemoryCacheConfig configures [NewMemoryCacheWith].
type MemoryCacheConfig struct {
	// MaxBytes bounds the whole cache (bodies, headers, keys and a fixed
	// overhead per entry); the least recently used entries are evicted
	// first. Required.
	MaxBytes int64
	// MaxTenantBytes bounds the entries of one tenant of one dependency:
	// beyond it, that tenant's least recently used entries are evicted, so
	// that a tenant (or a client inventing tenant ids) never takes more.
	// Default: MaxBytes/4.
	MaxTenantBytes int64
	// TTL is how long an entry is kept: how stale a served answer may be.
	// Required.
	TTL time.Duration
}

// NewMemoryCache returns a Cache held in process memory, bounded to about
// maxBytes (bodies, headers and keys; the least recently used entries are
// evicted first; an entry larger than maxBytes is not stored), with each
// tenant of a dependency bounded to maxBytes/4, and whose entries expire
// ttl after they were stored. Both must be positive. See
// [NewMemoryCacheWith] to set the tenant bound.
//
// It is safe for concurrent use. Entries are shared, not copied: neither the
// cache nor the transport modifies them.
func NewMemoryCache(maxBytes int64, ttl time.Duration) (Cache, error) {
	return NewMemoryCacheWith(MemoryCacheConfig{MaxBytes: maxBytes, TTL: ttl})
}

// NewMemoryCacheWith returns a Cache held in process memory, configured by
// c; see [NewMemoryCache] and [MemoryCacheConfig]. Errors name the field.
func NewMemoryCacheWith(c MemoryCacheConfig) (Cache, error) {
	if c.MaxBytes <= 0 {
		return nil, fmt.Errorf("fallback: MemoryCacheConfig.MaxBytes: %d is not positive", c.MaxBytes)
	}
	if c.TTL <= 0 {
		return nil, fmt.Errorf("fallback: MemoryCacheConfig.TTL: %v is not positive", c.TTL)
	}
	switch {
	case c.MaxTenantBytes < 0:
		return nil, fmt.Errorf("fallback: MemoryCacheConfig.MaxTenantBytes: %d is negative", c.MaxTenantBytes)
	case c.MaxTenantBytes == 0:
		c.MaxTenantBytes = max(c.MaxBytes/4, 1)
	}
	return &memoryCache{
		maxBytes:       c.MaxBytes,
		maxTenantBytes: min(c.MaxTenantBytes, c.MaxBytes),
		ttl:            c.TTL,
		now:            time.Now,
		lru:            list.New(),
		items:          make(map[string]*list.Element),
		parts:          make(map[string]*memoryPart),
	}, nil
}

// Get returns the entry under key unless it expired.
func (c *memoryCache) Get(_ context.Context, key string) (*Entry, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return nil, false, nil
	}
	it := el.Value.(*memoryItem)
	if !c.now().Before(it.expires) {
		c.remove(el)
		return nil, false, nil
	}
	c.lru.MoveToFront(el)
	c.parts[it.part].lru.MoveToFront(it.inPart)
	return it.entry, true, nil
}

// Set stores e under key and evicts the least recently used entries beyond
// the size bounds: the tenant's first, then the whole cache's.
func (c *memoryCache) Set(_ context.Context, key string, e *Entry) error {
	size := e.size() + int64(len(key)) + memoryItemOverhead
	part := KeyPartition(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	if size > c.maxTenantBytes {
		return nil
	}
	p := c.parts[part]
	if p == nil {
		p = &memoryPart{lru: list.New()}
		c.parts[part] = p
	}
	it := &memoryItem{key: key, part: part, entry: e, size: size, expires: c.now().Add(c.ttl)}
	c.items[key] = c.lru.PushFront(it)
	it.inPart = p.lru.PushFront(it)
	c.bytes += size
	p.bytes += size
	for p.bytes > c.maxTenantBytes {
		c.remove(c.items[p.lru.Back().Value.(*memoryItem).key])
	}
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
	return nil
}

func (c *memoryCache) remove(el *list.Element) {
	it := c.lru.Remove(el).(*memoryItem)
	delete(c.items, it.key)
	c.bytes -= it.size
	p := c.parts[it.part]
	p.lru.Remove(it.inPart)
	p.bytes -= it.size
	if p.lru.Len() == 0 {
		delete(c.parts, it.part)
	}
}

// len returns the number of entries (tests).
func (c *memoryCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
