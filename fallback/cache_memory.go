package fallback

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"
)

// memoryCache is a Cache in process memory: least recently used entries are
// evicted beyond maxBytes, and entries expire ttl after they were stored.
type memoryCache struct {
	maxBytes int64
	ttl      time.Duration
	now      func() time.Time

	mu    sync.Mutex
	bytes int64
	lru   *list.List // of *memoryItem, most recently used first
	items map[string]*list.Element
}

type memoryItem struct {
	key     string
	entry   *Entry
	size    int64
	expires time.Time
}

var _ Cache = (*memoryCache)(nil)

// NewMemoryCache returns a Cache held in process memory, bounded to about
// maxBytes (bodies, headers and keys; the least recently used entries are
// evicted first; an entry larger than maxBytes is not stored) and whose
// entries expire ttl after they were stored. Both must be positive.
//
// It is safe for concurrent use. Entries are shared, not copied: neither the
// cache nor the transport modifies them.
func NewMemoryCache(maxBytes int64, ttl time.Duration) (Cache, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("fallback: NewMemoryCache: maxBytes %d is not positive", maxBytes)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("fallback: NewMemoryCache: ttl %v is not positive", ttl)
	}
	return &memoryCache{
		maxBytes: maxBytes,
		ttl:      ttl,
		now:      time.Now,
		lru:      list.New(),
		items:    make(map[string]*list.Element),
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
	return it.entry, true, nil
}

// Set stores e under key and evicts the least recently used entries beyond
// the size bound.
func (c *memoryCache) Set(_ context.Context, key string, e *Entry) error {
	size := e.size() + int64(len(key))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.remove(el)
	}
	if size > c.maxBytes {
		return nil
	}
	it := &memoryItem{key: key, entry: e, size: size, expires: c.now().Add(c.ttl)}
	c.items[key] = c.lru.PushFront(it)
	c.bytes += size
	for c.bytes > c.maxBytes {
		c.remove(c.lru.Back())
	}
	return nil
}

func (c *memoryCache) remove(el *list.Element) {
	it := c.lru.Remove(el).(*memoryItem)
	delete(c.items, it.key)
	c.bytes -= it.size
}

// len returns the number of entries (tests).
func (c *memoryCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
