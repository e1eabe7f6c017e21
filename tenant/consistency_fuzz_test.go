package tenant

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzVerifyPosition checks that the consistency token parser never panics,
// rejects every value over MaxConsistencyLen, rejects with exactly one
// sentinel, accepts a value only when its MAC verifies under the key and it
// is bound to the asked tenant and user, and that what it accepts re-encodes
// to the same bytes.
func FuzzVerifyPosition(f *testing.F) {
	s := newSigner(f, decisionKey)
	f.Add(goldenPosition, "acme", goldenUser, int64(0))
	f.Add(goldenPosition, "acme", "", int64(0))
	f.Add(goldenPosition, "acme", goldenUser, int64(1<<40))
	for _, pos := range []uint64{1, 0xf, ^uint64(0)} {
		v, _ := s.SignPosition("", "", pos, decisionExp)
		f.Add(v, "", "", int64(0))
	}
	f.Add("c1;t=;u=;p=1;e=1;s=", "", "", int64(0))
	f.Add("c1;t=acme;u=;p=ffffffffffffffff0;e=1767225600;s="+strings.Repeat("A", 43), "acme", "", int64(0))
	f.Add(strings.Repeat("c1;", 100), "", "", int64(0))
	f.Fuzz(func(t *testing.T, v, tenantID, userHash string, offset int64) {
		now := decisionNow.Add(time.Duration(offset))
		pos, err := s.VerifyPosition(v, tenantID, userHash, now)
		if err != nil {
			n := 0
			for _, sentinel := range []error{ErrConsistencyMalformed, ErrConsistencySignature, ErrConsistencyExpired, ErrConsistencyUser} {
				if errors.Is(err, sentinel) {
					n++
				}
			}
			if n != 1 || pos != 0 {
				t.Fatalf("VerifyPosition(%q) = %d, %v: matches %d sentinels, want 1 and position 0", v, pos, err, n)
			}
			if len(v) > MaxConsistencyLen && !errors.Is(err, ErrConsistencyMalformed) {
				t.Fatalf("oversized %q rejected with %v, want ErrConsistencyMalformed", v, err)
			}
			return
		}
		if len(v) > MaxConsistencyLen || pos == 0 {
			t.Fatalf("accepted %q (%d bytes) with position %d", v, len(v), pos)
		}
		i := strings.LastIndex(v, ";s=")
		if i < 0 {
			t.Fatalf("accepted %q without a MAC", v)
		}
		mac := hmac.New(sha256.New, decisionKey)
		mac.Write([]byte(v[:i+1]))
		if want := base64.RawURLEncoding.EncodeToString(mac.Sum(nil)); v[i+3:] != want {
			t.Fatalf("accepted %q whose MAC does not verify (want %s)", v, want)
		}
		tk, _, err := parsePosition(v)
		if err != nil || tk.tenant != tenantID || tk.user != userHash || now.Unix() >= tk.expires {
			t.Fatalf("accepted %q for %q/%q at %v: parsed %+v, %v", v, tenantID, userHash, now, tk, err)
		}
		again, err := s.SignPosition(tenantID, userHash, pos, time.Unix(tk.expires, 0))
		if err != nil || again != v {
			t.Fatalf("accepted %q but it re-encodes as %q, %v", v, again, err)
		}
	})
}
