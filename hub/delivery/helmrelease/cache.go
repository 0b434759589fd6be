package helmrelease

import (
	"time"

	"k8s.io/utils/lru"
)

// cacheSize bounds the builds and chart resolutions remembered: enough for every
// HelmRelease of a large hub, while those that come and go are forgotten.
const cacheSize = 512

// built is one packaged artifact: chart and merged values.
type built struct {
	digest  string
	size    int64
	version string
}

// resolved is one chart fetched from a HelmRepository into the store.
type resolved struct {
	digest  string
	version string
	at      time.Time
}

// cache remembers recent results by key, least recently used first out. A build is a
// pure function of (chart artifact, values, release name and namespace), so repeated
// reconciles (every Assignment report wakes one) do no work.
type cache[T any] struct{ lru *lru.Cache }

func newCache[T any](size int) *cache[T] { return &cache[T]{lru: lru.New(size)} }

func (c *cache[T]) get(key string) (T, bool) {
	v, ok := c.lru.Get(key)
	if !ok {
		var zero T
		return zero, false
	}
	return v.(T), true
}

func (c *cache[T]) add(key string, v T) { c.lru.Add(key, v) }
