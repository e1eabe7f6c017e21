package tenant

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	decisionKey    = []byte("0123456789abcdef0123456789abcdef")
	decisionOldKey = []byte("an-older-key-that-was-rotated-out")
	decisionExp    = time.Unix(1767225600, 0)
	decisionNow    = decisionExp.Add(-30 * time.Second)
)

// goldenDecision is the version 1 encoding of goldenDecisionValue under
// decisionKey. Its MAC was computed independently (Python's hmac module), so
// it pins the format a non-Go service implements.
const goldenDecision = "v1;c=canary;b=1234;t=acme;u=0f1e2d3c4b5a69788796a5b4c3d2e1f0;r=percent;p=7;e=1767225600;" +
	"s=_WjKJ8B1jlcuJhfMUXy4b828TDlGJpcZsHF3mt_y824"

var goldenDecisionValue = Decision{
	Cohort: Canary, Bucket: 1234, Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
	Reason: ReasonPercent, PlanVersion: 7, Expires: decisionExp,
}

func newSigner(t testing.TB, current []byte, previous ...[]byte) *DecisionSigner {
	t.Helper()
	s, err := NewDecisionSigner(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sameDecision(a, b Decision) bool {
	return a.Cohort == b.Cohort && a.Bucket == b.Bucket && a.Tenant == b.Tenant && a.UserHash == b.UserHash &&
		a.Reason == b.Reason && a.PlanVersion == b.PlanVersion && a.Expires.Equal(b.Expires)
}

func TestDecisionGoldenVector(t *testing.T) {
	s := newSigner(t, decisionKey)
	got, err := s.Sign(goldenDecisionValue)
	if err != nil {
		t.Fatal(err)
	}
	if got != goldenDecision {
		t.Fatalf("Sign =\n%s\nwant\n%s", got, goldenDecision)
	}
	d, err := s.Verify(goldenDecision, decisionNow)
	if err != nil {
		t.Fatal(err)
	}
	if !sameDecision(d, goldenDecisionValue) {
		t.Fatalf("Verify = %+v, want %+v", d, goldenDecisionValue)
	}
}

func TestDecisionRoundTripEdges(t *testing.T) {
	s := newSigner(t, decisionKey)
	for _, d := range []Decision{
		{Cohort: Stable, Bucket: NoBucket, Reason: ReasonNoKey, Expires: time.Unix(1, 0)},
		{Cohort: Stable, Bucket: 0, Tenant: "a", Expires: decisionExp},
		{Cohort: Canary, Bucket: 9999, Tenant: strings.Repeat("Z", MaxTenantLen), UserHash: strings.Repeat("f", 32),
			Reason: strings.Repeat("-", MaxReasonLen), PlanVersion: 2147483647, Expires: time.Unix(99999999999, 0)},
	} {
		v, err := s.Sign(d)
		if err != nil {
			t.Fatalf("Sign(%+v): %v", d, err)
		}
		if len(v) > MaxDecisionLen {
			t.Fatalf("Sign(%+v) is %d bytes, more than MaxDecisionLen", d, len(v))
		}
		got, err := s.Verify(v, d.Expires.Add(-time.Second))
		if err != nil || !sameDecision(got, d) {
			t.Fatalf("Verify(%s) = %+v, %v; want %+v", v, got, err, d)
		}
	}
}

func TestDecisionExpiry(t *testing.T) {
	s := newSigner(t, decisionKey)
	if _, err := s.Verify(goldenDecision, decisionExp.Add(-time.Second)); err != nil {
		t.Fatalf("one second before expiry: %v", err)
	}
	for _, now := range []time.Time{decisionExp, decisionExp.Add(999 * time.Millisecond), decisionExp.Add(time.Hour)} {
		_, err := s.Verify(goldenDecision, now)
		if !errors.Is(err, ErrDecisionExpired) {
			t.Fatalf("at %v: err = %v, want ErrDecisionExpired", now, err)
		}
		if errors.Is(err, ErrDecisionSignature) || errors.Is(err, ErrDecisionMalformed) {
			t.Fatalf("expired error %v also matches another sentinel", err)
		}
	}
}

func TestDecisionRotation(t *testing.T) {
	old := newSigner(t, decisionOldKey)
	signedOld, err := old.Sign(goldenDecisionValue)
	if err != nil {
		t.Fatal(err)
	}
	rotated := newSigner(t, decisionKey, decisionOldKey)
	if _, err := rotated.Verify(signedOld, decisionNow); err != nil {
		t.Fatalf("previous key no longer verifies: %v", err)
	}
	signedNew, _ := rotated.Sign(goldenDecisionValue)
	if signedNew != goldenDecision {
		t.Fatalf("rotated signer does not sign with the current key: %s", signedNew)
	}
	if _, err := old.Verify(signedNew, decisionNow); !errors.Is(err, ErrDecisionSignature) {
		t.Fatalf("old-only signer verified a new-key decision: %v", err)
	}
	dropped := newSigner(t, decisionKey)
	if _, err := dropped.Verify(signedOld, decisionNow); !errors.Is(err, ErrDecisionSignature) {
		t.Fatalf("after dropping the old key: err = %v, want ErrDecisionSignature", err)
	}
}

func TestDecisionTampering(t *testing.T) {
	s := newSigner(t, decisionKey)
	// Change each field to another valid value: only the MAC can tell.
	for _, tc := range []struct{ from, to string }{
		{"c=canary", "c=stable"},
		{"b=1234", "b=1233"},
		{"t=acme", "t=acmf"},
		{"u=0f1e", "u=1f1e"},
		{"r=percent", "r=override"},
		{"p=7", "p=8"},
		{"e=1767225600", "e=1767225601"},
		{"v1;", "v1;"}, // unchanged: control
	} {
		v := strings.Replace(goldenDecision, tc.from, tc.to, 1)
		_, err := s.Verify(v, decisionNow)
		if tc.from == tc.to {
			if err != nil {
				t.Fatalf("control: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrDecisionSignature) {
			t.Errorf("%s -> %s: err = %v, want ErrDecisionSignature", tc.from, tc.to, err)
		}
	}
	// An expired value that was also tampered with is a forgery, not merely expired.
	v := strings.Replace(goldenDecision, "c=canary", "c=stable", 1)
	if _, err := s.Verify(v, decisionExp.Add(time.Hour)); !errors.Is(err, ErrDecisionSignature) {
		t.Fatalf("tampered and expired: err = %v, want ErrDecisionSignature", err)
	}
	// Flipping a MAC character.
	mac := goldenDecision[len(goldenDecision)-43:]
	flipped := strings.TrimSuffix(goldenDecision, mac) + "A" + mac[1:]
	if _, err := s.Verify(flipped, decisionNow); !errors.Is(err, ErrDecisionSignature) {
		t.Fatalf("flipped MAC: err = %v, want ErrDecisionSignature", err)
	}
}

func TestDecisionMalformed(t *testing.T) {
	s := newSigner(t, decisionKey)
	g := goldenDecision
	mac := g[len(g)-43:]
	body := strings.TrimSuffix(g, "s="+mac)
	for _, tc := range []struct {
		name, v, field string
	}{
		{"empty", "", ""},
		{"no separator", "v1", ""},
		{"garbage", "hello world", ""},
		{"too long", g + strings.Repeat("x", MaxDecisionLen), ""},
		{"missing field", strings.Replace(g, "r=percent;", "", 1), "r"},
		{"fields out of order", strings.Replace(g, "c=canary;b=1234;", "b=1234;c=canary;", 1), "c"},
		{"unknown field", strings.Replace(g, "e=1767225600;", "e=1767225600;x=1;", 1), "s"},
		{"space", strings.Replace(g, "c=canary", "c= canary", 1), "c"},
		{"uppercase key", strings.Replace(g, "c=canary", "C=canary", 1), "c"},
		{"cohort", strings.Replace(g, "c=canary", "c=Canary", 1), "c"},
		{"bucket too big", strings.Replace(g, "b=1234", "b=10000", 1), "b"},
		{"bucket leading zero", strings.Replace(g, "b=1234", "b=01234", 1), "b"},
		{"bucket -0", strings.Replace(g, "b=1234", "b=-0", 1), "b"},
		{"bucket -2", strings.Replace(g, "b=1234", "b=-2", 1), "b"},
		{"bucket plus", strings.Replace(g, "b=1234", "b=+1234", 1), "b"},
		{"bucket empty", strings.Replace(g, "b=1234", "b=", 1), "b"},
		{"tenant slash", strings.Replace(g, "t=acme", "t=ac/me", 1), "t"},
		{"tenant too long", strings.Replace(g, "t=acme", "t="+strings.Repeat("a", 65), 1), "t"},
		{"user hash upper", strings.Replace(g, "u=0f1e", "u=0F1E", 1), "u"},
		{"user hash short", strings.Replace(g, "u=0f1e", "u=0f1", 1), "u"},
		{"raw user id", strings.Replace(g, "u=0f1e2d3c4b5a69788796a5b4c3d2e1f0", "u=alice", 1), "u"},
		{"reason upper", strings.Replace(g, "r=percent", "r=Percent", 1), "r"},
		{"reason too long", strings.Replace(g, "r=percent", "r="+strings.Repeat("a", 33), 1), "r"},
		{"plan negative", strings.Replace(g, "p=7", "p=-1", 1), "p"},
		{"plan too big", strings.Replace(g, "p=7", "p=2147483648", 1), "p"},
		{"expiry zero", strings.Replace(g, "e=1767225600", "e=0", 1), "e"},
		{"expiry too big", strings.Replace(g, "e=1767225600", "e=100000000000", 1), "e"},
		{"no mac", body, "s"},
		{"empty mac", body + "s=", "s"},
		{"short mac", g[:len(g)-1], "s"},
		{"padded mac", g + "=", "s"},
		{"std base64 mac", body + "s=" + strings.NewReplacer("_", "/", "-", "+").Replace(mac), "s"},
		{"mac with trailing bits", body + "s=" + mac[:42] + "5", "s"}, // '4' is canonical for ...824; '5' sets a padding bit
		{"trailing separator", g + ";", "s"},
		{"leading space", " " + g, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Verify(tc.v, decisionNow)
			if !errors.Is(err, ErrDecisionMalformed) {
				t.Fatalf("Verify(%q) err = %v, want ErrDecisionMalformed", tc.v, err)
			}
			if errors.Is(err, ErrDecisionSignature) || errors.Is(err, ErrDecisionExpired) || errors.Is(err, ErrDecisionVersion) {
				t.Fatalf("err %v matches more than one sentinel", err)
			}
			if tc.field != "" && !strings.Contains(err.Error(), "field "+tc.field+":") {
				t.Fatalf("err %q does not name field %s", err, tc.field)
			}
		})
	}
}

func TestDecisionUnknownVersion(t *testing.T) {
	s := newSigner(t, decisionKey)
	for _, v := range []string{"v2;c=canary", strings.Replace(goldenDecision, "v1;", "v2;", 1), "v10;x"} {
		if _, err := s.Verify(v, decisionNow); !errors.Is(err, ErrDecisionVersion) || errors.Is(err, ErrDecisionMalformed) {
			t.Errorf("Verify(%q) err = %v, want ErrDecisionVersion only", v, err)
		}
	}
}

func TestDecisionSignRejectsInvalid(t *testing.T) {
	s := newSigner(t, decisionKey)
	ok := goldenDecisionValue
	for _, tc := range []struct {
		field string
		edit  func(*Decision)
	}{
		{"c", func(d *Decision) { d.Cohort = "" }},
		{"b", func(d *Decision) { d.Bucket = Buckets }},
		{"b", func(d *Decision) { d.Bucket = -2 }},
		{"t", func(d *Decision) { d.Tenant = "a;b" }},
		{"u", func(d *Decision) { d.UserHash = "alice" }},
		{"r", func(d *Decision) { d.Reason = "has space" }},
		{"p", func(d *Decision) { d.PlanVersion = -1 }},
		{"e", func(d *Decision) { d.Expires = time.Time{} }},
		{"e", func(d *Decision) { d.Expires = time.Unix(0, 0) }},
	} {
		d := ok
		tc.edit(&d)
		v, err := s.Sign(d)
		if !errors.Is(err, ErrDecisionMalformed) || !strings.Contains(err.Error(), "field "+tc.field+":") {
			t.Errorf("Sign(%+v) = %q, %v; want ErrDecisionMalformed naming field %s", d, v, err, tc.field)
		}
	}
}

func TestNewDecisionSignerKeys(t *testing.T) {
	if _, err := NewDecisionSigner([]byte("short")); err == nil || !strings.Contains(err.Error(), "signing key") {
		t.Fatalf("short current key: err = %v", err)
	}
	if _, err := NewDecisionSigner(decisionKey, []byte("short")); err == nil || !strings.Contains(err.Error(), "previous decision key 0") {
		t.Fatalf("short previous key: err = %v", err)
	}
	key := append([]byte(nil), decisionKey...)
	s := newSigner(t, key)
	key[0] ^= 0xff // the signer copied the key
	if v, _ := s.Sign(goldenDecisionValue); v != goldenDecision {
		t.Fatal("signer did not copy its key")
	}
}

func TestLabelSigner(t *testing.T) {
	s := newSigner(t, decisionKey)
	now := func() time.Time { return decisionNow }
	l := Labels{Tenant: "acme", UserHash: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Bucket: 42, Cohort: Canary,
		Reason: ReasonTenantCanary, TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", PlanVersion: 3}
	for _, tc := range []struct {
		ttl  time.Duration
		want time.Time
	}{
		{10 * time.Second, decisionNow.Add(10 * time.Second)},
		{0, decisionNow.Add(DefaultDecisionTTL)},
	} {
		v, err := s.LabelSigner(tc.ttl, now)(l)
		if err != nil {
			t.Fatal(err)
		}
		d, err := s.Verify(v, decisionNow)
		if err != nil {
			t.Fatal(err)
		}
		if !d.Expires.Equal(tc.want) {
			t.Fatalf("ttl %v: expires %v, want %v", tc.ttl, d.Expires, tc.want)
		}
		back := d.Labels()
		want := l
		want.TraceID = ""
		if back != want {
			t.Fatalf("Labels() = %+v, want %+v", back, want)
		}
	}
	if v, err := s.LabelSigner(time.Second, nil)(l); err != nil || !strings.HasPrefix(v, "v1;c=canary;b=42;t=acme;") {
		t.Fatalf("nil clock: %q, %v", v, err)
	}
}

func TestDecisionSignerConcurrent(t *testing.T) {
	s := newSigner(t, decisionKey, decisionOldKey)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				d := goldenDecisionValue
				d.Bucket = (i*200 + j) % Buckets
				v, err := s.Sign(d)
				if err != nil {
					t.Error(err)
					return
				}
				got, err := s.Verify(v, decisionNow)
				if err != nil || got.Bucket != d.Bucket {
					t.Errorf("Verify = %+v, %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
