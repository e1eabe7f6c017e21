package ramp

import (
	"strings"
	"testing"
)

func TestSetFieldsKeepsTheRestOfThePlan(t *testing.T) {
	cases := []struct{ name, in string }{
		{"block", "version: 3 # mine\nsalt: s\ncanary_percent: 0 # ramped\nramp:\n  steps: [1% 1s, 100%]\n"},
		{"missing keys", "salt: s\nramp:\n  steps: [100%]"},
		{"flow", "{salt: s, canary_percent: 2}"},
		{"quoted", "salt: s\ncanary_percent: \"2\"\nkill_switch: 'true'\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, f := range []planFields{{Percent: 12.5}, {Percent: 0, Kill: true}, {Percent: 100}} {
				out, err := setFields([]byte(c.in), f)
				if err != nil {
					t.Fatal(err)
				}
				got, err := readFields(out)
				if err != nil || got != f {
					t.Fatalf("read back %+v, %v from\n%s\nwant %+v", got, err, out, f)
				}
				if !strings.Contains(string(out), "salt: s") {
					t.Fatalf("salt lost:\n%s", out)
				}
			}
		})
	}
	out, _ := setFields([]byte(cases[0].in), planFields{Percent: 5})
	want := "version: 3 # mine\nsalt: s\ncanary_percent: 5 # ramped\nramp:\n  steps: [1% 1s, 100%]\nkill_switch: false\n"
	if string(out) != want {
		t.Fatalf("edited in place:\n%s\nwant\n%s", out, want)
	}
}

func FuzzSetFields(f *testing.F) {
	f.Add([]byte("salt: s\ncanary_percent: 0 # c\n"), 12.5, true)
	f.Add([]byte("{a: 1}"), 100.0, false)
	f.Add([]byte("canary_percent: &x 3\nkill_switch: *x\n"), 1.0, false)
	f.Add([]byte("a:\n  b: 1\ncanary_percent: |\n  5\n"), 5.0, true)
	f.Fuzz(func(t *testing.T, data []byte, pct float64, kill bool) {
		if pct < 0 || pct > 100 || pct != pct {
			return
		}
		want := planFields{Percent: pct, Kill: kill}
		out, err := setFields(data, want)
		if err != nil {
			return
		}
		got, err := readFields(out)
		if err != nil || got != want {
			t.Fatalf("setFields(%q) = %q, reads back %+v, %v; want %+v", data, out, got, err, want)
		}
	})
}
