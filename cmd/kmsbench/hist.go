package main

import (
	"math"
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram in the spirit of HdrHistogram:
// values (nanoseconds) below 2*subCount are exact, above that every power
// of two is split into subCount buckets, so a reported value is within
// 1/subCount (0.8 %) of the true one. Recording is a few integer
// operations and never allocates; one hist per worker and operation,
// merged after the run.
type hist struct {
	counts   [nBuckets]uint64
	n        uint64
	sum      uint64
	min, max uint64
}

const (
	subBits  = 7
	subCount = 1 << subBits
	nBuckets = (64 - subBits + 1) * subCount
)

func bucketOf(v uint64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(v) - (subBits + 1)
	return (shift+1)<<subBits + int(v>>uint(shift)) - subCount
}

// bucketRange is the smallest and largest value recorded in bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < 2*subCount {
		return uint64(i), uint64(i)
	}
	shift := uint(i>>subBits - 1)
	m := uint64(i&(subCount-1) + subCount)
	return m << shift, (m+1)<<shift - 1
}

func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

func (h *hist) merge(o *hist) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// quantile returns the value at quantile q (0..1): the smallest recorded
// value v such that at least q of all values are <= v, to within the
// bucket precision (the bucket midpoint, clamped to the observed min/max).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}
