package fallback

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestEntryCodecRoundTrip(t *testing.T) {
	for _, e := range []*Entry{
		{Status: 200, Stored: time.Unix(0, 0)},
		{Status: 204, Header: http.Header{}, Body: nil, Stored: time.Unix(-5, 7)},
		{Status: 299, Header: http.Header{"A": {""}, "B": {"1", "2", "3"}}, Body: bytes.Repeat([]byte{0xff}, 300), Stored: time.Unix(1e9, 1)},
	} {
		got, err := DecodeEntry(EncodeEntry(e))
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", e, err)
		}
		if got.Status != e.Status || len(got.Header) != len(e.Header) || !bytes.Equal(got.Body, e.Body) || !got.Stored.Equal(e.Stored) {
			t.Fatalf("got %+v, want %+v", got, e)
		}
		for k, v := range e.Header {
			if !reflect.DeepEqual(got.Header[k], v) {
				t.Fatalf("header %s = %v, want %v", k, got.Header[k], v)
			}
		}
	}
}

// TestEntryCodecStable pins the encoding: entries already stored (in Redis)
// by an earlier version must stay readable.
func TestEntryCodecStable(t *testing.T) {
	e := &Entry{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x"), Stored: time.Unix(0, 5)}
	want := []byte{1, 0xc8, 0x01, 10, 1, 1, 'A', 1, 1, 'b', 'x'} // format, status 200, 5 ns, 1 header A: [b], body
	if got := EncodeEntry(e); !bytes.Equal(got, want) {
		t.Fatalf("EncodeEntry = %v, want %v", got, want)
	}
	if _, err := DecodeEntry([]byte("garbage")); !errors.Is(err, ErrCacheEntry) {
		t.Fatalf("DecodeEntry(garbage): error %v, want ErrCacheEntry", err)
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add(EncodeEntry(&Entry{Status: 200, Header: http.Header{"A": {"b"}}, Body: []byte("x")}))
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCacheEntry) {
				t.Fatalf("error %v is not ErrCacheEntry", err)
			}
			return
		}
		again, err := DecodeEntry(EncodeEntry(e))
		if err != nil || again.Status != e.Status || !bytes.Equal(again.Body, e.Body) || !reflect.DeepEqual(again.Header, e.Header) {
			t.Fatalf("re-encoding %+v gives %+v, %v", e, again, err)
		}
	})
}
