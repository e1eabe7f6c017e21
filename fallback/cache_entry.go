package fallback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// entryFormat is the first byte of an encoded entry.
const entryFormat = 1

// EncodeEntry returns e as bytes, for a [Cache] that stores entries outside
// the process (package rediscache does); [DecodeEntry] reads them back. The
// encoding is compact and binary: a format byte, the status, the stored time
// to the nanosecond, the headers (every value, in order) and the body. It is
// stable: entries written by one version of this package are read by later
// ones, or refused with [ErrCacheEntry] when the format changes.
func EncodeEntry(e *Entry) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(e.Body)
	for k, vs := range e.Header {
		n += len(k) + 2*binary.MaxVarintLen64
		for _, v := range vs {
			n += len(v) + binary.MaxVarintLen64
		}
	}
	// Format byte, status (uvarint), stored time (unix nanoseconds,
	// varint), header count, then per header its key, value count and
	// values as length-prefixed strings, then the body.
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

// DecodeEntry decodes what [EncodeEntry] produced; any other input is an
// error wrapping [ErrCacheEntry]. The entry's Body shares b's memory: b must
// not be modified afterwards.
func DecodeEntry(b []byte) (*Entry, error) {
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
