package storage

import (
	"container/list"
	"sync"
)

// blobCache keeps the most recently used artifacts in memory, up to a number of
// bytes. Artifacts never change under their digest, so an entry is never stale.
type blobCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type cached struct {
	digest string
	data   []byte
}

// newBlobCache keeps up to max bytes; none when max <= 0.
func newBlobCache(max int64) *blobCache {
	return &blobCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *blobCache) get(digest string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[digest]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*cached).data, true
}

// add keeps data unless it is more than a quarter of the cache: one large chart must
// not push out what the whole fleet is downloading.
func (c *blobCache) add(digest string, data []byte) {
	if int64(len(data)) > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[digest]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[digest] = c.ll.PushFront(&cached{digest: digest, data: data})
	c.size += int64(len(data))
	for c.size > c.max {
		last := c.ll.Back()
		c.removeElement(last)
	}
}

func (c *blobCache) remove(digest string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[digest]; ok {
		c.removeElement(e)
	}
}

func (c *blobCache) removeElement(e *list.Element) {
	v := e.Value.(*cached)
	c.ll.Remove(e)
	delete(c.items, v.digest)
	c.size -= int64(len(v.data))
}
